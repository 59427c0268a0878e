"""TF-IDF + LSA: a model-free backend for quick runs, tests and machines without e5.

It must see the corpus before it can encode: the pipeline calls ``fit`` with every text it
will embed. The fitted vocabulary becomes part of ``identity``, so cached vectors never mix
two different fits. Texts are sorted and de-duplicated before fitting, so row order does not
change the space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from analysis.embed.base import Kind, normalise_rows, register


@register("tfidf")
class TfidfEmbedder:
    def __init__(self, model: str | None = None, n_components: int = 128, random_state: int = 0):
        self.n_components = n_components
        self.random_state = random_state
        self.identity = "tfidf:unfitted"
        self._vectorizer = None  # a fitted TfidfVectorizer
        self._svd = None  # a fitted TruncatedSVD, or None when the TF-IDF vectors are the embedding

    def fit(self, texts: Sequence[str]) -> "TfidfEmbedder":
        # scikit-learn's text and SVD modules load only when this backend is chosen.
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        corpus = sorted(set(texts))
        # Character n-grams within words cope with typos and Nordic inflection.
        self._vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), min_df=1, sublinear_tf=True, lowercase=True
        )
        matrix = self._vectorizer.fit_transform(corpus)
        digest = hashlib.sha256("\x1f".join(corpus).encode()).hexdigest()[:16]
        if min(matrix.shape) < 3:
            # One or two distinct texts, or two n-grams: too little for LSA (TruncatedSVD needs
            # n_components < n_features). The TF-IDF vectors themselves are the embedding.
            self._svd = None
            self.identity = f"tfidf-char3-5-raw{matrix.shape[1]}:{digest}"
            return self
        n_components = min(self.n_components, matrix.shape[0] - 1, matrix.shape[1] - 1)
        self._svd = TruncatedSVD(n_components=n_components, random_state=self.random_state)
        self._svd.fit(matrix)
        self.identity = f"tfidf-char3-5-lsa{n_components}:{digest}"
        return self

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        if self._vectorizer is None:
            self.fit(texts)
        dim = self._svd.n_components if self._svd is not None else len(self._vectorizer.vocabulary_)
        if len(texts) == 0:
            return np.zeros((0, dim), dtype=np.float32)
        matrix = self._vectorizer.transform(list(texts))
        return normalise_rows(self._svd.transform(matrix) if self._svd is not None else matrix.toarray())
