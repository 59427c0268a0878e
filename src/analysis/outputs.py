"""What becomes of a finished run: its files written, its summary said, and its manifest re-checked.

``write_outputs(result, out_dir)`` writes the CSV and JSON tables, the persona pages, the run's
own inputs (run_inputs/), the figures and the manifest of a ``pipeline.RunResult``.
``summary_lines`` is what ``analysis run`` prints at the end, and ``verify`` re-runs the
analysis a manifest describes and compares everything. ``pipeline`` itself writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import config_from_dict
from analysis.files import write_csv
from analysis.manifest import (VECTORS_NAME, Verification, compare, read_manifest, vector_deviation, write_manifest,
                               write_vectors)
from analysis.personas import persona_summary_markdown
from analysis.pipeline import RunResult, as_config_path, run, stage_hook, with_paths
from analysis.review import confirmed_counts_line
from analysis.stats import structure_strength


def write_outputs(result: RunResult, out_dir: Path,
                  on_stage: Callable[[str], AbstractContextManager] | None = None,
                  figure_cache: bool = True) -> dict[str, Path]:
    """Write the run's tables and figures under ``out_dir``; return what was written.

    ``on_stage`` as for ``run``: entered around "tables", "figures" and "manifest".
    ``figure_cache=False`` renders every figure even when the cache holds them (``verify``)."""
    stage = stage_hook(on_stage)
    with stage("tables"):
        written = _write_tables(result, Path(out_dir))
    with stage("figures"):
        written.update(_write_figures(result, Path(out_dir) / "figures", use_cache=figure_cache))
    if result.config is not None:
        with stage("manifest"):
            written["vectors"] = write_vectors(result, Path(out_dir) / VECTORS_NAME)
            written["manifest"] = write_manifest(result, written, Path(out_dir))
    return written


def _write_tables(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """The CSV and JSON files of a run, and the run's own inputs (run_inputs/)."""
    # One dialect for every table, recorded in the manifest's config ([output] csv_dialect).
    csv = partial(write_csv, dialect=result.config.output.csv_dialect if result.config else None)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["assignments"] = csv(result.assignments, out_dir / "assignments.csv")
    themes = result.themes.copy()
    themes["keywords"] = themes["keywords"].map(lambda words: "; ".join(words))
    themes["representative_note_ids"] = themes.pop("quote_ids").map(lambda ids: "; ".join(ids))
    written["themes"] = csv(themes, out_dir / "themes.csv")
    # Always written, with its header when no new themes were sought (the seeds took every note),
    # so a run folder has the same files whatever the notes.
    k_selection = result.k_selection if len(result.k_selection.columns) else pd.DataFrame(
        columns=["k", "modularity", "smallest_theme", "chosen"])
    written["k_selection"] = csv(k_selection, out_dir / "k_selection.csv")
    if result.persona_theme is not None:
        written["persona_theme"] = csv(result.persona_theme, out_dir / "persona_theme.csv")
        written["persona_needs"] = csv(result.persona_needs, out_dir / "persona_needs.csv")
        written["trace"] = csv(result.trace, out_dir / "trace.csv")
        if result.site_theme is not None:
            written["site_theme"] = csv(result.site_theme, out_dir / "site_theme.csv")
        written["persona_report"] = _json(result.persona_report, out_dir / "persona_report.json")
        written.update(_persona_summaries(result, out_dir / "personas"))
    if result.breakdowns is not None:
        written["breakdowns"] = csv(result.breakdowns, out_dir / "breakdowns.csv")
    if result.review_queue is not None:
        written["review_queue"] = csv(result.review_queue, out_dir / "review_queue.csv")
    written.update(write_run_inputs(result, out_dir))
    if result.overrides_report or "overrides" in result.inputs:
        written["overrides_report"] = _json(result.overrides_report, out_dir / "overrides_report.json")
    if result.privacy:
        written["privacy_report"] = _json(result.privacy, out_dir / "privacy_report.json")
    if result.evaluation is not None:
        written["evaluation"] = _json(result.evaluation, out_dir / "evaluation.json")
    return written


#: The figures' resolution (savefig's dpi).
FIGURE_DPI = 120
#: Rendered figure sets kept in the cache (the newest by modification time); older ones are deleted.
FIGURE_CACHE_KEEP = 8


def _write_figures(result: RunResult, figures: Path, use_cache: bool = True) -> dict[str, Path]:
    """Render the run's figures, or copy them from the figure cache when nothing they show changed.

    Rendering is most of a warm run's time (about 4 s for 320 notes). The cache, a folder
    ``figures`` inside the embedding cache, holds each rendered set under ``figure_key``: a hash
    of every table the figures are drawn from, the package's sources and matplotlib's version.
    A hit copies files that rendering would write byte for byte; a set is used only when every
    file is there with the hash recorded when it was written. A run without an on-disk cache
    (``RunResult.cache`` None) always renders.
    """
    cache = _figure_cache(result)
    key = figure_key(result) if cache is not None else ""
    if cache is not None and use_cache:
        hit = _cached_figures(cache / key, figures)
        if hit is not None:
            return hit
    from analysis import plots  # matplotlib: imported only when figures are drawn

    written = {}
    for name, figure in plots.run_figures(result).items():
        path = figures / f"{name}.png"
        plots.save_png(figure, path, dpi=FIGURE_DPI)  # savefig(..., bbox_inches="tight")'s bytes, one draw
        plots.close(figure)
        written[f"figure:{name}"] = path
    if cache is not None and written:
        _store_figures(cache, key, written)
    return written


def _figure_cache(result: RunResult) -> Path | None:
    return Path(result.cache) / "figures" if result.cache is not None else None


def _frame_bytes(frame: pd.DataFrame | None) -> bytes:
    if frame is None:
        return b"none"
    return (repr(list(frame.dtypes.astype(str).items())) + frame.to_csv(lineterminator="\n")).encode()


def figure_key(result: RunResult) -> str:
    """The hash of everything ``plots.run_figures`` draws from, of the code that draws and of matplotlib."""
    from importlib.metadata import version

    import analysis
    from analysis.files import sha256_tree

    digest = hashlib.sha256()
    for part in (f"dpi {FIGURE_DPI}", f"matplotlib {version('matplotlib')}",
                 sha256_tree(Path(analysis.__file__).parent, (".py",)), repr(result.personas)):
        digest.update(part.encode() + b"\x1f")
    for frame in (result.themes, result.k_selection, result.breakdowns, result.persona_theme,
                  result.assignments, result.persona_links):
        digest.update(_frame_bytes(frame) + b"\x1f")
    return digest.hexdigest()[:32]


FIGURE_INDEX = "figures.json"


def _cached_figures(entry: Path, figures: Path) -> dict[str, Path] | None:
    """Copy a cached figure set into ``figures``; None when it is missing or any file differs from its record."""
    from analysis.files import sha256_file

    try:
        index = json.loads((entry / FIGURE_INDEX).read_text(encoding="utf-8"))
        if any(sha256_file(entry / name) != sha for name, sha in index.items()):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    figures.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in index:
        shutil.copyfile(entry / name, figures / name)
        written[f"figure:{Path(name).stem}"] = figures / name
    os.utime(entry / FIGURE_INDEX)  # the set was used: the newest, kept longest
    return written


def _store_figures(cache: Path, key: str, written: dict[str, Path]) -> None:
    """Keep the rendered set under ``key`` (written to a temporary folder, then renamed), and prune old sets."""
    from analysis.files import sha256_file

    cache.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix="tmp-", dir=cache))
    index = {}
    for path in written.values():
        shutil.copyfile(path, temporary / path.name)
        index[path.name] = sha256_file(path)
    (temporary / FIGURE_INDEX).write_text(json.dumps(index, indent=1, sort_keys=True), encoding="utf-8")
    entry = cache / key
    shutil.rmtree(entry, ignore_errors=True)
    try:
        temporary.rename(entry)
    except OSError:  # another run stored the same set meanwhile
        shutil.rmtree(temporary, ignore_errors=True)
    sets = sorted((p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("tmp-")),
                  key=lambda p: (_mtime(p / FIGURE_INDEX), p.name), reverse=True)
    for old in sets[FIGURE_CACHE_KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


RUN_INPUTS_DIR = "run_inputs"


def write_run_inputs(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """The seed codebook and personas this run used, as the loaders read them, inside the run folder.

    Exports and the report read these (the manifest names them under ``run_inputs``), never the
    config's files, so a run on one's own notes can never be exported with the example's personas.
    """
    import yaml

    folder = Path(out_dir) / RUN_INPUTS_DIR
    written = {}
    documents = {}
    if "seed_themes" in result.inputs:
        documents["seed_themes"] = ("themes", [{"id": s.id, "name": s.name, "description": s.description,
                                                "examples": list(s.examples)} for s in result.seeds])
    if "personas" in result.inputs:
        documents["personas"] = ("personas", [
            {"id": p.id, "name": p.name, "role": p.role, "aliases": list(p.aliases), "description": p.description,
             "needs": [{"id": n.id, "text": n.text} for n in p.needs], **({"site": p.site} if p.site else {})}
            for p in result.personas])
    for role, (key, entries) in documents.items():
        folder.mkdir(parents=True, exist_ok=True)
        source = result.inputs[role][0]
        header = (f"# The {role.replace('_', ' ')} this run used, read from {Path(source).name}.\n"
                  "# `analysis export` and `analysis report` read this copy; edit the original and run again.\n")
        path = folder / f"{role}.yml"
        path.write_text(header + yaml.safe_dump({key: entries}, allow_unicode=True, sort_keys=False, width=100),
                        encoding="utf-8")
        written[f"run_inputs:{role}"] = path
    return written


def _persona_summaries(result: RunResult, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for persona in result.personas:
        text = persona_summary_markdown(persona, result.persona_theme, result.persona_needs,
                                        result.assignments, result.persona_links)
        path = folder / f"{persona.id}.md"
        path.write_text(text, encoding="utf-8")
        written[f"persona:{persona.id}"] = path
    return written


def _json(data, path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=_json_default) + "\n",
                    encoding="utf-8")
    return path


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def verify(manifest_path: Path, root: Path, work_dir: Path, embedder=None, cache: Path | None = None,
           recorded_vectors: Path | None = None) -> Verification:
    """Re-run the analysis a manifest describes, in ``work_dir``, and compare everything.

    ``cache``: an embedding cache to use instead of the config's (a bundle's recorded vectors).
    ``recorded_vectors``: the run's ``vectors.npz`` (default: next to the manifest), to report how
    far the re-run's vectors are from the recorded ones.
    """
    manifest_path = Path(manifest_path)
    expected = read_manifest(manifest_path)
    config = config_from_dict(expected["config"], root=root, source=str(manifest_path))
    config = with_paths(config, out=str(work_dir), **({"cache": str(cache)} if cache else {}))
    # Without a cache given, one inside the original run's folder serves the re-run too (it is not part of the result).
    result = run(config, embedder=embedder, progress=False, out_dir=manifest_path.resolve().parent)
    written = write_outputs(result, Path(work_dir), figure_cache=False)  # re-rendered, so they are checked too
    actual = read_manifest(written["manifest"])
    # Where the outputs and the cache are is not part of the result.
    for manifest in (expected, actual):
        for key in ("out", "cache"):
            manifest["config"]["paths"].pop(key, None)
    check = compare(expected, actual)
    recorded = Path(recorded_vectors) if recorded_vectors else manifest_path.parent / VECTORS_NAME
    if recorded.is_file() and "vectors" in written:
        check.vectors = vector_deviation(recorded, written["vectors"])
    return check


def summary_lines(result: RunResult, written: dict[str, Path], out_dir: Path, notices: bool = True) -> list[str]:
    """The short summary the CLI prints at the end of a run (no note text: privacy).

    It starts with the notices about where the reference files came from (``notices=False``
    leaves them out, for a caller that said them before the run).
    """
    status = result.assignments["status"].value_counts().sort_index()
    kinds = result.themes["kind"].value_counts() if len(result.themes) else pd.Series(dtype=int)
    lines = [*(result.notices if notices else []), *input_lines(result), f"embedder: {result.embedder_identity} "
        f"({result.embedding_stats.get('embedded', 0)} embedded, {result.embedding_stats.get('from_cache', 0)} from cache)",
        f"themes: {len(result.themes)} ({int(kinds.get('seed', 0))} seed, {int(kinds.get('new', 0))} new)",
        "notes per status: " + ", ".join(f"{k} {v}" for k, v in status.items()),
    ]
    centred = centring_line(result.centring)
    if centred:
        lines.insert(len(lines) - 2, centred)
    strength = new_theme_structure(result.k_selection)
    if strength is not None:
        lines.append(f"new-theme structure: {strength.level} ({strength.sentence})")
    elif len(result.assignments):
        lines.append("new-theme structure: none (the seed themes took every note with a theme's score, "
                     "so no new theme was looked for)")
    if result.breakdowns is not None:
        lines.append("breakdowns (who says what): " + ", ".join(result.breakdowns.attrs["tests"])
                     + " -> breakdowns.csv")
    if result.persona_links is not None:
        methods = result.assignments["persona_method"].value_counts().sort_index()
        lines.append("persona links: " + ", ".join(f"{k} {v}" for k, v in methods.items())
                     + f" (similarity threshold {result.persona_report.get('similarity_threshold')})")
        similarity = result.persona_report.get("similarity", {})
        if similarity and not similarity.get("reliable", True):
            lines.append("  similarity linked nothing: not reliable on these notes, because "
                         + "; ".join(similarity.get("reasons", [])))
    if "overrides" in result.inputs:
        states = pd.Series([r["state"] for r in result.overrides_report], dtype=object)
        lines.append(f"overrides: {int(states.eq('applied').sum())} applied, {int(states.eq('stale').sum())} stale "
                     f"({result.config.paths.overrides})")
        for entry in result.overrides_report:
            if entry["state"] == "stale":
                lines.append(f"  stale {entry['operation']}: {entry['detail']}")
    if result.learning is not None:
        lines.append(confirmed_counts_line(result.learning))
    lines.append(f"outputs: {out_dir} ({len(written)} files; figures in {out_dir / 'figures'})")
    return lines


def input_lines(result: RunResult) -> list[str]:
    """Which files and columns the run used: notes, text column, blank rows, codebook, personas."""
    notes, config = result.notes, result.config
    lines = [f"notes read: {len(notes)} from {notes['source_file'].nunique()} file(s)"]
    columns = notes.attrs.get("columns", {})
    texts = sorted({f"{found['text']!r}" for found in columns.values() if "text" in found})
    if texts:
        ids = sorted({f"{found['note_id']!r}" for found in columns.values() if "note_id" in found})
        lines.append(f"text column: {', '.join(texts)}; note ids from "
                     + (f"column {', '.join(ids)}" if ids else "the text (no id column)"))
    blank = {name: n for name, n in notes.attrs.get("skipped_blank_rows", {}).items() if n}
    if blank:
        lines.append(f"blank rows skipped: {sum(blank.values())} (" + ", ".join(f"{n} in {name}" for name, n in
                                                                           sorted(blank.items())) + ")")
    seed_files = result.inputs.get("seed_themes")
    lines.append(f"codebook: {as_config_path(seed_files[0], config)} ({len(result.seeds)} seed themes)" if seed_files
                 else "codebook: none (every theme is found in the notes)")
    persona_files = result.inputs.get("personas")
    lines.append(f"personas: {as_config_path(persona_files[0], config)} ({len(result.personas)} personas)"
                 if persona_files else "personas: none")
    return lines


def new_theme_structure(k_selection: pd.DataFrame | None):
    """The chosen k's modularity in words (stats.structure_strength), or None without a k search."""
    if k_selection is None or not len(k_selection) or "chosen" not in k_selection.columns:
        return None
    chosen = k_selection[k_selection["chosen"].astype(str).str.lower().isin(["true", "1"])]
    return structure_strength(float(chosen["modularity"].iloc[0])) if len(chosen) else None


def centring_line(centring: dict) -> str | None:
    """``centred on: lang (column 'lang'; detected from the text), source_type (column 'type')``."""
    if not centring:
        return None
    parts = [f"{entry['column']} ({'; '.join(entry['from'])})" for entry in centring.get("centred_on", [])]
    line = "centred on: " + (", ".join(parts) if parts else "nothing")
    skipped = [f"{entry['column']} ({entry['why']})" for entry in centring.get("not_centred_on", [])]
    return line + (f"; not on {', '.join(skipped)}" if skipped else "")
