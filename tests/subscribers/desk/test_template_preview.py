"""The desk's preview shows the template as WhatsApp renders it (header with the title, body,
footer, buttons, WhatsApp's formatting, everything HTML-escaped first), by the one renderer the
chat simulator uses too."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.utils import translation

from channel.fakegraph.simulator import shown_html
from channel.graph.rendering import formatted
from subscribers.delivery.payloads import Recipient, template_payload
from subscribers.desk.plan import post_preview
from tests.factories import log_in_as, make_post, make_template

pytestmark = pytest.mark.django_db

COMPONENTS = [
    {"type": "HEADER", "format": "TEXT", "text": "{{1}}"},
    {"type": "BODY", "text": "*Comune informa*: {{1}}"},
    {"type": "FOOTER", "text": "Scrivi CANCELLAMI <per> uscire"},
    {
        "type": "BUTTONS",
        "buttons": [{"type": "URL", "text": "Leggi", "url": "https://comune.example.it/{{1}}"}],
    },
]


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("*grassetto* e _corsivo_", "<strong>grassetto</strong> e <em>corsivo</em>"),
        ("~barrato~ ```a *b*```", "<s>barrato</s> <code>a *b*</code>"),
        ("<b>x</b> & *<i>*", "&lt;b&gt;x&lt;/b&gt; &amp; <strong>&lt;i&gt;</strong>"),
        ("snake_case_name 2*3*4 * no *", "snake_case_name 2*3*4 * no *"),
        ("*due\nrighe*", "*due\nrighe*"),
    ],
)
def test_whatsapp_formatting_after_escaping(text, html):
    assert formatted(text) == html


def synced_template():
    return make_template(
        name="notizia",
        body_text="*Comune informa*: {{1}}",
        body_parameters=["body"],
        header="text",
        components=COMPONENTS,
        meta_id="1",
    )


def test_the_preview_shows_header_body_footer_and_buttons(client):
    synced_template()
    post = make_post(
        title="Neve <oggi>",
        body="Scuole _chiuse_ <script>alert(1)</script>",
        link="https://comune.example.it/neve",
    )
    html = str(post_preview(post)["template"])
    assert '<div class="wa-header">Neve &lt;oggi&gt;</div>' in html
    assert (
        "<strong>Comune informa</strong>: Scuole <em>chiuse</em> "
        "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    )
    assert '<div class="wa-footer">Scrivi CANCELLAMI &lt;per&gt; uscire</div>' in html
    assert 'data-kind="URL">↗ Leggi</div>' in html
    assert "<script>" not in html
    log_in_as(client, "Redattore")
    page = client.get(f"/admin/topics/post/{post.pk}/change/").content.decode()
    assert "<strong>Comune informa</strong>" in page and "<script>alert(1)" not in page


def test_the_preview_says_why_the_template_cannot_carry_the_post():
    synced_template()
    with translation.override("en"):
        preview = post_preview(make_post(link=""))
    assert preview["template"] == "" and "no link" in preview["template_problem"]


def test_the_free_form_preview_is_formatted_too():
    post = make_post(title="Avviso", body="Testo _importante_ <b>")
    html = str(post_preview(post)["free_form"])
    assert html.startswith("<strong>Avviso</strong>")
    assert "<em>importante</em> &lt;b&gt;" in html


def test_the_chat_simulator_shows_a_sent_template_by_the_same_renderer():
    template = synced_template()
    post = make_post(title="Titolo", body="Corpo *forte*", link="https://comune.example.it/x")
    recipient = Recipient(wa_id="393330000001", user_id=None, language="it", last_inbound_at=None)
    payload = template_payload(post, recipient, template)
    assert shown_html(payload) == str(post_preview(post)["template"])
    assert "<strong>forte</strong>" in shown_html(payload)
    assert shown_html({"type": "text", "text": {"body": "*ciao* <a>"}}) == (
        "<strong>ciao</strong> &lt;a&gt;"
    )


def test_a_test_send_explains_a_template_that_cannot_carry_the_post(client, settings, fake_graph):
    from django.contrib.messages import get_messages

    from tests.subscribers.desk.helpers import confirm

    settings.BANDITORE_TEST_NUMBERS = ["393330000002"]
    synced_template()
    post = make_post(link="")
    log_in_as(client, "Pubblicatore")
    response = confirm(client, "send_test", post, follow=True)
    texts = [str(m) for m in get_messages(response.wsgi_request)] or [
        str(m) for m in response.context["messages"]
    ]
    # The desk speaks Italian: “… e questa notizia non ha un link: aggiungi un link …”.
    assert any("modello" in t and "non ha un link" in t for t in texts), texts
    assert fake_graph.outbox() == []  # nothing sent with a made-up link


def test_the_plan_warns_of_a_low_quality_or_recategorised_template():
    from subscribers.desk.plan import post_plan
    from tests.factories import make_subscriber, make_topic

    template = synced_template()
    template.quality_score, template.category = "red", "marketing"
    template.category_changed_from, template.category_changed_at = "utility", template.updated_at
    template.save()
    topic = make_topic()
    make_subscriber(topics=[topic])  # outside the 24-hour window: gets the template
    post = make_post(topics=[topic], link="https://comune.example.it/x")
    with translation.override("en"):
        warnings = " ".join(post_plan(post).warnings)
    assert "quality of the template “notizia” low" in warnings
    assert "from utility to marketing" in warnings
    with translation.override("en"):
        page = render_to_string("admin/topics/post/preview.html", post_preview(post))
    assert "Meta changed this template's category." in page
