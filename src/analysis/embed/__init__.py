"""Embedding backends behind one small protocol, chosen by name from a registry.

``base`` holds the protocol and the registry; each backend module registers itself when
imported, and ``get_embedder`` imports the built-in ones the first time it is asked (here, above
them, so that no backend and the registry import each other).
"""

from analysis.embed.base import _REGISTRY, Embedder, EmbedderNotAvailable, register

__all__ = ["Embedder", "EmbedderNotAvailable", "available_backends", "get_embedder", "register"]


def available_backends() -> list[str]:
    _load_builtin_backends()
    return sorted(_REGISTRY)


def get_embedder(name: str, model: str | None = None, **options) -> Embedder:
    """Build the backend registered as ``name`` (``e5``, ``sentence-transformers``, ``tfidf``)."""
    _load_builtin_backends()
    if name not in _REGISTRY:
        raise EmbedderNotAvailable(
            f"Unknown embedding backend {name!r}. Choose one of {sorted(_REGISTRY)} "
            "in [embedding] backend of analysis.toml."
        )
    return _REGISTRY[name](model=model, **options)


def _load_builtin_backends() -> None:
    # Importing the modules registers them; they import their heavy libraries lazily.
    from analysis.embed import e5, e5_fast, st, tfidf  # noqa: F401
