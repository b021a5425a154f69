"""Feed text for WhatsApp, and the geometry of the council's area."""

from __future__ import annotations

import pytest

from subscribers.feeds.area import AlertArea, AreaError, area_matches, council_area
from subscribers.feeds.text import cut_at_word, html_to_text

SQUARE = "46.0,12.6 46.0,12.7 45.9,12.7 45.9,12.6 46.0,12.6"


def test_html_becomes_plain_text_with_entities_decoded():
    html = (
        "<p>Via&nbsp;Roma &egrave; chiusa &#8211; <b>da luned&igrave;</b></p><script>x()</script>"
    )
    assert html_to_text(html) == "Via Roma è chiusa – da lunedì"


@pytest.mark.parametrize("limit", [10, 25, 40])
def test_text_is_cut_at_a_word_and_marked(limit):
    text = "Lavori di asfaltatura in via Garibaldi e in piazza Cavour"
    cut = cut_at_word(text, limit)
    assert len(cut) <= limit and cut.endswith("…")
    assert text.startswith(cut[:-1].rstrip())
    assert cut_at_word("breve", limit) == "breve"


def test_geocodes_match_by_value_and_name():
    council = council_area(["ISTAT=093033", "093034"], "")
    assert area_matches(council, AlertArea(geocodes=(("istat", "093033"),)))
    assert area_matches(council, AlertArea(geocodes=(("EMMA_ID", "093034"),)))
    assert not area_matches(council, AlertArea(geocodes=(("EMMA_ID", "093033"),)))


def test_circles_are_measured_in_kilometres():
    council = council_area([], SQUARE)
    # 0.1° of longitude east of the square at 46° N is about 7.7 km.
    assert area_matches(council, AlertArea(circles=(((45.95, 12.8), 8.0),)))
    assert not area_matches(council, AlertArea(circles=(((45.95, 12.8), 7.0),)))


def test_a_polygon_around_the_council_or_crossing_it_matches():
    council = council_area([], SQUARE)
    around = ((45.0, 12.0), (47.0, 12.0), (47.0, 13.0), (45.0, 13.0), (45.0, 12.0))
    crossing = ((45.95, 12.65), (46.5, 12.65), (46.5, 13.0), (45.95, 13.0), (45.95, 12.65))
    elsewhere = ((41.0, 12.0), (41.5, 12.0), (41.5, 12.5), (41.0, 12.0))
    assert area_matches(council, AlertArea(polygons=(around,)))
    assert area_matches(council, AlertArea(polygons=(crossing,)))
    assert not area_matches(council, AlertArea(polygons=(elsewhere,)))


@pytest.mark.parametrize("polygon", ["45.9,12.6 46.0,12.7", "a,b c,d e,f a,b", "91,0 0,0 0,1 91,0"])
def test_a_malformed_council_polygon_is_an_error(polygon):
    with pytest.raises(AreaError):
        council_area([], polygon)
