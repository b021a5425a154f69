"""The compose form of a post: Meta's limits checked on save, help texts an editor understands.

The checks themselves are in subscribers.desk.compose; the live character count is
static/subscribers/post_compose.js."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from subscribers.desk import compose
from topics.models import Post


class HttpsURLField(forms.URLField):
    """An address typed without a scheme is taken as https://, what Meta fetches media over."""

    def __init__(self, **kwargs):
        super().__init__(assume_scheme="https", **kwargs)


class PostForm(forms.ModelForm):
    """The compose form: Meta's limits are checked here, with errors an editor can act on."""

    class Meta:
        model = Post
        field_classes = {"link": HttpsURLField, "media_url": HttpsURLField}
        fields = [
            "title",
            "body",
            "title_en",
            "body_en",
            "link",
            "topics",
            "is_urgent",
            "delivery",
            "media_kind",
            "media_url",
            "media_file",
            "send_at",
            "expires_at",
        ]
        help_texts = {
            "title": _("Shown in bold at the top of the message; the template uses it too."),
            "body": _(
                "What citizens read: at most 4,096 characters. People who have not written to "
                "the council in the last 24 hours get the approved template instead, where the "
                "text is on one line and cut after 1,024 characters."
            ),
            "title_en": _("Optional: people who chose English read this title and text instead."),
            "link": _("Optional: a web page with the details, added at the end of the message."),
            "topics": _(
                "Only people who follow at least one of these topics receive the post, each "
                "person once."
            ),
            "delivery": _(
                "As its topics say: on a topic marked “in the weekly digest”, people who chose "
                "the digest get it on the digest's day, the others at once. Urgent posts always "
                "go out at once."
            ),
            "media_kind": _("Left empty, it is recognised from the file or the link."),
            "media_url": _(
                "The public address (https://…) of an image, video or document. Use either a "
                "link or a file, not both."
            ),
            "media_file": _(
                "Images: JPEG or PNG up to 5 MB. Videos: MP4 (H.264 video, AAC audio) up to "
                "16 MB. Documents: PDF, Word, Excel, PowerPoint or text up to 100 MB."
            ),
            "send_at": _(
                "To send later: fill in, save, then choose “Schedule”. Saving alone sends nothing."
            ),
            "expires_at": _(
                "After this moment nobody else receives the post (e.g. a pharmacy rota). Must "
                "be after “send at”."
            ),
        }
        widgets = {
            "body": forms.Textarea(
                attrs={
                    "rows": 12,
                    "class": "vLargeTextField",
                    "data-counter": "post-body",
                    "data-max": compose.LIMITS["body"],
                    "data-short-max": compose.LIMITS["template_parameter"],
                    "data-text-count": _("characters"),
                    "data-text-over": _("too long: remove %(n)s characters"),
                    "data-text-template-cut": _(
                        "beyond 1,024 the template version (people outside the 24-hour "
                        "window) is cut"
                    ),
                }
            )
        }

    def clean_body(self) -> str:
        return compose.normalise_body(self.cleaned_data.get("body") or "")

    def _check_not_past(self, field: str) -> None:
        moment = self.cleaned_data.get(field)
        if field in self.changed_data and moment and moment <= timezone.now():
            self.add_error(field, _("This moment has already passed."))

    def clean(self) -> dict:
        cleaned = super().clean()
        self._check_not_past("send_at")
        self._check_not_past("expires_at")
        if self.instance.status == Post.Status.SCHEDULED and not cleaned.get("send_at"):
            self.add_error(
                "send_at",
                _("A scheduled post needs its time. To stop it, use “Unschedule” instead."),
            )
        if cleaned.get("is_urgent") and cleaned.get("delivery") == Post.Delivery.DIGEST:
            self.add_error(
                "delivery",
                _("An urgent post goes out at once: it cannot wait for the digest."),
            )
        kind = cleaned.get("media_kind") or ""
        upload, url = cleaned.get("media_file"), cleaned.get("media_url") or ""
        if upload and url:
            self.add_error("media_url", _("Give either a link or a file, not both."))
            return cleaned
        try:
            if isinstance(upload, UploadedFile):
                cleaned["media_kind"] = compose.media_file_kind(upload, kind)
            elif url:
                cleaned["media_kind"] = compose.media_url_kind(url, kind)
            elif upload:  # the file saved before: its name tells its kind
                cleaned["media_kind"] = compose.media_url_kind(upload.name, kind, saved_file=True)
        except ValidationError as problem:
            self.add_error("media_file" if upload else "media_url", problem)
        return cleaned
