"""The Embedder protocol and the registry of backends.

An embedder turns texts into an L2-normalised float32 matrix. ``kind`` tells models that
distinguish them (e5) whether a text is a stored passage or a query-like probe; for
clustering and for comparing notes with theme descriptions, e5's authors recommend the
``query:`` prefix on both sides, so callers pass ``kind="query"`` for symmetric tasks.
Backends are picked by name, never guessed, and a missing optional dependency is an
error that says how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Kind = Literal["query", "passage"]


class EmbedderNotAvailable(RuntimeError):
    """The requested backend cannot run here (missing package or model files)."""


@runtime_checkable
class Embedder(Protocol):
    """What every backend offers."""

    #: Stable identity of model and weights, used as the cache key.
    identity: str

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        """Return an (n, dim) float32 array with unit-length rows."""
        ...


@runtime_checkable
class CorpusFittedEmbedder(Embedder, Protocol):
    """A backend that must see the corpus before it encodes (TF-IDF learns its vocabulary): the
    optional ``fit`` of the protocol. The pipeline calls it once, on the texts it will encode."""

    def fit(self, texts: Sequence[str]) -> "CorpusFittedEmbedder":
        ...


def fits_on_corpus(embedder) -> bool:
    """Whether ``embedder`` declares the optional ``fit`` (CorpusFittedEmbedder)."""
    return isinstance(embedder, CorpusFittedEmbedder)


_REGISTRY: dict[str, Callable[..., Embedder]] = {}


def register(name: str) -> Callable[[Callable[..., Embedder]], Callable[..., Embedder]]:
    """Register a backend factory under ``name``."""

    def wrap(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Unit-length rows as float32; zero rows stay zero."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)
