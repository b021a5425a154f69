from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a first superuser 'admin' if there is none, and say how to log in."

    def handle(self, *args, **options) -> None:
        users = get_user_model()
        login_file = Path(settings.VAR_DIR) / "admin-login.txt"
        if users.objects.filter(is_superuser=True).exists():
            if login_file.exists():
                self.stdout.write(f"Login: {login_file.read_text().strip()}")
            else:
                self.stdout.write("Log in with your admin account (manage.py createsuperuser).")
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "", password)
        login_file.write_text(f"user admin, password {password}\n")
        login_file.chmod(0o600)
        self.stdout.write(f"Login: user admin, password {password} (also in {login_file})")
