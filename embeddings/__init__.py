"""Embeddings of resolved incidents and similar-incident search."""
