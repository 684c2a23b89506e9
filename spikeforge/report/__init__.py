"""``spikeforge report``: one page a builder reads before soldering (docs/report.md).

    collect.py    everything from a run directory and/or a bundle -> ReportData
    sections.py   what each section says (figures via figures.py) -> Sections of blocks
    html.py       one self-contained HTML file (inline CSS/JS, data: images, inline SVG)
    markdown.py   the same as report.md + PNG files in a folder

:func:`make_report` does all of it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from spikeforge.io import write_text
from spikeforge.report.collect import (
    ReportData,
    ReportError,
    ReportOptions,
    check_given_files,
    default_out,
    resolve_inputs,
)
from spikeforge.report.collect import collect as collect_report
from spikeforge.report.sections import SECTION_IDS, build_sections

__all__ = ["SECTION_IDS", "ReportData", "ReportError", "ReportOptions", "make_report"]


def _output_path(options: ReportOptions) -> Path:
    """``--out`` (checked before any work is done), else RUN/ or BUNDLE/report.html."""
    run, bundle = resolve_inputs(options)
    out = Path(options.out) if options.out else default_out(run, bundle)
    if out.is_dir():
        raise ReportError(f"--out {out} is a folder; give the HTML file to write, e.g. "
                          f"{out / 'report.html'}")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--out {out}: the report is an HTML file; name it *.html (use "
                          f"--markdown DIR for Markdown)")
    return out


def make_report(options: ReportOptions, log: Any = None) -> dict[str, Any]:
    """Collect, render and write the report; returns what was written and a summary."""
    def say(message: str) -> None:
        if options.progress:
            print(f"report: {message}", file=sys.stderr, flush=True)
        if log is not None:
            log(message)

    out = _output_path(options)
    check_given_files(options)
    if options.markdown and Path(options.markdown).is_file():
        raise ReportError(f"--markdown {options.markdown}: this is a file; give a folder for "
                          f"report.md and its images")
    data = collect_report(options, say)
    say("drawing figures")
    sections = build_sections(data)
    subtitle = (f"Hardware report written by `spikeforge report` on {data.created}; "
                f"spikeforge {data.versions.get('spikeforge')}")
    from spikeforge.report.html import render_html

    write_text(out, render_html(data.title, subtitle, sections))
    written = {"html": str(out)}
    if options.markdown:
        from spikeforge.report.markdown import write_markdown

        written["markdown"] = str(write_markdown(data.title, subtitle, sections,
                                                 options.markdown))
    return {**written, "title": data.title,
            "sections": {s.id: s.available for s in sections},
            "missing": {k: {"why": m.why, "how": m.how} for k, m in data.missing.items()},
            "notes": data.notes, "bytes": os.path.getsize(out)}
