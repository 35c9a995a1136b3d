"""DiningCode's endpoints, request shapes and search keywords: where and how to ask.

What the answers look like is in `stage5.site.parsers`. Together the two modules are all stage5
knows about the site; a change on the real site is a fix here or there, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode, urlsplit

from stage5.site.seoul import SEOUL_BOX, District, circle_around, quarters, search_box

REAL_WWW = "https://www.diningcode.com"
REAL_API = "https://im.diningcode.com"
REAL_HOSTS = {"www.diningcode.com", "im.diningcode.com", "diningcode.com", "m.diningcode.com"}

SEARCH_PATH = "/API/isearch/"
LIST_PATH = "/list.dc"
DETAIL_PATH = "/profile.php"
PROFILE_API_PATH = "/API/profile/"

# Query words of the earlier project: per district, per meat, per hotspot station.
DISTRICT_KEYWORDS = ("무한리필", "고기무한리필")
HOTSPOT_KEYWORD = "무한리필"


@dataclass(frozen=True)
class Endpoints:
    """Absolute URLs for one site: the real DiningCode, or a replica at one base URL."""

    www: str
    api: str

    @classmethod
    def for_site(cls, site: str) -> Endpoints:
        site = site.rstrip("/")
        host = urlsplit(site).hostname or ""
        if host.endswith("diningcode.com"):
            return cls(www=REAL_WWW, api=REAL_API)
        return cls(www=site, api=site)  # a replica serves every endpoint itself

    @property
    def hosts(self) -> frozenset[str]:
        """The site's own hosts (host:port as URLs name them): where a redirect may lead."""
        own = {urlsplit(self.www).netloc, urlsplit(self.api).netloc}
        return frozenset(own | (REAL_HOSTS if self.www == REAL_WWW else set()))

    @property
    def search_url(self) -> str:
        return self.api + SEARCH_PATH

    def list_url(self, query: str, rect: tuple[float, float, float, float] | None = None) -> str:
        params = {"query": query}
        if rect:
            params["rect"] = ",".join(f"{v:.6f}" for v in rect)
        return f"{self.www}{LIST_PATH}?{urlencode(params)}"

    def detail_url(self, rid: str) -> str:
        return f"{self.www}{DETAIL_PATH}?rid={quote(rid)}"

    @property
    def profile_url(self) -> str:
        """The profile API: POST with `profile_form(rid)`, the search API's headers."""
        return self.api + PROFILE_API_PATH

    def headers(self, user_agent: str) -> dict[str, str]:
        return {
            "Origin": self.www,
            "Referer": self.www + "/",
            "Accept": "application/json, text/plain, */*",
            "Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5",
            "User-Agent": user_agent,
        }


def profile_form(rid: str) -> dict[str, str]:
    """The profile API's form: the store id only (tab/page would page reviews; every section comes anyway)."""
    return {"v_rid": rid}


@dataclass(frozen=True)
class SearchQuery:
    """One keyword search within one district, paged until the end; with `radius_m`, a part of one: the
    same keyword near (lat, lng), whose answer counts only the entries within the radius (the site's
    radius is soft)."""

    district: str
    keyword: str
    lat: float
    lng: float
    rect: tuple[float, float, float, float]
    radius_m: float | None = None
    # The district's own query ("{구} 무한리필") and its parts: its count is the district's count, its
    # answers are the ones completeness is judged by, and its entries are preferred (see `order`).
    anchor: bool = False
    depth: int = 0  # 0 for a planned query; a part of a part of it is 2
    rank: int = 0  # its place in the district's plan (the district query first)
    area: str = ""  # a neighbourhood (동) part: only entries whose address is in it count

    @property
    def label(self) -> str:
        if self.radius_m is None:
            return self.keyword
        return f"{self.keyword} @{self.lat:.5f},{self.lng:.5f} r{self.radius_m:.0f}m"

    @property
    def order(self) -> tuple[int, int, str, float, float]:
        """Where an entry from this query stands when several entries for one store disagree: the
        district's own query first, then the plan's order, planned queries before their parts."""
        return (self.rank, self.depth, self.area, self.lat, self.lng)

    def form(self, page: int, size: int) -> dict[str, str]:
        """The POST form a browser sends for page `page` (1-based)."""
        return {
            "query": self.keyword,
            "addr": "",
            "keyword": "",
            "order": "r_score",
            "distance": f"{self.radius_m:.0f}" if self.radius_m is not None else "",
            "rn_search_flag": "on",
            "search_type": "poi_search",
            "lat": f"{self.lat:.6f}",
            "lng": f"{self.lng:.6f}",
            "rect": ",".join(f"{v:.6f}" for v in self.rect),
            "s_type": "",
            "token": "",
            "mode": "poi",
            "dc_flag": "1",
            "page": str(page),
            "size": str(size),
        }


def queries_for(district: District) -> list[SearchQuery]:
    """The searches that together cover one district; the same store recurs and is deduped later."""
    rect = search_box(district)
    short = district.name[:-1] if len(district.name) > 2 else district.name  # 강남구 -> 강남
    words = [f"{district.name} {kw}" for kw in DISTRICT_KEYWORDS]
    words.append(f"{short} 무한리필")
    words += [f"{spot} {HOTSPOT_KEYWORD}" for spot in district.hotspots]
    # dict.fromkeys: 중구 has no shorter name, so its first and third keyword are the same search.
    return [
        SearchQuery(district.name, w, district.lat, district.lng, rect, anchor=i == 0, rank=i)
        for i, w in enumerate(dict.fromkeys(words))
    ]


def neighbourhood_queries(query: SearchQuery, areas: list[str]) -> list[SearchQuery]:
    """Parts of a district query by neighbourhood (동), for what splitting by coordinates cannot reach
    (a store whose coordinates are wrong): "{구} {동} 무한리필", counting only entries whose address is in
    that 동. The neighbourhoods are the ones the district's entries' addresses name."""
    word = query.keyword.split()[-1]
    return [
        replace(query, keyword=f"{query.district} {area} {word}", depth=query.depth + 1, area=area)
        for area in sorted(set(areas))
    ]


def split_query(query: SearchQuery, min_radius_m: float) -> list[SearchQuery]:
    """The parts of a truncated district query: the same keyword in four circles covering its area (the
    whole of Seoul for the query itself, a quarter of its box for a part), so that together they list
    every store it counts. Empty when a part would be smaller than `min_radius_m`: splitting bottoms out."""
    box = SEOUL_BOX if query.radius_m is None else query.rect
    parts = []
    for quarter in quarters(box):
        lat, lng, radius = circle_around(quarter)
        if radius < min_radius_m:
            return []
        parts.append(
            SearchQuery(
                query.district,
                query.keyword,
                lat,
                lng,
                quarter,
                radius_m=radius,
                anchor=query.anchor,
                depth=query.depth + 1,
                rank=query.rank,
                area=query.area,
            )
        )
    return parts
