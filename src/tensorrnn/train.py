"""One training run: fit, evaluate, checkpoint, resume.

A run lives in one folder, whose files :class:`~tensorrnn.runfolder.RunFolder`
owns: the config, one metrics line per epoch, the checkpoint (model, optimizer,
learning-rate scheduler, the best model so far, the RNG states and the metrics
history, written atomically after every epoch and loaded with
``torch.load(weights_only=True)``), one provenance line per session, and
``result.json``, written last.

A run killed at any moment restarts from its last checkpoint; on CPU with
``deterministic=True`` it ends with the same numbers as an uninterrupted run
(with the same torch thread count), because every source of randomness (batch
order, dropout, initialisation) is drawn from generators whose states are
checkpointed.

:func:`train_run` reads top to bottom as the steps of a run; each step is a
small function over one :class:`TrainState`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from tensorrnn import PINNED_CPU_CAPABILITY
from tensorrnn.atomic import atomic_torch_save
from tensorrnn.devices import resolve_device
from tensorrnn.errors import ConfigError
from tensorrnn.features import FEATURE_MAPS, random_shift
from tensorrnn.models import build_classifier, family_names, middle_parameters
from tensorrnn.networks import INITS, SCHEDULE_CHOICES, Classifier, TTNet, chain_in_use, resolve_schedule
from tensorrnn.runfolder import RunFolder, encode_correct

OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("cosine", "constant")
ORDERS = ("row-major", "snake")
MAX_SEED = 2**32 - 1


def _setting(default: Any, help: str, **kwargs: Any) -> Any:
    """A :class:`RunConfig` field with the help text of its CLI flag.

    ``legacy=`` is the value that reproduces runs recorded before the field existed
    (their ``config.json`` lacks it); without it, the default does.
    """
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class RunConfig:
    """Everything that defines one run.

    Field names are the YAML keys; ``tensorrnn train`` has one flag per field
    (``feature_dim`` → ``--feature-dim``), generated from this class.
    """

    dataset: str = _setting("digits", "Data set (`tensorrnn data` lists them).")
    model: str = _setting("tt", "Network family: " + ", ".join(family_names("train")) + ".")
    rank: int = _setting(8, "CP rank R or TT rank r.")
    patch: int = _setting(2, "Side k of the k×k patches; d = (H/k)(W/k).")
    order: str = _setting("row-major", "Patch order: " + " or ".join(ORDERS) + ".")
    feature_map: str = _setting("affine-relu", "Feature map: " + ", ".join(FEATURE_MAPS) + ".")
    feature_dim: int | None = _setting(8, "Feature size n (affine maps).")
    constant: bool = _setting(True, "affine-relu: keep a constant feature.")
    init: str = _setting("orthogonal", "Cores: orthogonal (default), identity or gaussian.")
    init_noise: float = _setting(0.1, "Noise level of the orthogonal and identity starts.")
    schedule: str = _setting(
        "auto", "Contraction: sequential, parallel, chunked or auto (on CUDA the tree where it fits, else "
        "sequential; sequential on CPUs).",
    )
    compile: bool = _setting(
        True, "Run the TT chain on a CPU through its fused C++ loops (built once per machine; false: the "
        "plain Python loops). Falls back to the plain loops where it cannot be built, and on CUDA.",
        legacy=False,
    )
    cuda_graph: bool = _setting(
        True, "On CUDA, replay each full batch's forward and backward of the sequential TT chain as one "
        "captured CUDA graph (the same numbers, 7-12x faster steps; false: launch kernels one by one).",
    )
    epochs: int = _setting(10, "Maximum number of epochs.")
    batch_size: int = _setting(128, "Mini-batch size.")
    optimizer: str = _setting("adam", "adam or adamw.")
    lr: float = _setting(3e-3, "Peak learning rate.")
    lr_schedule: str = _setting("cosine", "cosine or constant (after warm-up).")
    warmup_epochs: float = _setting(0.5, "Linear warm-up length in epochs.")
    weight_decay: float = _setting(0.0, "Weight decay.")
    middle_lr_scale: float | None = _setting(
        None, "Rate of the recurrent middle cores relative to lr (empty: min(1, 16/(d-2)), 1 at d <= 18).",
        legacy=1.0,
    )
    dropout: float = _setting(0.0, "Dropout on the features.")
    augment_shift: int = _setting(
        0, "Translate each training image by up to this many pixels (0: no augmentation).", legacy=0
    )
    dropout_keeps_constant: bool = _setting(
        True, "Feature dropout never drops the constant feature nor zeroes a whole feature vector (false: "
        "the old behaviour).", legacy=False,
    )
    clip_grad: float | None = _setting(1.0, "Gradient norm clipping (empty: none).")
    patience: int | None = _setting(None, "Early stopping: epochs without a better validation accuracy.")
    seed: int = _setting(0, "Seed of data split, initialisation, batches and dropout.")
    device: str = _setting("auto", "auto (cuda if available), cpu or cuda[:k].")
    deterministic: bool = _setting(True, "Deterministic torch algorithms during the run.")
    val_fraction: float = _setting(0.1, "Share of the training data held out for validation.")
    train_limit: int | None = _setting(None, "Train on this many examples only.")
    data_dir: str | None = _setting(None, "Data root (default $TENSORRNN_DATA); must hold the data set.")
    dataset_options: dict[str, Any] = _setting({}, "Data-set options, e.g. {d: 4, n: 3} for synthetic-tt.")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> RunConfig:
        """Build and validate a config; unknown keys and wrong types are one-line errors."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(known)}"
            )
        config = cls(**{k: _coerce(k, v, known[k], source) for k, v in values.items()})
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        """Raise ``ConfigError`` naming the first invalid field, its value and the allowed range."""
        choices = {
            "model": family_names("train"), "feature_map": FEATURE_MAPS, "init": INITS,
            "schedule": SCHEDULE_CHOICES, "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES,
            "order": ORDERS,
        }  # fmt: skip
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"{source}: {key}={getattr(self, key)!r} is not one of {', '.join(allowed)}"
                )
        for key, (holds, allowed) in _RANGES.items():
            value = getattr(self, key)
            if value is None and "None" in str(_FIELDS[key].type):
                continue
            if isinstance(value, float) and not math.isfinite(value) or not holds(value):
                raise ConfigError(f"{source}: {key}={value!r} is out of range; allowed: {allowed}")
        if not self.dataset:
            raise ConfigError(f"{source}: dataset is empty; name one (`tensorrnn data` lists them)")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"{source}: device={self.device!r} is not one of auto, cpu, cuda, cuda:k")
        if self.data_dir is not None and not self.data_dir.strip():
            raise ConfigError(f"{source}: data_dir is empty; give a folder or leave the key out")
        bad = sorted(str(k) for k in self.dataset_options if not isinstance(k, str))
        if bad:
            raise ConfigError(f"{source}: dataset_options keys must be names, got {', '.join(bad)}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
# field: (test, the allowed range as the error message states it)
_RANGES = {
    "rank": (lambda v: v >= 1, "an integer >= 1"),
    "patch": (lambda v: v >= 1, "an integer >= 1 that divides the image side"),
    "feature_dim": (lambda v: v >= 1, "an integer >= 1, or empty for cos-sin and identity"),
    "init_noise": (lambda v: v >= 0, "a number >= 0"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0, "a number > 0, e.g. 3e-3"),
    "warmup_epochs": (lambda v: v >= 0, "a number >= 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "middle_lr_scale": (lambda v: v > 0, "a number > 0, e.g. 0.1"),
    "dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "augment_shift": (lambda v: 0 <= v <= 8, "an integer in [0, 8] (pixels)"),
    "clip_grad": (lambda v: v > 0, "a number > 0 (a gradient norm), or empty for no clipping"),
    "patience": (lambda v: v >= 1, "an integer >= 1 (epochs), or empty"),
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}]"),
    "val_fraction": (lambda v: 0 < v < 1, "a number in (0, 1): validation picks the reported epoch"),
    "train_limit": (lambda v: v >= 1, "an integer >= 1, or empty for all training data"),
}


def _coerce(key: str, value: Any, spec: dataclasses.Field, source: str) -> Any:
    """Check a value against the field's declared type; ints are accepted for floats."""
    declared = str(spec.type)
    if value is None:
        if "None" in declared:
            return None
        raise ConfigError(f"{source}: {key} may not be empty; give a value")
    expected: tuple[type, ...]
    if declared.startswith("int"):
        expected = (int,)
    elif declared.startswith("float"):
        expected = (int, float)
    elif declared.startswith("bool"):
        expected = (bool,)
    elif declared.startswith("str"):
        expected = (str,)
    elif declared.startswith("dict"):
        expected = (dict,)
    else:  # pragma: no cover - every field is one of the above
        return value
    if isinstance(value, bool) and bool not in expected:
        raise ConfigError(f"{source}: {key}={value!r} must be {declared.split(' ')[0]}, not a boolean")
    if not isinstance(value, expected):
        raise ConfigError(
            f"{source}: {key}={value!r} has type {type(value).__name__}; expected {declared}"
        )
    return float(value) if float in expected and not isinstance(value, bool) else value


def read_result(folder: str | Path) -> dict[str, Any] | None:
    """The ``result.json`` of a finished run, or ``None``."""
    return RunFolder(folder).read_result()


# --------------------------------------------------------------------------- #
# Pieces of a run
# --------------------------------------------------------------------------- #


@torch.no_grad()
def evaluate_examples(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
    batch_size: int = 2048,
) -> tuple[float, torch.Tensor]:  # fmt: skip
    """Mean cross-entropy of ``model`` on a split and whether it classifies each example right."""
    model.eval()
    total_loss, correct = 0.0, []
    for start in range(0, len(labels), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        logits = model(x)
        total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct.append((logits.argmax(dim=1) == y).cpu())
    flags = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    return total_loss / max(len(labels), 1), flags


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
    batch_size: int = 2048,
) -> tuple[float, float]:  # fmt: skip
    """Mean cross-entropy and accuracy of ``model`` on a split."""
    loss, flags = evaluate_examples(model, images, labels, device, batch_size)
    return loss, int(flags.sum()) / max(len(labels), 1)


class FeatureDropout(nn.Module):
    """Dropout on the feature sequence, drawn from a checkpointed generator.

    ``keep_first``: never drop feature 0, the constant of ``affine-relu``. A
    dropped constant zeroes the whole feature vector of a blank patch, hence the
    hidden state; at d = 49 nearly every image has such a patch.

    ``keep_nonzero``: a vector the mask would zero entirely is left as it was.
    cos-sin features of near-binary pixels have about one nonzero entry per patch,
    and a zeroed vector zeroes the chain's state, whose gradient (about 1/eps a
    step) then overflows to NaN (d = 196: 11 of 12 TT trials of a tuning study).
    Vectors with a nonzero constant are never zeroed, so ``affine-relu`` runs draw
    the same numbers with it as without.
    """

    def __init__(self, p: float, generator: torch.Generator, keep_first: bool = False,
                 keep_nonzero: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.p = p
        self.generator = generator
        self.keep_first = keep_first
        self.keep_nonzero = keep_nonzero

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return phi
        keep = torch.rand(phi.shape, generator=self.generator, device="cpu").to(phi.device) >= self.p
        dropped = phi * keep / (1 - self.p)
        if self.keep_first:
            dropped = torch.cat([phi[..., :1], dropped[..., 1:]], dim=-1)
        if self.keep_nonzero:
            zeroed = (dropped == 0).all(dim=-1, keepdim=True) & (phi != 0).any(dim=-1, keepdim=True)
            dropped = torch.where(zeroed, phi, dropped)
        return dropped


def _lr_factor(config: RunConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = max(int(config.warmup_epochs * steps_per_epoch), 0)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.lr_schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the duration of a run, restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


@dataclass
class Splits:
    """The tensors a run trains and evaluates on."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    image_shape: tuple[int, ...]
    n_classes: int
    test_is_official: bool


@dataclass
class TrainState:
    """Everything that changes during a run; all of it is checkpointed."""

    config: RunConfig
    folder: RunFolder
    device: torch.device
    model: Classifier
    dropout: FeatureDropout
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    best_model: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0

    @property
    def checkpoint_path(self) -> Path:
        return self.folder.checkpoint_path


def with_legacy_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config with every setting added to RunConfig since, at the value it had then.

    Such a setting took its ``legacy`` value (its default where none is declared)
    in runs and studies made before it existed.
    """
    defaults = RunConfig().to_json()
    added = {k: _FIELDS[k].metadata.get("legacy", v) for k, v in defaults.items() if k not in stored}
    return {**added, **stored}


def _claim_folder(config: RunConfig, folder: RunFolder) -> tuple[dict[str, Any] | None, bool]:
    """Check that ``folder`` holds this run (or nothing); return its result if finished.

    The flag says that the folder's run trained its middle cores at the full rate
    (it predates ``middle_lr_scale``) and this config asks for the default: the same
    run only if the default is 1 at its d, which the caller checks once d is known.
    """
    full_rate_run = False
    stored = folder.read_config()
    if stored is not None:
        wanted = config.to_json()
        stored = with_legacy_settings(stored)
        # Runs started before "auto" stored the schedule it picks on a CPU; both
        # schedules compute the same function, so such a run resumes under "auto".
        if wanted.get("schedule") == "auto" and stored.get("schedule") == resolve_schedule(
            "auto", resolve_device(config.device)
        ):
            stored["schedule"] = "auto"
        if wanted.get("middle_lr_scale") is None and stored.get("middle_lr_scale") == 1.0:
            stored["middle_lr_scale"], full_rate_run = None, True
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise ConfigError(
                f"{folder.path} holds a run with another config (differs in {', '.join(changed)}); "
                "use another --out folder, or delete that one to start over"
            )
    result = folder.read_result()
    if full_rate_run and result is not None:
        _check_full_rate(config, result.get("d", 0), folder)
    return result, full_rate_run


def _check_full_rate(config: RunConfig, d: int, folder: RunFolder) -> None:
    if middle_lr_scale(config, d) != 1.0:
        raise ConfigError(
            f"{folder.path} holds a run whose middle cores trained at the full rate (from before the "
            f"default followed d); at d = {d} the default is {middle_lr_scale(config, d):.3g}: pass "
            "--middle-lr-scale 1 to continue it, or use another --out folder"
        )


def _load_splits(config: RunConfig) -> Splits:
    from tensorrnn.data import load_dataset

    data = load_dataset(
        config.dataset, data_dir=config.data_dir, val_fraction=config.val_fraction,
        seed=config.seed, quiet=True, **config.dataset_options,
    )  # fmt: skip
    train_x, train_y = data.train.tensors
    if config.train_limit is not None:
        # A fixed, class-mixed subset: the first rows of a seeded permutation.
        keep = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(config.seed))
        keep = keep[: config.train_limit]
        train_x, train_y = train_x[keep], train_y[keep]
    for name, labels in (("training", train_y), ("validation", data.val.tensors[1])):
        if len(labels) == 0:
            raise ConfigError(
                f"{config.dataset}: the {name} split is empty; raise train_limit or val_fraction"
            )
    return Splits((train_x, train_y), data.val.tensors, data.test.tensors,
                  tuple(data.info.image_shape), data.info.n_classes, data.info.test_is_official)  # fmt: skip


MIDDLE_LR_LENGTH = 16
"""The default middle-core rate is ``min(1, MIDDLE_LR_LENGTH / (d − 2))`` of ``lr``."""


def middle_lr_scale(config: RunConfig, d: int) -> float:
    """The rate of the middle cores relative to ``lr``: the config's, or the default for ``d``.

    Why the default falls as 1/d: a step of size ``lr`` in every middle core moves all
    d − 2 steps of the chain at once, so the logits move about d times as far as a
    step of the end cores moves them. Measured (one seed each, the best scale of a
    screen; BENCHMARKS.md, LONG_CHAINS.md): d = 49 best at 0.3, d = 196 at 0.1 (81 %
    validation after 2 epochs of 10,000 MNIST images, where 1.0 and 0.3 stay at
    chance), d = 784 at 0.01. ``16/(d − 2)`` gives 0.34, 0.082 and 0.020 there, and 1
    (no change) for d ≤ 18, where every earlier result of this toolkit was measured.
    """
    if config.middle_lr_scale is not None:
        return config.middle_lr_scale
    return min(1.0, MIDDLE_LR_LENGTH / max(d - 2, 1))


def _parameter_groups(model: Classifier, config: RunConfig) -> list[dict[str, Any]]:
    """One group, or two when the recurrent (middle) cores run at their own rate.

    One group whenever the scale is 1 keeps the optimizer state of runs from before
    the option loadable.
    """
    middle = middle_parameters(config.model, model.network)
    scale = middle_lr_scale(config, model.network.d)
    if scale == 1.0 or not middle:
        return [{"params": list(model.parameters())}]
    rest = [p for p in model.parameters() if all(p is not m for m in middle)]
    return [{"params": rest}, {"params": middle, "lr": config.lr * scale}]


def _new_state(config: RunConfig, folder: RunFolder, splits: Splits, device: torch.device) -> TrainState:
    model = build_classifier(
        config.model, image_shape=splits.image_shape, patch=config.patch,
        feature_map=config.feature_map, feature_dim=config.feature_dim, rank=config.rank,
        n_classes=splits.n_classes, order=config.order, constant=config.constant,
        init=config.init, init_noise=config.init_noise, schedule=config.schedule, seed=config.seed,
        compile_chain=config.compile,
    ).to(device)  # fmt: skip
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(_parameter_groups(model, config), lr=config.lr,
                                weight_decay=config.weight_decay)  # fmt: skip
    steps_per_epoch = math.ceil(len(splits.train[1]) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, steps_per_epoch))
    return TrainState(
        config=config, folder=folder, device=device, model=model,
        dropout=FeatureDropout(config.dropout, torch.Generator().manual_seed(config.seed + 2),
                               keep_first=config.dropout_keeps_constant and model.feature_map.has_constant,
                               keep_nonzero=config.dropout_keeps_constant),
        optimizer=optimizer, scheduler=scheduler,
        shuffle_gen=torch.Generator().manual_seed(config.seed + 1),
        augment_gen=torch.Generator().manual_seed(config.seed + 3),
    )  # fmt: skip


def _save_checkpoint(state: TrainState) -> None:
    atomic_torch_save(state.checkpoint_path, {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "shuffle_rng": state.shuffle_gen.get_state(),
        "dropout_rng": state.dropout.generator.get_state(),
        "augment_rng": state.augment_gen.get_state(), "torch_rng": torch.get_rng_state(),
        "history": [json.dumps(h) for h in state.history],
        "best_val_accuracy": state.best_val_accuracy, "best_epoch": state.best_epoch,
        "best_model": state.best_model, "seconds": state.seconds,
    })  # fmt: skip


def _restore_checkpoint(state: TrainState) -> None:
    saved = torch.load(state.checkpoint_path, weights_only=True, map_location="cpu")
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.shuffle_gen.set_state(saved["shuffle_rng"])
    state.dropout.generator.set_state(saved["dropout_rng"])
    if "augment_rng" in saved:  # checkpoints from before augment_shift ran without it
        state.augment_gen.set_state(saved["augment_rng"])
    torch.set_rng_state(saved["torch_rng"])
    state.history = [json.loads(line) for line in saved["history"]]
    state.best_val_accuracy, state.best_epoch = saved["best_val_accuracy"], saved["best_epoch"]
    state.best_model, state.seconds = saved["best_model"], saved["seconds"]


def _gradient_norms(model: nn.Module) -> torch.Tensor:
    """Norms of the gradients of the parameters, in ``named_parameters`` order (0 where none).

    A tensor, not floats: the epoch sums it on the device and reads it once, so the
    training step never waits for a device-to-host copy.
    """
    norms = [p.grad.detach().norm() if p.grad is not None else p.new_zeros(()) for p in model.parameters()]
    return torch.stack(norms).double()


class GraphedStep:
    """Forward, loss and backward of a full batch, captured once as a CUDA graph, then replayed.

    Why: on a GPU a long chain is a few small kernels per position, each waiting for
    the last, so the step is bound by launch latency (the sequential TT step at
    d = 784, r = 100, B = 512: 300-430 ms); the replayed graph runs the same kernels
    in 42-46 ms (``benchmarks/bench_gpu_schedules.py --graphs``, H200), and trains
    with the same numbers as eager (``benchmarks/gpu_graph_check.py``). Used for the
    sequential TT chain only: under the tree schedule the replayed step changed the
    training loss in its fourth digit within one epoch (cause not found), so the tree
    runs eagerly. The optimiser, clipping and the gradient norms stay outside, eager.

    The gradients live in the graph's memory and each replay overwrites them, so
    they must never be set to ``None`` while the graph lives: a batch of another
    size runs eagerly after :meth:`zero_grad`, which zeroes them in place.
    """

    def __init__(self, network: nn.Module, phi: torch.Tensor, labels: torch.Tensor) -> None:
        self.network = network
        self.phi, self.labels = phi.detach().clone(), labels.clone()
        self.graph: torch.cuda.CUDAGraph | None = None

    def fits(self, phi: torch.Tensor) -> bool:
        return phi.shape == self.phi.shape

    def __call__(self, phi: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and loss of the batch; the gradients are in the parameters' ``grad``."""
        self.phi.copy_(phi)
        self.labels.copy_(labels)
        if self.graph is None:
            self.graph = self._capture()
        self.graph.replay()
        return self.logits, self.loss

    def _step(self) -> None:
        self.logits = self.network(self.phi)
        self.loss = nn.functional.cross_entropy(self.logits, self.labels)
        self.loss.backward()

    def _capture(self) -> torch.cuda.CUDAGraph:
        parameters = list(self.network.parameters())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # capture wants its kernels' workspaces made beforehand
            for _ in range(3):
                for p in parameters:
                    p.grad = None
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        for p in parameters:
            p.grad = None  # the captured backward then allocates them in the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        return graph

    def zero_grad(self) -> None:
        for p in self.network.parameters():
            if p.grad is not None:
                p.grad.zero_()


def _graphed_step(state: TrainState, splits: Splits) -> GraphedStep | None:
    """The run's CUDA-graph step, or ``None``: a CPU, ``cuda_graph: false``, a network other than
    the sequential TT chain (see :class:`GraphedStep`), or a capture that torch refuses."""
    config, model = state.config, state.model
    if state.device.type != "cuda" or not config.cuda_graph or not isinstance(model.network, TTNet):
        return None
    train_x, train_y = splits.train
    size = min(config.batch_size, len(train_y))
    phi = model.features(train_x[:size].to(state.device))
    if model.network.schedule_for(phi) != "sequential":
        return None
    step = GraphedStep(model.network, phi, train_y[:size].to(state.device))
    try:
        step(step.phi, step.labels)
    except RuntimeError as error:  # an operation capture does not allow: warn, train eagerly
        warnings.warn(f"capturing the training step as a CUDA graph failed ({str(error)[:200]}); "
                      "launching its kernels one by one instead (same numbers, slower)",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
        for p in model.parameters():
            p.grad = None
        return None
    step.zero_grad()
    return step


def _train_epoch(
    state: TrainState, splits: Splits, epoch: int, quiet: bool, graphed: GraphedStep | None = None
) -> dict[str, Any]:
    """One pass over the training data; returns the epoch's metrics line (without validation)."""
    config, model = state.config, state.model
    train_x, train_y = splits.train
    steps = math.ceil(len(train_y) / config.batch_size)
    model.train()
    order = torch.randperm(len(train_y), generator=state.shuffle_gen)
    total_loss, correct, seen = 0.0, 0, 0
    names = [name for name, _ in model.named_parameters()]
    grad_sum = grad_max = None
    bar = tqdm(range(steps), desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=quiet,
               unit="batch")  # fmt: skip
    for step in bar:
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        x, y = train_x[index].to(state.device), train_y[index].to(state.device)
        x = random_shift(x, config.augment_shift, state.augment_gen)
        phi = state.dropout(model.features(x))
        if graphed is not None and graphed.fits(phi):
            logits, loss = graphed(phi, y)
        else:
            if graphed is not None:
                graphed.zero_grad()
            else:
                state.optimizer.zero_grad(set_to_none=True)
            logits = model.network(phi)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
        norms = _gradient_norms(model)
        grad_sum = norms if grad_sum is None else grad_sum + norms
        grad_max = norms if grad_max is None else torch.maximum(grad_max, norms)
        if config.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
        state.optimizer.step()
        state.scheduler.step()
        total_loss += float(loss.detach()) * len(y)
        correct += int((logits.argmax(dim=1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    if not math.isfinite(total_loss):
        raise ConfigError(
            f"{state.folder}: the training loss became {total_loss} in epoch {epoch}; "
            "lower lr, keep clip_grad, or use init=orthogonal"
        )
    return {
        "epoch": epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen,
        "lr": state.scheduler.get_last_lr()[0],
        "grad_norm_mean": {k: v / steps for k, v in sorted(zip(names, grad_sum.tolist(), strict=True))},
        "grad_norm_max": dict(sorted(zip(names, grad_max.tolist(), strict=True))),
    }  # fmt: skip


def _end_epoch(state: TrainState, record: dict[str, Any]) -> None:
    """Keep the best model, checkpoint, then append the metrics line (in this order: see resume)."""
    state.history.append(record)
    if record["val_accuracy"] > state.best_val_accuracy:
        state.best_val_accuracy, state.best_epoch = record["val_accuracy"], record["epoch"]
        state.best_model = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
    _save_checkpoint(state)
    state.folder.append_metrics(record)


def _final_result(
    state: TrainState, splits: Splits, stopped_early: bool, session: dict[str, Any], evaluate_test: bool
) -> dict[str, Any]:
    """Evaluate the model of the best validation epoch (early stopping's choice) on every split.

    Without ``evaluate_test`` (tuning) the test split is never read: its accuracy is ``None``.
    """
    model, device, config = state.model, state.device, state.config
    model.load_state_dict(state.best_model)
    _, train_acc = evaluate(model, *splits.train, device)
    _, val_acc = evaluate(model, *splits.val, device)
    test_acc, test_correct = None, None
    if evaluate_test:
        _, flags = evaluate_examples(model, *splits.test, device)
        test_acc, test_correct = int(flags.sum()) / max(len(flags), 1), encode_correct(flags.numpy())
    parts = model.num_parameters()
    history = state.history
    return {
        "test_accuracy": test_acc, "val_accuracy": val_acc, "train_accuracy": train_acc,
        "num_parameters": parts["total"], "num_parameters_by_part": parts,
        "epochs_completed": len(history), "best_epoch": state.best_epoch,
        "stopped_early": stopped_early, "seconds": state.seconds,
        "seconds_per_epoch": sum(h["seconds"] for h in history) / max(len(history), 1),
        "dataset": config.dataset, "model": config.model, "rank": config.rank,
        "patch": config.patch, "d": model.network.d, "n": model.network.n,
        "test_is_official": splits.test_is_official, "device": str(device),
        "schedule": resolve_schedule(config.schedule, device),
        "middle_lr_scale": middle_lr_scale(config, model.network.d),
        "torch_threads": torch.get_num_threads(), "chain": session["chain"],
        "provenance": session, "sessions": len(state.folder.sessions()), "test_correct": test_correct,
    }  # fmt: skip


# --------------------------------------------------------------------------- #
# A run
# --------------------------------------------------------------------------- #


def train_run(
    config: RunConfig, out: str | Path, *, quiet: bool = False, evaluate_test: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train one run into ``out``; resume from its checkpoint; skip it if finished.

    Returns the content of ``result.json``. ``evaluate_test=False`` never reads the
    test split (tuning chooses on validation only). ``on_epoch`` is called with each
    finished epoch's metrics line, after its checkpoint (a pruner may raise there to
    stop the run; it resumes from that checkpoint).
    """
    folder = RunFolder(out)
    if folder.path.exists() and not folder.path.is_dir():
        raise ConfigError(f"out={folder.path} is a file; give a folder for the run")
    finished, full_rate_run = _claim_folder(config, folder) if folder.path.is_dir() else (None, False)
    if finished is not None:
        if not quiet:
            print(f"{folder.path}: already finished ({finished['epochs_completed']} epochs); nothing to do")
        return finished
    device = resolve_device(config.device)
    capability = torch.backends.cpu.get_cpu_capability()
    if device.type == "cpu" and capability == "AVX512":
        warnings.warn(f"ATen runs its {capability} kernels, not the {PINNED_CPU_CAPABILITY} ones that "
                      "tensorrnn pins: torch ran before tensorrnn was imported. The numbers will not "
                      "re-run on an AVX2 machine; import tensorrnn first or set ATEN_CPU_CAPABILITY=avx2",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
    # Data first: a data set that cannot be loaded leaves no folder behind.
    splits = _load_splits(config)
    with folder.training(), deterministic_algorithms(config.deterministic):
        state = _new_state(config, folder, splits, device)
        if full_rate_run:
            _check_full_rate(config, state.model.network.d, folder)
        folder.write_config(config.to_json())
        if state.checkpoint_path.exists():
            _restore_checkpoint(state)
            if not quiet:
                print(f"{folder.path}: resuming after epoch {len(state.history)} of {config.epochs}")
        # The metrics file is rebuilt from the checkpoint: an epoch killed after its
        # metrics line but before its checkpoint is redone, and counted once.
        folder.rewrite_metrics(state.history)
        graphed = _graphed_step(state, splits)
        session = folder.record_session(
            device=str(device), chain=chain_in_use(state.model.network, device),
            cuda_graph=graphed is not None, resumed_after_epoch=len(state.history),
        )  # fmt: skip

        stopped_early = False
        for epoch in range(len(state.history) + 1, config.epochs + 1):
            if config.patience is not None and epoch - state.best_epoch > config.patience:
                stopped_early = True
                break
            started = time.perf_counter()
            record = _train_epoch(state, splits, epoch, quiet, graphed)
            record["seconds"] = time.perf_counter() - started
            record["val_loss"], record["val_accuracy"] = evaluate(state.model, *splits.val, device)
            state.seconds += time.perf_counter() - started
            _end_epoch(state, record)
            if not quiet:
                print(f"epoch {epoch}: train {record['train_accuracy']:.4f}  "
                      f"val {record['val_accuracy']:.4f}  ({record['seconds']:.1f} s)")  # fmt: skip
            if on_epoch is not None:
                on_epoch(record)

        result = _final_result(state, splits, stopped_early, session, evaluate_test)
    folder.write_result(result)
    if not quiet:
        test = result["test_accuracy"]
        accuracy = "not read (tuning)" if test is None else f"{test:.4f}"
        print(f"{folder.path}: test accuracy {accuracy} (best epoch {state.best_epoch})")
    return result
