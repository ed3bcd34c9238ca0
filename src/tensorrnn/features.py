"""Feature maps ``f_θ : R^s → R^n`` and patch extraction (image → sequence).

A score network reads an image as a sequence ``X = (x_1, …, x_d)`` of patches
and applies one feature map ``f_θ`` to every patch (the same ``θ`` at every
position). This module provides both halves:

* :func:`extract_patches` turns images ``(B, C, H, W)`` into ``(B, d, s)``:
  ``d = (H/k)(W/k)`` non-overlapping ``k × k`` patches of ``s = C·k·k`` values.
* The feature maps below send ``(..., s)`` to ``(..., n)``:

  ============== ===================================================== =========
  name           map                                                   ``n``
  ============== ===================================================== =========
  ``affine-relu`` ``[1, relu(A x + b)]`` (learned; constant on by default) any ≥ 2
  ``affine``     ``A x + b`` (learned, no nonlinearity)                any
  ``cos-sin``    ``[cos(πx/2), sin(πx/2)]`` per pixel, concatenated    ``2 s``
  ``identity``   ``x``                                                 ``s``
  ============== ===================================================== =========

Why a constant component: ReLU features of a blank patch can be exactly zero,
which zeroes the hidden state of every later step (and the gradient of its norm
is NaN at zero). With ``f = [1, relu(Ax + b)]`` a blank patch still carries the
feature ``e_0``, and the network can learn to pass its state through it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tensorrnn.errors import ConfigError

FEATURE_MAPS = ("affine-relu", "affine", "cos-sin", "identity")
PATCH_ORDERS = ("row-major", "snake")


# --------------------------------------------------------------------------- #
# Patch extraction
# --------------------------------------------------------------------------- #


def extract_patches(images: torch.Tensor, patch: int, order: str = "row-major") -> torch.Tensor:
    """Cut images into non-overlapping ``patch × patch`` patches, as a sequence.

    Parameters
    ----------
    images
        ``(B, C, H, W)``, or ``(B, H, W)`` read as one channel.
    patch
        Side ``k`` of the square patches; must divide ``H`` and ``W``. ``k = 1``
        gives the pixel sequence.
    order
        ``"row-major"``: patch rows top to bottom, each left to right.
        ``"snake"`` (boustrophedon): like row-major but every second patch row
        (the 2nd, 4th, …) runs right to left, so consecutive positions are
        always neighbouring patches.

    Returns
    -------
    torch.Tensor
        ``(B, d, s)`` with ``d = (H/k)(W/k)`` and ``s = C·k·k``; a patch is
        flattened in ``(channel, row, column)`` C order.
    """
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4:
        raise ConfigError(f"images must be (B, C, H, W) or (B, H, W), got shape {tuple(images.shape)}")
    if order not in PATCH_ORDERS:
        raise ConfigError(f"unknown patch order {order!r}; choose one of {', '.join(PATCH_ORDERS)}")
    if not isinstance(patch, int) or patch < 1:
        raise ConfigError(f"patch size must be a positive integer, got {patch!r}")
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise ConfigError(
            f"patch size {patch} does not divide the image: images {tuple(images.shape)} have "
            f"H×W = {h}×{w}; choose a patch size that divides both (e.g. "
            f"{', '.join(str(k) for k in _common_divisors(h, w)[:6])})"
        )
    gh, gw = h // patch, w // patch
    x = images.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    x = x.reshape(b, gh, gw, c * patch * patch)
    if order == "snake" and gh > 1:
        x = x.clone()
        x[:, 1::2] = x[:, 1::2].flip(2)
    return x.reshape(b, gh * gw, c * patch * patch)


def _common_divisors(h: int, w: int) -> list[int]:
    g = math.gcd(h, w)
    return [k for k in range(1, g + 1) if g % k == 0]


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``(B, C, H, W)`` by its own random offset, zero-filled.

    Offsets ``(dy, dx)`` are uniform in ``[-max_shift, max_shift]²``, drawn on the CPU
    from ``generator`` (so a checkpointed generator replays the same shifts on any
    device). The data-augmentation of the network laboratory: every family gets it.
    """
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    offsets = torch.randint(-max_shift, max_shift + 1, (2, b), generator=generator).to(images.device)
    padded = nn.functional.pad(images, (max_shift,) * 4)
    rows = torch.arange(h, device=images.device) + max_shift - offsets[0][:, None]  # (B, H)
    cols = torch.arange(w, device=images.device) + max_shift - offsets[1][:, None]  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    # (B, H, W, C) after advanced indexing of dims 0, 2, 3; back to (B, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def num_patches(image_shape: tuple[int, ...], patch: int) -> tuple[int, int]:
    """``(d, s)``: sequence length and patch size for images of ``(C, H, W)`` or ``(H, W)``."""
    c, h, w = (1, *image_shape) if len(image_shape) == 2 else tuple(image_shape)
    probe = torch.empty(1, c, h, w, device="meta")
    _, d, s = extract_patches(probe, patch).shape
    return d, s


# --------------------------------------------------------------------------- #
# Feature maps
# --------------------------------------------------------------------------- #


class FeatureMap(nn.Module):
    """Base class: maps ``(..., in_dim)`` to ``(..., out_dim)`` patch by patch.

    ``has_constant`` says whether feature 0 is the constant 1 (the networks'
    ``init="identity"`` works best with such a feature).
    """

    in_dim: int
    out_dim: int
    has_constant: bool = False


class AffineReLU(FeatureMap):
    """``f(x) = [1, relu(A x + b)]`` (``constant=True``) or ``relu(A x + b)``.

    Parameters
    ----------
    in_dim
        Patch size ``s``.
    out_dim
        Feature size ``n``, *including* the constant component when
        ``constant=True`` (then ``A`` has ``n - 1`` rows and ``n >= 2``).
    constant
        Keep a constant feature ``f_0 = 1``. On by default: without it a blank
        patch maps to zero features when ``b <= 0``, which zeroes the hidden state.
    generator
        Random generator for the initialisation (``nn.Linear``'s uniform rule).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        constant: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_dims("affine-relu", in_dim, out_dim, min_out=2 if constant else 1)
        self.in_dim, self.out_dim, self.has_constant = in_dim, out_dim, constant
        self.linear = nn.Linear(in_dim, out_dim - 1 if constant else out_dim)
        _init_linear(self.linear, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.linear(x))
        if not self.has_constant:
            return y
        return torch.cat([torch.ones_like(y[..., :1]), y], dim=-1)


class Affine(FeatureMap):
    """``f(x) = A x + b``, learned, no nonlinearity."""

    def __init__(self, in_dim: int, out_dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check_dims("affine", in_dim, out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.linear = nn.Linear(in_dim, out_dim)
        _init_linear(self.linear, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class CosSin(FeatureMap):
    """Per pixel ``[cos(πx/2), sin(πx/2)]`` (Stoudenmire & Schwab 2016); no parameters.

    For a patch of ``s`` pixels the per-pixel maps are *concatenated*, all cosines
    first: ``f(x) = [cos(πx_1/2), …, cos(πx_s/2), sin(πx_1/2), …, sin(πx_s/2)]``,
    so ``n = 2s`` (Stoudenmire & Schwab use single pixels, ``s = 1``, where this is
    their map exactly; their tensor-product map for ``s > 1`` would have ``2^s``
    features). Pixels are expected in ``[0, 1]``.
    """

    def __init__(self, in_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        out_dim = 2 * in_dim if out_dim is None else out_dim
        _check_dims("cos-sin", in_dim, out_dim)
        if out_dim != 2 * in_dim:
            raise ConfigError(
                f"cos-sin maps each of the {in_dim} pixels of a patch to 2 features, so its "
                f"feature size is {2 * in_dim}, not {out_dim}; set the feature size to "
                f"{2 * in_dim} or use affine-relu"
            )
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angle = x * (math.pi / 2)
        return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


class Identity(FeatureMap):
    """``f(x) = x`` (``n = s``); no parameters."""

    def __init__(self, in_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        _check_dims("identity", in_dim, out_dim)
        if out_dim != in_dim:
            raise ConfigError(
                f"the identity feature map keeps the patch size: feature size must be {in_dim} "
                f"(= patch values), not {out_dim}"
            )
        self.in_dim = self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def make_feature_map(
    name: str,
    in_dim: int,
    out_dim: int | None = None,
    *,
    constant: bool = True,
    generator: torch.Generator | None = None,
) -> FeatureMap:
    """Build a feature map by name.

    Parameters
    ----------
    name
        One of ``affine-relu``, ``affine``, ``cos-sin``, ``identity``.
    in_dim
        Patch size ``s`` (``C·k·k``).
    out_dim
        Feature size ``n``. Required for the learned maps; for ``cos-sin``
        (``2s``) and ``identity`` (``s``) it may be ``None`` and must otherwise match.
    constant
        ``affine-relu`` only: keep the constant feature ``f_0 = 1`` (default on).
    generator
        Random generator for the learned maps' initialisation.
    """
    if name in ("affine-relu", "affine") and out_dim is None:
        raise ConfigError(f"feature map {name!r} needs a feature size (out_dim)")
    if name == "affine-relu":
        return AffineReLU(in_dim, out_dim, constant=constant, generator=generator)
    if name == "affine":
        return Affine(in_dim, out_dim, generator=generator)
    if name == "cos-sin":
        return CosSin(in_dim, out_dim)
    if name == "identity":
        return Identity(in_dim, out_dim)
    raise ConfigError(f"unknown feature map {name!r}; choose one of {', '.join(FEATURE_MAPS)}")


def _check_dims(name: str, in_dim: int, out_dim: int, min_out: int = 1) -> None:
    if not isinstance(in_dim, int) or in_dim < 1:
        raise ConfigError(f"{name}: input size must be a positive integer, got {in_dim!r}")
    if not isinstance(out_dim, int) or out_dim < min_out:
        raise ConfigError(f"{name}: feature size must be an integer >= {min_out}, got {out_dim!r}")


def _init_linear(linear: nn.Linear, generator: torch.Generator | None) -> None:
    # nn.Linear's own rule (uniform in ±1/sqrt(fan_in)), but through an explicit
    # generator so that a seed alone fixes the initial network.
    bound = 1.0 / math.sqrt(linear.in_features)
    with torch.no_grad():
        for p in (linear.weight, linear.bias):
            u = torch.rand(p.shape, generator=generator, dtype=p.dtype)
            p.copy_((2 * u - 1) * bound)
