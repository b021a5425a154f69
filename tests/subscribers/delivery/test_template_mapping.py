"""A post's fields on a synced template's parameters, by component (header ← title, body ←
the chosen fields, URL button ← the link), positional and named, sent to the fake Graph API
(which checks them as Meta does); a post without a link never gets our own address."""

from __future__ import annotations

import pytest
from django.utils import translation

from channel.fakegraph.server import FakeConfig
from channel.graph.client import get_client
from channel.graph.templates import templates_sync
from channel.models import MessageTemplate
from subscribers.delivery import publishing
from subscribers.delivery.payloads import (
    Recipient,
    TemplateMismatch,
    default_template,
    template_payload,
)
from subscribers.desk.plan import post_plan
from tests.factories import make_post, make_subscriber, make_topic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):  # the messages below are matched in English
        yield


RECIPIENT = Recipient(wa_id="393330000001", user_id=None, language="it", last_inbound_at=None)
HEADER = {"type": "HEADER", "format": "TEXT", "text": "{{1}}"}
LINK_BUTTON = {
    "type": "BUTTONS",
    "buttons": [
        {"type": "QUICK_REPLY", "text": "Stop"},
        {"type": "URL", "text": "Leggi", "url": "https://www.comune.example.it/{{1}}"},
    ],
}


@pytest.fixture
def meta(fake_graph, settings):
    settings.WHATSAPP_BUSINESS_ACCOUNT_ID = FakeConfig.waba_id
    settings.SITE_URL = "https://banditore.comune.example.it"
    return fake_graph


def synced_default(meta, **fields) -> MessageTemplate:
    meta.register_meta_template(name="avviso", language="it", **fields)
    templates_sync()
    MessageTemplate.objects.filter(name="avviso").update(is_default=True)
    return default_template("it")


def sent(payload: dict) -> dict:
    result = get_client().send(payload)
    assert result.ok, result.error_text  # the fake checks the parameters as Meta does
    return payload["template"]


def test_positional_header_body_and_link_button(meta):
    template = synced_default(
        meta,
        components=[HEADER, {"type": "BODY", "text": "{{1}}\n{{2}}"}, LINK_BUTTON],
    )
    assert template.body_parameters == ["title", "body"]
    post = make_post(
        title="Scuole chiuse", body="Domani\nneve", link="https://www.comune.example.it/n/42"
    )
    components = sent(template_payload(post, RECIPIENT, template))["components"]
    assert components == [
        {"type": "header", "parameters": [{"type": "text", "text": "Scuole chiuse"}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Scuole chiuse"},
                {"type": "text", "text": "Domani neve"},
            ],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "1",
            "parameters": [{"type": "text", "text": "n/42"}],
        },
    ]


def test_named_parameters_by_name(meta):
    template = synced_default(
        meta,
        parameter_format="NAMED",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "{{titolo}}"},
            {"type": "BODY", "text": "{{testo}} ({{titolo}})"},
        ],
    )
    assert template.body_parameters == ["body", "title"]
    post = make_post(title="Rifiuti", body="Raccolta sospesa")
    components = sent(template_payload(post, RECIPIENT, template))["components"]
    assert components[0]["parameters"] == [
        {"type": "text", "text": "Rifiuti", "parameter_name": "titolo"}
    ]
    assert components[1]["parameters"] == [
        {"type": "text", "text": "Raccolta sospesa", "parameter_name": "testo"},
        {"type": "text", "text": "Rifiuti", "parameter_name": "titolo"},
    ]


def test_the_fake_refuses_named_parameters_with_wrong_names(meta):
    template = synced_default(
        meta, parameter_format="NAMED", components=[{"type": "BODY", "text": "{{testo}}"}]
    )
    payload = template_payload(make_post(), RECIPIENT, template)
    payload["template"]["components"][0]["parameters"][0]["parameter_name"] = "altro"
    assert get_client().send(payload).error_code == 132000


def test_a_post_without_a_link_never_gets_our_address(meta, settings):
    template = synced_default(meta, components=[{"type": "BODY", "text": "{{1}}"}, LINK_BUTTON])
    post = make_post(link="")
    with pytest.raises(TemplateMismatch, match="no link"):
        template_payload(post, RECIPIENT, template)
    topic = make_topic()
    make_subscriber(topics=[topic])  # outside the window: needs the template
    post.topics.set([topic])
    assert any("no link" in w for w in post_plan(post).warnings)
    with pytest.raises(publishing.PublishError, match="no link"):
        publishing.post_publish(post=post)
    post.refresh_from_db()
    assert post.status == post.Status.DRAFT and not post.deliveries.exists()
    assert not any(settings.SITE_URL in str(m["payload"]) for m in meta.outbox())


def test_a_body_link_slot_without_a_link_is_refused_too(meta, settings):
    template = synced_default(meta, components=[{"type": "BODY", "text": "{{1}} {{2}} {{3}}"}])
    assert template.body_parameters == ["title", "body", "link"]
    with pytest.raises(TemplateMismatch, match="link"):
        template_payload(make_post(link=""), RECIPIENT, template)
    payload = template_payload(make_post(link="https://x.it/a"), RECIPIENT, template)
    assert sent(payload)["components"][0]["parameters"][2]["text"] == "https://x.it/a"


def test_a_link_elsewhere_than_the_buttons_site_is_refused(meta):
    template = synced_default(meta, components=[{"type": "BODY", "text": "{{1}}"}, LINK_BUTTON])
    with pytest.raises(TemplateMismatch, match="comune.example.it"):
        template_payload(make_post(link="https://elsewhere.example/x"), RECIPIENT, template)


def test_a_template_without_parameters_is_sent_bare(meta):
    template = synced_default(meta, components=[{"type": "BODY", "text": "Novità dal Comune"}])
    assert template.body_parameters == []
    assert "components" not in sent(template_payload(make_post(), RECIPIENT, template))
