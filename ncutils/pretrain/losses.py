"""Pre-training losses of Table 1 and Fig. 3: cross-entropy, MSE (Hui & Belkin 2020) and SupCon; and the
label-free contrastive loss of SimCLR (Chen et al. 2020), the kind of training that sets CLIP's image encoder
apart from the other models (the TMLR version's CLIP experiment)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["CONTRASTIVE", "LOSSES", "Loss", "as_loss", "ce_loss", "make_loss", "mse_loss", "simclr_loss", "supcon_loss"]


def ce_loss(outputs: torch.Tensor, labels: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the logits ``outputs`` (B, K) against class indices ``labels`` (B,)."""
    return F.cross_entropy(outputs, labels, label_smoothing=label_smoothing)


def mse_loss(
    outputs: torch.Tensor, labels: torch.Tensor, *, scale: float = 1.0, weight: float = 1.0
) -> torch.Tensor:
    r"""Square loss on one-hot targets, with the rescaling of Hui & Belkin (2020).

    For a sample of class :math:`c` with outputs :math:`f` in :math:`K` classes the loss is

    .. math::

        \frac{1}{K} \Bigl[ k \, (f_c - M)^2 + \sum_{i \ne c} f_i^2 \Bigr],

    averaged over the batch. ``scale`` is their target magnitude :math:`M` and ``weight`` their
    weight :math:`k` of the true-class term; ``scale = weight = 1`` (the default) is the plain MSE
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
    r"""Supervised contrastive loss :math:`\mathcal{L}^\text{sup}_\text{out}` of Khosla et al. (2020, Eq. 2).

    Every view of every sample is an anchor :math:`i`. With :math:`z` the L2-normalised embeddings,
    :math:`A(i)` all other views in the batch, :math:`P(i)` those of the same label (including the
    other views of the same image) and :math:`\tau` the ``temperature``,

    .. math::

        \mathcal{L} = \operatorname{mean}_i \; \frac{-1}{\lvert P(i) \rvert} \sum_{p \in P(i)}
        \log \frac{\exp(z_i \cdot z_p / \tau)}{\sum_{a \in A(i)} \exp(z_i \cdot z_a / \tau)}.

    Anchors without positives (possible only with one view) are left out of the mean. The
    reference implementation's extra factor :math:`\tau / 0.07` is not applied.

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


def simclr_loss(features: torch.Tensor, labels: torch.Tensor | None = None, temperature: float = 0.1) -> torch.Tensor:
    """Label-free contrastive loss (SimCLR's NT-Xent; Chen et al. 2020): :func:`supcon_loss` with every image
    its own class, so the only positives of a view are the other views of the same image.

    ``labels`` are accepted and ignored (the training loop passes the batch's labels to every loss): the
    loss never sees a class, as CLIP's image encoder never sees the downstream classes.

    Parameters
    ----------
    features : (B, V, D) tensor, ``V >= 2`` views of each of ``B`` images
    temperature : float
    """
    if features.ndim != 3 or features.shape[1] < 2:
        raise ValueError(f"the label-free contrastive loss needs at least two views of each image, features of "
                         f"shape (batch, views >= 2, dim); got {tuple(features.shape)}. Use TwoViews.")
    own = torch.arange(features.shape[0], device=features.device)
    return supcon_loss(features, own, temperature)


#: The pre-training losses by name: Section 3.1's cross-entropy, MSE and SupCon (Table 1), and the label-free
#: contrastive loss (SimCLR) of the CLIP stand-in.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": ce_loss, "mse": mse_loss, "supcon": supcon_loss,
                                                  "simclr": simclr_loss}

#: The losses that take embeddings of several views rather than logits (no classifier).
CONTRASTIVE = ("supcon", "simclr")


@dataclass(frozen=True)
class Loss:
    """A pre-training loss: ``loss(outputs, labels) -> scalar``, with its name and settings.

    For the contrastive losses (``"supcon"``, ``"simclr"``) the outputs are embeddings of shape (B, V, D),
    otherwise logits (B, K).
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.name](outputs, labels, **self.kwargs)

    @property
    def contrastive(self) -> bool:
        """Whether the loss takes embeddings of several views rather than logits."""
        return self.name in CONTRASTIVE


def make_loss(name: str, **kwargs: Any) -> Loss:
    """The loss called ``name``: ``"ce"``, ``"mse"`` or ``"supcon"`` (Table 1), or the label-free ``"simclr"``,
    with its options.

    Options are those of :func:`ce_loss` (``label_smoothing``), :func:`mse_loss` (``scale`` M,
    ``weight`` k; Hui & Belkin 2020), :func:`supcon_loss` and :func:`simclr_loss` (``temperature``).
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

