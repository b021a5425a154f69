"""CPU cost of the webhook intake path, side by side with minimal Django views.

    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/webhook_intake.py [N]
    … bench/webhook_intake.py [N] --gunicorn      # also: server CPU under gunicorn, over HTTP

In process (the default): ms of process CPU per request, N requests of each kind, all driven
the same way through WSGI (a prepared environ per request, as a server hands it over), the
kinds taking turns so that other work on the machine weighs on all of them alike:

- `GET /healthz` through `deploy.wsgi.application`: a bare Django view behind the full
  middleware list, no I/O at all;
- a minimal Django webhook view (verify the signature, parse the JSON, push the status to a
  Redis list; full middleware, no archive): the floor the lean path must beat;
- the signed one-status webhook POST through Django's own handler (our Django view, which
  calls the same `channel.webhook.intake.respond`): what the POST cost before the lean path;
- the same POST through `deploy.wsgi.application`: the lean path (`channel.webhook.intake`).

The Django test client figures of the first version of this benchmark are printed too, for
comparison with older numbers. With --gunicorn, gunicorn serves each kind (2 sync workers, a
new connection per request) while two load processes send N requests, and the CPU of the
gunicorn processes per request is reported.

The CPU of PostgreSQL for the archive INSERT and its commit is counted beside each (every
backend of this database, sampled before and after each round or run), as it is part of what a
webhook POST costs. Each figure is min / median / max of the rounds (in
process, 5) or runs (gunicorn, 3), with the load average before and after.

Our POSTs verify the signature, INSERT the raw body and SET NX the wake-up flag; the flag is
held set, as under load, so no POST publishes a drain task. Processing is not counted here
(bench/webhook_drain.py). Rows and Redis keys it creates are deleted at the end.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
os.environ.setdefault("SECRET_KEY", "bench")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("WHATSAPP_APP_SECRET", "bench-secret")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from bench.harness import PostgresMeter, cpu_seconds, load_average, spread  # noqa: E402
from channel.models import InboundEvent  # noqa: E402
from channel.redis_client import redis_client  # noqa: E402
from channel.webhook.envelope import webhook_envelope  # noqa: E402
from channel.webhook.signatures import HEADER, sign, verify  # noqa: E402
from channel.webhook.wake_flag import WAKE_KEY  # noqa: E402
from deploy.wsgi import application, django_application  # noqa: E402

DATABASE_URL = os.environ.get("DATABASE_URL", "")

STATUS = {
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA",
    "status": "delivered",
    "timestamp": "1750030073",
    "recipient_id": "16505551234",
    "biz_opaque_callback_data": "bench",
    "pricing": {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    },
}
BODY = json.dumps(
    webhook_envelope({"statuses": [STATUS]}, phone_number_id="1", display_phone_number="1")
).encode()
URL = "/whatsapp/webhook/"
MINIMAL_URL = "/bench/minimal-webhook/"
MINIMAL_QUEUE = "banditore:bench:minimal-webhook"


@csrf_exempt
def minimal_webhook(request):
    """The minimal Django webhook view: verify the signature, parse the JSON, push
    (wamid, status, timestamp) to a Redis list for a batch consumer. No archive."""
    body = request.body
    if not verify(body, request.headers.get(HEADER), settings.WHATSAPP_APP_SECRET):
        return HttpResponse(status=403)
    statuses = json.loads(body)["entry"][0]["changes"][0]["value"]["statuses"]
    redis_client().rpush(
        MINIMAL_QUEUE, *(f"{s['id']} {s['status']} {s['timestamp']}" for s in statuses)
    )
    return HttpResponse(status=200)


# This module is the URLconf while it runs (in process, or in gunicorn for the minimal view).
urlpatterns = [path(MINIMAL_URL[1:], minimal_webhook), path("", include("deploy.urls"))]
settings.ROOT_URLCONF = __name__
minimal_application = django_application


def _postgres_cpu() -> PostgresMeter | None:
    """Every backend of this database (a request may close its connection and open another,
    so one backend's pid would not do); None on SQLite."""
    return PostgresMeter(DATABASE_URL) if DATABASE_URL.startswith("postgres") else None


def cpu_per_request(calls: dict, n: int, rounds: int = 5) -> dict[str, list[tuple]]:
    """(ms of process CPU, ms of its PostgreSQL backend's CPU) per call, for each kind, one
    pair per round; the kinds take turns, `rounds` rounds of n / rounds calls each (other work
    on the machine comes and goes: taking turns spreads it over every kind alike)."""
    for call in calls.values():
        for _ in range(min(200, n)):
            call()
    per_round = max(1, n // rounds)
    samples: dict[str, list[tuple]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start, pg = time.process_time(), _postgres_cpu()
            for _ in range(per_round):
                call()
            own = (time.process_time() - start) * 1000 / per_round
            samples[name].append((own, (pg.seconds() if pg else 0.0) * 1000 / per_round))
    return samples


def environ(method: str, path: str, body: bytes = b"", **headers: str) -> dict:
    """What a WSGI server hands the application for one request."""
    base = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        base |= {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
    return base | {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}


def wsgi_caller(app, template: dict, body: bytes, expect: int):
    status = []

    def start_response(line, headers, exc_info=None):
        status.append(line)

    def call() -> None:
        status.clear()
        result = app(template | {"wsgi.input": io.BytesIO(body)}, start_response)
        b"".join(result)
        if hasattr(result, "close"):
            result.close()  # Django's request_finished (connection hygiene) runs here
        assert status[0].startswith(str(expect)), status

    return call


def in_process(n: int) -> dict[str, float]:
    signature = sign(BODY, settings.WHATSAPP_APP_SECRET)
    post = environ("POST", URL, BODY, **{HEADER: signature})
    get = environ("GET", "/healthz")
    minimal = environ("POST", MINIMAL_URL, BODY, **{HEADER: signature})
    client = Client()

    def test_client_post() -> None:
        response = client.post(
            URL, data=BODY, content_type="application/json", headers={HEADER: signature}
        )
        assert response.status_code == 200, response.status_code

    return cpu_per_request(
        {
            "healthz": wsgi_caller(application, get, b"", 200),
            "minimal": wsgi_caller(application, minimal, BODY, 200),
            "django_view": wsgi_caller(django_application, post, BODY, 200),
            "lean": wsgi_caller(application, post, BODY, 200),
            "client_healthz": lambda: client.get("/healthz"),
            "client_post": test_client_post,
        },
        n,
    )


LOAD = """
import http.client, sys
n, port, method, path, body, signature = sys.argv[1:7]
body = body.encode()
for _ in range(int(n)):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    headers = {"Content-Type": "application/json"}
    if method == "POST":
        headers["X-Hub-Signature-256"] = signature
    conn.request(method, path, body=body if method == "POST" else None, headers=headers)
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    conn.close()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _served_cpu(app: str, method: str, path: str, n: int, runs: int = 3) -> list[tuple]:
    """(ms of CPU of a gunicorn with 2 sync workers serving `app`, ms of the PostgreSQL
    backends serving this database) per request of this kind, once per run."""
    import socket

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--log-level", "warning"],
        cwd=ROOT, env=os.environ,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        args = [str(port), method, path, BODY.decode(), sign(BODY, settings.WHATSAPP_APP_SECRET)]

        def load(count: int) -> None:
            # Two load processes keep both workers busy; their own CPU is not counted.
            procs = [
                subprocess.Popen([sys.executable, "-c", LOAD, str(count), *args]) for _ in range(2)
            ]
            for p in procs:
                assert p.wait() == 0

        load(100)  # warm-up: imports, database and Redis connections
        figures = []
        for _ in range(runs):
            before = cpu_seconds({server.pid})
            pg = PostgresMeter(DATABASE_URL) if DATABASE_URL.startswith("postgres") else None
            load(n // 2)
            count = n // 2 * 2
            own = (cpu_seconds({server.pid}) - before) * 1000 / count
            figures.append((own, (pg.seconds() if pg else 0.0) * 1000 / count))
        return figures
    finally:
        server.terminate()
        try:
            server.wait(60)  # a loaded machine: gunicorn's workers take their time
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def under_gunicorn(n: int) -> dict[str, list[tuple]]:
    return {
        "healthz": _served_cpu("deploy.wsgi:application", "GET", "/healthz", n),
        "minimal": _served_cpu("bench.webhook_intake:minimal_application", "POST", MINIMAL_URL, n),
        "django_view": _served_cpu("deploy.wsgi:django_application", "POST", URL, n),
        "lean": _served_cpu("deploy.wsgi:application", "POST", URL, n),
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 2000
    load_before = load_average()
    first_id = (InboundEvent.objects.order_by("-id").values_list("id", flat=True).first()) or 0
    # The drain task is not running here: keep the flag set, as under load, so no POST publishes.
    redis_client().set(WAKE_KEY, 1, ex=3600)
    try:
        figures = in_process(n)
        served = under_gunicorn(n) if "--gunicorn" in sys.argv else None
    finally:
        InboundEvent.objects.filter(id__gt=first_id).delete()
        redis_client().delete(WAKE_KEY, MINIMAL_QUEUE)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"{n} requests each, body {len(BODY)} bytes, database {engine}")
    print(f"load average before: {load_before}, after: {load_average()}")
    print("ms of CPU per request, min / median / max of the runs; PostgreSQL: its backend")
    report("in process, through WSGI", figures)
    print("in process, Django test client (the first version of this benchmark):")
    for key, label in (("client_healthz", "GET /healthz"), ("client_post", "POST webhook")):
        print(f"  {label:<44} {spread([own for own, _ in figures[key]], 3)}")
    if served:
        report("under gunicorn, 2 sync workers", served)


def report(title: str, figures: dict[str, list[tuple]]) -> None:
    print(f"{title}:")
    rows = (
        ("healthz", "GET /healthz (bare Django view)"),
        ("minimal", "POST minimal Django webhook view"),
        ("django_view", "POST webhook, our Django view"),
        ("lean", "POST webhook, lean intake"),
    )
    floor = statistics.median(own + pg for own, pg in figures["minimal"])
    for key, label in rows:
        own = [o for o, _ in figures[key]]
        pg = [p for _, p in figures[key]]
        total = statistics.median(o + p for o, p in figures[key])
        print(f"  {label:<34} process {spread(own, 3)}, PostgreSQL {spread(pg, 3)}; "
              f"together {total:.3f} ({total / floor:.2f}× the minimal view)")  # fmt: skip


if __name__ == "__main__":
    main()
