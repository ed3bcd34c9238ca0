"""One training run: fit, evaluate, checkpoint, resume.

A run lives in one folder (DESIGN.md, "Results on disk"):

* ``config.json``: the full :class:`RunConfig`;
* ``metrics.jsonl``: one line per finished epoch (losses, accuracies, seconds);
* ``checkpoint.pt``: written atomically after every epoch: model, optimizer,
  learning-rate scheduler, the best model so far, the RNG states and the
  metrics history; loaded with ``torch.load(weights_only=True)``;
* ``result.json``: written last, atomically; its presence means "finished".

A run killed at any moment restarts from its last checkpoint; on CPU with
``deterministic=True`` it ends with the same numbers as an uninterrupted run,
because every source of randomness (batch order, dropout, initialisation) is
drawn from generators whose states are checkpointed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from tensorrnn.devices import resolve_device
from tensorrnn.errors import ConfigError
from tensorrnn.features import FEATURE_MAPS
from tensorrnn.networks import INITS, MODELS, SCHEDULES, build_classifier

OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("cosine", "constant")


@dataclass
class RunConfig:
    """Everything that defines one run. Field names are the CLI flags and YAML keys."""

    dataset: str = "digits"
    model: str = "tt"
    rank: int = 8
    patch: int = 2
    order: str = "row-major"
    feature_map: str = "affine-relu"
    feature_dim: int | None = 8
    constant: bool = True
    init: str = "identity"
    init_noise: float = 0.1
    schedule: str = "sequential"
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_schedule: str = "cosine"
    warmup_epochs: float = 0.5
    weight_decay: float = 0.0
    dropout: float = 0.0
    clip_grad: float | None = 1.0
    patience: int | None = None
    seed: int = 0
    device: str = "auto"
    deterministic: bool = True
    val_fraction: float = 0.1
    train_limit: int | None = None
    data_dir: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)

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
        """Raise ``ConfigError`` naming the first invalid value and the fix."""
        choices = {
            "model": MODELS, "feature_map": FEATURE_MAPS, "init": INITS, "schedule": SCHEDULES,
            "optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES, "order": ("row-major", "snake"),
        }  # fmt: skip
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"{source}: {key}={getattr(self, key)!r} is not one of {', '.join(allowed)}"
                )
        positive = ("rank", "patch", "epochs", "batch_size")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{source}: {key}={getattr(self, key)} must be at least 1")
        if self.lr <= 0:
            raise ConfigError(f"{source}: lr={self.lr} must be positive, e.g. 3e-3")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{source}: dropout={self.dropout} must lie in [0, 1)")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"{source}: patience={self.patience} must be at least 1 epoch (or empty)")
        if self.feature_dim is not None and self.feature_dim < 1:
            raise ConfigError(f"{source}: feature_dim={self.feature_dim} must be at least 1")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"{source}: device={self.device!r}; use auto, cpu or cuda")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


def _unique_tmp(path: Path) -> Path:
    """A fresh temporary name beside ``path``: two writers never share one."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    return Path(name)


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    tmp = _unique_tmp(path)
    with tmp.open("w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_torch_save(path: Path, payload: Any) -> None:
    tmp = _unique_tmp(path)
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_result(folder: Path) -> dict[str, Any] | None:
    """The ``result.json`` of a finished run, or ``None``."""
    path = Path(folder) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
    batch_size: int = 2048,
) -> tuple[float, float]:  # fmt: skip
    """Mean cross-entropy and accuracy of ``model`` on a split."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        logits = model(x)
        total_loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
    n = max(len(labels), 1)
    return total_loss / n, correct / n


class FeatureDropout(nn.Module):
    """Dropout on the feature sequence, drawn from a checkpointed generator."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return phi
        keep = torch.rand(phi.shape, generator=self.generator, device="cpu").to(phi.device) >= self.p
        return phi * keep / (1 - self.p)


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


def train_run(config: RunConfig, out: str | Path, *, quiet: bool = False) -> dict[str, Any]:
    """Train one run into ``out``; resume from its checkpoint; skip it if finished.

    Returns the content of ``result.json``.
    """
    from tensorrnn.data import load_dataset

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    if config_path.exists():
        stored = json.loads(config_path.read_text())
        if stored != config.to_json():
            changed = sorted(k for k in config.to_json() if stored.get(k) != config.to_json()[k])
            raise ConfigError(
                f"{folder} holds a run with another config (differs in {', '.join(changed)}); "
                "use another --out folder, or delete that one to start over"
            )
    finished = read_result(folder)
    if finished is not None:
        if not quiet:
            print(f"{folder}: already finished ({finished['epochs_completed']} epochs); nothing to do")
        return finished
    atomic_write_json(config_path, config.to_json())

    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    device = resolve_device(config.device)
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

    model = build_classifier(
        config.model, image_shape=tuple(data.info.image_shape), patch=config.patch,
        feature_map=config.feature_map, feature_dim=config.feature_dim, rank=config.rank,
        n_classes=data.info.n_classes, order=config.order, constant=config.constant,
        init=config.init, init_noise=config.init_noise, schedule=config.schedule, seed=config.seed,
    ).to(device)  # fmt: skip
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)
    dropout_gen = torch.Generator().manual_seed(config.seed + 2)
    dropout = FeatureDropout(config.dropout, dropout_gen)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_y) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config, steps_per_epoch))

    history: list[dict[str, Any]] = []
    best = {"val_accuracy": -1.0, "epoch": 0, "state": None}
    elapsed = 0.0
    checkpoint_path = folder / "checkpoint.pt"
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        shuffle_gen.set_state(state["shuffle_rng"])
        dropout_gen.set_state(state["dropout_rng"])
        torch.set_rng_state(state["torch_rng"])
        history = [json.loads(line) for line in state["history"]]
        best = {"val_accuracy": state["best_val_accuracy"], "epoch": state["best_epoch"],
                "state": state["best_model"]}  # fmt: skip
        elapsed = state["seconds"]
        if not quiet:
            print(f"{folder}: resuming after epoch {len(history)} of {config.epochs}")
    # The metrics file is rebuilt from the checkpoint: an epoch killed after its
    # metrics line but before its checkpoint is redone, and counted once.
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))

    stopped_early = False
    for epoch in range(len(history) + 1, config.epochs + 1):
        if config.patience is not None and epoch - best["epoch"] > config.patience:
            stopped_early = True
            break
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_y), generator=shuffle_gen)
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}", leave=False,
                   disable=quiet, unit="batch")  # fmt: skip
        for step in bar:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x, y = train_x[index].to(device), train_y[index].to(device)
            phi = dropout(model.features(x))
            logits = model.network(phi)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        train_seconds = time.perf_counter() - started
        val_loss, val_acc = evaluate(model, *data.val.tensors, device)
        elapsed += time.perf_counter() - started
        if not math.isfinite(total_loss):
            raise ConfigError(
                f"{folder}: the training loss became {total_loss} in epoch {epoch}; "
                "lower lr, keep clip_grad, or use init=identity"
            )
        record = {
            "epoch": epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen,
            "val_loss": val_loss, "val_accuracy": val_acc, "lr": scheduler.get_last_lr()[0],
            "seconds": train_seconds,
        }  # fmt: skip
        history.append(record)
        if val_acc > best["val_accuracy"]:
            snapshot = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best = {"val_accuracy": val_acc, "epoch": epoch, "state": snapshot}
        _atomic_torch_save(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "shuffle_rng": shuffle_gen.get_state(),
            "dropout_rng": dropout_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": [json.dumps(h) for h in history], "best_val_accuracy": best["val_accuracy"],
            "best_epoch": best["epoch"], "best_model": best["state"], "seconds": elapsed,
        })  # fmt: skip
        with (folder / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if not quiet:
            print(f"epoch {epoch}: train {record['train_accuracy']:.4f}  val {val_acc:.4f}  "
                  f"({train_seconds:.1f} s)")  # fmt: skip

    # Report the model of the best validation epoch (early stopping's choice).
    model.load_state_dict(best["state"])
    _, train_acc = evaluate(model, train_x, train_y, device)
    _, val_acc = evaluate(model, *data.val.tensors, device)
    _, test_acc = evaluate(model, *data.test.tensors, device)
    parts = model.num_parameters()
    result = {
        "test_accuracy": test_acc, "val_accuracy": val_acc, "train_accuracy": train_acc,
        "num_parameters": parts["total"], "num_parameters_by_part": parts,
        "epochs_completed": len(history), "best_epoch": best["epoch"],
        "stopped_early": stopped_early, "seconds": elapsed,
        "seconds_per_epoch": sum(h["seconds"] for h in history) / max(len(history), 1),
        "dataset": config.dataset, "model": config.model, "rank": config.rank,
        "test_is_official": data.info.test_is_official, "device": str(device),
    }  # fmt: skip
    atomic_write_json(folder / "result.json", result)
    if not quiet:
        print(f"{folder}: test accuracy {test_acc:.4f} (best epoch {best['epoch']})")
    return result
