"""Lexical evidence for seed themes: character and stemmed-word TF-IDF cosines to each seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.lexical import (LEXICAL_VIEWS, char_similarity, seed_lexical_scores, seed_sentences, seed_tokens,
                              word_similarity)
from analysis.text import tokenize
from analysis.themes import SeedTheme, load_seed_themes

SEED_FILE = Path(__file__).parent / "fixtures" / "themes" / "seed_themes.yml"


@pytest.fixture(scope="module")
def seeds():
    return load_seed_themes(SEED_FILE)


@pytest.fixture(scope="module")
def views(topic_notes, seeds):
    return seed_lexical_scores(topic_notes["text"].tolist(), topic_notes["lang"].tolist(), seeds)


def test_one_cosine_per_note_and_seed_for_each_view(views, topic_notes, seeds):
    assert len(views) == len(LEXICAL_VIEWS) == 2
    for view in views:
        assert view.shape == (len(topic_notes), len(seeds))
        assert np.isfinite(view).all() and (view >= 0).all() and (view <= 1 + 1e-9).all()


@pytest.mark.parametrize("view_index", [0, 1])
def test_each_view_points_most_notes_to_their_own_topic(views, topic_notes, seeds, view_index):
    # Four topics: chance is 0.25. The views are evidence, not classifiers, so the bar is modest.
    ids = np.array([s.id for s in seeds])
    view = views[view_index]
    covered = view.max(axis=1) > 0
    right = ids[view.argmax(axis=1)] == topic_notes["topic"].to_numpy()
    assert covered.mean() >= 0.5
    assert right[covered].mean() >= 0.6


def test_stems_match_inflections_across_nordic_languages():
    seed = SeedTheme("transition", "Personal følger med ved flytting", "Kjent personal følger med når brukeren flytter.")
    notes = ["Personalen följer med vid flytten", "Kaffen är kall"]
    word = word_similarity([tokenize(note, "sv") for note in notes], [seed_tokens(seed)])
    assert word[0, 0] > 0 and word[1, 0] == 0  # "personal" and "flytt" are shared stems
    char = char_similarity(notes, [" ".join(seed_sentences(seed))])
    assert char[0, 0] > char[1, 0]


def test_seed_sentences_split_the_description(seeds):
    sentences = seed_sentences(seeds[0])
    assert sentences[0] == seeds[0].name
    assert sentences[-len(seeds[0].examples):] == list(seeds[0].examples)
    assert " ".join(sentences[1:-len(seeds[0].examples)]) == seeds[0].description


def test_rows_follow_the_notes_in_any_order(topic_notes, seeds, views):
    order = np.random.default_rng(5).permutation(len(topic_notes))
    shuffled = seed_lexical_scores(topic_notes["text"].iloc[order].tolist(), topic_notes["lang"].iloc[order].tolist(),
                                   seeds)
    for view, again in zip(views, shuffled):
        assert np.allclose(view[order], again, rtol=0, atol=1e-12)


def test_notes_without_words_give_no_evidence_and_no_error(seeds):
    views = seed_lexical_scores(["👍", "🙂 !!", "42"], ["und", "und", "nb"], seeds)
    assert all(view.shape == (3, len(seeds)) and not view.any() for view in views)


def test_a_language_per_note_is_required(seeds):
    with pytest.raises(ValueError, match="2 texts but 1 languages"):
        seed_lexical_scores(["Kaffe", "Parkering"], ["nb"], seeds)
