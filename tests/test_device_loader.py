"""The loaders of make_loader: DeviceLoader keeps tensors on the device and retraces a DataLoader."""

import os

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ncutils import data, finetune, models
from ncutils.data import loading
from ncutils.finetune.prefix_cache import PrefixCache
from ncutils.training import seed_epoch


def dataset(n=37, size=4):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 3)


def batches(loader):
    return [[t.clone() for t in b] for b in loader]


def same(a, b):
    assert len(a) == len(b)
    for ba, bb in zip(a, b):
        assert len(ba) == len(bb) and all(torch.equal(x, y) for x, y in zip(ba, bb))


class Files(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(3), 0


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_order_and_batches_are_those_of_a_seeded_dataloader(shuffle, drop_last):
    ds = dataset()
    dev = data.DeviceLoader(ds, 8, shuffle=shuffle, seed=3, drop_last=drop_last, device="cpu")
    ref = DataLoader(ds, 8, shuffle=shuffle, drop_last=drop_last, generator=torch.Generator().manual_seed(3))
    assert len(dev) == len(ref) == (4 if drop_last else 5)
    assert dev.batch_size == 8 and dev.drop_last == drop_last and isinstance(dev.generator, torch.Generator)
    for _ in range(3):  # successive epochs continue the generator alike
        same(batches(dev), batches(ref))
    for epoch in (5, 1):  # and seed_epoch makes every epoch reproducible
        seed_epoch(0, epoch, dev)
        seed_epoch(0, epoch, ref)
        same(batches(dev), batches(ref))
    seed_epoch(0, 1, dev)
    again = batches(dev)
    seed_epoch(0, 1, dev)
    same(batches(dev), again)


def test_index_batches_replay_the_order_of_either_loader():
    ds = dataset()
    for loader in (data.DeviceLoader(ds, 8, shuffle=True, seed=1, device="cpu"),
                   data.make_loader(ds, 8, shuffle=True, seed=1, device="cpu")):
        loader.generator.manual_seed(7)
        idx = torch.cat(list(data.index_batches(loader)))
        loader.generator.manual_seed(7)
        assert torch.equal(torch.cat([b[1] for b in loader]), ds.tensors[1][idx])
        assert sorted(idx.tolist()) == list(range(len(ds)))


def test_prefix_cache_replays_a_device_loader():
    torch.manual_seed(0)
    net = finetune.build(models.resnet("resnet18", 3, cifar_stem=True, width=8), "layer", 3, block=3).eval()
    ds = dataset(n=20, size=8)
    loader = data.DeviceLoader(ds, 6, shuffle=True, seed=2, device="cpu")
    cpu = torch.device("cpu")
    cache = PrefixCache.build(net, loader, cpu, False, "memory")
    seed_epoch(0, 4, loader)
    replayed = list(cache.replay(loader, cpu))
    seed_epoch(0, 4, loader)
    with torch.no_grad():
        for (h, y), (x, y_ref) in zip(replayed, loader, strict=True):
            assert torch.equal(y, y_ref)
            torch.testing.assert_close(h, net.forward_prefix(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cache", [None, "memory"])
def test_fit_on_a_device_loader_matches_the_dataloader(cache):
    def run(loader):
        torch.manual_seed(0)
        net = finetune.build(models.resnet("resnet18", 3, cifar_stem=True, width=8), "layer", 3, block=3)
        res = finetune.fit(net, loader, epochs=2, lr=0.05, prefix_cache=cache, progress=False, measure_nc1=False)
        return net, res

    ds = dataset(n=24, size=8)
    a, ra = run(data.DeviceLoader(ds, 8, shuffle=True, seed=0, device="cpu"))
    b, rb = run(data.make_loader(ds, 8, shuffle=True, seed=0, device="cpu"))
    assert ra.cache_mode == rb.cache_mode == cache
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(wa, wb, rtol=0, atol=1e-6, msg=name)


def test_make_loader_chooses_workers_by_device_and_dataset():
    ds = dataset()
    cpu = data.make_loader(ds, 8, shuffle=True, device="cpu")
    assert type(cpu) is DataLoader and cpu.num_workers == 0 and not cpu.pin_memory
    assert data.make_loader(Files(), 2, device="cpu").num_workers == 0
    cuda_files = data.make_loader(Files(), 2, device="cuda")  # built, not iterated: needs no GPU
    assert cuda_files.num_workers == min(loading.MAX_WORKERS, os.cpu_count())
    assert cuda_files.pin_memory and not cuda_files.persistent_workers
    assert data.make_loader(Files(), 2, device="cuda", num_workers=0).num_workers == 0
    assert data.make_loader(ds, 2, device="cuda", num_workers=1).num_workers == 1  # asked for: a DataLoader


def test_device_loader_refuses_other_datasets():
    with pytest.raises(TypeError, match="TensorDataset"):
        data.DeviceLoader(Files(), 2, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_in_memory_data_stay_on_the_gpu():
    ds = dataset()
    loader = data.make_loader(ds, 8, shuffle=True, seed=1, device="cuda")
    assert isinstance(loader, data.DeviceLoader) and loader.dataset.tensors[0].is_cuda
    ref = data.make_loader(ds, 8, shuffle=True, seed=1, device="cpu")
    for (x, y), (xr, yr) in zip(loader, ref, strict=True):
        assert x.is_cuda and torch.equal(x.cpu(), xr) and torch.equal(y.cpu(), yr)
