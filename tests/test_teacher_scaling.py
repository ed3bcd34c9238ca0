"""The teacher-scaling lab: students' scores, config checks, resumable rows, the report."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from tensorrnn.errors import ConfigError
from tensorrnn.formats import TTSharedTensor
from tensorrnn.teacher import make_student, one_hot_inputs, teacher_tensor
from tensorrnn.teacher_scaling import (
    CSV_FILE,
    coefficient_scores,
    load_config,
    load_teacher,
    plan_jobs,
    run_scaling,
    student_params,
    train_on_samples,
)
from tensorrnn.teacher_scaling_report import write_report

TINY = {
    "teachers": [{"n": 2, "r": 2, "cp_ranks": {4: [1, 4]}}],
    "seeds": [0],
    "adam_steps": 40,
    "lbfgs_iters": 20,
    "lm_evaluations": 30,
    "als_sweeps": 40,
    "samples": {"teachers": [[2, 2, 4, 4]], "train_inputs": [4, 8, 12], "steps": 20, "batch": 4},
}


@pytest.mark.parametrize("family", ["cp", "tt", "tt-shared"])
@pytest.mark.parametrize("d", [4, 5])
def test_coefficient_scores_equal_the_network_on_one_hot_inputs(family, d):
    net = make_student(family, d, 3, 2, seed=3)
    phi = one_hot_inputs(3, d)
    expected = net.scores(phi)[:, 0]
    got = coefficient_scores(net)()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # Same gradients too: the full-batch fits optimise the network's own loss.
    (g1,) = torch.autograd.grad(expected.square().sum(), [next(net.parameters())])
    (g2,) = torch.autograd.grad(coefficient_scores(net)().square().sum(), [next(net.parameters())])
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
    assert student_params(family, 3, d, 2) == net.num_parameters()


def test_samples_split_reads_the_teacher_in_c_order():
    # A student holding the teacher's own cores has zero error on train and test inputs alike.
    teacher = load_teacher(3, 2, 4, seed=1)
    source = teacher_tensor(teacher.spec)
    assert isinstance(source, TTSharedTensor)
    net = make_student("tt-shared", 4, 3, 2, seed=0)
    with torch.no_grad():
        net.first.copy_(source.first[0])
        net.middle.copy_(source.middle[None])
        net.last.copy_(source.last)
    train_error, test_error = train_on_samples(net, teacher, 20, lr=1e-3, steps=0, batch=8, seed=2)
    assert train_error < 1e-12 and test_error < 1e-12


def test_config_errors_are_one_line_and_name_the_key():
    with pytest.raises(ConfigError, match="unknown key"):
        load_config({**TINY, "colour": 1}, "x.yaml")
    with pytest.raises(ConfigError, match="odd"):
        load_config({**TINY, "teachers": [{"n": 2, "r": 2, "cp_ranks": {5: [1]}}]}, "x.yaml")
    with pytest.raises(ConfigError, match="entries is over"):
        load_config({**TINY, "teachers": [{"n": 4, "r": 2, "cp_ranks": {12: [1]}}]}, "x.yaml")
    with pytest.raises(ConfigError, match="lrs"):
        load_config({**TINY, "lrs": {"cp": 0.1}}, "x.yaml")
    with pytest.raises(ConfigError, match="at least twice"):
        load_config({**TINY, "samples": {**TINY["samples"], "train_inputs": [9]}}, "x.yaml")


def test_jobs_run_cheapest_first_and_methods_follow_the_caps():
    config = load_config({**TINY, "lm_max_jacobian": 16 * 8 * 1, "gradient_max_work": 16}, "x.yaml")
    jobs = plan_jobs(config)
    costs = [j.cost for j in jobs]
    assert [round(math.log10(c), 1) for c in costs] == sorted(round(math.log10(c), 1) for c in costs)
    fits = {(j.family, j.rank, j.method) for j in jobs if j.part == "fit"}
    assert ("cp", 1, "lm") in fits and ("cp", 4, "lm") not in fits  # 16 entries × 32 parameters > 128
    assert ("cp", 1, "adam+lbfgs") in fits and ("cp", 4, "adam+lbfgs") not in fits
    assert ("tt-shared", 2, "adam+lbfgs") not in fits  # 16 entries × r² = 64 > 16
    sizes = {j.train_inputs for j in jobs if j.part == "sample"}
    assert sizes == {4, 8}  # 12 > 16 / 2: at least half the inputs stay for testing


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_run_resumes_refuses_other_settings_and_respects_the_theorem(tmp_path):
    out = tmp_path / "scaling"
    config = load_config(TINY, "tiny.yaml")
    write_report(run_scaling(config, out, quiet=True), config, out)
    rows = read_csv(out / CSV_FILE)
    assert len(rows) == len(plan_jobs(config))
    for row in rows:
        # Eckart–Young: no student of this rank can beat the bound, whatever fitted it.
        assert float(row["rel_error"]) >= float(row["lower_bound"]) * (1 - 1e-9)
    # Rank 1 is far below the teacher's odd/even rank (4): its floor is well above zero.
    rank1 = [r for r in rows if r["part"] == "fit" and r["family"] == "cp" and r["rank"] == "1"]
    assert all(float(r["lower_bound"]) > 0.1 for r in rank1)
    before = (out / CSV_FILE).read_text()
    run_scaling(config, out, quiet=True)  # resumes: nothing left to do
    assert (out / CSV_FILE).read_text() == before
    grown = load_config({**TINY, "seeds": [0, 1]}, "tiny.yaml")  # a larger grid adds rows
    run_scaling(grown, out, quiet=True)
    assert len(read_csv(out / CSV_FILE)) == len(plan_jobs(grown))
    with pytest.raises(ConfigError, match=r"adam_steps\W+40 there, 41 now"):
        run_scaling(load_config({**TINY, "adam_steps": 41}, "tiny.yaml"), out, quiet=True)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["adam_steps"] == 40
    for name in ("scaling.md", "scaling.png", "samples.png", "README.md"):
        assert (out / name).exists()


def test_cli_refuses_a_bad_config_in_one_line_and_leaves_nothing(tmp_path, run_cli):
    (tmp_path / "bad.yaml").write_text("teachers: []\n")
    result = run_cli("teacher-scaling", "--config", "bad.yaml", "--out", "never", "-q", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "teachers must be a list" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def fit_row(d, rank, seed, method, error, family="cp", floor=0.0):
    return {"part": "fit", "teacher": "tt-shared", "n": "4", "r": "2", "d": str(d), "family": family,
            "rank": str(rank), "seed": str(seed), "method": method, "train_inputs": str(4**d),
            "rel_error": repr(error), "test_error": "", "lower_bound": repr(floor), "params": "0",
            "max_term_norm": "", "iterations": "1", "seconds": "1.0"}  # fmt: skip


def test_report_counts_the_best_method_per_seed_and_needs_two_seeds():
    from tensorrnn.teacher_scaling_report import Fits, growth_sentence, shortfall_sentence

    rows = [
        # d = 4, rank 8: ALS reaches 1e-6 in seed 0 only, LM in seed 1 only -> best: 2 of 3 seeds.
        fit_row(4, 8, 0, "als", 1e-9), fit_row(4, 8, 1, "als", 1e-2), fit_row(4, 8, 2, "als", 1e-2),
        fit_row(4, 8, 0, "lm", 1e-2), fit_row(4, 8, 1, "lm", 1e-9), fit_row(4, 8, 2, "lm", 1e-2),
        fit_row(4, 4, 0, "als", 1e-4), fit_row(4, 4, 1, "als", 1e-4), fit_row(4, 4, 2, "als", 1e-1),
        # d = 6: rank 32 reaches 1e-3 in one seed only; rank 64 in all three.
        fit_row(6, 32, 0, "als", 1e-4), fit_row(6, 32, 1, "als", 1e-2), fit_row(6, 32, 2, "als", 1e-2),
        fit_row(6, 64, 0, "als", 1e-4), fit_row(6, 64, 1, "als", 1e-4), fit_row(6, 64, 2, "als", 1e-4),
    ]  # fmt: skip
    fits = Fits(rows)
    assert fits.smallest_rank((4, 2, 4), 1e-3) == 4
    assert fits.smallest_rank((4, 2, 4), 1e-6) == 8
    assert fits.smallest_rank((4, 2, 4), 1e-6, ("als",)) is None
    assert fits.smallest_rank((4, 2, 6), 1e-3) == 64
    assert fits.smallest_rank((4, 2, 6), 1e-6) is None
    sentence = growth_sentence(fits, 4, 2)
    # 4 at d = 4 and 64 at d = 6: ×(64/4)^(1/2) = ×4.00 per unit of d.
    assert "4 at d = 4, 64 at d = 6" in sentence and "×4.00 per unit of d" in sentence
    assert "none up to 64 at d = 6" in sentence
    assert "d = 6: no fit at ranks 32–64 reached 1e-6" in shortfall_sentence(fits, 4, 2)
