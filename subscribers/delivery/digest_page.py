"""The public page of one person's digest, linked from the message when it does not all fit
(a template's parameters, or past WhatsApp's 4,096 characters). Its address is signed
(subscribers.delivery.digest_render.page_token): nobody can guess another person's."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import override
from django.views.decorators.http import require_GET

from subscribers.delivery.digest_render import digest_sections, digest_title, read_page_token
from subscribers.models import Subscriber
from topics.models import Post


@require_GET
def digest_page(request, token: str):
    reference = read_page_token(token)
    if reference is None:
        raise Http404("no such digest")
    digest = Post.objects.filter(pk=reference[0], kind=Post.Kind.DIGEST).first()
    person = (
        Subscriber.objects.filter(pk=reference[1]).exclude(status=Subscriber.Status.ERASED).first()
    )
    if digest is None or person is None:
        raise Http404("no such digest")
    sections = digest_sections(digest, [person.pk]).get(person.pk, [])
    with override(person.language):
        response = render(
            request,
            "subscribers/digest_page.html",
            {
                "title": digest_title(),
                "sections": sections,
                "council": settings.COUNCIL_NAME,
                "day": digest.digest_of,
                "language": person.language,
            },
        )
    # One person's page: not for search engines nor shared caches.
    response["X-Robots-Tag"] = "noindex"
    response["Cache-Control"] = "private, no-store"
    response["Content-Language"] = person.language
    return response
