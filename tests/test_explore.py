"""explore: note-level descriptions of the committed corpus, duplicates, the loader's findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import explore
from analysis.load import load_notes
from analysis.schema import STATUS_OK

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
EDGE = ROOT / "tests" / "fixtures" / "edge"


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return load_notes([RAW], root=ROOT)


def _by_id(notes: pd.DataFrame, ids) -> pd.DataFrame:
    return notes.set_index("note_id").loc[list(ids)].reset_index()


# --------------------------------------------------------------------------- counts


def test_counts_by_one_column_add_up_and_show_blanks(corpus):
    sites = explore.counts_by(corpus, "site")
    assert sites["notes"].sum() == len(corpus)
    assert set(sites.index) == {"baerum", "mariestad"}
    assert sites["notes"].is_monotonic_decreasing
    workshops = explore.counts_by(corpus, "workshop")
    # Document units belong to no workshop: they are counted, as "(blank)".
    assert workshops.loc[explore.BLANK, "notes"] == int(corpus["source_type"].ne("note").sum())


def test_counts_by_two_columns_has_totals(corpus):
    table = explore.counts_by(corpus, "source_type", by="site")
    assert table.loc["total", "total"] == len(corpus)
    assert table.loc["safari", "mariestad"] == 0


def test_counts_by_names_a_missing_column(corpus):
    with pytest.raises(KeyError, match="no column.*'room'"):
        explore.counts_by(corpus, "room")


# --------------------------------------------------------------------------- lengths


def test_length_summary_covers_every_note_with_text(corpus):
    summary = explore.length_summary(corpus, by="source_type")
    assert summary["notes"].sum() == int(corpus["status"].eq(STATUS_OK).sum())
    assert (summary["words_p10"] <= summary["words_median"]).all()
    assert (summary["words_median"] <= summary["words_p90"]).all()
    # Sticky notes are the short ones.
    assert summary.loc["note", "words_median"] < summary.loc["interview", "words_median"]


def test_note_lengths_count_words_and_characters(corpus):
    lengths = explore.note_lengths(_by_id(corpus, ["B1-013"]))  # «Faste folk!!»
    assert lengths.loc[0, "words"] == 2 and lengths.loc[0, "chars"] == len("Faste folk!!")


# --------------------------------------------------------------------------- duplicates


def test_exact_duplicates_ignore_case_and_spacing(corpus):
    sample = _by_id(corpus, ["B1-013", "B1-019", "M-001"])
    copy = sample.iloc[[0]].assign(note_id="X-1", text="  faste   FOLK!! ", source_file="copy.csv")
    duplicates = explore.exact_duplicates(pd.concat([sample, copy], ignore_index=True))
    assert duplicates["note_id"].tolist() == ["B1-013", "X-1"]
    assert duplicates["duplicate_group"].tolist() == [1, 1]


def test_the_corpus_has_no_exact_duplicates_and_empty_notes_are_not_duplicates(corpus):
    assert explore.exact_duplicates(corpus).empty
    assert corpus["status"].ne(STATUS_OK).sum() >= 2  # several empty notes, none reported


@pytest.fixture(scope="module")
def pairs_sample(corpus, e5):
    ids = ["B2-073", "B3-131", "B2-020", "M-099", "B1-056", "M-072", "B1-048"]
    notes = _by_id(corpus, ids)
    return notes, e5.encode(notes["text"].tolist(), kind="query")


def test_near_duplicates_find_paraphrases_across_tables_and_languages(pairs_sample):
    notes, vectors = pairs_sample
    pairs = explore.near_duplicates(notes, vectors, threshold=0.95, context=("site",))
    found = set(zip(pairs["note_id_a"], pairs["note_id_b"]))
    # «Faggruppe psykisk helse og rus» / «Faggruppe for rus og psykisk helse»; «Takk for i dag!» / «Tack för idag!»
    assert {("B2-073", "B3-131"), ("B2-020", "M-099")} <= found
    assert not any("B1-056" in pair or "M-072" in pair for pair in found)
    assert pairs["similarity"].is_monotonic_decreasing
    crossing = pairs[pairs["note_id_b"].eq("M-099")]
    assert crossing[["site_a", "site_b"]].iloc[0].tolist() == ["baerum", "mariestad"]
    assert not pairs["identical_text"].any()


def test_near_duplicates_threshold_and_checks(pairs_sample):
    notes, vectors = pairs_sample
    assert explore.near_duplicates(notes, vectors, threshold=1.0).empty or \
        explore.near_duplicates(notes, vectors, threshold=1.0)["identical_text"].all()
    with pytest.raises(ValueError, match="one vector per note"):
        explore.near_duplicates(notes, vectors[:3])
    with pytest.raises(ValueError, match="threshold"):
        explore.near_duplicates(notes, vectors, threshold=0)


def test_pair_texts_show_both_notes(pairs_sample):
    notes, vectors = pairs_sample
    shown = explore.pair_texts(explore.near_duplicates(notes, vectors, threshold=0.95), notes)
    row = shown[shown["note_id_a"].eq("B2-020")].iloc[0]
    assert row["text_a"] == "Takk for i dag!" and row["text_b"] == "Tack för idag!"


# --------------------------------------------------------------------------- privacy guard


@pytest.mark.parametrize("text", ["Ring meg: 0501-123456 (kveld)", "Mobil +47 912 34 567", "tlf 98765432",
                                  "skriv til anna.karlsson@example.se"])
def test_contact_details_are_recognised(text):
    assert explore.has_contact_details(text)


@pytest.mark.parametrize("text", ["Idéverkstad LSS 2018-03-14", "Workshop 2 – 2023-04-25", "kl 9 eller 10",
                                  "3-veis kommunikasjon", "Seniortreff 2 ganger i uka", "", None])
def test_ordinary_numbers_are_not_contact_details(text):
    assert not explore.has_contact_details(text)


def test_withholding_replaces_only_notes_with_contact_details(corpus):
    shown = explore.withhold_contact_details(corpus)
    withheld = shown["text"].eq(explore.WITHHELD)
    assert withheld.sum() == corpus["text"].map(explore.has_contact_details).sum() >= 3
    assert not shown.loc[withheld, "text"].str.contains("@").any()
    assert shown.loc[~withheld, "text"].equals(corpus.loc[~withheld, "text"])
    assert corpus["text"].str.contains("@").any()  # the input itself is left as it was


# --------------------------------------------------------------------------- the loader's findings


def test_status_table_adds_up_with_reasons(corpus):
    table = explore.status_table(corpus)
    assert table["notes"].sum() == len(corpus)
    assert table.set_index("status").loc["empty", "status_reason"] == "text is empty"


def test_flag_table_lists_every_flag_and_counts_raised_ones():
    notes = load_notes([EDGE / "duplicate_ids.csv"])
    table = explore.flag_table(notes).set_index("flag")
    assert set(explore.FLAG_MEANINGS) <= set(table.index)
    assert table.loc["duplicate_id", "notes"] == 1
    assert table.loc["long_text", "notes"] == 0


def test_language_table_explains_every_source(corpus):
    table = explore.language_table(corpus)
    assert table["total"].sum() == len(corpus)
    assert (table["meaning"] != "").all()
    assert table.loc["column", "sv"] > 0


def test_file_table_reports_encodings_and_delimiters(corpus):
    table = explore.file_table(corpus)
    assert table["units"].sum() == len(corpus)
    mariestad = table.loc["data/raw/mariestad/workshop_notes.csv"]
    assert mariestad["encoding"] == "cp1252" and mariestad["delimiter"] == "';'"
    assert table.loc["data/raw/baerum/workshop2_notes.csv", "encoding"] == "utf-8-sig"


def test_skipped_files_say_why(corpus):
    skipped = explore.skipped_files(corpus).set_index("file")["reason"]
    assert skipped["data/raw/README.md"] == "README"
    assert "YAML" in skipped["data/raw/personas.yml"]


# --------------------------------------------------------------------------- projection


def test_pca_projection_is_deterministic(topic_vectors):
    first, method = explore.project_2d(topic_vectors, method="pca", random_state=0)
    second, _ = explore.project_2d(topic_vectors, method="pca", random_state=0)
    assert method == "pca" and first.shape == (len(topic_vectors), 2)
    np.testing.assert_array_equal(first, second)


def test_asking_for_umap_without_it_is_an_error_not_a_fallback(topic_vectors, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    with pytest.raises(ImportError, match="umap-learn"):
        explore.project_2d(topic_vectors, method="umap")
    assert explore.project_2d(topic_vectors, method="auto")[1] == "pca"
    with pytest.raises(ValueError, match="unknown projection"):
        explore.project_2d(topic_vectors, method="tsne")


# --------------------------------------------------------------------------- a run's themes


def test_theme_overview_and_centred_vectors_of_a_run(small_run):
    overview = explore.theme_overview(small_run.themes, small_run.assignments, n_quotes=1)
    assert overview["theme_id"].tolist() == small_run.themes["theme_id"].tolist()
    with_quotes = overview[overview["size"] > 0]
    assert with_quotes["quotes"].str.match(r"«.+» \(\S+\)").all()
    centred = explore.centred_vectors(small_run)
    assert centred.shape == small_run.vectors.shape
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, atol=1e-6)
    assert len(explore.centre_groups(small_run)) == len(small_run.vectors)


def test_persona_overview(small_run):
    table = explore.persona_overview(small_run.personas)
    assert table["persona_id"].tolist() == ["roald", "edel", "knut", "elias"]
    assert table.set_index("persona_id").loc["elias", "site"] == "mariestad"


# --------------------------------------------------------------------------- what an analyst's overrides changed


def _themes(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["theme_id", "label", "kind", "size"])


def _assignments(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["note_id", "theme_id", "status", "status_reason", "text"])


def test_overrides_table_lists_each_entry_with_its_state():
    report = [{"operation": "exclude", "entry": {"note": "M-033", "reason": "same as M-032"}, "state": "applied",
               "detail": "note M-033 excluded"},
              {"operation": "pin", "entry": {"note": "X-1", "theme": "fixed_team"}, "state": "stale",
               "detail": "no analysable note has id X-1"}]
    table = explore.overrides_table(report)
    assert table.columns.tolist() == ["operation", "entry", "state", "detail"]
    assert table["entry"].tolist() == ["note: M-033, reason: same as M-032", "note: X-1, theme: fixed_team"]
    assert table["state"].tolist() == ["applied", "stale"]
    assert explore.overrides_table([]).columns.tolist() == table.columns.tolist()


def test_theme_size_changes_keep_both_runs_themes_in_order():
    before = _themes([("a", "A", "seed", 5), ("b", "B", "seed", 3), ("new_01", "x / y", "new", 4)])
    after = _themes([("a", "A", "seed", 8), ("new_01", "Named", "new", 3), ("ab", "A and B", "seed", 0)])
    table = explore.theme_size_changes(before, after).set_index("theme_id")
    assert table.index.tolist() == ["a", "b", "new_01", "ab"]
    assert table.loc["b", ["label_after", "size_after", "change"]].tolist() == ["", 0, -3]
    assert table.loc["new_01", ["label_before", "label_after", "change"]].tolist() == ["x / y", "Named", -1]
    assert table.loc["ab", ["label_before", "size_before"]].tolist() == ["", 0]
    assert table["change"].sum() == after["size"].sum() - before["size"].sum()
    with pytest.raises(KeyError, match="after themes table.*'size'"):
        explore.theme_size_changes(before, after.drop(columns="size"))


def test_moved_notes_lists_changed_theme_or_status_and_withholds_contact_details():
    before = _assignments([("n1", "a", "assigned", "", "stays"), ("n2", "b", "assigned", "", "merged"),
                           ("n3", "new_01", "new_theme", "", "ring 0501-123456"), ("n4", "", "empty", "", "")])
    after = _assignments([("n4", "", "empty", "", ""), ("n3", "", "excluded", "excluded by the analyst", "ring 0501-123456"),
                          ("n2", "a", "assigned", "", "merged"), ("n1", "a", "assigned", "", "stays")])
    moved = explore.moved_notes(before, after)
    assert moved["note_id"].tolist() == ["n2", "n3"]
    assert moved.loc[1, ["theme_before", "theme_after", "status_after"]].tolist() == ["new_01", "", "excluded"]
    assert moved.loc[1, "text"] == explore.WITHHELD
    assert moved.loc[1, "status_reason"] == "excluded by the analyst"
    with pytest.raises(ValueError, match="same notes"):
        explore.moved_notes(before, after.iloc[1:])


def test_overrides_of_a_real_run_show_up_in_the_three_views(small_run, e5, tmp_path):
    from analysis import pipeline

    themed = small_run.assignments[small_run.assignments["theme_id"].ne("")]
    excluded, pinned = themed["note_id"].iloc[0], themed["note_id"].iloc[1]
    target = next(t for t in small_run.themes["theme_id"] if t != themed["theme_id"].iloc[1])
    renamed = small_run.themes["theme_id"].iloc[-1]
    overrides = tmp_path / "overrides.yml"
    overrides.write_text(yaml.safe_dump({
        "exclude": [{"note": excluded, "reason": "test"}], "pin": [{"note": pinned, "theme": target}],
        "rename": [{"theme": renamed, "name": "Renamed"}, {"theme": "no_such_theme", "name": "Gone"}]}),
        encoding="utf-8")
    after = pipeline.run(small_run.config, embedder=e5, progress=False, overrides_path=overrides)

    report = explore.overrides_table(after.overrides_report)
    assert report["state"].tolist() == ["applied", "applied", "applied", "stale"]
    moved = explore.moved_notes(small_run.assignments, after.assignments).set_index("note_id")
    assert sorted(moved.index) == sorted([excluded, pinned])
    assert moved.loc[excluded, "status_after"] == "excluded" and moved.loc[pinned, "theme_after"] == target
    sizes = explore.theme_size_changes(small_run.themes, after.themes).set_index("theme_id")
    assert sizes["change"].sum() == -1  # the excluded note left its theme; the pinned one moved
    assert sizes.loc[renamed, "label_after"] == "Renamed"
