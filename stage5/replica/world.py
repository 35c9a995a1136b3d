"""A deterministic synthetic Seoul for the replica: the same seed and scale give the same stores.

About 2,500 all-you-can-eat stores spread over the 25 districts by density, a third as many
ordinary stores that 무한리필 searches also return, a few stores outside Seoul that the site's soft
location filter leaks in, stores near a border that neighbouring districts' searches return too,
and a handful of defective records (coordinates of 0) that a crawler must reject, not store.
"""

from __future__ import annotations

import math
import random
import string
import zlib
from dataclasses import dataclass, field
from functools import cached_property

from stage5.site.seoul import DISTRICT_BY_NAME, DISTRICTS, District

BASE_REFILL_STORES = 2500

# Relative density of all-you-can-eat places per district (dense nightlife districts first).
DENSITY: dict[str, float] = {
    "강남구": 3.0,
    "마포구": 2.5,
    "송파구": 2.0,
    "서초구": 1.6,
    "영등포구": 1.6,
    "관악구": 1.5,
    "광진구": 1.5,
    "강서구": 1.4,
    "중구": 1.3,
    "종로구": 1.3,
    "용산구": 1.1,
    "구로구": 1.1,
    "노원구": 1.1,
    "동대문구": 1.0,
    "성동구": 1.0,
    "강동구": 1.0,
    "서대문구": 1.0,
    "동작구": 1.0,
    "성북구": 0.9,
    "은평구": 0.9,
    "양천구": 0.9,
    "중랑구": 0.8,
    "금천구": 0.7,
    "강북구": 0.7,
    "도봉구": 0.6,
}

DONGS = ("중앙동", "신동", "본동", "1동", "2동", "3동")
ROADS = ("로", "대로", "길")

# (food type, categories, refill menu items, brand names). Refill evidence comes from these words.
REFILL_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "고기",
        ("삼겹살", "돼지고기구이", "고기무한리필"),
        ("삼겹살", "목살", "항정살"),
        ("돼지상회", "고기굽는집", "명륜진사갈비", "육미당", "화로상회"),
    ),
    ("고기", ("소고기", "갈비"), ("우삼겹", "차돌박이", "양념갈비"), ("소도둑", "한우마당", "갈비명가")),
    ("해산물", ("조개구이", "해산물"), ("조개구이", "새우구이", "대게"), ("조개폭격", "바다회관", "해물창고")),
    ("일식", ("샤브샤브", "초밥"), ("샤브샤브", "초밥", "월남쌈"), ("샤브향", "스시로", "채선당")),
    ("중식", ("훠궈", "양꼬치"), ("훠궈", "양꼬치", "마라탕"), ("하이디라오", "양꼬치명가", "라화쿵부")),
    ("양식", ("피자", "파스타", "브런치"), ("피자", "파스타", "샐러드"), ("피자몰", "애슐리", "빕스")),
    ("한식", ("한식", "백반"), ("한식", "반찬", "비빔밥"), ("자연별곡", "한식명가", "풀잎채")),
    ("디저트", ("디저트", "카페"), ("케이크", "빙수", "와플"), ("설빙", "디저트39", "케이크팩토리")),
)
PLAIN_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("고기", ("삼겹살", "돼지고기구이"), ("삼겹살 1인분", "된장찌개"), ("원조집", "고깃집", "연탄구이")),
    ("한식", ("한식", "백반"), ("김치찌개", "제육볶음"), ("김밥나라", "엄마손", "한솥")),
    ("일식", ("라멘", "돈까스"), ("돈코츠라멘", "등심돈까스"), ("멘야", "카츠야", "라멘집")),
    ("양식", ("파스타", "스테이크"), ("까르보나라", "채끝스테이크"), ("트라토리아", "비스트로", "그릴")),
)
REFILL_MARKS = ("무한리필", "무제한", "셀프바", "뷔페", "리필")
OUTSIDE = (
    ("경기도 성남시 분당구", 37.3827, 127.1189),
    ("부산광역시 해운대구", 35.1631, 129.1635),
    ("인천광역시 부평구", 37.5070, 126.7219),
)


@dataclass
class Store:
    rid: str
    name: str
    district: str | None  # None: outside Seoul
    address: str
    road_address: str
    lat: float
    lng: float
    kind: str
    categories: tuple[str, ...]
    menu: tuple[tuple[str, int | None], ...]
    tags: tuple[str, ...]
    score: int
    user_score: float
    review_cnt: int
    is_refill: bool
    branch: str | None = None
    phone: str | None = None
    hotspot: str | None = None
    visible_in: tuple[str, ...] = ()
    open_hours: str | None = None
    last_order: str | None = None
    break_time: str | None = None
    holiday: str | None = None
    images: tuple[str, ...] = ()
    defect: str | None = None
    strings_for_numbers: bool = False  # quirk: lat/lng/review_cnt sent as strings
    closed_on: int | None = None  # the world's day it closed (None: open)
    listed_while_closed: bool = False  # still in search answers, its page saying it closed
    opened_on: int = 0

    @property
    def expect(self) -> str:
        """What a correct crawl does with this store: store it, reject it, or never see it as Seoul's."""
        if self.district is None:
            return "skip"
        return "reject" if self.defect else "store"

    @property
    def listed(self) -> bool:
        """In search answers today: open, or closed but still listed (the site lags)."""
        return self.closed_on is None or self.listed_while_closed

    def weekly_hours(self) -> dict[str, dict[str, object]] | None:
        """Day -> hours, as the older layout's weekly table shows them (the same hours every day but
        the holiday)."""
        if not self.open_hours:
            return None
        start, end = self.open_hours.split(" - ")
        week: dict[str, dict[str, object]] = {}
        for day in "월화수목금토일":
            closed = self.holiday == f"매주 {day}요일 휴무"
            week[day] = {
                "open": None if closed else start,
                "close": None if closed else end,
                "break": None if closed else self.break_time,
                "last_order": None if closed else self.last_order,
                "closed": closed,
            }
        return week

    def truth(self, layout: str = "jsonld") -> dict[str, object]:
        """What a correct crawl stores for this store when its page is in `layout`: every field."""
        prices = [p for _, p in self.menu if p]
        return {
            "rid": self.rid,
            "district": self.district,
            "refill": self.is_refill,
            "in_seoul": self.district is not None,
            "expect": self.expect,
            "status": "open" if self.closed_on is None else "closed",
            "listed": self.listed,
            "layout": layout,
            "name": self.name,
            "branch": self.branch,
            "address": self.address,
            "road_address": self.road_address,
            "phone": self.phone,
            "lat": self.lat,
            "lng": self.lng,
            "rating": self.user_score,
            "review_count": self.review_cnt,
            "score": self.score,
            "keywords": list(self.tags),
            "open_hours": self.open_hours,
            "break_time": self.break_time,
            "last_order": self.last_order,
            "holiday": self.holiday,
            "weekly_hours": self.weekly_hours() if layout != "jsonld" else None,
            "menu": [[name, price] for name, price in self.menu],
            "price_min": min(prices) if prices else None,
            "price_max": max(prices) if prices else None,
            "image_urls": list(self.images),
        }


@dataclass
class World:
    seed: int
    scale: float
    stores: list[Store] = field(default_factory=list)
    hotspot_district: dict[str, str] = field(default_factory=dict)

    @cached_property
    def by_rid(self) -> dict[str, Store]:
        return {s.rid: s for s in self.stores}

    @cached_property
    def by_district(self) -> dict[str, list[Store]]:
        index: dict[str, list[Store]] = {d.name: [] for d in DISTRICTS}
        for store in self.stores:
            if not store.listed:
                continue
            for d in store.visible_in:
                index[d].append(store)
        for stores in index.values():
            stores.sort(key=lambda s: (-s.score, s.rid))
        return index

    @cached_property
    def nationwide_top(self) -> list[Store]:
        """What the site answers when the location filter finds nothing: a generic list."""
        return sorted((s for s in self.stores if s.listed), key=lambda s: (-s.score, s.rid))[:100]


def _split_by_density(total: int) -> dict[str, int]:
    weight_sum = sum(DENSITY.values())
    exact = {d: total * w / weight_sum for d, w in DENSITY.items()}
    counts = {d: int(v) for d, v in exact.items()}
    for d in sorted(exact, key=lambda d: exact[d] - counts[d], reverse=True)[: total - sum(counts.values())]:
        counts[d] += 1
    return counts


def _neighbours(district: District) -> list[str]:
    def dist(other: District) -> float:
        return math.hypot(other.lat - district.lat, (other.lng - district.lng) * 0.79)

    return [d.name for d in sorted(DISTRICTS, key=dist)[1:3]]


class _Builder:
    def __init__(self, seed: int, scale: float) -> None:
        self.rng = random.Random(seed)
        self.world = World(seed=seed, scale=scale)
        self.rids: set[str] = set()
        self.hotspot_pos: dict[str, tuple[float, float]] = {}
        for d in DISTRICTS:
            for spot in d.hotspots[:2]:  # a third hotspot has no stores: its searches fall back wide
                self.hotspot_pos[spot] = (d.lat + self.rng.gauss(0, 0.008), d.lng + self.rng.gauss(0, 0.01))
            for spot in d.hotspots:
                self.world.hotspot_district[spot] = d.name

    def rid(self) -> str:
        alphabet = string.ascii_letters + string.digits
        while True:
            rid = "".join(self.rng.choice(alphabet) for _ in range(12))
            if rid not in self.rids:
                self.rids.add(rid)
                return rid

    def phone(self) -> str | None:
        r = self.rng.random()
        if r < 0.05:
            return None
        if r < 0.30:
            return f"0507-{self.rng.randint(1000, 9999)}-{self.rng.randint(1000, 9999)}"
        return f"02-{self.rng.randint(200, 9999)}-{self.rng.randint(1000, 9999)}"

    def hours(self, store: Store) -> None:
        if self.rng.random() < 0.1:
            return  # quirk: no hours on the page
        start = self.rng.choice(("11:00", "11:30", "12:00", "16:00", "17:00"))
        end = self.rng.choice(("22:00", "23:00", "24:00", "02:00"))
        store.open_hours = f"{start} - {end}"
        store.last_order = f"{int(end[:2]) - 1 if end != '02:00' else 1:02d}:00"
        if self.rng.random() < 0.4:
            store.break_time = "15:00 - 17:00"
        if self.rng.random() < 0.5:
            store.holiday = f"매주 {self.rng.choice('월화수목금토일')}요일 휴무"
        if zlib.crc32(store.rid.encode()) % 40 == 0:  # open all day (24시간 영업): no break, no last order
            store.open_hours, store.last_order, store.break_time = "00:00 - 24:00", None, None

    def store(self, district: District | None, refill: bool) -> Store:
        rng = self.rng
        kind, categories, items, brands = rng.choice(REFILL_KINDS if refill else PLAIN_KINDS)
        brand = rng.choice(brands)
        if district is not None:
            dong = district.name[:-1] + rng.choice(DONGS)
            spot = rng.choice(district.hotspots[:2]) if rng.random() < 0.5 else None
            base_lat, base_lng = self.hotspot_pos[spot] if spot else (district.lat, district.lng)
            spread = 0.004 if spot else 0.011
            lat, lng = base_lat + rng.gauss(0, spread), base_lng + rng.gauss(0, spread * 1.26)
            address = f"서울특별시 {district.name} {dong} {rng.randint(1, 999)}-{rng.randint(1, 60)}"
            road = f"서울특별시 {district.name} {dong[:2]}{rng.choice(ROADS)} {rng.randint(1, 300)}"
            area = spot.removesuffix("역") if spot else district.name[:-1]
        else:
            region, lat0, lng0 = rng.choice(OUTSIDE)
            lat, lng, spot = lat0 + rng.gauss(0, 0.01), lng0 + rng.gauss(0, 0.01), None
            address = f"{region} 중앙동 {rng.randint(1, 999)}"
            road = f"{region} 중앙로 {rng.randint(1, 300)}"
            area = region.split()[-1][:-1]
        menu, tags, name = self.menu_and_words(refill, kind, items, brand, area)
        store = Store(
            rid=self.rid(),
            name=name,
            district=district.name if district else None,
            address=address,
            road_address=road,
            lat=round(lat, 7),
            lng=round(lng, 7),
            kind=kind,
            categories=categories,
            menu=menu,
            tags=tags,
            score=rng.randint(30, 98),
            user_score=round(rng.uniform(2.8, 5.0), 1),
            review_cnt=rng.randint(0, 900),
            is_refill=refill,
            phone=self.phone(),
            hotspot=spot,
            branch=f"{area}점" if rng.random() < 0.6 else None,
            images=tuple(
                f"https://d12zq4w4guyljn.cloudfront.net/{rng.getrandbits(40):x}.jpg" for _ in range(rng.randint(0, 3))
            ),
            strings_for_numbers=rng.random() < 0.3,
        )
        self.hours(store)
        return store

    def menu_and_words(
        self, refill: bool, kind: str, items: tuple[str, ...], brand: str, area: str
    ) -> tuple[tuple[tuple[str, int | None], ...], tuple[str, ...], str]:
        """Menu, tags and name. A refill store carries at least one refill word somewhere."""
        rng = self.rng
        prices: list[int | None] = [rng.randrange(9900, 45000, 1000) + 900 for _ in items]
        if not refill:
            menu = tuple((item, price) for item, price in zip(items, prices))
            return menu, (kind, "맛집"), f"{area} {brand}"
        mark = rng.choice(REFILL_MARKS)
        where = rng.random()
        name = f"{area} {brand} {mark}" if where < 0.35 else f"{area} {brand}"
        menu = tuple(
            (f"{item} {mark}" if (where >= 0.35 and i == 0) or rng.random() < 0.3 else item, price)
            for i, (item, price) in enumerate(zip(items, prices))
        )
        if rng.random() < 0.1:
            menu += (("음료", None),)  # quirk: a price the page does not give
        return menu, (kind, mark, "가성비"), name


def build_world(seed: int = 5, scale: float = 1.0, day: int = 0) -> World:
    """The replica's whole world for (seed, scale) on `day`; pure and deterministic."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    builder = _Builder(seed, scale)
    rng = builder.rng
    refill_total = round(BASE_REFILL_STORES * scale)
    for name, count in _split_by_density(refill_total).items():
        district = DISTRICT_BY_NAME[name]
        plain = round(count / 3)
        for refill in [True] * count + [False] * plain:
            builder.world.stores.append(builder.store(district, refill))
    for _ in range(max(3, round(60 * scale))):
        builder.world.stores.append(builder.store(None, rng.random() < 0.7))
    neighbours = {d.name: _neighbours(d) for d in DISTRICTS}
    for store in builder.world.stores:
        if store.district is None:
            continue
        store.visible_in = (store.district,)
        if rng.random() < 0.12:  # near a border: the neighbour's searches return it too
            store.visible_in += (rng.choice(neighbours[store.district]),)
        if rng.random() < 0.004:
            store.defect = "zero_coordinates"
            store.lat = store.lng = 0.0
    for d in range(1, day + 1):
        evolve(builder, d)
    return builder.world


# What happens to the world overnight: shares of the open stores, per day.
DAILY_CHANGED, DAILY_CLOSED, DAILY_OPENED, DAILY_REOPENED = 0.04, 0.01, 0.01, 0.2  # reopened: of those closed


def evolve(builder: _Builder, day: int) -> None:
    """Day `day` of the world from day `day - 1`: some stores change prices, hours, menu or phone, about
    1% close (gone from searches, or still listed with a page saying closed), about 1% open, a few of the
    closed reopen. Its own random stream per day, so day N is the same however it is reached."""
    world = builder.world
    rng = builder.rng = random.Random(f"{world.seed}:{world.scale}:day{day}")
    alive = [s for s in world.stores if s.district and s.closed_on is None and not s.defect]
    for store in rng.sample(alive, round(len(alive) * DAILY_CHANGED)):
        _change(rng, store, builder)
    for store in rng.sample(alive, round(len(alive) * DAILY_CLOSED)):
        store.closed_on, store.listed_while_closed = day, rng.random() < 0.3
    gone = [s for s in world.stores if s.closed_on is not None and s.closed_on < day and not s.listed_while_closed]
    for store in rng.sample(gone, round(len(gone) * DAILY_REOPENED)):
        store.closed_on = None
    districts = [DISTRICT_BY_NAME[name] for name in DENSITY]
    for _ in range(round(len(alive) * DAILY_OPENED)):
        store = builder.store(rng.choice(districts), rng.random() < 0.75)
        store.visible_in, store.opened_on = (store.district or "",), day
        world.stores.append(store)


def _change(rng: random.Random, store: Store, builder: _Builder) -> None:
    aspect = rng.choice(("prices", "hours", "menu", "phone"))
    if aspect == "prices":
        store.menu = tuple((name, price + 1000 if price else price) for name, price in store.menu)
    elif aspect == "hours":
        store.open_hours = f"{rng.choice(('10:00', '10:30', '12:30'))} - 23:30"
        store.last_order = "22:30"
    elif aspect == "menu":
        store.menu += ((f"{store.kind} 신메뉴", rng.randrange(9900, 30000, 1000) + 900),)
    else:
        store.phone = f"0507-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
