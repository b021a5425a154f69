"""The editors' desk for posts. It lives here, not in topics, because every figure on it
(reach, progress, results) is about the audience, which topics must not know about."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from subscribers.selectors import reach_count
from topics.models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "topic_list", "reach_now", "send_at", "created_at"]
    list_filter = ["status", "topics", "is_urgent"]
    search_fields = ["title", "body"]
    date_hierarchy = "created_at"
    filter_horizontal = ["topics"]
    readonly_fields = ["status", "status_note", "reach_now", "author", "created_by_token"]
    fieldsets = [
        (None, {"fields": ["title", "body", "link", "topics", "is_urgent"]}),
        (_("Media"), {"fields": ["media_kind", "media_url", "media_file"]}),
        (_("When"), {"fields": ["send_at", "expires_at"]}),
        (_("State"), {"fields": readonly_fields}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description=_("topics"))
    def topic_list(self, post: Post) -> str:
        return ", ".join(str(topic) for topic in post.topics.all())

    @admin.display(description=_("people it would reach now"))
    def reach_now(self, post: Post) -> int | str:
        if post.pk is None:
            return _("saved posts show their reach")
        return reach_count(topic.pk for topic in post.topics.all())

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)
