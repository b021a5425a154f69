"""The dashboard in a real Chromium, from the admin home: charts drawn, screenshot kept."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from subscribers.dashboard.queries import weeks_until
from subscribers.models import ConsentEvent, Subscriber, TopicCount
from tests.browser.conftest import screenshot
from tests.factories import make_delivery, make_post, make_subscriber, make_topic


def _a_few_months_of_history() -> None:
    # Own topics: an earlier transactional test may have emptied the migrations' defaults.
    names = ["Scuola", "Cantieri e viabilità", "Raccolta differenziata", "Eventi e cultura"]
    topics = [make_topic(name_it=name, slug=f"dash-{n}") for n, name in enumerate(names)]
    people = [make_subscriber(topics=topics[: 1 + n % len(topics)]) for n in range(12)]
    now = timezone.now()
    weeks = weeks_until(now, 16)
    for n, week in enumerate(weeks[:-1]):
        day = week + timedelta(days=6)
        TopicCount.objects.create(day=day, subscribers=n * 12 // len(weeks), taken_at=now)
        for i, topic in enumerate(topics):
            count = n * (12 - 3 * i) // len(weeks)
            TopicCount.objects.create(day=day, topic=topic, subscribers=count, taken_at=now)
    for n, person in enumerate(people):
        when = now - timedelta(weeks=n % 10, hours=n)
        ConsentEvent.objects.create(subscriber=person, kind="consent", source="chat", at=when)
    post = make_post(topics=topics, status="sent", published_at=now - timedelta(days=2))
    for n, person in enumerate(people):
        make_delivery(post=post, subscriber=person, status=("read", "delivered", "sent")[n % 3])
    ConsentEvent.objects.create(
        subscriber=people[2], kind="leave", source="chat", at=post.published_at + timedelta(hours=3)
    )


def test_an_editor_opens_the_dashboard_from_the_admin_home(
    transactional_db, live_server, client, admin_user, browser_page
):
    _a_few_months_of_history()
    page = browser_page
    client.force_login(admin_user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )

    page.goto(f"{live_server.url}/admin/")
    page.click("#dashboard-link a")

    page.wait_for_selector("#dashboard")
    assert page.locator("[data-testid=active-now]").inner_text() == "12"
    assert page.locator("#trend svg polyline").count() >= 1
    assert page.locator("#joins-leaves svg rect").count() > 10
    assert page.locator("#posts tr[data-post]").count() == 1
    assert screenshot(page, "dashboard.png").stat().st_size > 10_000


def test_an_administrator_uploads_a_list_and_reads_which_lines_to_fix(
    transactional_db, live_server, client, admin_user, browser_page, tmp_path
):
    make_topic(name_it="Scuola", slug="scuola")
    bad = tmp_path / "lista.csv"
    bad.write_text(
        "numero;argomenti;data_consenso;fonte\n"
        "+39 333 111 2222;scuola;15/03/2024;sportello\n"
        "333 12;scuola;15/03/2024;sportello\n"
        "0039 333 444 5555;pesca;15/03/2024;sportello\n"
    )
    good = tmp_path / "lista-corretta.csv"
    good.write_text("numero;argomenti;data_consenso;fonte\n+39 333 111 2222;scuola;15/03/2024;x\n")
    page = browser_page
    client.force_login(admin_user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/admin/")
    page.click("#dashboard-link >> text=Importa iscritti da un file CSV")

    page.set_input_files("input[name=file]", str(bad))
    page.click("#import-form input[type=submit]")

    report = page.locator("#import-report").inner_text()
    assert "Riga 3:" in report and "Riga 4: argomento sconosciuto: pesca" in report
    screenshot(page, "import-errors.png")
    assert not Subscriber.objects.exists()

    page.set_input_files("input[name=file]", str(good))
    page.click("#import-form input[type=submit]")

    assert "1 nuovi iscritti" in page.locator("#import-report").inner_text()
    assert Subscriber.objects.get().wa_id == "393331112222"
