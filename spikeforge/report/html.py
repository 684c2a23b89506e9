"""The report as one self-contained HTML file.

Everything is inside the file: the style sheet and the script inline, figures as PNG
``data:`` URIs, the schematic as inline SVG. A Content-Security-Policy of
``default-src 'none'`` tells the browser to refuse any request the page might still make,
so the page is usable offline, at the bench, and provably talks to no one.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re

from spikeforge.report.assets import CSS, JS
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


def csp(script: str) -> str:
    """The page's Content-Security-Policy: inline styles and ``data:`` images, no request
    of any kind, and no script but the page's own (allowed by its hash, so a script
    smuggled in through a bundle's text could not run)."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode("ascii")
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")

_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(#([A-Za-z0-9_-]+)\)")


def inline(text: str) -> str:
    """Escaped text with ``code`` spans and links to sections (``[x](#id)``)."""
    out = html.escape(text)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _LINK.sub(lambda m: f'<a href="#{m.group(2)}">{m.group(1)}</a>', out)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def inline_svg(svg: str) -> str:
    """An SVG document as an element of the page: no XML prolog, scaled to the column
    (its viewBox keeps the proportions)."""
    svg = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    head_end = svg.find(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    return head + ' role="img"' + svg[head_end:]


_NUMBER = re.compile(r"^[-+]?[\d,.]+( ?%)?$")


def _cell(text: str, columns: bool) -> str:
    """A table cell; in tables of columns (not key-value pairs) numbers are right-aligned
    so that counts line up."""
    return f'<td class="num">{inline(text)}</td>' if columns and _NUMBER.match(text) else \
        f"<td>{inline(text)}</td>"


def _table(t: Table) -> str:
    parts = ["<table>"]
    columns = len(t.header) > 2  # two columns here are a key and its value
    if t.caption:
        parts.append(f"<caption>{inline(t.caption)}</caption>")
    if any(t.header):
        parts.append("<thead><tr>" + "".join(f"<th>{inline(h)}</th>" for h in t.header)
                     + "</tr></thead>")
    parts.append("<tbody>")
    for row in t.rows:
        parts.append("<tr>" + "".join(_cell(c, columns) for c in row) + "</tr>")
    parts.append("</tbody>")
    if t.total:
        parts.append("<tfoot><tr>" + "".join(_cell(c, columns) for c in t.total)
                     + "</tr></tfoot>")
    parts.append("</table>")
    return "".join(parts)


def _figure(f: Figure) -> str:
    caption = f"<figcaption>{inline(f.caption)}</figcaption>"
    if f.svg is not None:
        return f'<figure data-name="{f.name}"><div class="svg">{inline_svg(f.svg)}</div>' \
               f"{caption}</figure>"
    return (f'<figure data-name="{f.name}"><img src="{data_uri(f.png_bytes())}" '
            f'alt="{html.escape(f.caption)}">{caption}</figure>')


def _json_script(payload: object) -> str:
    """JSON inside a script element: every ``<`` is written ``\\u003c`` (the same string to
    a JSON reader) so that nothing in it can end the element or open a comment."""
    return json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")


def block(b: Block) -> str:
    if isinstance(b, Text):
        return f"<p>{inline(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        return _figure(b)
    if isinstance(b, Code):
        return f"<pre><code>{html.escape(b.text)}</code></pre>"
    if isinstance(b, Gap):
        how = (f'<span class="how">How to produce it: <code>{html.escape(b.how)}</code></span>'
               if b.how else "")
        return (f'<div class="gap" data-missing="true"><strong>Not available:</strong> '
                f"{inline(b.what)}: {inline(b.why)}{how}</div>")
    if isinstance(b, Explorer):
        fallback = "".join(_figure(f) for f in b.fallback)
        return (f'<div class="explorer" id="explorer"></div>'
                f'<script type="application/json" id="explorer-data">'
                f"{_json_script(b.payload)}</script><noscript>{fallback}</noscript>")
    raise TypeError(f"unknown block {type(b).__name__}")


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = " ".join(f'<a href="#{s.id}"{"" if s.available else " class=missing"}>'
                  f"{html.escape(s.title)}</a>" for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>'
                   + "".join(block(b) for b in s.blocks) + "</section>" for s in sections)
    script = f"<script>{JS}</script>" if any(
        isinstance(b, Explorer) for s in sections for b in s.blocks) else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp(JS)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<header><h1>{html.escape(title)}</h1><p>{inline(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>{script}</body></html>\n")
