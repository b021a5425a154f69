"""Log lines: time, level and logger on every line, JSON on request, no number or token whole."""

from __future__ import annotations

import json

from django.conf import settings

from deploy.logs import redact
from tests.deploy.helpers import run_python

LOG_SOME_LINES = """
import logging, os
os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
import django
django.setup()
logging.getLogger("channel.graph.client").warning(
    "send to %s failed, Authorization: Bearer %s", "393331234567", "EAAGm0PX4ZCpsBAKZA1b2c3d4e5f6"
)
try:
    raise ValueError("no such wa_id +447700900123")
except ValueError:
    logging.getLogger("subscribers").exception("at %s", 1767225600)
"""


def _log(log_format: str) -> list[str]:
    env = {"LOG_FORMAT": log_format, "SECRET_KEY": "x", "REDIS_URL": settings.REDIS_URL}
    env |= {"BANDITORE_EMBEDDED_SERVICES": "1", "LOG_LEVEL": "WARNING"}
    result = run_python(["-c", LOG_SOME_LINES], env=env, without=("DJANGO_",), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_json_lines_carry_time_level_logger_and_mask_numbers_and_tokens():
    first, second = (json.loads(line) for line in _log("json") if line.startswith("{"))
    assert first["level"] == "WARNING"
    assert first["logger"] == "channel.graph.client"
    assert first["time"][:2] == "20"
    assert first["message"] == "send to 39•••67 failed, Authorization: Bearer •••"
    assert second["level"] == "ERROR"
    assert second["message"] == "at 1767225600"  # a timestamp is not a phone number
    assert "ValueError: no such wa_id +44•••23" in second["exc_info"]
    assert "447700900123" not in json.dumps(second)


def test_text_lines_carry_time_level_and_logger():
    lines = _log("text")
    (warning,) = [line for line in lines if "WARNING" in line]
    assert " WARNING channel.graph.client send to 39•••67 failed" in warning
    assert not any("393331234567" in line or "EAAGm0PX" in line for line in lines)


def test_redact_leaves_ids_that_are_not_numbers_alone():
    assert (
        redact("post 12 delivery 345678 at 1767225600") == "post 12 delivery 345678 at 1767225600"
    )
    assert redact("GET /v25.0/me?access_token=abc123&x=1") == "GET /v25.0/me?access_token=•••&x=1"
