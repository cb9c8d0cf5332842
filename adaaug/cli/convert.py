"""``adaaug convert-weights NAME FILE OUT``: a publisher's checkpoint of EDSR or the CAE, as safetensors.

Reads ``FILE`` (EDSR-PyTorch's ``edsr_baseline_x2/x4.pt``, DeepAugment's ``edsr_baseline_x4.pt`` or
``model_final.state``) with ``torch.load(weights_only=True)``, checks every key and shape, converts it
and writes ``OUT`` (a ``.safetensors`` path, or a directory that gets ``NAME-<FILE's stem>.safetensors``)
with a JSON card beside it. Pass the result as ``weights=`` (or ``adaaug train --backbone-weights``); this is what
``load_backbone`` does into adaaug's cache, for machines without one (``ADAAUG_CACHE=off``) or
without network. Refuses to overwrite without ``--overwrite``; written atomically, so a failed or
interrupted run (Ctrl-C, SIGTERM) leaves no partial file.

    adaaug convert-weights edsr edsr_baseline_x4.pt weights/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..published_weights import PUBLISHED_FILES, write_converted
from ..runtime.errors import UsageError

NAMES = ("edsr", "edsr-down", "cae")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help=f"backbone the file is for: {', '.join(NAMES)}")
    p.add_argument("file", help="the published checkpoint: "
                   + ", ".join(sorted({f.filename for f in PUBLISHED_FILES})) + " (or a renamed copy)")
    p.add_argument("out", help="output .safetensors file, or a directory for NAME-<FILE stem>.safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace OUT and its card if they exist")


def output_path(name: str, file: Path, out: Path) -> Path:
    """``out`` itself when it ends in ``.safetensors``, else ``out/<name>-<file stem>.safetensors``."""
    if out.suffix == ".safetensors":
        return out
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT {out} is a file that is not .safetensors; pass a .safetensors path or a directory")
    return out / f"{name}-{file.stem}.safetensors"


def main(args: argparse.Namespace) -> int:
    if args.name not in NAMES:
        raise UsageError(f"unknown NAME {args.name!r}; published checkpoints convert for: {', '.join(NAMES)}")
    file, out = Path(args.file).expanduser(), Path(args.out).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"FILE {file} does not exist")
    path = output_path(args.name, file, out)
    # SIGTERM is handled as Ctrl-C by the command line (adaaug.runtime.interrupts): it unwinds through
    # write_atomic, which removes its temporary file, and the command ends with one line and status 143
    write_converted(args.name, file, path, overwrite=args.overwrite, source=f"file {file.name}")
    print(f"wrote {path} and {path.with_suffix('.json').name}; pass weights='{path}' "
          f"(adaaug train: --backbone-weights {path})", file=sys.stdout)
    return 0
