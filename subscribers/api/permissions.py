from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from topics.models import ApiToken


class HasApiToken(BasePermission):
    message = _("An API key is required.")

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiToken) and request.auth.is_active


def token_may_publish_to(token: ApiToken, topic_ids: set[int]) -> set[int]:
    """The topic ids among these that the token may NOT publish to (empty set = all allowed)."""
    allowed = {topic.pk for topic in token.topics.all()}
    return topic_ids - allowed
