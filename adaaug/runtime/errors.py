"""The errors a command prints as one line (``adaaug <command>: error: …``, exit status 2).

:class:`UsageError`: a mistake in a command's arguments or inputs. :class:`ConfigError` (a
``ValueError``) and :class:`ConfigTypeError` (also a ``TypeError``): a bad setting found before any
work, its message naming the flag to change (``adaaug train``'s checks in :mod:`adaaug.train.checks`,
the ``--device`` check of every command in :mod:`adaaug.runtime.devices`).
"""
from __future__ import annotations


class UsageError(Exception):
    """A user's mistake in a command's arguments or inputs: printed as one line, exit status 2."""


class ConfigError(ValueError):
    """A bad training configuration, found before training starts."""


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value of the wrong type."""
