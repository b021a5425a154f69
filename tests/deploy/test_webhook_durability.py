"""A webhook answered 200 is never lost: it survives a kill -9 of any one process.

Meta does not send a webhook again once it got a 200, so the intake commits the raw body to
PostgreSQL before it answers (`channel.webhook.archive`), and everything after that (the wake-up
in Redis, the drain in a Celery worker) can be redone. Checked here with real processes on a
PostgreSQL cluster and a Redis of this test's own (initdb/pg_ctl and redis-server in a temporary
folder, so killing them disturbs nobody else): signed webhooks are POSTed without pause while one
process is killed with SIGKILL and started again, then every webhook that was answered 200 must
have been processed: its citizen's message stored and handled once.

Killed, one per test: the gunicorn worker serving the POSTs (its master starts another), the
Celery worker of the `replies` pool (mid-drain, started again as a supervisor would), Redis
(AOF on, as deploy/compose.yaml runs it) and PostgreSQL's postmaster (crash recovery at restart).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from channel.fakegraph.server import FakeConfig, FakeGraphServer
from channel.webhook.envelope import webhook_envelope
from channel.webhook.signatures import HEADER, sign
from tests.deploy.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = str(ROOT / "deploy" / "entrypoint.sh")
SECRET = "durability-app-secret"
DEADLINE = 120  # seconds for the backlog to be processed after a restart (beat sweeps each 60)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(
        shutil.which("initdb") is None or shutil.which("pg_ctl") is None,
        reason="needs PostgreSQL's initdb and pg_ctl to run a private cluster it may kill",
    ),
]


def _as_postgres_user() -> list[str]:
    """initdb refuses to run as root: run the cluster as the `postgres` account then."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        runuser = None
    if runuser is None:
        pytest.skip("running as root without a `postgres` account and runuser for initdb")
    return [runuser, "-u", "postgres", "--"]


class Cluster:
    """A throw-away PostgreSQL cluster: fsync and synchronous_commit on, as in production."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: the `postgres` account must be able to reach it.
        self.folder, self.port = Path(tempfile.mkdtemp(prefix="banditore-pg-")), free_port()
        self.data = self.folder / "data"
        self.prefix = _as_postgres_user()
        if self.prefix:
            shutil.chown(self.folder, "postgres")
        subprocess.run(
            [*self.prefix, "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        deadline = time.monotonic() + 60
        while True:  # after a kill -9, the old backends may take a moment to go
            started = subprocess.run(
                [*self.prefix, "pg_ctl", "-D", str(self.data), "-o", options,
                 "-l", str(self.folder / "postgres.log"), "-w", "start"],
                capture_output=True, text=True, timeout=90,
            )  # fmt: skip
            if started.returncode == 0 or time.monotonic() > deadline:
                assert started.returncode == 0, started.stdout + started.stderr
                return
            time.sleep(0.5)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, name: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"


class Stack:
    """The cluster, Redis, web and the replies worker, each restartable after a kill."""

    def __init__(self, tmp: Path, graph_url: str) -> None:
        self.tmp, self.logs = tmp, tmp / "logs"
        self.logs.mkdir()
        self.cluster = Cluster()
        self.redis_port, self.web_port = free_port(), free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "WHATSAPP_", "BANDITORE_", "CELERY_", "GUNICORN_"))
            and k not in {"DEBUG", "SECRET_KEY", "REDIS_URL", "DATABASE_URL"}
        }
        self.env = env | {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "deploy.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": f"http://127.0.0.1:{self.web_port}",
            "DATABASE_URL": self.cluster.url("banditore"),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "BANDITORE_VAR_DIR": str(tmp / "var"),
            "GUNICORN_BIND": f"127.0.0.1:{self.web_port}",
            "WEB_CONCURRENCY": "1",
            "TMPDIR": str(tmp),
            "LOG_LEVEL": "INFO",
            "WHATSAPP_GRAPH_URL": graph_url,
            "WHATSAPP_ACCESS_TOKEN": "durability-token",
            "WHATSAPP_APP_SECRET": SECRET,
            "WHATSAPP_VERIFY_TOKEN": "durability-verify",
            "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
            "WHATSAPP_MESSAGING_TIER": "unlimited",
            "COUNCIL_NAME": "Comune di Prova",
            "COUNCIL_PHONE": "+39 0434 123456",
            "COUNCIL_EMAIL": "urp@comune.prova.it",
            "COUNCIL_WEBSITE": "https://www.comune.prova.it",
            "COUNCIL_ADDRESS": "Piazza Grande 1, 33170 Prova",
            "COUNCIL_PEC": "protocollo@pec.comune.prova.it",
            "PRIVACY_DPO_EMAIL": "dpo@comune.prova.it",
        }

    def _spawn(self, name: str, *command: str) -> None:
        with open(self.logs / f"{name}.log", "a") as log:
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def start(self, name: str) -> None:
        if name == "postgresql":
            self.cluster.start()
        elif name == "redis":
            self._spawn(
                "redis", "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--dir", str(self.tmp),
            )  # fmt: skip
            wait_for("redis", lambda: _redis_ping(self.redis_port), self.logs, timeout=30)
        elif name == "web":
            self._spawn("web", ENTRYPOINT, "web")
            wait_for("web", lambda: _answers(f"{self.env['SITE_URL']}/healthz"), self.logs)
        elif name == "worker":
            self._spawn("worker", ENTRYPOINT, "worker", "replies")
        elif name == "beat":  # production's safety net: pending webhooks swept every minute
            self._spawn("beat", ENTRYPOINT, "beat")

    def kill(self, name: str) -> None:
        """SIGKILL one process: no clean-up of any kind runs."""
        if name == "postgresql":
            pid = self.cluster.postmaster_pid()
        elif name == "web":  # the gunicorn worker that answers the POSTs, not its master
            master = self.processes["web"].pid
            pid = int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])
        else:
            pid = self.processes[name].pid
        os.kill(pid, signal.SIGKILL)
        if name in ("redis", "worker"):
            self.processes[name].wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.cluster.stop()


def wait_for(what: str, check: Callable[[], object], logs: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.25)
    tails = "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        for log in sorted(logs.glob("*.log"))
    )
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _redis_ping(port: int) -> bool:
    ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return ping.stdout.strip() == "PONG"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    fake = FakeGraphServer(
        config=FakeConfig(access_token="durability-token", app_secret=SECRET, enforce_window=False)
    ).start()
    stack = Stack(tmp_path_factory.mktemp("durability"), fake.url)
    try:
        stack.start("postgresql")
        with psycopg.connect(stack.cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE banditore")
        stack.start("redis")
        migrate = subprocess.run(
            [ENTRYPOINT, "migrate"], cwd=ROOT, env=stack.env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        stack.start("web")
        stack.start("worker")
        stack.start("beat")
        yield stack
    finally:
        stack.stop_all()
        fake.stop()


class Poster(threading.Thread):
    """Meta's side: one signed message webhook after another, each from a new citizen, noting
    which ones were answered 200 (the rest Meta would send again: not our concern here)."""

    def __init__(self, base_url: str, first_number: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/whatsapp/webhook/"
        self.number = first_number
        self.accepted: list[str] = []
        self.refused = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.halt.is_set():
                self.number += 1
                wamid = f"wamid.DURABLE{self.number}"
                message = {"from": str(self.number), "id": wamid, "type": "text",
                           "timestamp": str(int(time.time())),
                           "text": {"body": "ciao"}}  # fmt: skip
                envelope = webhook_envelope(
                    {"contacts": [{"wa_id": str(self.number), "profile": {"name": "Prova"}}],
                     "messages": [message]},
                    phone_number_id="100000000000001", display_phone_number="390000000000",
                )  # fmt: skip
                raw = json.dumps(envelope).encode()
                try:
                    answer = client.post(
                        self.url,
                        content=raw,
                        headers={"Content-Type": "application/json", HEADER: sign(raw, SECRET)},
                    )
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    self.accepted.append(wamid)
                else:
                    self.refused += 1
                    time.sleep(0.05)

    def wait_accepted(self, count: int, logs: Path) -> None:
        wait_for(f"{count} webhooks answered 200", lambda: len(self.accepted) >= count, logs)


def _handled(stack: Stack, wamids: list[str]) -> set[str]:
    try:
        with psycopg.connect(stack.cluster.url("banditore"), connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT wamid FROM channel_inboundmessage"
                " WHERE wamid = ANY(%s) AND processed_at IS NOT NULL",
                [wamids],
            )
            return {row[0] for row in rows}
    except psycopg.OperationalError:
        return set()


@pytest.mark.parametrize("victim", ["web", "worker", "redis", "postgresql"])
def test_every_webhook_answered_200_is_processed_after_a_kill_9(stack, victim):
    # Numbers of their own per victim: each test's citizens are new people.
    first = 393400000000 + 100_000 * ["web", "worker", "redis", "postgresql"].index(victim)
    poster = Poster(stack.env["SITE_URL"], first)
    poster.start()
    try:
        poster.wait_accepted(30, stack.logs)
        stack.kill(victim)
        killed_at = len(poster.accepted)
        time.sleep(1.0)  # Meta keeps posting meanwhile: refused, or answered by what is left
        if victim != "web":  # gunicorn's master starts a new worker by itself
            stack.start(victim)
        poster.wait_accepted(killed_at + 30, stack.logs)
    finally:
        poster.halt.set()
        poster.join(15)

    accepted = list(poster.accepted)
    assert len(set(accepted)) == len(accepted)
    # Raises, with the processes' logs, unless every one was handled in time.
    wait_for(
        "every webhook answered 200 to be processed",
        lambda: set(accepted) <= _handled(stack, accepted),
        stack.logs,
        timeout=DEADLINE,
    )
    with psycopg.connect(stack.cluster.url("banditore")) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM channel_inboundmessage WHERE wamid = ANY(%s)", [accepted]
        ).fetchone()[0]
    assert stored == len(accepted)  # each once
