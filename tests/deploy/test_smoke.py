"""Production smoke test: DEBUG off, PostgreSQL and a Redis of its own, and every role started
by deploy/entrypoint.sh as a container would start it (migrate, web under gunicorn, the three
worker pools, beat), on free loopback ports, with the fake Graph API standing in for Meta.

Checked over HTTP, as a browser, Meta and the container runtime would see it: the admin's CSS
(whitenoise), readiness, each role's health check, a signed webhook accepted and answered, a
scheduled post published by beat and sent by the senders with its image (uploaded to Meta once,
sent by id), and that image still served at its own address. Last, Redis stops and readiness
turns 503 naming it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from channel.fakegraph.server import FakeConfig, FakeGraphServer
from channel.models import InboundMessage
from channel.webhook.envelope import webhook_envelope
from channel.webhook.signatures import HEADER, sign
from tests.deploy.helpers import caddyfile_text, free_port
from tests.factories import make_post, make_subscriber, make_topic
from tests.markers import needs_postgresql
from topics.models import Post

pytestmark = [
    needs_postgresql,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = str(ROOT / "deploy" / "entrypoint.sh")
DEADLINE = 90  # seconds for anything to happen; the whole test takes about 30
CITIZEN = "393330000777"
SECOND_CITIZEN = "393330000778"
PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(1500)


def _wait_for(what: str, check: Callable[[], object], logs: Path, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    tails = "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        for log in sorted(logs.glob("*.log"))
    )
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


class Stack:
    def __init__(self, tmp: Path, env: dict[str, str], base_url: str) -> None:
        self.tmp, self.env, self.base_url = tmp, env, base_url
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *command: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        return self.processes[name]

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def stop(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def wait_for(self, what: str, check: Callable[[], object]):
        for name, process in self.processes.items():
            assert process.poll() is None or name == "redis", f"{name} exited early"
        return _wait_for(what, check, self.logs)


@pytest.fixture
def fake_meta() -> Iterator[FakeGraphServer]:
    server = FakeGraphServer(
        config=FakeConfig(
            access_token="smoke-token", app_secret="smoke-app-secret", enforce_window=False
        )
    ).start()
    yield server
    server.stop()


@pytest.fixture
def stack(transactional_db, fake_meta, tmp_path, settings) -> Iterator[Stack]:
    """The processes, stopped (SIGTERM, then SIGKILL) before the test database is emptied."""
    port, redis_port = free_port(), free_port()
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media  # what this test uploads is where web serves it from
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    database_url = (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DJANGO_", "WHATSAPP_", "BANDITORE_", "CELERY_", "GUNICORN_", "COUNCIL_", "PRIVACY_")
        )
        and key not in {"DEBUG", "SECRET_KEY", "REDIS_URL", "DATABASE_URL", "MEDIA_ROOT"}
    }
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "deploy.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",  # localhost: the name Caddy serves below
        "SITE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "BANDITORE_VAR_DIR": str(tmp_path / "var"),
        "MEDIA_ROOT": str(media),
        # No proxy in front here: Django serves the uploads (Caddy does in compose).
        "BANDITORE_SERVE_MEDIA": "1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "CELERY_CONCURRENCY": "1",
        "TMPDIR": str(tmp_path),
        "LOG_LEVEL": "INFO",
        "WHATSAPP_GRAPH_URL": fake_meta.url,
        "WHATSAPP_ACCESS_TOKEN": "smoke-token",
        "WHATSAPP_APP_SECRET": "smoke-app-secret",
        "WHATSAPP_VERIFY_TOKEN": "smoke-verify-token",
        "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
        "WHATSAPP_MESSAGING_TIER": "unlimited",
        # A council's own facts: with DEBUG off the examples are refused (a system check).
        "COUNCIL_NAME": "Comune di Prova",
        "COUNCIL_PHONE": "+39 0434 123456",
        "COUNCIL_EMAIL": "urp@comune.prova.it",
        "COUNCIL_WEBSITE": "https://www.comune.prova.it",
        "COUNCIL_ADDRESS": "Piazza Grande 1, 33170 Prova",
        "COUNCIL_PEC": "protocollo@pec.comune.prova.it",
        "PRIVACY_DPO_EMAIL": "dpo@comune.prova.it",
    }
    stack = Stack(tmp_path, env, f"http://127.0.0.1:{port}")
    try:
        stack.start(
            "redis", "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        )  # fmt: skip
        stack.wait_for("redis", lambda: stack.run("redis-cli", "-p", str(redis_port), "ping")
                       .stdout.strip() == "PONG")  # fmt: skip
        yield stack
    finally:
        stack.stop_all()


def test_production_roles_serve_the_admin_the_webhook_media_and_a_post(stack, fake_meta):
    http = httpx.Client(base_url=stack.base_url, timeout=10)
    meta = httpx.Client(base_url=f"{fake_meta.url}/_fake", timeout=10)

    migrate = stack.run(ENTRYPOINT, "migrate", timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    for role in (["web"], *(["worker", p] for p in ("replies", "sends", "housekeeping")), ["beat"]):
        stack.start("-".join(role), ENTRYPOINT, *role)

    def answers(path: str) -> httpx.Response | None:
        try:
            return http.get(path)
        except httpx.TransportError:
            return None

    # Ours, not whatever else took the port meanwhile on a busy machine (gunicorn would exit).
    stack.wait_for("web", lambda: (r := answers("/healthz")) and r.json() == {"ok": True})
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text

    # The admin's CSS, from collectstatic's files through whitenoise (DEBUG is off).
    login = http.get("/admin/login/")
    assert login.status_code == 200
    css = re.search(r'href="(/static/admin/css/[\w.]+\.css)"', login.text).group(1)
    stylesheet = http.get(css)
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert "body" in stylesheet.text

    # The container health checks, run as compose runs them.
    for role in (["web"], *(["worker", p] for p in ("replies", "sends", "housekeeping"))):
        stack.wait_for(
            f"health {' '.join(role)}",
            lambda role=role: stack.run(ENTRYPOINT, "health", *role).returncode == 0,
        )
    beat = stack.wait_for(
        "health beat", lambda: (r := stack.run(ENTRYPOINT, "health", "beat")).returncode == 0 and r
    )
    assert "beat: last periodic task" in beat.stdout

    # A citizen writes: Meta's signed webhook is accepted, processed, and answered.
    meta.post("/config", json={"webhook_url": f"{stack.base_url}/whatsapp/webhook/"})
    sent = meta.post("/inbound", json={"from": CITIZEN, "text": "Iscrivimi"}).json()
    assert sent["webhook_status"] == 200
    stack.wait_for(
        "the reply to the citizen",
        lambda: meta.get("/outbox", params={"to": CITIZEN}).json()["messages"],
    )
    assert InboundMessage.objects.filter(wamid=sent["wamid"]).exists()

    # A scheduled post with an image: beat publishes it, a sender sends it to "Meta".
    topic = make_topic()
    reader = make_subscriber(topics=[topic], last_inbound_at=timezone.now())
    post = make_post(
        topics=[topic],
        title="Strade chiuse",
        media_kind=Post.MediaKind.IMAGE,
        media_file=ContentFile(PNG, name="manifesto.png"),  # uploaded into MEDIA_ROOT
    )
    Post.objects.filter(pk=post.pk).update(
        status=Post.Status.SCHEDULED, send_at=timezone.now() - timedelta(seconds=1)
    )
    messages = stack.wait_for(
        "the post at the fake Graph API",
        lambda: meta.get("/outbox", params={"to": reader.wa_id}).json()["messages"],
    )
    # The file went up to "Meta" once and the message carries its media id, not a link.
    assert set(messages[0]["payload"]["image"]) >= {"id"}
    assert "link" not in messages[0]["payload"]["image"]
    assert meta.get("/stats").json()["media_uploads"] == 1
    # The council's own copy is still served at its address (the post's page links it).
    post.refresh_from_db()
    link = f"{stack.base_url}{post.media_file.url}"
    assert link.startswith(f"{stack.base_url}/media/posts/")
    image = httpx.get(link, timeout=10)
    assert image.status_code == 200
    assert image.content == PNG

    # The same through Caddy and deploy/Caddyfile, with Caddy's own certificate authority,
    # where Debian's caddy package is installed.
    if shutil.which("caddy"):
        _through_caddy(stack, meta, link.removeprefix(stack.base_url))

    # Redis gone: readiness says so (and liveness does not care).
    stack.stop("redis")
    not_ready = http.get("/readyz")
    assert not_ready.status_code == 503
    assert "redis" in not_ready.text.lower()
    assert http.get("/healthz").status_code == 200


def _through_caddy(stack: Stack, meta: httpx.Client, media_path: str) -> None:
    """HTTPS in front: static files and uploads from their folders, the rest proxied, HTTP
    redirected, and a signed webhook through the proxy accepted and answered."""
    caddy = shutil.which("caddy")
    http_port, https_port = free_port(), free_port()
    home = stack.tmp / "caddy"
    options = (
        "\tadmin off\n\tskip_install_trust\n\tdefault_bind 127.0.0.1\n"
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n"
    )
    var = Path(stack.env["BANDITORE_VAR_DIR"])
    caddyfile = stack.tmp / "Caddyfile"
    caddyfile.write_text(
        caddyfile_text(
            caddy,
            global_options=options,
            paths={"/srv/static": str(var / "static"), "/srv/media": stack.env["MEDIA_ROOT"]},
        )
    )
    env = stack.env | {
        "BANDITORE_DOMAIN": "localhost",  # Caddy's internal authority signs "localhost"
        "ACME_EMAIL": "it@comune.prova.it",
        "BANDITORE_UPSTREAM": stack.base_url.removeprefix("http://"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    stack.start(
        "caddy", caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile", env=env
    )
    root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    stack.wait_for("Caddy's certificate authority", root.exists)
    https = httpx.Client(
        base_url=f"https://localhost:{https_port}", verify=ssl.create_default_context(cafile=root)
    )

    def ready() -> bool:
        try:
            return https.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    stack.wait_for("/readyz through Caddy", ready)
    stylesheet = https.get("/static/admin/css/base.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["cache-control"] == "public, max-age=3600"  # Caddy's, not Django's
    image = https.get(media_path)
    assert image.status_code == 200
    assert image.content == PNG
    plain = httpx.get(f"http://localhost:{http_port}/admin/", timeout=10)
    assert plain.status_code in (301, 308)
    assert plain.headers["location"].startswith("https://localhost")

    message = {"from": SECOND_CITIZEN, "id": "wamid.CADDY" + secrets.token_hex(8)}
    message |= {"timestamp": str(int(time.time())), "type": "text", "text": {"body": "Iscrivimi"}}
    value = {"contacts": [{"profile": {"name": "Prova"}, "wa_id": SECOND_CITIZEN}]}
    envelope = webhook_envelope(
        value | {"messages": [message]},
        phone_number_id=stack.env["WHATSAPP_PHONE_NUMBER_ID"],
        display_phone_number="390000000000",
    )
    raw = json.dumps(envelope).encode()
    answer = https.post(
        "/whatsapp/webhook/",
        content=raw,
        headers={"Content-Type": "application/json", HEADER: sign(raw, "smoke-app-secret")},
    )
    assert answer.status_code == 200, answer.text
    stack.wait_for(
        "the reply to a webhook that came through Caddy",
        lambda: meta.get("/outbox", params={"to": SECOND_CITIZEN}).json()["messages"],
    )
