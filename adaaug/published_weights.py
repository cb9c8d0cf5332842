"""The corruption networks' published checkpoints: where they are, how a download is checked, and
converting one once into a safetensors file that adaaug loads.

The AdA paper does not train its EDSR and CAE: it uses DeepAugment's pre-trained files (App. E.6).
Those, and EDSR-PyTorch's baseline checkpoints, are named here as weights tags
(:data:`PUBLISHED_FILES`), checked like torchvision's: DeepAugment's files by their git blob id in
``hendrycks/imagenet-r`` at a pinned commit (SHA-1 of ``b"blob <size>\\0"`` + content), EDSR-PyTorch's
by the sha256 prefix their names carry (torch.hub's convention).

A published checkpoint (``torch.save`` output, ``.pt``/``.pth``/``.state``) is read once with
``torch.load(weights_only=True)`` (no code runs), converted by :mod:`adaaug.backbones.published` (every
key and shape checked) and written as safetensors with a JSON card beside it (source, sha256 of the
original, the conversion, the network's config) in ``<cache>/weights/``, named by the backbone and the
original's sha256, so later loads read safetensors only. ``<cache>`` is adaaug's cache directory
(:func:`adaaug._files.cache_dir`, ``$ADAAUG_CACHE``); downloads go to ``<cache>/downloads/``. With
caching off a given file is converted in memory on every load and nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ._files import cache_dir, git_blob_sha1, sha256_of, write_atomic

_PYTHON_WEIGHTS = re.compile(r"weights='([^']*)'")


class WeightsAdvice:
    """Mixin of the weights errors, whose advice is written for Python (``weights='X'``): on the command line
    the advice names the command's own option instead, ``--backbone-weights X`` or ``--weights X``."""

    def for_command(self, has_option: Callable[[str], bool]) -> str:
        for option in ("--backbone-weights", "--weights"):
            if has_option(option):
                return _PYTHON_WEIGHTS.sub(lambda m: f"{option} {m.group(1)}", str(self))
        return str(self)


class WeightsNotFoundError(WeightsAdvice, FileNotFoundError):
    """Published weights that could not be had (offline, no network, caching off); the message gives the URL
    and the ``adaaug convert-weights`` command."""

#: bump when the conversion changes, so that stale cache entries are not read
CONVERSION_VERSION = 1
#: set to 1 to never download (the error then gives the URL for a manual download)
OFFLINE_ENV = "ADAAUG_OFFLINE"
_DEEPAUGMENT_COMMIT = "3131cacee97c407bd2ecea15846a67817a64f924"
_DEEPAUGMENT_RAW = f"https://raw.githubusercontent.com/hendrycks/imagenet-r/{_DEEPAUGMENT_COMMIT}/DeepAugment"
_EDSR_PYTORCH = "https://cv.snu.ac.kr/research/EDSR/models"
_FAMILY = {"edsr": "edsr", "edsr-down": "edsr", "cae": "cae"}


@dataclass(frozen=True)
class PublishedFile:
    """One published checkpoint.

    Attributes:
        tag: the weights tag users pass (``weights="deepaugment"``).
        family: ``"edsr"`` (tags of backbones ``edsr`` and ``edsr-down``) or ``"cae"``.
        filename: the file's published name. url: where it is downloaded from.
        check: ``"git-blob"`` (``digest`` is the full git blob id) or ``"sha256-prefix"`` (the start of
            the file's sha256, as torch.hub checks it). digest: the expected value.
        publisher: who publishes it, for messages and the card. about: one line on what it is.
    """

    tag: str
    family: str
    filename: str
    url: str
    check: str
    digest: str
    publisher: str
    about: str


PUBLISHED_FILES: tuple[PublishedFile, ...] = (
    PublishedFile("deepaugment", "edsr", "edsr_baseline_x4.pt", f"{_DEEPAUGMENT_RAW}/EDSR_Weights/edsr_baseline_x4.pt",
                  "git-blob", "c69235dd5286cef22d9d7bd8c409fad7f2a1c6db",
                  f"DeepAugment (hendrycks/imagenet-r at {_DEEPAUGMENT_COMMIT[:7]})",
                  "EDSR baseline x4 (16 blocks, 64 features), the file DeepAugment and the AdA paper use"),
    PublishedFile("deepaugment", "cae", "model_final.state", f"{_DEEPAUGMENT_RAW}/CAE_Weights/model_final.state",
                  "git-blob", "e8e15ac75ed1b406429554a14f6c8efb929990ee",
                  f"DeepAugment (hendrycks/imagenet-r at {_DEEPAUGMENT_COMMIT[:7]})",
                  "DeepAugment's compressive autoencoder, the file DeepAugment and the AdA paper use"),
    PublishedFile("edsr-pytorch-x2", "edsr", "edsr_baseline_x2-1bc95232.pt",
                  f"{_EDSR_PYTORCH}/edsr_baseline_x2-1bc95232.pt", "sha256-prefix", "1bc95232",
                  "EDSR-PyTorch (Lim et al. 2017)",
                  "EDSR baseline x2: 1,369,859 parameters, the count the AdA paper gives (App. B.1)"),
    PublishedFile("edsr-pytorch-x4", "edsr", "edsr_baseline_x4-6b446fab.pt",
                  f"{_EDSR_PYTORCH}/edsr_baseline_x4-6b446fab.pt", "sha256-prefix", "6b446fab",
                  "EDSR-PyTorch (Lim et al. 2017)", "EDSR baseline x4 as EDSR-PyTorch publishes it"),
)


def converts(name: str) -> bool:
    """Whether backbone ``name`` can load a published checkpoint (``edsr``, ``edsr-down``, ``cae``)."""
    return name in _FAMILY


def published_file(name: str, tag: str) -> PublishedFile | None:
    """The published checkpoint that ``tag`` names for backbone ``name``, or ``None``."""
    family = _FAMILY.get(name)
    return next((p for p in PUBLISHED_FILES if p.family == family and p.tag == tag), None)


def published_tags(name: str) -> list[str]:
    """The tags of published checkpoints for backbone ``name`` (empty for the others)."""
    return [p.tag for p in PUBLISHED_FILES if p.family == _FAMILY.get(name)]


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte little-endian header length, then ``{``).

    Decided by content, not by the name: a truncated safetensors file still counts (reading it
    then fails naming the file); ``torch.save`` output (zip or legacy pickle) does not.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 32)


def verify_published(path: str | os.PathLike, pub: PublishedFile, *, label: str | None = None,
                     fix: str | None = None) -> None:
    """Raise ``ValueError`` naming expected and actual digests when ``path`` is not ``pub``'s file.

    ``label`` names the file in the message (default: its path); ``fix`` replaces the advice.
    """
    if pub.check == "git-blob":
        actual, what = git_blob_sha1(path), "git blob id"
        ok = actual == pub.digest
    else:
        actual, what = sha256_of(path), "sha256"
        ok = actual.startswith(pub.digest)
    if not ok:
        expected = pub.digest if pub.check == "git-blob" else f"{pub.digest}..."
        fix = fix or (f"the file is cut short or another one; delete it and download {pub.url} again, or pass the "
                      f"file you have with weights='path/to/file'")
        raise ValueError(f"{label or path} is not {pub.publisher}'s {pub.filename}: expected {what} {expected}, "
                         f"got {actual}. {fix}")


def convert_checkpoint(name: str, path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Read a published checkpoint safely and convert it: ``(state dict, config, one-line conversion)``.

    Raises ``ValueError`` naming the file and what differs from the published layout.
    """
    from .backbones.published import convert_published, read_checkpoint

    if not converts(name):
        raise ValueError(f"{path} is not a safetensors file, and backbone {name!r} has no published checkpoint "
                         f"format (those convert for: {', '.join(_FAMILY)}); pass a .safetensors file")
    try:
        return convert_published(name, read_checkpoint(path))
    except ValueError as err:
        raise ValueError(f"cannot load {path} as a published {name} checkpoint: {err}") from err


def write_converted(name: str, original: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False,
                    source: str | None = None, digest: str | None = None) -> Path:
    """Convert ``original`` and write ``out`` (safetensors) plus ``out`` with ``.json`` (the card), atomically.

    ``source`` describes where the original came from (default: its file name); ``digest`` is its
    sha256 if already known. The safetensors metadata carries ``{"config": json}`` so that
    :func:`adaaug.weights.load_backbone` builds the right network. Raises ``FileExistsError`` when
    ``out`` or its card exists and ``overwrite`` is false; ``ValueError`` from the conversion.
    """
    from safetensors.torch import save

    from importlib.metadata import PackageNotFoundError, version

    try:
        adaaug_version = version("adaaug")
    except PackageNotFoundError:
        adaaug_version = "unknown"
    original, out = Path(original), Path(out)
    card_path = out.with_suffix(".json")
    if not overwrite:
        for p in (out, card_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; pass --overwrite (overwrite=True) to replace it")
    digest = digest or sha256_of(original)
    state, config, conversion = convert_checkpoint(name, original)
    from .backbones import backbone_spec

    layout_mark = getattr(backbone_spec(name).factory, "weights_metadata", dict)()  # the CAE's layout mark
    metadata = {"name": name, "config": json.dumps(config, sort_keys=True), "original_sha256": digest,
                "conversion": conversion, **layout_mark}
    blob = save(state, metadata=metadata)
    write_atomic(out, lambda f: f.write(blob), overwrite=overwrite)
    card = {"name": name, "file": out.name, "sha256": sha256_of(out), "config": config,
            "parameters": sum(int(v.numel()) for v in state.values()),
            "source": source or f"file {original.name}", "original_file": original.name,
            "original_sha256": digest, "conversion": conversion, "conversion_version": CONVERSION_VERSION,
            "converted_by": f"adaaug {adaaug_version}"}
    text = json.dumps(card, indent=2) + "\n"
    try:
        write_atomic(card_path, lambda f: f.write(text.encode()), overwrite=True)
    except BaseException:
        out.unlink(missing_ok=True)  # no file without its card
        raise
    return out


def _entry(name: str, digest: str) -> Path | None:
    d = cache_dir()
    return None if d is None else d / "weights" / f"{name}-{digest[:32]}-c{CONVERSION_VERSION}.safetensors"


def cached_conversion(name: str, original: str | os.PathLike, *, source: str | None = None) -> Path | None:
    """The safetensors file converted from ``original`` in the cache, made on first use; ``None`` when
    caching is off or the cache cannot be written. An entry whose card does not name the original's
    sha256 is made again."""
    digest = sha256_of(original)
    entry = _entry(name, digest)
    if entry is None:
        return None
    card = entry.with_suffix(".json")
    try:
        if entry.is_file() and json.loads(card.read_text()).get("original_sha256") == digest:
            return entry
    except (OSError, ValueError):
        pass  # a damaged card: convert again
    try:
        return write_converted(name, original, entry, overwrite=True, source=source, digest=digest)
    except OSError:
        return None  # a read-only or full cache: the caller converts in memory


def _download(name: str, pub: PublishedFile, path: Path) -> None:
    """Download ``pub.url`` to ``path`` atomically; the file appears only once it verifies."""
    import http.client
    import urllib.request

    print(f"adaaug: downloading {pub.url} to {path}", file=sys.stderr)

    def fetch(f) -> None:
        with urllib.request.urlopen(pub.url, timeout=60) as response:
            expected, got = response.headers.get("Content-Length"), 0
            try:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
                    got += len(chunk)
            except http.client.HTTPException as err:  # IncompleteRead: the connection closed early
                raise ValueError(f"the download of {pub.url} was cut short ({err!r}); try again") from err
        if expected is not None and got != int(expected):
            raise ValueError(f"the download of {pub.url} was cut short: {got} of {expected} bytes; try again")

    fix = f"It was not kept. Try again later, or {manual_fix(name, pub)}"
    write_atomic(path, fetch, check=lambda tmp: verify_published(tmp, pub, label=f"the download of {pub.url}", fix=fix))


def manual_fix(name: str, pub: PublishedFile) -> str:
    """How to get ``pub`` by hand: the URL and the ``adaaug convert-weights`` command."""
    return (f"download {pub.url} yourself and pass weights='path/to/{pub.filename}', or convert it once with "
            f"`adaaug convert-weights {name} path/to/{pub.filename} OUT_DIR` and pass the .safetensors file it "
            f"writes")


def fetch_published(name: str, pub: PublishedFile, looked: list[str]) -> Path:
    """The converted safetensors file of ``pub``: from the cache, or downloaded, verified, converted and cached.

    ``looked`` lists the places already tried, for the error. Raises ``FileNotFoundError`` (with the URL
    and the ``convert-weights`` command) when the file cannot be downloaded or caching is off, and
    ``ValueError`` when a download fails its check.
    """
    d = cache_dir()
    if d is None:
        raise WeightsNotFoundError(f"weights {name!r}/{pub.tag!r} are downloaded into adaaug's cache, which "
                                f"ADAAUG_CACHE turns off. Fix: {manual_fix(name, pub)}")
    original = d / "downloads" / pub.filename
    if original.is_file():
        try:
            verify_published(original, pub)
        except ValueError:
            original.unlink()  # written atomically and checked, so damaged since: download again
    if not original.is_file():
        looked = [*looked, f"cache {original}", pub.url]
        if os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "no", "false", "off"):
            raise WeightsNotFoundError(f"could not find weights {name!r}/{pub.tag!r}. Looked at: {'; '.join(looked)} "
                                    f"(not downloaded: {OFFLINE_ENV} is set). Fix: {manual_fix(name, pub)}")
        try:
            _download(name, pub, original)
        except OSError as err:  # no network, HTTP error, timeout, unwritable cache
            raise WeightsNotFoundError(f"could not get weights {name!r}/{pub.tag!r}. Looked at: {'; '.join(looked)} "
                                    f"({type(err).__name__}: {err}). Fix: {manual_fix(name, pub)}") from err
    converted = cached_conversion(name, original, source=f"{pub.publisher}: {pub.url}")
    return converted if converted is not None else original  # an unwritable cache: converted on each load
