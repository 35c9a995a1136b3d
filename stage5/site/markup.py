"""Reading what the site sends: text and number coercions, decoding, HTML documents.

Shared by the parsers of every page kind. Every pattern here runs in linear time and every text is
capped, so no answer can make a parse slow (see the hostile-answer tests).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import lxml.html
import orjson
from lxml import etree

from stage5.errors import ParseError

# A tag never spans a '<': stripping tags cannot restart a long scan at each position.
TAG_RE = re.compile(r"<[^<>]*>")

# --- small coercions: the site sends numbers as numbers or strings, sometimes empty --------------


MAX_TEXT = 4000  # characters kept of one text value (names, addresses, menu lines are far shorter)
MAX_NUMBER = 40  # characters of a number worth reading
MAX_LINE = 300  # characters of one line of hours or one price text
MAX_PRICE_DIGITS = 9  # 999,999,999 won; more is not a menu price


def text_of(value: Any) -> str | None:
    """A clean, capped text from a JSON value or markup; None for empty, or for a list or an object."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value)[: MAX_TEXT * 2]
    if "<" in text or "&" in text:  # most values hold neither: no entity to unescape, no tag to strip
        text = TAG_RE.sub("", html.unescape(text))
    text = text.strip()[:MAX_TEXT]
    return text or None


def number(value: Any) -> float | None:
    """A finite number from a number or a string ('1,234'); None for NaN, infinities and junk."""
    if value in (None, "") or isinstance(value, (dict, list, bool)):
        return None
    raw = str(value).replace(",", "").strip()
    if len(raw) > MAX_NUMBER:
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def items(value: Any) -> list[Any]:
    """A JSON value that should be a list: the list, or nothing (never iterate a number or a string)."""
    return value if isinstance(value, list) else []


def integer(value: Any) -> int | None:
    found = number(value)
    return int(found) if found is not None else None


def split_categories(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        parts: Iterable[Any] = value
    else:
        parts = (text_of(value) or "").split(",")
    return tuple(t for t in (text_of(p) for p in parts) if t)


_DECLARES_UTF8 = re.compile(rb"charset\s*=\s*[\"']?utf-?8", re.I)


def decode(body: bytes) -> str:
    """UTF-8 as the site sends it; a page in another encoding (cp949/euc-kr) is detected, not garbled."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        if _DECLARES_UTF8.search(body[:2048]):  # a UTF-8 page with a damaged byte: U+FFFD marks it (counted)
            return body.decode("utf-8", errors="replace")
        from bs4 import UnicodeDammit  # rarely needed, and bs4 costs every process 80 ms to import

        dammit = UnicodeDammit(body, ["utf-8", "cp949", "euc-kr"])
        if dammit.unicode_markup is None:
            raise ParseError("body is not text in any known encoding") from None
        return dammit.unicode_markup


def document(body: bytes) -> lxml.html.HtmlElement:
    text = decode(body)
    if "<html" not in text[:2000].lower():
        raise ParseError("not an HTML page")
    if "</html>" not in text[-2000:].lower():
        raise ParseError("page is cut short (no closing </html>)")  # lxml would parse half a page silently
    parser = lxml.html.HTMLParser()
    try:
        doc = lxml.html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"HTML does not parse: {exc}") from None
    # libxml2 stops reading at a nesting depth of 256 and says so only in its error log: the rest of
    # the page (menu, hours) would be missing without a word. Such a page is incomplete, not empty.
    limits = [e.message for e in parser.error_log if e.type_name == "ERR_RESOURCE_LIMIT"]
    if limits:
        raise ParseError(f"page only partly read ({limits[0]})")
    return doc


def json_answer(body: bytes, what: str) -> Any:
    """An API answer's JSON, or ParseError naming `what` answered (e.g. "search answer") and why not.

    orjson reads a well-formed UTF-8 answer (a third of the standard library's CPU: the profile API's JSON is
    the largest step of a detail's parse); whatever it refuses (another encoding, a damaged byte, NaN, a
    number past 64 bits, nesting past 1024) is read as before, so what an answer means does not change."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(decode(body))
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what} is not JSON ({exc.msg} at byte {exc.pos})") from None
    except RecursionError:
        raise ParseError(f"{what} is JSON nested too deep to read") from None
