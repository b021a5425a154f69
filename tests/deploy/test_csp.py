"""Content-Security-Policy: scripts from our origin, inline ones only with the response's nonce."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [
    path
    for app in ("channel", "topics", "subscribers", "deploy")
    for path in (ROOT / app).rglob("templates/**/*.html")
]


def _policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part for part in (p.strip() for p in header.split(";")) if part}


def test_every_page_says_where_scripts_may_come_from(client):
    policy = _policy(client.get("/admin/login/"))
    assert "'self'" in policy["script-src"] and "'unsafe-inline'" not in policy["script-src"]
    assert policy["object-src"] == "object-src 'none'"
    assert "frame-ancestors" in policy


def test_an_inline_script_carries_the_nonce_of_its_response(admin_client, fake_graph):
    response = admin_client.get("/simulator/")
    nonce = re.search(r"'nonce-([^']+)'", _policy(response)["script-src"]).group(1)
    assert f'<script nonce="{nonce}">' in response.content.decode()


def test_no_template_has_a_script_the_policy_would_block():
    assert TEMPLATES
    for path in TEMPLATES:
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or "csp_nonce" in tag, f"{path}: {tag}"
        handler = re.search(r"\son[a-z]+=\"", text)
        assert handler is None, f"{path}: inline event handler {handler and handler.group(0)}"
