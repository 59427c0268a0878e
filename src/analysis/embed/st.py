"""sentence-transformers: any model name (with a network) or a local model folder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.embed.base import EmbedderNotAvailable, Kind, normalise_rows, register


def _weights_hash(folder: Path) -> str:
    """Hash of the weight files in a model folder (names and bytes), for the cache key."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json", ".txt", ".model"}:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@register("sentence-transformers")
class SentenceTransformerEmbedder:
    """Loads ``model`` (a path, or a hub name when the network allows); e5 models get prefixes."""

    def __init__(self, model: str | None = None, batch_size: int = 32, device: str = "cpu"):
        if not model:
            raise EmbedderNotAvailable(
                "The sentence-transformers backend needs a model: set [embedding] model to a "
                "local folder (or a hub name if you are online)."
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise EmbedderNotAvailable(
                "The sentence-transformers backend is not installed: pip install 'analysis[st]' "
                "-c constraints.txt"
            ) from error
        folder = Path(model)
        self.batch_size = batch_size
        self.is_e5 = "e5" in folder.name.lower() or "e5" in model.lower().split("/")[-1]
        if folder.is_dir():
            self.identity = f"st:{folder.parent.name}/{folder.name}:{_weights_hash(folder)[:16]}"
            self._model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        else:
            self.identity = f"st:{model}"
            self._model = SentenceTransformer(model, device=device)

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        texts = list(texts)
        if self.is_e5:
            texts = [f"{kind}: {text}" for text in texts]
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return normalise_rows(np.asarray(vectors).reshape(len(texts), -1))
