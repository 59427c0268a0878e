"""Theme labels: c-TF-IDF keywords, representative quotes and working names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.labels import ctfidf_keywords, representative_quotes, suggest_name, theme_labels

# --------------------------------------------------------------------------- keywords


def _keywords(notes: pd.DataFrame, n_keywords: int = 8) -> dict[str, list[str]]:
    return ctfidf_keywords(notes["text"].tolist(), notes["lang"].tolist(), notes["topic"].tolist(),
                           n_keywords=n_keywords)


def test_keywords_are_distinctive_per_theme(topic_notes):
    keywords = _keywords(topic_notes)
    assert set(keywords) == {"coffee", "parking", "medication", "volunteering"}
    assert "kaffe" in keywords["coffee"] and "coffee" in keywords["coffee"]
    assert any(word.startswith("parkering") for word in keywords["parking"])
    assert any(word.startswith("tablett") or word == "tablets" for word in keywords["medication"])
    assert "frivillige" in keywords["volunteering"]
    for theme, words in keywords.items():
        assert len(words) == 8 and len(set(words)) == 8
        others = {w for other, ws in keywords.items() if other != theme for w in ws}
        assert not set(words[:3]) & others, theme


def test_keywords_leave_out_stop_words_and_numbers(topic_notes):
    words = {w for ws in _keywords(topic_notes, n_keywords=50).values() for w in ws}
    assert not words & {"og", "och", "the", "er", "är", "på", "for", "för", "10"}
    assert all(w == w.lower() for w in words)


def test_keywords_do_not_depend_on_row_order(topic_notes):
    shuffled = topic_notes.sample(frac=1.0, random_state=5)
    assert _keywords(shuffled) == _keywords(topic_notes)
    assert _keywords(topic_notes.iloc[::-1]) == _keywords(topic_notes)


def test_keywords_of_nothing_are_empty():
    assert ctfidf_keywords([], [], []) == {}


# --------------------------------------------------------------------------- quotes


@pytest.fixture(scope="module")
def coffee(topic_notes, topic_vectors):
    mask = topic_notes["topic"].eq("coffee").to_numpy()
    return topic_notes[mask].reset_index(drop=True), topic_vectors[mask]


def _quotes(notes: pd.DataFrame, vectors: np.ndarray, **options) -> list[str]:
    return representative_quotes(vectors, notes["text"].tolist(), notes["note_id"].tolist(), **options)


def test_quotes_are_distinct_members(coffee):
    notes, vectors = coffee
    quotes = _quotes(notes, vectors, n_quotes=4)
    assert len(quotes) == 4 and len(set(quotes)) == 4
    assert set(quotes) <= set(notes["note_id"])


def test_first_quote_is_the_most_central_note(coffee):
    notes, vectors = coffee
    centre = vectors.mean(axis=0)
    most_central = notes["note_id"][int(np.argmax(vectors @ centre))]
    assert _quotes(notes, vectors, min_words=1)[0] == most_central


def test_quotes_skip_an_off_topic_member(coffee, topic_notes, topic_vectors):
    notes, vectors = coffee
    stray = topic_notes["note_id"].eq("p08").to_numpy()  # a parking note put in the coffee theme
    mixed_notes = pd.concat([notes, topic_notes[stray]], ignore_index=True)
    mixed_vectors = np.vstack([vectors, topic_vectors[stray]])
    assert "p08" not in _quotes(mixed_notes, mixed_vectors, n_quotes=4)


def test_quotes_never_repeat_a_text(e5):
    texts = ["Kaffen er kald igjen i dag", "kaffen er  KALD igjen i dag", "Kaffen er kald igjen i dag",
             "Vi trenger en ny kaffemaskin", "Kaffen smaker brent"]
    ids = ["a", "b", "c", "d", "e"]
    quotes = representative_quotes(e5.encode(texts), texts, ids, n_quotes=4, diversity=0.0)
    spoken = [" ".join(texts[ids.index(q)].lower().split()) for q in quotes]
    assert len(spoken) == len(set(spoken))
    assert len(quotes) == 3  # only three different texts exist


def test_quotes_do_not_depend_on_row_order(coffee):
    notes, vectors = coffee
    order = np.random.default_rng(1).permutation(len(notes))
    assert _quotes(notes.iloc[order].reset_index(drop=True), vectors[order]) == _quotes(notes, vectors)


def test_quotes_prefer_notes_with_enough_words(e5):
    texts = ["Kaffe!", "Kald kaffe", "Kaffen på pauserommet er kald", "Vi vil ha bedre kaffe på jobben",
             "Kaffemaskinen i kantina er ødelagt igjen"]
    ids = [f"n{i}" for i in range(len(texts))]
    quotes = representative_quotes(e5.encode(texts), texts, ids, n_quotes=3, min_words=3)
    assert sorted(quotes) == ["n2", "n3", "n4"]
    # With too few long notes, short ones are used rather than returning fewer quotes.
    assert len(representative_quotes(e5.encode(texts), texts, ids, n_quotes=5, min_words=3)) == 5


def test_quotes_of_an_empty_theme_are_empty():
    assert representative_quotes(np.zeros((0, 4)), [], []) == []


# --------------------------------------------------------------------------- names and table


def test_suggest_name_joins_the_top_keywords():
    assert suggest_name(["kaffe", "kaffemaskin", "melk", "pause"]) == "kaffe / kaffemaskin / melk"
    assert suggest_name(["kaffe", "melk"], n_words=1) == "kaffe"
    assert suggest_name(["kaffe", "", "melk"]) == "kaffe / melk"
    assert suggest_name([]) == "(no keywords)"


def test_theme_labels_table(topic_notes, topic_vectors):
    theme_ids = topic_notes["topic"].where(topic_notes["topic"] != "medication", "new_01").to_numpy(dtype=object)
    theme_ids[0] = ""  # an unassigned note is left out
    table = theme_labels(topic_notes, topic_vectors, theme_ids, seed_names={"coffee": "Kaffe på jobben"},
                         n_keywords=5, n_quotes=2)
    assert table["theme_id"].tolist() == ["coffee", "new_01", "parking", "volunteering"]
    assert table.set_index("theme_id")["size"].to_dict() == {"coffee": 9, "new_01": 10, "parking": 10,
                                                            "volunteering": 10}
    row = table.set_index("theme_id").loc
    assert row["coffee", "label"] == "Kaffe på jobben"
    assert row["new_01", "label"] == suggest_name(row["new_01", "keywords"])
    for theme, quotes in zip(table["theme_id"], table["quote_ids"]):
        assert len(quotes) == 2 and set(quotes) <= set(topic_notes["note_id"][theme_ids == theme])
    assert "c01" not in row["coffee", "quote_ids"]


def test_words_every_theme_uses_are_no_keywords():
    from analysis.labels import ctfidf_keywords

    texts = ["brukeren vil ha ukeplan", "brukeren trenger kurs", "brukeren ønsker frivillige",
             "brukeren vil flytte", "ukeplan på kjøleskapet", "kurs for nye"]
    themes = ["plan", "kurs", "frivillig", "flytt", "plan", "kurs"]
    keywords = ctfidf_keywords(texts, ["nb"] * len(texts), themes)
    assert all("brukeren" not in words for words in keywords.values())
    assert "ukeplan" in keywords["plan"]


def test_persona_names_never_reach_theme_labels_or_keywords(small_run):
    forms = {form.lower() for persona in small_run.personas for form in
             (persona.name, *persona.name.split(), *persona.aliases)}
    assert forms, "the fixture run has personas"
    for _, theme in small_run.themes.iterrows():
        words = {w.lower() for w in theme["keywords"]} | set(str(theme["label"]).lower().replace("/", " ").split())
        if theme["kind"] == "new":
            assert not words & forms, (theme["theme_id"], words & forms)
        assert not set(w.lower() for w in theme["keywords"]) & forms
