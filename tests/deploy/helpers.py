"""Shared set-up for the deployment tests: a real council's facts, Python run with a chosen
environment, a free loopback port, gunicorn as deploy/gunicorn.conf.py runs it, deploy/Caddyfile
as the Caddy installed here can run it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"


# A real council's facts, as the environment gives them: start-up refuses the example ones with
# DEBUG off.
COUNCIL = {
    "COUNCIL_NAME": "Comune di Pordenone",
    "COUNCIL_PHONE": "+39 0434 392111",
    "COUNCIL_EMAIL": "urp@comune.pordenone.it",
    "COUNCIL_PEC": "comune.pordenone@certgov.fvg.it",
    "COUNCIL_ADDRESS": "Corso Vittorio Emanuele II 64, 33170 Pordenone",
    "COUNCIL_WEBSITE": "https://www.comune.pordenone.it",
}


def run_python(
    args: list[str],
    *,
    env: dict[str, str | None],
    without: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """`python *args` in a fresh interpreter at the repository root, with this process's
    environment less every variable whose name starts with one of `without`, then `env` on top
    (a variable given as None is unset)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(without)} | env
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={name: value for name, value in environment.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_gunicorn(env: dict[str, str], access_log: str) -> Iterator[tuple[int, str]]:
    """gunicorn with deploy/gunicorn.conf.py on a free loopback port, one worker, the test settings
    and `env` on top; yields (port, base URL) once /healthz answers, and stops it after."""
    port = free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": settings.REDIS_URL,
        **env,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "deploy.wsgi", "--config", "deploy/gunicorn.conf.py",
         "--access-logfile", access_log],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield port, base
    finally:
        server.terminate()
        server.wait(timeout=20)


def caddy_or_skip() -> str:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy)")
    return caddy


def caddyfile_text(caddy: str, *, global_options: str = "", paths: dict[str, str] | None = None):
    """deploy/Caddyfile with extra global options and its volume paths replaced.

    Debian 12's Caddy 2.6 spells request buffering `buffer_requests` (the caddy:2 image of
    compose.yaml has `request_buffers <size>`); everything else is the same file."""
    text = CADDYFILE.read_text()
    version = subprocess.run([caddy, "version"], capture_output=True, text=True).stdout
    if re.match(r"v?2\.[0-6]\.", version):
        text = re.sub(r"request_buffers \S+", "buffer_requests", text)
    if global_options:
        opening = "{\n\temail {$ACME_EMAIL}\n"
        assert opening in text
        text = text.replace(opening, opening + global_options, 1)
    for old, new in (paths or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return text
