"""deploy/compose.yaml, deploy/Caddyfile and deploy/env.example, checked without Docker: the
Compose specification's JSON schema, what each service waits for and how its health is told, no
secret in the files, and every variable the settings read documented in the example env file."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy.helpers import caddy_or_skip, caddyfile_text

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The specification's schema, from https://github.com/compose-spec/compose-spec, kept in the
# shared folder beside the repository (CI has it there too).
SCHEMA = ROOT.parent / "shared" / "compose-spec" / "compose-spec.json"
APP_SERVICES = {
    "web",
    "worker-replies",
    "worker-sends",
    "worker-housekeeping",
    "beat",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def validator():
    if not SCHEMA.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the Compose schema is missing: {SCHEMA}")
        pytest.skip(f"the Compose schema is not beside the repository ({SCHEMA})")
    # The schema says draft-07, spelled without the trailing '#' jsonschema looks for.
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def test_compose_file_follows_the_compose_specification(compose, validator):
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    broken = copy.deepcopy(compose)
    broken["services"]["beat"]["restart_policy"] = "always"
    broken["services"]["caddy"]["depends_on"]["web"]["condition"] = "whenever"
    failed = {tuple(e.path)[:2] for e in validator.iter_errors(broken)}
    assert failed == {("services", "beat"), ("services", "caddy")}


def test_everything_waits_for_the_migration_which_waits_for_the_databases(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name


def test_every_long_running_service_has_a_health_check_of_its_own(compose):
    services = compose["services"]
    checks = {name: services[name]["healthcheck"]["test"] for name in services if name != "migrate"}
    assert checks["web"] == ["CMD", "deploy/entrypoint.sh", "health", "web"]
    for pool in ("replies", "sends", "housekeeping"):
        assert checks[f"worker-{pool}"] == [
            "CMD", "deploy/entrypoint.sh", "health", "worker", pool
        ]  # fmt: skip
    assert checks["beat"][:4] == ["CMD", "deploy/entrypoint.sh", "health", "beat"]
    assert "pg_isready" in checks["postgres"]
    assert checks["redis"] == ["CMD", "redis-cli", "ping"]
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_redis_persists_the_broker_and_data_lives_in_named_volumes(compose):
    services = compose["services"]
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redisdata:/data" in services["redis"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"pgdata", "redisdata", "media", "static", "caddy_data"} <= set(compose["volumes"])
    # Uploads: written by the app where MEDIA_ROOT points, served by Caddy from the same volume.
    for name in APP_SERVICES:
        assert "media:/app/var/media" in services[name]["volumes"], name
        assert services[name]["environment"]["MEDIA_ROOT"] == "/app/var/media"
    assert "static:/app/var/static" in services["web"]["volumes"]
    assert "media:/srv/media:ro" in services["caddy"]["volumes"]
    assert "static:/srv/static:ro" in services["caddy"]["volumes"]
    assert "ports" not in services["web"]  # only Caddy faces the network
    assert services["caddy"]["image"] == "caddy:2"


def test_no_password_or_secret_is_written_in_the_compose_file(compose):
    text = (DEPLOY / "compose.yaml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|TOKEN)\w*:\s*\S", line):
            assert "${" in line, line
    url = compose["services"]["web"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url
    for name in APP_SERVICES | {"migrate"}:
        assert compose["services"][name]["env_file"] == "env"


def _documented(path: Path) -> set[str]:
    return set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", path.read_text(), flags=re.M))


def test_the_example_env_file_documents_every_variable_the_settings_read():
    settings = "\n".join(path.read_text() for path in sorted(DEPLOY.glob("*.py")))
    read = set(re.findall(r"\benv_\w+\(\s*\"([A-Z][A-Z0-9_]+)\"", settings))
    assert {"SECRET_KEY", "DATABASE_URL", "WHATSAPP_APP_SECRET"} <= read
    documented = _documented(DEPLOY / "env.example")
    assert sorted(read - documented) == []
    # ... and what compose, gunicorn and the entrypoint read.
    compose_text = (DEPLOY / "compose.yaml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose_text))
    assert interpolated == {"POSTGRES_PASSWORD", "BANDITORE_DOMAIN", "ACME_EMAIL"}
    gunicorn = (DEPLOY / "gunicorn.conf.py").read_text()
    processes = set(re.findall(r"environ\.get\(\"([A-Z][A-Z0-9_]+)\"", gunicorn))
    assert sorted((interpolated | processes | {"CELERY_CONCURRENCY"}) - documented) == []


def test_the_example_env_file_names_no_variable_nothing_reads():
    known = set(re.findall(r"\b([A-Z][A-Z0-9_]{3,})\b", (DEPLOY / "settings.py").read_text()))
    known |= {"POSTGRES_PASSWORD", "BANDITORE_DOMAIN", "ACME_EMAIL", "CELERY_CONCURRENCY"}
    known |= {"WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_BIND", "FORWARDED_ALLOW_IPS"}
    known |= {"HTTPS_PROXY", "NO_PROXY"}  # read by httpx
    assert sorted(_documented(DEPLOY / "env.example") - known) == []


def test_dockerignore_keeps_secrets_and_local_data_out_of_the_image():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"deploy/env", "var", ".venv"} <= ignored


def _caddy_config(tmp_path: Path) -> dict:
    caddy = caddy_or_skip()
    text = caddyfile_text(caddy)
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(text)
    result = subprocess.run(
        [caddy, "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env={**os.environ, "BANDITORE_DOMAIN": "banditore.example.it", "ACME_EMAIL": "a@b.it"},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_caddy_serves_static_and_media_from_the_volumes_and_buffers_what_it_proxies(tmp_path):
    config = json.dumps(_caddy_config(tmp_path))
    assert '"host": ["banditore.example.it"]' in config
    assert '"root": "/srv/static"' in config and '"root": "/srv/media"' in config
    assert '"path": ["/media/*"]' in config and '"path": ["/static/*"]' in config
    assert '"dial": "web:8000"' in config
    assert '"try_duration": 30000000000' in config
    assert re.search(r'"(buffer_requests": true|request_buffers": 16777216)', config)


def test_caddys_access_log_keeps_query_secrets_and_referers_out(tmp_path):
    logs = _caddy_config(tmp_path)["logging"]["logs"]
    fields = json.dumps([log["encoder"]["fields"] for log in logs.values() if "encoder" in log])
    assert '"request>headers>Referer": {"filter": "delete"}' in fields
    assert '"parameter": "q", "type": "delete"' in fields
    assert '"parameter": "hub.verify_token", "type": "replace"' in fields


def test_every_variable_of_the_example_env_file_is_explained_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in _documented(DEPLOY / "env.example") if f"`{name}`" not in readme]
    assert sorted(missing) == []


def test_the_example_env_file_passes_djangos_deployment_checklist(tmp_path):
    """`manage.py check --deploy` is clean with deploy/env.example, once the council's own facts
    replace the examples (the system check refuses those) and compose's own values are set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BANDITORE_"))}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if match := re.match(r"^([A-Z][A-Z0-9_]+)=(.*)$", line):
            env[match[1]] = match[2].replace("example", "prova")
    env |= {"COUNCIL_NAME": "Comune di Prova", "COUNCIL_PHONE": "+39 0434 123456"}
    env["COUNCIL_ADDRESS"] = "Piazza Grande 1, 33170 Prova"
    env |= {
        "DJANGO_SETTINGS_MODULE": "deploy.settings",
        "BANDITORE_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "s" + "0123456789abcdef" * 4,
        # What compose.yaml sets; nothing connects during the check.
        "DATABASE_URL": "postgres://banditore:x@127.0.0.1:1/banditore",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "BANDITORE_BEHIND_PROXY": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
