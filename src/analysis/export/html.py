"""Escaped HTML, built from parts: what the report writes its pages with.

Every value is escaped with ``html.escape`` unless it is ``Markup``, which only the helpers
here create from parts they escaped themselves. So a sticky note with ``<script>`` in it is
shown as text wherever it lands.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence


class Markup(str):
    """HTML built here from escaped parts; everything else is escaped on output."""


def esc(value) -> Markup:
    """``value`` as safe HTML text: Markup passes through, anything else is escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(plain_text(value), quote=True))


def plain_text(value) -> str:
    """``value`` as a string; None and NaN as the empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def join(parts: Iterable) -> Markup:
    return Markup("".join(esc(part) for part in parts))


def element(name: str, content="", **attributes) -> Markup:
    """``<name attr="…">content</name>``; attribute names ending in ``_`` lose it (``class_``)."""
    attrs = "".join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"'
                    for key, value in attributes.items() if value is not None)
    return Markup(f"<{name}{attrs}>{esc(content)}</{name}>")


def paragraph(*parts) -> Markup:
    return element("p", join(parts))


def table(header: Sequence, rows: Iterable[Sequence], caption=None, numeric: Sequence[int] = ()) -> Markup:
    """A table whose cells are escaped unless they are Markup; ``numeric`` columns align right."""
    head = join(element("th", cell, scope="col", class_="num" if i in numeric else None)
                for i, cell in enumerate(header))
    body = join(element("tr", join(element("td", cell, class_="num" if i in numeric else None)
                                   for i, cell in enumerate(row))) for row in rows)
    parts = [element("caption", caption)] if caption is not None else []
    parts += [element("thead", element("tr", head)), element("tbody", body)]
    return element("div", element("table", join(parts)), class_="table-wrap")


def bullet_list(items: Iterable) -> Markup:
    return element("ul", join(element("li", item) for item in items))


def code(value) -> Markup:
    return element("code", value)


def absent(*parts) -> Markup:
    return element("p", join(parts), class_="absent")


def fmt(value, digits: int = 3) -> str:
    """Numbers for people: integers as integers, others rounded; blanks stay blank."""
    if value is None or value == "":
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return ""
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    if abs(number) < 10 ** -digits:
        return f"{number:.1e}"
    return f"{number:.{digits}f}"


def setting(value) -> str:
    """A config value as written (0.12, not 0.120)."""
    return format(value, "g") if isinstance(value, float) else plain_text(value)


def sentence(text) -> str:
    """``text`` with a capital first letter and a full stop at the end (for reasons read from JSON)."""
    text = plain_text(text).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else ""


def language_tag(value) -> str:
    """A valid BCP 47 tag for the ``lang`` attribute; anything else becomes ``und``."""
    text = plain_text(value).strip()
    return text if re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", text) else "und"
