"""The README's Python snippets run as written, and print what their comments say."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, f"{code}\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_python_snippet_is_checked_here():
    assert len(SNIPPETS) == 2, "a new README snippet: run it in a test below"


def test_rank_snippet_prints_the_min_cut_and_the_bound():
    (snippet,) = [s for s in SNIPPETS if "exact_rank" in s]
    printed = _run(snippet).split()
    n, r, d = 3, 3, 8
    mincut = min(n, r) * min(n, r * r) ** (d // 2 - 1)  # docs/DESIGN.md: the generic odd/even rank
    bound = min(n, r - 1) ** (d // 2)  # the theorem's q^(d/2)
    assert printed == [str(mincut), str(bound), str(mincut), "inf"] == ["81", "16", "81", "inf"]
    # The comments beside the code say the same.
    assert "# 81 16 81 inf" in snippet and "# 81 (a certificate)" in snippet


def test_network_snippet_gives_finite_logits_and_gradients():
    (snippet,) = [s for s in SNIPPETS if "TTNet" in s]
    check = ("\nassert logits.shape == (32, 10) and bool(torch.isfinite(logits).all())"
             "\nassert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters())"
             "\nassert type(tensor).__name__ == 'TTSharedTensor'"
             "\nprint('ok')")  # fmt: skip
    assert _run(snippet + check).strip() == "ok"
