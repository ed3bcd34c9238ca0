"""Rank of a trained network: does training use the rank the theory grants?

A finished training run holds a learned coefficient tensor ``A^y`` for every
class ``y`` (``model.network.coefficient_tensor(y)``). For each of them this
module takes the odd/even matricization (rows ``i_1, i_3, …``, columns
``i_2, i_4, …``; an ``N × N`` matrix with ``N = n^(d/2)``) and measures

* its singular values, the float64 SVD rank and the gap at that rank
  (:func:`~tensorrnn.ranks.numerical.numerical_rank`: evidence, not proof);
* the energy rank: how many singular values hold 99 % of ``‖A^y‖²``;
* ``σ_g / σ_1`` at the generic rank ``g`` of the family: how much of the
  granted rank the learned tensor actually uses;

and sets them against the *generic* odd/even rank of the family, the rank that
almost every tensor of the family has:

* ``tt`` and ``tt-shared``: the min-cut of the chain with trimmed bonds
  (:func:`~tensorrnn.ranks.bounds.mincut_bound` with
  :func:`~tensorrnn.ranks.bounds.effective_bonds`), which equals
  ``min(n, r) · min(n, r²)^(d/2 − 1)``;
* ``cp``: ``min(R, n^(d/2))``.

These values are upper bounds on the rank of every tensor of the family; they
are *certified* as the generic rank when the exact rank over GF(p) of one
integer instance of the family with the same sizes reaches them (a
Zariski-open argument, as in the rank laboratory). The certificate is
computed here unless switched off; the table says which it is.

Trained parameters are generic (they were never chosen on a proper algebraic
subset), so the *exact* rank of a learned ``A^y`` almost surely equals ``g``.
The question this module answers is therefore about the spectrum: are the
``g`` singular values the theory grants of comparable size, or does training
concentrate the tensor on far fewer directions?

Layering note: :func:`load_run` reads a run folder and rebuilds the score
network (:mod:`tensorrnn.networks`, imported lazily). Everything else works on
:class:`~tensorrnn.formats.TensorFormat` objects only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tensorrnn.atomic import atomic_save_figure, atomic_write, atomic_write_text
from tensorrnn.devices import resolve_device
from tensorrnn.errors import ConfigError, DataError, SizeError
from tensorrnn.formats import TensorFormat, random_tensor
from tensorrnn.labkit import check_output_folder as check_lab_output
from tensorrnn.ranks.bounds import THEOREM_BOUND_OF_FAMILY, effective_bonds, mincut_bound, theorem_bound
from tensorrnn.ranks.modp import DEFAULT_PRIME, check_prime, exact_rank
from tensorrnn.ranks.numerical import numerical_rank

MAX_SIDE = 4096
"""Largest ``N = n^(d/2)`` analysed: the ``N × N`` SVD then takes about 10 s per class on one core."""

ENGINES = ("blas", "flint")
ENERGY = 0.99
CSV_FILE, TABLE_FILE, FIGURE_FILE = "trained_rank.csv", "trained_rank.md", "trained_rank.png"
COLUMNS = [
    "run", "model", "n", "r", "d", "class", "numerical_rank", "gap", "certified_generic_rank",
    "mincut", "theorem_bound", "N", "certificate", "energy_rank_99", "sigma_ratio_at_generic",
    "test_accuracy", "flag",
]  # fmt: skip
MAX_DRAWS = 3


def _families() -> tuple[str, ...]:
    """The families whose trained coefficient tensor this lab reads (the registry's role)."""
    from tensorrnn.models import family_names

    return family_names("trained-rank")


# --------------------------------------------------------------------------- #
# The generic rank of a family
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class GenericRank:
    """The generic odd/even rank of a family at sizes ``(n, r, d)``.

    Attributes
    ----------
    upper
        Upper bound on the rank of every tensor of the family: the min-cut with
        trimmed bonds (``tt``, ``tt-shared``) or ``min(R, n^(d/2))`` (``cp``).
        This is the generic rank whenever the certificate reaches it.
    certified
        Largest exact rank over GF(p) of up to :data:`MAX_DRAWS` integer
        instances: a proven lower bound on the generic rank; ``None`` when not
        computed.
    theorem_bound
        The bound the literature proves (``q^(d/2)``, ``q = min(n, r)`` for
        ``tt``, ``min(n, r − 1)`` for ``tt-shared``); ``None`` for ``cp``.
    prime, draws
        Modulus and number of instances behind ``certified``.
    """

    family: str
    n: int
    r: int
    d: int
    upper: int
    certified: int | None
    theorem_bound: int | None
    prime: int | None = None
    draws: int = 0

    @property
    def determined(self) -> bool:
        """The certificate meets the upper bound: the generic rank is exactly ``upper``."""
        return self.certified is not None and self.certified == self.upper

    @property
    def value(self) -> int:
        """The generic rank: ``certified`` where computed (it equals ``upper`` when determined)."""
        return self.upper if self.certified is None else self.certified

    @property
    def evidence(self) -> str:
        """How ``value`` is known, in words for the table."""
        if self.certified is None:
            return "upper bound (not certified)"
        if self.determined:
            return f"certified (GF({self.prime}) rank = upper bound)"
        return f"lower bound only (GF({self.prime}) rank {self.certified} < upper bound {self.upper})"


def generic_upper_bound(family: str, n: int, r: int, d: int) -> int:
    """Upper bound on the odd/even rank of every tensor of ``family``; the generic rank.

    ``tt``, ``tt-shared``: the min-cut of the chain with trimmed bonds, as the
    rank laboratory computes it. ``cp``: ``min(R, n^(d/2))`` (``r`` is ``R``).
    """
    _check_family(family)
    _check_even(d, f"{family} n={n} r={r}")
    side = n ** (d // 2)
    if family == "cp":
        return min(r, side)
    rows = tuple(range(0, d, 2))
    return mincut_bound([n] * d, effective_bonds(n, r, d), rows)


def generic_rank(
    family: str,
    n: int,
    r: int,
    d: int,
    *,
    certify: bool = True,
    prime: int = DEFAULT_PRIME,
    engine: str = "blas",
    seed: int = 0,
    max_bytes: int | None = None,
) -> GenericRank:
    """The generic odd/even rank of ``family`` at ``(n, r, d)``, certified over GF(p).

    Parameters
    ----------
    family
        ``"tt"``, ``"tt-shared"`` or ``"cp"`` (``r`` is the CP rank ``R``).
    n, r, d
        Mode size, rank and (even) order.
    certify
        Compute the exact rank over GF(p) of seeded integer instances (up to
        :data:`MAX_DRAWS`, stopping as soon as one reaches the upper bound).
    prime, engine
        Modulus and engine of :func:`~tensorrnn.ranks.modp.exact_rank`.
    seed
        Base seed; instance seeds derive from it and the sizes.
    max_bytes
        Refuse matrices larger than this before building them.
    """
    upper = generic_upper_bound(family, n, r, d)
    which = THEOREM_BOUND_OF_FAMILY.get(family)
    bound = None if which is None else theorem_bound(n, r, d, shared=which == "q_rm1")
    if not certify:
        return GenericRank(family, n, r, d, upper, None, bound)
    prime = check_prime(prime, engine)
    ranks = []
    for draw in range(MAX_DRAWS):
        instance_seed = zlib.crc32(f"{seed}|trained|{family}|{n}|{r}|{d}|{draw}".encode())
        tensor = random_tensor(family, n, r, d, seed=instance_seed, modulus=prime)
        ranks.append(exact_rank(tensor.matricize("odd-even", max_bytes), prime, engine=engine))
        if ranks[-1] >= upper:
            break
    return GenericRank(family, n, r, d, upper, max(ranks), bound, prime, len(ranks))


# --------------------------------------------------------------------------- #
# Spectra of learned tensors
# --------------------------------------------------------------------------- #


@dataclass
class Spectrum:
    """Singular values of the odd/even matricization of one ``A^y``, and the decisions on them.

    ``sigma`` is in descending order (float64, length ``N``). ``rank``,
    ``gap`` and ``tolerance`` come from
    :func:`~tensorrnn.ranks.numerical.numerical_rank` on the same matrix.
    """

    label: int
    sigma: torch.Tensor
    rank: int
    gap: float
    tolerance: float

    def energy_rank(self, share: float = ENERGY) -> int:
        """Fewest singular values whose squares hold ``share`` of ``‖A‖²`` (0 for ``A = 0``)."""
        energy = self.sigma.square()
        total = float(energy.sum())
        if total == 0.0:
            return 0
        cumulative = torch.cumsum(energy, 0) / total
        return min(int((cumulative < share).sum()) + 1, len(self.sigma))

    def ratio_at(self, k: int) -> float:
        """``σ_k / σ_1`` (1-based ``k``); ``nan`` when ``k`` is out of range or ``A = 0``."""
        if not 1 <= k <= len(self.sigma) or float(self.sigma[0]) == 0.0:
            return math.nan
        return float(self.sigma[k - 1] / self.sigma[0])


def spectrum(tensor: TensorFormat, label: int = 0, *, device: str = "cpu",
             max_bytes: int | None = None) -> Spectrum:  # fmt: skip
    """Singular values, numerical rank and gap of the odd/even matricization of ``tensor``.

    The SVD runs twice on the same matrix (once inside ``numerical_rank``, which
    does not return the values, once here for them); both are float64.
    """
    if tensor.d % 2:
        raise ConfigError(f"the odd/even split needs an even order d, got d={tensor.d}")
    matrix = tensor.matricize("odd-even", max_bytes).to(torch.float64)
    measured = numerical_rank(matrix, device=device)
    sigma = torch.linalg.svdvals(matrix.to(_device(device))).cpu()
    return Spectrum(label, sigma, measured.rank, measured.gap, measured.tolerance)


def _device(device: str) -> torch.device:
    """The torch device, or a ConfigError saying which devices exist."""
    return resolve_device(device or "cpu")


# --------------------------------------------------------------------------- #
# Run folders
# --------------------------------------------------------------------------- #


@dataclass
class TrainedRun:
    """A finished run, reduced to what the rank analysis needs.

    ``label`` names the run in tables (the folder as given); ``network`` is the
    score network with the weights of the best validation epoch (``best_model``
    of ``checkpoint.pt``).
    """

    label: str
    folder: Path
    model: str
    n: int
    r: int
    d: int
    n_classes: int
    network: Any
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def side(self) -> int:
        """``N = n^(d/2)``, the side of the odd/even matricization."""
        return self.n ** (self.d // 2)

    def coefficient_tensor(self, y: int) -> TensorFormat:
        """The learned ``A^y`` (float64)."""
        return self.network.coefficient_tensor(y)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read the {what} {path} ({error}); rerun the training run") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path} holds no JSON object; rerun the training run")
    return payload


def _shape(state: dict[str, torch.Tensor], key: str, ndim: int, folder: Path) -> tuple[int, ...]:
    tensor = state.get(key)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != ndim:
        raise DataError(
            f"{folder}/checkpoint.pt: best_model has no {ndim}-way tensor {key!r}; "
            "it was not written by this version's training, rerun the run"
        )
    return tuple(tensor.shape)


def load_run(folder: str | Path, label: str | None = None, *, max_side: int = MAX_SIDE) -> TrainedRun:
    """Read a finished run folder and rebuild its score network from ``best_model``.

    Only the score network is rebuilt (its coefficient tensors do not depend on
    the feature map), so the data set is not needed: ``d``, ``n``, the rank and
    the number of classes are read from ``result.json`` and the shapes of the
    stored weights, and checked against each other.

    Raises
    ------
    ConfigError
        The folder is missing, is not a run, holds an unfinished run, or ``d`` is odd.
    SizeError
        ``N = n^(d/2)`` is above ``max_side``.
    DataError
        ``checkpoint.pt`` is missing, unreadable or does not match the config.
    """
    folder = Path(folder)
    label = str(folder) if label is None else label
    config, result, model = _read_run_files(folder)
    checkpoint = folder / "checkpoint.pt"
    state = _best_network_state(checkpoint)
    d, n, r, n_classes = _network_sizes(model, state, config, result, folder)
    _check_even(d, str(folder))
    side = n ** (d // 2)
    if side > max_side:
        raise SizeError(
            f"{folder}: N = n^(d/2) = {n}^{d // 2} = {side} is above {max_side}: its {side}×{side} "
            f"matricization is too large to analyse; use runs with n^(d/2) <= {max_side} "
            "(a smaller feature_dim or larger patches)"
        )

    from tensorrnn.models import make_network

    # A private generator: building the network must not move the global RNG.
    network = make_network(model, d, n, r, n_classes, generator=torch.Generator().manual_seed(0))
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise DataError(f"{checkpoint}: best_model does not fit a {model} network ({first})") from None
    return TrainedRun(label, folder, model, n, r, d, n_classes, network.double(), result)


def _read_run_files(folder: Path) -> tuple[dict, dict, str]:
    """``config.json``, ``result.json`` and the model of a finished run folder, checked."""
    if not folder.is_dir():
        what = "is a file, not a run folder" if folder.exists() else "does not exist"
        raise ConfigError(f"run folder {folder} {what}; give the output folder of a training run")
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{folder} holds no config.json, so it is no training run; give the output folder of a run"
        )
    if not (folder / "result.json").is_file():
        raise ConfigError(
            f"{folder} has no result.json: the run is unfinished; finish it by rerunning its "
            "train command (it resumes), or give a finished run"
        )
    config = _read_json(folder / "config.json", "run config")
    result = _read_json(folder / "result.json", "run result")
    model = config.get("model")
    if model not in _families():
        raise ConfigError(f"{folder}/config.json: model {model!r} is not one of {', '.join(_families())}")
    return config, result, model


def _best_network_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The score network's weights of ``best_model`` in ``checkpoint.pt`` (prefix removed)."""
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint} is missing; the finished run lost its weights, rerun it")
    try:
        saved = torch.load(checkpoint, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any unreadable file is a data error
        raise DataError(f"cannot load {checkpoint} ({type(error).__name__}); rerun the run") from None
    state = saved.get("best_model") if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{checkpoint} holds no best_model; rerun the run")
    return {k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")}


def _network_sizes(model: str, state: dict[str, torch.Tensor], config: dict, result: dict,
                   folder: Path) -> tuple[int, int, int, int]:  # fmt: skip
    """``d, n, rank, classes`` from the stored weights' shapes, checked against ``result.json``."""
    if model == "cp":
        d, n, r = _shape(state, "factors", 3, folder)
        n_classes = _shape(state, "weights", 2, folder)[1]
    else:
        n, r = _shape(state, "first", 2, folder)
        n_classes = _shape(state, "last", 3, folder)[2]
        middle = _shape(state, "middle", 4, folder)[0]
        d = result.get("d") if model == "tt-shared" else middle + 2
        if not isinstance(d, int) or isinstance(d, bool):
            raise DataError(f"{folder}/result.json records no order d; rerun the run")
    for key, value in (("d", d), ("n", n), ("rank", r)):
        stored = result.get(key, config.get(key) if key == "rank" else None)
        if stored is not None and stored != value:
            raise DataError(
                f"{folder}: result.json says {key}={stored} but the stored weights have {key}={value}; "
                "the folder mixes two runs, rerun it"
            )
    return d, n, r, n_classes


def _check_family(family: str) -> None:
    if family not in _families():
        raise ConfigError(f"unknown family {family!r}; choose one of {', '.join(_families())}")


def _check_even(d: int, what: str) -> None:
    if d % 2:
        raise ConfigError(
            f"{what}: d = {d} is odd and the odd/even matricization needs an even number of "
            "positions; use a run whose patches give an even d"
        )


# --------------------------------------------------------------------------- #
# The analysis and its files
# --------------------------------------------------------------------------- #


@dataclass
class RunAnalysis:
    """Everything measured for one run: the generic rank and one spectrum per class."""

    run: TrainedRun
    generic: GenericRank
    spectra: list[Spectrum]

    def rows(self) -> list[dict[str, object]]:
        """One CSV row per class (see :data:`COLUMNS`)."""
        run, g = self.run, self.generic
        accuracy = run.result.get("test_accuracy")
        out = []
        for s in self.spectra:
            flag = ""
            if s.rank > g.upper:
                flag = "float rank above the upper bound: the SVD tolerance is too small here"
            elif s.rank < g.value:
                flag = "float rank below the generic rank"
            out.append({
                "run": run.label, "model": run.model, "n": run.n, "r": run.r, "d": run.d,
                "class": s.label, "numerical_rank": s.rank, "gap": f"{s.gap:.3g}",
                "certified_generic_rank": g.value, "mincut": g.upper,
                "theorem_bound": "" if g.theorem_bound is None else g.theorem_bound,
                "N": run.side, "certificate": g.evidence, "energy_rank_99": s.energy_rank(),
                "sigma_ratio_at_generic": f"{s.ratio_at(g.value):.3g}",
                "test_accuracy": "" if accuracy is None else f"{accuracy:.4f}", "flag": flag,
            })  # fmt: skip
        return out


def analyse_run(
    run: TrainedRun,
    *,
    certify: bool = True,
    prime: int = DEFAULT_PRIME,
    engine: str = "blas",
    seed: int = 0,
    device: str = "cpu",
    max_bytes: int | None = None,
    cache: dict[tuple, GenericRank] | None = None,
) -> RunAnalysis:
    """Spectra of every class's ``A^y`` and the family's generic rank (see :func:`generic_rank`)."""
    key = (run.model, run.n, run.r, run.d)
    generic = None if cache is None else cache.get(key)
    if generic is None:
        generic = generic_rank(run.model, run.n, run.r, run.d, certify=certify, prime=prime,
                               engine=engine, seed=seed, max_bytes=max_bytes)  # fmt: skip
        if cache is not None:
            cache[key] = generic
    spectra = [
        spectrum(run.coefficient_tensor(y), y, device=device, max_bytes=max_bytes)
        for y in range(run.n_classes)
    ]
    return RunAnalysis(run, generic, spectra)


def _csv_text(rows: Sequence[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _span(values: Sequence[float], fmt: str = "{}") -> str:
    finite = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return "–"
    low, high = min(finite), max(finite)
    return fmt.format(low) if low == high else f"{fmt.format(low)}–{fmt.format(high)}"


LEGEND = """\
Each learned coefficient tensor A^y (one per class y) is matricized odd/even
(rows i_1, i_3, …; columns i_2, i_4, …), an N × N matrix with N = n^(d/2).
*float rank*: float64 SVD rank at numpy's tolerance σ_1·N·ε, with *gap*
σ_rank/σ_rank+1 (evidence, not proof; "inf" means full rank). *generic rank*:
the odd/even rank of almost every tensor of the family at these sizes, the
min-cut with trimmed bonds for tt and tt-shared (= min(n, r)·min(n, r²)^(d/2−1)),
min(R, N) for cp; "certified" means the exact rank over GF(p) of an integer
instance reaches it. *bound*: the theorem's q^(d/2) (q = min(n, r) for tt,
min(n, r − 1) for tt-shared; none for cp). *99 % rank*: fewest singular values
holding 99 % of ‖A^y‖². *σ_g/σ_1*: the g-th singular value (g = generic rank)
relative to the largest: near 1 means the tensor spreads over all g directions,
near 1e-16 means training left most of the granted rank unused.
"""


def write_table(analyses: Sequence[RunAnalysis], path: Path) -> Path:
    """Write ``trained_rank.md``: one summary line per run, then one line per class."""
    lines = [
        "# Rank of trained networks: odd/even matricization of the learned coefficient tensors",
        "",
        LEGEND,
        "| run | model | n | r | d | N | test acc. | generic rank | how known | bound "
        "| float rank | min gap | 99 % rank | σ_g/σ_1 | full rank used |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for a in analyses:
        run, g = a.run, a.generic
        ranks = [s.rank for s in a.spectra]
        used = sum(rank >= g.value for rank in ranks)
        accuracy = run.result.get("test_accuracy")
        ratios = [s.ratio_at(g.value) for s in a.spectra]
        lines.append(
            f"| {run.label} | {run.model} | {run.n} | {run.r} | {run.d} | {run.side} "
            f"| {'–' if accuracy is None else f'{100 * accuracy:.2f} %'} | {g.value} | {g.evidence} "
            f"| {'–' if g.theorem_bound is None else g.theorem_bound} | {_span(ranks)} "
            f"| {_span([s.gap for s in a.spectra], '{:.3g}')} "
            f"| {_span([s.energy_rank() for s in a.spectra])} | {_span(ratios, '{:.2g}')} "
            f"| {used} of {len(ranks)} classes |"
        )
        energy = [s.energy_rank() for s in a.spectra]
        verdicts.append(
            f"- {run.label} ({run.model}, n={run.n}, r={run.r}, d={run.d}): float rank "
            f"{_span(ranks)} of the generic {g.value} in the {len(ranks)} classes; 99 % of the "
            f"energy lies in {_span(energy)} directions ({100 * max(energy) / max(g.value, 1):.0f} % "
            f"of g at most); σ_g/σ_1 = {_span(ratios, '{:.2g}')}."
        )
    lines += ["", "## Per run", "", *verdicts, "", "## Per class", "",
              "| run | class | float rank | gap | 99 % rank | σ_g/σ_1 | flag |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for a in analyses:
        for row in a.rows():
            lines.append(
                f"| {row['run']} | {row['class']} | {row['numerical_rank']} | {row['gap']} "
                f"| {row['energy_rank_99']} | {row['sigma_ratio_at_generic']} | {row['flag'] or '–'} |"
            )
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_plot(analyses: Sequence[RunAnalysis], path: Path) -> Path:
    """Write ``trained_rank.png``: σ_i/σ_1 per class on a log scale, one panel per run.

    Dotted lines: each class's float rank; the thick dashed line: the generic
    rank; dash-dotted: the largest 99 % energy rank over the classes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    count = len(analyses)
    cols = min(count, 4 if count >= 8 else 3)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, a in zip(axes.flat, analyses, strict=False):
        run, g = a.run, a.generic
        for s in a.spectra:
            color = cmap(s.label % 10)
            top = float(s.sigma[0])
            if top > 0:
                ratio = (s.sigma / top).numpy()
                index = [i + 1 for i in range(len(ratio)) if ratio[i] > 0]
                ax.semilogy(index, ratio[ratio > 0], color=color, lw=1.0, label=f"class {s.label}")
            ax.axvline(s.rank, color=color, ls=":", lw=1.0)
        certified = "certified" if g.determined else g.evidence.split(" (")[0]
        ax.axvline(g.value, color="black", ls="--", lw=2.0, label=f"generic rank {g.value} ({certified})")
        ax.axvline(math.nan, color="grey", ls=":", lw=1.0, label="float rank per class")
        energy = max(s.energy_rank() for s in a.spectra)
        ax.axvline(energy, color="grey", ls="-.", lw=1.2, label=f"99 % energy: {energy} (max over classes)")
        accuracy = run.result.get("test_accuracy")
        acc = "" if accuracy is None else f", test {100 * accuracy:.1f} %"
        name = run.folder.resolve().name
        ax.set_title(f"{name}\n{run.model} n={run.n} r={run.r} d={run.d}{acc}", fontsize=9)
        ax.set_xlabel("index i of the singular value")
        ax.set_ylabel(r"$\sigma_i / \sigma_1$")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, min(run.side, 2 * max(g.value, max(s.rank for s in a.spectra))) + 1)
        ax.grid(True, which="major", alpha=0.3)
        if len(a.spectra) <= 4:
            ax.legend(fontsize=7)
        else:
            handles, labels = ax.get_legend_handles_labels()
            keep = [i for i, name in enumerate(labels) if not name.startswith("class")]
            ax.legend([handles[i] for i in keep], [labels[i] for i in keep], fontsize=7)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    fig.suptitle("Odd/even singular values of trained coefficient tensors", fontsize=11)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    return path


def check_output_folder(out: Path) -> None:
    """Refuse an output path that is a file, lies under one, or holds a folder where a result belongs."""
    check_lab_output(out, (CSV_FILE, TABLE_FILE, FIGURE_FILE))


def run_trained_rank(
    folders: Sequence[str | Path],
    out: str | Path,
    *,
    certify: bool = True,
    prime: int = DEFAULT_PRIME,
    engine: str = "blas",
    seed: int = 0,
    device: str = "cpu",
    max_bytes: int | None = None,
    quiet: bool = False,
) -> Path:
    """Analyse finished runs and write ``trained_rank.csv``, ``.md`` and ``.png`` into ``out``.

    Every run is checked (and all measurements made) before ``out`` is created,
    so bad input leaves nothing behind.
    """
    from tqdm import tqdm

    if not folders:
        raise ConfigError("no run folder given; name at least one finished training run")
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise ConfigError(f"seed = {seed!r} must be an integer")
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if certify:
        check_prime(prime, engine)
    _device(device)
    out = Path(out)
    check_output_folder(out)
    runs = [load_run(folder) for folder in folders]
    seen: dict[Path, str] = {}
    for run in runs:
        where = run.folder.resolve()
        if where in seen:
            raise ConfigError(f"run {run.label} is given twice (also as {seen[where]}); name each run once")
        seen[where] = run.label

    cache: dict[tuple, GenericRank] = {}
    analyses = [
        analyse_run(
            run,
            certify=certify,
            prime=prime,
            engine=engine,
            seed=seed,
            device=device,
            max_bytes=max_bytes,
            cache=cache,
        )  # fmt: skip
        for run in tqdm(runs, desc="trained rank", unit="run", disable=quiet)
    ]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the output folder {out}: {error.strerror}") from None
    rows = [row for a in analyses for row in a.rows()]
    atomic_write(out / CSV_FILE, lambda handle: handle.write(_csv_text(rows)))
    write_table(analyses, out / TABLE_FILE)
    write_plot(analyses, out / FIGURE_FILE)
    return out


__all__ = [
    "COLUMNS",
    "MAX_SIDE",
    "GenericRank",
    "RunAnalysis",
    "Spectrum",
    "TrainedRun",
    "analyse_run",
    "generic_rank",
    "generic_upper_bound",
    "load_run",
    "run_trained_rank",
    "spectrum",
]
