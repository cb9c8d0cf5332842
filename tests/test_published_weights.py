"""Published checkpoints (EDSR-PyTorch, DeepAugment): loading a given file, the conversion cache, the
download of a named tag (from a local server), its checks, the offline message and ``convert-weights``."""
from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import adaaug._files as files
import adaaug.published_weights as P
import adaaug.weights as W
from adaaug.cli import main as cli
from published_layouts import deepaugment_cae_state, edsr_baseline_state, save_published


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """adaaug's cache in a fresh folder, HOME elsewhere (to see that nothing is written there), no network."""
    monkeypatch.setenv("ADAAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADAAUG_OFFLINE", "1")
    return tmp_path / "cache"


@pytest.fixture
def edsr_x2(tmp_path):
    return save_published(edsr_baseline_state(2), tmp_path / "given" / "edsr_baseline_x2-1bc95232.pt")


@pytest.fixture
def cae_file(tmp_path):
    return save_published(deepaugment_cae_state(), tmp_path / "given" / "model_final.state")


def _no_torch_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called: the cache was not used")

    monkeypatch.setattr(torch, "load", refuse)


def _all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_given_edsr_file_is_converted_once_cached_and_read_as_safetensors(cache, edsr_x2, tmp_path, monkeypatch):
    published = edsr_baseline_state(2)
    net = W.load_backbone("edsr", edsr_x2)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    # by hand: the ×2 upsampling conv is tail.0.0, biases divided by 255 (the network runs on [0, 1], not 0–255)
    torch.testing.assert_close(net.upsample.weight, published["tail.0.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(net.upsample.bias, published["tail.0.0.bias"] / 255)
    torch.testing.assert_close(net.body[3].conv2.weight, published["body.3.body.2.weight"], rtol=0, atol=0)
    entries = sorted((cache / "weights").glob("*.safetensors"))
    assert len(entries) == 1
    digest = hashlib.sha256(edsr_x2.read_bytes()).hexdigest()
    card = json.loads(entries[0].with_suffix(".json").read_text())
    assert card["original_sha256"] == digest and digest[:32] in entries[0].name
    assert card["config"]["scale"] == 2 and card["conversion"] and card["source"] == f"file {edsr_x2.name}"
    assert card["sha256"] == hashlib.sha256(entries[0].read_bytes()).hexdigest()
    assert W.safetensors_config(entries[0]) == card["config"]  # what builds the right network on loading
    assert not (tmp_path / "home").exists()
    assert _all_files(tmp_path / "given") == {edsr_x2.name}  # nothing written beside the user's file

    _no_torch_load(monkeypatch)  # the second load reads the cached safetensors only
    again = W.load_backbone("edsr", str(edsr_x2))
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    assert len(list((cache / "weights").glob("*.safetensors"))) == 1


def test_caching_off_converts_in_memory_and_writes_nothing(cache, cae_file, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAAUG_CACHE", "off")
    net = W.load_backbone("cae", cae_file)
    assert sum(p.numel() for p in net.parameters()) == 2_241_859
    assert not cache.exists() and not (tmp_path / "home").exists()


def test_a_changed_original_gets_its_own_cache_entry(cache, edsr_x2):
    W.load_backbone("edsr", edsr_x2)
    save_published(edsr_baseline_state(2, seed=1), edsr_x2)
    net = W.load_backbone("edsr", edsr_x2)
    torch.testing.assert_close(net.head.weight, edsr_baseline_state(2, seed=1)["head.0.weight"], rtol=0, atol=0)
    assert len(list((cache / "weights").glob("*.safetensors"))) == 2


def test_truncated_and_renamed_files_are_refused_naming_the_problem(cache, edsr_x2, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(edsr_x2.read_bytes()[: edsr_x2.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"cannot load {cut} as a published edsr checkpoint"):
        W.load_backbone("edsr", cut)
    state = edsr_baseline_state(2)
    state["body.0.body.9.weight"] = state.pop("body.0.body.2.weight")
    renamed = save_published(state, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match="body.0.body"):
        W.load_backbone("edsr", renamed)
    assert not list(cache.rglob("*.safetensors"))
    with pytest.raises(ValueError, match="no published checkpoint format.*edsr, edsr-down, cae"):
        W.load_backbone("unet", edsr_x2)


def test_safetensors_is_told_from_a_checkpoint_by_content(tmp_path, edsr_x2):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "named.pt"))
    assert P.is_safetensors(tmp_path / "named.pt") and not P.is_safetensors(edsr_x2)
    (tmp_path / "short").write_bytes(b"\x01")
    assert not P.is_safetensors(tmp_path / "short")


def test_unknown_tag_says_where_it_looked_and_lists_every_tag(cache):
    with pytest.raises(FileNotFoundError) as info:
        W.load_backbone("edsr", "imagenet")
    text = str(info.value)
    assert isinstance(info.value, ValueError)
    for word in ("'imagenet'", "cifar10", "deepaugment", "edsr-pytorch-x2", "edsr-pytorch-x4", "Looked in",
                 "weights='deepaugment'", "App. E.6"):
        assert word in text, word
    with pytest.raises(FileNotFoundError, match="trained its VQ-VAE and U-Net on ImageNet.*train-backbone vqvae"):
        W.load_backbone("vqvae", "imagenet")


def test_weights_for_reads_one_entry_per_backbone():
    spec = "edsr=deepaugment, vqvae=runs/vqvae-imagenet.safetensors,unet=none"
    assert W.weights_for("edsr", spec) == "deepaugment"
    assert W.weights_for("vqvae", spec) == "runs/vqvae-imagenet.safetensors"
    assert W.weights_for("unet", spec) is None and W.weights_for("cae", "cifar10") == "cifar10"
    with pytest.raises(ValueError, match="no entry for backbone 'cae'.*add cae=TAG_OR_FILE"):
        W.weights_for("cae", spec)
    with pytest.raises(ValueError, match="'edsr' is not NAME=TAG_OR_FILE"):
        W.weights_for("edsr", "edsr,cae=deepaugment")


# ---- named tags, downloaded from a local server --------------------------------------------------------
class _Server:
    """Serves ``files[name]`` bytes; ``cut`` sends a full Content-Length but only half the body."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        self.cut = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.cut else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(monkeypatch, cache):
    s = _Server()
    monkeypatch.delenv("ADAAUG_OFFLINE")
    monkeypatch.setattr(P, "PUBLISHED_FILES", tuple(replace(p, url=f"{s.url}/{p.filename}") for p in P.PUBLISHED_FILES))
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


def _publish(monkeypatch, server: _Server, family: str, tag: str, data: bytes, digest: str) -> None:
    """Serve ``data`` as the file of ``family``/``tag`` and expect ``digest``."""
    pub = P.published_file(family, tag)
    server.files[pub.filename] = data
    monkeypatch.setattr(P, "PUBLISHED_FILES", tuple(replace(p, digest=digest) if p is pub else p
                                                    for p in P.PUBLISHED_FILES))


def test_named_tag_downloads_verifies_converts_and_caches(server, cache, cae_file, monkeypatch, capsys):
    data = cae_file.read_bytes()
    _publish(monkeypatch, server, "cae", "deepaugment", data, _blob_id(data))
    net = W.load_backbone("cae", "deepaugment")
    assert server.hits == ["/model_final.state"] and "downloading" in capsys.readouterr().err
    assert (cache / "downloads" / "model_final.state").read_bytes() == data
    card = json.loads(next((cache / "weights").glob("*.json")).read_text())
    assert card["source"].endswith(f"{server.url}/model_final.state") and "DeepAugment" in card["source"]
    _no_torch_load(monkeypatch)
    again = W.load_backbone("cae", "deepaugment")
    assert server.hits == ["/model_final.state"]  # no second download, no second conversion
    for a, b in zip(net.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_sha256_prefix_tag_is_checked_like_torch_hub(server, cache, edsr_x2, monkeypatch):
    data = edsr_x2.read_bytes()
    _publish(monkeypatch, server, "edsr", "edsr-pytorch-x2", data, hashlib.sha256(data).hexdigest()[:8])
    assert sum(p.numel() for p in W.load_backbone("edsr-down", "edsr-pytorch-x2").parameters()) == 1_369_859
    _publish(monkeypatch, server, "edsr", "edsr-pytorch-x2", data, "00000000")
    (cache / "downloads" / "edsr_baseline_x2-1bc95232.pt").unlink()
    with pytest.raises(ValueError, match="expected sha256 00000000..., got " + hashlib.sha256(data).hexdigest()):
        W.load_backbone("edsr", "edsr-pytorch-x2")


@pytest.mark.parametrize("fault", ["wrong file", "cut short"])
def test_a_bad_download_is_refused_and_not_kept(server, cache, cae_file, monkeypatch, fault):
    data = cae_file.read_bytes()
    expected = _blob_id(data)
    if fault == "wrong file":  # another valid checkpoint of the same layout
        other = save_published(deepaugment_cae_state(seed=3), cae_file.with_name("other.state")).read_bytes()
        _publish(monkeypatch, server, "cae", "deepaugment", other, expected)
        match = f"expected git blob id {expected}, got {_blob_id(other)}.*not kept.*convert-weights cae"
    else:
        _publish(monkeypatch, server, "cae", "deepaugment", data, expected)
        server.cut = True
        match = "cut short"
    with pytest.raises(ValueError, match=match):
        W.load_backbone("cae", "deepaugment")
    assert not (cache / "downloads").exists() or _all_files(cache / "downloads") == set()
    assert not list(cache.rglob("*.safetensors"))


def test_a_damaged_cached_download_is_fetched_again(server, cache, cae_file, monkeypatch):
    data = cae_file.read_bytes()
    _publish(monkeypatch, server, "cae", "deepaugment", data, _blob_id(data))
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / "model_final.state").write_bytes(data[:100])
    W.load_backbone("cae", "deepaugment")
    assert server.hits == ["/model_final.state"]


def test_offline_error_names_the_url_and_convert_weights(cache, monkeypatch):
    with pytest.raises(FileNotFoundError, match="ADAAUG_OFFLINE.*download https://raw.githubusercontent.com/"
                       "hendrycks/imagenet-r/3131cacee97c407bd2ecea15846a67817a64f924/DeepAugment/EDSR_Weights/"
                       "edsr_baseline_x4.pt yourself.*`adaaug convert-weights edsr path/to/edsr_baseline_x4.pt"):
        W.load_backbone("edsr", "deepaugment")
    monkeypatch.delenv("ADAAUG_OFFLINE")
    with socket.socket() as s:  # a port nothing listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/model_final.state"
    monkeypatch.setattr(P, "PUBLISHED_FILES", tuple(replace(p, url=dead) for p in P.PUBLISHED_FILES))
    with pytest.raises(FileNotFoundError, match=f"could not get weights 'cae'/'deepaugment'.*{dead}.*"
                       "convert-weights cae"):
        W.load_backbone("cae", "deepaugment")
    assert not list(cache.rglob("*.state"))


@pytest.mark.parametrize("tag", ["deepaugment", "imagenet"])  # offline (WeightsNotFoundError), unknown tag
def test_weights_advice_names_each_commands_own_option(cache, tmp_path, capsys, tag):
    # the advice is written for Python (weights='...'); a command gives its own option instead
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="weights='"):
        W.load_backbone("edsr", tag)
    src = tmp_path / "src"
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(src / c / f"{i}.png")
    runs = {"--weights": ["deepaugment-data", str(src), str(tmp_path / "da"), "--weights", tag],
            "--backbone-weights": ["train", "--data", str(src), "--out", str(tmp_path / "run"), "--method", "ada",
                                   "--backbone", "edsr", "--backbone-weights", tag, "--epochs", "1", "--warmup-epochs", "0",
                                   "--batch-size", "2", "--device", "cpu", "--workers", "0"]}
    for option, argv in runs.items():
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert "weights='" not in err and f"{option} " in err.split("error:", 1)[1], (option, err)
        assert f"{option} path/to/" in err or f"{option} deepaugment" in err, err


def test_published_files_name_their_pinned_sources():
    by = {(p.family, p.tag): p for p in P.PUBLISHED_FILES}
    assert by["edsr", "deepaugment"].digest == "c69235dd5286cef22d9d7bd8c409fad7f2a1c6db"
    assert by["cae", "deepaugment"].digest == "e8e15ac75ed1b406429554a14f6c8efb929990ee"
    for (family, tag), p in by.items():
        if p.check == "sha256-prefix":  # torch.hub: the name carries the sha256 prefix
            assert p.filename.endswith(f"-{p.digest}.pt") and p.url.endswith(p.filename)
        else:
            assert "/3131cacee97c407bd2ecea15846a67817a64f924/DeepAugment/" in p.url
    assert P.published_tags("edsr-down") == P.published_tags("edsr") == ["deepaugment", "edsr-pytorch-x2",
                                                                          "edsr-pytorch-x4"]
    assert P.published_tags("vqvae") == []


# ---- adaaug convert-weights ------------------------------------------------------------------------------
def test_convert_weights_writes_file_and_card_and_refuses_to_overwrite(cache, edsr_x2, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["convert-weights", "edsr", str(edsr_x2), str(out)]) == 0
    written = out / f"edsr-{edsr_x2.stem}.safetensors"
    card = json.loads(written.with_suffix(".json").read_text())
    assert card["original_sha256"] == hashlib.sha256(edsr_x2.read_bytes()).hexdigest()
    assert _all_files(out) == {written.name, written.with_suffix(".json").name}
    assert not cache.exists()  # the command writes OUT only
    a, b = W.load_backbone("edsr", written), W.load_backbone("edsr", edsr_x2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    capsys.readouterr()
    assert cli(["convert-weights", "edsr", str(edsr_x2), str(written)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert cli(["convert-weights", "edsr", str(edsr_x2), str(written), "--overwrite"]) == 0


def test_convert_weights_leaves_nothing_when_it_fails(edsr_x2, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert cli(["convert-weights", "cae", str(edsr_x2), str(out / "x.safetensors")]) == 2
    assert "cannot load" in capsys.readouterr().err and _all_files(out) == set()
    assert cli(["convert-weights", "unet", str(edsr_x2), str(out)]) == 2
    assert "unknown NAME 'unet'" in capsys.readouterr().err


def test_write_atomic_leaves_no_file_when_interrupted(tmp_path):
    def interrupted(f) -> None:
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(tmp_path / "x.safetensors", interrupted)
    assert list(tmp_path.iterdir()) == []
    files.write_atomic(tmp_path / "x.bin", lambda f: f.write(b"1"))
    with pytest.raises(FileExistsError):
        files.write_atomic(tmp_path / "x.bin", lambda f: f.write(b"2"), overwrite=False)
    assert (tmp_path / "x.bin").read_bytes() == b"1" and len(list(tmp_path.iterdir())) == 1


# ---- the ImageNet protocol and DeepAugment on the published networks ------------------------------------
def test_imagenet_preset_takes_the_published_edsr(server, cache, tmp_path, monkeypatch):
    from adaaug import AdversarialAugment

    data = save_published(edsr_baseline_state(4), tmp_path / "x4.pt").read_bytes()
    _publish(monkeypatch, server, "edsr", "deepaugment", data, _blob_id(data))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    ada = AdversarialAugment.imagenet(model, ssim_threshold=None, steps=1)
    assert server.hits == ["/edsr_baseline_x4.pt"] and "deepaugment" in repr(ada)
    assert ada.corruptors[0].module.config["scale"] == 4
    x, y = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3])
    before = {k: v.clone() for k, v in ada.corruptors[0].module.state_dict().items()}
    out = ada(x, y, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert all(torch.equal(before[k], v) for k, v in ada.corruptors[0].module.state_dict().items())


def test_imagenet_preset_with_all_backbones_says_how_to_train_vqvae_and_unet(server, cache):
    from adaaug import AdversarialAugment

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    with pytest.raises(FileNotFoundError, match="trained its VQ-VAE and U-Net on ImageNet.*train-backbone (unet|vqvae) "
                       ".*--tag imagenet.*edsr=deepaugment,cae=deepaugment,vqvae=FILE,unet=FILE"):
        AdversarialAugment.imagenet(model, backbone="all")
    assert server.hits == []  # checked before anything is downloaded


def test_ada_and_deepaugment_run_on_given_published_files(cache, edsr_x2, cae_file):
    from adaaug import AdversarialAugment
    from adaaug.augment.deepaugment import DeepAugment

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    ada = AdversarialAugment(model, backbone=["edsr", "cae"], weights={"edsr": edsr_x2, "cae": str(cae_file)},
                             steps=1, ssim_threshold=None, chunk_size=2)
    x, y = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3])
    assert ada(x, y, generator=torch.Generator().manual_seed(1)).shape == x.shape
    da = DeepAugment("cae", weights=cae_file, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in da.module.state_dict().items()}
    out = da(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert all(torch.equal(before[k], v) for k, v in da.module.state_dict().items())


def test_convert_weights_killed_by_sigterm_leaves_no_partial_file(edsr_x2, tmp_path, monkeypatch, capsys):
    import os
    import signal

    real = P.write_atomic

    def killed_halfway(path, write, **kwargs):
        def half(f) -> None:
            f.write(b"partial")
            os.kill(os.getpid(), signal.SIGTERM)  # the command line's handler raises its interrupt here

        return real(path, half, **kwargs)

    monkeypatch.setattr(P, "write_atomic", killed_halfway)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    assert cli(["convert-weights", "edsr", str(edsr_x2), str(out)]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines()[-1] == "adaaug convert-weights: interrupted by SIGTERM"
    assert _all_files(out) == set() and signal.getsignal(signal.SIGTERM) is before


def test_a_read_only_cache_converts_in_memory(cache, cae_file, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(P, "write_atomic", read_only)
    net = W.load_backbone("cae", cae_file)
    assert sum(p.numel() for p in net.parameters()) == 2_241_859 and not list(cache.rglob("*.safetensors"))


def test_train_config_checks_each_per_backbone_weights_file(tmp_path):
    from adaaug.train.config import ConfigError, TrainConfig

    cfg = dict(data=str(tmp_path), method="ada", backbone="all", out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=f"--backbone-weights file {tmp_path}/v.safetensors does not exist"):
        TrainConfig(**cfg, backbone_weights=f"edsr=deepaugment,vqvae={tmp_path}/v.safetensors").validate()
    (tmp_path / "v.safetensors").write_bytes(b"x")  # there: accepted (its content is checked on loading)
    TrainConfig(**cfg, backbone_weights=f"edsr=deepaugment,vqvae={tmp_path}/v.safetensors").validate()
