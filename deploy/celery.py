from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")

app = Celery("banditore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Operating tasks: they read every app's state (deploy.ops), so they live above the apps, here.
@app.task(name="banditore.deploy.heartbeat", ignore_result=True)
def heartbeat_task(queue: str) -> None:
    """Beat sends one to each queue every minute: its age shows that queue's pool works."""
    from deploy.ops import heartbeat_record

    heartbeat_record(queue)


@app.task(name="banditore.deploy.check_alerts", ignore_result=True)
def check_alerts_task() -> None:
    from deploy.alerts import alerts_check

    alerts_check()
