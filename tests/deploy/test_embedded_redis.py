"""The embedded Redis is stopped by the process that started it, and only by that one."""

from __future__ import annotations

from pathlib import Path

from deploy.embedded_redis import _answers, ensure_running, stop
from tests.deploy.helpers import run_python


def _manage_check(var_dir: Path) -> None:
    env = {"REDIS_URL": None, "DJANGO_SETTINGS_MODULE": None}
    env |= {"BANDITORE_VAR_DIR": str(var_dir), "SECRET_KEY": "x", "DEBUG": "1"}
    result = run_python(["manage.py", "check"], env=env)
    assert result.returncode == 0, result.stderr


def test_a_bare_manage_py_command_stops_the_redis_it_started(tmp_path):
    _manage_check(tmp_path)
    assert (tmp_path / "redis" / "redis.log").exists()  # it did start one
    assert not _answers(tmp_path / "redis" / "redis.sock")


def test_a_command_leaves_running_the_redis_someone_else_started(tmp_path):
    ensure_running(tmp_path / "redis")  # as `make run` does before its children
    try:
        _manage_check(tmp_path)
        assert _answers(tmp_path / "redis" / "redis.sock")
    finally:
        stop(tmp_path / "redis")
