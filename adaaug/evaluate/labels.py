"""Matching an evaluation set's labels to the model's outputs, by class name.

An evaluation set names its classes (ImageFolder class folders, ``cifar10:``, or a class-list
file next to ``*labels.npy``) or gives bare class indices (``labels.npy`` alone; folders named
``0``, ``1``, ... as in ImageNet-v2). "The model's classes" are the class names in logit order:
``classes=`` in Python; on the command line ``--classes FILE``, else the names ``adaaug train``
records in ``final.safetensors`` (CIFAR-10's for the packaged ``cifar10`` classifiers), else the
clean ``--data`` set's class list.

:func:`align` turns a set's labels into model output indices:

- named classes, the model's classes known: mapped by name (any subset, any order);
  a name the model does not have → ``ValueError`` naming it;
- named classes, the model's classes unknown: accepted only when the set has exactly as many
  classes as the model has outputs (the sorted-folder order ``adaaug train`` uses), else
  ``ValueError`` (a subset cannot be placed without the names);
- indices: used as they are (numeric folder names are matched by value against a model whose
  class names are themselves numbers); an index beyond the model's outputs → ``ValueError``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..classifier_checks import eval_logits, evaluated, input_dtype

# the packaged ``*:cifar10`` classifiers' outputs, in order (torchvision's CIFAR10 class list)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CLASS_FILES = ("classes.json", "classes.txt", "make_c.json")  # looked for next to *labels.npy, in this order
HOW_TO_PASS = ("pass the model's class names in output order: classes=[...] in Python; on the command line "
               "--classes FILE (one name per line, or a JSON list), a --data set holding all of the model's "
               "classes, or a checkpoint written by adaaug train, which records them")


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names from ``path``: a JSON list, a JSON object with a ``"classes"`` list (``make_c.json``),
    or text with one name per line (blank lines ignored). ``ValueError`` for anything else."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        obj = json.loads(text)
        obj = obj.get("classes") if isinstance(obj, dict) else obj
        if not isinstance(obj, list) or not all(isinstance(c, (str, int)) for c in obj):
            raise ValueError(f"{path} holds no class list: expected a JSON list of names or {{\"classes\": [...]}}")
        names = [str(c) for c in obj]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    check_class_list(names, str(path))
    return names


def check_class_list(classes: Sequence[str], where: str = "the class list",
                     num_outputs: int | None = None) -> list[str]:
    """``classes`` as a list of str; ``ValueError`` when empty, with repeated names, or longer than the outputs."""
    if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
        raise TypeError(f"{where}: classes must be a sequence of class names (str), got {classes!r:.80}")
    names = list(classes)
    if not names:
        raise ValueError(f"{where}: the class list is empty")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ValueError(f"{where}: class names {repeated[:5]} appear more than once; each name must be unique")
    if num_outputs is not None and len(names) > num_outputs:
        raise ValueError(f"{where}: {len(names)} class names for a model with {num_outputs} outputs; "
                         f"pass the names of the model's classes in output order")
    return names


def class_list_file(root: Path) -> Path | None:
    """The file holding the class list next to a ``labels.npy`` (the first of :data:`CLASS_FILES` present that
    holds one; ``adaaug make-c`` writes ``make_c.json``), or None."""
    for name in CLASS_FILES:
        path = Path(root) / name
        if path.is_file():
            if name == "make_c.json" and "classes" not in json.loads(path.read_text()):
                continue
            return path
    return None


def class_list_near(root: Path) -> list[str] | None:
    """The class list next to a ``labels.npy`` (read from :func:`class_list_file`), or None."""
    path = class_list_file(root)
    return None if path is None else read_class_list(path)


def _fix_for_names(source) -> str:
    """How to fix class names the model does not have, for where ``source``'s names come from."""
    origin = getattr(source, "names_from", None)
    if origin == "folders":
        return "remove or rename those class folders"
    if origin:  # a class-list file next to arrays: the images are rows of .npy files, not files in folders
        return (f"rename them in {origin} to the model's class names if they are the same classes, or rebuild the "
                f"set from images of the model's classes only (e.g. adaaug make-c on a folder holding only those "
                f"classes)")
    return "give those images labels among the model's classes"


def checkpoint_classes(meta: dict, where: str) -> list[str] | None:
    """Class names recorded in a checkpoint: safetensors metadata ``"classes"`` (a JSON list as text)
    or a ``torch.save`` dict's ``"classes"`` list; None when absent."""
    value = meta.get("classes")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: its recorded class names are not a JSON list ({err})") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: its recorded class names are not a list")
    return check_class_list([str(c) for c in value], where)


@torch.no_grad()
def num_outputs(model, source, device: str | torch.device | None = None) -> int | None:
    """Logits per image of ``model`` (an ``nn.Module``, or a predictor with a ``.model``), from one image
    of ``source`` in eval mode (every module's mode restored); None for other predictors or an empty set."""
    net = model if isinstance(model, nn.Module) else getattr(model, "model", None)
    if not isinstance(net, nn.Module) or len(source) == 0:
        return None
    if device is None:
        device = getattr(model, "device", None)
    if device is None:
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
    batch = next(iter(source.take(1).batches(1)))
    with torch.no_grad(), evaluated(net):
        out = net(batch.to(device, input_dtype(net) or torch.float32))
    return int(eval_logits(out, len(batch), net).shape[1])


def _shown(name: str) -> str:
    """A class name as a message shows it: quoted when spaces or commas would hide where it starts or ends."""
    return repr(name) if not name or name != name.strip() or "," in name or "  " in name else name


def _names(names: Sequence[str], k: int = 5) -> str:
    return ", ".join(_shown(str(n)) for n in names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")


def align(source, classes: Sequence[str] | None, *, num_outputs: int | None = None, where: str = "the set"):
    """``source`` with labels that index the model's outputs (see the module docstring).

    Args:
        source: an :class:`~adaaug.evaluate.sets.ImageSource`; its labels index ``source.classes``
            when that is a list, else they are class indices.
        classes: the model's class names in logit order, or None when unknown.
        num_outputs: the model's logits per image, or None when unknown (then index ranges go unchecked).
        where: names the set in messages.
    Returns:
        a source whose int64 labels index the model's outputs and whose ``classes`` are ``classes``
        (unchanged when no mapping was needed).
    Raises:
        ValueError: names not among ``classes``; named classes with ``classes`` unknown and a class
            count other than ``num_outputs``; indices beyond the model's outputs.
    """
    if classes is not None:
        classes = check_class_list(classes, "the model's class list", num_outputs)
    if source.classes is not None:
        names = list(source.classes)
        if classes is None:
            if num_outputs is not None and len(names) == num_outputs:
                return source
            outputs = f" and it has {num_outputs} outputs" if num_outputs is not None else ""
            raise ValueError(f"{where} has {len(names)} classes ({_names(names)}), but the model's class names are "
                             f"unknown{outputs}, so its labels cannot be matched to the model's outputs; "
                             f"{HOW_TO_PASS}")
        if names == classes:
            return source
        position = {c: i for i, c in enumerate(classes)}
        unknown = [c for c in names if c not in position]
        if unknown:
            raise ValueError(f"{where}: classes {_names(unknown)} are not among the model's {len(classes)} classes "
                             f"({_names(classes)}); {_fix_for_names(source)}, or {HOW_TO_PASS}")
        mapping = np.asarray([position[c] for c in names], dtype=np.int64)
        return source.relabel(mapping[source.labels], classes)
    labels = source.labels
    if getattr(source, "numeric", False) and classes is not None and all(c.isdigit() for c in classes):
        value = {int(c): i for i, c in enumerate(classes)}  # folders 0, 1, ... against a model trained on such folders
        unknown = sorted({int(v) for v in np.unique(labels) if int(v) not in value})
        if unknown:
            raise ValueError(f"{where}: class folders {unknown[:5]} are not among the model's {len(classes)} classes "
                             f"({_names(classes)}); numeric folder names are matched by value to numeric class "
                             f"names: remove those folders, or {HOW_TO_PASS}")
        if any(v != i for v, i in value.items()):
            return source.relabel(np.asarray([value[int(v)] for v in labels], dtype=np.int64), classes)
    bounds = [x for x in (num_outputs, None if classes is None else len(classes)) if x is not None]
    limit = min(bounds) if bounds else None
    if len(labels) and limit is not None and (labels.min() < 0 or labels.max() >= limit):
        bad = int(labels.max()) if labels.max() >= limit else int(labels.min())
        raise ValueError(f"{where}: label {bad} is not a class index of the model ({limit} classes, 0..{limit - 1}); "
                         f"its labels must index the model's classes")
    return source
