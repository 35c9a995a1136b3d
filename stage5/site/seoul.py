"""Seoul's geography as stage5 needs it: the 25 districts, their offices, hotspots and bounds.

Facts about the city, not about DiningCode, so both the crawler and the replica use them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class District:
    name: str
    lat: float  # district office, the centre of the ~3 km search box
    lng: float
    hotspots: tuple[str, ...]  # stations people search by ("{hotspot} 무한리필")


DISTRICTS: tuple[District, ...] = (
    District("강남구", 37.5172, 127.0473, ("강남역", "역삼역", "선릉역")),
    District("강동구", 37.5301, 127.1238, ("천호역", "길동역")),
    District("강북구", 37.6396, 127.0257, ("수유역", "미아역")),
    District("강서구", 37.5509, 126.8495, ("발산역", "마곡역")),
    District("관악구", 37.4784, 126.9516, ("신림역", "서울대입구역")),
    District("광진구", 37.5385, 127.0823, ("건대입구역", "구의역")),
    District("구로구", 37.4955, 126.8875, ("구로디지털단지역", "신도림역")),
    District("금천구", 37.4569, 126.8955, ("가산디지털단지역", "독산역")),
    District("노원구", 37.6542, 127.0568, ("노원역", "공릉역")),
    District("도봉구", 37.6688, 127.0471, ("창동역", "쌍문역")),
    District("동대문구", 37.5744, 127.0400, ("회기역", "청량리역")),
    District("동작구", 37.5124, 126.9393, ("사당역", "노량진역")),
    District("마포구", 37.5663, 126.9019, ("홍대입구역", "합정역", "공덕역")),
    District("서대문구", 37.5791, 126.9368, ("신촌역", "홍제역")),
    District("서초구", 37.4837, 127.0324, ("교대역", "방배역")),
    District("성동구", 37.5633, 127.0371, ("왕십리역", "성수역")),
    District("성북구", 37.5894, 127.0167, ("성신여대입구역", "길음역")),
    District("송파구", 37.5145, 127.1066, ("잠실역", "석촌역", "가락시장역")),
    District("양천구", 37.5169, 126.8664, ("목동역", "오목교역")),
    District("영등포구", 37.5264, 126.8962, ("영등포역", "여의도역")),
    District("용산구", 37.5326, 126.9905, ("이태원역", "용산역")),
    District("은평구", 37.6027, 126.9291, ("연신내역", "불광역")),
    District("종로구", 37.5735, 126.9790, ("종각역", "혜화역")),
    District("중구", 37.5641, 126.9979, ("을지로입구역", "명동역")),
    District("중랑구", 37.6066, 127.0927, ("상봉역", "면목역")),
)

DISTRICT_NAMES: tuple[str, ...] = tuple(d.name for d in DISTRICTS)
DISTRICT_BY_NAME: dict[str, District] = {d.name: d for d in DISTRICTS}

# Seoul's bounding box with a small margin; a coordinate outside it is not a Seoul store.
SEOUL_LAT = (37.41, 37.72)
SEOUL_LNG = (126.73, 127.27)

_SEOUL_PREFIX = re.compile(r"^\s*서울(특별시|시)?\s")


def neighbourhood_of_address(address: str | None) -> str | None:
    """The 동 (or 가) of a Seoul lot-number address ('서울특별시 강남구 역삼동 123-4' -> '역삼동'), else None."""
    district = district_of_address(address)
    if district is None or address is None:
        return None
    words = address.split()
    after = words[words.index(district) + 1 :]
    return after[0] if after and after[0].endswith(("동", "가")) else None


def in_seoul(lat: float, lng: float) -> bool:
    return SEOUL_LAT[0] <= lat <= SEOUL_LAT[1] and SEOUL_LNG[0] <= lng <= SEOUL_LNG[1]


def district_of_address(address: str | None) -> str | None:
    """The 구 of a Seoul address ('서울특별시 강남구 역삼동 …' -> '강남구'), else None.

    Matches whole tokens only, so '중구' is not found inside '중랑구' and Busan's 중구 is not Seoul's.
    """
    if not address or not _SEOUL_PREFIX.match(address):
        return None
    for token in address.split()[1:3]:
        if token in DISTRICT_BY_NAME:
            return token
    return None


def search_box(district: District, half_km: float = 3.0) -> tuple[float, float, float, float]:
    """(minLat, minLng, maxLat, maxLng) about `half_km` around the district office."""
    dlat = half_km / 111.0
    dlng = half_km / 88.2  # km per degree of longitude at 37.5°N
    return (district.lat - dlat, district.lng - dlng, district.lat + dlat, district.lng + dlng)


EARTH_RADIUS_M = 6_371_000.0
Box = tuple[float, float, float, float]  # (minLat, minLng, maxLat, maxLng)
SEOUL_BOX: Box = (SEOUL_LAT[0], SEOUL_LNG[0], SEOUL_LAT[1], SEOUL_LNG[1])


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def quarters(box: Box) -> list[Box]:
    """The four quarters of a box (SW, SE, NW, NE)."""
    min_lat, min_lng, max_lat, max_lng = box
    mid_lat, mid_lng = (min_lat + max_lat) / 2, (min_lng + max_lng) / 2
    return [
        (min_lat, min_lng, mid_lat, mid_lng),
        (min_lat, mid_lng, mid_lat, max_lng),
        (mid_lat, min_lng, max_lat, mid_lng),
        (mid_lat, mid_lng, max_lat, max_lng),
    ]


def circle_around(box: Box) -> tuple[float, float, float]:
    """(lat, lng, radius_m) of a circle around the box: its centre, and its farthest corner (a degree of
    longitude is shorter on the box's north side, so the southern corners are the farther ones)."""
    min_lat, min_lng, max_lat, max_lng = box
    lat, lng = (min_lat + max_lat) / 2, (min_lng + max_lng) / 2
    corners = ((a, b) for a in (min_lat, max_lat) for b in (min_lng, max_lng))
    return lat, lng, math.ceil(max(distance_m(lat, lng, a, b) for a, b in corners))
