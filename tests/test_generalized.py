"""Generalized RNNs (ξ = product, relu, max, softplus, sqsum): the product case is the
multiplicative network, grid tensors equal brute-force evaluation, exact grids are exact,
Thm 5.3's open set (our construction) has width-1 shallow equivalents, and the laboratory
writes, resumes and refuses like the others."""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from tensorrnn.cli import main
from tensorrnn.errors import ConfigError, SizeError
from tensorrnn.generalized import (
    COLUMNS,
    XIS,
    GeneralizedCPNet,
    GeneralizedTTNet,
    GridSetting,
    cp_grid,
    get_xi,
    measure_instance,
    odd_even,
    random_instance,
    rank_one_factors,
    rank_one_relu_instance,
    shallow_rank_one,
    tt_grid,
)
from tensorrnn.models import build_classifier, family_names, make_network
from tensorrnn.networks import CPNet, TTNet
from tensorrnn.ranks.modp import exact_rank

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

FLOAT_TOL = 1e-12  # float64 networks of a few positions, entries O(1): rounding is ~1e-16


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_sequences(features: torch.Tensor, d: int) -> torch.Tensor:
    """``Φ`` of every sequence of templates, in the grid's (row-major) order: ``(M^d, d, n)``."""
    index = torch.tensor(list(itertools.product(range(features.shape[0]), repeat=d)))
    return features[index]


# --------------------------------------------------------------------------- product ξ


@pytest.mark.parametrize("shared", [False, True])
def test_product_tt_equals_ttnet_with_the_same_weights(shared: bool):
    phi = torch.rand(9, 6, 3, dtype=torch.float64, generator=gen(1))
    tt = TTNet(6, 3, 4, 2, shared, init="orthogonal", generator=gen(2)).double()
    same = GeneralizedTTNet.from_multiplicative(tt)
    assert same.num_parameters() == tt.num_parameters() + same.inputs.numel()
    torch.testing.assert_close(same.scores(phi), tt.scores(phi), rtol=FLOAT_TOL, atol=FLOAT_TOL)
    torch.testing.assert_close(same(phi), tt(phi), rtol=FLOAT_TOL, atol=FLOAT_TOL)
    torch.testing.assert_close(same.normalized_scores(phi)[1], tt.normalized_scores(phi)[1],
                               rtol=FLOAT_TOL, atol=FLOAT_TOL)  # fmt: skip

    # And the other way: random input matrices C^(t) of width L < n fold into TT cores.
    general = GeneralizedTTNet(6, 3, 4, 2, shared, xi="product", width=2, generator=gen(3)).double()
    folded = general.to_multiplicative()
    torch.testing.assert_close(general.scores(phi), folded.scores(phi), rtol=FLOAT_TOL, atol=FLOAT_TOL)
    torch.testing.assert_close(general(phi), folded(phi), rtol=FLOAT_TOL, atol=FLOAT_TOL)
    coeff = general.coefficient_tensor(1).full()
    assert coeff.shape == (3,) * 6


def test_product_cp_equals_cpnet_with_the_same_weights():
    phi = torch.rand(9, 5, 3, dtype=torch.float64, generator=gen(1))
    cp = CPNet(5, 3, 4, 2, generator=gen(2)).double()
    same = GeneralizedCPNet.from_multiplicative(cp)
    assert same.num_parameters() == cp.num_parameters()
    torch.testing.assert_close(same.scores(phi), cp.scores(phi), rtol=FLOAT_TOL, atol=FLOAT_TOL)
    torch.testing.assert_close(same(phi), cp(phi), rtol=FLOAT_TOL, atol=FLOAT_TOL)
    torch.testing.assert_close(same.coefficient_tensor(0).full(), cp.coefficient_tensor(0).full())


def test_non_product_networks_have_no_coefficient_tensor():
    with pytest.raises(ConfigError, match="xi=product"):
        GeneralizedTTNet(4, 3, 2, 2, xi="relu").coefficient_tensor(0)
    with pytest.raises(ConfigError, match="xi=product"):
        GeneralizedCPNet(4, 3, 2, 2, xi="relu").coefficient_tensor(0)
    with pytest.raises(ConfigError, match="xi=product"):
        GeneralizedTTNet(4, 3, 2, 2, xi="max").to_multiplicative()


# --------------------------------------------------------------------------- the networks


TRAINED_GENERALIZED = ["relu-tt", "relu-tt-shared", "relu-cp",
                       "softplus-tt", "softplus-tt-shared", "softplus-cp"]  # fmt: skip


@pytest.mark.parametrize("model", TRAINED_GENERALIZED)
def test_relu_and_softplus_models_are_registered_and_build_a_classifier(model: str):
    assert model in family_names("train")
    net = make_network(model, 5, 4, 3, 2, generator=gen(0))
    assert isinstance(net, GeneralizedTTNet | GeneralizedCPNet)
    assert net.xi.name == model.split("-")[0] and (net.d, net.n, net.n_classes) == (5, 4, 2)
    clf = build_classifier(model, image_shape=(1, 8, 8), patch=4, feature_map="affine-relu",
                           feature_dim=6, rank=3, n_classes=10, init="orthogonal", seed=0)  # fmt: skip
    images = torch.rand(5, 1, 8, 8, generator=gen(1))
    logits = clf(images)
    assert logits.shape == (5, 10) and torch.isfinite(logits).all()
    counts = clf.num_parameters()
    assert counts["total"] == counts["features"] + counts["network"] > 0
    logits.sum().backward()
    assert all(p.grad is not None for p in clf.network.parameters() if p.requires_grad and p.numel())
    # The same seed gives the same network.
    again = build_classifier(model, image_shape=(1, 8, 8), patch=4, feature_map="affine-relu",
                             feature_dim=6, rank=3, n_classes=10, init="orthogonal", seed=0)  # fmt: skip
    torch.testing.assert_close(again(images), logits.detach())


@pytest.mark.parametrize("model", ["softplus-tt", "softplus-tt-shared", "softplus-cp"])
def test_registered_softplus_networks_compute_the_papers_formulas_in_python_floats(model: str):
    """The trained softplus families (``tensorrnn train --model softplus-tt``) against eqs. (14) and
    (16) with ξ(x, y) = ln(eˣ + eʸ), evaluated in Python floats on the network's own weights:
    h^(1)_k = Σ_l 𝒢^(1)[l, k] a_1[l] (h^(0) = −∞, the unit), h^(t)_k = Σ_{l,j} 𝒢^(t)[l, j, k]
    ln(e^{a_t[l]} + e^{h^(t−1)_j}), a_t = C^(t) Φ_t; the shallow unit ln Σ_t e^{⟨a_k^(t), Φ_t⟩}."""
    d, n, r, C = 5, 3, 2, 2
    net = make_network(model, d, n, r, C, init="orthogonal", generator=gen(12)).double()
    phi = torch.randn(4, d, n, dtype=torch.float64, generator=gen(13))
    got = net.scores(phi).tolist()
    logits, log_scale = net.normalized_scores(phi)
    assert torch.equal(log_scale, torch.zeros(4, dtype=torch.float64))  # no rescaling: logits = scores
    P = phi.tolist()
    for b in range(4):
        if model == "softplus-cp":
            A, lam = net.factors.tolist(), net.weights.tolist()
            units = [math.log(sum(math.exp(sum(P[b][t][i] * A[t][i][k] for i in range(n))) for t in range(d)))
                     for k in range(r)]  # fmt: skip
            want = [sum(lam[k][y] * units[k] for k in range(r)) for y in range(C)]
        else:
            a = [[sum(net.input_matrix(t)[l, i].item() * P[b][t][i] for i in range(n)) for l in range(r)]
                 for t in range(d)]  # fmt: skip
            G = [net.core(t).tolist() for t in range(d)]
            h = [sum(G[0][l][0][k] * a[0][l] for l in range(r)) for k in range(r)]
            for t in range(1, d):
                h = [sum(G[t][l][j][k] * math.log(math.exp(a[t][l]) + math.exp(h[j]))
                         for l in range(r) for j in range(r)) for k in range(len(G[t][0][0]))]  # fmt: skip
            want = h
        assert got[b] == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert logits[b].tolist() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_softplus_rnn_at_the_papers_length_is_finite_and_learns():
    """T = 16 (7×7 patches), rank 8, the configs' start: finite logits and gradients, and 30 Adam steps
    at the paper's 1e-4 lower the loss on a fixed batch (a softplus chain has no rescaling, so the
    long-chain tests of tests/test_networks.py leave it out)."""
    torch.manual_seed(0)
    clf = build_classifier("softplus-tt", image_shape=(1, 28, 28), patch=7, feature_map="affine-relu",
                           feature_dim=8, rank=8, n_classes=10, init="orthogonal", seed=0)  # fmt: skip
    images = torch.rand(16, 1, 28, 28, generator=gen(2))
    labels = torch.randint(0, 10, (16,), generator=gen(3))
    opt = torch.optim.Adam(clf.parameters(), lr=1e-4)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf(images), labels)
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in clf.parameters())
        losses.append(float(loss.detach()))
        opt.step()
    assert losses[-1] < losses[0], losses


def test_shared_network_has_one_middle_pair_and_counts_its_parameters():
    d, n, r, L, C = 7, 4, 3, 2, 5
    distinct = GeneralizedTTNet(d, n, r, C, xi="relu", width=L)
    shared = GeneralizedTTNet(d, n, r, C, True, xi="relu", width=L)
    assert distinct.num_parameters() == d * L * n + L * r + (d - 2) * L * r * r + L * r * C
    assert shared.num_parameters() == 3 * L * n + L * r + L * r * r + L * r * C
    assert shared.input_matrix(1) is not None and torch.equal(shared.input_matrix(2), shared.input_matrix(5))


def test_bad_names_and_sizes_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="unknown xi"):
        GeneralizedTTNet(4, 3, 2, 2, xi="tanh")
    with pytest.raises(ConfigError, match="d >= 2"):
        GeneralizedTTNet(1, 3, 2, 2)
    with pytest.raises(ConfigError, match="width"):
        GeneralizedTTNet(4, 3, 2, 2, width=0)
    with pytest.raises(ConfigError, match="expects features"):
        GeneralizedCPNet(4, 3, 2, 2)(torch.zeros(2, 5, 3))


# --------------------------------------------------------------------------- grid tensors


@pytest.mark.parametrize("xi", list(XIS))
@pytest.mark.parametrize("family", ["tt", "tt-shared", "cp"])
def test_grid_tensor_equals_the_networks_own_scores(xi: str, family: str):
    d, n, M, C = 4, 3, 3, 2
    features = torch.rand(M, n, dtype=torch.float64, generator=gen(5))
    if family == "cp":
        net = GeneralizedCPNet(d, n, 3, C, xi=xi, generator=gen(6)).double()
    else:
        net = GeneralizedTTNet(d, n, 3, C, family == "tt-shared", xi=xi, width=2, generator=gen(6)).double()
    grid = net.grid_tensor(features)
    brute = net.scores(all_sequences(features, d)).reshape((M,) * d + (C,))
    assert grid.shape == brute.shape
    torch.testing.assert_close(grid, brute, rtol=1e-12, atol=1e-12)


# ξ(a, h) and the first step ξ(a, h^(0)) with the unit h^(0) (docs/DESIGN.md), in plain Python.
PY_XI = {
    "product": (lambda a, h: a * h, lambda a: a),
    "relu": (lambda a, h: max(a, h, 0.0), lambda a: max(a, 0.0)),
    "max": (lambda a, h: max(a, h), lambda a: a),
    "softplus": (lambda a, h: math.log(math.exp(a) + math.exp(h)), lambda a: a),
    "sqsum": (lambda a, h: a * a + h * h, lambda a: a * a),
}


@pytest.mark.parametrize("xi", list(XIS))
def test_grids_equal_the_definition_evaluated_in_python_floats(xi: str):
    """h^(t)_k = Σ_{l,j} 𝒢^(t)[l, j, k] ξ(a_t[l], h^(t−1)_j) for every template sequence, and
    the CP form Σ_k λ[k, y] ξ(…ξ(V_1[i_1, k], V_2[i_2, k])…, V_T[i_T, k]): an independent reference
    of tt_grid and cp_grid (the networks' grid_tensor and scores are checked against these)."""
    assert set(PY_XI) == set(XIS)
    combine, first = PY_XI[xi]
    g = gen(31)
    M, L, R, C, T = 3, 2, 3, 2, 4
    values = [(2 * torch.rand(M, L, dtype=torch.float64, generator=g) - 1) for _ in range(T)]
    cores = [torch.randn(L, 1 if t == 0 else R, C if t == T - 1 else R, dtype=torch.float64, generator=g)
             for t in range(T)]  # fmt: skip
    grid = tt_grid(xi, values, cores)
    cp_values = [(2 * torch.rand(M, R, dtype=torch.float64, generator=g) - 1) for _ in range(T)]
    weights = torch.randn(R, C, dtype=torch.float64, generator=g)
    cp = cp_grid(xi, cp_values, weights)
    V, G, Vc, W = ([x.tolist() for x in xs] for xs in (values, cores, cp_values, [weights]))
    for seq in itertools.product(range(M), repeat=T):
        h = [sum(G[0][l][0][k] * first(V[0][seq[0]][l]) for l in range(L)) for k in range(R)]
        for t in range(1, T):
            h = [sum(G[t][l][j][k] * combine(V[t][seq[t]][l], h[j]) for l in range(L) for j in range(R))
                 for k in range(len(G[t][0][0]))]  # fmt: skip
        assert grid[seq].tolist() == pytest.approx(h, rel=1e-12, abs=1e-12), seq
        folds = []
        for k in range(R):
            p = first(Vc[0][seq[0]][k])
            for t in range(1, T):
                p = combine(p, Vc[t][seq[t]][k])
            folds.append(p)
        expected = [sum(W[0][k][y] * folds[k] for k in range(R)) for y in range(C)]
        assert cp[seq].tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12), seq


def test_exact_grid_is_exact_past_float64_and_refused_past_int64():
    """Entries near 2^55: the last step runs in int64 and equals Python integer arithmetic."""
    g = gen(7)
    M, L, R, T = 2, 2, 2, 4
    values = [torch.randint(1 << 9, 1 << 10, (M, L), generator=g).double() for _ in range(T)]
    cores = [torch.randint(1 << 9, 1 << 10, (L, 1 if t == 0 else R, 1 if t == T - 1 else R),
                           generator=g).double() for t in range(T)]  # fmt: skip
    grid = tt_grid("relu", values, cores, exact=True)[..., 0]
    assert grid.dtype == torch.int64 and int(grid.abs().max()) > 2**53

    def python_value(seq: tuple[int, ...]) -> int:
        vals = [[[int(x) for x in row] for row in v.tolist()] for v in values]
        cs = [c.long().tolist() for c in cores]
        h = [sum(cs[0][l][0][k] * max(vals[0][seq[0]][l], 0) for l in range(L)) for k in range(R)]
        for t in range(1, T):
            width = len(cs[t][0][0])
            h = [sum(cs[t][l][j][k] * max(vals[t][seq[t]][l], h[j], 0) for l in range(L) for j in range(R))
                 for k in range(width)]  # fmt: skip
        return h[0]

    for seq in itertools.product(range(M), repeat=T):
        assert int(grid[seq]) == python_value(seq)
    with pytest.raises(SizeError, match="2\\^62"):
        tt_grid("relu", values + [values[0]], cores[:-1] + [cores[1], cores[-1]], exact=True)
    with pytest.raises(ConfigError, match="does not keep integers"):
        tt_grid("softplus", values, cores, exact=True)
    with pytest.raises(ConfigError, match="integer"):
        tt_grid("relu", [v + 0.5 for v in values], cores, exact=True)


def test_shared_instances_repeat_the_middle_pair():
    s = GridSetting("relu", True, 3, 2, 4, 6, "int:3")
    values, cores = random_instance(s, 11)
    assert all(torch.equal(values[t], values[1]) and torch.equal(cores[t], cores[1]) for t in range(1, 5))
    assert not torch.equal(values[0], values[1])
    again = random_instance(s, 11)
    assert all(torch.equal(a, b) for a, b in zip(values + cores, again[0] + again[1], strict=True))


# --------------------------------------------------------------------------- shallow bound


@pytest.mark.parametrize("xi", ["relu", "max"])
def test_one_generalized_cp_term_has_at_most_the_claimed_matricization_rank(xi: str):
    """The premise of the shallow-width bound: rank(one term) <= min(M·⌊T/2⌋, M^⌊T/2⌋),
    checked exactly; and the exact test recognises every such term as width 1."""
    g = gen(8)
    for M, T in ((2, 4), (3, 4), (3, 5), (4, 4), (3, 6)):
        bound = get_xi(xi).term_rank(M, T)
        for _ in range(5):
            values = [torch.randint(-20, 21, (M, 1), generator=g) for _ in range(T)]
            lam = torch.tensor([[int(torch.randint(1, 4, (1,), generator=g))]])
            grid = cp_grid(xi, values, lam if xi == "max" else -lam)[..., 0]
            rank = exact_rank(odd_even(grid).numpy())
            assert rank <= bound
            assert shallow_rank_one(xi, grid) is True
    assert get_xi("product").term_rank(10, 6) == 1 and get_xi("softplus").term_rank(10, 6) is None


def test_random_relu_rnns_of_rank_above_one_are_mostly_not_width_one():
    s = GridSetting("relu", False, 4, 4, 3, 4, "int:3")
    flags = [measure_instance(s, seed)["rank_one_shallow"] for seed in range(10)]
    assert flags.count(False) >= 5
    assert shallow_rank_one("product", torch.zeros(2, 2)) is None


# --------------------------------------------------------------------------- Thm 5.3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thm53_construction_has_a_width_one_shallow_equivalent(seed: int):
    M, T, R, L = 3, 5, 2, 3
    values, cores = rank_one_relu_instance(M, T, R, L, seed=seed)
    # The RNN as a network: one-hot templates, so F = I and C^(t) = A_tᵀ.
    rnn = GeneralizedTTNet(T, M, R, 1, xi="relu", width=L, generator=gen(0)).double()
    with torch.no_grad():
        for t in range(T):
            rnn.inputs[t].copy_(values[t].t())
        rnn.first.copy_(cores[0][:, 0, :])
        rnn.middle.copy_(torch.stack(cores[1:-1]))
        rnn.last.copy_(cores[-1])
    grid = tt_grid("relu", values, cores, exact=True)[..., 0]
    one_hot = all_sequences(torch.eye(M, dtype=torch.float64), T)
    assert torch.equal(rnn.scores(one_hot).reshape((M,) * T), grid.double())
    assert len(set(grid.flatten().tolist())) > M  # not a function of one position only

    # Measured: a width-1 shallow network is equivalent, and here it is.
    assert shallow_rank_one("relu", grid) is True
    row = measure_instance(GridSetting("relu", False, R, L, M, T, "int:3"), seed, instance=(values, cores))
    assert row["rank_one_shallow"] is True and row["shallow_bound"] == 1 and row["agree"] is True
    lam, v = rank_one_factors("relu", grid)
    shallow = GeneralizedCPNet(T, M, 1, 1, xi="relu", generator=gen(0)).double()
    with torch.no_grad():
        shallow.factors.copy_(torch.stack(v).unsqueeze(-1))
        shallow.weights.fill_(lam)
    assert torch.equal(shallow.scores(one_hot), rnn.scores(one_hot))

    # An open set: every weight moved by up to 0.05 keeps the property (float grid).
    g = gen(100 + seed)
    for _ in range(3):
        moved_values = [a + 0.1 * (torch.rand(a.shape, generator=g, dtype=a.dtype) - 0.5) for a in values]
        moved_cores = [c + 0.1 * (torch.rand(c.shape, generator=g, dtype=c.dtype) - 0.5) for c in cores]
        moved = tt_grid("relu", moved_values, moved_cores)[..., 0]
        assert shallow_rank_one("relu", moved, tol=1e-9 * float(moved.abs().max())) is True


# --------------------------------------------------------------------------- exact against float


def test_exact_and_float_grid_ranks_agree_where_the_gap_is_large():
    large = 0
    for cores_shared in (False, True):
        for R in (2, 3, 4):
            s = GridSetting("relu", cores_shared, R, R, 4, 6, "int:3")
            for seed in range(4):
                row = measure_instance(s, seed)
                assert row["exact_rank"] is not None and row["float_rank"] is not None
                if row["gap"] > 1e6:
                    large += 1
                    assert row["exact_rank"] == row["float_rank"], row
                # An exact rank mod p never exceeds the rank over Q, which the float rank
                # estimates; with a large gap both must be the same number.
    assert large >= 12


def test_gauss_and_softplus_instances_have_float_ranks_only():
    for s in (GridSetting("relu", True, 2, 2, 3, 4, "gauss"),
              GridSetting("softplus", False, 2, 2, 3, 4, "int:3")):  # fmt: skip
        row = measure_instance(s, 0)
        assert row["exact_rank"] is None and row["float_rank"] is not None and row["agree"] is None
    soft = measure_instance(GridSetting("softplus", False, 2, 2, 3, 4, "int:3"), 0)
    assert soft["shallow_bound"] is None and soft["rank_one_shallow"] is None


# --------------------------------------------------------------------------- the command


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["tensorrnn", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


TINY = ["generalized-ranks", "--xi", "relu,max", "--R", "1,2", "--M", "3", "--T", "4", "--trials", "2", "-q"]


def test_command_writes_resumes_and_refuses_other_settings(tmp_path: Path, monkeypatch, capsys):
    out = tmp_path / "g"
    code, _, err = run_main(monkeypatch, capsys, *TINY, "--out", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["generalized.csv", "generalized.md",
                                                     "generalized.png", "settings.json"]  # fmt: skip
    rows = list(csv.DictReader((out / "generalized.csv").open()))
    assert list(rows[0]) == COLUMNS and len(rows) == 2 * 2 * 2 * 2  # xi × cores × R × trials
    assert json.loads((out / "settings.json").read_text())["methods"] == ["exact", "float"]
    table = (out / "generalized.md").read_text()
    for cores in ("distinct", "shared"):  # side by side
        assert f"| relu | int:3 | 3 | 4 | {cores} | 2 |" in table
    before = (out / "generalized.csv").read_bytes()

    code, _, err = run_main(monkeypatch, capsys, *TINY, "--out", str(out))  # resume: nothing new
    assert code == 0 and (out / "generalized.csv").read_bytes() == before

    code, _, err = run_main(monkeypatch, capsys, *TINY, "--R", "1,2,3", "--out", str(out))  # grows
    assert code == 0 and len(list(csv.DictReader((out / "generalized.csv").open()))) == 24

    grown = (out / "generalized.csv").read_bytes()
    code, _, err = run_main(monkeypatch, capsys, *TINY, "--seed", "5", "--out", str(out))
    assert code == 2 and "other settings" in one_line(err)
    assert (out / "generalized.csv").read_bytes() == grown


@pytest.mark.parametrize("bad, message", [
    (["--R", "0"], "R (hidden width)"),
    (["--xi", "tanh"], "unknown xi"),
    (["--weights", "int:x"], "weights"),
    (["--cores", "tied"], "unknown cores"),
    (["--M", "10", "--T", "12"], "grid entries"),
    (["--method", "svd"], "unknown method"),
    (["--trials", "0"], "trials"),
])  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, monkeypatch, capsys, bad, message):
    out = tmp_path / "never"
    code, _, err = run_main(monkeypatch, capsys, "generalized-ranks", *bad, "--out", str(out), "-q")
    assert code == 2 and message in one_line(err)
    assert not out.exists()


def test_config_file_sets_the_grid(tmp_path: Path, monkeypatch, capsys):
    config = tmp_path / "g.yaml"
    config.write_text("xi: relu\ncores: [shared]\nR: [2]\nM: 3\nT: 4\ntrials: 1\nweights: int:2\n"
                      f"out: {tmp_path / 'from-config'}\n")  # fmt: skip
    code, _, err = run_main(monkeypatch, capsys, "generalized-ranks", "--config", str(config), "-q")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "from-config" / "generalized.csv").open()))
    assert [(r["cores"], r["rank"], r["weights"]) for r in rows] == [("shared", "2", "int:2")]
    config.write_text("xi: relu\ncolour: red\n")
    code, _, err = run_main(monkeypatch, capsys, "generalized-ranks", "--config", str(config), "-q")
    assert code == 2 and "unknown key" in one_line(err)


@pytest.mark.parametrize("xi", list(XIS))
def test_logits_are_the_scores_over_a_positive_number(xi: str):
    """``h_y = logits_y · exp(log_scale)``: rescaling the chain never changes the prediction."""
    phi = torch.rand(6, 9, 3, dtype=torch.float64, generator=gen(3))
    for shared in (False, True):
        net = GeneralizedTTNet(9, 3, 4, 3, shared, xi=xi, width=2, init="orthogonal", generator=gen(4))
        net = net.double()
        logits, log_scale = net.normalized_scores(phi)
        torch.testing.assert_close(logits * log_scale.exp().unsqueeze(1), net.scores(phi), rtol=1e-10, atol=0)
        if xi in ("softplus", "sqsum"):
            assert torch.equal(log_scale, torch.zeros_like(log_scale))


@pytest.mark.parametrize("model", ["relu-tt", "relu-tt-shared", "relu-cp"])
def test_relu_long_chain_is_finite_in_float32(model: str):
    """d = 784 at a Gaussian start: the state grows a few per cent a step (overflow without rescaling)."""
    torch.manual_seed(0)
    clf = build_classifier(model, image_shape=(1, 28, 28), patch=1, feature_map="affine-relu",
                           feature_dim=4, rank=8, n_classes=10, init="gaussian", constant=False)  # fmt: skip
    images = torch.cat([torch.zeros(2, 1, 28, 28), torch.rand(2, 1, 28, 28, generator=gen(0))])
    logits = clf(images)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in clf.parameters())


@pytest.mark.parametrize("xi", ["relu", "max"])
def test_balanced_instances_are_the_shared_rnn_with_cores_over_f(xi: str):
    """``balanced:K`` returns the exact integer computation of the RNN with cores 𝒢/f after the
    first: its grid is f^(T−1) times that RNN's, and the RNN's middle inputs are shared."""
    from tensorrnn.generalized import balance_factor

    s = GridSetting(xi, True, 3, 2, 3, 5, "balanced:2")
    values, cores = random_instance(s, 4)
    f = balance_factor(2, 2, 3)
    assert f == 3  # round(sqrt(2·3/3 · 2·3)) = round(3.46)
    inputs = [a / f ** max(t - 1, 0) for t, a in enumerate(values)]
    assert all(torch.equal(inputs[t], inputs[1]) for t in range(1, 4))  # shared: one middle input
    rational = [cores[0]] + [c / f for c in cores[1:]]
    exact = tt_grid(xi, values, cores, exact=True)
    torch.testing.assert_close(exact.double() / f ** (s.T - 1), tt_grid(xi, inputs, rational),
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    with pytest.raises(ConfigError, match="homogeneous"):
        measure_instance(GridSetting("softplus", True, 3, 2, 3, 5, "balanced:2"), 0)


def test_grids_modulo_p_are_the_exact_grids_reduced():
    """x² + y² and the product: Γ mod p from residues equals the exact integer Γ reduced."""
    from tensorrnn.generalized import tt_grid_mod

    for xi in ("sqsum", "product"):
        s = GridSetting(xi, True, 2, 2, 3, 4, "int:1")
        values, cores = random_instance(s, 3)
        exact = tt_grid(xi, values, cores, exact=True)
        assert torch.equal(tt_grid_mod(xi, values, cores, 1009), torch.remainder(exact, 1009))
    with pytest.raises(ConfigError, match="polynomial"):
        tt_grid_mod("relu", values, cores, 1009)
    # Past 2^62 (x² + y² at T = 6): the laboratory certifies through the residues.
    row = measure_instance(GridSetting("sqsum", True, 2, 2, 3, 6, "int:3"), 0)
    assert row["exact_rank"] is not None and row["exact_rank"] >= 1 and row["max_abs"] > 2.0**62
