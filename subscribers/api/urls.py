from __future__ import annotations

from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from subscribers.api import views

app_name = "api"

urlpatterns = [
    path("v1/topics/", views.TopicListApi.as_view(), name="topic-list"),
    path("v1/posts/", views.PostCollectionApi.as_view(), name="post-list"),
    # <str:pk>, not <int:pk>: a bad id gets the API's JSON 404, not Django's HTML one.
    path("v1/posts/<str:pk>/", views.PostDetailApi.as_view(), name="post-detail"),
    path("v1/posts/<str:pk>/cancel/", views.PostCancelApi.as_view(), name="post-cancel"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]
