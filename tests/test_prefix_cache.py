"""The frozen prefix's cache: same result with or without it, size estimate, budget, storage."""

import json

import pytest
import torch
from torch.nn.utils import parameters_to_vector
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ncutils import finetune, models
from ncutils.finetune import prefix_cache


def small_resnet():
    torch.manual_seed(0)
    return models.resnet("resnet18", 5, cifar_stem=True, width=8)  # BatchNorm everywhere


def loader(n=40, size=16, classes=3, batch_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ds = TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.arange(n) % classes)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))


def fit(method, cache, **kwargs):
    block = 3 if method in ("layer", "scl") else None
    net = finetune.build(small_resnet(), method, 3, block=block)
    res = finetune.fit(net, loader(), epochs=2, lr=0.05, prefix_cache=cache, progress=False, **kwargs)
    return net, res


class Shapes(Dataset):
    """50,000 CIFAR-sized images at 224 px that are never loaded: only their shape is read."""

    def __len__(self):
        return 50_000

    def __getitem__(self, i):
        return torch.zeros(3, 224, 224), 0


# --------------------------------------------------------------------------- same result
@pytest.mark.parametrize("method", ["layer", "scl", "linear"])
def test_the_memory_cache_does_not_change_the_result_with_batchnorm(method):
    (a, ra), (b, rb) = fit(method, None), fit(method, "memory")
    assert (ra.cache_mode, rb.cache_mode) == (None, "memory")
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(wa, wb, rtol=0, atol=1e-6, msg=name)
    assert [h["loss"] for h in ra.history] == pytest.approx([h["loss"] for h in rb.history], rel=1e-6, abs=1e-7)
    assert ra.train_nc1 == pytest.approx(rb.train_nc1, rel=1e-5)


def test_the_disk_cache_in_float16_comes_close():
    (a, ra), (c, rc) = fit("layer", None, measure_nc1=False), fit("layer", "disk", measure_nc1=False)
    assert rc.cache_mode == "disk"
    # inputs rounded to float16 (~5e-4 relative), which SGD on 5 batches of 8 amplifies a little
    wa, wc = (parameters_to_vector([p for p in n.parameters() if p.requires_grad]).detach() for n in (a, c))
    assert (wa - wc).norm() <= 0.05 * wa.norm()
    assert [h["loss"] for h in rc.history] == pytest.approx([h["loss"] for h in ra.history], rel=3e-2)


def test_frozen_prefix_keeps_its_recalibrated_statistics_while_training():
    net, _ = fit("layer", None, measure_nc1=False)
    dl = loader()
    x = torch.cat([b[0] for b in DataLoader(dl.dataset, batch_size=len(dl.dataset))])
    with torch.no_grad():
        conv = net.backbone.conv1(x)
    torch.testing.assert_close(net.backbone.bn1.running_mean, conv.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert net.backbone.bn1.momentum == 0.1  # restored after the pass


# --------------------------------------------------------------------------- size and budget
def test_resnet50_block8_estimate_is_tens_of_gb_and_auto_does_not_keep_it_in_memory():
    net = finetune.build("resnet50", "layer", 10, block=8)  # torchvision ResNet50, weights=None
    est = prefix_cache.estimate_cache_bytes(net, (3, 224, 224), 50_000)
    assert est == 50_000 * 512 * 28 * 28 * 4  # Block 7's output: 512 x 28 x 28 per image, float32
    assert 10e9 <= est < 100e9
    assert prefix_cache.estimate_cache_bytes(net, (3, 224, 224), 50_000, torch.float16) == est // 2
    dl = DataLoader(Shapes(), batch_size=64, shuffle=True)
    budget = 16e9
    assert prefix_cache.cache_mode("auto", dl, net, memory_budget=budget, disk_budget=0) == (None, est)
    assert prefix_cache.cache_mode("auto", dl, net, memory_budget=budget, disk_budget=100e9) == ("disk", est // 2)
    assert prefix_cache.cache_mode("auto", dl, net, memory_budget=100e9) == ("memory", est)


def test_default_budgets():
    assert 0 < prefix_cache.memory_budget_bytes() <= 16e9
    assert prefix_cache.disk_budget_bytes() > 0


def test_auto_falls_back_to_disk_then_to_no_cache(tmp_path):
    _, mem = fit("layer", "auto", measure_nc1=False)
    _, disk = fit("layer", "auto", measure_nc1=False, cache_budget_gb=0, cache_dir=tmp_path / "c")
    _, none = fit("layer", "auto", measure_nc1=False, cache_budget_gb=0, disk_budget_gb=0)
    assert (mem.cache_mode, disk.cache_mode, none.cache_mode) == ("memory", "disk", None)
    assert mem.cache_bytes == 2 * disk.cache_bytes == none.cache_bytes == 40 * 8 * 16 * 16 * 4
    assert none.cache_seconds == 0 and disk.cache_seconds > 0
    assert not list((tmp_path / "c").iterdir())  # the disk cache is deleted afterwards
    json.dumps(mem.to_dict())
    _, full = fit("full", "auto", measure_nc1=False)
    assert full.cache_mode is None and full.cache_bytes is None


def test_storage_is_allocated_once_at_full_size(tmp_path):
    net = finetune.build(small_resnet(), "layer", 3, block=3)
    dl = loader(n=20)
    dev = torch.device("cpu")
    mem = prefix_cache.PrefixCache.build(net, dl, dev, False, "memory")
    disk = prefix_cache.PrefixCache.build(net, dl, dev, False, "disk", cache_dir=tmp_path)
    assert mem.inputs.shape == (20, 8, 16, 16) and mem.inputs.dtype == torch.float32
    assert disk.inputs.dtype == torch.float16 and disk.path.parent == tmp_path
    torch.testing.assert_close(disk.inputs.float(), mem.inputs, rtol=1e-3, atol=1e-3)
    assert torch.equal(mem.labels, torch.arange(20) % 3)
    disk.close()
    assert not disk.path.exists()
