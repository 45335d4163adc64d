"""The torchvision-v2 transform stack: normalisation table, preprocessing, few-shot transforms, is_random,
batched colour augmentation."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import ncutils
from ncutils import transforms as T


def test_one_normalisation_table():
    n = T.NORMALIZATION
    assert {"imagenet", "cifar10", "cifar100", "mnist", "fashionmnist", "cifar_fs", "mini_imagenet",
            "clip"} <= set(n)
    assert n["cifar100"] == n["cifar_fs"] == ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    assert all(len(mean) == len(std) in (1, 3) for mean, std in n.values())


def test_the_package_imports_torchvision_transforms_v2_only():
    v1 = re.compile(r"^\s*(from torchvision(\.transforms)? import (transforms|functional)\b"
                    r"|from torchvision\.transforms import (?!v2\b)|import torchvision\.transforms(?!\.v2\b)"
                    r"|from torchvision\.transforms\.(?!v2\b))", re.M)
    offenders = [str(p) for p in Path(ncutils.__file__).parent.rglob("*.py") if v1.search(p.read_text())]
    assert offenders == []


def test_preprocess_is_plain_float_rgb_and_normalised():
    rng = np.random.default_rng(0)
    gray = Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8))
    x = T.preprocess(16, None, None)(gray)
    assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (3, 16, 16)
    assert 0 <= x.min() and x.max() <= 1 and torch.equal(x[0], x[2])
    mean, std = T.NORMALIZATION["imagenet"]
    z = T.preprocess(16)(gray)
    torch.testing.assert_close(z, (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])
    one = T.preprocess(16, to_rgb=False)(gray)  # 1 channel: the channel-averaged statistics
    torch.testing.assert_close(one[0], (x[0] - sum(mean) / 3) / (sum(std) / 3))
    torch.manual_seed(0)
    a = T.preprocess(16, augment=True)(gray)
    torch.manual_seed(0)
    torch.testing.assert_close(a, T.preprocess(16, augment=True)(gray))
    assert T.is_random(T.preprocess(16, augment=True)) == ["RandomCrop", "RandomHorizontalFlip"]
    assert T.is_random(T.preprocess(16)) == []
    with pytest.raises(ValueError, match="positive"):
        T.preprocess(0)


def test_fewshot_transforms():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8))
    x = T.fewshot_eval("mini-imagenet")(img)
    assert type(x) is torch.Tensor and x.shape == (3, 84, 84) and x.dtype == torch.float32
    assert T.is_random(T.fewshot_eval("cifar_fs")) == []
    assert T.is_random(T.fewshot_train("cifar_fs")) == ["RandomCrop", "ColorJitter", "RandomHorizontalFlip"]
    with pytest.raises(ValueError, match="cifar_fs"):
        T.fewshot_eval("omniglot")


def test_is_random_allows_only_known_deterministic_types():
    assert T.is_random(None) == []
    assert T.is_random(T.TwoViews(T.augmentation(1, 8, [0.5], [0.2]))) == []
    assert T.is_random(T.augmentation(5, 8, [0.5] * 3, [0.2] * 3)) == [
        "RandomCropPerSample", "RandomHorizontalFlipPerSample", "ColorJitterPerSample", "RandomGrayscalePerSample"]
    random_ones = [v2.GaussianBlur(3), v2.ElasticTransform(), v2.JPEG(50), v2.RandomErasing(),
                   v2.Lambda(lambda t: t), v2.RandomChoice([v2.Resize(4), v2.CenterCrop(4)])]
    assert T.is_random(v2.Compose([v2.Resize(8), *random_ones])) == [
        "GaussianBlur", "ElasticTransform", "JPEG", "RandomErasing", "Lambda", "RandomChoice"]
    assert T.is_random(lambda t: t) == ["<lambda>"]  # unknown callables count as random

    class MyResize(v2.Resize):  # a subclass may add randomness: it counts as random too
        pass

    assert T.is_random(MyResize(4)) == ["MyResize"]


# --------------------------------------------------------------------------- batched colour augmentation
_ADJUST = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


@pytest.mark.parametrize("channels", [3, 1])
def test_batched_colour_jitter_matches_torchvision_for_given_parameters(channels):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, channels, 9, 7, generator=g)
    x[:4] = x[:4].round()  # pure black/white pixels and grey (max == min) ones hit the hue edge cases
    factors = torch.cat([0.6 + 0.8 * torch.rand(48, 3, generator=g), 0.2 * torch.rand(48, 1, generator=g) - 0.1], 1)
    order = torch.rand(48, 4, generator=g).argsort(1)  # its own order of the four operations for every image
    apply = torch.rand(48, generator=g) < 0.7
    out = T._color_jitter(x, factors, order, apply)
    for i in range(48):
        ref = x[i]
        if apply[i]:
            for k in order[i].tolist():
                ref = _ADJUST[k](ref, float(factors[i, k]))
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-5)
    assert torch.equal(out[~apply], x[~apply])
    for k, fn in enumerate(_ADJUST):  # every operation alone, with one factor for the whole batch
        f = 0.07 if k == 3 else 1.3
        torch.testing.assert_close(T._colour_op(k, x, torch.full((48,), f)), fn(x, f), rtol=0, atol=1e-5)


def test_hue_shift_matches_torchvision_on_edge_cases():
    corners = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
                            [0.5, 0.5, 0.5], [0.2, 0.2, 0.9], [0.9, 0.9, 0.2], [0.3, 0.6, 0.6]], dtype=torch.float32)
    x = torch.cat([corners.T.reshape(1, 3, 3, 4), torch.rand(1, 3, 3, 4)]).repeat(5, 1, 1, 1)  # greys, primaries, ties
    shifts = torch.tensor([-0.5, -0.1, 0.0, 0.1, 0.5]).repeat_interleave(2)
    out = T._colour_op(3, x, shifts)
    for i, h in enumerate(shifts.tolist()):
        torch.testing.assert_close(out[i], TF.adjust_hue(x[i], h), rtol=0, atol=1e-5)


def test_colour_jitter_draws_per_image_in_range_and_is_seeded():
    x = torch.rand(3, 8, 8).expand(64, 3, 8, 8).clone()  # 64 copies of one image
    jitter = T.ColorJitterPerSample(0.4, 0.4, 0.4, 0.1, p=0.8)
    torch.manual_seed(0)
    out = jitter(x)
    assert out.shape == x.shape and type(out) is torch.Tensor
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert len({tuple(o.flatten().tolist()) for o in out}) > 40  # each jittered copy got its own draws
    torch.manual_seed(0)
    assert torch.equal(jitter(x), out)  # the default generator, reseeded, gives the same batch
    assert not torch.equal(jitter(x), out)
    assert jitter(x[0]).shape == (3, 8, 8)  # one image
    torch.testing.assert_close(T.ColorJitterPerSample(0.4, p=0.0)(x), x)
    torch.testing.assert_close(T.ColorJitterPerSample(0, 0, 0, 0)(x), x)  # nothing to jitter
    brighter = T.ColorJitterPerSample(0.4, 0, 0, 0)(torch.full((500, 3, 1, 1), 0.5))
    assert 0.3 <= float(brighter.min()) < 0.32 and 0.68 < float(brighter.max()) <= 0.7  # factor ~ U[0.6, 1.4]
    with pytest.raises(ValueError):
        T.ColorJitterPerSample(hue=0.7)  # torchvision's own argument check
    with pytest.raises(TypeError, match="float"):
        jitter(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


def test_colour_jitter_and_grayscale_probabilities():
    x = torch.rand(2000, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    y = T.RandomGrayscalePerSample(p=0.2)(x)
    gray = (y[:, 0] == y[:, 1]).all(-1).all(-1) & (y[:, 1] == y[:, 2]).all(-1).all(-1)
    assert 0.17 < gray.float().mean() < 0.23
    torch.testing.assert_close(y[gray], TF.rgb_to_grayscale(x[gray], num_output_channels=3), rtol=0, atol=1e-6)
    assert torch.equal(y[~gray], x[~gray])
    one = x[:, :1]
    assert torch.equal(T.RandomGrayscalePerSample(p=1.0)(one), one)  # 1 channel: already gray
    z = T.ColorJitterPerSample(0.4, 0.4, 0.4, 0.1, p=0.8)(x)
    changed = (z != x).flatten(1).any(1).float().mean()
    assert 0.77 < changed < 0.83 and float(z.min()) >= 0 and float(z.max()) <= 1


def test_levels_4_and_5_augment_a_batch_at_once():
    x = torch.rand(16, 3, 8, 8)
    for level in (4, 5):
        t = T.augmentation(level, 8, None, None, normalize=False)
        torch.manual_seed(3)
        a = t(x)
        torch.manual_seed(3)
        assert torch.equal(t(x), a) and a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    gray = T.augmentation(5, 8, [0.5], [0.2])(torch.rand(16, 1, 8, 8))  # 1-channel images pass through
    assert gray.shape == (16, 1, 8, 8)
