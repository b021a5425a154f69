"""SENTRY_DSN sends errors to Sentry (here a loopback stand-in), with numbers and tokens masked."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings

from tests.deploy.helpers import run_python

NUMBER = "393471234567"
SCRIPT = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'deploy.settings'; django.setup();"
    "import sentry_sdk;"
    f"\ntry:\n    raise ValueError('no subscriber +{NUMBER}, token EAAG1234567890abcdefXYZ')"
    "\nexcept ValueError as error:\n    sentry_sdk.capture_exception(error)"
    "\nsentry_sdk.flush(10); print('flushed')"
)


class _Ingest(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_an_error_reaches_sentry_without_the_number_or_the_token():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dsn = f"http://publickey@127.0.0.1:{server.server_port}/1"
        result = run_python(
            ["-c", SCRIPT],
            env={"SENTRY_DSN": dsn, "DEBUG": "1", "REDIS_URL": settings.REDIS_URL},
        )
    finally:
        server.shutdown()
    assert result.returncode == 0 and "flushed" in result.stdout, result.stderr
    sent = b"".join(_Ingest.received).decode()
    assert "ValueError" in sent and "no subscriber" in sent
    assert NUMBER not in sent and "EAAG1234567890" not in sent


def test_without_a_dsn_sentry_is_not_even_loaded():
    script = (
        "import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'deploy.settings';"
        "django.setup(); print('sentry_sdk' in sys.modules)"
    )
    result = run_python(["-c", script], env={"SENTRY_DSN": None, "DEBUG": "1"})
    assert result.stdout.splitlines()[-1] == "False", result.stderr
