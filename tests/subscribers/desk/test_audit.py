"""Who changed templates and API keys, when, and what: the audit log, and who may change them."""

from __future__ import annotations

import pytest

from tests.factories import log_in_as, make_template, make_topic
from tests.subscribers.api.helpers import token_with_key
from topics.models import AuditEntry

pytestmark = pytest.mark.django_db

TEMPLATES = "/admin/channel/messagetemplate/"
TOKENS = "/admin/topics/apitoken/"
AUDIT_LOG = "/admin/topics/auditentry/"


def template_form(template, **changes) -> dict:
    values = {
        "name": template.name,
        "language": template.language,
        "category": template.category,
        "status": template.status,
        "header": template.header,
        "body_text": template.body_text,
        "body_parameters": '["title", "body"]',
        "is_default": "on" if template.is_default else "",
    }
    return values | changes


def test_an_amministratore_changes_a_template_and_the_log_says_what(client):
    template = make_template()
    log_in_as(client, "Amministratore")
    response = client.post(
        f"{TEMPLATES}{template.pk}/change/",
        template_form(template, body_text="Avviso: {{1}} – {{2}}"),
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="template_changed")
    assert entry.actor.username == "amministratore"
    assert entry.details["changed"] == {
        "body_text": {"from": "{{1}}: {{2}}", "to": "Avviso: {{1}} – {{2}}"}
    }


def test_a_new_template_is_logged_with_its_fields(client):
    log_in_as(client, "Amministratore")
    form = {
        "name": "avviso_urgente",
        "language": "it",
        "category": "utility",
        "status": "pending",
        "header": "",
        "body_text": "{{1}}",
        "body_parameters": '["title"]',
    }
    assert client.post(f"{TEMPLATES}add/", form).status_code == 302
    entry = AuditEntry.objects.get(action="template_created")
    assert entry.details["fields"]["name"] == "avviso_urgente"


def test_a_pubblicatore_may_read_templates_but_not_change_them(client):
    template = make_template()
    log_in_as(client, "Pubblicatore")
    assert client.get(f"{TEMPLATES}{template.pk}/change/").status_code == 200
    response = client.post(f"{TEMPLATES}{template.pk}/change/", template_form(template))
    assert response.status_code == 403
    assert client.get(f"{TEMPLATES}add/").status_code == 403
    assert not AuditEntry.objects.exists()


def test_a_redattore_sees_neither_templates_nor_keys_nor_the_log(client):
    log_in_as(client, "Redattore")
    for url in (TEMPLATES, TOKENS, AUDIT_LOG):
        assert client.get(url).status_code == 403


def test_a_token_change_logs_old_and_new_topics_and_never_the_key(client):
    schools, roads = make_topic(slug="scuole"), make_topic(slug="strade")
    token, key = token_with_key(name="Ufficio scuole", topics=[schools])
    log_in_as(client, "Amministratore")
    response = client.post(
        f"{TOKENS}{token.pk}/change/",
        {"name": "Ufficio scuole", "topics": [schools.pk, roads.pk], "can_read_stats": "on"},
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="token_changed")
    changed = entry.details["changed"]
    assert [str(schools)] == changed["topics"]["from"]
    assert sorted(changed["topics"]["to"]) == sorted([str(schools), str(roads)])
    assert key not in str(entry.details) and token.key_hash not in str(entry.details)


def test_a_pubblicatore_cannot_manage_api_keys(client):
    log_in_as(client, "Pubblicatore")
    assert client.get(f"{TOKENS}add/").status_code == 403
    assert client.post(f"{TOKENS}add/", {"name": "x"}).status_code == 403


def test_the_amministratore_reads_the_audit_log_which_nobody_can_edit(client):
    template = make_template()
    log_in_as(client, "Amministratore")
    client.post(f"{TEMPLATES}{template.pk}/change/", template_form(template, status="paused"))
    page = client.get(AUDIT_LOG).content.decode()
    assert "template_changed" in page
    entry = AuditEntry.objects.get()
    assert client.get(f"{AUDIT_LOG}add/").status_code == 403
    assert client.post(f"{AUDIT_LOG}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.count() == 1
