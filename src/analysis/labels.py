"""Labels a human can use: c-TF-IDF keywords, representative quotes and short names.

Keywords come from class-based TF-IDF (one "document" per theme) over stemmed tokens with
Nordic and English stop words removed; each stem is shown as its most frequent surface form.
Quotes are chosen by maximal marginal relevance: close to the theme's centre, and different
from the quotes already picked, so three quotes do not say the same thing three times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.text import stem_display_map, tokenize


def theme_token_counts(texts: Sequence[str], langs: Sequence[str], themes: Sequence[str]
                       ) -> dict[str, Counter]:
    """Stem counts per theme."""
    counts: dict[str, Counter] = {}
    for text, lang, theme in zip(texts, langs, themes):
        counts.setdefault(theme, Counter()).update(tokenize(text, lang))
    return counts


def evenly_spread(counts: dict[str, Counter], min_themes: int = 4, share: float = 0.5) -> set[str]:
    """Stems used in more than ``share`` of the themes (when there are at least ``min_themes``):
    words like "brukeren" or "ønsker" that every theme's notes use describe none of them."""
    if len(counts) < min_themes:
        return set()
    spread = Counter(stem for counter in counts.values() for stem in counter)
    return {stem for stem, n_themes in spread.items() if n_themes > share * len(counts)}


def ctfidf_keywords(texts: Sequence[str], langs: Sequence[str], themes: Sequence[str],
                    n_keywords: int = 8) -> dict[str, list[str]]:
    """Top keywords per theme by c-TF-IDF, as readable words.

    Weight of stem t in theme c: tf(t, c) / |c| * log(1 + A / f(t)), with A the mean number
    of tokens per theme and f(t) the frequency of t over all themes (BERTopic's c-TF-IDF,
    with tf normalised by theme length so large themes do not dominate). Ties are broken
    alphabetically, so the result never depends on row order.
    """
    counts = theme_token_counts(texts, langs, themes)
    if not counts:
        return {}
    total = Counter()
    for counter in counts.values():
        total.update(counter)
    mean_tokens = sum(total.values()) / len(counts)
    display = stem_display_map(list(zip(texts, langs)))
    everywhere = evenly_spread(counts)
    keywords = {}
    for theme, counter in counts.items():
        size = sum(counter.values()) or 1
        scored = [
            (-(count / size) * np.log1p(mean_tokens / total[stem]), stem)
            for stem, count in counter.items()
            if count >= 1 and stem not in everywhere
        ]
        scored.sort()
        keywords[theme] = [display.get(stem, stem) for _, stem in scored[:n_keywords]]
    return keywords


def representative_quotes(vectors: np.ndarray, texts: Sequence[str], note_ids: Sequence[str],
                          n_quotes: int = 4, diversity: float = 0.35,
                          min_words: int = 3) -> list[str]:
    """Note ids of central yet mutually different notes (maximal marginal relevance).

    ``vectors`` are the theme members' unit-length embeddings. Very short notes are used
    only when a theme has too few longer ones. Exact duplicate texts are never both chosen.
    """
    if len(note_ids) == 0:
        return []
    order = np.argsort(np.asarray(note_ids, dtype=str), kind="stable")
    vectors, texts = vectors[order], [texts[i] for i in order]
    note_ids = [note_ids[i] for i in order]
    centre = vectors.mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    relevance = vectors @ centre
    long_enough = np.array([len(str(t).split()) >= min_words for t in texts])
    candidates = [i for i in range(len(texts)) if long_enough[i]]
    if len(candidates) < n_quotes:
        candidates = list(range(len(texts)))
    chosen: list[int] = []
    seen_texts: set[str] = set()
    while candidates and len(chosen) < n_quotes:
        if chosen:
            redundancy = (vectors[candidates] @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(candidates))
        score = (1 - diversity) * relevance[candidates] - diversity * redundancy
        best = candidates[int(np.argmax(score))]
        candidates.remove(best)
        key = " ".join(str(texts[best]).lower().split())
        if key in seen_texts:
            continue
        seen_texts.add(key)
        chosen.append(best)
    return [note_ids[i] for i in chosen]


def suggest_name(keywords: Sequence[str], n_words: int = 3) -> str:
    """A short working name from the top keywords, for themes without a seed name."""
    words = [w for w in keywords[:n_words] if w]
    return " / ".join(words) if words else "(no keywords)"


def theme_labels(notes: pd.DataFrame, vectors: np.ndarray, theme_ids: Sequence[str],
                 seed_names: dict[str, str], n_keywords: int = 8, n_quotes: int = 4
                 ) -> pd.DataFrame:
    """Keywords, quotes and a name for every theme among ``theme_ids`` (one per note).

    Rows of ``notes`` and ``vectors`` align with ``theme_ids``; notes whose theme id is empty
    (unassigned, excluded, empty) are ignored here.
    """
    theme_ids = np.asarray(theme_ids, dtype=object)
    member = np.array([bool(t) for t in theme_ids])
    keywords = ctfidf_keywords(
        notes["text"].to_numpy()[member].tolist(),
        notes["lang"].to_numpy()[member].tolist(),
        theme_ids[member].tolist(),
        n_keywords=n_keywords,
    )
    rows = []
    for theme in sorted(set(theme_ids[member].tolist())):
        mask = theme_ids == theme
        quotes = representative_quotes(
            vectors[mask], notes["text"].to_numpy()[mask].tolist(),
            notes["note_id"].to_numpy()[mask].tolist(), n_quotes=n_quotes,
        )
        words = keywords.get(theme, [])
        rows.append({
            "theme_id": theme,
            "label": seed_names.get(theme) or suggest_name(words),
            "keywords": words,
            "size": int(mask.sum()),
            "quote_ids": quotes,
        })
    return pd.DataFrame(rows, columns=["theme_id", "label", "keywords", "size", "quote_ids"])
