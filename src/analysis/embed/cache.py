"""An on-disk embedding cache that makes re-runs embed only new or changed texts.

Vectors are keyed by sha256(model identity, kind, text) and stored as ``.npz`` shards
(numeric arrays and fixed-width strings, loaded with ``allow_pickle=False``) in one folder
per model identity. Each finished batch is written as its own shard, so an interrupted run
resumes where it stopped. When batch shards pile up they are merged, together with any
merged shard no bigger than them, so merged shards grow geometrically: a vector is rewritten
O(log n) times over the cache's life and a folder holds O(log n) files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.embed.base import fits_on_corpus, Embedder, Kind

_MERGE_AFTER = 32


def text_key(identity: str, kind: str, text: str) -> str:
    return hashlib.sha256(f"{identity}\x1f{kind}\x1f{text}".encode()).hexdigest()


def _is_merged(shard: Path) -> bool:
    return shard.name.endswith("-merged.npz")


class EmbeddingCache:
    """Shards of (key, vector) pairs for one model identity."""

    def __init__(self, folder: Path, identity: str):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:80]
        self.folder = Path(folder) / f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
        self.identity = identity
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded = False

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz")) if self.folder.is_dir() else []

    def load(self) -> None:
        for shard in self._shards():
            with np.load(shard, allow_pickle=False) as data:
                for key, vector in zip(data["keys"].tolist(), data["vectors"]):
                    self._vectors[key] = vector
        self._loaded = True

    def get(self, key: str) -> np.ndarray | None:
        if not self._loaded:
            self.load()
        return self._vectors.get(key)

    def __len__(self) -> int:
        if not self._loaded:
            self.load()
        return len(self._vectors)

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store one finished batch as a new shard (atomically renamed into place)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shards = self._shards()
        index = len(shards)
        target = self.folder / f"shard-{index:06d}-{keys[0][:8]}.npz"
        # Not named shard-*.npz: a write cut short must never be read as a shard.
        temporary = self.folder / f"tmp-{target.name}"
        np.savez(temporary, keys=np.asarray(keys, dtype="<U64"), vectors=vectors.astype(np.float32))
        temporary.replace(target)
        for key, vector in zip(keys, vectors):
            self._vectors[key] = vector
        if sum(not _is_merged(shard) for shard in shards) + 1 >= _MERGE_AFTER:
            self.merge()

    def merge(self) -> None:
        """Merge the batch shards, and each merged shard no bigger than what is merged so far.

        Like a binary counter's carry: merging everything every time would rewrite the whole
        cache every ``_MERGE_AFTER`` batches (quadratic in the number of texts). Shards are
        read from disk, so shards another run wrote meanwhile are kept. The merged file is
        sorted by key and named by its keys, so it is reproducible.
        """
        shards = self._shards()
        chosen = [shard for shard in shards if not _is_merged(shard)]
        size = sum(shard.stat().st_size for shard in chosen)
        for shard in sorted((s for s in shards if _is_merged(s)), key=lambda s: (s.stat().st_size, s.name)):
            if shard.stat().st_size > size:
                break
            chosen.append(shard)
            size += shard.stat().st_size
        if len(chosen) <= 1:
            return
        merged: dict[str, np.ndarray] = {}
        for shard in chosen:
            with np.load(shard, allow_pickle=False) as data:
                merged.update(zip(data["keys"].tolist(), data["vectors"]))
        keys = sorted(merged)
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
        target = self.folder / f"shard-{name}-merged.npz"
        temporary = self.folder / f"tmp-{name}.npz"
        np.savez(temporary, keys=np.asarray(keys, dtype="<U64"),
                 vectors=np.stack([merged[k] for k in keys]).astype(np.float32))
        temporary.replace(target)
        self._vectors.update(merged)
        for shard in chosen:
            if shard != target:
                shard.unlink()


class CachedEmbedder:
    """Wraps an embedder; looks texts up in the cache and embeds only the missing ones."""

    def __init__(self, embedder: Embedder, cache_folder: Path | None, batch_size: int = 64,
                 progress: bool = True):
        self.embedder = embedder
        self.cache_folder = cache_folder
        self.batch_size = batch_size
        self.progress = progress
        self.last_stats = {"requested": 0, "from_cache": 0, "embedded": 0}
        #: Every vector this embedder handed out, by cache key: what a reproduction bundle must carry.
        self.used: dict[str, np.ndarray] = {}
        self._caches: dict[str, EmbeddingCache] = {}

    @property
    def identity(self) -> str:
        return self.embedder.identity

    def fit(self, texts: Sequence[str]) -> "CachedEmbedder":
        """Let a backend that must see the corpus first (tfidf) fit; others need nothing."""
        if fits_on_corpus(self.embedder):
            self.embedder.fit(texts)
        return self

    def _cache(self, identity: str) -> EmbeddingCache | None:
        # One cache object per identity, so its shards are read from disk once per run.
        if self.cache_folder is None:
            return None
        if identity not in self._caches:
            self._caches[identity] = EmbeddingCache(self.cache_folder, identity)
        return self._caches[identity]

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        texts = list(texts)
        identity = self.embedder.identity
        keys = [text_key(identity, kind, text) for text in texts]
        cache = self._cache(identity)
        found: dict[str, np.ndarray] = {}
        if cache is not None:
            for key in set(keys):
                vector = cache.get(key)
                if vector is not None:
                    found[key] = vector
        # Each distinct missing text is embedded once, in a fixed (sorted) order.
        missing = sorted({key: text for key, text in zip(keys, texts) if key not in found}.items())
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing), desc=f"embedding ({kind})", unit="text", delay=3,
                   disable=not self.progress or not missing, leave=False)
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            vectors = self.embedder.encode([text for _, text in batch], kind=kind)
            batch_keys = [key for key, _ in batch]
            if cache is not None:
                cache.add(batch_keys, vectors)
            found.update(zip(batch_keys, vectors))
            bar.update(len(batch))
        bar.close()
        self.used.update(found)
        missing_keys = {key for key, _ in missing}
        self.last_stats = {"requested": len(texts),
                           "from_cache": sum(key not in missing_keys for key in keys),
                           "embedded": len(missing)}
        if not texts:
            probe = self.embedder.encode(["x"], kind=kind)
            return np.zeros((0, probe.shape[1]), dtype=np.float32)
        return np.stack([found[key] for key in keys]).astype(np.float32)
