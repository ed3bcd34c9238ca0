"""The registry of network families: a new family, registered in one place, trains like the others."""

from pathlib import Path

import pytest
import torch
from torch import nn

from tensorrnn.errors import ConfigError
from tensorrnn.models import (
    Family,
    family_names,
    get_family,
    make_network,
    middle_parameters,
    plot_style,
    register,
)
from tensorrnn.networks import CPNet, ScoreNetwork, TTNet
from tensorrnn.train import RunConfig, train_run


class BagOfFeatures(ScoreNetwork):
    """A toy family: the scores are a linear map of the summed features (order-blind).

    Its 'middle' is a per-position gain, declared as recurrent so that the middle rate applies.
    """

    def __init__(self, d, n, rank, n_classes, *, generator=None, **unused):
        super().__init__(d, n, n_classes, "auto", None)
        self.gain = nn.Parameter(torch.ones(d))
        self.readout = nn.Parameter(torch.randn(n, n_classes, generator=generator, dtype=torch.float64)
                                    .float() / n)  # fmt: skip

    def _contract(self, phi, schedule, normalize):
        summed = (phi * self.gain[None, :, None]).sum(dim=1)
        return summed @ self.readout, phi.new_zeros(phi.shape[0])


TOY = Family("toy-bag", "Bag of features (toy)", "Bag", BagOfFeatures, "gain", frozenset({"train"}),
             "tab:green", "^")  # fmt: skip


@pytest.fixture(scope="module")
def toy_family():
    return register(TOY)


def test_the_built_in_families_and_their_roles():
    assert family_names("train")[:6] == ("cp", "tt", "tt-shared", "relu-cp", "relu-tt", "relu-tt-shared")
    assert set(family_names("student")) == {"cp", "tt", "tt-shared"}
    assert set(family_names("teacher")) == {"tt", "tt-shared"}
    assert isinstance(make_network("cp", 4, 3, 2, 2), CPNet)
    shared = make_network("tt-shared", 5, 3, 2, 2)
    assert isinstance(shared, TTNet) and shared.shared
    # The middle cores are declared, not guessed: CP has none, the chains have theirs.
    assert middle_parameters("cp", make_network("cp", 4, 3, 2, 2)) == []
    assert middle_parameters("tt-shared", shared)[0] is shared.middle
    relu = make_network("relu-tt", 5, 3, 2, 2)
    assert middle_parameters("relu-tt", relu)[0] is relu.middle


def test_unknown_names_and_roles_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown model 'mps'; choose one of cp, tt"):
        get_family("mps")
    with pytest.raises(ConfigError, match="unknown student family 'relu-cp'"):
        get_family("relu-cp", "student")
    with pytest.raises(ConfigError, match="registered already"):
        register(Family("cp", "another CP", "CP2", CPNet))
    with pytest.raises(ConfigError, match="unknown role"):
        Family("x", "x", "x", CPNet, roles=frozenset({"flying"}))


def test_a_registered_toy_family_trains_with_its_own_middle_rate(toy_family, tmp_path: Path):
    config = RunConfig.from_mapping({
        "dataset": "digits", "model": "toy-bag", "patch": 2, "feature_dim": 8, "epochs": 6, "batch_size": 32,
        "middle_lr_scale": 0.5, "lr": 0.02, "compile": False,
    })  # fmt: skip
    result = train_run(config, tmp_path / "run", quiet=True)
    assert result["model"] == "toy-bag" and result["chain"] == "none"
    # 10 classes of digits: at least twice chance (10 %) after six epochs of an order-blind linear readout.
    assert result["val_accuracy"] > 0.2
    assert plot_style("toy-bag") == ("tab:green", "^", "Bag of features (toy)")
    from tensorrnn.train import _parameter_groups

    net = make_network("toy-bag", 4, 4, 1, 10)
    clf = type("C", (), {"network": net, "parameters": net.parameters})()
    groups = _parameter_groups(clf, config)
    assert groups[1]["params"][0] is net.gain and groups[1]["lr"] == pytest.approx(0.01)
