"""Repeated wrong passwords lock the admin log-in, per user name and per address."""

from __future__ import annotations

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def editor(django_user_model):
    return django_user_model.objects.create_user("redattrice", password="giusta-123", is_staff=True)


def _try(client, username: str, password: str, ip: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_right_password_after_too_many_wrong_ones_is_refused(client, editor):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _try(client, "redattrice", "sbagliata").status_code == 200  # the form again
    assert _try(client, "redattrice", "sbagliata").status_code == 429  # the last allowed
    response = _try(client, "redattrice", "giusta-123")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # From another address too: the user name itself is locked.
    assert _try(client, "redattrice", "giusta-123", ip="198.51.100.9").status_code == 429


def test_one_address_guessing_many_user_names_is_locked_out(client, editor):
    for number in range(settings.AXES_FAILURE_LIMIT):
        _try(client, f"utente{number}", "x", ip="192.0.2.50")
    assert _try(client, "redattrice", "giusta-123", ip="192.0.2.50").status_code == 429
    # Someone else, elsewhere, still logs in.
    assert _try(client, "redattrice", "giusta-123", ip="192.0.2.51").status_code == 302


def test_a_success_before_the_limit_forgets_the_failures(client, editor):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _try(client, "redattrice", "sbagliata")
    assert _try(client, "redattrice", "giusta-123").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _try(client, "redattrice", "sbagliata")
    assert _try(client, "redattrice", "giusta-123").status_code == 302


def test_administrators_see_the_attempts(admin_client, client, editor):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _try(client, "redattrice", "sbagliata")
    page = admin_client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert b"redattrice" in page.content
