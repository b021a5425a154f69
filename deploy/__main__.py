"""`python -m deploy`: run all of Banditore on one machine with nothing else installed.

Migrates the database (SQLite unless DATABASE_URL is set), makes sure Redis answers (the
embedded one unless REDIS_URL is set), creates a first admin login, then runs and supervises
web (gunicorn), one Celery worker pool per queue (replies, sends, housekeeping) and Celery
beat, plus the fake WhatsApp API when no real access token is configured. Ctrl-C stops
everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

BASE_DIR = Path(__file__).resolve().parent.parent


class WorkerPool(NamedTuple):
    queue: str  # the one queue of CELERY_TASK_ROUTES (deploy/settings.py) it consumes
    pool: str  # Celery's --pool
    concurrency: int
    niceness: int = 0


# One Celery worker pool per queue; deploy/compose.yaml starts the same.
# - replies: conversation replies and the webhook drain, in threads of one process: a reply
#   mostly waits for Meta's answer, and replies come in bursts (a drain batch holding several
#   citizens' messages queues their replies at once), so they need many slots, not many CPUs.
# - sends: the BANDITORE_SENDERS_PER_POST senders of a post side by side, each in its own
#   process. A sender task works for up to BANDITORE_SEND_BUDGET_SECONDS, which is why replies
#   never share its slots; and it keeps a CPU busy at high rates, so it runs niced: when the
#   machine is short of CPU, a broadcast slows down rather than the web and the replies.
# - housekeeping: beat's periodic work, one task at a time.
WORKER_POOLS = {
    "replies": WorkerPool("replies", "threads", 8),
    "sends": WorkerPool("sends", "prefork", 2, niceness=10),
    "housekeeping": WorkerPool("housekeeping", "prefork", 1),
}


def worker_command(name: str, *, hostname: str = "%h", loglevel: str = "INFO") -> list[str]:
    pool = WORKER_POOLS[name]
    command = [
        sys.executable, "-m", "celery", "-A", "deploy", "worker", "--loglevel", loglevel,
        "--queues", pool.queue, "--pool", pool.pool, "--concurrency", str(pool.concurrency),
        "--hostname", f"{name}@{hostname}",
    ]  # fmt: skip
    return ["nice", "-n", str(pool.niceness), *command] if pool.niceness else command


def _prepare_environment(port: int, fake_port: int) -> dict[str, str]:
    env = dict(os.environ)
    var_dir = Path(env.get("BANDITORE_VAR_DIR", BASE_DIR / "var")).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env["BANDITORE_VAR_DIR"] = str(var_dir)
    env.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
    env.setdefault("DEBUG", "1")
    env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
    key_file = var_dir / "secret_key"
    if "SECRET_KEY" not in env:
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(50))
            key_file.chmod(0o600)
        env["SECRET_KEY"] = key_file.read_text().strip()
    if not env.get("WHATSAPP_ACCESS_TOKEN"):
        # No real account configured: talk to the project's own fake Graph API on loopback.
        env["WHATSAPP_GRAPH_URL"] = f"http://127.0.0.1:{fake_port}"
        env["WHATSAPP_ACCESS_TOKEN"] = "dev-token"
        env.setdefault("WHATSAPP_PHONE_NUMBER_ID", "100000000000001")
        env.setdefault("WHATSAPP_BUSINESS_ACCOUNT_ID", "100000000000002")  # the fake's templates
        env.setdefault("WHATSAPP_APP_SECRET", "dev-app-secret")
        env.setdefault("WHATSAPP_VERIFY_TOKEN", "dev-verify-token")
        env["BANDITORE_FAKE_GRAPH_PORT"] = str(fake_port)
    return env


def _django(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def _processes(env: dict[str, str], port: int, workers: int) -> dict[str, list[str]]:
    python = sys.executable
    processes = {
        "web": [
            python, "-m", "gunicorn", "deploy.wsgi",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", "4",
            "--access-logfile", "-",
        ],
        **{f"worker-{name}": worker_command(name) for name in WORKER_POOLS},
        "beat": [
            python, "-m", "celery", "-A", "deploy", "beat", "--loglevel", "INFO",
            "--schedule", str(Path(env["BANDITORE_VAR_DIR"]) / "celerybeat-schedule"),
        ],
    }  # fmt: skip
    fake_command = BASE_DIR / "channel" / "management" / "commands" / "fakegraph.py"
    if "BANDITORE_FAKE_GRAPH_PORT" in env and fake_command.exists():
        processes["fakegraph"] = [
            python, str(BASE_DIR / "manage.py"), "fakegraph",
            "--port", env["BANDITORE_FAKE_GRAPH_PORT"],
        ]  # fmt: skip
    return processes


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def _stop_all(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each child's process group, SIGKILL what is left after 15 s. Each child leads
    its own group (start_new_session), so this reaches its children too: a gunicorn worker
    whose master has gone would otherwise keep holding the port."""
    for proc in procs.values():
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc, signal.SIGKILL)  # stragglers of the group, if any
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--fake-graph-port", type=int, default=8765)
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args(argv)

    env = _prepare_environment(args.port, args.fake_graph_port)
    if not env.get("REDIS_URL"):
        from deploy.embedded_redis import ensure_running

        # Started here, before any child, so that no child owns it (one that started it would
        # stop it when it exits); stopped below when the run stops.
        ensure_running(Path(env["BANDITORE_VAR_DIR"]) / "redis")
    print("Preparing the database…", flush=True)
    _django(env, "migrate", "--noinput")
    login = _django(env, "ensure_admin").strip()
    procs: dict[str, subprocess.Popen] = {}
    for name, command in _processes(env, args.port, args.web_workers).items():
        # Its own session: Ctrl-C reaches only this supervisor, which stops each group in turn.
        procs[name] = subprocess.Popen(command, env=env, cwd=BASE_DIR, start_new_session=True)

    url = f"http://127.0.0.1:{args.port}/admin/"
    print(f"\nBanditore is starting: {', '.join(procs)}.", flush=True)
    print(f"  Admin:  {url}\n  {login}", flush=True)
    if "fakegraph" in procs:
        print(f"  Chat simulator: http://127.0.0.1:{args.port}/simulator/ (fake WhatsApp API)")
    print("Press Ctrl-C to stop.\n", flush=True)

    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping the rest.", flush=True)
                stopping, exit_code = True, 1
                break
        time.sleep(0.3)
    _stop_all(procs)
    if not os.environ.get("REDIS_URL"):
        from deploy.embedded_redis import stop as stop_embedded_redis

        stop_embedded_redis(Path(env["BANDITORE_VAR_DIR"]) / "redis")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
