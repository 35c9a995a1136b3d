"""How the replica answers the profile API (`POST /API/profile/`, form `v_rid`), in the shape of
`shared/diningcode.md` §3b: 16 sections by key, with the quirks public crawlers guard against (numbers as
strings, counts with commas, URLs without a scheme, tags and facilities with a stray `", "` in front and
empty ones, `reply_dt` of 1970 when there is no reply).

Written from the notes, not from stage5's parser. Each store's answer agrees with its detail page and
its truth; the few facts the page does not carry (facilities, best menu items) are drawn from the store's
id here, so building the world is unchanged.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from stage5.replica import notation
from stage5.replica.world import Store

FACILITIES = ("주차", "발렛", "예약", "단체석", "포장", "배달", "무선 인터넷", "유아시설", "놀이방")
OTHER_SECTIONS = ("near", "similar", "theme", "notice", "event", "coupon", "banner", "recent")  # 8 + 8 = 16
OPEN_STATUS = "영업 중"  # what the search answer says of every store the replica lists


def _code(store: Store, salt: str) -> int:
    return zlib.crc32(f"{store.rid}:{salt}".encode())


def facilities_of(store: Store) -> tuple[str, ...]:
    """The store's facilities: 0 to 4 of FACILITIES, by its id."""
    code = _code(store, "facility")
    return tuple(f for i, f in enumerate(FACILITIES) if (code >> i) & 1)[: code % 5]


def best_menu_of(store: Store) -> tuple[str, ...]:
    """The menu items the site marks best (대표): the first item of most stores, sometimes another too."""
    names = [name for name, _ in store.menu]
    code = _code(store, "best")
    if not names or code % 5 == 0:
        return ()
    return tuple(dict.fromkeys(n for i, n in enumerate(names) if i == 0 or (code >> (i + 3)) & 1 and i % 2))


def fails(rid: str, share: float) -> bool:
    """Whether the API answers this store with an error (Faults.api_fail: a share of the stores, by id)."""
    return share > 0 and zlib.crc32(f"{rid}:api".encode()) % 1000 < share * 1000


def _number(store: Store, value: float | int) -> Any:
    return str(value) if store.strings_for_numbers else value


def _no_scheme(store: Store, url: str, i: int) -> str:
    """Some image and blog URLs come without a scheme (or with `//`)."""
    style = _code(store, f"url{i}") % 3
    if style == 1:
        return url.removeprefix("https://").removeprefix("http://")
    if style == 2:
        return url.removeprefix("https:")
    return url


def _messy(store: Store, words: tuple[str, ...], salt: str) -> list[str]:
    """Tag and facility strings as the API sends them: some with a leading ', ' or spaces, an empty one."""
    code = _code(store, salt)
    out = [(", " if (code >> i) & 1 else " " if (code >> (i + 8)) & 1 else "") + w for i, w in enumerate(words)]
    if code % 3 == 0:
        out.insert(code % (len(out) + 1), "")
    return out


def _images(store: Store) -> dict[str, Any]:
    return {
        "list": [
            {
                "pd_id": str(_code(store, f"pd{i}") % 100000),
                "origin": _no_scheme(store, url, i),
                "thumb": _no_scheme(store, url.replace(".jpg", "_t.jpg"), i),
                "middle": "",
                "user_name": "맛객",
                "date": "2026-10-01",
                "type": "review" if i else "store",
            }
            for i, url in enumerate(store.images)
        ]
    }


def _restaurant(store: Store) -> dict[str, Any]:
    area = store.hotspot or (store.district or "서울")[:-1]
    return {
        "key": "restaurant",
        "v_rid": store.rid,
        "rn": store.name,
        "branch": store.branch or "",
        "name": f"{store.name} {store.branch}" if store.branch else store.name,
        "area": [area],
        "categories": list(store.categories),
        "desc": _messy(store, store.tags[:2], "desc"),
        "score": _number(store, store.score),
        "lat": _number(store, store.lat),
        "lng": _number(store, store.lng),
        "img": _no_scheme(store, store.images[0], 0) if store.images else "",
        "phone": store.phone or "",
        "images": _images(store),
    }


def bhour(store: Store) -> list[dict[str, Any]]:
    """{duration, time, today} pairs, in the notations of §3c chosen per store (stage5.replica.notation): the
    hours for every day or for the open days, the break and last order inside that text or on lines of their
    own, then the holiday."""
    if not store.open_hours:
        return []
    rid = store.rid
    how = notation.form(rid, "api-span", notation.SPAN_FORMS)
    korean = how == "korean"
    closed_day = store.holiday.removeprefix("매주 ")[:1] if store.holiday else None
    open_days = [d for d in notation.WEEK if d != closed_day]
    daily = notation.form(rid, "api-days", (True, False)) or closed_day is None
    duration = "매일" if daily else notation.day_part(open_days, notation.form(rid, "api-day-form", ("range", "list")))
    hours = notation.span(store.open_hours, how)
    extras = []
    if store.break_time:
        extras.append(("브레이크타임", notation.span(store.break_time, "korean" if korean else "tight")))
    if store.last_order:
        extras.append(("라스트오더", notation.clock(store.last_order, korean)))
    inline = bool(_code(store, "hours") & 2)
    text = " ".join([hours, *(f"{key} {value}" for key, value in extras)]) if inline else hours
    entries = [{"duration": duration, "time": text, "today": "1"}]
    if not inline:
        entries += [{"duration": key, "time": value, "today": ""} for key, value in extras]
    if store.holiday:
        entries.append({"duration": "휴무일", "time": store.holiday.removesuffix(" 휴무"), "today": ""})
    return entries


def _detail(store: Store) -> dict[str, Any]:
    closed = store.closed_on is not None
    status: Any = {"is_open": "1", "color": "#2fb45a", "time": OPEN_STATUS}
    if closed:  # the shape changes when the store is not open
        status = {"is_open": "0", "time": "폐업한 가게입니다"}
    hours = bhour(store)
    return {
        "key": "detail",
        "address": store.address,
        "road_address": store.road_address,
        "phone": store.phone or "",
        "bhour": hours,
        "bhour_seo": [{"duration": h["duration"], "time": h["time"], "today": False} for h in hours],
        "status": status,
        "tag": _messy(store, store.tags, "tag"),
        "facility": _messy(store, facilities_of(store), "facility-text"),
    }


def _price(store: Store, i: int, price: int | None) -> Any:
    """A price as a number, a digit string or a text, by item."""
    if price is None:
        return "변동"
    style = _code(store, f"price{i}") % 3
    return price if style == 0 else f"{price:,}원" if style == 1 else str(price)


def _menu(store: Store) -> dict[str, Any]:
    best = set(best_menu_of(store))
    rows = []
    for i, (name, price) in enumerate(store.menu):
        chosen = _code(store, f"chosen{i}") % 2000
        rows.append(
            {
                "menu": name,
                "price": _price(store, i, price),
                "description": "",
                "rank": str(i + 1),
                "best": "1" if name in best else "0",
                "selection_count": f"{chosen:,}",
                "selection_rate": f"{chosen / 20:.1f}",
                "review_count": str(chosen // 10),
                "comment_count": "0",
            }
        )
    return {"key": "menu", "list": rows, "menu_total_count": str(len(rows)), "has_popular_menu": bool(best)}


def _score(store: Store) -> dict[str, Any]:
    count = f"{store.review_cnt:,}"
    return {
        "key": "score",
        "score": {
            "average": str(store.user_score),
            "total": count,
            "review_total": count,
            "taste": str(store.user_score),
            "service": str(store.user_score),
            "price": str(store.user_score),
            "clean": str(store.user_score),
            "score5": str(store.review_cnt // 2),
            "score1": "0",
            "text": "맛있다",
        },
    }


def _reviews(store: Store) -> dict[str, Any]:
    info = {
        "rv_id": str(_code(store, "review") % 100000),
        "review_dt": "2026-10-01",
        "review_total_score": "5",
        "review_cont": f"{store.name} 맛있어요",
        "review_keyword": [],
        "review_img": [],
        "order_menu": [],
        "reply_info": {"reply_comment": "", "reply_dt": "1970년 1월 1일", "reply_partner": ""},
    }
    return {
        "key": "review",
        "list": [{"review_info": info, "user_info": {"user_nm": "맛객"}}],
        "page": "1",
        "total_cnt": f"{store.review_cnt:,}",
        "total_page": str(max(1, store.review_cnt // 10)),
    }


def profile_json(store: Store) -> bytes:
    """The answer to `POST /API/profile/` with this store's v_rid."""
    sections = [
        _restaurant(store),
        _detail(store),
        _menu(store),
        {"key": "photo", "list": _images(store)["list"]},
        _reviews(store),
        {
            "key": "blog",
            "list": [{"p_id": "1", "title": f"{store.name} 후기", "url": "blog.naver.com/dc/1", "site": "naver"}],
            "page": "1",
            "total_page": "1",
        },
        _score(store),
        {"key": "tag", "word": "d12zq4w4guyljn.cloudfront.net/word.png", "word_m": ""},
        *({"key": key, "list": []} for key in OTHER_SECTIONS),
    ]
    body = {"result_code": "100", "result_msg": "success", "result_data": sections}
    return json.dumps(body, ensure_ascii=False).encode()


def profile_error(code: str, message: str) -> bytes:
    return json.dumps({"result_code": code, "result_msg": message, "result_data": []}, ensure_ascii=False).encode()
