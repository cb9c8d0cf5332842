"""Data archives for the experiment commands (``mini-protocol``, ``finetune``, ``gpu-compare``): a ``.tar.gz``,
``.tgz`` or ``.tar`` of an ImageFolder tree is extracted once into a folder of its own and used from there."""
from __future__ import annotations

import gzip
import shutil
import tarfile
import zlib
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def resolve_spec(spec: str, dest: Path, elsewhere: str = "choose another --out folder") -> str:
    """A data spec for :func:`~adaaug.data.images.load_images`; an archive (``.tar.gz``, ``.tgz``, ``.tar``) is
    extracted once, into ``dest/<archive name without its suffix>``, and extracted again when it changes (another
    file, size or modification time: the marker ``.extracted`` records them).

    Raises ``FileExistsError`` when that folder holds files adaaug did not extract (the message ends with
    ``elsewhere``, the caller's way out), and ``ValueError`` when the archive cannot be extracted (not a tar file,
    truncated, or a member that would land outside the folder: an absolute link, ``..``); what a killed extraction
    left (its marker ``.extracting``) is replaced.
    """
    from ..data.images import class_folders

    suffix = next((s for s in ARCHIVE_SUFFIXES if spec.endswith(s)), None)
    if suffix is None:
        return spec
    archive = Path(spec)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    target = dest / archive.name[: -len(suffix)]
    stat = archive.stat()
    record = f"{archive.resolve()}\n{stat.st_size} {stat.st_mtime_ns}\n"
    done, started = target / ".extracted", target / ".extracting"
    if not (done.is_file() and done.read_text() == record):
        ours = done.exists() or started.exists()
        if target.is_dir() and not ours and any(target.iterdir()):
            raise FileExistsError(f"{target} holds files that adaaug did not extract from {archive.name}: move them "
                                  f"away or {elsewhere}")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        started.write_text(record)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")  # refuses links out of the folder, absolute paths, devices
        # not a tar file, truncated, or a member the filter refuses
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            shutil.rmtree(target, ignore_errors=True)
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ValueError(f"cannot extract {archive}: {reason}; pass a .tar.gz, .tgz or .tar of "
                             f"an image folder whose links stay inside it, or the extracted folder itself") from None
        done.write_text(record)
        started.unlink()
    roots = class_folders(target)  # <split>/<class>/<image> or <class>/<image> directly
    return str(target / roots[0]) if len(roots) == 1 and class_folders(target / roots[0]) else str(target)
