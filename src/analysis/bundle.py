"""A reproduction bundle: what a partner needs to repeat a run on another machine.

Embedding vectors differ in their last bits from one CPU to another (see docs/reproducing.md,
"Reproducing our numbers"), so a partner who re-embeds the notes gets slightly other vectors.
A bundle carries the run's own vectors, so ``analysis verify --bundle`` repeats the run from
exactly the vectors we used. It holds:

- ``manifest.json`` and ``config.json`` (the resolved config the run used);
- ``inputs.json``: path, size and sha256 of every input; the inputs themselves, under
  ``inputs/``, only when asked for (they may hold personal data);
- ``cache/<model>/shard-…-merged.npz``: every vector the run used (notes, seed themes, personas,
  needs), as an embedding-cache shard;
- ``outputs/``: every output the manifest lists.

The zip has fixed entry times, so the same run gives the same bundle bytes.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from analysis.embed.cache import EmbeddingCache
from analysis.export import write_zip
from analysis.files import sha256_file
from analysis.manifest import MANIFEST_NAME, VECTORS_NAME, read_manifest

BUNDLE_INFO = "bundle.json"
BUNDLE_FORMAT = 1


class BundleError(ValueError):
    """A bundle cannot be written or read; the message says what to do."""


@dataclass(frozen=True)
class OpenedBundle:
    manifest: Path            # the bundle's manifest.json, extracted
    cache: Path               # an embedding cache folder holding the run's vectors
    vectors: Path             # the run's vectors.npz (for the deviation report)
    inputs: Path | None       # the folder the inputs are relative to, when the bundle has them


def _json_bytes(data) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def write_bundle(run_dir: Path, out: Path, root: Path, with_inputs: bool = False) -> Path:
    """Write the bundle of the run in ``run_dir``; ``root`` is the folder the inputs are relative to."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir / MANIFEST_NAME)
    vectors = run_dir / VECTORS_NAME
    if "vectors" not in manifest or not vectors.is_file():
        raise BundleError(f"{run_dir}: no {VECTORS_NAME} recorded with this run. Re-run `analysis run` with this "
                          f"version; it writes the vectors next to the manifest.")
    if sha256_file(vectors) != manifest["outputs"].get(VECTORS_NAME):
        raise BundleError(f"{vectors}: not the file the manifest recorded. Re-run `analysis run`.")
    shard = EmbeddingCache(Path("cache"), manifest["embedder"]["identity"]).folder
    members: list[tuple[str, bytes | None]] = [
        (BUNDLE_INFO, _json_bytes({"format": BUNDLE_FORMAT, "with_inputs": with_inputs})),
        (MANIFEST_NAME, (run_dir / MANIFEST_NAME).read_bytes()),
        ("config.json", _json_bytes(manifest["config"])),
        ("inputs.json", _json_bytes(manifest["inputs"])),
        (f"{shard.as_posix()}/shard-{manifest['vectors']['sha256'][:16]}-merged.npz", vectors.read_bytes()),
    ]
    for name, sha256 in sorted(manifest["outputs"].items()):
        path = run_dir / name
        if not path.is_file() or sha256_file(path) != sha256:
            raise BundleError(f"{path}: missing or changed since the run wrote the manifest. Re-run `analysis run`.")
        members.append((f"outputs/{name}", path.read_bytes()))
    if with_inputs:
        for entry in manifest["inputs"]:
            path = Path(root) / entry["path"]
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                raise BundleError(f"{path}: input missing or changed since the run (sha256 differs). "
                                  f"Pass --config with the run's analysis.toml, or re-run `analysis run`.")
            members.append((f"inputs/{entry['path']}", path.read_bytes()))
    return write_zip(Path(out), members)


def open_bundle(bundle: Path, folder: Path) -> OpenedBundle:
    """Extract ``bundle`` into ``folder`` and say where its parts are."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise BundleError(f"{bundle}: bundle not found. Write one with `analysis export bundle --out FILE.zip`.")
    try:
        with zipfile.ZipFile(bundle) as archive:
            names = archive.namelist()
            unsafe = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
            if unsafe or BUNDLE_INFO not in names or MANIFEST_NAME not in names:
                raise BundleError(f"{bundle}: not a reproduction bundle (no {BUNDLE_INFO} and {MANIFEST_NAME}, "
                                  f"or unsafe paths). Write one with `analysis export bundle`.")
            archive.extractall(folder)
    except zipfile.BadZipFile as error:
        raise BundleError(f"{bundle}: not a zip file ({error}).") from error
    folder = Path(folder)
    info = json.loads((folder / BUNDLE_INFO).read_text(encoding="utf-8"))
    if info.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{bundle}: bundle format {info.get('format')!r}; this version reads {BUNDLE_FORMAT}.")
    return OpenedBundle(manifest=folder / MANIFEST_NAME, cache=folder / "cache",
                        vectors=folder / "outputs" / VECTORS_NAME,
                        inputs=folder / "inputs" if info.get("with_inputs") else None)


def _files(paths) -> list[Path]:
    found = []
    for path in map(Path, paths):
        found.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return found


def stage_inputs(manifest: dict, folder: Path, root: Path, notes_paths=()) -> Path:
    """Lay the inputs out in ``folder`` as the run saw them, so source files and note ids match.

    A notes input is taken from ``notes_paths`` (files or folders, anywhere) by its sha256, or by
    its file name when its content changed (``verify`` then reports the changed sha256); every
    other input (seed themes, personas, overrides) and notes not found there come from ``root``.
    """
    given = _files(notes_paths)
    by_hash = {sha256_file(path): path for path in given}
    by_name = {path.name: path for path in given}
    for entry in manifest.get("inputs", []):
        source = Path(root) / entry["path"]
        if entry["role"] == "notes" and given:
            source = by_hash.get(entry["sha256"]) or by_name.get(Path(entry["path"]).name) or source
        if source.is_file():
            target = Path(folder) / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return Path(folder)
