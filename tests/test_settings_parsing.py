"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from deploy.env import RENAMED, database_from_url, env_bool, env_choice, env_int
from tests.deploy.helpers import run_python

ROOT = Path(__file__).resolve().parent.parent


def test_env_bool_accepts_the_usual_spellings(monkeypatch):
    for raw, expected in [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("X_FLAG", raw)
        assert env_bool("X_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "si"])
def test_env_bool_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG", False)


def test_env_int_rejects_words_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("X_NUM", "eighty")
    with pytest.raises(ImproperlyConfigured, match="not a whole number"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("X_NUM", 1, minimum=1)


def test_env_choice_names_the_allowed_values(monkeypatch):
    monkeypatch.setenv("X_TIER", "5000")
    with pytest.raises(ImproperlyConfigured, match="2000, 250"):
        env_choice("X_TIER", "250", {"250", "2000"})


def test_database_url_selects_postgresql_or_sqlite(tmp_path):
    db = database_from_url(
        "postgres://bob:s%40cret@db.local:6543/banditore", sqlite_default=tmp_path
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "bob", "s@cret", "db.local", "6543", "banditore"
    )  # fmt: skip
    assert database_from_url("", sqlite_default=tmp_path / "x.db")["NAME"] == tmp_path / "x.db"
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme"):
        database_from_url("mysql://localhost/db", sqlite_default=tmp_path)
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        database_from_url("postgres://localhost/", sqlite_default=tmp_path)


def _load_settings(
    *, show: str = "s.WHATSAPP_MPS, s.LANGUAGE_CODE", **env: str | None
) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter; a variable given as None is unset."""
    defaults = {
        "SECRET_KEY": "x",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        # Whether or not this run has DATABASE_URL: the tests below say when it matters.
        "BANDITORE_EMBEDDED_SERVICES": "1",
    }
    return run_python(
        ["-c", f"import deploy.settings as s; print({show})"],
        env=defaults | env,
        without=("DJANGO", "WHATSAPP", "DEBUG", "BANDITORE_"),
        timeout=60,
    )


def test_the_settings_module_reads_defaults_for_an_italian_council():
    result = _load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "it"]  # 0: the rate Meta reports for the number


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WHATSAPP_MPS": "fast"}, "WHATSAPP_MPS='fast' is not a whole number"),
        ({"DEBUG": "perhaps"}, "DEBUG='perhaps' is not a boolean"),
        ({"SECRET_KEY": "", "DEBUG": "0"}, "SECRET_KEY is required"),
        ({"REDIS_URL": "memcached://x"}, "REDIS_URL='memcached://x'"),
        ({"LANGUAGE_CODE": "de"}, "LANGUAGE_CODE='de'"),
        ({"WHATSAPP_MESSAGING_TIER": "1000"}, "WHATSAPP_MESSAGING_TIER='1000'"),
        ({"BANDITORE_KEYWORDS_EXTRA": "null"}, "BANDITORE_KEYWORDS_EXTRA must be a JSON object"),
    ],
)
def test_bad_values_stop_the_settings_with_a_clear_message(env, message):
    result = _load_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_without_database_or_redis_url_stops_naming_them():
    result = _load_settings(DATABASE_URL="", REDIS_URL="", BANDITORE_EMBEDDED_SERVICES="")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL and REDIS_URL must be set when DEBUG is off" in (
        result.stderr
    )
    only_redis = _load_settings(
        DATABASE_URL="postgres://db/banditore", REDIS_URL="", BANDITORE_EMBEDDED_SERVICES=""
    )
    assert "ImproperlyConfigured: REDIS_URL must be set when DEBUG is off" in only_redis.stderr


def test_a_demo_box_opts_in_to_sqlite_by_saying_so():
    result = _load_settings(DATABASE_URL="", BANDITORE_EMBEDDED_SERVICES="1", show="s.DATABASES")
    assert result.returncode == 0, result.stderr
    assert "sqlite3" in result.stdout


def test_every_command_on_a_development_box_finds_the_secret_make_run_generated(tmp_path):
    # No SECRET_KEY, no DEBUG, no service URLs: as `celery -A deploy inspect ping` or
    # `manage.py import_subscribers` typed in a checkout where `make run` ran.
    (tmp_path / "secret_key").write_text("the-generated-dev-secret\n")
    result = _load_settings(
        SECRET_KEY="",
        BANDITORE_VAR_DIR=str(tmp_path),
        BANDITORE_EMBEDDED_SERVICES=None,
        DATABASE_URL=None,
        show="s.DEBUG, s.SECRET_KEY",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "the-generated-dev-secret"]
    # Without the file it is not a development box: the usual refusal.
    (tmp_path / "secret_key").unlink()
    refused = _load_settings(SECRET_KEY="", BANDITORE_VAR_DIR=str(tmp_path))
    assert "SECRET_KEY is required" in refused.stderr


def test_a_renamed_variable_stops_the_settings_naming_its_new_name():
    # A council's env file written for an older version must not silently lose a setting.
    result = _load_settings(API_THROTTLE_RATE="10/min", WEBHOOK_ARCHIVE_DAYS="30")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "API_THROTTLE_RATE was renamed to BANDITORE_API_THROTTLE_RATE" in result.stderr
    assert "WEBHOOK_ARCHIVE_DAYS was renamed to BANDITORE_WEBHOOK_ARCHIVE_DAYS" in result.stderr


def _variables_read_by_settings() -> set[str]:
    """The first argument of every env_…("NAME", …) call in deploy/settings.py."""
    tree = ast.parse((ROOT / "deploy" / "settings.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("env_")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def _variables_read_by_the_process_starters() -> set[str]:
    """What gunicorn's config and the container entrypoint read (the processes, not Django)."""
    gunicorn = (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    return set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]+)"', gunicorn)) | set(
        re.findall(r"\$\{([A-Z][A-Z0-9_]+)[:}-]", entrypoint)
    )


def test_the_readme_settings_table_lists_every_variable_the_settings_read():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        name for row in section.splitlines() if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])
    }  # fmt: skip
    read = _variables_read_by_settings()
    assert len(read) > 40  # the parse found the calls
    assert read - documented == set()
    assert documented - read - _variables_read_by_the_process_starters() == set()
    assert read.isdisjoint(RENAMED)
