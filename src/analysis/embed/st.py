"""sentence-transformers: any model name (with a network) or a local model folder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.embed.base import EmbedderNotAvailable, Kind, normalise_rows, register
from analysis.files import sha256_tree


def _weights_hash(folder: Path) -> str:
    """Hash of the weight files in a model folder (names and bytes), for the cache key."""
    return sha256_tree(folder, {".safetensors", ".bin", ".json", ".txt", ".model"})


#: "e5" as a name token ("multilingual-e5-small", "e5_base"), not inside a hash like "3e5f…".
_E5_TOKEN = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])")


def is_e5_model(model: str) -> bool:
    """Whether ``model`` (hub name or folder) is an e5 model, which needs query:/passage: prefixes.

    A Hugging Face cache folder ``models--org--name/snapshots/<commit>`` is judged by its
    repository folder, not by the commit hash.
    """
    path = Path(model)
    name = path.parent.parent.name if path.parent.name == "snapshots" else path.name
    return bool(_E5_TOKEN.search(name.lower()))


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
        self.is_e5 = is_e5_model(model)
        try:
            if folder.is_dir():
                self.identity = f"st:{folder.parent.name}/{folder.name}:{_weights_hash(folder)[:16]}"
                self._model = SentenceTransformer(str(folder), device=device, local_files_only=True)
            else:
                self.identity = f"st:{model}"
                self._model = SentenceTransformer(model, device=device)
        except (OSError, ValueError) as error:  # missing folder, incomplete folder, offline hub name
            raise EmbedderNotAvailable(
                f"Could not load the sentence-transformers model {model!r}: {error}. Set [embedding] "
                "model to a folder holding a complete sentence-transformers model (or a hub name "
                "if you are online)."
            ) from error

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        texts = list(texts)
        if self.is_e5:
            texts = [f"{kind}: {text}" for text in texts]
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return normalise_rows(np.asarray(vectors).reshape(len(texts), -1))
