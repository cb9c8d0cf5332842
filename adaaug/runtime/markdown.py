"""Markdown tables for the reports the commands print and write, always well-formed.

:func:`table` gives the header, the separator and one line per row with the same number of cells
(a row of another length is a bug: ``ValueError``), and escapes a ``|`` inside a cell (a model label,
a class name) so that it cannot split the cell. :func:`cells` reads a table line back into its cells
(the tests check every report with it).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence


def _cell(value: object) -> str:
    text = " ".join(str(value).split())
    return re.sub(r"(?<!\\)\|", r"\\|", text) or " "


def row(values: Sequence[object]) -> str:
    """One table line: ``| a | b |`` (``|`` inside a value escaped, whitespace collapsed)."""
    return "| " + " | ".join(_cell(v) for v in values) + " |"


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a markdown table: header, separator (``| --- |`` per column), then ``rows``.

    Raises ``ValueError`` for an empty header or a row whose length differs from the header's.
    """
    header = list(header)
    if not header:
        raise ValueError("a markdown table needs at least one column")
    lines = [row(header), "|" + " --- |" * len(header)]
    for values in rows:
        values = list(values)
        if len(values) != len(header):
            raise ValueError(f"a table row has {len(values)} cells for {len(header)} columns: {values!r:.120}")
        lines.append(row(values))
    return lines


def cells(line: str) -> list[str]:
    """The cells of one table line (``| a | b\\|c |`` → ``["a", "b\\|c"]``)."""
    inner = line.strip()
    if not (inner.startswith("|") and inner.endswith("|") and len(inner) > 1):
        raise ValueError(f"not a table line: {line!r}")
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner[1:-1])]
