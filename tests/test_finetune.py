"""Fine-tuning methods of Section 3.3: parameter accounting, gradients, BatchNorm, cache, resume."""

import pytest
import timm
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from ncutils import data, fewshot, finetune, hub, models, pretrain
from ncutils.book import published


def loader(n=24, size=32, classes=3, batch_size=8, seed=0, shuffle=True, dataset=None):
    g = torch.Generator().manual_seed(seed)
    data = dataset or TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.arange(n) % classes)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen)


# --------------------------------------------------------------------------- Tables 3-7
def test_every_percentage_cell_of_tables_3_to_7():
    cells = list(published.percentage_cells())
    assert len(cells) == 134 and {c["table"] for c in cells} == {3, 4, 5, 6, 7}
    results = finetune.reproduce_percentages(cells)
    wrong = [(r["table"], r["arch"], r["dataset"], r["method"], r["block"], r["formatted"], r["printed"])
             for r in results if r["formatted"] != r["printed"]]
    assert not wrong


@pytest.mark.parametrize(
    "arch,method,classes,block,printed",
    [("resnet18", "layer", 10, 5, 8.27), ("resnet18", "linear", 100, None, 0.46),
     ("resnet50", "scl", 47, 8, 6.82), ("resnet50", "layer", 100, 14, 26.33)],
)
def test_build_end_to_end_percentages(arch, method, classes, block, printed):
    net = finetune.build(arch, method, classes, block=block)
    assert round(100 * finetune.trainable_fraction(net), 2) == printed


def test_vit_b32_default_is_paper_layer_8_at_384px():
    net = finetune.build("vit_b_32", "scl", 37)
    assert net.block == 8 and net.backbone.pos_embed.shape[1] == 145
    assert f"{100 * finetune.trainable_fraction(net):.2f}" == "8.13"  # Table 3, Pets


# --------------------------------------------------------------------------- gradients
def _small(arch):
    if arch == "vit_b_32":  # the paper's ViT-B/32 architecture at a 64-px input
        return models.vit("vit_b_32", 10, img_size=64), 64
    if arch == "clip":  # CLIP's image encoder (timm, with a pre-norm) at a 64-px input
        return timm.create_model("vit_base_patch32_clip_224", pretrained=False, num_classes=10, img_size=64), 64
    return arch, 32


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "vit_b_32", "clip"])
@pytest.mark.parametrize("method", finetune.METHODS)
def test_gradients_reach_exactly_the_intended_parameters(arch, method):
    torch.manual_seed(0)
    model, size = _small(arch)
    block = 3 if method in ("layer", "scl") else None
    net = finetune.build(model, method, 4, block=block).train()
    x, y = torch.randn(2, 3, size, size), torch.tensor([0, 3])
    torch.nn.functional.cross_entropy(net(x), y).backward()
    head = {id(p) for p in net.head().parameters()}
    unit = {id(p) for p in net.units[2].parameters()} if block else set()
    for name, p in net.named_parameters():
        intended = method == "full" or id(p) in head or id(p) in unit
        assert p.requires_grad == intended, name
        if intended:
            assert p.grad is not None, f"{name} got no gradient"
        else:
            assert p.grad is None, f"{name} should be frozen"
    assert net.head().weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["vit_base_patch32_clip_224", "vit_base_patch32_384"])
def test_timm_vits_split_into_prefix_and_rest_exactly(name):
    """CLIP's image encoder (pre-norm) and the paper's ViT-B/32, by their timm names: every method's
    split forward is the model's own forward, and the accounting counts Layer 8 and the head."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    total = models.count_parameters(model) - 10 * 768 - 10 + 37 * 768 + 37
    layer8 = models.count_parameters(model.blocks[7])
    with torch.no_grad():
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
        for method in finetune.METHODS:
            net = finetune.build(model, method, 37, block=8 if method in ("layer", "scl") else None).eval()
            head = 37 * 768 + 37
            trained = {"linear": head, "layer": head + layer8, "scl": head + layer8, "full": total}[method]
            assert finetune.trainable_fraction(net) == pytest.approx(trained / total)
            if method != "scl":  # SCL adds the skip feature
                torch.testing.assert_close(net.features(x), pre_logits)


def test_clip_encoder_from_the_hub_registry_fine_tunes():
    model = hub.load_pretrained("clip_vit_b_32", weights=False)  # random weights, 224 px: 50 tokens
    net = finetune.build(model, "scl", 10, block=8)
    assert net.is_vit and net.backbone.pos_embed.shape[1] == 50 and net.feature_dim == 768
    trained = models.count_parameters(model.blocks[7]) + 10 * 768 + 10
    assert finetune.trainable_fraction(net) == trained / models.count_parameters(net)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_build_leaves_a_given_model_untouched():
    base = models.resnet("resnet18", 7, cifar_stem=True, width=8)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    net = finetune.build(base, "layer", 3, block=2)
    assert base.fc.out_features == 7 and all(p.requires_grad for p in base.parameters())
    assert net.head().out_features == 3
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_build_from_a_pretrained_encoder():
    """The encoder of a PretrainNet (classifier slot an Identity) fine-tunes like a full network."""
    torch.manual_seed(0)
    backbone = models.resnet("resnet18", 5, cifar_stem=True, width=8)
    encoder = pretrain.PretrainNet.from_backbone(backbone, 5).encoder
    assert isinstance(encoder.fc, torch.nn.Identity) and models.feature_dim(encoder) == 64
    net = finetune.build(encoder, "layer", 3, block=2)
    assert net.head().in_features == 64 and net.head().out_features == 3
    assert isinstance(encoder.fc, torch.nn.Identity)  # the encoder itself is untouched
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net.features(x), encoder(x))
    del encoder.fc.in_features  # an Identity that does not remember: the last block tells the width
    assert finetune.build(encoder, "linear", 3).head().in_features == 64


def test_unsupported_architecture_names_the_supported_ones():
    for method in ("full", "layer"):
        with pytest.raises(TypeError, match="torchvision ResNets .* timm Vision Transformers .*got ConvNet4"):
            finetune.build(fewshot.ConvNet4(5, hidden=4), method, 3, block=2 if method == "layer" else None)
    with pytest.raises(TypeError, match="torchvision ResNets"):
        finetune.prepare(models.MLP(8, 3, width=4, depth=2), "layer", 1)


def test_scl_skip_is_pooled_zero_padded_and_added():
    torch.manual_seed(0)
    net = finetune.build("resnet18", "scl", 5, block=5).eval()
    b = net.backbone
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        h5 = b.layer3[0](b.layer2(b.layer1(h)))
        out = b.layer4(b.layer3[1](h5))
        expected = out.mean((2, 3)) + torch.cat([h5.mean((2, 3)), torch.zeros(2, 256)], 1)
        torch.testing.assert_close(net.features(x), expected)
        torch.testing.assert_close(net(x), b.fc(expected))
        layer = finetune.prepare(b, "layer", 5)
        torch.testing.assert_close(layer.features(x), out.mean((2, 3)))


def test_vit_scl_adds_the_reduced_layer_output():
    torch.manual_seed(0)
    net = finetune.build(models.vit("vit_b_32", 10, img_size=64), "scl", 4, block=2).eval()
    b, x = net.backbone, torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t = b.norm_pre(b._pos_embed(b.patch_embed(x)))
        t2 = b.blocks[1](b.blocks[0](t))
        final = b.blocks[2:](t2)
        expected = b.norm(final)[:, 0] + b.norm(t2)[:, 0]
        torch.testing.assert_close(net.features(x), expected)


# --------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("method", finetune.METHODS)
def test_batchnorm_running_stats_update_for_every_method(method):
    torch.manual_seed(0)
    net = finetune.build("resnet18", method, 3, block=5 if method in ("layer", "scl") else None)
    stem_bn, last_bn = net.backbone.bn1, net.backbone.layer4[1].bn2
    before = stem_bn.running_mean.clone(), last_bn.running_mean.clone()
    finetune.fit(net, loader(), epochs=1, prefix_cache=None, progress=False, measure_nc1=False)
    assert not torch.equal(stem_bn.running_mean, before[0])
    assert not torch.equal(last_bn.running_mean, before[1])


def test_cached_prefix_uses_population_statistics_of_the_downstream_data():
    torch.manual_seed(0)
    dl = loader(n=40)
    net = finetune.build("resnet18", "layer", 3, block=5)
    finetune.fit(net, dl, epochs=1, prefix_cache="memory", progress=False, measure_nc1=False)
    x = torch.cat([b[0] for b in DataLoader(dl.dataset, batch_size=40)])
    with torch.no_grad():
        conv = net.backbone.conv1(x)
    torch.testing.assert_close(net.backbone.bn1.running_mean, conv.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- cache and loop
def test_cache_replays_the_uncached_run_exactly_without_batchnorm():
    """ViT has no BatchNorm: with the cache, training sees identical batches and prefix outputs."""
    def run(cache):
        torch.manual_seed(0)
        net = finetune.build(models.vit("vit_b_32", 10, img_size=64, depth=4), "layer", 3, block=3)
        res = finetune.fit(net, loader(n=16, size=64), epochs=2, lr=0.01, prefix_cache=cache, progress=False)
        return net, res
    (a, ra), (b, rb), (_, rc) = run(None), run("memory"), run("disk")
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in ra.history] == pytest.approx([h["loss"] for h in rb.history], rel=1e-4)
    assert ra.train_nc1 == pytest.approx(rb.train_nc1, rel=1e-3)
    assert rc.history[-1]["loss"] == pytest.approx(rb.history[-1]["loss"], rel=2e-2)  # float16 on disk


def test_augmented_data_refuses_the_cache():
    base = TensorDataset(torch.randn(8, 3, 32, 32), torch.arange(8) % 2)

    class Augmented(torch.utils.data.Dataset):
        transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.ToDtype(torch.float32)])

        def __len__(self):
            return len(base)

        def __getitem__(self, i):
            return self.transform(base[i][0]), base[i][1]

    net = finetune.build("resnet18", "layer", 2, block=7)
    with pytest.raises(ValueError, match="augmented .*RandomCrop"):
        finetune.fit(net, loader(dataset=Augmented()), epochs=1, prefix_cache="memory", progress=False)
    for cache in (None, "auto"):  # "auto" sees the augmentation and trains without the cache
        res = finetune.fit(net, loader(dataset=Augmented()), epochs=1, prefix_cache=cache, progress=False,
                           measure_nc1=False)
        assert res.epochs_run == 1 and res.cache_seconds == 0
    res = finetune.fit(net, loader(classes=2), epochs=1, progress=False, measure_nc1=False)  # auto: cached
    assert res.cache_seconds > 0


@pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")  # v2.JPEG, torchvision 0.29
@pytest.mark.parametrize("random_step", [v2.GaussianBlur(3, sigma=(0.1, 2.0)), v2.JPEG((50, 100)),
                                         v2.ElasticTransform(alpha=5.0)])
def test_random_v2_transforms_without_random_in_their_name_refuse_the_cache(random_step):
    """The former check looked for "Random"-prefixed names and missed these."""
    images = TensorDataset((torch.rand(8, 3, 32, 32) * 255).to(torch.uint8), torch.arange(8) % 2)
    transform = v2.Compose([random_step, v2.ToDtype(torch.float32, scale=True)])
    augmented = data.TransformDataset(images, transform)
    net = finetune.build("resnet18", "layer", 2, block=7)
    with pytest.raises(ValueError, match=f"augmented .*{type(random_step).__name__}"):
        finetune.fit(net, loader(dataset=augmented), epochs=1, prefix_cache="memory", progress=False)
    res = finetune.fit(net, loader(dataset=augmented), epochs=1, prefix_cache="auto", progress=False,
                       measure_nc1=False)
    assert res.epochs_run == 1 and res.cache_seconds == 0


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    def fresh(seed):
        torch.manual_seed(seed)
        return finetune.build("resnet18", "scl", 3, block=7)

    kwargs = dict(epochs=3, lr=0.05, progress=False, measure_nc1=False)
    full = fresh(0)
    finetune.fit(full, loader(), prefix_cache=None, **kwargs)
    ckpt = tmp_path / "run.pt"
    first = fresh(0)
    part = finetune.fit(first, loader(), prefix_cache=None, checkpoint=ckpt, stop_after=1, **kwargs)
    assert part.epochs_run == 1 and part.train_nc1 is None and ckpt.exists()
    resumed = fresh(99)  # different initial weights: everything must come from the checkpoint
    done = finetune.fit(resumed, loader(), prefix_cache=None, checkpoint=ckpt, **kwargs)
    assert done.epochs_run == 3 and [h["epoch"] for h in done.history] == [1, 2, 3]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_with_cache_matches_too(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return finetune.build("resnet18", "layer", 3, block=6)

    kwargs = dict(epochs=2, lr=0.05, progress=False, measure_nc1=False, prefix_cache="memory")
    full = fresh()
    finetune.fit(full, loader(), **kwargs)
    resumed = fresh()
    finetune.fit(resumed, loader(), checkpoint=tmp_path / "c.pt", stop_after=1, **kwargs)
    finetune.fit(resumed, loader(), checkpoint=tmp_path / "c.pt", **kwargs)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_fit_learns_and_reports_table3_quantities():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.arange(60) % 3
    x = torch.randn(60, 3, 32, 32, generator=g) * 0.3 + y[:, None, None, None].float()  # easy classes
    train = DataLoader(TensorDataset(x, y), batch_size=12, shuffle=True, generator=g)
    net = finetune.build("resnet18", "layer", 3, block=7)
    res = finetune.fit(net, train, epochs=4, lr=0.05, test_loader=train, progress=False)
    assert res.history[-1]["train_accuracy"] > 90 and res.test_accuracy > 90
    assert res.train_nc1 is not None and res.train_nc1 >= 0
    assert set(res.to_dict()) >= {"history", "train_nc1", "test_accuracy"}
    ev = finetune.evaluate(net, train)
    assert 0 <= ev["accuracy"] <= 100 and ev["loss"] > 0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown method"):
        finetune.build("resnet18", "adapter", 10)
    with pytest.raises(ValueError, match="blocks 1-8"):
        finetune.build("resnet18", "layer", 10, block=9)
    with pytest.raises(ValueError, match="only, not to 'linear'"):
        finetune.build("resnet18", "linear", 10, block=3)
    with pytest.raises(ValueError, match="unknown architecture"):
        finetune.build("alexnet", "full", 10)
    with pytest.raises(ValueError, match="prefix_cache must be 'auto'"):
        finetune.fit(finetune.build("resnet18", "linear", 3), loader(), prefix_cache="gpu", progress=False)
