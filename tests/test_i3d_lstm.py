"""I3D-LSTM: sizes, the LSTM over each crop's snippets, RTFM's objective, its config."""

from __future__ import annotations

import pytest
import torch

from vadkit.errors import VadkitError
from vadkit.models import create_model
from vadkit.models.i3d_lstm import I3DLSTM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("d, expected", [(1024, 6_890_241), (2048, 11_084_545)])
def test_parameter_counts(d, expected):
    assert n_params(create_model("i3d-lstm", feature_dim=d)) == expected


def test_defaults_bidirectional_rtfm_loss_and_sizes():
    m = create_model("i3d-lstm", feature_dim=8, hidden=4)
    assert m.lstm.bidirectional and m.cfg.loss == "rtfm" and m.k == 3
    assert m.classifier[1].in_features == 8  # 2 × hidden
    uni = create_model("i3d-lstm", feature_dim=8, hidden=4, bidirectional=False, layers=2)
    assert uni.classifier[1].in_features == 4 and uni.lstm.num_layers == 2
    assert n_params(uni) < n_params(create_model("i3d-lstm", feature_dim=8, hidden=4, layers=2))


def test_each_crop_is_its_own_sequence_and_the_backward_pass_sees_the_future():
    torch.manual_seed(0)
    m = create_model("i3d-lstm", feature_dim=6, hidden=5, segments=8).eval()
    x = torch.randn(1, 2, 8, 6)
    out = m(x)
    assert out["scores"].shape == (1, 8) and out["features"].shape == (1, 2, 8, 10)
    y = x.clone()
    y[0, 1] += 1.0  # change crop 1 only: crop 0's features are untouched
    again = m(y)
    assert torch.equal(again["features"][0, 0], out["features"][0, 0])
    z = x.clone()
    z[:, :, -1] += 1.0  # the last snippet changes the first snippet's (backward) features
    assert not torch.equal(m(z)["features"][0, 0, 0], out["features"][0, 0, 0])
    fwd = create_model("i3d-lstm", feature_dim=6, hidden=5, bidirectional=False).eval()
    assert torch.equal(fwd(z)["features"][0, 0, 0], fwd(x)["features"][0, 0, 0])


def test_the_objective_is_rtfms_with_the_chosen_regularisers():
    torch.manual_seed(0)
    m = create_model("i3d-lstm", feature_dim=6, hidden=5, segments=10).train()
    normal, abnormal = ({"clip": torch.randn(2, 1, 10, 6) + s} for s in (0.0, 1.0))
    total, parts = m.loss(normal, abnormal)
    assert set(parts) == {"bce", "feature_magnitude", "sparsity", "smoothness"}
    weighted = (
        parts["bce"] + 1e-4 * parts["feature_magnitude"]
        + 8e-3 * parts["sparsity"] + 8e-4 * parts["smoothness"]
    )  # fmt: skip
    assert total.item() == pytest.approx(weighted.item(), rel=1e-5)
    # the LSTM output is a tanh: magnitudes stay below √o, so RTFM's margin 100 is never met
    assert parts["feature_magnitude"].item() > (100 - 10**0.5) ** 2
    assert I3DLSTM.Config(feature_dim=6, loss="rtfm-code").loss == "rtfm"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"layers": 0}, "layers must be at least 1"), ({"lstm_dropout": 1.0}, r"in \[0, 1\)"),
     ({"bidirectional": "yes"}, "bidirectional must be true or false")],
)  # fmt: skip
def test_config_is_checked(kwargs, message):
    with pytest.raises(VadkitError, match=message):
        create_model("i3d-lstm", feature_dim=6, **kwargs)
