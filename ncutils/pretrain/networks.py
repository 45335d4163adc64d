"""The pre-training network ``[normalize] -> encoder -> head -> [classifier]`` (Section 3.1, Table 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ncutils import models
from ncutils.pretrain.losses import Loss, as_loss

__all__ = ["Normalize", "PretrainNet", "ProjectionHead", "projection_head"]


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

    Prepending it lets PGD (:func:`~ncutils.pretrain.adversarial.pgd_attack`) perturb and clip in
    pixel space. ``mean`` and ``std`` have one value per channel of (B, C, H, W) images, or a
    single value for any input.
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

        A contrastive ``loss`` (``"supcon"``, ``"simclr"``) gives no classifier and an embedding of ``out_dim``
        (default 128, as in Khosla et al., when there is a head); CE and MSE get a classifier on
        ``num_classes`` outputs after the head. ``mean``/``std`` add a :class:`Normalize` input layer.
        """
        d = models.feature_dim(backbone)
        loss = as_loss(loss)
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

