"""Importing a broadcast list: all lines or none, numbers in E.164, ledger rows marked import."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from subscribers.imports.loading import import_subscribers
from subscribers.imports.parsing import Defaults
from subscribers.imports.report import ImportAborted
from subscribers.models import ConsentEvent, ImportRow, Subscriber, Subscription
from subscribers.numbers import normalise_number
from tests.factories import log_in_as, make_subscriber, make_topic
from topics.models import AuditEntry, Topic

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/subscribers/subscriber/import/"


@pytest.fixture(autouse=True)
def italian():
    """Messages are compared in Italian, the language the editors see (English is the source)."""
    with translation.override("it"):
        yield


@pytest.fixture
def topics():
    return {
        "scuole": make_topic(slug="scuole", name_it="Scuole e asili", name_en="Nurseries"),
        "rifiuti": make_topic(slug="rifiuti", name_it="Rifiuti", name_en="Waste"),
        "traffico": make_topic(slug="traffico", name_it="Traffico", name_en="Traffic"),
    }


def run(text: str, **options):
    return import_subscribers(io.BytesIO(text.encode("utf-8")), **options)


def csv_file(tmp_path, text: str, name: str = "lista.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


VALID = (
    "numero,argomenti,data_consenso,fonte\n"
    "+39 333 111 2222,scuole;rifiuti,15/03/2024,modulo cartaceo\n"
    "0039 333 333 4444,Traffico,2024-03-16,sportello\n"
    "333 555 6666,,16/03/2024 10:30,sportello\n"
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+39 333 123 4567", "393331234567"),
        ("0039 333 1234567", "393331234567"),
        ("333 1234567", "393331234567"),
        ("3331234567", "393331234567"),
        ("393331234567", "393331234567"),
        ("+39-333-123.4567", "393331234567"),
        ("06 1234 5678", "390612345678"),  # landline keeps its leading zero
        ("+41 79 123 45 67", "41791234567"),
    ],
)
def test_italian_and_foreign_formats_become_e164_digits(raw, e164):
    assert normalise_number(raw) == e164


@pytest.mark.parametrize("raw", ["", "12", "333 12", "+39 0000", "abc", "+1 555"])
def test_numbers_that_are_not_numbers_are_refused(raw):
    with pytest.raises(ValueError):
        normalise_number(raw)


def test_a_valid_file_imports_people_topics_and_an_import_ledger(topics):
    report = run(VALID)

    assert report.ok, report.errors
    assert (report.lines, report.created, report.known) == (3, 3, 0)
    people = {s.wa_id: s for s in Subscriber.objects.all()}
    assert set(people) == {"393331112222", "393333334444", "393335556666"}
    first = people["393331112222"]
    assert first.status == Subscriber.Status.ACTIVE
    assert timezone.localtime(first.consented_at).date().isoformat() == "2024-03-15"
    chosen = set(first.subscription_set.values_list("topic__slug", "source"))
    assert chosen == {("scuole", "import"), ("rifiuti", "import")}
    assert set(people["393333334444"].topics.values_list("slug", flat=True)) == {"traffico"}
    # An empty topics cell means every active topic, as the old broadcast list sent everything.
    active_topics = Topic.objects.filter(is_active=True).count()
    assert people["393335556666"].topics.count() == active_topics
    assert report.subscriptions_added == 3 + active_topics

    imports = ConsentEvent.objects.filter(kind=ConsentEvent.Kind.IMPORT)
    assert imports.count() == 3
    assert set(imports.values_list("source", flat=True)) == {"import"}
    assert imports.get(subscriber=first).note == "modulo cartaceo (2024-03-15)"
    added = ConsentEvent.objects.filter(kind=ConsentEvent.Kind.TOPIC_ADDED)
    assert added.count() == 3 + active_topics
    assert set(added.values_list("source", flat=True)) == {"import"}
    assert not ImportRow.objects.exists()  # the scratch rows are gone


def test_an_invalid_line_anywhere_imports_nothing_and_names_the_lines(topics):
    text = VALID + "non-un-numero,scuole,15/03/2024,x\n" + "333 777 8888,scuole,31/02/2024,x\n"

    report = run(text)

    assert not report.ok
    assert [line for line, _ in report.errors] == [5, 6]
    assert "non-un-numero" in report.errors[0][1]
    assert "31/02/2024" in report.errors[1][1]
    assert not Subscriber.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert not Subscription.objects.exists()
    assert not ImportRow.objects.exists()


def test_a_nul_character_is_a_line_error_not_a_crash(topics):
    text = VALID + "333 777 8888,scuole,15/03/2024,modulo\x00carta\n"

    report = run(text)

    assert [line for line, _ in report.errors] == [5]
    assert "NUL" in report.errors[0][1]
    assert not Subscriber.objects.exists()


def test_an_unknown_topic_is_reported_with_its_name(topics):
    report = run("numero,argomenti,data_consenso,fonte\n3331112222,scuole;pesca,2024-01-01,x\n")

    assert report.errors == [(2, "argomento sconosciuto: pesca")]
    assert not Subscriber.objects.exists()


def test_topics_match_names_in_either_language_and_any_case(topics):
    report = run("numero;argomenti;data_consenso;fonte\n3331112222;WASTE, scuole;2024-01-01;x\n")

    assert report.ok, report.errors
    person = Subscriber.objects.get()
    assert set(person.topics.values_list("slug", flat=True)) == {"rifiuti", "scuole"}


def test_a_name_two_topics_share_is_refused_but_slugs_always_work(topics):
    make_topic(slug="rifiuti-speciali", name_it="Rifiuti speciali", name_en="Waste")
    text = "numero,argomenti,data_consenso,fonte\n3331112222,waste,2024-01-01,x\n"

    assert run(text).errors == [(2, "nome di più argomenti, usa lo slug: waste")]
    assert run(text.replace("waste", "rifiuti-speciali")).ok


def test_the_same_number_twice_in_a_file_is_an_error_naming_both_lines(topics):
    text = (
        "numero,argomenti,data_consenso,fonte\n"
        "+39 333 111 2222,scuole,2024-01-01,x\n"
        "3334445555,scuole,2024-01-01,x\n"
        "0039 3331112222,rifiuti,2024-01-01,x\n"
    )

    report = run(text)

    assert len(report.errors) == 1
    line, message = report.errors[0]
    assert line == 4
    assert "riga 2" in message
    assert "+39 333 ••• ••22" in message  # masked, like everywhere for staff
    assert not Subscriber.objects.exists()


def test_reimporting_the_same_file_changes_nothing(topics):
    run(VALID)
    counts = (
        Subscriber.objects.count(),
        Subscription.objects.count(),
        ConsentEvent.objects.count(),
    )

    again = run(VALID)

    assert again.ok
    assert (again.created, again.known, again.subscriptions_added) == (0, 3, 0)
    after = (Subscriber.objects.count(), Subscription.objects.count(), ConsentEvent.objects.count())
    assert after == counts


def test_people_we_know_are_merged_by_the_documented_rule(topics):
    chat_consent = timezone.now()
    active = make_subscriber(wa_id="393331112222", topics=[topics["traffico"]])
    Subscriber.objects.filter(pk=active.pk).update(consented_at=chat_consent)
    left = make_subscriber(wa_id="393333334444", status=Subscriber.Status.LEFT)
    pending = make_subscriber(wa_id="393335556666", status=Subscriber.Status.PENDING)

    report = run(VALID)

    assert (report.created, report.activated, report.known, report.skipped_left) == (0, 1, 1, 1)
    active.refresh_from_db()
    assert active.consented_at == chat_consent  # their own consent stands
    assert set(active.topics.values_list("slug", flat=True)) == {"traffico", "scuole", "rifiuti"}
    assert not ConsentEvent.objects.filter(subscriber=active, kind="import").exists()
    left.refresh_from_db()
    assert left.status == Subscriber.Status.LEFT and not left.topics.exists()
    assert not ConsentEvent.objects.filter(subscriber=left).exists()
    pending.refresh_from_db()
    assert pending.status == Subscriber.Status.ACTIVE
    assert ConsentEvent.objects.filter(subscriber=pending, kind="import").count() == 1


def test_a_file_that_is_not_utf8_is_refused_with_advice(topics):
    data = "numero,argomenti,data_consenso,fonte\n3331112222,scuole,2024-01-01,Comunità\n"
    with pytest.raises(ImportAborted, match="Riga 2.*UTF-8"):
        import_subscribers(io.BytesIO(data.encode("cp1252")))

    report = import_subscribers(io.BytesIO(data.encode("cp1252")), encoding="windows-1252")

    assert report.ok
    assert ConsentEvent.objects.get(kind="import").note.startswith("Comunità")


def test_an_excel_workbook_is_refused_with_advice(topics):
    with pytest.raises(ImportAborted, match="Excel"):
        import_subscribers(io.BytesIO(b"PK\x03\x04\x14\x00\x06\x00binary"))


def test_a_missing_column_is_refused_before_reading_lines(topics):
    with pytest.raises(ImportAborted, match="data_consenso"):
        run("numero,argomenti,fonte\n3331112222,scuole,x\n")


def test_defaults_fill_missing_source_and_consent_date(topics):
    consent = timezone.make_aware(datetime(2023, 5, 4))
    report = run(
        "telefono\n3331112222\n", defaults=Defaults(source="lista 2023", consented_at=consent)
    )

    assert report.ok, report.errors
    assert Subscriber.objects.get().consented_at == consent


def test_a_dry_run_reports_and_writes_nothing(topics):
    report = run(VALID, dry_run=True)

    assert report.ok and report.created == 3
    assert not Subscriber.objects.exists()


def test_the_command_imports_reports_and_audits(tmp_path, topics, capsys):
    call_command("import_subscribers", csv_file(tmp_path, VALID))

    out = capsys.readouterr().out
    assert "3 nuovi iscritti" in out
    assert Subscriber.objects.count() == 3
    entry = AuditEntry.objects.get(action="subscribers_imported")
    assert entry.object_repr == "lista.csv" and entry.details["created"] == 3


def test_the_command_fails_with_the_line_numbers_and_imports_nothing(tmp_path, topics, capsys):
    path = csv_file(tmp_path, VALID + "12,scuole,2024-01-01,x\n")

    with pytest.raises(CommandError, match="1 invalid line"):
        call_command("import_subscribers", path)

    assert "Riga 5:" in capsys.readouterr().out
    assert not Subscriber.objects.exists()


def test_the_command_explains_a_bad_encoding(tmp_path, topics):
    path = csv_file(tmp_path, "numero,fonte,data\n3331112222,città,2024-01-01\n", encoding="cp1252")

    with pytest.raises(CommandError, match="UTF-8"):
        call_command("import_subscribers", path)


def upload(client, text: str, **fields):
    data = {"file": SimpleUploadedFile("lista.csv", text.encode("utf-8"), "text/csv")}
    data |= {"encoding": "utf-8", "source": "", "consent_date": ""} | fields
    return client.post(IMPORT_URL, data)


def test_an_amministratore_imports_a_file_from_the_admin(client, topics):
    user = log_in_as(client, "Amministratore")
    assert client.get(IMPORT_URL).status_code == 200

    page = upload(client, VALID)

    assert page.status_code == 200
    assert "3 nuovi iscritti" in page.content.decode()
    assert Subscriber.objects.count() == 3
    assert AuditEntry.objects.get(action="subscribers_imported").actor == user
    assert IMPORT_URL in client.get("/admin/subscribers/subscriber/").content.decode()


def test_the_admin_shows_errors_with_line_numbers_and_imports_nothing(client, topics):
    log_in_as(client, "Amministratore")

    page = upload(client, VALID + "abc,scuole,2024-01-01,x\n")

    assert "Riga 5:" in page.content.decode()
    assert not Subscriber.objects.exists()


def test_the_admin_explains_a_bad_file_without_failing(client, topics):
    log_in_as(client, "Amministratore")

    page = client.post(
        IMPORT_URL,
        {
            "file": SimpleUploadedFile("x.csv", b"\xff\xfen\x00u\x00", "text/csv"),
            "encoding": "utf-8",
        },
    )

    assert page.status_code == 200
    assert "UTF-16" in page.content.decode()


def test_other_roles_may_not_import(client, topics):
    log_in_as(client, "Pubblicatore")

    assert client.get(IMPORT_URL).status_code == 403
    assert upload(client, VALID).status_code == 403
    assert not Subscriber.objects.exists()


def test_a_large_upload_is_read_from_its_temporary_file(client, topics, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64  # anything bigger is spooled to disk
    log_in_as(client, "Amministratore")

    page = upload(client, VALID, dry_run="on")

    assert "Prova: nulla è stato scritto." in page.content.decode()
    assert "3 nuovi iscritti" in page.content.decode()
    assert not Subscriber.objects.exists()
