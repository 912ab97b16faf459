"""Binary segmentation losses of the paper, from logits (one logit channel per pixel).

All losses take ``logits`` and a float ``target`` in [0, 1] of the same shape and compute
``log p = logsigmoid(x)`` and ``log(1 - p) = logsigmoid(-x)``, never ``log(sigmoid(x))``, so
values and gradients stay finite for saturated logits (|x| of 100 or 1e4).

Weighted cross entropy, eq. (4): ``-w y log p - (1 - w)(1 - y) log(1 - p)``. The paper calls ``w``
"the empirical measure of lesions in the training dataset". Read literally (w = lesion fraction,
a few %) that would *down*-weight the rare lesion pixels; the balancing reading, and the default
here, is ``w = 1 - lesion fraction`` (:func:`balancing_weight`). ``w`` is always explicit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

_REDUCTIONS = ("mean", "sum", "none")


def _check(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> None:
    if logits.shape != target.shape:
        raise ValueError(
            f"logits and target must have one shape, got {tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _terms(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``log p``, ``log(1 - p)`` and the target as the logits' float dtype."""
    y = target.to(logits.dtype)
    return F.logsigmoid(logits), F.logsigmoid(-logits), y


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Binary cross entropy, eqs. (2)-(3): ``-y log p - (1 - y) log(1 - p)``, mean over pixels."""
    _check(logits, target, reduction)
    log_p, log_q, y = _terms(logits, target)
    return _reduce(-(y * log_p + (1 - y) * log_q), reduction)


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, w: float, reduction: str = "mean"
) -> torch.Tensor:
    """Eq. (4): ``-w y log p - (1 - w)(1 - y) log(1 - p)``; pass ``w = balancing_weight(f)``."""
    _check(logits, target, reduction)
    _check_unit("w", w)
    log_p, log_q, y = _terms(logits, target)
    return _reduce(-(w * y * log_p + (1 - w) * (1 - y) * log_q), reduction)


def balancing_weight(lesion_fraction: float) -> float:
    """The default reading of eq. (4)'s ``w``: ``1 - lesion fraction`` (rare lesions weigh more)."""
    _check_unit("lesion_fraction", lesion_fraction)
    return 1.0 - lesion_fraction


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 1.0,
    alpha: float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. (5): ``-y (1 - p)^g log p - (1 - y) p^g log(1 - p)``, g = 1 as in the paper.

    ``alpha`` (off by default, as in the paper) scales the positive term by ``alpha`` and the
    negative one by ``1 - alpha``. Powers are ``exp(g * logsigmoid)``, so g = 0 gives exactly the
    cross entropy and fractional g has finite gradients at saturated logits.
    """
    _check(logits, target, reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    log_p, log_q, y = _terms(logits, target)
    pos = y * torch.exp(gamma * log_q) * log_p  # (1 - p)^g log p
    neg = (1 - y) * torch.exp(gamma * log_p) * log_q  # p^g log(1 - p)
    if alpha is not None:
        _check_unit("alpha", alpha)
        pos, neg = alpha * pos, (1 - alpha) * neg
    return _reduce(-(pos + neg), reduction)


#: Loss names that configs may use.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "focal": focal_loss,
    "ce": cross_entropy,
    "wce": weighted_cross_entropy,
}


def get_loss(name: str, **kwargs: object) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss called ``name`` with ``kwargs`` bound.

    A trial call on one pixel checks names and values now, so a bad config fails at start-up
    rather than at the first batch.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    loss = functools.partial(LOSSES[name], **kwargs)
    try:
        loss(torch.zeros(1), torch.zeros(1))
    except (TypeError, ValueError) as e:
        raise ValueError(f"loss {name!r}: {e}") from None
    return loss
