"""The simulator page: staff only, and never against the real Graph API."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def test_it_is_for_staff_only(client, django_user_model):
    assert client.get("/simulator/").status_code == 302  # to the admin login
    user = django_user_model.objects.create_user("citizen", password="x", is_staff=False)
    client.force_login(user)
    assert client.get("/simulator/").status_code == 302
    assert client.post("/simulator/send", {}).status_code == 302


def test_staff_see_the_phone_and_the_fake_is_detected(admin_client, fake_graph):
    response = admin_client.get("/simulator/")
    assert response.status_code == 200
    assert b'id="sim-chat"' in response.content
    assert response.context["fake_available"] is True


def test_it_refuses_to_run_against_the_real_graph_api(admin_client, settings):
    settings.WHATSAPP_GRAPH_URL = "https://graph.facebook.com"
    response = admin_client.post(
        "/simulator/send",
        json.dumps({"from": "393330000001", "text": "Iscrivimi"}),
        content_type="application/json",
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "data", [{"from": "0123", "text": "x"}, {"from": "393330000001"}, [1, 2], "x"]
)
def test_bad_input_is_400(admin_client, fake_graph, data):
    response = admin_client.post(
        "/simulator/send", json.dumps(data), content_type="application/json"
    )
    assert response.status_code == 400


def test_the_outbox_shows_what_reached_the_fake_for_that_number(admin_client, fake_graph):
    from channel.graph.client import get_client

    fake_graph.mark_inbound("393330000009")
    payload = {"messaging_product": "whatsapp", "to": "393330000009", "type": "text"}
    assert get_client().send(payload | {"text": {"body": "Ciao"}}).ok
    response = admin_client.get("/simulator/outbox", {"to": "393330000009", "after": 0})
    [message] = response.json()["messages"]
    assert message["payload"]["text"]["body"] == "Ciao"
    later = admin_client.get("/simulator/outbox", {"to": "393330000009", "after": message["seq"]})
    assert later.json()["messages"] == []


def test_the_admin_home_links_to_it(admin_client):
    assert b'href="/simulator/"' in admin_client.get("/admin/").content
