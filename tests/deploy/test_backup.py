"""deploy/backup.sh and deploy/restore.sh: a backup of a database with subscribers, the consent
ledger and deliveries, restored into a fresh database, holds the same rows; the uploads too."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from subscribers.models import ConsentEvent, Delivery, Subscriber, Subscription
from tests.factories import make_delivery, make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from topics.models import Post, Topic

pytestmark = [
    needs_postgresql,
    pytest.mark.django_db(transaction=True),  # pg_dump sees only what is committed
    pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs the PostgreSQL client"),
]

ROOT = Path(__file__).resolve().parents[2]
MODELS = [Topic, Subscriber, Subscription, ConsentEvent, Post, Delivery]


def _url(name: str) -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    # Banditore's own option after '?' is stripped by the scripts; it must not break them.
    return f"postgres://{db['USER']}{password}@{host}/{name}?conn_max_age=60"


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "deploy" / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fresh_database():
    """An empty database of a unique name, dropped at the end."""
    name = f"banditore_restore_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url.split("?")[0]) as conn:
        return {
            model._meta.db_table: conn.execute(
                f'SELECT count(*) FROM "{model._meta.db_table}"'
            ).fetchone()[0]
            for model in MODELS
        }


def test_a_backup_restored_into_a_fresh_database_has_every_row_and_upload(fresh_database, tmp_path):
    topics = [make_topic(), make_topic()]
    people = [make_subscriber(topics=topics[: 1 + i % 2]) for i in range(7)]
    for person in people:
        ConsentEvent.objects.create(
            subscriber=person, kind="consent", source="chat", privacy_version="2026-01",
            wa_message_id=f"wamid.{person.pk}", at=timezone.now(),
        )  # fmt: skip
    post = make_post(topics=topics)
    for person in people[:5]:
        make_delivery(post=post, subscriber=person)
    media = tmp_path / "media"
    (media / "posts" / "2026" / "11").mkdir(parents=True)
    image = media / "posts" / "2026" / "11" / "manifesto.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2048))
    source_url = _url(settings.DATABASES["default"]["NAME"])

    backup = _run(
        "backup.sh", str(tmp_path / "backups"),
        env={"DATABASE_URL": source_url, "MEDIA_ROOT": str(media)},
    )  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    folder = Path(backup.stdout.strip().splitlines()[-1])
    assert sorted(p.name for p in folder.iterdir()) == [
        "SHA256SUMS", "database.dump", "media.tar.gz"
    ]  # fmt: skip

    target_url = _url(fresh_database)
    restored_media = tmp_path / "restored-media"
    restore = _run(
        "restore.sh", str(folder),
        env={"DATABASE_URL": target_url, "MEDIA_ROOT": str(restored_media)},
    )  # fmt: skip
    assert restore.returncode == 0, restore.stderr

    expected = _counts(source_url)
    assert expected[ConsentEvent._meta.db_table] == 7
    assert expected[Delivery._meta.db_table] == 5
    assert _counts(target_url) == expected
    copy = restored_media / "posts" / "2026" / "11" / "manifesto.png"
    assert copy.read_bytes() == image.read_bytes()

    # Restoring twice into the same database is refused: it is no longer fresh.
    again = _run(
        "restore.sh", str(folder),
        env={"DATABASE_URL": target_url, "MEDIA_ROOT": str(restored_media)},
    )  # fmt: skip
    assert again.returncode != 0
    assert "restore into a fresh one" in again.stderr
    assert _counts(target_url) == expected


def test_a_damaged_backup_is_refused_before_anything_is_restored(fresh_database, tmp_path):
    make_subscriber()
    source_url = _url(settings.DATABASES["default"]["NAME"])
    backup = _run(
        "backup.sh", str(tmp_path),
        env={"DATABASE_URL": source_url, "MEDIA_ROOT": str(tmp_path / "none")},
    )  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    folder = Path(backup.stdout.strip().splitlines()[-1])
    with open(folder / "database.dump", "r+b") as dump:
        dump.seek(200)
        dump.write(b"\0" * 16)
    restore = _run(
        "restore.sh", str(folder),
        env={"DATABASE_URL": _url(fresh_database), "MEDIA_ROOT": str(tmp_path / "m")},
    )  # fmt: skip
    assert restore.returncode != 0
    assert "FAILED" in restore.stderr + restore.stdout
    with psycopg.connect(_url(fresh_database).split("?")[0]) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
    assert tables == 0
