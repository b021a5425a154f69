"""The README's shell examples work when copied: the API section's block runs as written.

The quick-start's other commands are run elsewhere: `make run` and `celery -A deploy inspect
ping` (without SECRET_KEY, as typed) by tests/test_run_command.py, a bare manage.py command on
the dev secret by tests/test_settings_parsing.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.celery import app as celery_app
from tests.factories import make_subscriber, make_template, make_topic
from topics.models import Post, Topic
from topics.tokens import api_token_create

ROOT = Path(__file__).resolve().parents[2]


def readme_block(section: str) -> str:
    """The first ```sh block under the README heading `section`."""
    readme = (ROOT / "README.md").read_text()
    body = readme.split(f"\n{section}\n", 1)[1]
    return re.search(r"```sh\n(.*?)```", body, re.S)[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
def test_the_api_examples_run_as_written(
    transactional_db, live_server, redis_conn, monkeypatch, tmp_path
):
    topic = Topic.objects.filter(slug="farmacie-di-turno").first() or make_topic(
        slug="farmacie-di-turno", name_it="Farmacie di turno"
    )
    token, key = api_token_create(name="Farmacie – ASL", topics=[topic], can_publish=True)
    make_subscriber(topics=[topic])
    make_template()  # the approved template a post needs for people outside the 24-hour window
    # As in production, tasks go to the broker for workers to run (none here), instead of
    # inline: the post is still in flight when the block cancels it.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    script = readme_block("### Endpoints")
    # The one line a reader edits: where Banditore is and the key.
    script, edited = re.subn(
        r"(?m)^export BANDITORE=\S+ KEY=\S+$",
        f"export BANDITORE={live_server.url} KEY={key}",
        script,
    )
    assert edited == 1
    # Every curl must succeed (-f: an HTTP error is a failure), quietly (-s).
    result = subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            'curl() { command curl -sS --fail-with-body "$@"; echo; }\n' + script,
        ],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "TZ": "Europe/Rome", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (post,) = Post.objects.filter(created_by_token=token)
    assert post.topics.get() == topic
    assert post.expires_at is not None
    assert post.status == Post.Status.CANCELLED  # the block's last step but one stops it
    assert post.deliveries.get().status == "cancelled"
    assert f'"id":{post.pk}' in result.stdout.replace(" ", "")
