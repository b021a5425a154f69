"""Helpers for the editors' desk tests (plain functions, so no fixture imports are needed)."""

from __future__ import annotations

import re

from django.utils import timezone

from topics.models import Post

CHANGELIST = "/admin/topics/post/"


def versions_in(page: str) -> dict[str, str]:
    """The hidden fields that tie a confirmation to the content it showed."""
    return dict(re.findall(r'name="(version-\d+)" value="([^"]*)"', page))


def confirm(client, action: str, *posts: Post, follow: bool = False, **extra):
    """What the editor's browser does: open the confirmation page, then send its form back."""
    selected = {"action": action, "_selected_action": [post.pk for post in posts]}
    page = client.post(CHANGELIST, selected).content.decode()
    form = {**selected, **versions_in(page), "confirmed": "yes", **extra}
    return client.post(CHANGELIST, form, follow=follow)


def change_form_data(post: Post, **changes) -> dict:
    """Every field of the post's change form as a browser sends it, with `changes` applied
    (topics as a list of ids, moments as aware datetimes or None)."""
    values = {
        "title": post.title,
        "body": post.body,
        "link": post.link,
        "topics": [topic.pk for topic in post.topics.all()],
        "is_urgent": post.is_urgent,
        "media_kind": post.media_kind,
        "media_url": post.media_url,
        "send_at": post.send_at,
        "expires_at": post.expires_at,
    } | changes
    data = {name: value for name, value in values.items() if name not in ("send_at", "expires_at")}
    data["is_urgent"] = "on" if values["is_urgent"] else ""
    for name in ("send_at", "expires_at"):
        local = values[name] and timezone.localtime(values[name])
        data[f"{name}_0"] = f"{local:%d/%m/%Y}" if local else ""
        data[f"{name}_1"] = f"{local:%H:%M:%S}" if local else ""
    return data
