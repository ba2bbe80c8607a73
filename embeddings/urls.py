"""Mounted at `api/v1/embeddings` (no trailing slash) by kuberca/urls.py."""

from django.urls import re_path

from embeddings import views

urlpatterns = [
    re_path(r"^/?$", views.EmbeddingCreateView.as_view(), name="embeddings-create"),
    re_path(
        r"^/search/?$", views.EmbeddingSearchView.as_view(), name="embeddings-search"
    ),
]
