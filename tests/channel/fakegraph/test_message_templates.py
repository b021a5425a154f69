"""The fake's GET/DELETE /{version}/{waba-id}/message_templates answer as Meta does
(https://developers.facebook.com/docs/whatsapp/business-management-api/message-templates):
cursor paging with `limit` and `after`, `next` only while pages remain, `fields`, Meta's
upper-case status and category, its errors."""

from __future__ import annotations

import httpx
import pytest

from channel.fakegraph.server import FakeConfig


@pytest.fixture
def listing(fake_graph, settings):
    url = f"{fake_graph.url}/{settings.WHATSAPP_API_VERSION}/{FakeConfig.waba_id}/message_templates"
    auth = {"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"}
    for n in range(5):
        fake_graph.register_meta_template(
            name=f"t{n}",
            language="it",
            category="marketing",
            status="rejected" if n == 4 else "approved",
            components=[{"type": "BODY", "text": "{{1}}"}],
        )

    def get(**params):
        return httpx.get(params.pop("url", url), params=params, headers=auth)

    get.url, get.auth = url, auth
    return get


def test_pages_follow_the_cursor_until_next_is_missing(listing):
    seen, page, after = [], 0, None
    while True:
        body = listing(limit=2, **({"after": after} if after else {})).json()
        page += 1
        seen += [item["name"] for item in body["data"]]
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        if "next" not in body["paging"]:
            break
        assert f"after={body['paging']['cursors']['after']}" in body["paging"]["next"]
        after = body["paging"]["cursors"]["after"]
    assert page == 3 and seen == ["t0", "t1", "t2", "t3", "t4"]


def test_the_next_link_itself_gives_the_next_page(listing):
    first = listing(limit=3).json()
    second = httpx.get(first["paging"]["next"], headers=listing.auth).json()
    assert [item["name"] for item in second["data"]] == ["t3", "t4"]
    assert "next" not in second["paging"]


def test_metas_shape_and_the_fields_asked_for(listing):
    default = listing().json()["data"][4]
    assert set(default) == {"id", "name", "language", "status", "category", "components"}
    assert default["status"] == "REJECTED" and default["category"] == "MARKETING"
    assert default["id"].isdigit() and default["components"][0]["type"] == "BODY"
    some = listing(fields="name,quality_score,parameter_format").json()["data"][0]
    assert set(some) == {"id", "name", "quality_score", "parameter_format"}
    assert some["quality_score"]["score"] == "GREEN" and some["parameter_format"] == "POSITIONAL"


def test_errors_as_meta_gives_them(listing, settings):
    assert listing(after="not-a-cursor").status_code == 400
    wrong = listing.url.replace(FakeConfig.waba_id, "123")
    assert listing(url=wrong).json()["error"]["code"] == 100
    anonymous = httpx.get(listing.url)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == 190


def test_delete_by_name_removes_the_template(listing):
    gone = httpx.delete(listing.url, params={"name": "t1"}, headers=listing.auth)
    assert gone.json() == {"success": True}
    assert [item["name"] for item in listing().json()["data"]] == ["t0", "t2", "t3", "t4"]
    again = httpx.delete(listing.url, params={"name": "t1"}, headers=listing.auth)
    assert again.status_code == 400
