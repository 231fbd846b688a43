"""HTML building blocks of a report: escaping, number cells, tables, notes and embedded figures.

Every function returns an HTML fragment; text taken from the metadata is escaped here
(:func:`escape`), fragments passed in (``table`` cells, ``kv`` values) are already HTML.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .figures import DPI
from .metadata import as_number, lookup

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

__all__ = ["escape", "fmt", "mean_std", "single", "table", "kv", "note", "img"]


def escape(x: Any) -> str:
    """HTML-escaped text (quotes too, so it is safe in attribute values)."""
    return html.escape("" if x is None else str(x), quote=True)


def fmt(v: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (whole numbers below 1e7 without exponent);
    an em dash when missing or not finite. Escaped HTML."""
    x = as_number(v)
    if x is None:
        return "\u2014" if v is None or isinstance(v, (int, float)) else escape(v)
    if x == round(x) and abs(x) < 1e7:
        return str(int(round(x)))
    if 10 ** digits <= abs(x) < 1e7:
        return f"{x:.0f}"
    return escape(f"{x:.{digits}g}")


def mean_std(entry: Any, pct: bool = False) -> str:
    """``mean +/- std`` cell text of a ``{mean, std}`` entry."""
    m, s = as_number(lookup(entry, "mean")), as_number(lookup(entry, "std"))
    if m is None:
        return "\u2014"
    k = 100.0 if pct else 1.0
    return fmt(m * k) + ("" if s is None else f" \u00b1 {fmt(s * k, 2)}")


def single(v: Any, pct: bool = False) -> str:
    x = as_number(v)
    return "\u2014" if x is None else fmt(x * (100.0 if pct else 1.0))


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
          row_class: Sequence[str] | None = None, cls: str = "") -> str:
    """An HTML table; ``head`` and ``rows`` are already-escaped HTML fragments."""
    num = set(numeric)
    th = "".join(f'<th class="n">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(head))
    body = []
    for r, row in enumerate(rows):
        rc = f' class="{row_class[r]}"' if row_class and row_class[r] else ""
        tds = "".join(f'<td class="n">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{rc}>{tds}</tr>")
    c = f' class="{cls}"' if cls else ""
    return f'<div class="wide"><table{c}><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def kv(pairs: Sequence[tuple[str, str]]) -> str:
    """A two-column key/value table; values are already-escaped HTML."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def img(fig: Figure, alt: str, caption: str | None = None, attrs: Mapping[str, str] | None = None) -> str:
    """The figure as an ``<img>`` with a base64 PNG ``data:`` URI inside a ``<figure>``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    w, h = (int(round(v)) for v in fig.get_size_inches() * DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    extra = "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in (attrs or {}).items())
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
            f'alt="{escape(alt)}"{extra}>{cap}</figure>')


