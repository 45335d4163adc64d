"""Layer-wise feature extraction on the paper's architectures (random weights, small inputs)."""

import pytest
import timm
import torch
from torch.utils.data import DataLoader, TensorDataset

from ncutils import features, models
from ncutils.metrics import nc1


def loader(n=12, size=32, classes=3, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size, size, generator=g)
    return DataLoader(TensorDataset(x, torch.arange(n) % classes), batch_size=5)


def hook_counter(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    return models.resnet("resnet18", 10).eval()


def test_resnet18_every_block_pooled(r18):
    out = features.extract_features(r18, loader(), layers=None, progress=False)
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    assert list(out) == [f"block{k}" for k in range(1, 9)] + ["penultimate", "labels"]
    for k, w in enumerate(widths, 1):
        assert out[f"block{k}"].shape == (12, w)
    assert out["labels"].tolist() == (torch.arange(12) % 3).tolist()
    # Block 8's pooled output is exactly the penultimate feature of ResNet18
    torch.testing.assert_close(out["block8"], out["penultimate"])


def test_resnet18_block5_matches_manual_forward(r18):
    x = next(iter(loader()))[0]
    with torch.no_grad():
        h = r18.maxpool(r18.relu(r18.bn1(r18.conv1(x))))
        h = r18.layer3[0](r18.layer2(r18.layer1(h)))
        expected = h.mean(dim=(2, 3))
    got = features.feature_extractor(r18, [5])(x)
    torch.testing.assert_close(got["block5"], expected)


def test_penultimate_feeds_the_classifier(r18):
    x = next(iter(loader()))[0]
    with torch.no_grad():
        pen = features.feature_extractor(r18, ["penultimate"])(x)["penultimate"]
        torch.testing.assert_close(r18.fc(pen), r18(x))
    assert isinstance(r18.fc, torch.nn.Linear)  # the view did not touch the model


def test_later_layers_are_not_computed(r18):
    x = next(iter(loader()))[0]
    shallow = features.feature_extractor(r18, [1, 2])
    middle = features.feature_extractor(r18, ["layer2.1"])
    # leaf modules are what the traced graph calls; hook them after tracing
    calls_l2, calls_l4 = hook_counter(r18.layer2[0].conv1), hook_counter(r18.layer4[0].conv1)
    with torch.no_grad():
        shallow(x)
        assert not calls_l2 and not calls_l4
        middle(x)
        r18(x)
    assert len(calls_l2) == 2 and len(calls_l4) == 1


def test_resnet50_block_numbering():
    m = models.resnet("resnet50", 10)
    assert len(models.blocks(m)) == 16
    assert models.block(m, 8)[0] == "layer3.0" and models.block(m, 14)[0] == "layer4.0"
    out = features.extract_features(m, loader(n=6, size=32), layers=[1, 8, 14, 16, "penultimate"],
                                    progress=False)
    assert [out[f"block{k}"].shape[1] for k in (1, 8, 14, 16)] == [256, 1024, 2048, 2048]
    assert out["penultimate"].shape == (6, 2048)


def test_block_errors_name_the_valid_range(r18):
    with pytest.raises(ValueError, match="blocks 1-8"):
        features.layer_names(r18, [9])
    with pytest.raises(ValueError, match="neither a block number"):
        features.layer_names(r18, ["layer9.0"])


@pytest.fixture(scope="module")
def vit_small_input():
    torch.manual_seed(0)
    # the paper's ViT-B/32 architecture at a 64-px input: 2 x 2 patches + 1 class token
    return models.vit("vit_b_32", 10, img_size=64).eval()


def test_vit_b32_paper_size_has_145_tokens():
    m = models.vit("vit_b_32", 100)
    assert m.pos_embed.shape[1] == 145 and m.embed_dim == 768 and len(models.blocks(m)) == 12


def test_vit_layers_avg_and_cls_pooling(vit_small_input):
    m = vit_small_input
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        tokens = m._pos_embed(m.patch_embed(x))
        for blk in m.blocks[:8]:
            tokens = blk(tokens)
        avg = features.feature_extractor(m, [8])(x)["block8"]
        cls = features.feature_extractor(m, [8], pool="cls")(x)["block8"]
        pen = features.feature_extractor(m, ["penultimate", 2])(x)
    assert tokens.shape[1] == 5
    torch.testing.assert_close(avg, tokens.mean(1))
    torch.testing.assert_close(cls, tokens[:, 0])
    torch.testing.assert_close(m.head(pen["penultimate"]), m(x))
    assert set(pen) == {"penultimate", "block2"}


def test_vit_stops_after_deepest_requested_layer(vit_small_input):
    calls = hook_counter(vit_small_input.blocks[5])
    features.extract_features(vit_small_input, loader(n=4, size=64), layers=[2, 3], progress=False)
    assert not calls


def test_layerwise_nc_streams_the_same_values(r18):
    dl = loader(n=30, classes=3)
    nc = features.layerwise_nc(r18, dl, layers=[3, "penultimate"], progress=False)
    feats = features.extract_features(r18, dl, layers=[3, "penultimate"], progress=False)
    for name in ("block3", "penultimate"):
        assert nc[name]["nc1"] == pytest.approx(nc1(feats[name], feats["labels"]), rel=1e-6)


def test_training_flag_is_restored():
    m = models.MLP(16, 3, width=16, depth=3).train()
    dl = DataLoader(TensorDataset(torch.randn(8, 1, 4, 4), torch.arange(8) % 2), batch_size=4)
    out = features.extract_features(m, dl, layers=None, progress=False)
    assert m.training
    assert list(out) == ["block1", "block2", "block3", "penultimate", "labels"]
    assert out["block1"].shape == (8, 16)


def test_small_cifar_resnet_keeps_module_names():
    m = models.resnet("resnet18", 5, cifar_stem=True, in_channels=1, width=8)
    out = features.extract_features(m, loader(n=4, size=28, channels=1), layers=[1, 8, "penultimate"],
                                    progress=False)
    assert out["block1"].shape == (4, 8) and out["penultimate"].shape == (4, 64)


# --------------------------------------------------------------------------- CLIP's image encoder
@pytest.fixture(scope="module")
def clip_small():
    """CLIP's ViT-B/32 image encoder (timm, pre-norm) with random weights at a 64-px input."""
    torch.manual_seed(0)
    return timm.create_model("vit_base_patch32_clip_224", pretrained=False, num_classes=10, img_size=64).eval()


def test_clip_structure(clip_small):
    m = clip_small
    assert models.is_vit(m) and not isinstance(m.norm_pre, torch.nn.Identity)  # the pre-norm
    assert len(models.blocks(m)) == 12 and models.feature_dim(m) == 768
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pre_logits = m.forward_head(m.forward_features(x), pre_logits=True)
        torch.testing.assert_close(models.without_classifier(m)(x), pre_logits)
    assert isinstance(m.head, torch.nn.Linear)  # the view left the model alone


def test_clip_layers_include_the_pre_norm(clip_small):
    m = clip_small
    dl = loader(n=6, size=64)
    out = features.extract_features(m, dl, layers=[1, 12, "penultimate"], progress=False)
    x = torch.cat([b[0] for b in dl])
    with torch.no_grad():
        tokens = m.norm_pre(m._pos_embed(m.patch_embed(x)))
        first = m.blocks[0](tokens)
        last = m.blocks[1:](first)
    torch.testing.assert_close(out["block1"], first.mean(1))
    torch.testing.assert_close(out["block12"], last.mean(1))
    torch.testing.assert_close(out["penultimate"], m.norm(last)[:, 0])
    nc = features.layerwise_nc(m, dl, layers=[1, "penultimate"], progress=False)
    assert nc["penultimate"]["nc1"] == pytest.approx(nc1(out["penultimate"], out["labels"]), rel=1e-5)


def test_a_classifier_inside_a_sequential_survives_without_classifier():
    """torchvision's MNASNet/MobileNet keep their Linear in ``classifier[1]``: the view from
    ``without_classifier`` still has a classifier path, feature size and penultimate feature."""
    from torchvision.models import mnasnet0_5

    torch.manual_seed(0)
    m = mnasnet0_5(num_classes=4).eval()
    assert models.linear_path(m) == "classifier.1"
    view = models.without_classifier(m)
    assert models.linear_path(view) == "classifier.1" and models.feature_dim(view) == 1280
    x = next(iter(loader(n=4, size=32)))[0]
    out = features.extract_features(view, loader(n=4, size=32), ("penultimate",), progress=False)
    with torch.no_grad():
        expected = m.layers(x).mean((2, 3))
    torch.testing.assert_close(out["penultimate"], expected)
    assert isinstance(m.classifier[1], torch.nn.Linear)  # the original is untouched
