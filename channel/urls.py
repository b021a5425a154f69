from __future__ import annotations

from django.urls import path

from channel.webhook import views

app_name = "channel"
urlpatterns = [path("", views.webhook, name="webhook")]
