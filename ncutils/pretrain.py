"""Pre-training on source data and linear transfer (paper Section 3.1: Table 1, Figs. 3-5; Appendix B).

Section 3.1 pre-trains a network on the source data (Cifar-100) under several settings, measures
``NC1`` (Eq. 4) of its penultimate features on the source training data, and transfers the
frozen encoder to a downstream task (Cifar-10) by training a linear classifier on its features:

* **losses** (Table 1, Fig. 3): cross-entropy, MSE on one-hot targets (Hui & Belkin 2020, with
  their scaled variant) and supervised contrastive learning (SupCon, Khosla et al. 2020);
* **projection heads** (Table 1, Fig. 3): 0 (none), 1 (linear) or 2-3 layer MLPs with ReLU
  between the encoder and the loss; only the encoder is transferred, the head is discarded;
* **data augmentation** (Fig. 4, Appendix B): five cumulative levels, from normalisation only
  to normalisation + RandomCrop + RandomHorizontalFlip + ColorJitter + RandomGrayscale;
* **adversarial training** (Fig. 4; Madry et al. 2018): l-infinity PGD with radii
  :data:`PAPER_EPSILONS` = 1/255, 2/255, 3/255, 5/255 and 8/255 (pixel scale).

Every run uses the paper's recipe (Appendix B): 200 epochs of SGD (momentum 0.9, weight decay
1e-4) with a cosine learning rate from 1e-1 to 1e-4, here stepped once per iteration like
:func:`ncutils.probe.linear_probe`. :func:`pretrain` logs NC1 after every epoch (Fig. 3's trend)
and checkpoints after every epoch through :class:`ncutils.training.Checkpoint`; a resumed run
ends with the same weights as an uninterrupted one. :func:`transfer` is the evaluation of
Table 1 and Figs. 4, 5: frozen features, a linear probe, the downstream NC1.

Input spaces. :class:`PretrainNet` may carry its own :class:`Normalize` module. Adversarial
training needs it, because PGD perturbs and clips pixel values in ``[0, 1]``: build the training
data with ``augmentation(..., normalize=False)`` and the network with ``normalize=Normalize(mean,
std)``. ``net.encoder`` itself always takes *normalised* images, so the transferred encoder is
evaluated with the usual normalised downstream data whichever way it was pre-trained.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from ncutils import models
from ncutils.features import PENULTIMATE, layerwise_nc
from ncutils.probe import layerwise_probe
from ncutils.runtime import autocast, resolve_device
from ncutils.runtime import channels_last as runtime_channels_last
from ncutils.training import Checkpoint, cosine_schedule, seed_epoch, sgd

__all__ = [
    "AUGMENTATION_STEPS",
    "LOSSES",
    "PAPER_EPSILONS",
    "Loss",
    "Normalize",
    "PretrainNet",
    "ProjectionHead",
    "TwoViews",
    "augmentation",
    "augmentation_steps",
    "ce_loss",
    "make_loss",
    "mse_loss",
    "pgd_attack",
    "pretrain",
    "projection_head",
    "source_nc1",
    "supcon_loss",
    "transfer",
]

#: l-infinity attack radii of the adversarial pre-training in Fig. 4 (Appendix B), pixel scale [0, 1].
PAPER_EPSILONS: tuple[float, ...] = (1 / 255, 2 / 255, 3 / 255, 5 / 255, 8 / 255)

#: The augmentation added at each level of Fig. 4 (Appendix B): level ``k`` uses the first ``k``.
AUGMENTATION_STEPS: tuple[str, ...] = (
    "Normalize", "RandomCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale",
)


# =========================================================================== losses
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
        ``V`` views of each of ``B`` samples (e.g. from :class:`TwoViews`); normalised here.
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


def _as_loss(loss: str | Loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        return make_loss(loss)
    raise TypeError(f"loss must be a name ({sorted(LOSSES)}) or make_loss(...); got {type(loss).__name__}.")


# =========================================================================== networks
class ProjectionHead(nn.Sequential):
    """Projection head between the encoder and the loss (Table 1, Fig. 3).

    ``layers`` Linear layers with ReLU between them: 0 is no head (the identity), 1 a linear
    projection, 2 or more an MLP ``Linear -> ReLU -> ... -> Linear`` (Khosla et al. 2020 use 2).
    Hidden layers have ``hidden_dim`` units; the output has ``out_dim`` (both default to
    ``in_dim``).
    """

    def __init__(
        self, in_dim: int, layers: int = 2, hidden_dim: int | None = None, out_dim: int | None = None
    ):
        if not isinstance(layers, int) or layers < 0:
            raise ValueError(f"layers must be a non-negative integer (0 = no head); got {layers!r}.")
        hidden = hidden_dim or in_dim
        out = out_dim or in_dim
        if layers == 0 and out != in_dim:
            raise ValueError(
                f"a head with 0 layers is the identity: out_dim must be in_dim={in_dim}, got {out}."
            )
        dims = [in_dim] + [hidden] * (layers - 1) + [out] if layers else [in_dim]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            if i:
                mods.append(nn.ReLU(inplace=True))
            mods.append(nn.Linear(a, b))
        super().__init__(*mods)
        self.in_features, self.out_features, self.num_layers = in_dim, out, layers


def projection_head(
    in_dim: int, layers: int, hidden_dim: int | None = None, out_dim: int | None = None
) -> ProjectionHead:
    """A :class:`ProjectionHead`: 0 layers = identity, 1 = linear, 2-3 = MLP with ReLU."""
    return ProjectionHead(in_dim, layers, hidden_dim, out_dim)


class Normalize(nn.Module):
    """Per-channel standardisation ``(x - mean) / std`` as a module, for models fed pixels in [0, 1].

    Prepending it lets PGD (:func:`pgd_attack`) perturb and clip in pixel space. ``mean`` and
    ``std`` have one value per channel of (B, C, H, W) images, or a single value for any input.
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.shape != std_t.shape:
            raise ValueError(
                f"mean has {mean_t.numel()} values but std has {std_t.numel()}; give one per channel."
            )
        if (std_t <= 0).any():
            raise ValueError(f"std must be positive; got {std_t.tolist()}.")
        shape = () if mean_t.numel() == 1 else (-1, 1, 1)
        self.register_buffer("mean", mean_t.reshape(shape))
        self.register_buffer("std", std_t.reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class PretrainNet(nn.Module):
    """``[normalize] -> encoder -> head -> [classifier]``: the network pre-trained in Section 3.1.

    Parameters
    ----------
    encoder : nn.Module
        Maps (normalised) images to the penultimate feature (B, d), e.g.
        ``models.without_classifier(resnet)``. This is what is transferred.
    head : nn.Module, optional
        Projection head (:func:`projection_head`); ``None`` is no head. Discarded after pre-training.
    num_classes : int, optional
        Adds a linear classifier after the head, for CE and MSE; ``None`` for SupCon, whose
        loss takes the head output as the contrastive embedding.
    normalize : nn.Module, optional
        Applied to the input first (:class:`Normalize`), for adversarial training on pixels.
    feature_dim : int, optional
        Output dimension of ``head`` (of ``encoder`` without head); needed for the classifier
        when the head is not a :class:`ProjectionHead`.

    Attributes ``encoder``, ``head``, ``classifier`` (``None`` without classes) and ``normalize``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module | None = None,
        num_classes: int | None = None,
        *,
        normalize: nn.Module | None = None,
        feature_dim: int | None = None,
    ):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.encoder = encoder
        self.head = head if head is not None else nn.Identity()
        self.classifier: nn.Linear | None = None
        if num_classes is not None:
            dim = getattr(head, "out_features", None) or feature_dim
            if dim is None:
                raise ValueError(
                    "cannot tell the classifier's input size: pass feature_dim= (the head's output size, "
                    "or the encoder's feature size without head, e.g. ncutils.models.feature_dim(backbone))."
                )
            self.classifier = nn.Linear(dim, num_classes)

    @classmethod
    def from_backbone(
        cls,
        backbone: nn.Module,
        num_classes: int | None,
        *,
        loss: str | Loss = "ce",
        head_layers: int = 0,
        hidden_dim: int | None = None,
        out_dim: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> PretrainNet:
        """Build the pre-training network around a classification ``backbone`` (its classifier is dropped).

        ``loss="supcon"`` gives no classifier and an embedding of ``out_dim`` (default 128, as in
        Khosla et al., when there is a head); CE and MSE get a classifier on ``num_classes``
        outputs after the head. ``mean``/``std`` add a :class:`Normalize` input layer.
        """
        d = models.feature_dim(backbone)
        loss = _as_loss(loss)
        if out_dim is None and loss.contrastive and head_layers > 0:
            out_dim = 128
        if not loss.contrastive and num_classes is None:
            raise ValueError(f"loss {loss.name!r} needs num_classes for its classifier.")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std for the input normalisation, or neither.")
        head = projection_head(d, head_layers, hidden_dim, out_dim)
        norm = Normalize(mean, std) if mean is not None else None
        contrastive = loss.contrastive
        return cls(models.without_classifier(backbone), head, None if contrastive else num_classes,
                   normalize=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.encoder(self.normalize(x)))
        return z if self.classifier is None else self.classifier(z)


# =========================================================================== augmentation
def augmentation_steps(level: int) -> list[str]:
    """Names of the cumulative augmentations of ``level`` 1-5 (Fig. 4): exactly ``level`` of them."""
    if not isinstance(level, int) or not 1 <= level <= len(AUGMENTATION_STEPS):
        raise ValueError(
            f"augmentation level must be an integer 1-{len(AUGMENTATION_STEPS)} (Fig. 4); got {level!r}."
        )
    return list(AUGMENTATION_STEPS[:level])


class RandomCropPerSample(nn.Module):
    """``RandomCrop(size, padding)`` with zero padding that draws its own crop for every image.

    Accepts one image (C, H, W) or a batch (B, C, H, W): unlike ``v2.RandomCrop``, which crops a
    whole batch alike, each image of a batch gets its own offsets, so a batch can be augmented at
    once in the training loop.
    """

    def __init__(self, size: int | tuple[int, int], padding: int):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = x.ndim == 3
        x = x.as_subclass(torch.Tensor)[None] if single else x.as_subclass(torch.Tensor)
        (B, C, H, W), p, (h, w) = x.shape, self.padding, self.size
        padded = F.pad(x, (p, p, p, p))
        oy = torch.randint(0, H + 2 * p - h + 1, (B,), device=x.device)
        ox = torch.randint(0, W + 2 * p - w + 1, (B,), device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        out = padded[torch.arange(B, device=x.device)[:, None, None, None],
                     torch.arange(C, device=x.device)[None, :, None, None], rows, cols]
        return out[0] if single else out


class RandomHorizontalFlipPerSample(nn.Module):
    """Horizontal flip with probability 1/2, decided for every image of a batch separately."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.as_subclass(torch.Tensor)
        if x.ndim == 3:
            return x.flip(-1) if torch.rand(()) < 0.5 else x
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x)


class PerSample(nn.Module):
    """Apply ``transform`` to every image of a batch separately (to a single image as is)."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.as_subclass(torch.Tensor)
        if x.ndim == 3:
            return self.transform(x)
        return torch.stack([self.transform(xi) for xi in x])


def augmentation(
    level: int,
    image_size: int | tuple[int, int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    *,
    normalize: bool = True,
    padding: int = 4,
    jitter_p: float = 0.8,
) -> v2.Compose:
    """The training transform of augmentation ``level`` (Fig. 4, Appendix B) for images in [0, 1].

    Level 1 standardises each channel with ``mean``/``std``; each further level adds one step:
    2 ``RandomCrop(image_size, padding=4)``, 3 ``RandomHorizontalFlip``, 4 ``ColorJitter(0.4,
    0.4, 0.4, 0.1)`` (applied with probability ``jitter_p``, 0.8 as in SupCon/SimCLR), 5
    ``RandomGrayscale(p=0.2)``. Normalisation comes last; ``normalize=False`` leaves it out (for
    adversarial training, with :class:`Normalize` in the model). Accepts (C, H, W) float tensors
    in [0, 1], uint8 tensors or PIL images, and returns a plain float tensor. It also accepts a
    batch (B, C, H, W) and then draws the random steps for every image separately, so in-memory
    data can be augmented a batch at a time (``pretrain(..., batch_transform=...)``).
    """
    steps = augmentation_steps(level)
    ts: list[nn.Module] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if "RandomCrop" in steps:
        ts.append(RandomCropPerSample(image_size, padding))
    if "RandomHorizontalFlip" in steps:
        ts.append(RandomHorizontalFlipPerSample())
    if "ColorJitter" in steps:
        ts.append(PerSample(v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=jitter_p)))
    if "RandomGrayscale" in steps:
        ts.append(PerSample(v2.RandomGrayscale(p=0.2)))
    if normalize:
        if mean is None or std is None:
            raise ValueError("normalize=True needs the per-channel mean and std of the source data.")
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}; give one per channel.")
        ts.append(v2.Normalize(list(mean), list(std)))
    ts.append(v2.ToPureTensor())
    return v2.Compose(ts)


class TwoViews:
    """Apply ``transform`` ``n_views`` times and stack the views, for SupCon: one image gives
    (n_views, C, H, W), a batch (B, C, H, W) gives (B, n_views, C, H, W)."""

    def __init__(self, transform: Callable, n_views: int = 2):
        if n_views < 1:
            raise ValueError(f"n_views must be at least 1; got {n_views}.")
        self.transform, self.n_views = transform, n_views

    def __call__(self, x: Any) -> torch.Tensor:
        batched = isinstance(x, torch.Tensor) and x.ndim == 4
        return torch.stack([self.transform(x) for _ in range(self.n_views)], dim=1 if batched else 0)

    def __repr__(self) -> str:
        return f"TwoViews(n_views={self.n_views}, transform={self.transform!r})"


# =========================================================================== adversarial examples
@contextlib.contextmanager
def _modes_kept(module: nn.Module):
    """Restore the training flag of every submodule on exit."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for m, flag in modes:
            m.training = flag


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    random_start: bool = True,
) -> torch.Tensor:
    """l-infinity projected gradient ascent on the loss (Madry et al. 2018), as used for Fig. 4.

    Starting from ``x`` (plus uniform noise in the ball when ``random_start``), takes ``steps``
    signed-gradient steps of ``step_size`` (default ``2.5 * eps / steps``) and projects back onto
    ``{x' : ||x' - x||_inf <= eps, 0 <= x' <= 1}``. The model sees pixel-space inputs, so it must
    normalise them itself (:class:`Normalize`). It runs in eval mode (BatchNorm statistics are
    not updated by the attack) and the training flags of its modules are restored afterwards.

    Returns
    -------
    Tensor
        Detached adversarial inputs of ``x``'s shape.
    """
    if not 0 <= eps <= 1:
        raise ValueError(f"eps is an l-infinity radius on pixels in [0, 1]; got {eps}. Use e.g. 8/255.")
    if steps < 0:
        raise ValueError(f"steps must be non-negative; got {steps}.")
    x = x.detach()
    if eps == 0 or steps == 0:
        return x.clone()
    step_size = 2.5 * eps / steps if step_size is None else step_size
    loss_fn = loss_fn or ce_loss
    lo, hi = (x - eps).clamp_min(0.0), (x + eps).clamp_max(1.0)
    x_adv = x.clone()
    if random_start:
        x_adv = x_adv + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = torch.max(torch.min(x_adv, hi), lo)
    with _modes_kept(model), torch.enable_grad():
        model.eval()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = loss_fn(model(x_adv).float(), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.max(torch.min(x_adv.detach() + step_size * grad.sign(), hi), lo)
    return x_adv.detach()


# =========================================================================== features of an encoder
class _EncoderFeatures(nn.Module):
    """``pre -> encoder -> feature``: exposes the encoder output as the module ``feature``.

    Lets :mod:`ncutils.features` read the output of any encoder (whose own classifier is gone)
    by module path, through torch.fx like every other layer.
    """

    def __init__(self, encoder: nn.Module, pre: nn.Module | None = None):
        super().__init__()
        self.pre = pre if pre is not None else nn.Identity()
        self.encoder = encoder
        self.feature = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature(self.encoder(self.pre(x)))


def _feature_model(encoder: nn.Module, pre: nn.Module | None = None) -> tuple[nn.Module, str]:
    """A model and layer name under which :mod:`ncutils.features` yields the encoder's output."""
    if models._is_vit(encoder) and (pre is None or isinstance(pre, nn.Identity)):
        return encoder, PENULTIMATE  # timm's own path; its head is the identity in an encoder
    return _EncoderFeatures(encoder, pre), "feature"


def _encoder_nc(encoder: nn.Module, loader: Iterable, *, pre: nn.Module | None = None, **kwargs) -> dict:
    model, name = _feature_model(encoder, pre)
    with _modes_kept(encoder):
        out = layerwise_nc(model, loader, [name], **kwargs)[name]
    return {k: float(out[k]) for k in ("nc1", "cdnv", "nc2")}


def source_nc1(
    encoder: nn.Module,
    loader: Iterable,
    *,
    normalize: nn.Module | None = None,
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = False,
) -> float:
    """NC1 (Eq. 4) of ``encoder``'s penultimate features over ``loader`` (Table 1's source NC1).

    ``loader`` should yield the source training data without augmentation. Features are
    streamed through :class:`~ncutils.metrics.NCAccumulator` in eval mode; ``normalize`` is applied
    to the inputs first (e.g. ``net.normalize`` when the loader yields raw pixels).
    """
    stats = _encoder_nc(encoder, loader, pre=normalize, device=device, amp=amp, progress=progress,
                        desc="source NC1")
    return stats["nc1"]


def transfer(
    encoder: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable,
    *,
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    batch_size: int = 256,
    standardize: bool = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Linear transfer of a frozen encoder (Table 1, Figs. 4, 5; Appendix B).

    Extracts the penultimate features of the downstream training and test data once (eval mode,
    no augmentation expected from the loaders), trains a linear classifier on them with the
    paper's recipe (:func:`ncutils.probe.linear_probe`: SGD, cosine 1e-1 -> 1e-4, ``epochs``)
    and measures NC1 of the downstream training features (Fig. 5). The encoder's weights and
    training flags are left as they are (it is moved to ``device``).

    Returns
    -------
    dict
        ``test_accuracy`` and ``train_accuracy`` in percent, ``nc1`` of the downstream training
        features, ``feature_dim``, ``num_train`` and ``num_test``.
    """
    model, name = _feature_model(encoder)
    with _modes_kept(encoder):
        res = layerwise_probe(model, train_loader, test_loader, [name], epochs=epochs, lr=lr, min_lr=min_lr,
                              batch_size=batch_size, standardize=standardize, device=device, amp=amp,
                              seed=seed, progress=progress)[name]
    return {
        "test_accuracy": float(res["test_accuracy"]),
        "train_accuracy": float(res["train_accuracy"]),
        "nc1": float(res["nc1"]),
        "feature_dim": res["dim"],
        "num_train": res["num_train"],
        "num_test": res["num_test"],
    }


# =========================================================================== pre-training
def _num_batches(loader: Iterable) -> int:
    try:
        n = len(loader)
    except TypeError:
        raise ValueError(
            "train_loader must have a length (e.g. a DataLoader over a map-style dataset): the cosine "
            "schedule steps once per iteration over epochs * len(train_loader) iterations."
        ) from None
    if n == 0:
        raise ValueError("train_loader yields no batches; check the dataset size and drop_last.")
    return n


def _check_setup(net: nn.Module, loss: Loss, adversarial_eps: float | None, nc_loader: Any) -> None:
    if isinstance(net, PretrainNet):
        if loss.contrastive and net.classifier is not None:
            raise ValueError(
                "SupCon trains on the head's embedding: build the PretrainNet with num_classes=None."
            )
        if not loss.contrastive and net.classifier is None:
            raise ValueError(f"loss {loss.name!r} needs logits: build the PretrainNet with num_classes=K.")
    if nc_loader is not None and not isinstance(getattr(net, "encoder", None), nn.Module):
        raise ValueError(
            "nc_loader measures NC1 of net.encoder, which this network lacks; wrap it in PretrainNet."
        )
    if adversarial_eps is not None and not 0 <= adversarial_eps <= 1:
        raise ValueError(f"adversarial_eps is a radius on pixels in [0, 1]; got {adversarial_eps}. "
                         "Use one of PAPER_EPSILONS.")


def _views(x: torch.Tensor, y: torch.Tensor, contrastive: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Flatten (B, V, C, H, W) multi-view batches to (B*V, ...); return the labels used per row and V."""
    if x.ndim == 5:
        V = x.shape[1]
        return x.flatten(0, 1), (y if contrastive else y.repeat_interleave(V)), V
    return x, y, 1


def _check_pixels(x: torch.Tensor) -> None:
    lo, hi = (float(v) for v in torch.aminmax(x))
    if lo < 0 or hi > 1:
        raise ValueError(
            f"adversarial training perturbs pixels in [0, 1], but this batch spans [{lo:.3g}, {hi:.3g}]. "
            "Build the data with augmentation(..., normalize=False) and put Normalize(mean, std) in the "
            "network (PretrainNet(..., normalize=...))."
        )


def _train_step(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss, opt: torch.optim.Optimizer, sched,
    dev: torch.device, *, adversarial_eps: float | None, pgd_steps: int, pgd_step_size: float | None,
    amp: bool, channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One SGD step on a batch; returns the loss and the number of correct rows (``None`` for SupCon)."""
    B = y.shape[0]
    x, y_rows, V = _views(x, y, loss.contrastive)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if loss.contrastive:
        def batch_loss(out: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
            return loss(out.reshape(B, V, -1), lab)
    else:
        batch_loss = loss
    if adversarial_eps:
        _check_pixels(x)
        with autocast(dev, amp):
            x = pgd_attack(net, x, y_rows, adversarial_eps, pgd_steps, pgd_step_size, loss_fn=batch_loss)
    with autocast(dev, amp):
        out = net(x)
    value = batch_loss(out.float(), y_rows)
    if not torch.isfinite(value):
        raise FloatingPointError(
            f"the {loss.name} loss became {value.item()}; lower the learning rate, or run with amp=False."
        )
    opt.zero_grad(set_to_none=True)
    value.backward()
    opt.step()
    sched.step()
    correct = None if loss.contrastive else (out.detach().argmax(1) == y_rows).sum()
    return value.detach(), correct


def _train_epoch(
    net: nn.Module, loader: Iterable, loss: Loss, opt: torch.optim.Optimizer, sched, dev: torch.device, *,
    progress: bool, desc: str, batch_transform: Callable | None = None, **step_kwargs: Any,
) -> dict[str, float | None]:
    net.train()
    total = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    n_samples = n_rows = 0
    # a manual bar: wrapping the loader in tqdm.auto would call iter() on it twice per epoch
    with tqdm(total=_num_batches(loader), desc=desc, disable=not progress, leave=False) as bar:
        for batch in loader:
            x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
            if batch_transform is not None:
                x = batch_transform(x)
            value, right = _train_step(net, x, y, loss, opt, sched, dev, **step_kwargs)
            total += value.double() * y.shape[0]
            n_samples += y.shape[0]
            if right is not None:
                correct += right
                n_rows += y.shape[0] * (x.shape[1] if x.ndim == 5 else 1)
            bar.update()
    return {
        "loss": float(total) / n_samples,
        "train_accuracy": None if loss.contrastive else 100.0 * int(correct) / n_rows,
    }


def pretrain(
    net: nn.Module,
    train_loader: Iterable,
    *,
    loss: str | Loss = "ce",
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    adversarial_eps: float | None = None,
    pgd_steps: int = 10,
    pgd_step_size: float | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    nc_loader: Iterable | None = None,
    nc_every: int = 1,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    stop_after: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool = False,
    channels_last: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Pre-train ``net`` on the source data with the recipe of Section 3.1 / Appendix B.

    SGD (``momentum``, ``weight_decay``) with a cosine learning rate from ``lr`` to ``min_lr``
    stepped every iteration, for ``epochs`` epochs. Each epoch starts with
    :func:`ncutils.training.seed_epoch` and ends with a checkpoint (weights, optimiser,
    scheduler, history); when ``checkpoint`` already holds a run with the same settings, training
    resumes after its last completed epoch and ends with the weights an uninterrupted run gets.

    Parameters
    ----------
    net : PretrainNet
        Outputs logits (CE, MSE) or embeddings (SupCon). Only ``net.encoder`` is meant for transfer.
    train_loader : DataLoader
        ``(x, labels)`` with ``x`` of shape (B, C, H, W), or (B, V, C, H, W) views from
        :class:`TwoViews` (SupCon contrasts them; CE/MSE train on every view).
    loss : "ce", "mse", "supcon" or :func:`make_loss` (...)
    adversarial_eps : float, optional
        Train on PGD adversarial examples of this l-infinity radius (Fig. 4; Madry et al. 2018),
        ``pgd_steps`` steps of ``pgd_step_size``. Inputs must be pixels in [0, 1], normalised inside
        ``net`` (:class:`Normalize`).
    batch_transform : callable, optional
        Applied to every batch of images on the device before the step, e.g. :func:`augmentation`
        (or :class:`TwoViews` of it) for in-memory data, which then need no per-sample transform.
    nc_loader : DataLoader, optional
        Source training data without augmentation (same input space as ``train_loader``); NC1,
        CDNV and NC2 of the encoder's penultimate features on it are logged after every epoch
        (Fig. 3's NC1 trend).
    nc_every : int
        Measure on ``nc_loader`` only every ``nc_every`` epochs (and always after the last epoch).
    checkpoint : path or :class:`~ncutils.training.Checkpoint`, optional
    stop_after : int, optional
        Train at most this many epochs in this call (the schedule still spans ``epochs``): a
        time-boxed run that a later call resumes from the checkpoint.
    amp : bool
        bfloat16 autocast on CUDA; ignored on the CPU.
    channels_last : bool
        Channels-last memory for convolutional networks on CUDA.

    Returns
    -------
    list of dict
        One JSON-serialisable record per epoch (keys as in :func:`ncutils.finetune.fit`): ``epoch``
        (1-based), ``lr`` (at the epoch's first step), ``loss`` (training loss), ``train_accuracy``
        (percent, on the inputs trained on; ``None`` for SupCon), ``seconds`` (training time), and
        with ``nc_loader`` the source ``nc1``, ``cdnv`` and ``nc2`` and ``nc_seconds``. The whole
        history, resumed epochs included.
    """
    loss_fn = _as_loss(loss)
    _check_setup(net, loss_fn, adversarial_eps, nc_loader)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1; got {epochs}.")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after must be at least 1 epoch (None: the whole run); got {stop_after}.")
    dev = resolve_device(device)
    steps = _num_batches(train_loader)
    net.to(dev)
    use_cl = runtime_channels_last(net, dev, channels_last)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = sgd(trainable, lr, momentum=momentum, weight_decay=weight_decay)
    sched = cosine_schedule(opt, epochs * steps, min_lr)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    config = {
        "loss": loss_fn.name, "loss_kwargs": dict(loss_fn.kwargs), "epochs": epochs, "lr": lr,
        "min_lr": min_lr, "momentum": momentum, "weight_decay": weight_decay,
        "adversarial_eps": adversarial_eps, "pgd_steps": pgd_steps, "pgd_step_size": pgd_step_size,
        "seed": seed, "steps_per_epoch": steps,
    }
    history: list[dict[str, Any]] = []
    start = 0
    with _modes_kept(net):
        state = ckpt.load(model=net, optimizer=opt, scheduler=sched, map_location=dev)
        if state is not None:
            if state.get("config") != config:
                raise ValueError(
                    f"checkpoint {ckpt.path} was written by a run with settings {state.get('config')}, but "
                    f"this run uses {config}. Resume with the same settings, or delete the checkpoint "
                    "(or choose another path) to start afresh."
                )
            start, history = int(state["epoch"]), list(state.get("history", []))
        normalize = getattr(net, "normalize", None)
        last = epochs if stop_after is None else min(epochs, start + stop_after)
        bar = tqdm(range(start, last), desc=f"pretrain ({loss_fn.name})", disable=not progress,
                   initial=start, total=epochs)
        for epoch in bar:
            seed_epoch(seed, epoch, train_loader)
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": float(opt.param_groups[0]["lr"])}
            t0 = time.perf_counter()
            record.update(_train_epoch(
                net, train_loader, loss_fn, opt, sched, dev, adversarial_eps=adversarial_eps,
                pgd_steps=pgd_steps, pgd_step_size=pgd_step_size, amp=amp, channels_last=use_cl,
                batch_transform=batch_transform, progress=progress, desc=f"epoch {epoch + 1}",
            ))
            record["seconds"] = time.perf_counter() - t0
            if nc_loader is not None and ((epoch + 1) % max(1, nc_every) == 0 or epoch + 1 == epochs):
                t0 = time.perf_counter()
                record.update(_encoder_nc(net.encoder, nc_loader, pre=normalize, device=dev, amp=amp,
                                          progress=progress, desc="NC1"))
                record["nc_seconds"] = time.perf_counter() - t0
            history.append(record)
            ckpt.save(epoch=epoch + 1, model=net, optimizer=opt, scheduler=sched, history=history,
                      config=config)
            bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "train_accuracy", "nc1")
                             if isinstance(record.get(k), float) and math.isfinite(record[k])})
    return history
