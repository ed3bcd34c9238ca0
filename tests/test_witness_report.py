"""The rank table's status column (proved for all d / certified up to N / open) and the
at-a-glance status figure."""

from pathlib import Path

from tensorrnn.ranks.bounds import STATUS_CERTIFIED, STATUS_OPEN, STATUS_PROVED
from tensorrnn.ranks.lab import COLUMNS, read_rows
from tensorrnn.ranks.report import (
    certified_reach,
    regime,
    status_counts,
    status_label,
    summarize,
    write_status_figure,
    write_table,
)

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "results" / "certified" / "ranks.csv"


def row(family, n, r, d, split, rank, mincut, rows, method="exact"):
    base = dict.fromkeys(COLUMNS, "")
    base.update(family=family, n=str(n), r=str(r), d=str(d), split=split, trial="0", method=method,
                rank=str(rank), mincut=str(mincut), rows=str(rows), cols=str(rows), bound_q_rm1="1",
                bound_q_r="1", evidence="certified")  # fmt: skip
    return base


def synthetic_rows():
    return [
        row("tt-shared", 3, 3, 4, "odd-even", 9, 9, 9),  # n = r: the hub witness
        row("tt", 5, 3, 6, "odd-even", 75, 75, 125),  # r < n < r^2: transfer
        row("tt", 3, 3, 4, "half", 9, 9, 9),  # no witness theory for this split
        row("tt", 3, 3, 6, "half", 27, 27, 27),
        row("tt", 3, 3, 8, "half", 80, 81, 81),  # short of the min-cut
    ]


def test_status_of_each_setting_and_its_label():
    summaries = summarize(synthetic_rows())
    reach = certified_reach(summaries)
    labels = {(s.family, s.n, s.d, s.split): status_label(s, reach) for s in summaries}
    assert labels[("tt-shared", 3, 4, "odd-even")] == f"{STATUS_PROVED} (hub)"
    assert labels[("tt", 5, 6, "odd-even")] == f"{STATUS_PROVED} (transfer)"
    assert labels[("tt", 3, 4, "half")] == "certified up to N=27"
    assert labels[("tt", 3, 6, "half")] == "certified up to N=27"
    assert labels[("tt", 3, 8, "half")] == STATUS_OPEN
    expected = {STATUS_PROVED: 2, STATUS_CERTIFIED: 2, STATUS_OPEN: 1}
    assert status_counts(summaries) == expected


def test_table_has_the_status_column_and_counts(tmp_path: Path):
    path = write_table(synthetic_rows(), tmp_path / "ranks.md")
    text = path.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| family"))
    assert header.rstrip().endswith("| status |")
    assert "| proved for all d (hub) |" in text and "| certified up to N=27 |" in text
    assert "**Status.** 2 of 5 settings are proved for every even d" in text
    assert "1 are open" in text


def test_committed_certified_table_is_proved_for_every_d():
    summaries = summarize(read_rows(COMMITTED))
    assert len(summaries) == 465
    assert status_counts(summaries)[STATUS_PROVED] == 465
    assert {regime(s.n, s.r) for s in summaries} == {"n < r", "n = r", "r < n < r²", "n ≥ r²"}
    assert {s.witness for s in summaries} == {"delta", "hub", "transfer", "matrix-unit"}


def test_status_figure_is_written(tmp_path: Path):
    rows = read_rows(COMMITTED)
    path = write_status_figure(rows, tmp_path / "status.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = write_status_figure(synthetic_rows()[:1], tmp_path / "one.png")
    assert empty.stat().st_size > 0
