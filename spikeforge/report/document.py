"""The report as a list of sections made of a few kinds of block.

:mod:`spikeforge.report.sections` decides the content once; :mod:`.html` and
:mod:`.markdown` only render these blocks, so the HTML page and the Markdown folder say
the same things. Text may hold ``code`` spans in backticks; nothing else is markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Text:
    """A paragraph."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    """``header`` and ``rows`` of strings; ``total``: a last row set apart (sums)."""

    header: list[str]
    rows: list[list[str]]
    total: list[str] | None = None
    caption: str = ""


@dataclass
class Figure:
    """An image. ``png`` (bytes), or ``make_png`` to render it only when a PNG is needed
    (the Markdown folder); ``svg``: inline SVG the HTML shows instead."""

    name: str
    caption: str
    png: bytes | None = None
    svg: str | None = None
    make_png: Callable[[], bytes] | None = None

    def png_bytes(self) -> bytes:
        if self.png is None and self.make_png is not None:
            self.png = self.make_png()
        if self.png is None:
            raise ValueError(f"figure {self.name} has no PNG")
        return self.png


@dataclass
class Code:
    """Commands or other verbatim text."""

    text: str


@dataclass
class Gap:
    """A piece that is not available: what, why, and the command that produces it."""

    what: str
    why: str
    how: str = ""


@dataclass
class Explorer:
    """The interactive view of traced test images (HTML); the Markdown shows
    ``fallback``, the same images as static figures."""

    payload: dict[str, Any]
    fallback: list[Figure]


Block = Text | Bullets | Table | Figure | Code | Gap | Explorer


@dataclass
class Section:
    """One section with a stable ``id`` (the HTML element id and the Markdown anchor)."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def available(self) -> bool:
        """False when the section holds nothing but gaps."""
        return any(not isinstance(b, Gap) for b in self.blocks)
