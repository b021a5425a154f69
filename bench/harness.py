"""What the end-to-end benchmarks share: their database, processes, CPU accounting and summaries.

CPU is read from /proc (utime + stime of a process and its descendants), PostgreSQL's from its
backends serving the benchmark database, the machine's from /proc/stat. Figures of several runs
are printed as min / median / max, with the load average before and after: the machine may be
shared, so only ratios measured side by side in one run mean much.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WAKE_KEY = "banditore:channel:inbound-wake"
# As given: a run points os.environ at the benchmark's own database (for Django) afterwards.
GIVEN_DATABASE_URL = os.environ.get("DATABASE_URL", "")


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"nothing listens on port {port}")


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def spread(values: list[float], digits: int = 2) -> str:
    """min / median / max."""
    if not values:
        return "—"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low:.{digits}f} / {mid:.{digits}f} / {high:.{digits}f}"


def bench_env(args, tier: str = "unlimited") -> dict[str, str]:
    """The environment of the benchmark's processes; `args` has .batch and .mps (0: none)."""
    batch, mps = args.batch, args.mps
    url = GIVEN_DATABASE_URL
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL server (the benchmark creates <name>_bench)")
    name = urlsplit(url).path.lstrip("/") or "banditore"
    env = dict(os.environ)
    env |= {
        "DATABASE_URL": url.rsplit("/", 1)[0] + f"/{name}_bench",
        "DJANGO_SETTINGS_MODULE": "deploy.settings",
        "SECRET_KEY": "bench",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "WHATSAPP_ACCESS_TOKEN": "bench-token",
        "WHATSAPP_APP_SECRET": "bench-secret",
        "WHATSAPP_VERIFY_TOKEN": "bench-verify",
        "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
        "WHATSAPP_MPS": str(mps or 100000),
        "WHATSAPP_MESSAGING_TIER": tier,
        "BANDITORE_SEND_BATCH": str(batch),
        "CELERY_TASK_ALWAYS_EAGER": "1",
    }
    # DEBUG off refuses the example council, DEBUG on keeps every query: a fictional council.
    fictional = ("COUNCIL_EMAIL", "COUNCIL_PEC", "COUNCIL_WEBSITE", "PRIVACY_DPO_EMAIL")
    env |= dict.fromkeys(fictional, "https://bench.invalid")
    return env | {"COUNCIL_NAME": "Prova", "COUNCIL_ADDRESS": "Via 1", "COUNCIL_PHONE": "+39 1"}


def create_database(env: dict[str, str]) -> None:
    import psycopg

    target = urlsplit(env["DATABASE_URL"])
    admin = env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        name = target.path.lstrip("/")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def cpu_seconds(pids: set[int]) -> float:
    """utime+stime of these processes and all their descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, list(pids)
    while stack:
        pid = stack.pop()
        total += stats.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def wait_until_idle(pids: set[int], timeout: float = 90) -> None:
    """Until these processes (and children) stop using CPU: done importing and connecting, so
    their start-up is not counted per message."""
    deadline, last, quiet = time.monotonic() + timeout, cpu_seconds(pids), 0
    while time.monotonic() < deadline and quiet < 3:
        time.sleep(0.5)
        now = cpu_seconds(pids)
        quiet = quiet + 1 if now - last < 0.03 else 0
        last = now


# Sender processes load Django, then wait for this key: the clock starts once they are ready.
GO_KEY = "bench:go"
WAIT_FOR_GO = (
    "import os as _os, time as _time, redis as _redis\n"
    "_r = _redis.Redis.from_url(_os.environ['REDIS_URL'])\n"
    f"while not _r.exists({GO_KEY!r}):\n"
    "    _time.sleep(0.05)\n"
)


def machine_ticks() -> tuple[int, int]:
    """(all, idle) jiffies of the whole machine so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving this database."""
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )]  # fmt: skip
    return {pid: cpu_seconds({pid}) for pid in pids}


class PostgresMeter:
    """PostgreSQL CPU of the benchmark database over a window. Backends come and go, so they
    are sampled (`sample()` each second or so) and each one's last reading counts."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.first = backend_cpu(database_url)
        self.last = dict(self.first)

    def sample(self) -> None:
        self.last |= backend_cpu(self.url)

    def seconds(self) -> float:
        self.sample()
        return sum(v - self.first.get(pid, 0.0) for pid, v in self.last.items())


def delivery_counts(database_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM subscribers_delivery GROUP BY 1")
        return dict(rows.fetchall())


def unprocessed_webhooks(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM channel_inboundevent WHERE processed_at IS NULL"
        ).fetchone()[0]


def fill_audience(cursor, recipients: int, outside_window: float) -> None:
    """`recipients` active subscribers; the first `outside_window` share last wrote 2 days ago
    (their post goes out as a template), the others an hour ago (free-form)."""
    cursor.execute(
        """INSERT INTO subscribers_subscriber (wa_id, language, status, last_inbound_at,
               marketing_opt_out, conversation_state, conversation_context, created_at)
           SELECT (390000000000 + g)::text, 'it', 'active',
                  CASE WHEN g <= %s THEN now() - interval '2 days'
                       ELSE now() - interval '1 hour' END,
                  false, '', '{}', now()
           FROM generate_series(1, %s) g""",
        [int(recipients * outside_window), recipients],
    )
