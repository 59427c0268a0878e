"""The large-corpus paths: hashed fitting sample, chunked comparisons, tiered cache merges,
and the synthetic corpus of benchmarks/scale.py. Small n; timings live in the benchmark."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import personas as personas_module
from analysis.embed import cache as cache_module
from analysis.embed.cache import CachedEmbedder
from analysis.load import load_notes
from analysis.personas import load_personas, similarity_scores
from analysis.schema import STATUS_ASSIGNED, STATUS_NEW_THEME, STATUS_UNASSIGNED
from analysis.themes import ThemeModel, fit_sample, load_seed_themes, nearest_rows, seed_prototypes

ROOT = Path(__file__).resolve().parents[1]
SEED_FILE = ROOT / "tests" / "fixtures" / "themes" / "seed_themes.yml"
E2E = ROOT / "tests" / "fixtures" / "e2e"
STATUSES = {STATUS_ASSIGNED, STATUS_NEW_THEME, STATUS_UNASSIGNED}


@pytest.fixture(scope="module")
def seeds(e5):
    seeds = load_seed_themes(SEED_FILE)
    return seed_prototypes(seeds, e5), [s.id for s in seeds]


def _shuffled(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


# --------------------------------------------------------------------------- fitting sample


def test_fit_sample_depends_on_the_notes_not_their_order(topic_vectors, topic_notes):
    groups = topic_notes[["lang"]]
    sample = fit_sample(topic_vectors, groups, 15)
    order = _shuffled(len(topic_vectors))
    again = fit_sample(topic_vectors[order], groups.iloc[order].reset_index(drop=True), 15)
    assert len(sample) == 15 and len(set(sample)) == 15
    assert np.array_equal(topic_vectors[sample], topic_vectors[order][again])
    assert not np.array_equal(fit_sample(topic_vectors, groups, 15, random_state=1), sample)


def test_nearest_rows_in_chunks_equals_one_product(topic_vectors):
    queries, references = topic_vectors[:31], topic_vectors[20:]
    expected = (queries @ references.T).argmax(axis=1)
    assert np.array_equal(nearest_rows(queries, references, chunk=4), expected)


# --------------------------------------------------------------------------- ThemeModel above max_fit_notes


@pytest.mark.parametrize("guided", [False, True])
def test_large_path_gives_every_note_a_consistent_status(topic_vectors, topic_notes, seeds, guided):
    seed_vectors, seed_ids = seeds if guided else (None, None)
    model = ThemeModel(centre_by=("lang",), max_fit_notes=24, seed_threshold=0.3).fit(
        topic_vectors, groups=topic_notes[["lang"]], seed_vectors=seed_vectors, seed_ids=seed_ids)
    n = len(topic_vectors)
    assert len(model.fit_sample_) == 24
    for name in ("labels_", "status_", "reason_", "scores_", "margins_", "secondary_"):
        assert len(getattr(model, name)) == n, name
    assert set(model.status_) <= STATUSES
    themed = model.labels_ != ""
    assert np.array_equal(themed, model.status_ != STATUS_UNASSIGNED)
    assert all(model.reason_[~themed])  # every unassigned note says why
    kinds = dict(zip(model.themes_["theme_id"], model.themes_["kind"]))
    for label, status in zip(model.labels_[themed], model.status_[themed]):
        assert status == (STATUS_ASSIGNED if kinds[label] == "seed" else STATUS_NEW_THEME)
    if guided:
        assert (model.status_ == STATUS_ASSIGNED).sum() > n // 2


@pytest.mark.parametrize("guided", [False, True])
def test_large_path_keeps_the_fit_of_the_sample(topic_vectors, topic_notes, seeds, guided):
    """Extending to all notes re-applies the fit's own rule: the sample's notes keep their fit."""
    seed_vectors, seed_ids = seeds if guided else (None, None)
    params = {"centre_by": ("lang",), "seed_threshold": 0.3}
    large = ThemeModel(max_fit_notes=24, **params).fit(topic_vectors, groups=topic_notes[["lang"]],
                                                      seed_vectors=seed_vectors, seed_ids=seed_ids)
    sample = large.fit_sample_
    small = ThemeModel(max_fit_notes=None, **params).fit(
        topic_vectors[sample], groups=topic_notes[["lang"]].iloc[sample], seed_vectors=seed_vectors, seed_ids=seed_ids)
    assert list(small.labels_) == list(large.labels_[sample])
    assert list(small.status_) == list(large.status_[sample])
    assert list(small.reason_) == list(large.reason_[sample])
    assert np.allclose(small.prototypes_, large.prototypes_)


def test_large_path_is_independent_of_row_order(topic_vectors, topic_notes, seeds):
    seed_vectors, seed_ids = seeds
    params = {"centre_by": ("lang",), "max_fit_notes": 24, "seed_threshold": 0.3}
    first = ThemeModel(**params).fit(topic_vectors, groups=topic_notes[["lang"]],
                                     seed_vectors=seed_vectors, seed_ids=seed_ids)
    order = _shuffled(len(topic_vectors))
    second = ThemeModel(**params).fit(topic_vectors[order], groups=topic_notes[["lang"]].iloc[order],
                                      seed_vectors=seed_vectors, seed_ids=seed_ids)
    assert list(second.labels_) == list(first.labels_[order])
    assert list(second.status_) == list(first.status_[order])
    assert list(second.reason_) == list(first.reason_[order])
    assert np.array_equal(second.scores_, first.scores_[order])


def test_at_or_below_max_fit_notes_every_note_is_fitted(topic_vectors, topic_notes):
    capped = ThemeModel(centre_by=("lang",), max_fit_notes=len(topic_vectors)).fit(
        topic_vectors, groups=topic_notes[["lang"]])
    unlimited = ThemeModel(centre_by=("lang",), max_fit_notes=None).fit(topic_vectors, groups=topic_notes[["lang"]])
    assert np.array_equal(capped.fit_sample_, np.arange(len(topic_vectors)))
    assert list(capped.labels_) == list(unlimited.labels_)


def test_a_saved_large_path_model_predicts_the_same(tmp_path, topic_vectors, topic_notes):
    model = ThemeModel(centre_by=("lang",), max_fit_notes=24).fit(topic_vectors, groups=topic_notes[["lang"]])
    model.save(tmp_path / "model")
    loaded = ThemeModel.load(tmp_path / "model")
    assert loaded.max_fit_notes == 24
    groups = topic_notes[["lang"]]
    assert np.array_equal(loaded.transform(topic_vectors, groups), model.transform(topic_vectors, groups))


def test_pipeline_above_max_fit_notes_keeps_every_note(tmp_path, e5):
    from analysis import pipeline
    from analysis.config import load_config

    config = load_config(ROOT / "analysis.toml", paths={"notes": [str(E2E)], "overrides": ""},
                         themes={"max_fit_notes": 20})
    result = pipeline.run(config, embedder=e5, progress=False)
    notes = load_notes([E2E], root=ROOT)
    assert len(result.assignments) == len(notes)
    assert len(result.model.fit_sample_) == 20 < int((notes["status"] == "ok").sum())
    analysed = result.assignments[result.assignments["status"] != "empty"]
    assert set(analysed["status"]) <= STATUSES
    assert analysed.loc[analysed["status"] == STATUS_UNASSIGNED, "status_reason"].str.len().gt(0).all()


# --------------------------------------------------------------------------- personas


@pytest.fixture(scope="module")
def e2e_notes():
    return load_notes([E2E], root=ROOT)


@pytest.fixture(scope="module")
def raw_personas():
    return load_personas(ROOT / "data" / "raw" / "personas.yml")


def test_persona_similarity_in_chunks_equals_one_block(monkeypatch, e2e_notes, raw_personas, e5):
    embedder = CachedEmbedder(e5, None, progress=False)
    whole = similarity_scores(e2e_notes, raw_personas, embedder)
    monkeypatch.setattr(personas_module, "SIMILARITY_CHUNK", 7)
    chunked = similarity_scores(e2e_notes, raw_personas, embedder)
    assert chunked["best_persona"].tolist() == whole["best_persona"].tolist()
    assert np.allclose(chunked["score"].to_numpy(float), whole["score"].to_numpy(float), atol=1e-12, equal_nan=True)


def test_persona_exemplars_are_capped_by_hash_not_row_order(monkeypatch, e2e_notes, raw_personas, e5):
    monkeypatch.setattr(personas_module, "MAX_EXEMPLAR_NOTES", 2)
    embedder = CachedEmbedder(e5, None, progress=False)
    first = similarity_scores(e2e_notes, raw_personas, embedder)
    order = _shuffled(len(e2e_notes))
    shuffled = e2e_notes.iloc[order].reset_index(drop=True)
    second = similarity_scores(shuffled, raw_personas, embedder)
    first.index, second.index = e2e_notes["note_id"], shuffled["note_id"]
    second = second.loc[first.index]
    assert second["best_persona"].tolist() == first["best_persona"].tolist()
    assert np.allclose(second["score"].to_numpy(float), first["score"].to_numpy(float), atol=1e-12, equal_nan=True)
    links = personas_module.explicit_links(e2e_notes, raw_personas)
    for persona in raw_personas:
        texts, rows = personas_module._persona_exemplars(persona, links, personas_module._note_texts(e2e_notes))
        assert sum(r >= 0 for r in rows) <= 2


# --------------------------------------------------------------------------- embedding cache


class HashEmbedder:
    """A fake backend for cache plumbing: a vector from a hash of the text."""

    identity = "hash:v1"

    def encode(self, texts, kind="query"):
        seeds = [int(hashlib.sha256(f"{kind}|{t}".encode()).hexdigest()[:8], 16) for t in texts]
        rows = [np.random.default_rng(seed).normal(size=4) for seed in seeds]
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), 4)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_cache_merges_in_tiers_so_each_vector_is_rewritten_log_times(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_MERGE_AFTER", 4)
    written = []
    real_savez = np.savez

    def counting_savez(file, **arrays):
        written.append(len(arrays["keys"]))
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", counting_savez)
    texts = [f"note {i}" for i in range(512)]
    cached = CachedEmbedder(HashEmbedder(), tmp_path, batch_size=2, progress=False)
    vectors = cached.encode(texts)  # 256 batches
    rewritten = sum(written) - len(texts)
    # Merging everything at each merge rewrites ~n²/(2·4·2) = 16,000 rows here; tiers stay near n·log2(n/8).
    assert rewritten <= len(texts) * (np.log2(len(texts) / 8) + 1)
    shards = sorted(tmp_path.rglob("shard-*.npz"))
    assert len(shards) <= np.log2(len(texts)) + 4
    fresh = CachedEmbedder(HashEmbedder(), tmp_path, progress=False)
    assert np.array_equal(fresh.encode(texts), vectors) and fresh.last_stats["embedded"] == 0


# --------------------------------------------------------------------------- the synthetic corpus


@pytest.fixture(scope="module")
def scale_benchmark():
    spec = importlib.util.spec_from_file_location("scale_benchmark", ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_synthetic_corpus_loads_with_every_unit_and_is_mostly_unique(tmp_path, scale_benchmark):
    info = scale_benchmark.make_corpus(600, tmp_path / "corpus", seed=1)
    notes = load_notes([tmp_path / "corpus"], root=tmp_path)
    assert info.n_units == 600 == len(notes)
    assert (notes["status"] == "ok").all()
    assert (notes["source_type"] != "note").sum() == info.n_document_units > 0
    table_words = notes.loc[notes["source_type"] == "note", "text"].str.split().str.len()
    assert table_words.between(3, 25).all() and 8 <= table_words.median() <= 16
    assert info.n_unique_texts / info.n_units >= 0.9
    assert set(notes["lang"]) <= {"nb", "nn", "sv", "da", "en"}
    again = scale_benchmark.make_corpus(600, tmp_path / "again", seed=1)
    assert (tmp_path / "again" / "notes-000.csv").read_bytes() == (tmp_path / "corpus" / "notes-000.csv").read_bytes()
    assert again.words == info.words


def test_step_recorder_counts_nested_calls_for_the_outer_step(scale_benchmark):
    recorder = scale_benchmark.StepRecorder()

    class Work:
        @staticmethod
        def inner():
            return sum(range(1000))

        @staticmethod
        def outer():
            return Work.inner() + Work.inner()

    recorder.wrap(Work, "inner", "embed")
    recorder.wrap(Work, "outer", "personas")
    Work.outer()
    Work.inner()
    assert set(recorder.wall) == {"embed", "personas"}
    assert recorder.peak_mb["personas"] > 0
