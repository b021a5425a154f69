"""The simulator page: administrators only, test numbers only, audited, never against Meta."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission

from channel.models import InboundEvent, InboundMessage
from topics.models import AuditEntry

pytestmark = pytest.mark.django_db

NUMBER = "393330000001"  # one of BANDITORE_SIMULATOR_NUMBERS' defaults


def _send(client, data):
    return client.post("/simulator/send", json.dumps(data), content_type="application/json")


def test_it_is_for_staff_only(client, django_user_model):
    assert client.get("/simulator/").status_code == 302  # to the admin login
    user = django_user_model.objects.create_user("citizen", password="x", is_staff=False)
    client.force_login(user)
    assert client.get("/simulator/").status_code == 302
    assert client.post("/simulator/send", {}).status_code == 302


@pytest.mark.parametrize("role", ["Redattore", "Pubblicatore"])
def test_editors_and_publishers_may_not_play_a_citizen(client, django_user_model, fake_graph, role):
    user = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    assert client.get("/simulator/").status_code == 403
    assert _send(client, {"from": NUMBER, "text": "Iscrivimi"}).status_code == 403
    assert client.get("/simulator/outbox", {"to": NUMBER}).status_code == 403
    assert not InboundEvent.objects.exists()
    assert b"simulator-link" not in client.get("/admin/").content


def test_administrators_have_the_permission(client, django_user_model):
    user = django_user_model.objects.create_user("boss", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Amministratore"))
    assert user.has_perm("channel.use_simulator")
    client.force_login(user)
    assert b'href="/simulator/"' in client.get("/admin/").content


def test_a_staff_user_given_the_permission_may(client, django_user_model, fake_graph):
    user = django_user_model.objects.create_user("it", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="use_simulator"))
    client.force_login(user)
    assert client.get("/simulator/").status_code == 200


def test_only_the_test_numbers_can_be_played(admin_client, fake_graph):
    response = _send(admin_client, {"from": "393471234567", "text": "cancella i miei dati"})
    assert response.status_code == 403
    assert admin_client.get("/simulator/outbox", {"to": "393471234567"}).status_code == 403
    assert not InboundEvent.objects.exists()


def test_it_is_off_unless_switched_on(admin_client, fake_graph, settings):
    settings.BANDITORE_SIMULATOR = False
    assert admin_client.get("/simulator/").status_code == 404
    assert _send(admin_client, {"from": NUMBER, "text": "Iscrivimi"}).status_code == 404
    assert admin_client.get("/simulator/outbox", {"to": NUMBER}).status_code == 404


def test_each_use_is_in_the_audit_log(admin_client, admin_user, fake_graph):
    response = _send(admin_client, {"from": NUMBER, "text": "Iscrivimi"})
    assert response.status_code == 200
    entry = AuditEntry.objects.get(action="simulator")
    assert entry.actor == admin_user
    assert entry.object_repr == f"+{NUMBER}"
    assert entry.details == {"message": "Iscrivimi"}


def test_staff_see_the_phone_and_the_fake_is_detected(admin_client, fake_graph):
    response = admin_client.get("/simulator/")
    assert response.status_code == 200
    assert b'id="sim-chat"' in response.content
    assert response.context["fake_available"] is True
    assert response.context["numbers"] == ["393330000001", "393330000002", "447700900123"]


def test_it_refuses_to_run_against_the_real_graph_api(admin_client, settings):
    settings.WHATSAPP_GRAPH_URL = "https://graph.facebook.com"
    assert _send(admin_client, {"from": NUMBER, "text": "Iscrivimi"}).status_code == 409
    assert admin_client.get("/simulator/outbox", {"to": NUMBER}).status_code == 409
    assert not AuditEntry.objects.filter(action="simulator").exists()


@pytest.mark.parametrize("data", [{"from": "0123", "text": "x"}, {"from": NUMBER}, [1, 2], "x"])
def test_bad_input_is_400(admin_client, fake_graph, data):
    assert _send(admin_client, data).status_code == 400


def test_the_outbox_shows_what_reached_the_fake_for_that_number(admin_client, fake_graph):
    from channel.graph.client import get_client

    fake_graph.mark_inbound(NUMBER)
    payload = {"messaging_product": "whatsapp", "to": NUMBER, "type": "text"}
    assert get_client().send(payload | {"text": {"body": "Ciao"}}).ok
    response = admin_client.get("/simulator/outbox", {"to": NUMBER, "after": 0})
    [message] = response.json()["messages"]
    assert message["payload"]["text"]["body"] == "Ciao"
    later = admin_client.get("/simulator/outbox", {"to": NUMBER, "after": message["seq"]})
    assert later.json()["messages"] == []


@pytest.mark.django_db(transaction=True)
def test_opening_the_chat_sends_metas_request_welcome_and_the_welcome_comes_back(
    admin_client, fake_graph, live_server, redis_conn
):
    """Meta's webhook for someone opening the chat, delivered by the fake to the real webhook,
    is answered like a first contact: how to join."""
    fake_graph.configure(webhook_url=f"{live_server.url}/whatsapp/webhook/")
    response = _send(admin_client, {"from": NUMBER, "kind": "request_welcome"})
    assert response.status_code == 200
    assert response.json()["item"]["type"] == "request_welcome"
    assert response.json()["webhook_status"] == 200
    assert InboundMessage.objects.get(wa_id=NUMBER).kind == "request_welcome"
    [welcome] = admin_client.get("/simulator/outbox", {"to": NUMBER}).json()["messages"]
    assert welcome["payload"]["interactive"]["type"] == "button"
    assert AuditEntry.objects.get(action="simulator").details == {"message": "request_welcome"}


def test_the_page_has_the_open_the_chat_action(admin_client, fake_graph):
    page = admin_client.get("/simulator/").content.decode()
    assert 'data-testid="open-chat"' in page
    assert 'kind: "request_welcome"' in page
