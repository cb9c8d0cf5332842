"""Command line of ``adaaug train``: its flags and how they become a :class:`TrainConfig`.

Every flag overrides ``--config`` and the preset; the help text shows each default in brackets (two
values: cifar10 / imagenet preset).
"""
from __future__ import annotations

import argparse

from ..augment.compose import METHODS
from .config import DATA_PATHS, PRESETS, TrainConfig


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``adaaug train``; every one overrides ``--config`` and the preset. Defaults in brackets
    (two values: cifar10 / imagenet preset)."""
    S = argparse.SUPPRESS
    c, i = PRESETS["cifar10"], PRESETS["imagenet"]
    p.add_argument("--config", default=None,
                   help="JSON file of settings (e.g. a run's config.json); flags override it [none]")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings and exit [off]")
    g = p.add_argument_group("data")
    g.add_argument("--preset", default=S, help="paper protocol: cifar10 (App. E.1) or imagenet (E.2) [cifar10]")
    g.add_argument("--data", default=S, help="training set: ImageFolder dir or cifar10:<root> [required]")
    g.add_argument("--eval-data", default=S,
                   help="evaluation set [the CIFAR10 test split for cifar10:<root>, else none]")
    g.add_argument("--download", action="store_true", default=S, help="download CIFAR-10 into <root> [off]")
    g.add_argument("--data-path", choices=DATA_PATHS, default=S,
                   help="memory: decode all images once into RAM (CIFAR-10); stream: decode per batch in "
                        "DataLoader workers (ImageNet); auto: stream folders above 4 GiB decoded or of mixed "
                        "image sizes [auto]")
    g.add_argument("--workers", type=int, default=S,
                   help="DataLoader workers per process, streaming path [CPUs per process − 1, at most 8]")
    g.add_argument("--skip-bad-images", action="store_true", default=S,
                   help="skip unreadable image files and report their count, instead of stopping [off]")
    g.add_argument("--subset", type=int, default=S, help="train on this many random images [all]")
    g.add_argument("--deepaugment-data", nargs="+", metavar="DIR", default=S,
                   help="DeepAugment copies of --data (adaaug deepaugment-data), e.g. an EDSR and a CAE copy "
                        "[none; required by the deepaugment methods]")
    g = p.add_argument_group("method")
    g.add_argument("--method", default=S, help=f"one of {', '.join(METHODS)} [nominal]")
    g.add_argument("--backbone", default=S, help="AdA backbone: edsr, cae, vqvae, unet or all [edsr]")
    g.add_argument("--backbone-weights", default=S,
                   help="tag (cifar10; deepaugment: the paper's EDSR and CAE, downloaded once), a file (.safetensors "
                        "or a published .pt/.state), NAME=WEIGHTS,... per backbone, or 'none' [cifar10 / deepaugment]")
    g.add_argument("--ada-steps", type=int, default=S, help=f"M, AdA steps [{c['ada_steps']} / {i['ada_steps']}]")
    g.add_argument("--nu", type=float, default=S, help=f"relative radius ν [{c['nu']}]")
    g.add_argument("--chunk-size", type=int, default=S, help=f"AdA nano-batch [{c['chunk_size']} / {i['chunk_size']}]")
    g.add_argument("--step-scale", type=float, default=S, help="multiplies AdA's η [1 / 10/3]")
    g.add_argument("--ssim-threshold", type=float, default=S, help="line-search threshold t [0.3 / 0.7]")
    g.add_argument("--line-search", action=argparse.BooleanOptionalAction, default=S, help="SSIM line search [on]")
    g.add_argument("--deepaugment-prob", type=float, default=S, help="chance of a DeepAugment sample [k/(k+1) for k copies]")
    g.add_argument("--jsd", action=argparse.BooleanOptionalAction, default=S, help="AugMix JSD loss [on]")
    g = p.add_argument_group("optimisation")
    g.add_argument("--arch", default=S, help=f"resnet20, preact_resnet50 or resnet50 [{c['arch']} / {i['arch']}]")
    g.add_argument("--num-classes", type=int, default=S, help="classifier outputs [classes in --data]")
    g.add_argument("--epochs", type=int, default=S, help=f"training epochs [{c['epochs']} / {i['epochs']}]")
    g.add_argument("--batch-size", type=int, default=S, help=f"global batch [{c['batch_size']} / {i['batch_size']}]")
    g.add_argument("--lr", type=float, default=S, help="base LR; peak = max(lr·B/256, lr) [0.1]")
    g.add_argument("--momentum", type=float, default=S, help="SGD momentum [0.9]")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=S, help="Nesterov momentum [on]")
    g.add_argument("--weight-decay", type=float, default=S,
                   help=f"L2 weight decay [{c['weight_decay']} / {i['weight_decay']}]")
    g.add_argument("--warmup-epochs", type=int, default=S, help="linear warm-up epochs [5]")
    g.add_argument("--seed", type=int, default=S, help="base seed of init, data order and augmentation [0]")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-batch-size", type=int, default=S, help="evaluation batch per process [500]")
    g.add_argument("--eval-every", type=int, default=S, help="epochs between evaluations [1]")
    g.add_argument("--eval-crop", type=_optional_int, default=S, help="centre crop side or none [none / 224]")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=S, help="run directory [runs/train]")
    g.add_argument("--resume", action="store_true", default=S, help="continue from <out>/checkpoint.pt [off]")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in a non-empty --out: the files an earlier run wrote there are replaced, "
                        "other files are kept (default: refuse a non-empty --out) [off]")
    g.add_argument("--device", default=S, help="auto, cpu, cuda or cuda:N [auto]")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=S, help="bf16 autocast [on for CUDA]")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=S,
                   help="channels-last memory format [on for CUDA]")
    g.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=S, help="cross-process BatchNorm [off]")
    g.add_argument("--threads", type=int, default=S, help="torch threads per process [torch's default]")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=S,
                   help="tqdm progress bar on stderr, per step (--no-progress turns it off) [on]")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Preset ← ``--config`` file ← explicit flags."""
    fields = set(TrainConfig.field_names())
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return TrainConfig.from_sources(getattr(args, "config", None), **overrides)
