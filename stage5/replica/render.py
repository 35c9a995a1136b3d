"""How the replica writes DiningCode's answers: search JSON items, the list page, the detail page.

Written from the shared notes on the real site, independently of stage5's parsers, so that the
parsers are tested against markup they did not produce.
"""

from __future__ import annotations

import json
import zlib
from html import escape
from typing import Any

from stage5.replica import notation
from stage5.replica.notation import NO_IMAGE, WEEK, form
from stage5.replica.world import Store

TITLE_SUFFIX = "맛집 | 다이닝코드, 빅데이터 맛집검색"


def _highlight(text: str, word: str) -> str:
    return text.replace(word, f"<em>{word}</em>") if word and word in text else text


def _price_text(price: int | None) -> str:
    return f"{price:,}원" if price is not None else "변동"


def search_item(store: Store, query_word: str) -> dict[str, Any]:
    """One `poi_section.list[]` entry, with the site's quirks (strings for numbers, missing keys)."""
    as_text = store.strings_for_numbers
    item: dict[str, Any] = {
        "v_rid": store.rid,
        "nm": store.name,
        "addr": store.address,
        "road_addr": store.road_address,
        "lat": str(store.lat) if as_text else store.lat,
        "lng": str(store.lng) if as_text else store.lng,
        "score": store.score,
        "user_score": store.user_score,
        "review_cnt": str(store.review_cnt) if as_text else store.review_cnt,
        "category": _highlight(",".join(store.categories), query_word),
        "keyword": [{"term": t, "mark": int(t == query_word)} for t in store.tags],
        "area": [store.hotspot or (store.district or "")[:-1]],
        "open_status": "영업 중",
        "distance": f"{zlib.crc32(store.rid.encode()) % 1900 + 100}m",
        "display_review": {"user_nm": "맛객", "review_cont": f"{store.name} 다녀왔어요", "review_reg_dt": "2026-10-01"},
    }
    if store.branch:
        item["branch"] = store.branch
    if store.phone:
        item["phone"] = store.phone
    if store.images:
        item["image"] = store.images[0]
        item["image_list"] = list(store.images)
    return item


def search_json(items: list[dict[str, Any]], total: int, rcount: int | None = None) -> bytes:
    """total_cnt capped at 10000 as the site does; `rcount`: the true count, in params.rcount."""
    section: dict[str, Any] = {"total_cnt": min(total, 10000), "list": items}
    if rcount is not None:
        section["params"] = {"rcount": rcount}
    body = {"result_code": "100", "result_msg": "success", "result_data": {"poi_section": section}}
    return json.dumps(body, ensure_ascii=False).encode()


def distance_text(metres: float) -> str:
    """An entry's `distance` as the site writes it: `451m`, `1.2km`."""
    return f"{metres:.0f}m" if metres < 999.5 else f"{metres / 1000:.1f}km"


def error_json(code: str, message: str) -> bytes:
    return json.dumps({"result_code": code, "result_msg": message}, ensure_ascii=False).encode()


def _card(rank: int, store: Store) -> str:
    branch = f'<span class="Info__Title__Place">{escape(store.branch)}</span>' if store.branch else ""
    categories = "".join(f'<span class="Category">{escape(c)}</span>' for c in store.categories)
    return (
        f'<a class="PoiBlock" href="/profile.php?rid={store.rid}">'
        f'<div class="InfoHeader"><h2>{rank}. {escape(store.name)}</h2>{branch}</div>'
        f'<p class="Score"><span>{store.score}</span></p>'
        f'<span class="score-text">{store.user_score}</span>{categories}</a>'
    )


def list_page(query: str, stores: list[Store], total: int) -> bytes:
    data = json.dumps(
        {"poi_section": {"total_cnt": total, "list": [search_item(s, "무한리필") for s in stores]}},
        ensure_ascii=False,
    )
    escaped = data.replace("\\", "\\\\").replace("'", "\\'").replace("</", "<\\/")
    cards = "".join(_card(i + 1, s) for i, s in enumerate(stores))
    return (
        '<!DOCTYPE html><html lang="ko"><head><meta charset="utf-8">'
        f"<title>{escape(query)} 맛집 | 다이닝코드</title></head><body>"
        f"<script>localStorage.setItem('listData', '{escaped}');</script>"
        f'<div id="root"><div class="SearchResult">{cards}</div></div></body></html>'
    ).encode()


def _json_ld(store: Store, full: bool = True) -> str:
    """The FoodEstablishment node; the older layout's is shorter (name and rating only)."""
    node: dict[str, Any] = {"@context": "https://schema.org", "@type": "FoodEstablishment", "name": store.name}
    if full:
        node["address"] = {"@type": "PostalAddress", "streetAddress": store.address}
        node["geo"] = {"@type": "GeoCoordinates", "latitude": store.lat, "longitude": store.lng}
    node["aggregateRating"] = {
        "@type": "AggregateRating",
        "ratingValue": store.user_score,
        "bestRating": 5,
        "reviewCount": store.review_cnt,
    }
    if full:
        node["review"] = [{"@type": "Review", "description": f"{store.name} 맛있어요", "datePublished": "2026-10-01"}]
        node["image"] = list(store.images) or [NO_IMAGE]  # the site's placeholder stands for no photo
        if store.phone:
            node["telephone"] = store.phone
        node["url"] = f"https://www.diningcode.com/profile.php?rid={store.rid}"
        node["servesCuisine"] = ", ".join(store.categories)
        if store.open_hours:
            node["openingHours"] = opening_hours(store)
        node["hasMenu"] = _ld_menu(store)
    return json.dumps(node, ensure_ascii=False).replace("</", "<\\/")


def open_days(store: Store) -> list[str]:
    """The weekdays the store opens (all but its weekly holiday)."""
    return [d for d in WEEK if store.holiday != f"매주 {d}요일 휴무"]


def opening_hours(store: Store) -> list[str]:
    """JSON-LD `openingHours` in the Korean form (`매일 11:00-22:30`, `화~일 오전 11시 - 오후 10시`, `휴무일: 매주
    월요일`) or schema.org's (`Tu-Su 11:00-22:00`: a day it does not name is closed), chosen per store."""
    assert store.open_hours
    how = form(store.rid, "ld-hours", ("korean", "korean-12h", "english"))
    days = open_days(store)
    if how == "english":
        return [f"{notation.day_part(days, 'english')} {notation.span(store.open_hours, 'tight')}"]
    hours = notation.span(store.open_hours, "korean" if how == "korean-12h" else "tight")
    entries = [f"{notation.day_part(days, 'runs')} {hours}"]
    return entries + ([notation.holiday_line(store.holiday, "key")] if store.holiday else [])


def _ld_menu(store: Store) -> dict[str, Any]:
    """`hasMenu`: items with `offers.price` as "8,000원" or a number (none when the page gives no price),
    directly in `hasMenuItem` or inside a `hasMenuSection`, chosen per store."""
    items = []
    for i, (name, price) in enumerate(store.menu):
        item: dict[str, Any] = {"@type": "MenuItem", "name": name}
        if price is not None:
            price_value = notation.offer_price(store.rid, i, price)
            item["offers"] = {"@type": "Offer", "price": price_value, "priceCurrency": "KRW"}
        items.append(item)
    if form(store.rid, "ld-menu", (0, 1)):
        return {"@type": "Menu", "hasMenuSection": [{"@type": "MenuSection", "name": "메뉴", "hasMenuItem": items}]}
    return {"@type": "Menu", "hasMenuItem": items}


def _hours_items(store: Store) -> str:
    """The 2023–25 layout: text lines in `li`s of a `busi-hours` block, in one of the notations of §3c chosen
    per store: all in today's line or each on its own, 24-hour or 12-hour Korean, the holiday in any form."""
    if not store.open_hours:
        return ""
    how = form(store.rid, "hours", ("one-line", "korean", "own-lines", "notes"))
    korean = how == "korean"
    hours = notation.span(store.open_hours, "korean" if korean else form(store.rid, "span", notation.SPAN_FORMS[:4]))
    last = f"라스트오더: {notation.clock(store.last_order, korean)}" if store.last_order else ""
    brk = f"브레이크타임 {notation.span(store.break_time, 'korean' if korean else 'tight')}" if store.break_time else ""
    holiday_form = form(store.rid, "holiday", notation.HOLIDAY_FORMS)
    holiday = notation.holiday_line(store.holiday, holiday_form) if store.holiday else ""
    if how == "notes":  # everything in today's line, the holiday as a note
        note = f"({store.holiday})" if store.holiday else "(연중무휴)"
        line = " ".join(p for p in (f"11월 23일 (월) 영업시간: {hours}", brk, last, note) if p)
        return f'<li class="busi-hours-today"><p class="r-txt">{escape(line)}</p></li>'
    if how == "one-line":
        lines = [f"영업시간: {hours} {last}".strip(), brk, holiday]
    else:
        lines = [f"영업시간: {hours}", last, brk, holiday]
    today = (
        f'<li class="busi-hours-today"><p class="l-txt">11월 23일 (월)</p><p class="r-txt">{escape(lines[0])}</p></li>'
    )
    return today + "".join(f'<li><p class="r-txt">{escape(line)}</p></li>' for line in lines[1:] if line)


def _title(store: Store) -> str:
    area = store.hotspot or (store.district or "서울")[:-1]
    return f"{store.name} - {area} {store.categories[0]}, {', '.join(store.tags[:2])} {TITLE_SUFFIX}"


def _head(store: Store, ld: str | None) -> str:
    title = escape(_title(store))
    image = f'<meta property="og:image" content="{escape(store.images[0] if store.images else NO_IMAGE)}">'
    script = f'<script type="application/ld+json">{ld}</script>' if ld else ""
    return (
        '<!DOCTYPE html><html lang="ko"><head><meta charset="utf-8">'
        f'<title>{title}</title><meta property="og:title" content="{title}">{image}{script}'
        f"{_self_links(store)}</head>"
    )


def _self_links(store: Store) -> str:
    """Where a profile page names itself (the canonical link and og:url): what the identity check reads."""
    url = f"https://www.diningcode.com/profile.php?rid={store.rid}"
    return f'<link rel="canonical" href="{url}"><meta property="og:url" content="{url}">'


def _price_variant(store: Store, i: int, price: int | None) -> str:
    """The ways the site writes one price: '12,900원', '12,900 원', '1만2천9백원', '+ 12,900원'."""
    if price is None:
        return "시가" if i % 2 else "변동"
    style = zlib.crc32(f"{store.rid}{i}".encode()) % 4
    if style == 1:
        return f"{price:,} 원"
    if style == 2:
        man, rest = divmod(price, 10_000)
        cheon, rest = divmod(rest, 1_000)
        baek, rest = divmod(rest, 100)
        parts = [f"{man}만" if man else "", f"{cheon}천" if cheon else "", f"{baek}백" if baek else ""]
        return "".join(parts) + (str(rest) if rest else "") + "원"
    if style == 3:
        return f"+ {price:,}원"
    return f"{price:,}원"


def _classic_hours(store: Store) -> str:
    """The older layout: `#div_hour` with today's block and the weekly table (l-txt / r-txt), in notations
    chosen per store: one `li` per weekday (`월요일`), or the days grouped (`매일`, `화~일`, `월, 화, 목`) with
    the day off on its own (`수요일` + `휴무일`, or `휴무일` + `매주 수요일`); times 24-hour or 12-hour Korean."""
    today, week = "", ""
    if store.open_hours:
        korean = form(store.rid, "classic-clock", (False, True))
        how = "korean" if korean else form(store.rid, "classic-span", ("spaced-tilde", "dash", "tilde"))
        lines = [f"영업시간: {notation.span(store.open_hours, how)}"]
        if store.last_order:
            lines.append(f"라스트오더: {notation.clock(store.last_order, korean)}")
        if store.break_time:
            lines.append(f"브레이크타임: {notation.span(store.break_time, 'korean' if korean else 'dash')}")
        if store.holiday:
            lines.append(escape(notation.holiday_line(store.holiday, form(store.rid, "holiday", ("plain", "key")))))
        today = (
            '<li><p class="l-txt"><strong>11월 23일 (월)</strong></p>'
            + "".join(f'<p class="r-txt">{line}</p>' for line in lines)
            + "</li>"
        )
        week = _weekly_rows(store, korean)
    return (
        f'<div id="div_hour"><div class="busi-hours-today"><ul class="list">{today}</ul></div>'
        f'<div class="busi-hours short"><ul class="list">{week}</ul><a class="more-btn">더보기</a></div></div>'
    )


def _day_lines(store: Store, korean: bool) -> str:
    assert store.open_hours
    body = f'<p class="r-txt">영업시간: {notation.span(store.open_hours, "korean" if korean else "dash")}</p>'
    if store.break_time:
        body += f'<p class="r-txt">브레이크타임: {notation.span(store.break_time, "korean" if korean else "tilde")}</p>'
    if store.last_order:
        body += f'<p class="r-txt">라스트오더: {notation.clock(store.last_order, korean)}</p>'
    return body


def _weekly_rows(store: Store, korean: bool) -> str:
    """The weekly table: the same hours every day but the holiday (the truth's weekly_hours)."""
    how = form(store.rid, "classic-week", ("per-day", "runs", "list"))
    days = open_days(store)
    closed = [d for d in WEEK if d not in days]
    if how == "per-day":
        return "".join(
            f'<li><p class="l-txt">{d}요일</p>'
            + ('<p class="r-txt">휴무일</p>' if d in closed else _day_lines(store, korean))
            + "</li>"
            for d in WEEK
        )
    rows = f'<li><p class="l-txt">{notation.day_part(days, how)}</p>{_day_lines(store, korean)}</li>'
    for d in closed:
        if how == "runs":
            rows += f'<li><p class="l-txt">{d}요일</p><p class="r-txt">휴무일</p></li>'
        else:
            rows += f'<li><p class="l-txt">휴무일</p><p class="r-txt">매주 {d}요일</p></li>'
    return rows


def _classic_heading(store: Store) -> str:
    """The store's heading: `h1` with the branch in a span, `.tit-point .tit`, or `p.tit > span` (the name in a
    span, the branch in the next); after the recent-search box, whose `.tit` is not the store, on some pages."""
    branch = f" <span>{escape(store.branch)}</span>" if store.branch else ""
    if form(store.rid, "heading", (0, 1, 2)) == 2:
        return f'<p class="tit"><span>{escape(store.name)}</span>{branch}</p>'
    if zlib.crc32(store.rid.encode()) % 2:
        return f"<h1>{escape(store.name)}{branch}</h1>"
    return (
        f'<div class="s-list pic-grade"><div class="tit-point"><p class="tit">{escape(store.name)}{branch}</p>'
        "</div></div>"
    )


RECENT_SEARCH = (
    '<div class="recent-search"><div class="tit-point"><p class="tit">최근검색기록 <span>전체삭제</span></p></div>'
    '<ul><li><a href="/list.dc?query=무한리필">무한리필</a></li></ul></div>'
)


def _position_markup(store: Store) -> str:
    """Coordinates outside JSON-LD, as pages have kept them: hidden inputs (2020) or a map's data attributes."""
    if form(store.rid, "position", (0, 1)):
        return f'<div id="map" data-lat="{store.lat}" data-lng="{store.lng}"></div>'
    return (
        f'<input id="hdn_lat" type="hidden" value="{store.lat}"><input id="hdn_lng" type="hidden" value="{store.lng}">'
    )


def _classic_body(store: Store, with_position: bool = False) -> str:
    """The l-txt / r-txt layout (2019–25): the name heading with the branch in a span, keywords in div.btxt,
    the address as a breadcrumb plus the lot number, one span per tag, hours and menu as pairs; `with_position`:
    the coordinates in hidden inputs or data attributes (the classic pages; pages without JSON-LD have none)."""
    words = store.address.split()
    crumbs = " › ".join(f'<a href="/list.dc?query={escape(w)}">{escape(w)}</a>' for w in words[:3])
    lot = " ".join(words[3:])
    heading = _classic_heading(store) + (_position_markup(store) if with_position else "")
    recent = RECENT_SEARCH if form(store.rid, "recent-search", (0, 1)) else ""
    keywords = "".join(f'<a href="/list.dc?query={escape(t)}">{escape(t)}</a>' for t in store.tags)
    tags = "".join(f"<span>#{escape(t)}</span>" for t in store.tags)
    phone = f'<li class="tel">{store.phone}</li>' if store.phone else ""
    menu = "".join(
        f'<li><p class="l-txt">{escape(name)}</p><p class="r-txt">{_price_variant(store, i, price)}</p></li>'
        for i, (name, price) in enumerate(store.menu)
    )
    return (
        f'<body>{recent}<div id="div_profile">{heading}<div class="btxt">{keywords}</div>'
        f'<div class="grade-info"><p class="score-text">{store.user_score}({store.review_cnt}명의 평가)</p>'
        f'<p class="total_score">{store.score}점</p></div>'
        '<ul class="list">'
        f'<li class="locat">{crumbs} {escape(lot)}'
        f'<span class="road">{escape(store.road_address)}</span></li>'
        f'{phone}<li class="tag">{tags}</li></ul>{_classic_hours(store)}'
        f'<div id="div_detail"><div class="menu-info short"><ul class="list">{menu}</ul>'
        '<a class="more-btn">더보기</a></div></div></div></body></html>'
    )


LAYOUTS = ("jsonld", "classic", "no-jsonld")


def layout_for(rid: str, forced: str = "", shift: int = 0) -> str:
    """The layout of one store's page: chosen by its id, or forced; `shift` moves half the stores on."""
    if forced:
        if forced not in LAYOUTS:
            raise ValueError(f"unknown layout {forced!r}; one of {', '.join(LAYOUTS)}")
        return forced
    code = zlib.crc32(rid.encode())
    index = code % len(LAYOUTS)
    if shift and (code // len(LAYOUTS)) % 2 == 0:
        index = (index + shift) % len(LAYOUTS)
    return LAYOUTS[index]


CLOSED_NOTICE = '<div class="closed-info">폐업한 가게입니다</div>'


def detail_page(store: Store, layout: str = "jsonld") -> bytes:
    """The detail page in one of the site's layouts: `jsonld` (2023–25), `classic` (the l-txt / r-txt
    pairs with a short JSON-LD), `no-jsonld` (the same markup, only title and og: meta above it)."""
    if layout == "classic":
        page = (_head(store, _json_ld(store, full=False)) + _classic_body(store, with_position=True)).encode()
    elif layout == "no-jsonld":
        page = (_head(store, None) + _classic_body(store)).encode()
    else:
        page = _jsonld_page(store)
    if store.closed_on is not None:  # a closed store the site still lists: its page says so
        page = page.replace(b'<div id="div_profile">', b'<div id="div_profile">' + CLOSED_NOTICE.encode())
    return page


def _jsonld_page(store: Store) -> bytes:
    title = _title(store)
    district = store.district or store.address.split()[1]
    dong = store.address.split()[2]
    menu = "".join(
        f'<li><span class="Restaurant_Menu">{escape(name)}</span>'
        f'<p class="Restaurant_MenuPrice">{_price_text(price)}</p></li>'
        for name, price in store.menu
    )
    tags = "".join(f'<a class="tag" href="/list.dc?tag={escape(t)}">#{escape(t)}</a>' for t in store.tags)
    branch = f'<p class="branch">{escape(store.branch)}</p>' if store.branch else ""
    phone = f'<li class="tel">{store.phone}</li>' if store.phone else ""
    return (
        '<!DOCTYPE html><html lang="ko"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>{_self_links(store)}"
        f'<script type="application/ld+json">{_json_ld(store)}</script></head><body>'
        f"{RECENT_SEARCH if form(store.rid, 'recent-search', (0, 1)) else ''}"
        f'<div id="div_profile"><div class="tit-point"><p class="tit">{escape(store.name)}</p>{branch}</div>'
        f'<div class="btxt"><a href="/list.dc?query=서울특별시">서울특별시</a> &gt; '
        f'<a href="/list.dc?query={escape(district)}">{escape(district)}</a> &gt; '
        f'<a href="/list.dc?query={escape(dong)}">{escape(dong)}</a></div>'
        f'<div class="grade-info"><p class="score-text"><span class="avg_score">{store.user_score}</span>'
        f"({store.review_cnt}명의\n          평가)</p>"
        f'<p class="total_score">{store.score}점</p></div>'
        f'<ul class="list basic-info"><li class="locat"><span class="addr">{escape(store.address)}</span>'
        f'<span class="road">{escape(store.road_address)}</span></li>{phone}'
        f'<li class="tag"><div class="tags">{tags}</div></li></ul>'
        f'<div class="busi-hours"><ul class="list">{_hours_items(store)}</ul></div>'
        f'<div class="menu-info"><ul class="Restaurant_MenuList">{menu}</ul></div>'
        "</div></body></html>"
    ).encode()
