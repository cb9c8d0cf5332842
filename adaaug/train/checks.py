"""Checks of single ``adaaug train`` settings, each raising :class:`ConfigError` naming the flag to change.

:class:`ConfigError` is a ``ValueError``; :class:`ConfigTypeError` (a value of the wrong type) is also a
``TypeError``. :meth:`adaaug.train.config.TrainConfig.validate` calls these checks.
"""
from __future__ import annotations

import numbers
from pathlib import Path

from ..runtime.devices import DEVICE_HELP  # noqa: F401 (re-exported)
from ..runtime.errors import ConfigError, ConfigTypeError  # noqa: F401 (defined there, re-exported)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigTypeError(f"{name} ({_flag(name)}) must be {kind.__name__}, got {value!r} "
                              f"({type(value).__name__})")


def _choice(name: str, value: object, choices: tuple[str, ...], flag: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r} ({flag}); known: {', '.join(choices)}")


def _int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(f"{name} ({_flag(name)}) must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} ({_flag(name)}) must be ≥ {minimum}, got {value}")


def _real(name: str, value: object, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(f"{name} ({_flag(name)}) must be a number, got {value!r} ({type(value).__name__})")
    bad = value != value or (low is not None and (value < low or (low_open and value == low))) or \
        (high is not None and (value > high or (high_open and value == high)))
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        rng = f"in {lo}, {hi}" if high is not None else (f"> {low:g}" if low_open else f"≥ {low:g}")
        raise ConfigError(f"{name} ({_flag(name)}) must be {rng}, got {value}")


def _device(device: object) -> None:
    """The one ``--device`` check of every command (:func:`adaaug.runtime.devices.check_device`)."""
    from ..runtime.devices import check_device

    check_device(device)


def _data_spec(name: str, spec: object, download: bool) -> None:
    _type(name, spec, str)
    if spec.startswith("cifar10:"):
        root = Path(spec.split(":", 1)[1])
        if not download and not (root / "cifar-10-batches-py").is_dir():
            raise ConfigError(f"{_flag(name)} {spec}: no CIFAR-10 under {root} (expected {root}/cifar-10-batches-py); "
                              f"pass --download to fetch it")
        return
    path = Path(spec)
    if not path.is_dir():
        raise ConfigError(f"{_flag(name)} directory {path} does not exist (expected an ImageFolder tree "
                          f"<root>/<class>/<image>, or cifar10:<root>)")
