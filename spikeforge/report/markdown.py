"""The report as Markdown with its figures as PNG files, for a repository.

``DIR/report.md`` and ``DIR/img/<name>.png`` (the schematic also as ``img/neuron.svg``).
Every section starts with an anchor of its stable id, so ``report.md#bom`` works on any
renderer that keeps HTML anchors (GitHub, GitLab). Each file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from spikeforge.io import atomic_open, write_text
from spikeforge.report.document import (
    Block,
    Bullets,
    Code,
    Explorer,
    Figure,
    Gap,
    Section,
    Table,
    Text,
)

IMAGES = "img"


def _cell(text: str) -> str:
    """A table cell: pipes escaped, line breaks as spaces."""
    return text.replace("|", "\\|").replace("\n", " ") or " "


def table(t: Table) -> list[str]:
    header = t.header if any(t.header) else [" "] * len(t.header)
    lines = [f"**{t.caption}**", ""] if t.caption else []
    lines += ["| " + " | ".join(_cell(h) for h in header) + " |",
              "|" + "---|" * len(header)]
    rows = t.rows + ([[f"**{c}**" if c else c for c in t.total]] if t.total else [])
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _figure(f: Figure, folder: Path) -> list[str]:
    name = f"{IMAGES}/{f.name}.png"
    with atomic_open(folder / name) as out:
        out.write(f.png_bytes())
    lines = [f"![{f.name}]({name})", "", f"*{f.caption}*"]
    if f.svg is not None:
        write_text(folder / IMAGES / f"{f.name}.svg", f.svg)
        lines += ["", f"The same drawing as SVG: [{IMAGES}/{f.name}.svg]({IMAGES}/{f.name}.svg)"]
    return lines


def block(b: Block, folder: Path) -> list[str]:
    if isinstance(b, Text):
        return [b.text]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Figure):
        return _figure(b, folder)
    if isinstance(b, Code):
        return ["```", b.text, "```"]
    if isinstance(b, Gap):
        lines = [f"> **Not available:** {b.what}: {b.why}"]
        if b.how:
            lines += [">", f"> How to produce it: `{b.how}`"]
        return lines
    if isinstance(b, Explorer):
        out: list[str] = ["(The HTML report shows these interactively, clock by clock.)"]
        for f in b.fallback:
            out += ["", *_figure(f, folder)]
        return out
    raise TypeError(f"unknown block {type(b).__name__}")


def render_markdown(title: str, subtitle: str, sections: list[Section],
                    folder: Path) -> list[str]:
    """Markdown lines for ``sections``; figures are written into ``folder/img``."""
    lines = [f"# {title}", "", subtitle, ""]
    for s in sections:
        lines += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        for b in s.blocks:
            lines += [*block(b, folder), ""]
    return lines


def write_markdown(title: str, subtitle: str, sections: list[Section],
                   folder: str | os.PathLike) -> Path:
    """Write ``folder/report.md`` and its images; returns the path of report.md."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        from spikeforge.report.collect import ReportError

        raise ReportError(f"--markdown {folder}: this is a file; give a folder for report.md "
                          f"and its images")
    lines = render_markdown(title, subtitle, sections, folder)
    path = folder / "report.md"
    write_text(path, "\n".join(lines).rstrip() + "\n")
    return path
