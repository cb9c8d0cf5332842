"""``adaaug eval``: mCE against hand calculations, AlexNet normalisation, extras kept out of mCE,
parameter noise, attacks (cheap configurations), checkpoint loading, bad inputs, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from adaaug.cli import main as cli_main
from adaaug.evaluate.attacks import evaluate_attacks, preserved_state, robust_accuracy
from adaaug.corruptions import ALL, BENCHMARK, EXTRA
from adaaug.evaluate.sets import ArraySource, CorruptionDir
from adaaug.evaluate.command import load_model
from adaaug.evaluate.metrics import accuracy, alexnet_errors, evaluate_corruptions, mce
from adaaug.evaluate.report import markdown_report
from adaaug.evaluate.param_noise import NoisyPredictor, evaluate_param_noise

N = 4  # images per severity in the synthetic -C directory
LABELS = np.array([0, 1, 2, 3])




class Oracle(nn.Module):
    """Predicts class ``round(255 · x[:, 0, 0, 0]) // 20``: the test writes its predictions into pixel (0, 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = (x[:, 0, 0, 0] * 255).round().long() // 20
        return nn.functional.one_hot(cls, 10).float() * self.scale


def _images_predicting(preds: np.ndarray) -> np.ndarray:
    images = np.full((len(preds), 8, 8, 3), 7, np.uint8)
    images[:, 0, 0, 0] = 20 * np.asarray(preds)
    return images


def wrong_count(corruption: str, severity: int) -> int:
    """How many of the N images the oracle gets wrong: (i + s²) mod 5 for benchmark corruption i; extras: all."""
    if corruption in EXTRA:
        return N
    return (BENCHMARK.index(corruption) + severity ** 2) % 5


def _write_c_dir(root: Path, names=ALL, labels_len: int | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        blocks = []
        for s in range(1, 6):
            k = wrong_count(name, s)
            preds = LABELS.copy()
            preds[:k] = (LABELS[:k] + 1) % 10
            blocks.append(_images_predicting(preds))
        np.save(root / f"{name}.npy", np.concatenate(blocks))
    np.save(root / "labels.npy", np.tile(LABELS, 5)[:labels_len])
    return root


@pytest.fixture
def c_dir(tmp_path) -> Path:
    return _write_c_dir(tmp_path / "c")


def test_cifar_mce_matches_hand_calculation(c_dir):
    res = evaluate_corruptions(Oracle(), c_dir, batch_size=3)
    # by hand: gaussian_noise (i=0): wrong (s² mod 5) = 1, 4, 4, 1, 0 of 4 → 25, 100, 100, 25, 0 → 50 %
    assert res["errors"]["gaussian_noise"] == [25.0, 100.0, 100.0, 25.0, 0.0]
    assert res["ce"]["gaussian_noise"] == 50.0
    # shot_noise (i=1): 2, 0, 0, 2, 1 → 50, 0, 0, 50, 25 → 25 %
    assert res["ce"]["shot_noise"] == 25.0
    hand = np.mean([np.mean([100 * wrong_count(c, s) / N for s in range(1, 6)]) for c in BENCHMARK])
    assert res["mce"] == pytest.approx(hand)
    # the offsets i mod 5 = 0..4 give CEs 50, 25, 50, 75, 50 %; three cycles of them: mCE = 250 / 5 = 50 %
    assert [res["ce"][c] for c in BENCHMARK[:5]] == [50.0, 25.0, 50.0, 75.0, 50.0]
    assert res["mce"] == pytest.approx(50.0)
    assert set(res["ce"]) == set(BENCHMARK) and "normalized_ce" not in res


def test_extras_reported_separately_and_never_in_mce(c_dir, tmp_path):
    res = evaluate_corruptions(Oracle(), c_dir)
    assert res["extra"] == {c: 100.0 for c in EXTRA}  # every extra image is wrong
    only_benchmark = evaluate_corruptions(Oracle(), _write_c_dir(tmp_path / "b", BENCHMARK))
    assert only_benchmark["mce"] == res["mce"] and only_benchmark["extra"] == {}
    assert mce({**res["ce"], **{c: 1e6 for c in EXTRA}}) == res["mce"]


def test_alexnet_normalisation_by_hand(c_dir):
    ref = alexnet_errors()
    assert ref["gaussian_noise"] == pytest.approx(88.6428) and ref["jpeg_compression"] == pytest.approx(60.65)
    assert ref["brightness"] == pytest.approx(56.4592) and set(ref) == set(BENCHMARK)
    for c, per_sev in alexnet_errors(per_severity=True).items():
        assert np.mean(per_sev) == pytest.approx(ref[c], abs=1e-4)
    res = evaluate_corruptions(Oracle(), c_dir, alexnet=True)
    assert res["normalized_ce"]["gaussian_noise"] == pytest.approx(100 * 50.0 / 88.6428)  # 56.406 %
    hand = np.mean([100 * res["ce"][c] / ref[c] for c in BENCHMARK])
    assert res["mce"] == pytest.approx(hand) and res["unnormalized_mce"] == pytest.approx(50.0)
    assert mce({c: ref[c] for c in BENCHMARK}, ref) == pytest.approx(100.0)  # AlexNet itself scores 100


def test_partial_directory_and_mce_errors(tmp_path):
    res = evaluate_corruptions(Oracle(), _write_c_dir(tmp_path / "p", ["fog", "saturate"]))
    assert res["mce"] is None and "gaussian_noise" in res["missing"] and res["extra"] == {"saturate": 100.0}
    with pytest.raises(ValueError, match="missing"):
        mce({"fog": 1.0})
    with pytest.raises(FileNotFoundError, match="no data"):
        evaluate_corruptions(Oracle(), tmp_path / "p", corruptions=["snow"])


def test_bad_directories_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CorruptionDir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no corruption data"):
        CorruptionDir(tmp_path / "empty")
    no_labels = _write_c_dir(tmp_path / "nolabels", ["fog"])
    (no_labels / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        evaluate_corruptions(Oracle(), no_labels)
    with pytest.raises(ValueError, match="holds 20 images but labels.npy has 15"):
        CorruptionDir(_write_c_dir(tmp_path / "short", ["fog"], labels_len=15))
    bad = _write_c_dir(tmp_path / "odd", ["fog"])
    np.save(bad / "labels.npy", np.zeros(21, np.int64))
    with pytest.raises(ValueError, match="multiple of 5"):
        CorruptionDir(bad)
    with pytest.raises(ValueError, match="labels"):
        ArraySource(np.zeros((3, 8, 8, 3), np.uint8), np.zeros(2, np.int64))


def _clean_source(n: int = 12, seed: int = 0) -> ArraySource:
    rng = np.random.default_rng(seed)
    return ArraySource(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()])


def _assert_untouched(model: nn.Module, snap) -> None:
    state, modes, flags = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags


def test_param_noise_eta_zero_equals_clean_and_model_untouched(tiny_net, tmp_path):
    c = _write_c_dir(tmp_path / "c")
    clean = _clean_source()
    tiny_net.train()
    tiny_net.bn.eval()  # a mixed-mode model: both flags must come back as they were
    snap = _snapshot(tiny_net)
    res = evaluate_param_noise(tiny_net, clean, c, etas=[0.0, 0.05], samples=3, seed=1)
    _assert_untouched(tiny_net, snap)
    plain = evaluate_corruptions(tiny_net, c)
    zero = res["results"]["0"]
    assert zero["clean_error"] == pytest.approx(100.0 - accuracy(tiny_net, clean))
    assert zero["errors"] == plain["errors"] and zero["mce"] == plain["mce"] and zero["extra"] == plain["extra"]
    assert set(res["results"]) == {"0", "0.05"} and res["samples"] == 3
    _assert_untouched(tiny_net, snap)


def test_param_noise_scale_seeding_and_effect():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    weight = model[1].weight.detach().clone()
    pred = NoisyPredictor(model, 0.1, samples=2, seed=0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    noisy = pred._draw(params, 0)["1.weight"]
    assert (noisy - weight).std().item() == pytest.approx(0.1 * weight.abs().max().item(), rel=0.05)
    assert torch.equal(model[1].weight, weight)
    clean = _clean_source(64)
    a = NoisyPredictor(model, 2.0, samples=2, seed=0)(clean)
    b = NoisyPredictor(model, 2.0, samples=2, seed=0)(clean)
    c = NoisyPredictor(model, 2.0, samples=2, seed=1)(clean)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    with pytest.raises(ValueError, match="eta"):
        NoisyPredictor(model, -0.1)


def _linear_model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(3 * 32 * 32), nn.Linear(3 * 32 * 32, 10))
    with torch.no_grad():
        net[2].weight.mul_(30)
    return net.eval()


def _mixed_mode_case():
    """The linear model with mixed train/eval modes, images it classifies as ``y``, and its snapshot."""
    net = _linear_model()
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        y = net(x).argmax(1)
    net.train()
    net[1].eval()
    snap = _snapshot(net)
    return net, x, y, snap


def test_attacks_cheap_pgd_and_modes_restored():
    net, x, y, snap = _mixed_mode_case()
    res = evaluate_attacks(net, x, y, method="pgd", steps=3, restarts=2, batch_size=5)
    _assert_untouched(net, snap)
    assert res["clean_accuracy"] == 100.0 and set(res["Linf"]) == {"0.00392157", "0.00784314"}
    assert set(res["L2"]) == {"0.5", "1"}
    assert res["Linf"]["0.00784314"] <= res["Linf"]["0.00392157"] <= 100.0
    assert res["L2"]["1"] == 0.0  # a steep linear model falls at ℓ2 radius 1
    with pytest.raises(ValueError, match="norm"):
        robust_accuracy(net, x, y, norm="L1", eps=0.1)


def test_autoattack_restores_modes_and_requires_grad():
    net, x, y, snap = _mixed_mode_case()
    acc = robust_accuracy(net, x, y, norm="Linf", eps=8 / 255, method="autoattack", n_classes=10)
    assert acc == 0.0  # APGD-CE breaks every example, so FAB and Square never run: fast
    _assert_untouched(net, snap)
    with preserved_state(net):
        assert not net.training and not any(p.requires_grad for p in net.parameters())
    _assert_untouched(net, snap)


def test_load_model_formats_agree(tmp_path):
    from adaaug.models import build_classifier
    from adaaug.weights import export_weights

    torch.manual_seed(0)
    model = build_classifier("resnet20").eval()
    export_weights(model, "resnet20", "test", tmp_path, {})
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "ck.pt")
    torch.save({k.removeprefix("1."): v for k, v in model.state_dict().items()}, tmp_path / "bare.pt")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        for path in ("resnet20-test.safetensors", "ck.pt", "bare.pt"):
            loaded = load_model("resnet20", checkpoint=tmp_path / path)
            assert not loaded.training
            assert torch.allclose(loaded(x), expected), path
    with pytest.raises(ValueError, match="does not fit"):
        load_model("preact_resnet50", checkpoint=tmp_path / "ck.pt")
    with pytest.raises(FileNotFoundError):
        load_model("resnet20", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="exactly one"):
        load_model("resnet20")


def test_cli_end_to_end(tmp_path):
    from adaaug.models import build_classifier

    torch.manual_seed(0)
    torch.save({"model": build_classifier("resnet20").state_dict()}, tmp_path / "ck.pt")
    clean = tmp_path / "clean"
    clean.mkdir()
    src = _clean_source(10)
    np.save(clean / "test_data.npy", src.images)
    np.save(clean / "test_labels.npy", src.labels)
    c = tmp_path / "c"
    c.mkdir()
    rng = np.random.default_rng(0)
    for name in ALL:
        np.save(c / f"{name}.npy", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    np.save(c / "labels.npy", rng.integers(0, 10, 10))
    out, md = tmp_path / "res.json", tmp_path / "table.md"
    rc = cli_main(["eval", "--checkpoint", str(tmp_path / "ck.pt"), "--arch", "resnet20", "--data", str(clean),
                   "--cifar-c", str(c), "--cifar101", str(clean), "--param-noise", "0", "0.02", "--noise-samples", "2",
                   "--attacks", "--attack-method", "pgd", "--pgd-steps", "1", "--pgd-restarts", "1",
                   "--attack-samples", "4", "--out", str(out), "--markdown", str(md), "--device", "cpu"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["clean"]["n"] == 10 and 0 <= res["clean"]["accuracy"] <= 100
    assert set(res["cifar10_c"]["ce"]) == set(BENCHMARK) and set(res["cifar10_c"]["extra"]) == set(EXTRA)
    assert res["shift"]["cifar10.1"]["accuracy"] == res["clean"]["accuracy"]
    assert res["param_noise"]["results"]["0"]["mce"] == pytest.approx(res["cifar10_c"]["mce"])
    assert res["robust"]["n"] == 4 and res["robust"]["method"] == "pgd"
    table = md.read_text()
    assert "| model | clean error | mCE | Gauss | Shot | Impulse |" in table and "η = 0.02" in table
    assert table.strip() == markdown_report(res, "ck").strip()


def test_shift_sets_class_subsets_and_numeric_folders(tmp_path):
    """ImageNet-R style: a 2-class subset of 10 training classes competes only on its own logits;
    ImageNet-v2 style: folders named by class index; mixed sizes are resized and centre-cropped."""
    from PIL import Image

    from adaaug.evaluate.sets import open_image_set
    from adaaug.evaluate.metrics import evaluate_shift

    train_classes = [f"c{i}" for i in range(10)]
    for folder, cls in (("r/c2", 2), ("r/c5", 5), ("v2/2", 2), ("v2/10", 9)):
        (tmp_path / folder).mkdir(parents=True)
        for i, size in enumerate((40, 56)):
            img = np.full((size, size + 8 * i, 3), 7, np.uint8)
            img[:, :, 0] = 20 * cls  # uniform, so the oracle's pixel survives resizing
            Image.fromarray(img).save(tmp_path / folder / f"{i}.png")
    res = evaluate_shift(Oracle(), tmp_path / "r", train_classes=train_classes, image_size=32)
    assert res == {"accuracy": 100.0, "n": 4, "classes": 2,
                   "preprocessing": "shorter side resized to 37 px (bilinear), centre 32×32 kept (--image-size 32)"}
    v2 = open_image_set(tmp_path / "v2", size=32)
    assert sorted(v2.labels.tolist()) == [2, 2, 10, 10] and v2.classes is None
    assert next(iter(v2.batches(8))).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="different sizes"):
        open_image_set(tmp_path / "r", size=None)
    with pytest.raises(ValueError, match="not among the model.s 2 classes"):
        evaluate_shift(Oracle(), tmp_path / "r", train_classes=["c0", "c1"], image_size=32)
