"""Message templates synced from Meta (GET /{WABA-ID}/message_templates, every page) against
the fake Graph API: statuses, category changes, templates deleted at Meta, the command, the
admin button and the nightly task."""

from __future__ import annotations

import httpx
import pytest
from django.core.management import CommandError, call_command

from channel.fakegraph.server import FakeConfig
from channel.graph import templates
from channel.graph.templates import TemplateSyncError, templates_sync
from channel.models import MessageTemplate
from subscribers.delivery.payloads import default_template
from tests.factories import log_in_as, make_template
from topics.models import AuditEntry

pytestmark = pytest.mark.django_db

WABA = FakeConfig.waba_id
TEMPLATES = "/admin/channel/messagetemplate/"


@pytest.fixture
def meta(fake_graph, settings):
    settings.WHATSAPP_BUSINESS_ACCOUNT_ID = WABA
    return fake_graph


def body(text: str, **extra) -> dict:
    return {"type": "BODY", "text": text, **extra}


def register(meta, name: str, language: str = "it", **fields) -> dict:
    fields.setdefault("components", [body("{{1}}", example={"body_text": [["x"]]})])
    return meta.register_meta_template(name=name, language=language, **fields)


def delete_at_meta(meta, settings, name: str) -> None:
    response = httpx.delete(
        f"{meta.url}/{settings.WHATSAPP_API_VERSION}/{WABA}/message_templates",
        params={"name": name},
        headers={"Authorization": f"Bearer {settings.WHATSAPP_ACCESS_TOKEN}"},
    )
    assert response.json() == {"success": True}


def test_every_page_is_read_and_meta_facts_are_kept(meta, monkeypatch):
    monkeypatch.setattr(templates, "PAGE_SIZE", 2)
    for n in range(5):
        register(meta, f"avviso_{n}", quality_score="YELLOW" if n == 3 else "GREEN")
    register(
        meta,
        "notizia",
        "en",
        parameter_format="NAMED",
        category="marketing",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "{{title}}"},
            body("{{title}}: {{summary}} {{link}}"),
            {"type": "FOOTER", "text": "Reply STOP"},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "URL", "text": "Read", "url": "https://x.it/{{1}}"}],
            },
        ],
    )
    result = templates_sync()
    assert result.pages == 3 and result.seen == 6 and len(result.created) == 6
    assert MessageTemplate.objects.count() == 6
    named = MessageTemplate.objects.get(name="notizia", language="en")
    assert named.parameter_format == "named" and named.category == "marketing"
    assert named.body_text == "{{title}}: {{summary}} {{link}}"
    assert named.body_parameters == ["title", "body", "link"]  # suggested from the names
    assert named.header == "text" and named.meta_id and named.synced_at
    assert [c["type"] for c in named.components] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert MessageTemplate.objects.get(name="avviso_3").quality_score == "yellow"
    assert MessageTemplate.objects.get(name="avviso_0").body_parameters == ["body"]


def test_a_second_sync_changes_nothing_and_keeps_the_councils_choices(meta):
    register(meta, "avviso", components=[body("{{1}} – {{2}}")])
    templates_sync()
    row = MessageTemplate.objects.get()
    row.body_parameters, row.is_default = ["body", "title"], True
    row.save()
    result = templates_sync()
    assert not result.changed and result.seen == 1
    row.refresh_from_db()
    assert row.body_parameters == ["body", "title"] and row.is_default


@pytest.mark.parametrize("status", ["REJECTED", "PAUSED", "DISABLED", "PENDING", "IN_APPEAL"])
def test_a_template_meta_did_not_approve_is_marked_and_never_chosen(meta, status):
    register(meta, "avviso", status=status.lower())
    templates_sync()
    row = MessageTemplate.objects.get()
    assert row.status == status.lower() and not row.sendable
    MessageTemplate.objects.filter(pk=row.pk).update(is_default=True)
    assert default_template("it") is None


def test_a_template_paused_after_approval_stops_being_chosen(meta):
    register(meta, "avviso")
    templates_sync()
    MessageTemplate.objects.update(is_default=True)
    assert default_template("it") is not None
    register(meta, "avviso", status="paused")
    result = templates_sync()
    assert result.status_changed == ["avviso (it): approved → paused"]
    assert default_template("it") is None


def test_a_category_change_is_flagged_logged_and_audited(meta, caplog):
    register(meta, "avviso", category="utility")
    templates_sync()
    register(meta, "avviso", category="marketing")
    result = templates_sync()
    assert result.category_changed == ["avviso (it): utility → marketing"]
    row = MessageTemplate.objects.get()
    assert row.category == "marketing" and row.category_changed_from == "utility"
    assert row.category_changed_at is not None
    assert "changed its category from utility to marketing" in caplog.text
    assert AuditEntry.objects.filter(action="template_category_changed").count() == 1
    last_sync = AuditEntry.objects.filter(action="templates_synced").order_by("pk").last()
    assert last_sync.details["category_changed"] == result.category_changed


def test_a_category_meta_changed_before_the_first_sync_is_flagged_too(meta):
    register(meta, "avviso", category="marketing", previous_category="utility")
    templates_sync()
    assert MessageTemplate.objects.get().category_changed_from == "utility"
    assert not templates_sync().category_changed  # said once, not every night


def test_a_template_deleted_at_meta_is_marked_gone_not_deleted(meta, settings):
    register(meta, "avviso")
    register(meta, "vecchio")
    templates_sync()
    MessageTemplate.objects.filter(name="vecchio").update(is_default=True)
    delete_at_meta(meta, settings, "vecchio")
    result = templates_sync()
    assert result.gone == ["vecchio (it)"]
    gone = MessageTemplate.objects.get(name="vecchio")
    assert gone.gone_at is not None and not gone.sendable
    assert default_template("it") is None
    register(meta, "vecchio")  # created again at Meta: back
    templates_sync()
    gone.refresh_from_db()
    assert gone.gone_at is None and default_template("it") == gone


def test_a_failed_listing_changes_nothing(meta, settings):
    make_template()
    settings.WHATSAPP_BUSINESS_ACCOUNT_ID = "999"
    with pytest.raises(TemplateSyncError, match="did not list"):
        templates_sync()
    assert MessageTemplate.objects.get().gone_at is None
    settings.WHATSAPP_BUSINESS_ACCOUNT_ID = ""
    with pytest.raises(TemplateSyncError, match="WHATSAPP_BUSINESS_ACCOUNT_ID"):
        templates_sync()


def test_the_command_syncs_and_fails_clearly(meta, settings, capsys):
    register(meta, "avviso")
    call_command("sync_templates")
    assert "1 templates read from Meta" in capsys.readouterr().out
    assert MessageTemplate.objects.filter(name="avviso", synced_at__isnull=False).exists()
    settings.WHATSAPP_BUSINESS_ACCOUNT_ID = ""
    with pytest.raises(CommandError, match="WHATSAPP_BUSINESS_ACCOUNT_ID"):
        call_command("sync_templates")


def test_the_nightly_task_runs_on_housekeeping(meta):
    from channel.tasks import sync_templates_task
    from deploy.celery import app
    from deploy.schedule import BEAT_SCHEDULE

    entry = next(e for e in BEAT_SCHEDULE.values() if e["task"] == sync_templates_task.name)
    assert entry["schedule"].hour == {4}
    assert app.amqp.router.route({}, sync_templates_task.name)["queue"].name == "housekeeping"
    register(meta, "avviso")
    assert sync_templates_task.delay().get().startswith("1 templates read")
    assert MessageTemplate.objects.filter(name="avviso").exists()


def test_the_admin_button_syncs_and_the_list_shows_the_flag(meta, client):
    register(meta, "avviso", category="utility")
    log_in_as(client, "Amministratore")
    page = client.get(TEMPLATES).content.decode()
    assert 'id="sync-templates"' in page
    assert client.get(f"{TEMPLATES}sync/").status_code == 405
    response = client.post(f"{TEMPLATES}sync/", follow=True)
    assert response.redirect_chain[-1][0] == TEMPLATES
    assert "1 templates read from Meta" in response.content.decode()
    register(meta, "avviso", category="marketing")
    page = client.post(f"{TEMPLATES}sync/", follow=True).content.decode()
    assert 'class="category-changed"' in page
    entry = AuditEntry.objects.filter(action="templates_synced").order_by("pk").last()
    assert entry.details["category_changed"] == ["avviso (it): utility → marketing"]
    assert entry.actor.username == "amministratore"
    row = MessageTemplate.objects.get()
    client.post(TEMPLATES, {"action": "acknowledge_category_change", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.category_changed_at is None


def test_the_admin_button_says_why_a_sync_failed(meta, client, settings):
    settings.WHATSAPP_BUSINESS_ACCOUNT_ID = ""
    log_in_as(client, "Amministratore")
    page = client.post(f"{TEMPLATES}sync/", follow=True).content.decode()
    assert "Sync failed" in page or "Sincronizzazione" in page


def test_only_who_may_change_templates_may_sync(meta, client):
    register(meta, "avviso")
    log_in_as(client, "Pubblicatore")
    assert client.post(f"{TEMPLATES}sync/").status_code == 403
    assert not MessageTemplate.objects.exists()


def test_a_synced_template_cannot_be_deleted_by_hand(meta, client):
    register(meta, "avviso")
    templates_sync()
    row = MessageTemplate.objects.get()
    log_in_as(client, "Amministratore")
    assert client.post(f"{TEMPLATES}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert MessageTemplate.objects.filter(pk=row.pk).exists()
    page = client.get(f"{TEMPLATES}{row.pk}/change/").content.decode()
    assert 'name="body_parameters"' in page and 'name="body_text"' not in page  # Meta's words
