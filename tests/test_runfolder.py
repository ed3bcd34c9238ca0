"""The run folder records what decided a run's numbers and which test examples it got right."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tensorrnn.runfolder import RunFolder, decode_correct, encode_correct
from tensorrnn.train import RunConfig, _load_splits, train_run

TINY = {
    "dataset": "synthetic-tt",
    "dataset_options": {"family": "tt", "d": 4, "n": 3, "rank": 2, "n_classes": 3, "n_samples": 600},
    "patch": 1, "feature_dim": 4, "rank": 3, "batch_size": 32, "lr": 0.02, "init": "gaussian",
    "model": "tt-shared",
}  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


def test_packed_correctness_round_trips():
    flags = np.random.default_rng(0).random(10_001) < 0.9
    encoded = encode_correct(flags)
    assert np.array_equal(decode_correct(json.loads(json.dumps(encoded))), flags.astype(np.int8))


def test_result_records_provenance_and_per_example_correctness(tmp_path: Path):
    config = RunConfig.from_mapping({**TINY, "epochs": 2, "compile": False})
    result = train_run(config, tmp_path / "run", quiet=True)
    folder = RunFolder(tmp_path / "run")
    provenance = result["provenance"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert provenance["code"]["commit"] == head.stdout.strip()
    assert provenance["torch"] == torch.__version__
    assert provenance["chain"] == result["chain"] == "plain" and provenance["device"] == "cpu"
    assert provenance["resumed_after_epoch"] == 0 and result["sessions"] == 1
    assert provenance["cpu_capability"] == torch.backends.cpu.get_cpu_capability()

    # Which test examples were right, re-derived from the saved best model.
    correct = folder.test_correct()
    model_state = torch.load(folder.checkpoint_path, weights_only=True)["best_model"]
    from tensorrnn.train import _new_state

    splits = _load_splits(config)
    state = _new_state(config, folder, splits, torch.device("cpu"))
    state.model.load_state_dict(model_state)
    state.model.eval()
    with torch.no_grad():
        predicted = state.model(splits.test[0]).argmax(dim=1)
    expected = (predicted == splits.test[1]).numpy().astype(np.int8)
    assert np.array_equal(correct, expected)
    assert result["test_accuracy"] == expected.mean()


def test_a_resume_is_recorded_as_a_second_session(tmp_path: Path):
    first = RunConfig.from_mapping({**TINY, "epochs": 1, "compile": False, "lr_schedule": "constant"})
    train_run(first, tmp_path / "run", quiet=True)
    # Pretend the run was killed after epoch 1: drop the result, ask for 2 epochs.
    folder = RunFolder(tmp_path / "run")
    folder.result_path.unlink()
    config_json = folder.read_config()
    config_json["epochs"] = 2
    folder.write_config(config_json)
    again = RunConfig.from_mapping({**TINY, "epochs": 2, "compile": False, "lr_schedule": "constant"})
    result = train_run(again, tmp_path / "run", quiet=True)
    sessions = folder.sessions()
    assert [s["resumed_after_epoch"] for s in sessions] == [0, 1]
    assert result["sessions"] == 2 and result["provenance"]["resumed_after_epoch"] == 1


def test_tuning_never_reads_the_test_split(tmp_path: Path, monkeypatch):
    import tensorrnn.train as train

    original = train._load_splits

    def poisoned(config):
        # Labels -1 make cross-entropy raise: any evaluation of this split fails the test.
        splits = original(config)
        images, labels = splits.test
        return dataclasses.replace(splits, test=(images, torch.full_like(labels, -1)))

    monkeypatch.setattr(train, "_load_splits", poisoned)
    config = RunConfig.from_mapping({**TINY, "epochs": 1, "compile": False})
    result = train_run(config, tmp_path / "run", quiet=True, evaluate_test=False)
    assert result["test_accuracy"] is None and result["test_correct"] is None
    with pytest.raises(IndexError):
        train_run(config, tmp_path / "other", quiet=True)


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                    reason="the pin is to AVX2 kernels; this CPU has none")  # fmt: skip
def test_importing_the_package_pins_the_avx2_kernels_whatever_the_cpu_offers():
    # Independent of this process (whose torch may have started first): a fresh one,
    # without the variable, imports tensorrnn and then asks ATen.
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    script = "import tensorrnn, torch; print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "AVX2"


def test_a_run_warns_when_torch_ran_avx512_kernels_before_the_pin(tmp_path: Path):
    # torch runs a kernel first, so the pin set by `import tensorrnn` comes too late.
    script = f"""
import json, warnings, torch
torch.randn(64).exp().sum()
import tensorrnn
from tensorrnn.train import RunConfig, train_run
capability = torch.backends.cpu.get_cpu_capability()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    config = RunConfig.from_mapping({{**{TINY!r}, "epochs": 1, "compile": False}})
    train_run(config, {str(tmp_path / "run")!r}, quiet=True)
print(json.dumps([capability, [str(w.message) for w in caught if "kernels" in str(w.message)]]))
"""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    capability, messages = json.loads(done.stdout.strip().splitlines()[-1])
    if capability != "AVX512":
        pytest.skip(f"this CPU runs {capability} kernels unpinned; the warning is about AVX-512")
    assert len(messages) == 1 and "ATEN_CPU_CAPABILITY=avx2" in messages[0], messages
