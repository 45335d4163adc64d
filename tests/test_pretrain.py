"""Pre-training losses, heads, augmentation levels, PGD, the training loop and linear transfer."""

import inspect
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ncutils import models
from ncutils import pretrain as P
from ncutils import transforms as T
from ncutils.features import extract_features
from ncutils.metrics import nc1


# --------------------------------------------------------------------------- data and networks
@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks gain nothing from intra-op threads, and competing threads slow them down badly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_resnet(classes=4, seed=0):
    torch.manual_seed(seed)
    return models.resnet("resnet18", classes, cifar_stem=True, in_channels=1, width=4)


def images(n=32, classes=4, size=8, seed=0):
    """Pixels in [0, 1] whose mean brightness depends on the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    level = 0.15 + 0.7 * y[:, None, None, None] / (classes - 1)
    x = level + 0.1 * torch.randn(n, 1, size, size, generator=g)
    return x.clamp(0, 1), y


def loader(dataset, batch_size=8, shuffle=True):
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator())


MEAN, STD = [0.5], [0.3]


class Transformed(torch.utils.data.Dataset):
    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return self.transform(x), y


def source_loaders(level=3, n=32, size=8):
    x, y = images(n, size=size)
    train = Transformed(TensorDataset(x, y), T.augmentation(level, size, MEAN, STD))
    plain = Transformed(TensorDataset(x, y), T.augmentation(1, size, MEAN, STD))
    return loader(train), loader(plain, 16, shuffle=False)


def without_times(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


# --------------------------------------------------------------------------- losses
def supcon_reference(features, labels, t):
    """SupCon L_out written as the double sum of Khosla et al. (2020, Eq. 2)."""
    B, V, _ = features.shape
    z = [F.normalize(features[b, v].double(), dim=0) for v in range(V) for b in range(B)]
    lab = [int(labels[b]) for _ in range(V) for b in range(B)]
    n, terms = len(z), []
    for i in range(n):
        pos = [p for p in range(n) if p != i and lab[p] == lab[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in range(n) if a != i)
        terms.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / t) / denom) for p in pos) / len(pos))
    return sum(terms) / len(terms)


def test_supcon_matches_direct_double_sum():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(5, 2, 3, generator=g)
    y = torch.tensor([0, 1, 0, 2, 1])
    for t in (0.1, 0.5):
        assert P.supcon_loss(f, y, t).item() == pytest.approx(supcon_reference(f, y, t), rel=1e-5)
    one_view = f[:, :1]  # anchor of class 2 has no positive and is left out
    expected = supcon_reference(one_view, y, 0.2)
    assert P.supcon_loss(one_view, y, 0.2).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_prefers_features_clustered_by_label():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(24) % 4
    centres = torch.randn(4, 16, generator=g)
    f = centres[y][:, None] + 0.3 * torch.randn(24, 2, 16, generator=g)
    shuffled = y[torch.randperm(24, generator=g)]
    assert P.supcon_loss(f, y) < P.supcon_loss(f, shuffled) - 1.0
    # features are normalised inside: the scale does not matter
    torch.testing.assert_close(P.supcon_loss(5 * f, y), P.supcon_loss(f, y))


def test_the_label_free_contrastive_loss_is_supcon_with_every_image_its_own_class():
    torch.manual_seed(0)
    f, y = torch.randn(6, 2, 8), torch.tensor([0, 0, 1, 1, 2, 2])
    expected = P.supcon_loss(f, torch.arange(6), 0.2)
    assert P.simclr_loss(f, y, 0.2).item() == pytest.approx(expected.item(), rel=1e-6)
    assert P.simclr_loss(f, None, 0.2).item() == pytest.approx(expected.item(), rel=1e-6)  # labels never read
    # the views of one image agreeing lowers it; images of one class agreeing does not (no labels seen)
    same = torch.randn(6, 1, 8).repeat(1, 2, 1)
    assert P.simclr_loss(same, y) < P.simclr_loss(f, y)
    with pytest.raises(ValueError, match="two views"):
        P.simclr_loss(torch.randn(4, 1, 8), y[:4])
    loss = P.make_loss("simclr", temperature=0.5)
    assert loss.contrastive and "simclr" in P.CONTRASTIVE
    net = P.PretrainNet.from_backbone(tiny_resnet(), None, loss=loss, head_layers=2, out_dim=16)
    assert net.classifier is None


def test_supcon_gradient_and_bad_input():
    f = torch.randn(4, 2, 8, requires_grad=True)
    P.supcon_loss(f, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="batch, views, dim"):
        P.supcon_loss(torch.randn(4, 8), torch.arange(4))
    with pytest.raises(ValueError, match="no anchor has a positive"):
        P.supcon_loss(torch.randn(4, 1, 8), torch.arange(4))


def test_mse_plain_and_scaled():
    out = torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([2, 0])
    torch.testing.assert_close(P.mse_loss(out, y), F.mse_loss(out, F.one_hot(y, 3).float()))
    # Hui & Belkin: (1/K) [k (f_c - M)^2 + sum_{i != c} f_i^2], here M = 4, k = 3
    first = (3 * (2.0 - 4) ** 2 + 0.5**2 + 1.0**2) / 3
    second = (3 * (0.0 - 4) ** 2 + 3.0**2 + 1.0**2) / 3
    loss = P.make_loss("mse", scale=4.0, weight=3.0)
    assert loss(out, y).item() == pytest.approx((first + second) / 2)


def test_make_loss():
    out, y = torch.randn(6, 3), torch.arange(6) % 3
    torch.testing.assert_close(P.make_loss("ce")(out, y), F.cross_entropy(out, y))
    assert P.make_loss("supcon", temperature=0.5).contrastive and not P.make_loss("mse").contrastive
    with pytest.raises(ValueError, match="options are"):
        P.make_loss("ce", temperature=0.1)
    with pytest.raises(ValueError, match="unknown loss"):
        P.make_loss("hinge")


# --------------------------------------------------------------------------- heads and the network
@pytest.mark.parametrize("layers", [0, 1, 2, 3])
def test_projection_head_layers(layers):
    head = P.projection_head(16, layers, hidden_dim=12, out_dim=8 if layers else None)
    kinds = [type(m) for m in head]
    assert kinds.count(nn.Linear) == layers and kinds.count(nn.ReLU) == max(layers - 1, 0)
    if layers:
        assert kinds[0] is nn.Linear and kinds[-1] is nn.Linear and head.out_features == 8
    x = torch.randn(5, 16)
    assert head(x).shape == (5, head.out_features)
    if layers == 0:
        assert torch.equal(head(x), x)


def test_head_is_not_part_of_the_transferred_encoder():
    backbone = tiny_resnet()
    net = P.PretrainNet.from_backbone(backbone, 4, head_layers=2)
    linears = lambda m: sum(isinstance(k, nn.Linear) for k in m.modules())  # noqa: E731
    assert linears(net.encoder) == 0 and linears(net.head) == 2 and linears(net) == 3
    x = torch.rand(3, 1, 8, 8)
    assert net(x).shape == (3, 4) and net.encoder(x).shape == (3, models.feature_dim(backbone))
    assert net.encoder.conv1.weight is backbone.conv1.weight  # the backbone's weights, not a copy
    supcon = P.PretrainNet.from_backbone(tiny_resnet(), None, loss="supcon", head_layers=2)
    assert supcon.classifier is None and supcon(x).shape == (3, 128)
    with pytest.raises(ValueError, match="feature_dim"):
        P.PretrainNet(net.encoder, None, 4)


# --------------------------------------------------------------------------- augmentation
def test_augmentation_levels_are_cumulative():
    names = lambda t: [type(s).__name__ for s in t.transforms]  # noqa: E731
    previous = None
    for level in range(1, 6):
        steps = T.augmentation_steps(level)
        assert len(steps) == level and steps == list(T.AUGMENTATION_STEPS[:level])
        current = names(T.augmentation(level, 8, MEAN, STD))
        assert current[-2:] == ["Normalize", "ToPureTensor"]  # normalisation is last
        if previous is not None:
            assert current[: len(previous) - 2] == previous[:-2]  # contains the previous level
            assert len(current) == len(previous) + 1
        previous = current
    with pytest.raises(ValueError, match="1-5"):
        T.augmentation_steps(6)


def test_augmentation_outputs():
    x = torch.rand(1, 8, 8)
    torch.testing.assert_close(T.augmentation(1, 8, MEAN, STD)(x), (x - 0.5) / 0.3)
    torch.testing.assert_close(T.augmentation(1, 8, None, None, normalize=False)(x), x)
    torch.manual_seed(0)
    rgb = T.augmentation(5, 8, [0.5] * 3, [0.3] * 3)((torch.rand(3, 8, 8) * 255).to(torch.uint8))
    assert type(rgb) is torch.Tensor and rgb.shape == (3, 8, 8) and rgb.dtype == torch.float32
    views = T.TwoViews(T.augmentation(3, 8, MEAN, STD))(x)
    assert views.shape == (2, 1, 8, 8) and not torch.equal(views[0], views[1])


def test_batched_augmentation_draws_per_image():
    torch.manual_seed(0)
    x = torch.rand(1, 8, 8).expand(64, 1, 8, 8).clone()  # 64 copies of one image
    out = T.augmentation(3, 8, MEAN, STD)(x)
    assert out.shape == (64, 1, 8, 8)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 20  # each copy got its own crop offset and flip
    # every output is a crop (with zero padding) of the image or of its mirror, normalised
    padded = torch.nn.functional.pad(x[0], (4, 4, 4, 4))
    windows = [((padded[:, i:i + 8, j:j + 8] - 0.5) / 0.3) for i in range(9) for j in range(9)]
    windows += [w.flip(-1) for w in windows]
    assert all(any(torch.allclose(o, w) for w in windows) for o in out)
    views = T.TwoViews(T.augmentation(2, 8, MEAN, STD))(x[:5])
    assert views.shape == (5, 2, 1, 8, 8)
    rgb = T.augmentation(5, 8, [0.5] * 3, [0.3] * 3)(torch.rand(6, 3, 8, 8))
    assert rgb.shape == (6, 3, 8, 8) and type(rgb) is torch.Tensor


def test_batch_transform_in_the_training_loop_matches_per_sample_levels():
    x, y = images(n=32)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator())
    net = P.PretrainNet.from_backbone(tiny_resnet(), 4)
    hist = P.pretrain(net, loader, epochs=1, batch_transform=T.augmentation(3, 8, MEAN, STD),
                      progress=False, device="cpu")
    assert len(hist) == 1 and math.isfinite(hist[0]["loss"])


# --------------------------------------------------------------------------- PGD
@pytest.fixture(scope="module")
def trained_mlp():
    """An MLP fitted for a few steps to whether the left or right half of the input is brighter."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(128, 16, generator=g)
    y = (x[:, :8].mean(1) > x[:, 8:].mean(1)).long()
    torch.manual_seed(0)
    model = models.MLP(16, 2, width=32, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def test_pgd_stays_in_ball_and_raises_loss(trained_mlp):
    model, x, y = trained_mlp
    model.train()
    eps = P.PAPER_EPSILONS[-1]
    for start in (True, False):
        adv = P.pgd_attack(model, x, y, eps, steps=5, random_start=start)
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1 and not adv.requires_grad
    assert model.training  # flag restored
    model.eval()
    with torch.no_grad():
        clean, attacked = F.cross_entropy(model(x), y), F.cross_entropy(model(adv), y)
    assert attacked > clean
    assert torch.equal(P.pgd_attack(model, x, y, 0.0), x)
    with pytest.raises(ValueError, match="8/255"):
        P.pgd_attack(model, x, y, 8)


# --------------------------------------------------------------------------- pre-training
def test_one_epoch_logs_nc1_and_checkpoints(tmp_path):
    train, plain = source_loaders()
    net = P.PretrainNet.from_backbone(tiny_resnet(), 4, head_layers=1)
    history = P.pretrain(net, train, epochs=1, nc_loader=plain, checkpoint=tmp_path / "ck.pt",
                         device="cpu", progress=False)
    json.dumps(history, allow_nan=False)
    (rec,) = history
    assert rec["epoch"] == 1 and rec["lr"] == pytest.approx(0.1)
    assert math.isfinite(rec["nc1"]) and rec["nc1"] > 0 and 0 <= rec["train_accuracy"] <= 100
    assert rec["nc1"] == pytest.approx(P.source_nc1(net.encoder, plain, device="cpu"))
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert state["epoch"] == 1 and state["history"] == history
    assert net.training  # the caller's mode is kept


class Interrupted(Exception):
    pass


class StopAfter:
    """A loader that fails when an epoch beyond ``epochs`` starts, like a killed job."""

    def __init__(self, inner, epochs):
        self.inner, self.epochs, self.started = inner, epochs, 0

    @property
    def generator(self):
        return self.inner.generator

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        self.started += 1
        if self.started > self.epochs:
            raise Interrupted
        return iter(self.inner)


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    ck = tmp_path / "run.pt"
    opts = {"epochs": 2, "device": "cpu", "progress": False}
    full_net = P.PretrainNet.from_backbone(tiny_resnet(seed=0), 4)
    full = P.pretrain(full_net, source_loaders()[0], **opts)

    first = P.PretrainNet.from_backbone(tiny_resnet(seed=0), 4)
    with pytest.raises(Interrupted):
        P.pretrain(first, StopAfter(source_loaders()[0], 1), checkpoint=ck, **opts)
    assert torch.load(ck, weights_only=False)["epoch"] == 1

    resumed_net = P.PretrainNet.from_backbone(tiny_resnet(seed=7), 4)  # weights come from the checkpoint
    resumed = P.pretrain(resumed_net, source_loaders()[0], checkpoint=ck, **opts)
    assert without_times(resumed) == without_times(full)
    a, b = full_net.state_dict(), resumed_net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    with pytest.raises(ValueError, match="same settings"):
        P.pretrain(resumed_net, source_loaders()[0], checkpoint=ck, lr=0.05, **opts)

    # a time-boxed run (stop_after) resumed later gives the same weights too
    boxed = P.PretrainNet.from_backbone(tiny_resnet(seed=0), 4)
    assert len(P.pretrain(boxed, source_loaders()[0], checkpoint=tmp_path / "boxed.pt", stop_after=1,
                          **opts)) == 1
    P.pretrain(boxed, source_loaders()[0], checkpoint=tmp_path / "boxed.pt", **opts)
    assert all(torch.equal(v, boxed.state_dict()[k]) for k, v in a.items())


def test_supcon_pretraining_with_two_views():
    x, y = images(24)
    views = Transformed(TensorDataset(x, y), T.TwoViews(T.augmentation(3, 8, MEAN, STD)))
    plain = Transformed(TensorDataset(x, y), T.augmentation(1, 8, MEAN, STD))
    net = P.PretrainNet.from_backbone(tiny_resnet(), None, loss="supcon", head_layers=2, out_dim=16)
    (rec,) = P.pretrain(net, loader(views), loss=P.make_loss("supcon", temperature=0.5), epochs=1,
                        nc_loader=loader(plain, 12, shuffle=False), device="cpu", progress=False)
    assert rec["train_accuracy"] is None and math.isfinite(rec["loss"]) and math.isfinite(rec["nc1"])
    with pytest.raises(ValueError, match="num_classes=None"):
        P.pretrain(P.PretrainNet.from_backbone(tiny_resnet(), 4), loader(views), loss="supcon", epochs=1)


def test_mse_and_adversarial_pretraining_on_pixels():
    x, y = images(24)
    pixels = Transformed(TensorDataset(x, y), T.augmentation(2, 8, None, None, normalize=False))
    net = P.PretrainNet.from_backbone(tiny_resnet(), 4, mean=MEAN, std=STD)
    (rec,) = P.pretrain(net, loader(pixels), loss="mse", adversarial_eps=P.PAPER_EPSILONS[2], pgd_steps=2,
                        epochs=1, nc_loader=loader(TensorDataset(x, y), 12), device="cpu", progress=False)
    assert math.isfinite(rec["loss"]) and math.isfinite(rec["nc1"])
    normalised = source_loaders()[0]
    with pytest.raises(ValueError, match="normalize=False"):
        P.pretrain(net, normalised, adversarial_eps=1 / 255, pgd_steps=1, epochs=1, progress=False)


# --------------------------------------------------------------------------- transfer
def blobs(n, seed):
    """Three classes separated along 2 of 32 dimensions; the other 30 are large noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 5 * torch.randn(n, 32, generator=g)
    centres = 3 * torch.tensor([[0.0, 1.0], [0.87, -0.5], [-0.87, -0.5]])
    x[:, :2] = centres[y] + 0.5 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def test_transfer_good_encoder_beats_random_encoder():
    train, test = loader(blobs(150, 0), 50), loader(blobs(90, 1), 50, shuffle=False)
    good = nn.Linear(32, 2)
    with torch.no_grad():
        good.weight.zero_()
        good.weight[0, 0] = good.weight[1, 1] = 1.0
        good.bias.zero_()
    torch.manual_seed(0)
    rand = nn.Linear(32, 2)
    a = P.transfer(good, train, test, epochs=20, device="cpu", progress=False)
    b = P.transfer(rand, train, test, epochs=20, device="cpu", progress=False)
    for res in (a, b):
        assert 0 <= res["test_accuracy"] <= 100 and 0 <= res["train_accuracy"] <= 100
        assert math.isfinite(res["nc1"]) and res["feature_dim"] == 2
    assert a["test_accuracy"] > 90 and a["test_accuracy"] > b["test_accuracy"] + 20
    assert a["nc1"] < b["nc1"]  # more collapsed downstream features transfer better (Fig. 5)


def test_transfer_of_a_resnet_encoder():
    x, y = images(24)
    plain = Transformed(TensorDataset(x, y), T.augmentation(1, 8, MEAN, STD))
    data = loader(plain, 12, shuffle=False)
    encoder = models.without_classifier(tiny_resnet())
    encoder.train()
    res = P.transfer(encoder, data, data, epochs=5, device="cpu", progress=False)
    assert 0 <= res["test_accuracy"] <= 100 and math.isfinite(res["nc1"]) and res["num_test"] == 24
    assert encoder.training  # mode kept
    feats = extract_features(encoder.eval(), data, progress=False)
    assert res["nc1"] == pytest.approx(nc1(feats["penultimate"], feats["labels"]))


def test_amp_is_on_by_default_and_changes_nothing_on_the_cpu():
    assert inspect.signature(P.pretrain).parameters["amp"].default is True
    runs = []
    for amp in (True, False):
        net = P.PretrainNet.from_backbone(tiny_resnet(), 4)
        history = P.pretrain(net, source_loaders()[0], epochs=1, amp=amp, device="cpu", progress=False)
        runs.append((net.state_dict(), without_times(history)))
    (a, ha), (b, hb) = runs
    assert ha == hb and all(torch.equal(v, b[k]) for k, v in a.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bfloat16_autocast_on_cuda_keeps_a_float32_loss():
    x, y = images(16)
    pixels = Transformed(TensorDataset(x, y), T.TwoViews(T.augmentation(1, 8, None, None, normalize=False)))
    net = P.PretrainNet.from_backbone(tiny_resnet(), None, loss="supcon", head_layers=1, mean=MEAN, std=STD)
    (rec,) = P.pretrain(net, loader(pixels), loss="supcon", adversarial_eps=P.PAPER_EPSILONS[0], pgd_steps=1,
                        epochs=1, device="cuda", progress=False)  # SupCon's matmuls, also inside PGD
    assert math.isfinite(rec["loss"])


def test_the_vit_recipe_warms_up_then_decays():
    from ncutils.training import make_optimizer, make_schedule

    w = nn.Linear(2, 2)
    opt = make_optimizer("adamw", w.parameters(), 1e-3, weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.05
    sched = make_schedule(opt, {"kind": "cosine", "warmup_epochs": 2}, epochs=5, steps_per_epoch=4, min_lr=1e-5)
    rates = []
    for _ in range(20):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(1e-3 / 8)  # a linear ramp over the first 2 epochs (8 steps)
    assert all(a < b for a, b in zip(rates[:8], rates[1:9])) and rates[8] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[8:], rates[9:])) and rates[-1] < 1e-4  # then the cosine to min_lr
    with pytest.raises(ValueError, match="warmup_epochs must lie in"):
        make_schedule(opt, {"kind": "cosine", "warmup_epochs": 5}, epochs=5, steps_per_epoch=4)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        make_optimizer("adam", w.parameters(), 1e-3)
    assert isinstance(make_optimizer("sgd", w.parameters(), 0.1), torch.optim.SGD)


def test_pretraining_with_adamw_and_label_smoothing_records_the_recipe(tmp_path):
    train, plain = source_loaders()
    net = P.PretrainNet.from_backbone(tiny_resnet(), 4, head_layers=0)
    history = P.pretrain(net, train, loss=P.make_loss("ce", label_smoothing=0.1), epochs=3, lr=1e-3,
                         weight_decay=0.05, optimizer="adamw", schedule={"kind": "cosine", "warmup_epochs": 1},
                         checkpoint=tmp_path / "ck.pt", device="cpu", progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3] and history[1]["lr"] == pytest.approx(1e-3)
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert state["config"]["optimizer"] == "adamw"
    with pytest.raises(ValueError, match="written by a run with settings"):  # SGD cannot resume an AdamW run
        P.pretrain(net, train, loss=P.make_loss("ce", label_smoothing=0.1), epochs=3, lr=1e-3, weight_decay=0.05,
                   schedule={"kind": "cosine", "warmup_epochs": 1}, checkpoint=tmp_path / "ck.pt", device="cpu",
                   progress=False)
