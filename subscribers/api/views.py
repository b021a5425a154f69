"""REST API views: parse and validate, then call subscribers.api.services (see README)."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status as http
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from subscribers.api import services
from subscribers.api.authentication import ApiTokenAuthentication
from subscribers.api.idempotency import (
    IdempotencyConflict,
    external_id_replay,
    idempotency_key,
    idempotency_key_problem,
    idempotency_lookup,
    idempotent_create,
    request_fingerprint,
)
from subscribers.api.parsers import StrictJSONParser
from subscribers.api.permissions import HasApiToken, token_may_publish_to
from subscribers.api.serializers import (
    ErrorOutput,
    PostCreateInput,
    PostListFilter,
    PostOutput,
    PostSummaryOutput,
    TopicOutput,
)
from subscribers.api.throttling import ApiTokenRateThrottle
from subscribers.delivery.publishing import PublishError
from topics.models import ApiToken, Post

PK_MAX = 2**63 - 1  # bigint: larger ids cannot exist (and must not reach PostgreSQL)
POST_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The post's id.")


class Conflict(APIException):
    status_code = http.HTTP_409_CONFLICT


class PayloadTooLarge(APIException):
    status_code = http.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


class PublishingRefused(APIException):
    status_code = http.HTTP_422_UNPROCESSABLE_ENTITY


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    described = {
        400: OpenApiResponse(OpenApiTypes.OBJECT, description="Field-level validation errors."),
        401: OpenApiResponse(ErrorOutput, description="Missing, wrong or revoked API key."),
        403: OpenApiResponse(ErrorOutput, description="The key's scope does not allow this."),
        404: OpenApiResponse(ErrorOutput, description="No such post among this key's posts."),
        406: OpenApiResponse(
            ErrorOutput, description="The Accept header rules out JSON, the only format served."
        ),
        409: OpenApiResponse(ErrorOutput, description="Conflict (see the message)."),
        413: OpenApiResponse(ErrorOutput, description="The request body is too large."),
        415: OpenApiResponse(
            ErrorOutput, description="Send JSON (Content-Type: application/json)."
        ),
        422: OpenApiResponse(
            ErrorOutput,
            description="Publishing was refused (see the message). Over the monthly budget the "
            "body also has estimate_eur, left_eur, budget_eur, spent_eur and committed_eur.",
        ),
        429: OpenApiResponse(ErrorOutput, description="Too many requests: see Retry-After."),
    }
    # Every operation can answer 401 (key), 406 (Accept) and 429 (throttle); the schema lists all
    # a view can return, so clients (and the schema test) meet no undocumented status.
    return {code: described[code] for code in sorted({401, 406, 429, *codes})}


class ApiPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request) -> int:
        # Strict, unlike DRF's default (which silently ignores a bad value).
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # isdigit() alone accepts "6²" and "٣", which int() then refuses (or reads): ASCII only,
        # and short, so int() never meets a 5,000-digit string.
        if not _is_small_whole_number(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {"page_size": [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def get_page_number(self, request, paginator) -> int:
        # DRF would also take "last"; the schema promises an integer, so anything else is a 400.
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not _is_small_whole_number(raw) or int(raw) < 1:
            raise ValidationError({"page": ["A whole number from 1."]})
        return int(raw)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


def _is_small_whole_number(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= 9


class TokenApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [HasApiToken]
    throttle_classes = [ApiTokenRateThrottle]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        # Django raises this from request.body, beyond DRF's exception handler: without the
        # translation a too-large body gets an HTML 400 instead of the API's JSON error.
        if isinstance(exc, RequestDataTooBig):
            exc = PayloadTooLarge()
        return super().handle_exception(exc)

    @property
    def token(self) -> ApiToken:
        return self.request.auth

    def own_post(self, pk: str) -> Post:
        post = None
        if pk.isascii() and pk.isdigit() and len(pk) <= 19 and 0 < int(pk) <= PK_MAX:
            post = (
                Post.objects.filter(pk=pk, created_by_token=self.token)
                .prefetch_related("topics")
                .first()
            )
        if post is None:
            raise NotFound(_("No post with this id was created with this API key."))
        return post

    def detail(self, post: Post) -> dict:
        post = services.post_with_progress(post, with_stats=self.token.can_read_stats)
        return PostOutput(post, context={"request": self.request}).data


class TopicListApi(TokenApi):
    @extend_schema(
        summary="Active topics",
        responses={200: TopicOutput(many=True), **_errors()},
    )
    def get(self, request) -> Response:
        topics = services.topics_for_api(with_counts=self.token.can_read_stats)
        return Response(TopicOutput(topics, many=True).data)


LIST_QUERY_PARAMS = {*PostListFilter().fields, "page", "page_size"}


class PostCollectionApi(TokenApi):
    pagination_class = ApiPagination

    @extend_schema(
        summary="This key's posts, newest first",
        parameters=[PostListFilter],
        responses={200: PostSummaryOutput(many=True), **_errors(400, 404)},
    )
    def get(self, request) -> Response:
        # A mistyped filter (?stauts=sent) must not quietly return everything.
        unknown = sorted(set(request.query_params) - LIST_QUERY_PARAMS)
        if unknown:
            raise ValidationError({name: [_("Unknown query parameter.")] for name in unknown})
        # A plain dict: DRF would treat "?topic=" from a QueryDict as an omitted filter.
        filters = PostListFilter(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        posts = services.posts_for_token(token=self.token, **filters.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(posts, request, view=self)
        summaries = PostSummaryOutput(page, many=True, context={"request": request})
        return paginator.get_paginated_response(summaries.data)

    @extend_schema(
        summary="Create a post (publish it, schedule it, or leave a draft)",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Repeat a request safely: the same key and body give the same "
                "answer and create nothing new; kept at least 7 days.",
            )
        ],
        request=PostCreateInput,
        responses={
            202: OpenApiResponse(PostOutput, description="Accepted; poll `url` for progress."),
            **_errors(400, 403, 409, 413, 415, 422),
        },
    )
    def post(self, request) -> Response:
        data = request.data
        header = request.headers.get("Idempotency-Key")
        key = idempotency_key(header=header, data=data)
        problem = idempotency_key_problem(key) if key else None
        if problem:
            raise ValidationError({"Idempotency-Key" if header else "external_id": [problem]})
        fingerprint = request_fingerprint(data)
        try:
            if key and (
                stored := idempotency_lookup(token=self.token, key=key, fingerprint=fingerprint)
            ):
                return _outcome_response(stored)
            serializer = PostCreateInput(data=data)
            serializer.is_valid(raise_exception=True)
            topics, publish, fields = self.check_scope(serializer.validated_data)
            external_id = fields.get("external_id", "")
            if external_id and (
                stored := external_id_replay(
                    token=self.token, external_id=external_id, fingerprint=fingerprint
                )
            ):
                return _outcome_response(stored)
            try:
                outcome = idempotent_create(
                    token=self.token,
                    key=key,
                    fingerprint=fingerprint,
                    create=lambda: self.create(topics=topics, publish=publish, fields=fields),
                )
            except IntegrityError:
                # A concurrent request with the same external_id (under another
                # Idempotency-Key) committed its post first: answer as its retry would be.
                stored = external_id and external_id_replay(
                    token=self.token, external_id=external_id, fingerprint=fingerprint
                )
                if not stored:
                    raise
                outcome = stored
        except IdempotencyConflict as conflict:
            raise Conflict(str(conflict)) from None
        except PublishError as refused:
            # Over the budget: the figures beside the message (estimate_eur, left_eur, …).
            raise PublishingRefused({"detail": str(refused), **refused.figures}) from None
        return _outcome_response(outcome)

    def check_scope(self, values: dict) -> tuple[list, bool, dict]:
        topics = values.pop("topics")
        forbidden = token_may_publish_to(self.token, {topic.pk for topic in topics})
        if forbidden:
            slugs = ", ".join(f"'{t.slug}'" for t in topics if t.pk in forbidden)
            raise PermissionDenied(_("This API key may not publish to: %s.") % slugs)
        publish = values.pop("publish")
        if publish is None:
            publish = self.token.can_publish
        if publish and not self.token.can_publish:
            raise PermissionDenied(
                _(
                    "This API key may only create drafts for an editor to approve: "
                    "send publish=false or leave it out."
                )
            )
        return topics, publish, values

    def create(self, *, topics: list, publish: bool, fields: dict) -> tuple[int, dict, Post]:
        post = services.post_create_for_token(
            token=self.token, topics=topics, publish=publish, fields=fields
        )
        return http.HTTP_202_ACCEPTED, self.detail(post), post


def _outcome_response(outcome) -> Response:
    # str(): the url is DRF's Hyperlink, a str subclass that WSGI servers may refuse as a header.
    headers = {"Location": str(outcome.body.get("url", ""))}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(outcome.body, status=outcome.status, headers=headers)


class PostDetailApi(TokenApi):
    @extend_schema(
        summary="A post's status and counters",
        parameters=[POST_ID],
        responses={200: PostOutput, **_errors(404)},
    )
    def get(self, request, pk: str) -> Response:
        return Response(self.detail(self.own_post(pk)))


class PostCancelApi(TokenApi):
    @extend_schema(
        summary="Stop a post: nobody else receives it",
        parameters=[POST_ID],
        request=None,
        responses={200: PostOutput, **_errors(403, 404, 409)},
    )
    def post(self, request, pk: str) -> Response:
        post = self.own_post(pk)
        # A draft-only key may withdraw its own draft; once a publisher has scheduled or sent
        # the post, stopping it is a publisher's decision, as in the editors' desk.
        if not self.token.can_publish and post.status != Post.Status.DRAFT:
            raise PermissionDenied(_("This API key may not stop a post that is not a draft."))
        try:
            post = services.post_cancel_for_token(token=self.token, post=post)
        except PublishError as refused:
            raise Conflict(str(refused)) from None
        return Response(self.detail(post))
