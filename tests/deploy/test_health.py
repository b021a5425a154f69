"""/healthz and /readyz: probes from inside, whatever the Host, naming what is not ready."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

# A prober inside the container network: plain HTTP, an address as Host.
PROBE_HOST = {"HTTP_HOST": "127.0.0.1:8000"}


@override_settings(ALLOWED_HOSTS=["banditore.comune.example.it"], SECURE_SSL_REDIRECT=True)
def test_probes_answer_over_plain_http_whatever_the_host_header():
    client = Client()
    assert client.get("/healthz", **PROBE_HOST).json() == {"ok": True}
    ready = client.get("/readyz", **PROBE_HOST)
    assert ready.status_code == 200
    assert ready.json() == {"ok": True, "failed": []}
    # Every other page still refuses a Host outside ALLOWED_HOSTS.
    assert client.get("/admin/login/", **PROBE_HOST).status_code == 400


@override_settings(REDIS_URL="redis://127.0.0.1:9/0")  # the discard port: nothing listens
def test_readiness_is_503_naming_redis_when_redis_does_not_answer():
    response = Client().get("/readyz", **PROBE_HOST)
    assert response.status_code == 503
    assert response.json() == {"ok": False, "failed": ["redis"]}
    # Liveness does not look at Redis: a web container is not restarted for it.
    assert Client().get("/healthz", **PROBE_HOST).status_code == 200


def test_readiness_is_503_naming_migrations_when_one_is_not_applied():
    # The migration table forgets subscribers' latest migration, as on a fresh release whose
    # migrate job has not run yet (the test's transaction puts the row back).
    loader = MigrationLoader(connection)
    (leaf,) = [node for node in loader.graph.leaf_nodes() if node[0] == "subscribers"]
    deleted, _ = MigrationRecorder.Migration.objects.filter(app=leaf[0], name=leaf[1]).delete()
    assert deleted == 1
    response = Client().get("/readyz", **PROBE_HOST)
    assert response.status_code == 503
    assert response.json()["failed"] == ["migrations"]
