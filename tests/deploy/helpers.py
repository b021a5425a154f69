"""deploy/Caddyfile as the Caddy installed here can run it (tests/deploy)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"


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
