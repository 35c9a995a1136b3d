"""Is this answer evidence about the store we asked for? Pure checks on a parsed detail answer.

Whatever parses is not yet the truth about a store: a captcha or access-denied page, the site's home page
after a redirect, or another store's page all parse. A detail answer may change a stored store only when

1. it is a store page at all (it has the sections a store page has; otherwise it is *blocked*, with the
   kind of page it looks like: captcha, access denied, login, rate limit, error, home page), and
2. it is *this* store's page: the ids it gives for itself (canonical link, `og:url`, JSON-LD `@id`/`url`,
   hidden id inputs, the API's own id) include the requested id, and it names one of the listing's facts
   (name, phone or address) where the listing gave any.

A failed check raises `BlockedAnswer` or `NotThisStore` (both `Unverified`): the fetcher neither caches
the answer nor lets it near the database, and the unit fails with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from stage5.errors import BlockedAnswer, NotThisStore
from stage5.models import StoreDetail, StoreSummary

# Words of pages served in place of a store page, by kind (checked in this order, on the page's text).
BLOCK_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("captcha", ("captcha", "자동입력 방지", "자동 입력 방지", "보안문자", "로봇이 아닙니다", "i'm not a robot")),
    (
        "access denied",
        ("access denied", "비정상적인 접근", "접근이 차단", "접근이 거부", "forbidden", "차단되었습니다"),
    ),
    ("rate limit", ("too many requests", "요청이 너무 많", "rate limit", "잠시 후 다시 시도")),
    ("login", ("로그인이 필요", "로그인 후 이용", "please log in", "sign in to continue")),
    ("error page", ("페이지를 찾을 수 없", "존재하지 않는", "오류가 발생", "not found", "internal server error")),
)
# Block pages that stay for a while (asked again at once they answer the same); a rate-limit, error or
# maintenance page may pass, and is asked again after a wait.
FINAL_BLOCKS = ("captcha", "access denied", "login")
# A page whose store blocks are all absent is not a store page, whatever its title says.
STORE_SECTIONS = (
    "div_profile",
    "tit-point",
    "busi-hours",
    "div_hour",
    "menu-info",
    "Restaurant_MenuList",
    "locat",
    "basic-info",
    "Restaurant_Menu",
)
_TEXT_SAMPLE = 4000  # characters of a non-store page read for its kind: block pages are short
_RID_RE = re.compile(r"^[A-Za-z0-9_-]{4,40}$")


def rid_in_url(url: str | None) -> str | None:
    """The store id a URL names (`profile.php?rid=X`, or a `/profile/X` path), else None."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    query = parse_qs(parts.query)
    ids = query.get("rid") or query.get("v_rid")
    rid = ids[0] if ids else None
    if rid is None and "/profile/" in parts.path:
        rid = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return rid if rid and _RID_RE.match(rid) else None


def is_home_url(url: str | None) -> bool:
    """The site's front page (or its search page): what a redirect 'elsewhere' on the site lands on."""
    if not url:
        return False
    path = urlsplit(url.strip()).path
    return path in ("", "/", "/index.php", "/index.html", "/list.dc", "/search.dc")


def block_kind(text: str) -> str:
    """What a page that is not a store page looks like (from its first words): for the failure's reason."""
    sample = " ".join(text[:_TEXT_SAMPLE].split()).lower()
    for kind, words in BLOCK_MARKERS:
        if any(word in sample for word in words):
            return kind
    return "not a store page"


def check_store_page(has_sections: bool, text: Callable[[], str], self_urls: Iterable[str | None]) -> None:
    """Raise BlockedAnswer unless the page has a store page's sections and does not call itself the home page
    (`text` gives the page's text, read only for a page that is not a store's)."""
    urls = [u for u in self_urls if u]
    if urls and all(is_home_url(u) for u in urls):
        raise BlockedAnswer("blocked: the site's home page, not a store page")
    if not has_sections:
        kind = block_kind(text())
        raise BlockedAnswer(f"blocked: {kind} (no store sections on the page)", final=kind in FINAL_BLOCKS)


def claimed_ids(urls: Iterable[str | None], ids: Iterable[str | None] = ()) -> tuple[str, ...]:
    """The store ids an answer gives for itself: from its own URLs and from plain id values."""
    found = [rid_in_url(u) for u in urls] + [i.strip() if i and _RID_RE.match(i.strip()) else None for i in ids]
    return tuple(dict.fromkeys(i for i in found if i))


# --- identity -------------------------------------------------------------------------------------


def _squash(text: str | None) -> str:
    return re.sub(r"[\s()\[\]·.,\-]", "", text or "").lower()


def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


def _address_key(text: str | None) -> str:
    """An address without the city's spelling (서울특별시 / 서울시 / 서울) and spaces."""
    squashed = _squash(text)
    for city in ("서울특별시", "서울시", "서울"):
        if squashed.startswith(city):
            return squashed[len(city) :]
    return squashed


def _same_name(a: str | None, b: str | None) -> bool:
    x, y = _squash(a), _squash(b)
    return bool(x and y) and (x == y or x in y or y in x)


def _same_address(a: str | None, b: str | None) -> bool:
    x, y = _address_key(a), _address_key(b)
    return bool(x and y) and (x == y or x in y or y in x)


def names_a_listing_fact(detail: StoreDetail, summary: StoreSummary) -> bool:
    """The answer names the listed store: its name, its phone or one of its addresses. A listing that
    gave none of these cannot be checked against (True)."""
    if not (summary.name or summary.phone or summary.address or summary.road_address):
        return True
    names = (detail.name, f"{detail.name or ''}{detail.branch or ''}")
    listed_names = (summary.name, f"{summary.name}{summary.branch or ''}")
    if any(_same_name(a, b) for a in names for b in listed_names):
        return True
    if _digits(detail.phone) and _digits(detail.phone) == _digits(summary.phone):
        return True
    addresses = (detail.address, detail.road_address)
    return any(_same_address(a, b) for a in addresses for b in (summary.address, summary.road_address))


def verify_detail(detail: StoreDetail, summary: StoreSummary) -> StoreDetail:
    """The detail answer, if it is verifiably the listed store's; else NotThisStore with what it names."""
    others = [i for i in detail.claimed_ids if i != summary.rid]
    if others and summary.rid not in detail.claimed_ids:
        raise NotThisStore(f"not this store's page: it names store {others[0]}, not {summary.rid}")
    if not names_a_listing_fact(detail, summary):
        raise NotThisStore(
            f"not this store's page: it names none of the listing's facts"
            f" (page: {detail.name!r}, listing: {summary.name!r})"
        )
    if not detail.claimed_ids and (conflict := _contradiction(detail, summary)):
        raise NotThisStore(f"not this store's page: it gives no store id, and its {conflict}")
    return detail


def _contradiction(detail: StoreDetail, summary: StoreSummary) -> str | None:
    """For an answer that gives no id of its own: what in it is another store's, when only the name (which
    a chain's branches share) ties it to the listing. A matching phone or address ties it; a branch, phone
    or address that both give and that differ is another branch's."""
    if _digits(detail.phone) and _digits(detail.phone) == _digits(summary.phone):
        return None
    ours, theirs = (summary.address, summary.road_address), (detail.address, detail.road_address)
    if any(_same_address(a, b) for a in theirs for b in ours):
        return None
    if detail.branch and summary.branch and not _same_name(detail.branch, summary.branch):
        return f"branch {detail.branch!r} is not the listing's {summary.branch!r}"
    if _digits(detail.phone) and _digits(summary.phone):
        return f"phone {detail.phone!r} is not the listing's {summary.phone!r}"
    if any(theirs) and any(ours):
        return f"address {next(a for a in theirs if a)!r} is not the listing's"
    return None
