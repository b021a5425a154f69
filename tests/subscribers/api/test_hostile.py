"""Hostile input to the API: every answer is a 4xx with a JSON body, nothing is created."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from tests.factories import make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from topics.models import IdempotencyRecord, Post

VALID = {"topics": ["farmacie"], "title": "Turno", "body": "Farmacia Centrale", "publish": False}

# A value of every JSON type, and a few that are hard on parsers and databases.
WRONG_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "x",
    [],
    ["x"],
    {},
    {"a": 1},
    "\x00",
    "a\x00b",
    "\ud800",
    "9" * 4000,
    "2026-13-45T99:99:99",
]


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn):
    """Throttle counters live in Redis: every test starts with none."""


@pytest.fixture
def key(db, settings) -> str:
    settings.BANDITORE_API_THROTTLE_RATE = "100000/min"
    pharmacies = make_topic(slug="farmacie")
    _token, key = token_with_key(topics=[pharmacies], can_publish=False)
    return key


def send(key: str | None, raw: str | bytes, content_type: str = "application/json", **headers):
    return client_for(key).generic(
        "POST", "/api/v1/posts/", raw, content_type=content_type, **headers
    )


def assert_refused(response, *statuses: int) -> None:
    assert response.status_code in (statuses or range(400, 500)), response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert not Post.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_deep_nesting_is_a_400(key):
    for raw in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
        response = send(key, raw)
        assert_refused(response, 400)
        assert "detail" in response.json()
    # Nesting a parser survives is still refused before anything else looks at it.
    assert_refused(send(key, json.dumps(VALID | {"topics": [[[[[[[[["farmacie"]]]]]]]]]})), 400)


def test_huge_numbers_are_a_400(key):
    for raw in (
        json.dumps(VALID)[:-1] + ', "is_urgent": ' + "9" * 5000 + "}",
        json.dumps(VALID)[:-1] + ', "is_urgent": 1e999}',
        json.dumps(VALID)[:-1] + ', "is_urgent": NaN}',
        json.dumps(VALID)[:-1] + ', "title": -Infinity}',
    ):
        assert_refused(send(key, raw), 400)


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfffy"])
@pytest.mark.parametrize("field", ["title", "body", "link", "external_id", "topics"])
def test_nul_and_lone_surrogates_in_strings_are_a_400(key, field, text):
    value = [text] if field == "topics" else text
    # ensure_ascii: the escapes travel as \\u0000 and \\ud800, as a hostile client sends them.
    assert_refused(send(key, json.dumps(VALID | {field: value})), 400)


@pytest.mark.parametrize(
    "field", [*VALID, "link", "media_kind", "media_url", "is_urgent", "send_at", "expires_at"]
)
def test_a_wrong_type_at_any_field_is_a_4xx(key, field):
    for value in WRONG_VALUES:
        response = send(key, json.dumps(VALID | {field: value}))
        if response.status_code == 202:
            # Some values are right for some fields ("x" is a title): nothing else may pass.
            Post.objects.all().delete()
            IdempotencyRecord.objects.all().delete()
            continue
        assert_refused(response)


@pytest.mark.parametrize("body", [[], [VALID], "text", 1, None, True])
def test_a_body_that_is_not_an_object_is_a_400(key, body):
    assert_refused(send(key, json.dumps(body)), 400)


def test_an_oversize_body_is_refused(key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    huge = json.dumps(VALID | {"body": "x" * 50_000})
    assert_refused(send(key, huge), 413)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_a_wrong_content_type_is_a_415(key, content_type):
    assert_refused(send(key, json.dumps(VALID), content_type=content_type), 415)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00", b'{"title": "\xc3"}', b"", b"{", b'{"a": 1}{"b": 2}', b"\xef\xbb\xbf{}"],
)
def test_broken_json_is_a_400(key, raw):
    assert_refused(send(key, raw), 400)


def test_an_unknown_charset_is_a_400(key):
    assert_refused(send(key, json.dumps(VALID), content_type="application/json; charset=rot13"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer \u00e9\u00e8",
        "Bearer " + "x" * 10_000,
        "Bearer bnd_\x00",
        "Token ",
        "Basic dXNlcjpwYXNz",
        "bnd_not-even-a-scheme",
    ],
)
@pytest.mark.django_db
def test_bogus_authorization_headers_are_a_401(header):
    make_topic(slug="farmacie")
    client = APIClient()
    response = client.post(
        "/api/v1/posts/",
        json.dumps(VALID),
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert_refused(response, 401)
    assert client.get("/api/v1/topics/", HTTP_AUTHORIZATION=header).status_code == 401


@pytest.mark.parametrize("value", ["6²", "٣", "9" * 5000, "-1", "0", "1.0", "", " 5", "last"])
def test_hostile_paging_is_a_400(key, value):
    for name in ("page_size", "page"):
        response = client_for(key).get("/api/v1/posts/", {name: value})
        assert response.status_code == 400, (name, value, response.content)
        assert name in response.json()


@pytest.mark.parametrize("pk", ["9" * 5000, "-1", "0", "1e3", "٣", "%00", "\u00e9"])
def test_hostile_post_ids_are_a_404(key, pk):
    assert client_for(key).get(f"/api/v1/posts/{pk}/").status_code == 404
    assert_refused(client_for(key).post(f"/api/v1/posts/{pk}/cancel/"), 404)


@pytest.mark.parametrize("value", ["k\x00", "\u200b" * 300, "x" * 300])
def test_hostile_idempotency_keys_are_a_400(key, value):
    assert_refused(send(key, json.dumps(VALID | {"external_id": value})), 400)
