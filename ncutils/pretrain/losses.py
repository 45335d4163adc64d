"""Pre-training losses of Table 1 and Fig. 3: cross-entropy, MSE (Hui & Belkin 2020) and SupCon."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "Loss", "as_loss", "ce_loss", "make_loss", "mse_loss", "supcon_loss"]


def ce_loss(outputs: torch.Tensor, labels: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the logits ``outputs`` (B, K) against class indices ``labels`` (B,)."""
    return F.cross_entropy(outputs, labels, label_smoothing=label_smoothing)


def mse_loss(
    outputs: torch.Tensor, labels: torch.Tensor, *, scale: float = 1.0, weight: float = 1.0
) -> torch.Tensor:
    """Square loss on one-hot targets, with the rescaling of Hui & Belkin (2020).

    For a sample of class ``c`` with outputs ``f`` in ``K`` classes the loss is

        ``(1/K) [ weight * (f_c - scale)^2 + sum_{i != c} f_i^2 ]``,

    averaged over the batch. ``scale`` is their target magnitude ``M`` and ``weight`` their
    weight ``k`` of the true-class term; ``scale = weight = 1`` (the default) is the plain MSE
    against one-hot targets, equal to ``F.mse_loss(outputs, one_hot(labels))`` (Table 1's "MSE").
    """
    if outputs.ndim != 2:
        raise ValueError(f"outputs must be (batch, classes) logits; got shape {tuple(outputs.shape)}.")
    K = outputs.shape[1]
    onehot = F.one_hot(labels, K).to(outputs.dtype)
    per_entry = (outputs - scale * onehot) ** 2
    per_entry = per_entry * (1.0 + (weight - 1.0) * onehot)
    return per_entry.sum(1).mean() / K


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss ``L_out`` of Khosla et al. (2020, Eq. 2).

    Every view of every sample is an anchor ``i``. With ``z`` the L2-normalised embeddings,
    ``A(i)`` all other views in the batch and ``P(i)`` those of the same label (including the
    other views of the same image),

        ``L = mean_i  -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t) )``.

    Anchors without positives (possible only with one view) are left out of the mean. The
    reference implementation's extra factor ``t / 0.07`` is not applied.

    Parameters
    ----------
    features : (B, V, D) tensor
        ``V`` views of each of ``B`` samples (e.g. from :class:`ncutils.transforms.TwoViews`);
        normalised here.
    labels : (B,) integer tensor
    temperature : float
        ``t``; 0.1 as in Khosla et al. for Cifar.
    """
    if features.ndim != 3:
        raise ValueError(
            f"features must have shape (batch, views, dim); got {tuple(features.shape)}. For a "
            "single view use features[:, None]."
        )
    B, V, _ = features.shape
    if labels.shape != (B,):
        raise ValueError(f"labels must have shape ({B},) to match features; got {tuple(labels.shape)}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}.")
    z = F.normalize(features.float(), dim=-1).transpose(0, 1).reshape(V * B, -1)  # view-major
    y = labels.repeat(V)
    self_mask = torch.eye(V * B, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = positives.sum(1)
    has_pos = n_pos > 0
    if not has_pos.any():
        raise ValueError(
            "no anchor has a positive: every label occurs once and there is one view per sample. "
            "Use two views per image (TwoViews) or batches with repeated labels."
        )
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1)
    return -(pos_log_prob[has_pos] / n_pos[has_pos]).mean()


#: The pre-training losses of Section 3.1 by name (Table 1): cross-entropy, MSE and SupCon.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": ce_loss, "mse": mse_loss, "supcon": supcon_loss}


@dataclass(frozen=True)
class Loss:
    """A pre-training loss: ``loss(outputs, labels) -> scalar``, with its name and settings.

    For ``"supcon"`` the outputs are embeddings of shape (B, V, D), otherwise logits (B, K).
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.name](outputs, labels, **self.kwargs)

    @property
    def contrastive(self) -> bool:
        """Whether the loss takes embeddings of several views rather than logits."""
        return self.name == "supcon"


def make_loss(name: str, **kwargs: Any) -> Loss:
    """The loss called ``name``: ``"ce"``, ``"mse"`` or ``"supcon"`` (Table 1), with its options.

    Options are those of :func:`ce_loss` (``label_smoothing``), :func:`mse_loss` (``scale`` M,
    ``weight`` k; Hui & Belkin 2020) and :func:`supcon_loss` (``temperature``).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
    params = inspect.signature(LOSSES[name]).parameters
    allowed = [p for p in params if p not in ("outputs", "labels", "features")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"loss {name!r} has no option(s) {unknown}; its options are {allowed}.")
    return Loss(name, dict(kwargs))


def as_loss(loss: str | Loss) -> Loss:
    """``loss`` itself if it is a :class:`Loss`, else :func:`make_loss` of the name with default options."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        return make_loss(loss)
    raise TypeError(f"loss must be a name ({sorted(LOSSES)}) or make_loss(...); got {type(loss).__name__}.")

