"""The README's run command, on embedded defaults: web answers, every worker pool answers a ping
and consumes its own queue."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.__main__ import WORKER_POOLS

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def running_banditore(tmp_path):
    port, fake_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WHATSAPP_"))}
    # Embedded defaults: no DATABASE_URL, no REDIS_URL; a private data directory.
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "BANDITORE_VAR_DIR"):
        env.pop(name, None)
    env["BANDITORE_VAR_DIR"] = str(tmp_path / "var")
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy", "--port", str(port), "--fake-graph-port", str(fake_port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc, port, env, tmp_path / "run.log"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _inspect(command: str, env: dict[str, str]) -> dict:
    """`celery inspect <command> --json`: the workers' answers by node name ({} if none)."""
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "deploy", "inspect", command, "--json",
         "--timeout", "3"],
        cwd=ROOT,
        # As the README types it: no SECRET_KEY, the dev secret `make run` wrote in var/ is found.
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run command exited early:\n{log.read_text()[-3000:]}"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds}s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_the_run_command_serves_the_admin_and_runs_the_worker_pools_on_embedded_defaults(
    running_banditore,
):
    proc, port, env, log = running_banditore
    response = _wait_for(f"http://127.0.0.1:{port}/admin/login/", proc, log)
    assert response.status_code == 200
    assert 'name="username"' in response.text
    assert "Password:" in log.read_text() or "password" in log.read_text()

    # Every worker pool shares the embedded Redis: each answers Celery's ping, and consumes
    # exactly the queue its tasks are routed to (CELERY_TASK_ROUTES), nothing else.
    expected = {name: {pool.queue} for name, pool in WORKER_POOLS.items()}
    assert set(expected) == {"replies", "sends", "housekeeping"}
    deadline, pongs, consumed = time.monotonic() + 60, {}, {}
    while time.monotonic() < deadline:
        pongs = _inspect("ping", env)
        consumed = {
            node.split("@")[0]: {queue["name"] for queue in queues}
            for node, queues in _inspect("active_queues", env).items()
        }
        if len(pongs) >= len(expected) and consumed == expected:
            break
        time.sleep(1)
    assert consumed == expected, f"{consumed}\n{log.read_text()[-3000:]}"
    assert sorted(node.split("@")[0] for node in pongs) == sorted(expected), pongs
    assert all(reply == {"ok": "pong"} for reply in pongs.values()), pongs

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    # Stopping the run also stops the embedded Redis it started.
    sock = Path(env["BANDITORE_VAR_DIR"]) / "redis" / "redis.sock"
    assert not sock.exists()
