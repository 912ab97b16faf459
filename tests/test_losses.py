"""Losses of the paper: hand-computed values, eq. (4)/(5) properties, stability, config names."""

import math

import pytest
import torch

from strokelens.core.losses import (
    LOSSES,
    balancing_weight,
    cross_entropy,
    focal_loss,
    get_loss,
    weighted_cross_entropy,
)

torch.set_num_threads(1)

LOGITS = [0.0, 2.0, -1.0, 0.5]
TARGET = [1.0, 0.0, 1.0, 0.0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _hand(gamma: float, alpha: float | None = None, w: float | None = None) -> list[float]:
    """Per-pixel eq. (2)/(4)/(5) from the probabilities, written out in plain math."""
    out = []
    for x, y in zip(LOGITS, TARGET, strict=True):
        p = _sigmoid(x)
        a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)
        if w is not None:
            a_pos, a_neg = w, 1.0 - w
        pos = -a_pos * y * (1 - p) ** gamma * math.log(p)
        neg = -a_neg * (1 - y) * p**gamma * math.log(1 - p)
        out.append(pos + neg)
    return out


def _t(values: list[float], dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_matches_hand_computed_values(gamma):
    got = focal_loss(_t(LOGITS), _t(TARGET), gamma=gamma, reduction="none")
    torch.testing.assert_close(got, _t(_hand(gamma)))


def test_cross_entropy_hand_values():
    # -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2); -log sigmoid(-1) = log(1 + e)
    got = cross_entropy(_t(LOGITS[:3]), _t(TARGET[:3]), reduction="none")
    want = _t([math.log(2), math.log(1 + math.e**2), math.log(1 + math.e)])
    torch.testing.assert_close(got, want)


def test_focal_default_gamma_is_one_and_no_alpha():
    logits, target = _t(LOGITS), _t(TARGET)
    torch.testing.assert_close(focal_loss(logits, target), _t(_hand(1.0)).mean())


def test_focal_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 16, 16, generator=g) * 5
    target = (torch.rand(4, 1, 16, 16, generator=g) < 0.2).float()
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=0.0), cross_entropy(logits, target), rtol=0, atol=0
    )


def test_focal_never_exceeds_cross_entropy_and_downweights_easy_pixels():
    logits = _t([4.0, -4.0, 0.1, -0.1])
    target = _t([1.0, 0.0, 0.0, 1.0])  # two easy pixels, two hard ones
    fl = focal_loss(logits, target, gamma=2.0, reduction="none")
    ce = cross_entropy(logits, target, reduction="none")
    assert torch.all(fl <= ce)
    ratio = fl / ce
    assert ratio[:2].max() < 0.001 and ratio[2:].min() > 0.2


def test_alpha_scales_positives_and_negatives():
    logits, target = _t(LOGITS), _t(TARGET)
    plain = focal_loss(logits, target, reduction="none")
    weighted = focal_loss(logits, target, alpha=0.25, reduction="none")
    pos = target == 1
    torch.testing.assert_close(weighted[pos], 0.25 * plain[pos])
    torch.testing.assert_close(weighted[~pos], 0.75 * plain[~pos])
    torch.testing.assert_close(weighted, _t(_hand(1.0, alpha=0.25)))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, target, alpha=1.5)


def test_weighted_cross_entropy_eq4():
    logits, target = _t(LOGITS), _t(TARGET)
    torch.testing.assert_close(
        weighted_cross_entropy(logits, target, 0.9, reduction="none"), _t(_hand(0.0, w=0.9))
    )
    torch.testing.assert_close(
        weighted_cross_entropy(logits, target, 0.5), 0.5 * cross_entropy(logits, target)
    )
    only_pos = weighted_cross_entropy(logits, target, 1.0, reduction="none")
    assert torch.all(only_pos[target == 0] == 0) and torch.all(only_pos[target == 1] > 0)
    with pytest.raises(ValueError, match="w"):
        weighted_cross_entropy(logits, target, -0.1)


def test_balancing_weight_is_one_minus_lesion_fraction():
    assert balancing_weight(0.03) == pytest.approx(0.97)
    assert balancing_weight(0.0) == 1.0
    with pytest.raises(ValueError, match="lesion_fraction"):
        balancing_weight(1.2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [100.0, 1e4])
@pytest.mark.parametrize(
    "loss",
    [
        cross_entropy,
        lambda x, y: weighted_cross_entropy(x, y, 0.97),
        focal_loss,
        lambda x, y: focal_loss(x, y, gamma=0.5),
        lambda x, y: focal_loss(x, y, gamma=2.0, alpha=0.25),
    ],
)
def test_saturated_logits_give_finite_values_and_gradients(loss, scale, dtype):
    logits = torch.tensor([scale, -scale, scale, -scale], dtype=dtype, requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.all(torch.isfinite(logits.grad))
    # wrong, saturated pixels cost ~|x| each and keep a gradient pushing the right way
    assert value.item() > 0.1 * scale
    assert logits.grad[2] > 0 and logits.grad[3] < 0


def test_focal_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(12, generator=g, dtype=torch.float64) * 3).requires_grad_()
    target = (torch.rand(12, generator=g, dtype=torch.float64) < 0.5).double()
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, gamma=0.5), (logits,))


def test_reduction_modes():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 1, 5, 7, generator=g, dtype=torch.float64)
    target = (torch.rand(2, 1, 5, 7, generator=g) < 0.3).double()
    for fn in (cross_entropy, focal_loss, lambda *a, **k: weighted_cross_entropy(*a, 0.8, **k)):
        none = fn(logits, target, reduction="none")
        assert none.shape == logits.shape
        torch.testing.assert_close(fn(logits, target, reduction="sum"), none.sum())
        torch.testing.assert_close(fn(logits, target, reduction="mean"), none.mean())
        torch.testing.assert_close(fn(logits, target), none.mean())
        with pytest.raises(ValueError, match="reduction"):
            fn(logits, target, reduction="max")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        focal_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))


def test_get_loss_binds_config_arguments_and_checks_them_early():
    assert set(LOSSES) == {"focal", "ce", "wce"}
    logits, target = _t(LOGITS), _t(TARGET)
    torch.testing.assert_close(
        get_loss("focal", gamma=2.0)(logits, target), focal_loss(logits, target, gamma=2.0)
    )
    torch.testing.assert_close(
        get_loss("wce", w=0.9)(logits, target), weighted_cross_entropy(logits, target, 0.9)
    )
    torch.testing.assert_close(get_loss("ce")(logits, target), cross_entropy(logits, target))
    with pytest.raises(ValueError, match="unknown loss 'dice'"):
        get_loss("dice")
    with pytest.raises(ValueError, match="wce"):
        get_loss("wce")  # w is required: no hidden default reading
    with pytest.raises(ValueError, match="gamma"):
        get_loss("focal", gamma=-1.0)
    with pytest.raises(ValueError, match="focal"):
        get_loss("focal", beta=1.0)
