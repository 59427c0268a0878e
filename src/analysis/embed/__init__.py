"""Embedding backends behind one small protocol, chosen by name from a registry."""

from analysis.embed.base import Embedder, EmbedderNotAvailable, get_embedder, register

__all__ = ["Embedder", "EmbedderNotAvailable", "get_embedder", "register"]
