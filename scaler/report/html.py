"""HTML building blocks of the report: escaping, tables, badges, embedded figures, the page.

Everything the page needs is inside it: CSS in a ``<style>`` element, figures as PNG data
URIs, no script, no font or image fetched from anywhere, so the file can be attached to a
ticket and opened offline. Functions return strings; nothing here reads runs.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

# nothing may be fetched: images are data URIs, the style is inline, there is no script
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink: #1d2329; --muted: #5b6670; --line: #d5dade; --bg: #f6f7f8; --warn: #8a4b00;
  --warnbg: #fff1dc; --bad: #8b1a1a; --badbg: #fde4e4; --ok: #1d5e2c; --okbg: #e2f4e6;
  --info: #1f4f7a; --infobg: #e3eef8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 "DejaVu Sans", system-ui, sans-serif; color: var(--ink); margin: 0;
  background: #fff; }
header { background: #24303b; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 2px 0; color: #d6dde3; }
nav { padding: 8px 32px; background: var(--bg); border-bottom: 1px solid var(--line); }
nav a { margin-right: 14px; color: var(--info); text-decoration: none; }
main { padding: 8px 32px 40px 32px; max-width: 1280px; }
section { margin-top: 28px; border-top: 2px solid var(--line); padding-top: 6px; }
h2 { font-size: 19px; margin: 6px 0 10px 0; }
h3 { font-size: 15px; margin: 16px 0 6px 0; }
p.note, div.note { color: var(--muted); margin: 6px 0; }
table { border-collapse: collapse; margin: 8px 0 12px 0; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left;
  vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 10px 0 16px 0; }
figure img { max-width: 100%; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 3px; max-width: 900px; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
pre { background: var(--bg); border: 1px solid var(--line); padding: 6px 8px;
  white-space: pre-wrap; word-break: break-all; margin: 4px 0 10px 0; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11.5px;
  margin: 0 2px; white-space: nowrap; border: 1px solid transparent; }
.b-noisy, .b-unstable, .b-partial, .b-oversub, .b-few { background: var(--warnbg);
  color: var(--warn); border-color: #f0c98f; }
.b-emulated, .b-failed { background: var(--badbg); color: var(--bad); border-color: #efb3b3; }
.b-simulated { background: var(--infobg); color: var(--info); border-color: #a9c8e4; }
.badge.wrap { white-space: normal; }
.b-ok { background: var(--okbg); color: var(--ok); border-color: #a8d8b3; }
.b-none { background: var(--bg); color: var(--muted); border-color: var(--line); }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 14px;
  margin: 6px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def badge(kind: str, text: str | None = None, title: str = "", wrap: bool = False) -> str:
    """A small coloured label: noisy, unstable, emulated, simulated, partial, oversub..."""
    tip = f' title="{esc(title)}"' if title else ""
    klass = f"badge b-{esc(kind)}" + (" wrap" if wrap else "")
    return f'<span class="{klass}"{tip}>{esc(text or kind)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
          numeric: Iterable[int] = (), cls: str = "") -> str:
    """A table; cells are HTML already (use ``esc`` on text), ``numeric`` column indexes are
    right-aligned."""
    right = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{c}</td>' if i in right else f"<td>{c}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    klass = f' class="{esc(cls)}"' if cls else ""
    return (f"<table{klass}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def facts(pairs: Iterable[tuple[str, Any]]) -> str:
    """A definition list of label -> HTML value."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


def png_data_uri(fig: Any, dpi: int = 100) -> str:
    """A matplotlib Figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(fig: Any, alt: str, caption: str = "", dpi: int = 100) -> str:
    """A figure embedded as a PNG with its caption."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure><img alt="{esc(alt)}" src="{png_data_uri(fig, dpi)}">{cap}</figure>')


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def note(text: str) -> str:
    """A muted paragraph (``text`` is HTML)."""
    return f'<p class="note">{text}</p>'


def page(title: str, header_lines: Sequence[str], sections: Sequence[tuple[str, str, str]]
         ) -> str:
    """The whole document: ``sections`` are (id, title, body HTML)."""
    nav = "".join(f'<a href="#{esc(sid)}">{esc(t)}</a>' for sid, t, _ in sections)
    head = "".join(f"<p>{line}</p>" for line in header_lines)
    body = "\n".join(section(sid, t, b) for sid, t, b in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>"
            f"<header><h1>{esc(title)}</h1>{head}</header><nav>{nav}</nav>"
            f"<main>\n{body}\n</main></body></html>\n")
