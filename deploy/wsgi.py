"""WSGI entry point (gunicorn deploy.wsgi, and runserver through WSGI_APPLICATION).

The webhook POST is served by `channel.webhook.intake.WebhookIntake` in front of Django; every
other request goes to Django as usual.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
django_application = get_wsgi_application()

# Both need the apps loaded.
from channel.tasks import enqueue_inbound_processing  # noqa: E402
from channel.webhook.intake import WebhookIntake  # noqa: E402

application = WebhookIntake(django_application, wake_processor=enqueue_inbound_processing)
