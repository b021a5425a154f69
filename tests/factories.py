"""Keyword-default helpers that create rows for tests (GOV.UK Notify's tests/app/db.py style)."""

from __future__ import annotations

import itertools

from django.utils import timezone

from channel.models import MessageTemplate
from subscribers.models import Delivery, Subscriber, Subscription
from topics.models import Post, Topic

_numbers = itertools.count(1)


def make_topic(**overrides) -> Topic:
    n = next(_numbers)
    values = {"slug": f"topic-{n}", "name_it": f"Argomento {n}", "name_en": f"Topic {n}"}
    return Topic.objects.create(**(values | overrides))


def make_subscriber(*, topics=(), **overrides) -> Subscriber:
    values = {
        "wa_id": f"39333{next(_numbers):07d}",
        "status": Subscriber.Status.ACTIVE,
        "consented_at": timezone.now(),
    }
    subscriber = Subscriber.objects.create(**(values | overrides))
    for topic in topics:
        Subscription.objects.create(subscriber=subscriber, topic=topic)
    return subscriber


def make_post(*, topics=(), **overrides) -> Post:
    values = {"title": "Avviso", "body": "Testo dell'avviso"}
    post = Post.objects.create(**(values | overrides))
    post.topics.set(topics)
    return post


def make_delivery(*, post: Post, subscriber: Subscriber, **overrides) -> Delivery:
    return Delivery.objects.create(post=post, subscriber=subscriber, **overrides)


def make_template(**overrides) -> MessageTemplate:
    """The approved default template for Italian posts: {{1}} title, {{2}} body."""
    values = {
        "name": "avviso_comune",
        "language": "it",
        "category": MessageTemplate.Category.UTILITY,
        "status": MessageTemplate.Status.APPROVED,
        "body_text": "{{1}}: {{2}}",
        "body_parameters": ["title", "body"],
        "is_default": True,
    }
    return MessageTemplate.objects.create(**(values | overrides))


def log_in_as(client, role: str | None, *extra_permissions: str, staff: bool = True):
    """A staff user in one of the press office's groups (made by migration), logged in."""
    from django.contrib.auth.models import Group, Permission, User

    user = User.objects.create_user(
        username=(role or "staff").lower(), password="x", is_staff=staff
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    for codename in extra_permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return user
