"""Labels of evaluation sets are matched to the model's classes by name, on every path.

The reference is independent of the code under test: each image carries its true class (an index
into ``CLASSES``) in its pixel values, and :class:`Oracle` reads it back, so an always-right model
must score 0 % error whatever folders, order or subset the set holds. Deliberately wrong images
give a known non-zero error, so the tests fail both when labels are scrambled and when
everything is counted as right.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from adaaug.cli import main as cli_main
from adaaug.evaluate.sets import CorruptionDir, open_image_set
from adaaug.evaluate.metrics import accuracy, evaluate_corruptions, evaluate_shift
from adaaug.evaluate.report import markdown_report

CLASSES = ["ant", "bee", "cat", "dog", "eel", "fox"]  # the model's classes, logit order


class Oracle(nn.Module):
    """Always right: one-hot logits at class ``round(255·x[:, 0, 0, 0]) // 20`` (the test writes the true index)."""

    def __init__(self, outputs: int = len(CLASSES)) -> None:
        super().__init__()
        self.outputs = outputs
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = (x[:, 0, 0, 0] * 255).round().long() // 20
        return nn.functional.one_hot(cls, self.outputs).float() * self.scale


def _image(index: int) -> np.ndarray:
    img = np.full((8, 8, 3), 7, np.uint8)
    img[:, :, 0] = 20 * index  # uniform: survives PNG round trips
    return img


def _folder_set(root: Path, content: dict[str, list[int]]) -> Path:
    """``root/<class>/<i>.png``; ``content[class]`` lists the true model index of each image."""
    from PIL import Image

    for name, indices in content.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(indices):
            Image.fromarray(_image(index)).save(root / name / f"{i}.png")
    return root


def _folder_c(root: Path, content: dict[str, list[int]], corruption: str = "gaussian_noise") -> Path:
    for s in range(1, 6):
        _folder_set(root / corruption / str(s), content)
    return root


def _npy_c(root: Path, true: list[int], stored: list[int], class_file: dict | None, name: str = "brightness") -> Path:
    """npy -C layout: images show ``true`` model indices, labels.npy holds ``stored``."""
    root.mkdir(parents=True)
    images = np.stack([_image(i) for i in true])
    np.save(root / f"{name}.npy", np.concatenate([images] * 5))
    np.save(root / "labels.npy", np.tile(np.asarray(stored, np.int64), 5))
    if class_file:
        (name, value), = class_file.items()
        (root / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return root


# a subset of the classes, not starting at the first, in an order unlike the model's
SUBSET = {"dog": [3, 3], "bee": [1, 1], "fox": [5, 5]}


def test_folder_c_subset_in_any_order_scores_an_always_right_model_right(tmp_path):
    root = _folder_c(tmp_path / "c", SUBSET)
    raw = CorruptionDir(root).source("gaussian_noise", 1)
    assert raw.labels.tolist() == [0, 0, 1, 1, 2, 2]  # folder positions: indexing logits with them is the fault
    res = evaluate_corruptions(Oracle(), root, classes=CLASSES)
    assert res["errors"]["gaussian_noise"] == [0.0] * 5
    assert res["n"] == 30 and res["n_per_set"] == {"gaussian_noise": [6] * 5} and res["classes"] == 3
    # the class list can travel with the directory (how `adaaug eval` passes it on to parameter noise)
    assert evaluate_corruptions(Oracle(), CorruptionDir(root, classes=CLASSES))["errors"]["gaussian_noise"] == [0.0] * 5


def test_folder_c_known_errors_are_counted(tmp_path):
    """One image of 'dog' looks like a 'cat' at every severity: exactly 1 of 6 wrong (16.67 %)."""
    root = _folder_c(tmp_path / "c", {"dog": [3, 2], "bee": [1, 1], "fox": [5, 5]})
    res = evaluate_corruptions(Oracle(), root, classes=CLASSES)
    assert res["errors"]["gaussian_noise"] == pytest.approx([100 / 6] * 5)


def test_folder_c_unknown_class_is_refused_before_scoring(tmp_path):
    root = _folder_c(tmp_path / "c", SUBSET)
    _folder_set(root / "gaussian_noise" / "4", {"yak": [0]})
    with pytest.raises(ValueError, match=r"gaussian_noise/4: classes yak are not among the model's 6 classes"):
        evaluate_corruptions(Oracle(), root, classes=CLASSES)
    # a directory mixing layouts: the npy corruption comes first, the folder one is still checked up front
    mixed = _npy_c(tmp_path / "mixed", true=[1], stored=[1], class_file=None, name="gaussian_noise")
    _folder_c(mixed, {"yak": [0], "bee": [1]}, corruption="brightness")
    oracle = Oracle()
    calls = []
    oracle.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError, match=r"brightness/1: classes yak are not among"):
        evaluate_corruptions(oracle, mixed, classes=CLASSES)
    assert len(calls) == 1  # only the probe that counts the model's outputs: no set was scored


def test_unknown_model_classes_refuse_a_subset_and_accept_a_full_set(tmp_path):
    root = _folder_c(tmp_path / "sub", SUBSET)
    with pytest.raises(ValueError, match="has 3 classes .*the model's class names are unknown and it has 6 outputs"):
        evaluate_corruptions(Oracle(), root)
    # every class present (the sorted folder order adaaug train uses): accepted without names
    full = _folder_c(tmp_path / "full", {c: [i] for i, c in enumerate(CLASSES)})
    res = evaluate_corruptions(Oracle(), full)
    assert res["errors"]["gaussian_noise"] == [0.0] * 5 and res["classes"] == 6
    # a predictor callable that hides its model: the class count cannot be checked, so names are required
    with pytest.raises(ValueError, match="class names are unknown"):
        evaluate_corruptions(lambda src, cols=None: np.zeros(len(src), np.int64), full)


@pytest.mark.parametrize("class_file", [{"make_c.json": {"classes": ["bee", "dog", "fox"], "seed": 0}},
                                        {"classes.txt": "bee\ndog\nfox\n"},
                                        {"classes.json": ["bee", "dog", "fox"]}])
def test_npy_c_with_a_class_list_maps_indices_by_name(tmp_path, class_file):
    """make-c on a 3-class folder writes labels 0..2 (its own class list) and the names in make_c.json."""
    root = _npy_c(tmp_path / "c", true=[1, 3, 5, 3], stored=[0, 1, 2, 1], class_file=class_file)
    res = evaluate_corruptions(Oracle(), root, classes=CLASSES)
    assert res["errors"]["brightness"] == [0.0] * 5 and res["classes"] == 3 and res["n"] == 20
    with pytest.raises(ValueError, match="has 3 classes"):  # names known, model's unknown, not all classes
        evaluate_corruptions(Oracle(), root)


def test_npy_c_index_labels_and_their_range(tmp_path):
    root = _npy_c(tmp_path / "ok", true=[0, 4, 5], stored=[0, 4, 5], class_file=None)
    assert evaluate_corruptions(Oracle(), root)["errors"]["brightness"] == [0.0] * 5  # indices: as they are
    bad = _npy_c(tmp_path / "bad", true=[0, 4, 5], stored=[0, 4, 7], class_file=None)
    with pytest.raises(ValueError, match="label 7 is not a class index of the model .6 classes"):
        evaluate_corruptions(Oracle(), bad)
    short = _npy_c(tmp_path / "short", true=[0, 1, 2], stored=[0, 1, 2], class_file={"classes.txt": "a\nb\n"})
    with pytest.raises(ValueError, match="names 2 classes"):
        CorruptionDir(short)


def test_clean_sets_and_shift_sets_match_by_name(tmp_path):
    data = _folder_set(tmp_path / "clean", {"fox": [5, 5, 4], "bee": [1]})  # one 'fox' image looks like an eel
    assert accuracy(Oracle(), open_image_set(data), classes=CLASSES) == 75.0
    with pytest.raises(ValueError, match="class names are unknown"):
        accuracy(Oracle(), open_image_set(data))
    with pytest.raises(ValueError, match="classes yak are not among"):
        accuracy(Oracle(), open_image_set(_folder_set(tmp_path / "yak", {"yak": [0], "bee": [1]})), classes=CLASSES)
    # npy clean set with a class list next to it (as mini-protocol writes)
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "images.npy", np.stack([_image(i) for i in (2, 0, 2)]))
    np.save(npy / "labels.npy", np.array([1, 0, 1]))
    (npy / "classes.json").write_text(json.dumps(["ant", "cat"]))
    assert open_image_set(npy).classes == ["ant", "cat"]
    assert accuracy(Oracle(), open_image_set(npy), classes=CLASSES) == 100.0
    # shift set of a strict subset: only its classes' logits compete
    assert evaluate_shift(Oracle(), data, classes=CLASSES) == {"accuracy": 75.0, "n": 4, "classes": 2,
                                                               "preprocessing": "read as stored, not resized (8×8)"}
    with pytest.raises(ValueError, match="class names are unknown"):
        evaluate_shift(Oracle(), data)


def test_numeric_folders_are_indices_or_matched_by_value(tmp_path):
    """ImageNet-v2 style folders: class indices; against a model trained on numeric folders (sorted as
    text: 0, 1, 10, 11, 2, 3), matched by value instead."""
    data = _folder_set(tmp_path / "v2", {"2": [2], "5": [5]})
    assert accuracy(Oracle(), open_image_set(data)) == 100.0
    text_sorted = ["0", "1", "10", "11", "2", "3"]
    v = _folder_set(tmp_path / "num", {"10": [2, 2], "3": [5], "0": [0]})
    assert accuracy(Oracle(), open_image_set(v), classes=text_sorted) == 100.0
    assert accuracy(Oracle(), open_image_set(v, size=8), classes=text_sorted) == 100.0  # streamed from files
    with pytest.raises(ValueError, match="class folders .7. are not among"):
        accuracy(Oracle(), open_image_set(_folder_set(tmp_path / "n7", {"7": [0]})), classes=text_sorted)


def test_checkpoint_records_class_names(tmp_path):
    """``adaaug train``'s export records the class names; ``load_model_and_classes`` reads them back."""
    from types import SimpleNamespace

    from adaaug.models import build_classifier
    from adaaug.evaluate.command import load_model_and_classes
    from adaaug.train.checkpoint import export_final

    model = build_classifier("resnet20", 6)
    cfg = SimpleNamespace(arch="resnet20", preset="cifar10", method="nominal")
    export_final(model, cfg, tmp_path / "final.safetensors", 6, CLASSES)
    loaded, classes = load_model_and_classes(checkpoint=tmp_path / "final.safetensors")
    assert classes == CLASSES and loaded.state_dict()["1.fc.weight"].shape[0] == 6
    torch.save({"model": model.state_dict(), "classes": CLASSES[::-1]}, tmp_path / "ck.pt")
    assert load_model_and_classes("resnet20", checkpoint=tmp_path / "ck.pt", num_classes=6)[1] == CLASSES[::-1]
    torch.save({"model": model.state_dict()}, tmp_path / "old.pt")
    assert load_model_and_classes("resnet20", checkpoint=tmp_path / "old.pt", num_classes=6)[1] is None
    # the packaged CIFAR-10 classifier's outputs are CIFAR-10's classes in torchvision's order
    assert load_model_and_classes(weights="resnet20")[1][:3] == ["airplane", "automobile", "bird"]


@pytest.fixture
def fake_checkpoint(tmp_path, monkeypatch):
    """``adaaug eval`` with the Oracle standing in for a checkpoint recording ``recorded`` class names."""
    from adaaug.evaluate import command as evaluate

    state = {"recorded": CLASSES}
    described = {"arch": "oracle", "num_classes": len(CLASSES), "normalize": None, "method": None}
    monkeypatch.setattr(evaluate, "load_model_described", lambda *a, **k: (Oracle(), state["recorded"], described))
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"")
    return ck, state


def _cli(ck: Path, tmp_path: Path, *extra: str) -> int:
    return cli_main(["eval", "--checkpoint", str(ck), "--out", str(tmp_path / "res.json"),
                     "--markdown", str(tmp_path / "table.md"), "--device", "cpu", "--overwrite", *extra])


def test_cli_end_to_end_maps_every_set_by_name(tmp_path, fake_checkpoint, capsys):
    ck, state = fake_checkpoint
    data = _folder_set(tmp_path / "clean", {"fox": [5, 5], "bee": [1, 1]})  # 2 of the checkpoint's 6 classes
    c = _folder_c(tmp_path / "c", SUBSET)
    assert _cli(ck, tmp_path, "--data", str(data), "--imagenet-c", str(c), "--imagenet-r", str(data),
                "--param-noise", "0", "--noise-samples", "1") == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["clean"] == {"accuracy": 100.0, "error": 0.0, "n": 4, "classes": 2, "image_size": [8, 8],
                            "preprocessing": "read as stored, not resized (8×8)"}
    assert res["imagenet_c"]["errors"]["gaussian_noise"] == [0.0] * 5
    assert (res["imagenet_c"]["n"], res["imagenet_c"]["classes"]) == (30, 3)
    assert res["param_noise"]["results"]["0"]["errors"]["gaussian_noise"] == [0.0] * 5
    assert res["shift"]["imagenet-r"] == {"accuracy": 100.0, "n": 4, "classes": 2,
                                          "preprocessing": "read as stored, not resized (8×8)"}
    assert res["model"]["class_names_from"] == "checkpoint"
    table = (tmp_path / "table.md").read_text()
    assert "Clean test set: 4 images of 2 classes, error 0.00 %. Images: read as stored, not resized (8×8)." in table
    assert "Scored: 30 images of 3 classes; 6 per corruption and severity." in table
    assert "| imagenet-r | 100.00 | 4 | 2 |" in table
    assert table.strip() == markdown_report(res, "ck").strip()
    # --classes FILE overrides; an unknown name is refused in one line, exit status 2
    (tmp_path / "classes.txt").write_text("ant\nbee\ncat\n")
    capsys.readouterr()
    assert _cli(ck, tmp_path, "--data", str(data), "--classes", str(tmp_path / "classes.txt")) == 2
    assert "classes fox are not among the model's 3 classes (ant, bee, cat)" in capsys.readouterr().err


def test_cli_without_recorded_classes(tmp_path, fake_checkpoint, capsys):
    ck, state = fake_checkpoint
    state["recorded"] = None
    sub = _folder_set(tmp_path / "sub", {"fox": [5], "bee": [1]})
    assert _cli(ck, tmp_path, "--data", str(sub)) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "model's class names are unknown and it has 6 outputs" in err and "--classes FILE" in err
    # a --data set with every class defines the names; the -C subset is then matched against them
    full = _folder_set(tmp_path / "full", {c: [i] for i, c in enumerate(CLASSES)})
    assert _cli(ck, tmp_path, "--data", str(full), "--imagenet-c", str(_folder_c(tmp_path / "c", SUBSET))) == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["model"]["class_names_from"] == "--data" and res["clean"]["classes"] == 6
    assert res["imagenet_c"]["errors"]["gaussian_noise"] == [0.0] * 5
