"""Is a CAP alert's area the council's? Geocodes compared as values, shapes by geometry.

CAP 1.2 §3.2.4 (https://docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2.html): a polygon is
"lat,lon" pairs separated by spaces, first and last the same; a circle is "lat,lon radius" with
the radius in kilometres; a geocode is a valueName (e.g. ISTAT) and a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Point = tuple[float, float]  # (lat, lon)
EARTH_KM = 6371.0


class AreaError(ValueError):
    pass


@dataclass(frozen=True)
class AlertArea:
    geocodes: tuple[tuple[str, str], ...] = ()
    polygons: tuple[tuple[Point, ...], ...] = ()
    circles: tuple[tuple[Point, float], ...] = ()


@dataclass(frozen=True)
class CouncilArea:
    codes: tuple[tuple[str, str], ...] = ()  # (valueName or "", value)
    polygon: tuple[Point, ...] = field(default=())

    def is_set(self) -> bool:
        return bool(self.codes or self.polygon)


def parse_point(text: str) -> Point:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise AreaError(f"not a 'lat,lon' point: {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat + lon):
        raise AreaError(f"not a point on Earth: {text!r}")
    return lat, lon


def parse_polygon(text: str) -> tuple[Point, ...]:
    points = tuple(parse_point(pair) for pair in text.split())
    if len(points) < 4 or points[0] != points[-1]:
        raise AreaError("a polygon needs at least four points, the last the same as the first")
    return points


def parse_circle(text: str) -> tuple[Point, float]:
    try:
        centre, radius = text.split()
        km = float(radius)
    except ValueError:
        raise AreaError(f"not a 'lat,lon radius' circle: {text!r}") from None
    if not km >= 0:
        raise AreaError(f"not a radius in kilometres: {text!r}")
    return parse_point(centre), km


def council_area(codes: list[str], polygon: str) -> CouncilArea:
    """The council's area from its settings: codes as VALUE or NAME=VALUE, a CAP polygon."""
    pairs = []
    for code in codes:
        name, _sep, value = code.rpartition("=")
        if not value.strip():
            raise AreaError(f"empty geocode value in {code!r}")
        pairs.append((name.strip().lower(), value.strip()))
    return CouncilArea(codes=tuple(pairs), polygon=parse_polygon(polygon) if polygon else ())


def area_matches(council: CouncilArea, alert: AlertArea) -> bool:
    for name, value in alert.geocodes:
        for our_name, our_value in council.codes:
            if value.strip() == our_value and (not our_name or our_name == name.strip().lower()):
                return True
    if council.polygon:
        if any(_polygons_meet(council.polygon, polygon) for polygon in alert.polygons):
            return True
        if any(_circle_meets(council.polygon, c, km) for c, km in alert.circles):
            return True
    return False


# Geometry on a plane: over a council's few kilometres the Earth's curvature does not matter,
# but longitude degrees shrink with latitude, so circles are measured in kilometres.
def _inside(point: Point, polygon: tuple[Point, ...]) -> bool:
    lat, lon = point
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(polygon, polygon[1:], strict=False):
        if (lat1 > lat) != (lat2 > lat):
            crossing = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if lon < crossing:
                inside = not inside
    return inside


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    d1, d2 = _orientation(c, d, a), _orientation(c, d, b)
    d3, d4 = _orientation(a, b, c), _orientation(a, b, d)
    return (d1 * d2 <= 0) and (d3 * d4 <= 0) and not (d1 == d2 == d3 == d4 == 0)


def _edges(polygon: tuple[Point, ...]):
    return zip(polygon, polygon[1:], strict=False)


def _polygons_meet(ours: tuple[Point, ...], theirs: tuple[Point, ...]) -> bool:
    if _inside(ours[0], theirs) or _inside(theirs[0], ours):
        return True
    return any(_segments_cross(a, b, c, d) for a, b in _edges(ours) for c, d in _edges(theirs))


def _local_km(origin: Point, point: Point) -> tuple[float, float]:
    """The point in kilometres east and north of the origin (equirectangular, exact enough
    within a region)."""
    east = math.radians(point[1] - origin[1]) * math.cos(math.radians(origin[0])) * EARTH_KM
    return east, math.radians(point[0] - origin[0]) * EARTH_KM


def _distance_to_segment_km(p: Point, a: Point, b: Point) -> float:
    (ax, ay), (bx, by) = _local_km(p, a), _local_km(p, b)
    dx, dy = bx - ax, by - ay
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length))
    return math.hypot(ax + t * dx, ay + t * dy)


def _circle_meets(polygon: tuple[Point, ...], centre: Point, km: float) -> bool:
    if _inside(centre, polygon):
        return True
    return any(_distance_to_segment_km(centre, a, b) <= km for a, b in _edges(polygon))
