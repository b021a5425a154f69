"""Container health checks: `python -m deploy.probes web | worker POOL | beat` exits 0 when the
role does its job, else 1 with the reason on stderr.

deploy/compose.yaml and the Dockerfile run them through `deploy/entrypoint.sh health …`:
- web: GET /readyz (database, migrations, Redis) from inside the container, with a Host header
  Django accepts (the first of ALLOWED_HOSTS), as Caddy would send it;
- worker: the pool's node (`<pool>@<hostname>`, as the entrypoint names it) answers a Celery
  ping through the broker, so a worker that lost Redis or hangs is unhealthy;
- beat: a periodic task was handed to the broker recently. Beat writes each entry's last run to
  the database after every task (CELERY_BEAT_SYNC_EVERY), and due posts are looked for every
  15 s, so a last run older than the limit (default 5 minutes) means beat has stopped ticking.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request
from datetime import timedelta


class Unhealthy(Exception):
    pass


def _host_header() -> str:
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    host = hosts[0].lstrip(".") if hosts else "localhost"
    return "localhost" if host == "*" else host


def probe_web(timeout: float = 5.0) -> str:
    port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rsplit(":", 1)[-1]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/readyz", headers={"Host": _host_header()}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"web ready: {response.status}"
    except urllib.error.HTTPError as error:
        raise Unhealthy(f"/readyz answered {error.code}: {error.read()[:300]!r}") from None
    except OSError as error:
        raise Unhealthy(f"/readyz unreachable: {error}") from None


def probe_worker(pool: str, timeout: float = 5.0) -> str:
    from deploy.celery import app

    node = f"{pool}@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=timeout)
    if not any(node in reply for reply in replies):
        raise Unhealthy(f"worker {node} did not answer a ping within {timeout:g} s")
    return f"worker {node}: pong"


def probe_beat(max_age: timedelta) -> str:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
    django.setup()
    from django.db.models import Max
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    last = PeriodicTask.objects.filter(enabled=True).aggregate(last=Max("last_run_at"))["last"]
    if last is None:
        raise Unhealthy("beat has not run any periodic task yet")
    age = timezone.now() - last
    if age > max_age:
        raise Unhealthy(f"beat's last periodic task ran {age} ago (limit {max_age})")
    return f"beat: last periodic task {int(age.total_seconds())} s ago"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.probes", description=__doc__)
    parser.add_argument("role", choices=["web", "worker", "beat"])
    parser.add_argument("pool", nargs="?", help="the worker's pool: replies, sends, housekeeping")
    parser.add_argument("--max-age", type=int, default=300, help="beat: seconds (default 300)")
    args = parser.parse_args(argv)
    try:
        if args.role == "web":
            message = probe_web()
        elif args.role == "worker":
            if not args.pool:
                parser.error("worker needs its pool: replies, sends or housekeeping")
            message = probe_worker(args.pool)
        else:
            message = probe_beat(timedelta(seconds=args.max_age))
    except Unhealthy as problem:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    sys.stdout.write(message + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
