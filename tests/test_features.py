"""Patch extraction and feature maps, against hand-built examples."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorrnn.errors import ConfigError, TensorRNNError
from tensorrnn.features import (
    FEATURE_MAPS,
    AffineReLU,
    extract_patches,
    make_feature_map,
    num_patches,
    random_shift,
)


def _image_4x4() -> torch.Tensor:
    # Pixel value = 10 * row + column, so every value names its position.
    rows = torch.arange(4).reshape(4, 1)
    cols = torch.arange(4).reshape(1, 4)
    return (10 * rows + cols).float().reshape(1, 1, 4, 4)


def test_patches_row_major_by_hand() -> None:
    got = extract_patches(_image_4x4(), 2)
    want = torch.tensor(
        [
            [0, 1, 10, 11],  # top-left patch, read row by row
            [2, 3, 12, 13],  # top-right
            [20, 21, 30, 31],  # bottom-left
            [22, 23, 32, 33],  # bottom-right
        ]
    ).float()
    assert got.shape == (1, 4, 4)
    assert torch.equal(got[0], want)


def test_patches_snake_by_hand() -> None:
    # 6 x 4 image, 2 x 2 patches: a 3 x 2 grid; the middle row runs right to left.
    img = (10 * torch.arange(6).reshape(6, 1) + torch.arange(4).reshape(1, 4)).float()
    got = extract_patches(img.reshape(1, 1, 6, 4), 2, order="snake")[0]
    first_pixels = got[:, 0].tolist()
    assert first_pixels == [0, 2, 22, 20, 40, 42]
    # Inside a patch the order stays row-major (snake reorders patches only).
    assert got[2].tolist() == [22, 23, 32, 33]


def test_pixel_sequence_and_channels() -> None:
    images = torch.randn(3, 2, 4, 6)
    seq = extract_patches(images, 1)
    assert seq.shape == (3, 24, 2)
    # k = 1: position t is pixel (t // W, t % W); its vector holds the channels.
    assert torch.equal(seq[:, 7], images[:, :, 1, 1])
    # Snake with k = 1 reverses every second pixel row.
    snake = extract_patches(images, 1, order="snake")
    assert torch.equal(snake[:, 6], images[:, :, 1, 5])
    assert torch.equal(snake[:, 11], images[:, :, 1, 0])
    assert torch.equal(snake[:, 12], images[:, :, 2, 0])


def test_patch_channel_layout() -> None:
    # s = C * k * k in (channel, row, column) order.
    images = torch.arange(2 * 2 * 2).float().reshape(1, 2, 2, 2)
    got = extract_patches(images, 2)
    assert got[0, 0].tolist() == list(range(8))


def test_three_dim_images_are_one_channel() -> None:
    images = torch.randn(2, 4, 4)
    assert torch.equal(extract_patches(images, 2), extract_patches(images.unsqueeze(1), 2))


def test_non_dividing_patch_shows_shapes() -> None:
    with pytest.raises(ConfigError, match=r"patch size 3 does not divide.*\(2, 1, 28, 28\)"):
        extract_patches(torch.zeros(2, 1, 28, 28), 3)
    with pytest.raises(ConfigError, match="unknown patch order"):
        extract_patches(torch.zeros(1, 1, 4, 4), 2, order="zigzag")
    with pytest.raises(ConfigError, match="positive integer"):
        extract_patches(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ConfigError, match="images must be"):
        extract_patches(torch.zeros(4, 4), 2)


def test_num_patches() -> None:
    assert num_patches((1, 28, 28), 4) == (49, 16)
    assert num_patches((28, 28), 1) == (784, 1)
    assert num_patches((3, 32, 32), 8) == (16, 192)


@settings(max_examples=30, deadline=None)
@given(
    c=st.integers(1, 3),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
    k=st.integers(1, 3),
    snake=st.booleans(),
)
def test_patches_are_a_permutation_of_pixels(c: int, gh: int, gw: int, k: int, snake: bool) -> None:
    images = torch.randperm(2 * c * gh * k * gw * k).float().reshape(2, c, gh * k, gw * k)
    seq = extract_patches(images, k, order="snake" if snake else "row-major")
    assert seq.shape == (2, gh * gw, c * k * k)
    assert torch.equal(seq.flatten(1).sort(dim=1).values, images.flatten(1).sort(dim=1).values)


# --------------------------------------------------------------------------- #
# Feature maps
# --------------------------------------------------------------------------- #


def test_affine_relu_constant_component() -> None:
    fmap = make_feature_map("affine-relu", 5, 4, generator=torch.Generator().manual_seed(0))
    assert isinstance(fmap, AffineReLU) and fmap.has_constant
    assert fmap.linear.out_features == 3  # n counts the constant
    x = torch.randn(2, 7, 5)
    y = fmap(x)
    assert y.shape == (2, 7, 4)
    assert torch.all(y[..., 0] == 1)
    assert torch.all(y >= 0)
    ref = torch.relu(x @ fmap.linear.weight.T + fmap.linear.bias)
    assert torch.allclose(y[..., 1:], ref)
    # A blank patch keeps a nonzero feature vector even when every bias is negative.
    with torch.no_grad():
        fmap.linear.bias.fill_(-1.0)
    assert torch.equal(fmap(torch.zeros(1, 5)), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


def test_affine_relu_without_constant() -> None:
    fmap = make_feature_map("affine-relu", 5, 4, constant=False)
    assert fmap.linear.out_features == 4 and not fmap.has_constant
    x = torch.randn(3, 5)
    assert torch.allclose(fmap(x), torch.relu(fmap.linear(x)))


def test_affine_is_linear() -> None:
    fmap = make_feature_map("affine", 3, 6)
    x = torch.randn(4, 3)
    assert torch.allclose(fmap(x), x @ fmap.linear.weight.T + fmap.linear.bias)
    assert fmap(x).lt(0).any()  # no nonlinearity


def _cos(x: float) -> float:
    return math.cos(math.pi * x / 2)


def _sin(x: float) -> float:
    return math.sin(math.pi * x / 2)


def test_cos_sin_values() -> None:
    fmap = make_feature_map("cos-sin", 2, None)
    assert fmap.out_dim == 4
    x = torch.tensor([[0.0, 1.0], [0.5, 0.25]])
    want = torch.tensor(
        [
            [1.0, 0.0, 0.0, 1.0],
            [_cos(0.5), _cos(0.25), _sin(0.5), _sin(0.25)],
        ]
    )
    assert torch.allclose(fmap(x), want, atol=1e-7)
    # Every pixel contributes a unit vector: ‖f(x)‖² = s.
    assert torch.allclose(fmap(torch.rand(10, 2)).square().sum(-1), torch.full((10,), 2.0))
    with pytest.raises(ConfigError, match="feature size is 4, not 3"):
        make_feature_map("cos-sin", 2, 3)


def test_identity_map() -> None:
    fmap = make_feature_map("identity", 3)
    x = torch.randn(2, 3)
    assert torch.equal(fmap(x), x)
    with pytest.raises(ConfigError):
        make_feature_map("identity", 3, 4)


def test_factory_errors() -> None:
    with pytest.raises(ConfigError, match="unknown feature map 'relu'"):
        make_feature_map("relu", 3, 4)
    with pytest.raises(ConfigError, match="needs a feature size"):
        make_feature_map("affine", 3)
    with pytest.raises(ConfigError, match=">= 2"):
        make_feature_map("affine-relu", 3, 1)
    assert issubclass(ConfigError, TensorRNNError)


@pytest.mark.parametrize("name", FEATURE_MAPS)
def test_every_map_is_differentiable_and_seeded(name: str) -> None:
    def build() -> torch.nn.Module:
        out = 6 if name.startswith("affine") else None
        return make_feature_map(name, 3, out, generator=torch.Generator().manual_seed(7))

    a, b = build(), build()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    x = torch.rand(4, 3, requires_grad=True)
    a(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("max_shift", [0, 1, 3])
def test_random_shift_against_a_shift_by_hand(max_shift: int) -> None:
    images = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6) + 1
    shifted = random_shift(images, max_shift, torch.Generator().manual_seed(7))
    offsets = torch.randint(-max_shift, max_shift + 1, (2, 2), generator=torch.Generator().manual_seed(7))
    for b in range(2):
        dy, dx = (int(v) for v in offsets[:, b]) if max_shift else (0, 0)
        expected = torch.zeros(3, 5, 6)
        for y in range(5):
            for x in range(6):
                if 0 <= y - dy < 5 and 0 <= x - dx < 6:
                    expected[:, y, x] = images[b, :, y - dy, x - dx]
        torch.testing.assert_close(shifted[b], expected, rtol=0, atol=0)
