"""Lexical evidence for seed themes: how much of a seed's own wording a note shares.

Embeddings of short notes miss some plain word matches ("primærkontakt", "ukeplan", "LSS")
that an analyst would count as evidence. Two lexical views give that evidence, each a
TF-IDF cosine between every note and every seed (name, description and examples), with
the IDF learned from the notes, so words that many notes use count little:

* ``char``: character 3-5-grams inside words. Needs no language and catches compounds and
  Norwegian/Swedish cognates ("flytt"/"flytta", "personal"/"personalen").
* ``word``: stemmed words without stop words (``analysis.text.tokenize``), in each note's
  language; seed sentences are stemmed in their detected language.

The views are only evidence. ``ThemeModel`` weighs each one by how far its best seed agrees
with the embedding's best seed beyond chance (Cohen's kappa), so a view that shares no
words with the notes, e.g. English seed names over Swedish notes, counts for next to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from analysis.text import detect_language, split_sentences, tokenize

#: The views ``seed_lexical_scores`` returns, in order.
LEXICAL_VIEWS = ("char", "word")


def seed_sentences(seed) -> list[str]:
    """A seed's name, the sentences of its description, and its examples."""
    sentences = [seed.description[start:end] for start, end in split_sentences(seed.description)]
    return [seed.name, *sentences, *seed.examples]


def char_similarity(texts: Sequence[str], seed_docs: Sequence[str]) -> np.ndarray:
    """(n_notes, n_seeds) cosine of character 3-5-gram TF-IDF vectors (IDF from ``texts``)."""
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    try:
        notes = vectorizer.fit_transform(texts)
    except ValueError:  # no note has a 3-gram: there is no lexical evidence at all
        return np.zeros((len(texts), len(seed_docs)))
    return (notes @ vectorizer.transform(seed_docs).T).toarray()


def word_similarity(note_tokens: Sequence[list[str]], seed_tokens: Sequence[list[str]]) -> np.ndarray:
    """(n_notes, n_seeds) cosine of stemmed-word TF-IDF vectors (IDF from the notes)."""
    vectorizer = TfidfVectorizer(analyzer=_given_tokens, sublinear_tf=True)
    try:
        notes = vectorizer.fit_transform(note_tokens)
    except ValueError:  # every note is stop words or numbers only
        return np.zeros((len(note_tokens), len(seed_tokens)))
    return (notes @ vectorizer.transform(seed_tokens).T).toarray()


def _given_tokens(tokens: list[str]) -> list[str]:
    return tokens


def seed_tokens(seed) -> list[str]:
    """Stemmed tokens of a seed, each sentence stemmed in its own detected language."""
    sentences = seed_sentences(seed)
    tokens: list[str] = []
    for sentence, (lang, _) in zip(sentences, detect_language(sentences)):
        tokens.extend(tokenize(sentence, lang))
    return tokens


def seed_lexical_scores(texts: Sequence[str], langs: Sequence[str], seeds) -> list[np.ndarray]:
    """The ``char`` and ``word`` views for ``ThemeModel.fit(seed_lexical=...)``.

    ``texts`` and ``langs`` are the notes in the order of the embedding matrix; ``seeds`` are
    ``SeedTheme`` objects in the order of the seed vectors. Each view is (n_notes, n_seeds).
    """
    texts = [str(text) for text in texts]
    if len(texts) != len(langs):
        raise ValueError(f"seed_lexical_scores got {len(texts)} texts but {len(langs)} languages; "
                         "pass one language code per note.")
    seed_docs = [" ".join(seed_sentences(seed)) for seed in seeds]
    note_tokens = [tokenize(text, str(lang)) for text, lang in zip(texts, langs)]
    return [char_similarity(texts, seed_docs),
            word_similarity(note_tokens, [seed_tokens(seed) for seed in seeds])]
