"""The registry of network families: every family known once, above the networks that build them.

A :class:`Family` says how to build its score network, which of its parameters are
the recurrent (middle) cores that train at their own rate, how reports draw and
name it, and what it supports:

* ``train``: ``tensorrnn train`` / ``compare`` / ``tune`` (every family);
* ``student``: a student of the teacher labs (float64, exact scores);
* ``teacher``: a teacher tensor of the teacher labs (``tensorrnn.formats`` family);
* ``synthetic``: the labelling network of the ``synthetic-tt`` data set;
* ``trained-rank``: its learned coefficient tensor is analysed by ``tensorrnn trained-ranks``.

Adding a family touches two files: the module that defines its network (a
:class:`~tensorrnn.networks.ScoreNetwork`) and one :func:`register` call — here for
the toolkit's own families, or in the user's module for theirs (DESIGN.md, "A new
family"). ``networks`` and ``generalized`` import nothing from here, so neither
imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from tensorrnn.errors import ConfigError
from tensorrnn.features import make_feature_map, num_patches
from tensorrnn.generalized import make_generalized
from tensorrnn.networks import Classifier, CPNet, ScoreNetwork, TTNet

__all__ = [
    "Family", "ROLES", "register", "get_family", "family_names", "make_network", "build_classifier",
    "middle_parameters", "short_name", "plot_style",
]  # fmt: skip

ROLES = ("train", "student", "teacher", "synthetic", "trained-rank")


@dataclass(frozen=True)
class Family:
    """One network family.

    ``build(d, n, rank, n_classes, **kwargs)`` returns the score network
    (``kwargs``: ``init``, ``init_noise``, ``schedule``, ``eps``, ``generator``).
    ``middle``: the attribute holding the recurrent middle cores (trained at
    ``middle_lr_scale`` of the rate), or ``None`` for a family without them.
    """

    name: str
    label: str
    short: str
    build: Callable[..., ScoreNetwork]
    middle: str | None = None
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"train"}))
    color: str = "black"
    marker: str = "x"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.roles) - set(ROLES))
        if unknown:
            raise ConfigError(f"family {self.name!r}: unknown role(s) {', '.join(unknown)}; "
                              f"roles are {', '.join(ROLES)}")  # fmt: skip


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Make ``family`` known to every command; a name is registered once."""
    if family.name in _FAMILIES and _FAMILIES[family.name] != family:
        raise ConfigError(f"a family named {family.name!r} is registered already; choose another name")
    _FAMILIES[family.name] = family
    return family


def family_names(role: str | None = None) -> tuple[str, ...]:
    """The registered names (in registration order), or those with ``role``."""
    return tuple(name for name, f in _FAMILIES.items() if role is None or role in f.roles)


def get_family(name: str, role: str | None = None) -> Family:
    """The family called ``name``; a one-line error lists the choices (those with ``role``)."""
    family = _FAMILIES.get(name)
    if family is None or (role is not None and role not in family.roles):
        what = "model" if role in (None, "train") else f"{role} family"
        raise ConfigError(f"unknown {what} {name!r}; choose one of {', '.join(family_names(role))}")
    return family


def make_network(model: str, d: int, n: int, rank: int, n_classes: int, **kwargs: object) -> ScoreNetwork:
    """The score network of the family ``model`` (see :data:`family_names`)."""
    return get_family(model).build(d, n, rank, n_classes, **kwargs)


def middle_parameters(model: str, network: nn.Module) -> list[nn.Parameter]:
    """The recurrent middle cores of ``network`` (empty for a family without them)."""
    attribute = get_family(model).middle
    return [] if attribute is None else [getattr(network, attribute)]


def build_classifier(
    model: str, *, image_shape: tuple[int, ...], patch: int, feature_map: str, feature_dim: int | None,
    rank: int, n_classes: int, order: str = "row-major", constant: bool = True, init: str = "gaussian",
    init_noise: float = 0.1, schedule: str = "auto", seed: int = 0, compile_chain: bool = False,
) -> Classifier:  # fmt: skip
    """A :class:`~tensorrnn.networks.Classifier` from names and sizes.

    ``image_shape`` is ``(C, H, W)`` (or ``(H, W)``); with ``patch`` it fixes the
    sequence length ``d = (H/k)(W/k)`` and the patch size ``s = C·k·k``.
    ``feature_dim`` is the feature size ``n`` (``None`` for ``cos-sin`` and
    ``identity``, whose size follows from ``s``); ``constant`` keeps the constant
    feature of ``affine-relu``. ``seed`` seeds the initialisation of features and
    network; ``compile_chain`` runs a TT chain through its fused C++ loops.
    """
    d, s = num_patches(tuple(image_shape), patch)
    gen = torch.Generator().manual_seed(int(seed))
    fmap = make_feature_map(feature_map, s, feature_dim, constant=constant, generator=gen)
    net = make_network(model, d, fmap.out_dim, rank, n_classes, init=init, init_noise=init_noise,
                       schedule=schedule, generator=gen)  # fmt: skip
    if isinstance(net, TTNet):
        net.compile_chain = compile_chain
    return Classifier(fmap, net, patch, order)


def _tt(shared: bool) -> Callable[..., ScoreNetwork]:
    def build(d: int, n: int, rank: int, n_classes: int, **kwargs: object) -> ScoreNetwork:
        return TTNet(d, n, rank, n_classes, shared, **kwargs)  # type: ignore[arg-type]

    return build


def _generalized(model: str) -> Callable[..., ScoreNetwork]:
    def build(d: int, n: int, rank: int, n_classes: int, **kwargs: object) -> ScoreNetwork:
        return make_generalized(model, d, n, rank, n_classes, **kwargs)

    return build


_EVERY_ROLE = frozenset(ROLES)
register(Family("cp", "CP (shallow)", "CP", CPNet, None,
                frozenset({"train", "student", "synthetic", "trained-rank"}), "tab:gray", "D"))  # fmt: skip
register(Family("tt", "TT (distinct cores)", "TT", _tt(False), "middle", _EVERY_ROLE, "tab:blue", "o"))
register(Family("tt-shared", "TT (shared core)", "TT-shared", _tt(True), "middle", _EVERY_ROLE, "tab:red",
                "s"))  # fmt: skip
register(Family("relu-cp", "ReLU CP (shallow)", "ReLU-CP", _generalized("relu-cp"), None,
                frozenset({"train"}), "tab:olive", "D"))  # fmt: skip
register(Family("relu-tt", "ReLU TT (distinct cores)", "ReLU-TT", _generalized("relu-tt"), "middle",
                frozenset({"train"}), "tab:cyan", "o"))  # fmt: skip
register(Family("relu-tt-shared", "ReLU TT (shared core)", "ReLU-TT-shared", _generalized("relu-tt-shared"),
                "middle", frozenset({"train"}), "tab:pink", "s"))  # fmt: skip
# ξ(x, y) = ln(eˣ + eʸ), the paper's softplus networks (§4.1): trained, no rank analysis.
register(Family("softplus-cp", "Softplus CP (shallow)", "Softplus-CP", _generalized("softplus-cp"), None,
                frozenset({"train"}), "tab:brown", "D"))  # fmt: skip
register(Family("softplus-tt", "Softplus TT (distinct cores)", "Softplus-TT", _generalized("softplus-tt"),
                "middle", frozenset({"train"}), "tab:purple", "o"))  # fmt: skip
register(Family("softplus-tt-shared", "Softplus TT (shared core)", "Softplus-TT-shared",
                _generalized("softplus-tt-shared"), "middle", frozenset({"train"}), "tab:orange",
                "s"))  # fmt: skip


def short_name(model: str) -> str:
    """``TT-shared`` for ``tt-shared``; an unregistered name as it is (a report's own label)."""
    family = _FAMILIES.get(model)
    return model if family is None else family.short


def plot_style(model: str) -> tuple[str, str, str]:
    """(colour, marker, legend label) of a family in every figure."""
    family = _FAMILIES.get(model)
    return ("black", "x", model) if family is None else (family.color, family.marker, family.label)
