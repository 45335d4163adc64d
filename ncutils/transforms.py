"""The image transforms of ncutils, all torchvision v2: normalisation statistics, the paper's
preprocessing, the augmentation levels of Fig. 4, the few-shot transforms of Table 2, and a check
for random transforms.

* :data:`NORMALIZATION`: per-channel mean and standard deviation of every dataset the book uses.
* :func:`preprocess`: the paper's preprocessing of its downstream datasets (Appendix B): resize,
  tensor, grayscale to RGB, normalisation; optionally a random crop and flip.
* :func:`augmentation`: the five cumulative augmentation levels of the pre-training study
  (Fig. 4, Appendix B), which also augment whole batches, with random draws for every image but
  one tensor operation per step for the batch (:class:`RandomCropPerSample`,
  :class:`RandomHorizontalFlipPerSample`, :class:`ColorJitterPerSample`,
  :class:`RandomGrayscalePerSample`); :class:`TwoViews` stacks several augmented views for SupCon.
* :func:`fewshot_train`, :func:`fewshot_eval`: the transforms of Tian et al. (2020) for CIFAR-FS
  and miniImageNet (Table 2).
* :func:`is_random`: the random transforms in a transform, e.g. to decide whether the output of
  a frozen network can be cached (:func:`ncutils.finetune.fit`).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.datasets.vision import StandardTransform
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "AUGMENTATION_STEPS",
    "DETERMINISTIC",
    "FEWSHOT_IMAGES",
    "NORMALIZATION",
    "ChannelNormalize",
    "ColorJitterPerSample",
    "PerSample",
    "RandomCropPerSample",
    "RandomGrayscalePerSample",
    "RandomHorizontalFlipPerSample",
    "TwoViews",
    "augmentation",
    "augmentation_steps",
    "fewshot_eval",
    "fewshot_train",
    "is_random",
    "preprocess",
]

Stats = tuple[tuple[float, ...], tuple[float, ...]]

_CIFAR100: Stats = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))

#: Per-channel ``(mean, std)`` (RGB, or one channel for the MNISTs; [0, 1] pixel scale) by dataset:
#: the ImageNet statistics used for ImageNet-pre-trained models, those of the training sets of
#: CIFAR-10/100, MNIST and Fashion-MNIST, of CIFAR-FS (its images are CIFAR-100's, so the same
#: values) and miniImageNet (Tian et al. 2020), and OpenAI CLIP's.
NORMALIZATION: dict[str, Stats] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": _CIFAR100,
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "cifar_fs": _CIFAR100,
    "mini_imagenet": ((120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255),
                      (70.68188272 / 255, 68.27635443 / 255, 72.54505529 / 255)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}

#: The augmentation added at each level of Fig. 4 (Appendix B): level ``k`` uses the first ``k``.
AUGMENTATION_STEPS: tuple[str, ...] = (
    "Normalize", "RandomCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale",
)

#: Image side and random-crop padding of the few-shot datasets (Tian et al. 2020), in pixels.
FEWSHOT_IMAGES: dict[str, tuple[int, int]] = {"cifar_fs": (32, 4), "mini_imagenet": (84, 8)}


# --------------------------------------------------------------------------- shared pieces
def _to_float() -> list[v2.Transform]:
    """PIL image, uint8 or float tensor -> float32 image in [0, 1] (uint8 is scaled, float kept)."""
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def _check_stats(mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
    if mean is None or std is None:
        raise ValueError("normalisation needs the per-channel mean and std (see ncutils.transforms."
                         "NORMALIZATION).")
    if len(mean) != len(std):
        raise ValueError(f"mean has {len(mean)} values but std has {len(std)}; give one per channel.")


class ChannelNormalize(v2.Transform):
    """``v2.Normalize(mean, std)`` that also takes 1-channel images, with the channel averages.

    Images with as many channels as ``mean`` are normalised per channel; single-channel images
    (grayscale kept at one channel) with the averages of ``mean`` and ``std``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        _check_stats(mean, std)
        self.mean, self.std = list(mean), list(std)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        channels = inpt.shape[-3]
        if channels == len(self.mean):
            return TF.normalize(inpt, self.mean, self.std)
        if channels == 1:
            return TF.normalize(inpt, [sum(self.mean) / len(self.mean)], [sum(self.std) / len(self.std)])
        raise ValueError(f"cannot normalise an image with {channels} channels; expected 1 or "
                         f"{len(self.mean)}.")

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


# --------------------------------------------------------------------------- the paper's datasets
def preprocess(
    image_size: int = 224,
    mean: Sequence[float] | None = NORMALIZATION["imagenet"][0],
    std: Sequence[float] | None = NORMALIZATION["imagenet"][1],
    *,
    to_rgb: bool = True,
    augment: bool = False,
) -> v2.Compose:
    """The paper's preprocessing for images (PIL images, or (C, H, W) tensors).

    Resize to ``image_size`` x ``image_size`` (224 for ResNets, 384 for ViT-B/32; Appendix B);
    with ``augment``, a random crop with ``image_size // 8`` pixels of zero padding and a random
    horizontal flip; conversion to a float tensor in [0, 1]; with ``to_rgb``, grayscale images
    repeated to three channels; normalisation with ``mean``/``std`` (ImageNet's by default).

    Parameters
    ----------
    image_size:
        Side of the square output image, in pixels.
    mean, std:
        Per-channel normalisation (:data:`NORMALIZATION`); 1-channel output uses their channel
        averages. ``None`` for both leaves the images in [0, 1].
    to_rgb:
        Repeat 1-channel images to 3 channels, as ImageNet-pre-trained models expect.
    augment:
        Add the training augmentations (random crop with padding, horizontal flip).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}.")
    steps: list[Callable] = [v2.Resize((image_size, image_size), antialias=True)]
    if augment:
        steps += [v2.RandomCrop(image_size, padding=max(1, image_size // 8)), v2.RandomHorizontalFlip()]
    steps += _to_float()
    if to_rgb:
        steps.append(v2.RGB())
    if mean is not None or std is not None:
        steps.append(ChannelNormalize(mean, std))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)


# --------------------------------------------------------------------------- augmentation (Fig. 4)
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


# --------------------------------------------------------------------------- batched colour steps
_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_HUE_OFFSETS = (5.0, 3.0, 1.0)  # closed form of HSV -> RGB (red, green, blue)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma, as torchvision's ``rgb_to_grayscale`` computes it."""
    r, g, b = x.unbind(1)
    return r.mul(_LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_hue`` for every image of a (B, 3, H, W) batch in [0, 1], image ``i``'s hue
    shifted by ``shift[i]`` turns.

    The hue is computed with torchvision's formulas; the way back uses the closed form of its HSV -> RGB
    map, channel ``c`` = ``V - (V - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n_c + 6 H) mod 6``
    and ``n = (5, 3, 1)``: the same values up to float rounding (~1e-6), in half the kernels.
    """
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    spread = maxc - minc
    rc, gc, bc = ((maxc[:, None] - x) / torch.where(spread == 0, 1.0, spread)[:, None]).unbind(1)
    sector = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))  # 6 H, in [-1, 5]
    hue = (sector / 6.0 + shift[:, None, None]).remainder_(1.0)
    k = (torch.tensor(_HUE_OFFSETS, dtype=x.dtype, device=x.device)[None, :, None, None]
         + 6.0 * hue[:, None]).remainder_(6.0)
    return maxc[:, None] - spread[:, None] * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def _colour_op(k: int, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """ColorJitter's operation ``k`` (0 brightness, 1 contrast, 2 saturation, 3 hue) on a batch of float
    images in [0, 1], with factor ``f[i]`` for image ``i``: torchvision's ``adjust_*`` image by image."""
    f = f.to(x.dtype)
    if k == 3:
        return x if x.shape[1] == 1 else _shift_hue(x, f)  # 1-channel images keep their values (like PIL)
    f = f[:, None, None, None]
    if k == 0:
        return x.mul(f).clamp_(0, 1)
    if k == 1:
        gray = _gray(x) if x.shape[1] == 3 else x
        return x.mul(f).add_(gray.mean((1, 2, 3), keepdim=True) * (1 - f)).clamp_(0, 1)
    if x.shape[1] == 1:
        return x
    return x.mul(f).add_(_gray(x) * (1 - f)).clamp_(0, 1)


def _color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor | None = None,
                  ops: Sequence[int] = (0, 1, 2, 3)) -> torch.Tensor:
    """``ColorJitter`` with given parameters for every image of a (B, C, H, W) float batch in [0, 1].

    Image ``i`` (where ``apply[i]``, default all) goes through the operations ``order[i]`` (a permutation
    of 0-3: brightness, contrast, saturation, hue) with the factors ``factors[i]`` (B, 4), as torchvision's
    ``adjust_brightness`` ... ``adjust_hue`` applied to it alone; operations not in ``ops`` are skipped
    (a range of zero in ``ColorJitter``). For each of the four slots of the order, brightness, contrast
    and saturation are one blend ``clamp(a x + (1 - a) m)`` of the whole batch (``m`` = 0, the mean gray
    level or the gray image, ``a`` = 1 for images whose operation in that slot is another one), and the
    hue is shifted on the images whose operation it is.
    """
    idx = None if apply is None else apply.nonzero().flatten()
    out, f, o = (x, factors, order) if idx is None else (x[idx], factors[idx], order[idx])
    if len(out) == 0:
        return x.clone()
    rgb = out.shape[1] == 3
    blend = torch.tensor([k in ops and (rgb or k < 2) for k in range(3)] + [False], device=x.device)
    f = f.to(x.dtype)
    for slot in range(o.shape[1]):
        k = o[:, slot]
        a = torch.where(blend[k], f.gather(1, k[:, None])[:, 0], 1.0)[:, None, None, None]
        gray = _gray(out) if rgb else out
        kk = k[:, None, None, None]
        m = torch.where(kk == 2, gray, torch.where(kk == 1, gray.mean((1, 2, 3), keepdim=True), 0.0))
        new = out.mul(a).add_(m * (1 - a)).clamp_(0, 1)
        if rgb and 3 in ops:
            hue = (k == 3).nonzero().flatten()
            if len(hue):
                new[hue] = _shift_hue(out[hue], f[hue, 3])
        out = new
    if idx is None:
        return out
    result = x.clone()
    result[idx] = out
    return result


def _batch_of(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    x = x.as_subclass(torch.Tensor)
    if not x.is_floating_point():
        raise TypeError(f"expected float images in [0, 1], got {x.dtype} (convert with v2.ToDtype first).")
    if x.shape[-3] not in (1, 3):
        raise TypeError(f"expected images with 1 or 3 channels, got {x.shape[-3]}.")
    return (x[None], True) if x.ndim == 3 else (x, False)


class ColorJitterPerSample(nn.Module):
    """``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)``, drawn for every image.

    Accepts one float image (C, H, W) in [0, 1] or a batch (B, C, H, W) with C = 1 or 3. Every image
    draws, like torchvision's transform applied to it alone, whether it is jittered (probability
    ``p``), its factors (uniform in the ranges of ``v2.ColorJitter``, which checks the arguments) and
    the order of the four operations; the batch is then transformed with a few tensor operations per
    step (:func:`_color_jitter`) instead of a Python loop over images. The random numbers come from
    torch's default generator of the images' device, so ``torch.manual_seed`` (as
    :func:`ncutils.training.seed_epoch` calls) makes the output reproducible.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                 p: float = 1.0):
        super().__init__()
        ref = v2.ColorJitter(brightness, contrast, saturation, hue)
        ranges = [ref.brightness, ref.contrast, ref.saturation, ref.hue]
        self.ranges = [None if r is None else tuple(r) for r in ranges]
        self.ops = tuple(k for k, r in enumerate(ranges) if r is not None)
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb, single = _batch_of(x)
        B, dev = xb.shape[0], xb.device
        apply = torch.rand(B, device=dev) < self.p
        u = torch.rand(B, 4, device=dev)
        order = torch.rand(B, 4, device=dev).argsort(1)
        lo = torch.tensor([r[0] if r else 0.0 for r in self.ranges], device=dev)
        hi = torch.tensor([r[1] if r else 0.0 for r in self.ranges], device=dev)
        out = _color_jitter(xb, lo + (hi - lo) * u, order, apply, self.ops)
        return out[0] if single else out

    def extra_repr(self) -> str:
        b, c, s, h = self.ranges
        return f"brightness={b}, contrast={c}, saturation={s}, hue={h}, p={self.p}"


class RandomGrayscalePerSample(nn.Module):
    """``RandomGrayscale(p)`` decided for every image of a batch separately (1-channel images stay as
    they are); one image (C, H, W) or a batch (B, C, H, W) of float images."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb, single = _batch_of(x)
        gray = torch.rand(xb.shape[0], device=xb.device) < self.p
        if xb.shape[1] == 3:
            xb = torch.where(gray[:, None, None, None], _gray(xb).expand_as(xb), xb)
        return xb[0] if single else xb

    def extra_repr(self) -> str:
        return f"p={self.p}"


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
    adversarial training, with :class:`ncutils.pretrain.Normalize` in the model). Accepts
    (C, H, W) float tensors in [0, 1], uint8 tensors or PIL images, and returns a plain float
    tensor. It also accepts a batch (B, C, H, W) and then draws the random steps for every image
    separately, each step a few tensor operations on the whole batch (:class:`RandomCropPerSample`,
    :class:`RandomHorizontalFlipPerSample`, :class:`ColorJitterPerSample`,
    :class:`RandomGrayscalePerSample`), so in-memory data can be augmented a batch at a time
    (``pretrain(..., batch_transform=...)``).
    """
    steps = augmentation_steps(level)
    ts: list[nn.Module] = _to_float()
    if "RandomCrop" in steps:
        ts.append(RandomCropPerSample(image_size, padding))
    if "RandomHorizontalFlip" in steps:
        ts.append(RandomHorizontalFlipPerSample())
    if "ColorJitter" in steps:
        ts.append(ColorJitterPerSample(0.4, 0.4, 0.4, 0.1, p=jitter_p))
    if "RandomGrayscale" in steps:
        ts.append(RandomGrayscalePerSample(p=0.2))
    if normalize:
        _check_stats(mean, std)
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


# --------------------------------------------------------------------------- few-shot (Table 2)
def _fewshot(dataset: str) -> tuple[list[v2.Transform], list[v2.Transform], int, int]:
    """Resize step, tensor + normalisation tail, image size and crop padding of a few-shot dataset."""
    key = dataset.lower().replace("-", "_").replace("miniimagenet", "mini_imagenet")
    if key not in FEWSHOT_IMAGES:
        raise ValueError(f"unknown few-shot dataset {dataset!r}; use 'cifar_fs' or 'mini_imagenet'.")
    size, padding = FEWSHOT_IMAGES[key]
    mean, std = NORMALIZATION[key]
    resize = [v2.Resize((size, size))] if key == "mini_imagenet" else []
    tail = [*_to_float(), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]
    return resize, tail, size, padding


def fewshot_eval(dataset: str) -> v2.Compose:
    """Evaluation transform of Tian et al. for ``"cifar_fs"`` (32 px) or ``"mini_imagenet"`` (84 px).

    Resize to the dataset's size (a no-op for CIFAR-FS), tensor, per-channel normalisation
    (:data:`NORMALIZATION`).
    """
    resize, tail, _, _ = _fewshot(dataset)
    return v2.Compose(resize + tail)


def fewshot_train(dataset: str) -> v2.Compose:
    """Pre-training transform of Tian et al. for ``"cifar_fs"`` or ``"mini_imagenet"``.

    :func:`fewshot_eval` with, before the tensor conversion, a random crop with padding (4 px
    for CIFAR-FS, 8 px for miniImageNet), colour jitter (0.4 brightness/contrast/saturation) and
    a random horizontal flip.
    """
    resize, tail, size, padding = _fewshot(dataset)
    return v2.Compose(resize + [
        v2.RandomCrop(size, padding=padding),
        v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        v2.RandomHorizontalFlip(),
    ] + tail)


# --------------------------------------------------------------------------- randomness
_V1 = "torchvision.transforms.transforms."  # v1 types by name: the package imports v2 only
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)
#: Transform types known to be deterministic (exact types: a subclass may add randomness). Every
#: other type, and every plain function, counts as random in :func:`is_random`.
DETERMINISTIC: frozenset[str] = frozenset(
    [f"{t.__module__}.{t.__qualname__}" for t in (
        v2.Compose, v2.Resize, v2.CenterCrop, v2.Normalize, v2.ToImage, v2.ToDtype, v2.ToPureTensor,
        v2.ConvertImageDtype, v2.PILToTensor, v2.ToPILImage, v2.Grayscale, v2.RGB, v2.Pad, v2.Identity,
        v2.FiveCrop, v2.TenCrop, v2.LinearTransformation, nn.Identity, StandardTransform,
        ChannelNormalize, PerSample, TwoViews,
    )]
    + [_V1 + name for name in ("Compose", "Resize", "CenterCrop", "Normalize", "ToTensor", "PILToTensor",
                               "ConvertImageDtype", "ToPILImage", "Grayscale", "Pad", "FiveCrop", "TenCrop",
                               "LinearTransformation")]
)


def is_random(transform: Any) -> list[str]:
    """Names of the transforms in ``transform`` that may draw random numbers (empty: deterministic).

    Walks ``transform`` and what it wraps (``Compose``, ``RandomApply``, and any ``.transforms``
    list or ``.transform`` attribute, e.g. :class:`PerSample`, :class:`TwoViews` or a torchvision
    dataset's ``StandardTransform``). A transform counts as deterministic only when its exact
    type is listed in :data:`DETERMINISTIC` (resizing, cropping the centre, tensor and dtype
    conversions, normalisation, padding, grayscale); anything else counts as random, including
    every ``Random*`` transform, ``ColorJitter``, ``GaussianBlur``, ``ElasticTransform``,
    ``JPEG``, ``Lambda``, plain functions and the transforms of other libraries. ``None`` gives
    an empty list.
    """
    found: list[str] = []
    stack, seen = [transform], set()
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        kind = type(cur)
        if f"{kind.__module__}.{kind.__qualname__}" not in DETERMINISTIC:
            found.append(cur.__name__ if isinstance(cur, _FUNCTIONS) else kind.__name__)
        for attr in ("transforms", "transform"):
            sub = getattr(cur, attr, None)
            if isinstance(sub, (list, tuple)):
                stack.extend(reversed(sub))
            elif callable(sub) and sub is not cur and getattr(sub, "__self__", None) is not cur:
                stack.append(sub)  # not cur's own method (v2 transforms have a `transform` method)
    return found
