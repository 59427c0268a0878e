"""The one path from raw notes to themes and personas, shared by the CLI and the notebooks.

``run(config)`` loads the notes, embeds them (through the cache), fits the ThemeModel,
labels the themes, links notes to personas, and returns everything as a ``RunResult``.
Nothing is written here: ``analysis.outputs`` writes a result's files and verifies a run.
Every input note is in ``assignments`` exactly once with a status.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.breakdowns import breakdown_attributes, breakdown_table
from analysis.config import Config
from analysis.embed import get_embedder
from analysis.embed.base import fits_on_corpus
from analysis.embed.cache import CachedEmbedder
from analysis.labels import theme_labels
from analysis.load import load_notes, require_notes
from analysis.learn import learn, seed_example_vectors
from analysis.overrides import apply_overrides, load_overrides
from analysis.review import QUEUE_COLUMNS, QUEUE_SIZE, review_queue
from analysis.personas import load_personas
from analysis.privacy import Masker, mask_frame, summarise
from analysis.schema import CORE_COLUMNS, GOLD_PREFIX, NO_PERSONA, STATUS_EMPTY, STATUS_OK
from analysis.lexical import seed_lexical_scores
from analysis.text import language_memo, neutralise_names
from analysis.themes import SeedTheme, ThemeModel, load_seed_themes, seed_prototypes

log = logging.getLogger(__name__)

ASSIGNMENT_COLUMNS = [
    "note_id", "theme_id", "theme_label", "theme_score", "theme_margin", "secondary_theme_id",
    "persona_id", "persona_method", "persona_score", "status", "status_reason", "flags",
    "source_file", "source_row", "source_type", "doc_id", "char_start", "char_end", "lang", "text",
]


#: The persona columns of ``assignments``, filled from the persona links (``_with_personas``).
PERSONA_COLUMNS = ["persona_id", "persona_method", "persona_score"]


@dataclass(frozen=True)
class RunResult:
    """Everything one run found, built once at its end: nothing sets a field afterwards
    (``dataclasses.replace`` makes a changed copy)."""

    notes: pd.DataFrame
    vectors: np.ndarray
    model: ThemeModel
    themes: pd.DataFrame
    assignments: pd.DataFrame
    k_selection: pd.DataFrame
    seeds: list[SeedTheme] = field(default_factory=list)
    personas: list = field(default_factory=list)
    persona_links: pd.DataFrame | None = None
    persona_theme: pd.DataFrame | None = None
    persona_needs: pd.DataFrame | None = None
    trace: pd.DataFrame | None = None
    site_theme: pd.DataFrame | None = None
    persona_report: dict = field(default_factory=dict)
    embedder_identity: str = ""
    embedder_weights_sha256: str | None = None
    embedding_stats: dict = field(default_factory=dict)
    config: Config | None = None
    inputs: dict[str, list[Path]] = field(default_factory=dict)   # role -> files read
    overrides_report: list[dict] = field(default_factory=list)
    privacy: dict = field(default_factory=dict)
    evaluation: dict | None = None
    breakdowns: pd.DataFrame | None = None
    notices: list[str] = field(default_factory=list)   # said first: where the reference files came from
    used_vectors: dict = field(default_factory=dict)   # cache key -> every vector the run used
    #: What the ThemeModel was fitted on besides ``vectors``: groups (centre_by columns of the analysable
    #: notes, in vector order), seed_vectors, seed_ids, seed_lexical (None without seed themes).
    fit_inputs: dict = field(default_factory=dict)
    centring: dict = field(default_factory=dict)       # centring_report: what the themes were centred on
    review_queue: pd.DataFrame | None = None   # analysis.review: the notes whose decision teaches most
    learning: dict | None = None               # analysis.learn.learn's result: confirmed notes per theme
    #: The run's on-disk cache folder (embedding vectors, detected languages, rendered figures);
    #: None when the embedder had none.
    cache: Path | None = None


def _inside(path: Path, folder: Path) -> bool:
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or path.is_relative_to(folder)


def reference_files(config: Config, notes_paths=None, seed_themes_path=None, personas_path=None,
                    overrides_path=None) -> tuple[dict[str, Path | None], list[str]]:
    """The seed codebook, personas file and overrides file a run uses, and what to say about them first.

    A file passed explicitly is always used. Without one, the config's file is used when the
    notes are the config's own, or when the notes given on the command line lie inside the
    config's [paths] notes (a file, or a folder holding them). Notes from elsewhere never get the
    config's codebook or personas, so the example's Bærum files cannot reach a run on other notes
    by accident; the notice says how to use them on purpose.
    """
    config_notes = [config.resolve(p) for p in config.paths.notes]
    from_cli = bool(notes_paths)
    belongs = not from_cli or all(any(_inside(p, folder) for folder in config_notes) for p in notes_paths)
    chosen, notices = {}, []
    for role, given, option, what in (("seed_themes", seed_themes_path, "--seed-themes", "seed codebook"),
                                      ("personas", personas_path, "--personas", "personas file"),
                                      ("overrides", overrides_path, "--overrides", "overrides file")):
        configured = config.resolve(getattr(config.paths, role))
        if given:
            chosen[role] = Path(given)
        elif configured is None:
            chosen[role] = None
        elif belongs:
            chosen[role] = configured
            if from_cli and (role != "overrides" or configured.exists()):
                notices.append(f"note: the {what} {_shown(configured, config)} comes from the config's "
                               f"[paths] {role}, while --notes came from the command line; pass {option} "
                               "to choose another.")
        else:
            chosen[role] = None
            if role == "overrides" and not configured.exists():
                continue
            notices.append(f"note: the config's {what} {_shown(configured, config)} is not used: it belongs to the "
                           f"config's notes ({', '.join(_shown(p, config) for p in config_notes)}), not to the "
                           f"--notes given. Pass {option} {_shown(configured, config)} to use it anyway.")
    return chosen, notices


def _shown(path: Path, config: Config) -> str:
    return as_config_path(path, config)


def notes_paths_from(config: Config, notes_paths=None) -> list[Path]:
    if notes_paths:
        return [Path(p) for p in notes_paths]
    return [config.resolve(p) for p in config.paths.notes]


def build_embedder(config: Config, progress: bool = True, out_dir=None, use_cache: bool = True) -> CachedEmbedder:
    """The configured backend, wrapped in the on-disk cache ([paths] cache, else ``out_dir``/cache),
    or in none if not ``use_cache``."""
    options = {}
    if config.embedding.backend == "sentence-transformers":
        options["batch_size"] = config.embedding.batch_size
    if config.embedding.backend == "tfidf":
        options["random_state"] = config.themes.random_state
    backend = get_embedder(config.embedding.backend, model=config.embedding.model, **options)
    batch_size = max(config.embedding.batch_size, getattr(backend, "preferred_batch_size", 0))
    return CachedEmbedder(backend, config.cache_dir(out_dir) if use_cache else None,
                          batch_size=batch_size, progress=progress)


def theme_model_from_config(config: Config) -> ThemeModel:
    # Every [themes] key that is a ThemeModel parameter, by name (n_keywords, n_quotes are the labels').
    shared = set(ThemeModel._get_param_names()) & {f.name for f in dataclasses.fields(config.themes)}
    return ThemeModel(**{name: getattr(config.themes, name) for name in sorted(shared)})


#: The stages ``run`` reports to ``on_stage``, in order (``outputs.write_outputs`` adds "tables", "figures", "manifest").
STAGES = ("load", "mask", "embed", "seeds", "lexical", "themes", "learn", "overrides", "review", "labels",
          "personas", "breakdowns", "evaluate")


def stage_hook(on_stage: Callable[[str], AbstractContextManager] | None):
    """``on_stage(name)`` as a context manager around each stage, or nothing."""
    return on_stage if on_stage is not None else (lambda name: nullcontext())


def run(config: Config, notes_paths=None, personas_path=None, seed_themes_path=None,
        embedder=None, progress: bool = True, notes: pd.DataFrame | None = None,
        overrides_path=None, out_dir=None,
        on_stage: Callable[[str], AbstractContextManager] | None = None) -> RunResult:
    """Run the whole analysis in memory. Paths default to the config's [paths].

    ``notes`` may be an already loaded notes table (``analysis evaluate`` passes one with the
    gold columns removed, and the files it came from as ``notes_paths``). ``out_dir`` (default
    [paths] out) only places the embedding cache when [paths] cache is empty. Which seed codebook, personas and overrides are used is
    decided by ``reference_files``.

    ``on_stage(name)``, when given, returns a context manager entered around each stage
    (``STAGES``): how benchmarks time the stages without reaching into the module.

    Languages detected are remembered beside the embedding cache (``text.language_memo``), so a
    warm re-run does not load the detector; with an ``embedder`` given, beside its cache, if any.
    """
    cache = getattr(embedder, "cache_folder", None) if embedder is not None else config.cache_dir(out_dir)
    with language_memo(Path(cache) / LANGUAGE_MEMO if cache is not None else None):
        return _run(config, notes_paths, personas_path, seed_themes_path, embedder, progress, notes,
                    overrides_path, out_dir, on_stage)


#: The file of detected languages inside the embedding cache.
LANGUAGE_MEMO = "languages.json"


def _run(config, notes_paths, personas_path, seed_themes_path, embedder, progress, notes, overrides_path,
         out_dir, on_stage) -> RunResult:
    stage = stage_hook(on_stage)
    inputs: dict[str, list[Path]] = {}
    # With ``notes`` given, ``notes_paths`` (if any) still says where they came from.
    chosen, notices = reference_files(config, notes_paths, seed_themes_path, personas_path, overrides_path)
    seed_path, persona_path, override_path = chosen["seed_themes"], chosen["personas"], chosen["overrides"]
    with stage("load"):
        if notes is None:
            paths = notes_paths_from(config, notes_paths)
            notes = load_notes(paths, root=config.root, columns=config.columns.mapping())
            inputs["notes"] = [Path(f) for f in notes.attrs.get("files", [])]
            config = with_paths(config, notes=tuple(as_config_path(p, config) for p in paths))
        require_notes(notes)
        personas = load_personas(persona_path) if persona_path else []
    # Mask personal data before anything else sees the text: embeddings, keywords, quotes,
    # figures, exports and logs all work from the masked notes.
    with stage("mask"):
        notes, privacy = mask_personal_data(notes, config, personas)
    analysable = notes["status"].eq(STATUS_OK).to_numpy()
    embedder = embedder or build_embedder(config, progress=progress, out_dir=out_dir)
    # Themes are found on the notes with people's names neutralised: otherwise every note that
    # names a persona clusters with the others that do ("roald / sier / tid"). Persona linking
    # reads names from the text as written.
    texts = theme_texts(notes.loc[analysable, "text"].tolist(), personas, config.privacy.names)
    with stage("embed"):
        if fits_on_corpus(embedder) and texts:  # every note empty: nothing to fit on or embed
            embedder.fit(texts)
        vectors = embedder.encode(texts, kind="query") if texts else np.zeros((0, 0), dtype=np.float32)
    stats = dict(getattr(embedder, "last_stats", {}))

    with stage("seeds"):
        seeds = load_seed_themes(seed_path) if seed_path else []
    # The manifest records the files actually used, not the config's unused ones.
    config = with_paths(config, seed_themes="", personas="",
                         overrides=as_config_path(override_path, config) if override_path else "")
    if seed_path:
        inputs["seed_themes"] = [seed_path]
        config = with_paths(config, seed_themes=as_config_path(seed_path, config))
    with stage("seeds"):
        seed_vectors = seed_prototypes(seeds, embedder, config.themes.seed_text) if seeds else None
    model = theme_model_from_config(config)
    groups = notes.loc[analysable, [c for c in config.themes.centre_by if c in notes.columns]]
    seed_lexical = None
    if analysable.any():
        # The seeds' own words in the notes: evidence the model weighs by its agreement with the embedding.
        with stage("lexical"):
            seed_lexical = seed_lexical_scores(texts, notes.loc[analysable, "lang"].tolist(), seeds) if seeds else None
        with stage("themes"):
            model.fit(vectors, groups=groups, seed_vectors=seed_vectors,
                      seed_ids=[s.id for s in seeds] or None, seed_lexical=seed_lexical)
    # What the model was fitted on besides the vectors, kept for stability checks (evaluate.theme_fit_inputs).
    fit_inputs = {"groups": groups.reset_index(drop=True), "seed_vectors": seed_vectors,
                  "seed_ids": [s.id for s in seeds] or None, "seed_lexical": seed_lexical}

    names = {s.id: s.name for s in seeds}
    overrides_report: list[dict] = []
    model_only = None
    overrides = None
    if override_path and not override_path.exists():
        # The file is optional: an analyst creates it when they first disagree with the model.
        log.info("no overrides file at %s; nothing to override", override_path)
    elif override_path:
        # Evaluation measures the model, not the analyst: keep its own answers before overrides.
        model_only = _assignments(notes, analysable, model, _empty_themes())
        overrides = load_overrides(override_path)
        inputs["overrides"] = [override_path]
        config = with_paths(config, overrides=as_config_path(override_path, config))
    # --- learning from the analyst (analysis.learn, issue 16): confirmed notes re-score the rest ---
    learning = None
    if analysable.any() and len(model.themes_):
        with stage("learn"):
            centred = model.centre(vectors, groups)
            example_vectors, example_themes = seed_example_vectors(seeds, embedder)
            learning = learn(model, centred, notes.loc[analysable, "note_id"].tolist(), overrides,
                             seed_vectors=seed_vectors, examples=example_vectors, example_themes=example_themes,
                             evidence=model.lexical_evidence(seed_lexical) if seeds else None)
        names.update(learning["names"])
    # --- end of learning ---
    if overrides is not None:
        if analysable.any():
            with stage("overrides"):
                applied = apply_overrides(model, model.centre(vectors, groups), notes.loc[analysable, "note_id"],
                                          overrides, random_state=config.themes.random_state,
                                          evidence=model.lexical_evidence(seed_lexical))
                names.update(applied["names"])
                overrides_report = applied["report"]

    themed_notes = notes[analysable].assign(text=texts)  # keywords and labels without names
    queue = None
    if learning is not None:
        with stage("review"):
            queue = review_queue(notes[analysable], centred, learning, model.status_, n=QUEUE_SIZE,
                                 attributes=[c for c in notes.columns if c not in QUEUE_COLUMNS and c != "status"
                                             and c != "status_reason" and not c.startswith(GOLD_PREFIX)])
    with stage("labels"):
        themes = _theme_table(themed_notes, vectors, model, seeds, names, config) if analysable.any() \
            else _empty_themes()
        themed = _assignments(notes, analysable, model, themes)
    linked: dict = {}
    if persona_path:
        with stage("personas"):
            linked = _link_personas(notes, vectors, model, themed, personas, embedder, config)
        inputs["personas"] = [persona_path]
        config = with_paths(config, personas=as_config_path(persona_path, config))
    links = linked.get("persona_links")
    assignments = _with_personas(themed, links)
    with stage("breakdowns"):
        attributes = breakdown_attributes(assignments, config.report.breakdowns)
        breakdowns = breakdown_table(assignments, attributes) if attributes else None
    model_only = assignments if model_only is None else _with_personas(model_only, links)
    with stage("evaluate"):
        evaluation = _gold_agreement(notes, model_only, seeds, links is not None, config.paths, overrides_report,
                                     named={"seed_themes": bool(seed_themes_path), "personas": bool(personas_path)})
    return RunResult(notes=notes, vectors=vectors, model=model, themes=themes,
                     assignments=assignments, k_selection=getattr(model, "k_selection_", pd.DataFrame()),
                     seeds=seeds, embedder_identity=embedder.identity,
                     embedder_weights_sha256=_weights_sha256(embedder), embedding_stats=stats,
                     config=config, inputs=inputs, overrides_report=overrides_report, privacy=privacy,
                     notices=notices, used_vectors=getattr(embedder, "used", {}), fit_inputs=fit_inputs,
                     cache=getattr(embedder, "cache_folder", None),
                     centring=centring_report(notes[analysable], model, config.themes.centre_by),
                     review_queue=queue, learning=learning, evaluation=evaluation, breakdowns=breakdowns,
                     **linked)


#: How a note's language was found (load's ``lang_source``), as the run summary says it.
_LANG_ORIGINS = {"front_matter": "documents' front matter", "detected": "detected from the text",
                 "file_majority": "the file's majority language"}


def centring_report(notes: pd.DataFrame, model: ThemeModel, centre_by) -> dict:
    """Which of ``[themes] centre_by`` the theme model centred on, where each column's values came
    from (a column of the input and its header, the documents' front matter, a default), and why
    any other was not used (not in the notes, or one value only)."""
    fitted = list(getattr(model, "group_effects_", {}) or {})
    centred, skipped = [], []
    for column in centre_by or ():
        if column in fitted:
            centred.append({"column": column, "from": _column_origins(notes, column)})
        elif column not in notes.columns or not len(notes):
            skipped.append({"column": column, "why": "not in the notes"})
        else:
            values = sorted(notes[column].astype(str).unique())
            skipped.append({"column": column, "why": f"one value only ({values[0]!r})" if len(values) == 1
                            else "not used by the model"})
    return {"centred_on": centred, "not_centred_on": skipped}


def _column_origins(notes: pd.DataFrame, column: str) -> list[str]:
    """Where the notes' values of ``column`` came from, most notes first."""
    headers = notes.attrs.get("columns", {})
    counts: dict[str, int] = {}
    documents = notes["doc_id"].astype(str).ne("").to_numpy() if "doc_id" in notes.columns else np.zeros(len(notes), bool)
    lang_source = notes["lang_source"].astype(str).to_numpy() if "lang_source" in notes.columns else None
    for i, source_file in enumerate(notes["source_file"].astype(str)):
        header = headers.get(source_file, {}).get(column)
        if column == "lang" and lang_source is not None and lang_source[i] != "column":
            origin = _LANG_ORIGINS.get(lang_source[i], lang_source[i])
        elif header is not None:
            origin = f"column {header!r}"
        elif documents[i]:
            origin = "documents' front matter"
        elif column == "source_type":
            origin = "'note' for table rows without a type column"
        else:
            origin = f"column {column!r}"
        counts[origin] = counts.get(origin, 0) + 1
    return sorted(counts, key=lambda origin: (-counts[origin], origin))


def name_forms(personas=(), names=()) -> list[str]:
    """Every form of a person's name a note may use: persona names, their first names and
    aliases, and the configured ``[privacy] names``."""
    forms = [*names]
    for persona in personas:
        forms.extend([persona.name, persona.name.split()[0] if persona.name.split() else "", *persona.aliases])
    return [form for form in forms if form and form.strip()]


def theme_texts(texts: list[str], personas=(), names=()) -> list[str]:
    """The texts themes, keywords and labels are computed on: names of personas (name, first
    name, aliases) and the configured ``[privacy] names`` are removed. The note's own text is
    unchanged in every output.

    Other capitalised words are left alone: on youth_leisure the words a corpus only ever
    capitalises (a heuristic tried on 2026-12-02 and removed) are as often products and places (Fortnite, Snap,
    Oslo) as people, and neutralising them lowered guided kappa from 0.41 to 0.32
    (benchmarks/README.md, "Dev suite")."""
    return neutralise_names(texts, name_forms(personas, names))


def embed_notes(config: Config, notes_paths=None, use_cache: bool = True,
                progress: bool = True) -> tuple[np.ndarray, pd.DataFrame, CachedEmbedder]:
    """One vector per note, in input order, of the masked text exactly as ``run`` embeds it.

    Input order: files by path, then the notes as they stand in each file (``load_notes`` orders
    by note id). A note without text (status other than ok) gets a zero row, so rows and notes
    stay aligned.
    """
    notes = load_notes(notes_paths_from(config, notes_paths), root=config.root)
    require_notes(notes)
    notes = notes.sort_values(["source_file", "source_row", "char_start"], kind="stable").reset_index(drop=True)
    # Persona names stay unmasked, as in ``run``, when the config's personas file is there.
    persona_path = config.resolve(config.paths.personas)
    personas = load_personas(persona_path) if persona_path and persona_path.is_file() else []
    notes, _ = mask_personal_data(notes, config, personas)
    analysable = notes["status"].eq(STATUS_OK).to_numpy()
    embedder = build_embedder(config, progress=progress, use_cache=use_cache)
    texts = notes.loc[analysable, "text"].tolist()
    if hasattr(embedder, "fit") and texts:
        embedder.fit(texts)
    found = embedder.encode(texts, kind="query")
    vectors = np.zeros((len(notes), found.shape[1]), dtype=np.float32)
    vectors[analysable] = found
    return vectors, notes, embedder


def mask_personal_data(notes: pd.DataFrame, config: Config, personas=()) -> tuple[pd.DataFrame, dict]:
    """Mask personal data in the note text and the input's own columns; persona names stay.

    Returns the masked notes and the privacy report (counts per kind, and where: note id,
    file, row, column; never the masked values).
    """
    if not config.privacy.mask:
        return notes, {"masking": False, "why": "[privacy] mask = false in the config"}
    keep = [form for persona in personas for form in (persona.name, *persona.aliases)]
    masker = Masker.from_config(config.privacy, keep=keep)
    columns = ["text"] + [c for c in notes.columns if c not in CORE_COLUMNS and not c.startswith(GOLD_PREFIX)
                          and notes[c].dtype != "int64"]
    masked, report = mask_frame(notes, masker, columns=columns)
    masked.attrs = notes.attrs
    return masked, {"masking": True, "summary": summarise(report),
                    "locations": report.sort_values(["note_id", "column", "kind"]).to_dict(orient="records")}


def with_paths(config: Config, **paths) -> Config:
    """The config as actually used, so the manifest can repeat the run exactly."""
    return dataclasses.replace(config, paths=dataclasses.replace(config.paths, **paths))


def as_config_path(path: Path, config: Config) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(config.root).resolve()).as_posix()
    except ValueError:
        return str(path)


def _weights_sha256(embedder) -> str | None:
    backend = getattr(embedder, "embedder", embedder)
    return getattr(backend, "weights_sha256", None)


def _gold_agreement(notes: pd.DataFrame, model_only: pd.DataFrame, seeds: list, linked_personas: bool, paths,
                    overrides_report: list[dict], named: dict) -> dict | None:
    """Agreement with the notes' own gold columns, when they have any (the model never saw them).

    Measured as ``analysis evaluate`` measures: the model's own assignments, without the
    overrides (``model_only``), with the run's seed file and persona file.
    """
    from analysis.metrics import EvaluationError, gold_agreement, measured_inputs

    if "gold_theme" not in notes.columns:
        return None
    persona_column = "gold_persona" if "gold_persona" in notes.columns else None
    try:
        report = gold_agreement(notes, model_only, "gold_theme", persona_column,
                                guided=bool(seeds), personas=linked_personas)
    except EvaluationError:
        return None
    report.measured = measured_inputs(paths.seed_themes, "named" if named["seed_themes"] else "config",
                                      paths.personas, "named" if named["personas"] else "config")
    record = report.record("gold_theme", persona_column)
    record["overrides_in_outputs"] = sum(r["state"] == "applied" for r in overrides_report)
    return record


def _empty_themes() -> pd.DataFrame:
    return pd.DataFrame(columns=["theme_id", "label", "kind", "keywords", "size", "quote_ids"])


def _theme_table(notes, vectors, model, seeds, names, config) -> pd.DataFrame:
    labelled = theme_labels(notes.reset_index(drop=True), vectors, model.labels_, seed_names=names,
                            n_keywords=config.themes.n_keywords, n_quotes=config.themes.n_quotes)
    kinds = dict(zip(model.themes_["theme_id"], model.themes_["kind"]))
    labelled.insert(2, "kind", labelled["theme_id"].map(kinds))
    # Seed themes no note matched are still listed, with size 0, so gaps are visible.
    missing = [s for s in seeds if s.id not in set(labelled["theme_id"]) and s.id in kinds]
    extra = pd.DataFrame([{"theme_id": s.id, "label": names.get(s.id, s.name), "kind": "seed", "keywords": [],
                           "size": 0, "quote_ids": []} for s in missing])
    table = pd.concat([labelled, extra], ignore_index=True) if len(extra) else labelled
    order = {s.id: i for i, s in enumerate(seeds)}
    table["_order"] = table["theme_id"].map(lambda t: (order.get(t, len(order)), t))
    return table.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _assignments(notes, analysable, model, themes) -> pd.DataFrame:
    frame = notes[["note_id", "source_file", "source_row", "source_type", "doc_id", "char_start",
                   "char_end", "lang", "text", "status", "status_reason", "flags"]].copy()
    n = len(frame)
    theme_id = np.full(n, "", dtype=object)
    score = np.full(n, np.nan)
    margin = np.full(n, np.nan)
    secondary = np.full(n, "", dtype=object)
    status = frame["status"].to_numpy(dtype=object).copy()
    reason = frame["status_reason"].to_numpy(dtype=object).copy()
    if analysable.any():
        theme_id[analysable] = model.labels_
        score[analysable] = np.round(model.scores_, 6)
        margin[analysable] = np.round(model.margins_, 6)
        secondary[analysable] = model.secondary_
        status[analysable] = model.status_
        reason[analysable] = model.reason_
    reason[status == STATUS_EMPTY] = "text is empty"
    labels = dict(zip(themes["theme_id"], themes["label"]))
    frame["theme_id"] = theme_id
    frame["theme_label"] = [labels.get(t, "") for t in theme_id]
    frame["theme_score"] = score
    frame["theme_margin"] = margin
    frame["secondary_theme_id"] = secondary
    frame["status"] = status
    frame["status_reason"] = reason
    # The input's own columns (site, workshop, participant_role, …) follow, so that exports and
    # reports can use them; gold labels stay out of the outputs a model run writes.
    attributes = [c for c in notes.columns
                  if c not in CORE_COLUMNS and c not in ASSIGNMENT_COLUMNS and not c.startswith(GOLD_PREFIX)]
    frame[attributes] = notes[attributes].to_numpy()
    return frame[[c for c in ASSIGNMENT_COLUMNS if c not in PERSONA_COLUMNS] + attributes].reset_index(drop=True)


def _with_personas(themed: pd.DataFrame, links: pd.DataFrame | None) -> pd.DataFrame:
    """The assignments: ``themed`` (``_assignments``) with each note's persona link, or none without links."""
    frame = themed.copy()
    if links is None:
        frame["persona_id"] = NO_PERSONA
        frame["persona_method"] = "none"
        frame["persona_score"] = 0.0
    else:
        frame["persona_id"] = links["persona_id"].to_numpy()
        frame["persona_method"] = links["persona_method"].to_numpy()
        frame["persona_score"] = np.round(links["persona_score"].astype(float).to_numpy(), 6)
    attributes = [c for c in themed.columns if c not in ASSIGNMENT_COLUMNS]
    return frame[ASSIGNMENT_COLUMNS + attributes]


def note_space(result: RunResult, embedder):
    """The run's note vectors as persona linking compares them: centred by the fitted ThemeModel.

    Notes without text (not analysable) get a zero row. Persona descriptions and needs are
    embedded with ``embedder`` and centred by the same model (its overall mean; they belong
    to no language or source-type group).
    """
    return _note_space(result.notes, result.vectors, result.model, embedder)


def _note_space(notes: pd.DataFrame, raw_vectors: np.ndarray, model: ThemeModel, embedder):
    from analysis.personas import NoteSpace

    analysable = notes["status"].eq(STATUS_OK).to_numpy()
    width = raw_vectors.shape[1] if raw_vectors.size else 1
    vectors = np.zeros((len(notes), width))
    if analysable.any():
        groups = notes.loc[analysable, [c for c in model.centre_by or () if c in notes.columns]]
        vectors[analysable] = model.centre(raw_vectors, groups)
        centre = model.centre
    else:
        def centre(raw):
            return np.zeros((len(raw), width))
    return NoteSpace(tuple(notes["note_id"].astype(str)), vectors, embedder, centre)


def _link_personas(notes: pd.DataFrame, vectors: np.ndarray, model: ThemeModel, themed: pd.DataFrame,
                   personas: list, embedder, config: Config) -> dict:
    """The run's persona fields (``RunResult``'s personas, persona_links, persona_theme, persona_needs,
    trace, site_theme, persona_report). ``themed`` is the assignments before the persona columns."""
    from analysis.personas import (METHOD_SIMILARITY, compare_groups, link_personas, need_coverage, need_support,
                                   need_threshold_in_use, similarity_threshold_in_use, theme_persona_table,
                                   trace_table)

    notes = notes.drop(columns=[c for c in notes.columns if c.startswith(GOLD_PREFIX)])
    space = _note_space(notes, vectors, model, embedder)
    links = link_personas(notes, personas, space, config.personas)
    verdict = links.attrs.get("similarity", {})
    links = links.reset_index(drop=True)
    persona_theme = theme_persona_table(themed, links)
    # Need coverage compares the needs with the run's own centred note vectors (the NoteSpace):
    # only the need texts are embedded, never the notes again.
    support = need_support(personas, themed, space, notes)
    need_choice = need_threshold_in_use(config.personas)
    threshold = need_choice.threshold
    site_theme = compare_groups(themed, "site", notes=notes) \
        if "site" in notes.columns and notes["site"].nunique() > 1 else None
    similarity_scores = links["persona_score"].where(links["persona_method"] == METHOD_SIMILARITY)
    choice = similarity_threshold_in_use(config.personas, scores=similarity_scores, verdict=verdict)
    why = choice.reason
    if verdict and not verdict.get("reliable", True):
        why += "; similarity linked nothing on these notes because " + "; ".join(verdict["reasons"])
    persona_report = {
        "similarity_threshold": choice.threshold,
        "why": why,
        "similarity": {"status": "reliable" if verdict.get("reliable") else "not reliable: linked nothing",
                       **verdict},
        "need_threshold": threshold,
        "need_threshold_why": need_choice.reason,
        "links_by_method": links["persona_method"].value_counts().sort_index().to_dict(),
        "theme_persona_tests": persona_theme.attrs.get("tests", {}),
        "site_theme_tests": site_theme.attrs.get("tests", {}) if site_theme is not None else None,
    }
    # Similarities come from BLAS products whose last bits depend on the kernel: 6 decimals, as in assignments.
    return {"personas": personas, "persona_links": links, "persona_theme": persona_theme,
            "persona_needs": _rounded(need_coverage(personas, themed, space, threshold, notes=notes,
                                                    support=support)),
            "trace": _rounded(trace_table(personas, themed, links, space, threshold, notes=notes, support=support)),
            "site_theme": site_theme, "persona_report": persona_report}

def _rounded(frame: pd.DataFrame, decimals: int = 6) -> pd.DataFrame:
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{c: frame[c].round(decimals) for c in floats}) if len(floats) else frame
