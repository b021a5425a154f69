"""Behind the HTTPS proxy, the documented production settings pass `check --deploy` cleanly."""

from __future__ import annotations

import secrets
import subprocess

from django.conf import settings

from tests.deploy.helpers import COUNCIL, run_python

PRODUCTION = {
    "DEBUG": "0",
    "SITE_URL": "https://banditore.comune.example.it",
    "ALLOWED_HOSTS": "banditore.comune.example.it",
    "CSRF_TRUSTED_ORIGINS": "https://banditore.comune.example.it",
    "BANDITORE_BEHIND_PROXY": "1",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    # The council's own facts: start-up refuses the example ones with DEBUG off.
    **COUNCIL,
    "PRIVACY_DPO_EMAIL": "dpo@comune.pordenone.it",
    "PRIVACY_NOTICE_URL": "https://www.comune.pordenone.it/privacy-whatsapp",
}


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    env = {"SECRET_KEY": secrets.token_urlsafe(50), "REDIS_URL": settings.REDIS_URL} | env
    return run_python(args, env=env, without=("DJANGO_", "SECURE_", "SITE_"))


def test_check_deploy_is_clean_with_the_production_settings():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_https_site_url_turns_on_secure_cookies_hsts_and_the_proxy_header():
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'deploy.settings';"
        "django.setup(); from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0,"
        " getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    )
    on = _run(["-c", script], **PRODUCTION)
    assert on.returncode == 0, on.stderr
    assert on.stdout.splitlines()[-1] == "True True True ('HTTP_X_FORWARDED_PROTO', 'https')"
    plain = _run(["-c", script], DEBUG="1", SITE_URL="http://127.0.0.1:8000")
    assert plain.stdout.splitlines()[-1] == "False False False None"
