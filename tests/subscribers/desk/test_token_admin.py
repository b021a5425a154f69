"""API tokens in Django admin: created for one integration, key shown once, revocable."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.contrib.auth import get_user_model

from tests.factories import make_topic
from tests.subscribers.api.helpers import client_for, token_with_key
from topics.models import ApiToken, AuditEntry, hash_token_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(redis_conn):
    """Throttle counters live in Redis: every test starts with none."""


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("admin", "a@example.it", "pw-for-tests")
    client.force_login(user)
    return client


def assert_key_kept_out_of_cookies_and_session(client, response, key: str) -> None:
    """Django's messages cookie is signed, not encrypted: anything in it (or in the session)
    can be read back, so the key must only ever be in the page."""
    assert response.status_code == 200 and not response.redirect_chain
    assert "no-store" in response["Cache-Control"]
    for morsel in [*response.cookies.values(), *client.cookies.values()]:
        assert key not in morsel.value and key not in unquote(morsel.value)
    session = client.session
    assert key not in repr({name: session[name] for name in session.keys()})
    assert key not in client.get("/admin/topics/apitoken/").content.decode()


def test_it_shows_a_new_key_once_and_stores_its_hash(admin_client):
    pharmacies = make_topic(slug="farmacie")
    response = admin_client.post(
        "/admin/topics/apitoken/add/",
        {"name": "Farmacie – ASL", "topics": [pharmacies.pk], "can_read_stats": "on"},
        follow=True,
    )

    page = response.content.decode()
    [key] = re.findall(r"bnd_[A-Za-z0-9_-]{20,}", page)
    assert page.count(key) == 1
    assert_key_kept_out_of_cookies_and_session(admin_client, response, key)
    token = ApiToken.objects.get(name="Farmacie – ASL")
    assert token.key_hash == hash_token_key(key) and key not in token.key_prefix
    assert token.created_by.username == "admin" and not token.can_publish
    assert list(token.topics.all()) == [pharmacies]
    assert client_for(key).get("/api/v1/topics/").status_code == 200
    # Shown once: the token's own page never shows it again.
    again = admin_client.get(f"/admin/topics/apitoken/{token.pk}/change/").content.decode()
    assert key not in again and token.key_prefix in again
    assert AuditEntry.objects.filter(action="token_created").exists()


def test_a_new_key_replaces_the_old_one_and_is_shown_once(admin_client):
    token, old_key = token_with_key(name="Ufficio traffico")
    change_page = admin_client.get(f"/admin/topics/apitoken/{token.pk}/change/")
    assert "regenerate-key" in change_page.content.decode()

    response = admin_client.post(f"/admin/topics/apitoken/{token.pk}/regenerate-key/", follow=True)

    page = response.content.decode()
    [key] = re.findall(r"bnd_[A-Za-z0-9_-]{20,}", page)
    assert key != old_key and page.count(key) == 1
    assert_key_kept_out_of_cookies_and_session(admin_client, response, key)
    assert client_for(old_key).get("/api/v1/topics/").status_code == 401
    assert client_for(key).get("/api/v1/topics/").status_code == 200
    assert AuditEntry.objects.filter(action="token_key_regenerated").count() == 1
    # Only by POST (a link or a prefetch must not replace a key).
    assert admin_client.get(f"/admin/topics/apitoken/{token.pk}/regenerate-key/").status_code == 405


def test_the_revoke_action_stops_a_key_at_once(admin_client):
    token, key = token_with_key(name="Ufficio traffico")
    assert client_for(key).get("/api/v1/topics/").status_code == 200

    admin_client.post(
        "/admin/topics/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client_for(key).get("/api/v1/topics/").status_code == 401
    assert AuditEntry.objects.filter(action="token_revoked").count() == 1


def test_the_list_shows_last_use_and_scopes(admin_client):
    token, key = token_with_key(name="Protezione civile", topics=[make_topic(slug="allerta")])
    client_for(key).get("/api/v1/topics/")
    page = admin_client.get("/admin/topics/apitoken/").content.decode()
    assert "Protezione civile" in page and "allerta" in page
    token.refresh_from_db()
    assert token.last_used_at is not None
