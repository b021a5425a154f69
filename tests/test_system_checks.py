from __future__ import annotations

from django.test import override_settings

from channel.apps import check_whatsapp_settings


def test_it_is_quiet_when_whatsapp_is_not_configured():
    with override_settings(WHATSAPP_ACCESS_TOKEN=""):
        assert check_whatsapp_settings() == []


def test_it_names_each_missing_setting_of_a_half_configured_account():
    with override_settings(
        WHATSAPP_ACCESS_TOKEN="t", WHATSAPP_PHONE_NUMBER_ID="", WHATSAPP_APP_SECRET="s",
        WHATSAPP_VERIFY_TOKEN="",
    ):  # fmt: skip
        messages = [problem.msg for problem in check_whatsapp_settings()]
    assert messages == [
        "WHATSAPP_PHONE_NUMBER_ID is empty while WHATSAPP_ACCESS_TOKEN is set",
        "WHATSAPP_VERIFY_TOKEN is empty while WHATSAPP_ACCESS_TOKEN is set",
    ]


def test_it_warns_above_metas_highest_throughput():
    with override_settings(WHATSAPP_MPS=5000):
        assert [p.id for p in check_whatsapp_settings()] == ["channel.W001"]
