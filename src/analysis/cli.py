"""Command line: ``analysis run``, ``analysis embed``, ``analysis evaluate``.

Every command reads the same ``analysis.toml`` as the notebooks. User mistakes (a missing
file, a bad column, a broken YAML file) end with one clear message and exit code 2, never a
traceback.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from analysis.config import ConfigError, load_config

app = typer.Typer(
    help="From workshop sticky notes and interview notes to themes and personas, offline.\n\n"
         "Start with `analysis run`; it reads analysis.toml and writes to data/processed/.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The TOML config shared with the notebooks.")]
NotesOption = Annotated[Optional[list[Path]], typer.Option(
    "--notes", help="A notes file (CSV, XLSX, Markdown, TXT) or a folder; repeat for more. "
                    "Default: [paths] notes in the config.")]
PersonasOption = Annotated[Optional[Path], typer.Option(
    "--personas", help="personas.yml (ids, names, aliases, descriptions, needs).")]
SeedOption = Annotated[Optional[Path], typer.Option(
    "--seed-themes", help="A seed codebook, YAML: themes: [{id, name, description, examples?}].")]
TextColumnOption = Annotated[Optional[str], typer.Option(
    "--text-column", help="The header of the column holding the notes (default: text, tekst, notat, ... "
                          "are recognised; [columns] text in the config).")]
IdColumnOption = Annotated[Optional[str], typer.Option(
    "--id-column", help="The header of the note-id column (default: note_id, id, nr, ... are recognised).")]
ColumnOption = Annotated[Optional[list[str]], typer.Option(
    "--column", help="ROLE=HEADER for any column role (text, note_id, lang, source_type, site, workshop, "
                     "participant_role, persona); repeat for more. Adds to [columns] in the config.")]
OverridesOption = Annotated[Optional[Path], typer.Option(
    "--overrides", help="The analyst's overrides file (rename/merge/split/pin/exclude): `run` applies it, `review` "
                        "learns from it and writes --accept to it, `evaluate` measures after learning from it. "
                        "Default: [paths] overrides for `run` and `review`, none for `evaluate`.")]


def _columns_override(text_column, id_column, column) -> dict[str, str]:
    """[columns] keys from --text-column, --id-column and --column ROLE=HEADER."""
    from analysis.config import COLUMN_ROLES, did_you_mean

    mapping = {}
    for item in column or []:
        role, sep, header = item.partition("=")
        role = role.strip().lower()
        if not sep or not header.strip():
            raise ConfigError(f"--column {item!r}: write ROLE=HEADER, e.g. --column workshop=Verksted.")
        if role not in COLUMN_ROLES:
            raise ConfigError(f"--column {item!r}: {role!r} is not a column role{did_you_mean(role, COLUMN_ROLES)} "
                              f"Roles are {', '.join(COLUMN_ROLES)}.")
        mapping[role] = header.strip()
    if text_column:
        mapping["text"] = text_column
    if id_column:
        mapping["note_id"] = id_column
    return mapping


def _user_errors() -> tuple[type[Exception], ...]:
    from analysis.embed.base import EmbedderNotAvailable
    from analysis.load import LoadError
    from analysis.personas import PersonaFileError
    from analysis.manifest import ManifestError
    from analysis.overrides import OverridesFileError
    from analysis.themes import SeedFileError

    return (ConfigError, LoadError, PersonaFileError, SeedFileError, EmbedderNotAvailable, FileNotFoundError,
            OverridesFileError, ManifestError)


def _log_masked(config=None) -> None:
    """Log warnings to stderr, with personal data masked whatever the config says."""
    from analysis.privacy import Masker, MaskingFilter

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
    masker = Masker.from_config(config.privacy) if config is not None else Masker()
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, MaskingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(MaskingFilter(masker))


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@contextmanager
def _exit_on_user_error(*more: type[Exception]):
    """A user's mistake (bad file, config, manifest, ...) ends as one 'error:' line and exit code 2."""
    try:
        yield
    except (*_user_errors(), *more) as error:
        _fail(error)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Your project folder, holding your notes export (and, if you "
                                                "have them, your codebook and personas YAML).")],
    notes: NotesOption = None,
    seed_themes: SeedOption = None,
    personas: PersonasOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing analysis.toml.")] = False,
) -> None:
    """Write a commented analysis.toml for your own notes, and say what to run next.

    The notes are the CSV/XLSX/Markdown files in FOLDER (or --notes); a YAML file starting with
    'themes:' is taken as the seed codebook and one starting with 'personas:' as the personas.
    Outputs and the embedding cache go to FOLDER/out.
    """
    from analysis.project import ProjectError, plan_project, write_project

    with _exit_on_user_error(ProjectError):
        project = plan_project(folder, notes=notes, seed_themes=seed_themes, personas=personas)
        written = write_project(project, force=force)
    typer.echo(f"wrote {written}")
    typer.echo(f"  notes: {', '.join(project.notes)}"
               + (f" (text column {project.text_column!r})" if project.text_column else ""))
    typer.echo(f"  codebook: {project.seed_themes or 'none'}; personas: {project.personas or 'none'}")
    typer.echo(f"  breakdowns: {', '.join(project.breakdowns) or 'none'}; outputs and cache: {folder / 'out'}")
    for problem in project.problems:
        typer.secho(f"  to fix: {problem}", fg=typer.colors.YELLOW)
    typer.echo(f"next: analysis run --config {written}")


@app.command()
def run(
    config: ConfigOption = Path("analysis.toml"),
    notes: NotesOption = None,
    personas: PersonasOption = None,
    seed_themes: SeedOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: [paths] out (data/processed).")] = None,
    no_seed_themes: Annotated[bool, typer.Option("--no-seed-themes", help="Find all themes inductively.")] = False,
    no_personas: Annotated[bool, typer.Option("--no-personas", help="Link no personas.")] = False,
    overrides_file: OverridesOption = None,
    text_column: TextColumnOption = None,
    id_column: IdColumnOption = None,
    column: ColumnOption = None,
    breakdown: Annotated[Optional[list[str]], typer.Option(
        "--breakdown", help="A note attribute (column) to break the themes down by: who says what. Repeat "
                            "for more; adds to [report] breakdowns.")] = None,
    embedding_backend: Annotated[Optional[str], typer.Option(
        "--embedding-backend", help="Embedding engine for this run (e5, e5-fast, tfidf, ...). "
                                    "Default: [embedding] backend in the config.")] = None,
) -> None:
    """Run the whole analysis: load, embed, find themes, link personas, write tables and figures.

    Writes assignments.csv (one row per input note, with status), themes.csv,
    k_selection.csv, persona_theme.csv, breakdowns.csv and figures/*.png, then prints a short
    summary. With --notes, the config's seed codebook and personas are used only if those notes
    are among the config's own [paths] notes (the first lines say which files are used).
    """
    import dataclasses

    from analysis import outputs, pipeline
    from analysis.breakdowns import BreakdownError

    _log_masked()
    with _exit_on_user_error(BreakdownError):
        removed = {key: "" for key, flag in (("seed_themes", no_seed_themes), ("personas", no_personas)) if flag}
        cfg = load_config(config, paths=removed, columns=_columns_override(text_column, id_column, column),
                          embedding={"backend": embedding_backend})
        if breakdown:
            cfg = dataclasses.replace(cfg, report=dataclasses.replace(
                cfg.report, breakdowns=(*cfg.report.breakdowns, *breakdown)))
        _log_masked(cfg)
        out_dir = out or cfg.resolve(cfg.paths.out)
        # Which codebook and personas a run on --notes uses is said first, before the slow part.
        for line in pipeline.reference_files(cfg, notes, None if no_seed_themes else seed_themes,
                                             None if no_personas else personas, overrides_file)[1]:
            typer.secho(line, fg=typer.colors.YELLOW)
        result = pipeline.run(cfg, notes_paths=notes, personas_path=None if no_personas else personas,
                              seed_themes_path=None if no_seed_themes else seed_themes,
                              overrides_path=overrides_file, out_dir=out_dir)
        written = outputs.write_outputs(result, out_dir)
    for line in outputs.summary_lines(result, written, out_dir, notices=False):
        typer.echo(line)


@app.command()
def embed(
    notes: Annotated[list[Path], typer.Option("--notes", help="A notes file or folder, as for `run`; repeat for more.")],
    out: Annotated[Path, typer.Option("--out", help="The .npy file for the vectors, one row per note in input order.")],
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="Embedding engine (e5, e5-fast, tfidf, ...). Default: [embedding] backend in the config.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the embedding cache.")] = False,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="The TOML config. Default: analysis.toml if present, else the defaults.")] = None,
) -> None:
    """Write the notes' vectors (masked text, as `run` embeds it) for use in your own analyses.

    Rows follow the input: files by path, notes as they stand in each file. Next to FILE.npy,
    FILE.notes.csv names each row's note (note_id, source_file, source_row, status); a note
    without text gets a zero row.
    """
    import numpy as np

    from analysis import pipeline

    _log_masked()
    with _exit_on_user_error():
        if out.suffix != ".npy":
            raise ConfigError(f"--out {out}: the vectors file must end in .npy, e.g. --out vectors.npy.")
        config = config if config is not None or not Path("analysis.toml").is_file() else Path("analysis.toml")
        cfg = load_config(config, embedding={"backend": backend})
        _log_masked(cfg)
        vectors, notes_table, embedder = pipeline.embed_notes(cfg, notes_paths=notes, use_cache=not no_cache)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, vectors)
        index = out.with_suffix(".notes.csv")
        notes_table[["note_id", "source_file", "source_row", "status"]].to_csv(index, index=False)
    stats = embedder.last_stats
    typer.echo(f"{len(vectors)} notes x {vectors.shape[1]} dims ({embedder.identity}; "
               f"{stats.get('from_cache', 0)} from cache, {stats.get('embedded', 0)} embedded) -> {out}, {index}")


@app.command()
def evaluate(
    gold: Annotated[str, typer.Option("--gold", help="Column with the gold theme labels.")] = "gold_theme",
    config: ConfigOption = Path("analysis.toml"),
    notes: NotesOption = None,
    seed_themes: SeedOption = None,
    personas: PersonasOption = None,
    no_seed_themes: Annotated[bool, typer.Option("--no-seed-themes", help="Measure a purely inductive run.")] = False,
    no_personas: Annotated[bool, typer.Option("--no-personas", help="Measure without personas.")] = False,
    gold_persona: Annotated[Optional[str], typer.Option("--gold-persona", help="Column with gold persona ids.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    overrides_file: OverridesOption = None,
) -> None:
    """Measure agreement with gold labels. The gold columns are removed before the model runs.

    The model is measured as it is, without the overrides file, with the seed themes and
    personas named here or else the config's; the output says which (as evaluation.json does).
    With --overrides FILE it is measured after learning from FILE, on the notes FILE does not
    pin or exclude.
    """
    from analysis import evaluate as evaluation

    with _exit_on_user_error(evaluation.EvaluationError):
        paths = {**({"seed_themes": ""} if no_seed_themes else {}), **({"personas": ""} if no_personas else {})}
        cfg = load_config(config, paths=paths)
        report = evaluation.evaluate_run(cfg, gold_column=gold, notes_paths=notes,
                                         gold_persona_column=gold_persona,
                                         seed_themes_path=None if no_seed_themes else seed_themes,
                                         personas_path=None if no_personas else personas,
                                         overrides_path=overrides_file)
    if as_json:
        typer.echo(json.dumps(report.record(gold, gold_persona), ensure_ascii=False, sort_keys=True))
        return
    for line in evaluation.measured_lines(report.measured):
        typer.echo(line)
    for key, value in report.metrics.items():
        if key != "per_theme_recall":
            typer.echo(f"{key:>18}: {value}")
    typer.echo("per-theme recall (after optimal matching):")
    for theme, recall in (report.metrics.get("per_theme_recall") or {}).items():
        typer.echo(f"  {theme:<28} {recall}")


@app.command()
def review(
    config: ConfigOption = Path("analysis.toml"),
    notes: NotesOption = None,
    seed_themes: SeedOption = None,
    personas: PersonasOption = None,
    overrides_file: OverridesOption = None,
    n: Annotated[int, typer.Option("--n", help="How many notes to list.")] = 20,
    accept: Annotated[Optional[tuple[str, str]], typer.Option(
        "--accept", help="NOTE_ID THEME: pin the note to the theme in the overrides file (a theme id that "
                         "does not exist yet creates the theme) and stop.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="With --accept: the name of a new theme.")] = None,
) -> None:
    """List the notes whose decision would teach the model most, or record one decision.

    Each row shows the theme the model suggests and its runner-up (probabilities), and why the
    note is asked about. To decide a note, write one line under pin: in the overrides file,
    `- {note: NOTE_ID, theme: THEME}` (or under exclude: for a note of no theme), or let
    `analysis review --accept NOTE_ID THEME` write it; the next run learns from it.
    """
    from analysis import pipeline
    from analysis.review import add_pin, review_queue

    _log_masked()
    with _exit_on_user_error():
        cfg = load_config(config)
        _log_masked(cfg)
        chosen, _ = pipeline.reference_files(cfg, notes, seed_themes, personas, overrides_file)
        if accept:
            if chosen["overrides"] is None:
                raise ConfigError("no overrides file to write to: pass --overrides FILE.")
            line = add_pin(chosen["overrides"], accept[0], accept[1], name)
            typer.echo(f"{chosen['overrides']}: pin {line}")
            return
        result = pipeline.run(cfg, notes_paths=notes, seed_themes_path=seed_themes, personas_path=personas,
                              overrides_path=overrides_file, progress=False)
    if result.learning is None:
        typer.echo("no analysable notes or themes: nothing to review")
        return
    analysable = result.notes["status"].eq("ok").to_numpy()
    queue = review_queue(result.notes[analysable], result.model.centre(
        result.vectors, result.notes.loc[analysable, [c for c in cfg.themes.centre_by if c in result.notes.columns]]),
        result.learning, result.model.status_, n=n)
    from analysis.review import confirmed_counts_line

    typer.echo(confirmed_counts_line(result.learning))
    for row in queue.itertuples(index=False):
        text = " ".join(str(row.text).split())
        typer.echo(f"{row.rank:>3}  {row.note_id}  {row.theme_id} {row.theme_score:.2f} | "
                   f"{row.runner_up_theme_id} {row.runner_up_score:.2f}  ({row.reason})")
        typer.echo(f"     {text[:160]}")
    typer.echo("decide a note: analysis review --accept NOTE_ID THEME  (or a line under pin: in the overrides file)")


@app.command()
def verify(
    manifest: Annotated[Optional[Path], typer.Argument(
        help="The manifest.json a run wrote next to its outputs (not needed with --bundle).")] = None,
    config: ConfigOption = Path("analysis.toml"),
    work_dir: Annotated[Optional[Path], typer.Option(
        "--work-dir", help="Where the re-run writes its outputs. Default: a temporary folder, removed after.")] = None,
    bundle: Annotated[Optional[Path], typer.Option(
        "--bundle", help="A reproduction bundle (analysis export bundle): re-run from its recorded vectors.")] = None,
    notes: Annotated[Optional[list[Path]], typer.Option(
        "--notes", help="Your copy of the notes (files or folders, anywhere), matched to the recorded inputs "
                        "by sha256. Default: the inputs in the bundle, else the recorded paths.")] = None,
) -> None:
    """Re-run the analysis a manifest describes and report every difference.

    Inputs are checked by sha256, then the run is repeated with the manifest's config and each
    output is compared byte for byte. Without --bundle the notes are embedded again and the
    report starts with how far the new vectors are from the recorded ones; with --bundle the
    run re-uses the bundle's vectors. Exit code 0: identical; 1: differences (listed).
    """
    import tempfile

    from analysis import outputs
    from analysis.bundle import BundleError, open_bundle, stage_inputs
    from analysis.manifest import read_manifest

    _log_masked()
    root = config.resolve().parent if config.is_file() else Path.cwd()
    if (manifest is None) == (bundle is None):
        _fail(ValueError("give either a manifest.json or --bundle FILE.zip"))
    with _exit_on_user_error(BundleError), tempfile.TemporaryDirectory(prefix="analysis-verify-") as tmp:
        options = {}
        if bundle is not None:
            opened = open_bundle(bundle, Path(tmp) / "bundle")
            manifest, root = opened.manifest, opened.inputs or root
            options.update(cache=opened.cache, recorded_vectors=opened.vectors)
        if notes:
            root = stage_inputs(read_manifest(manifest), Path(tmp) / "inputs", root, notes_paths=notes)
        check = outputs.verify(manifest, root=root, work_dir=work_dir or Path(tmp) / "rerun", **options)
    for line in check.lines():
        typer.echo(line)
    if not check.identical:
        raise typer.Exit(code=1)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write, e.g. report.html.")],
    from_dir: Annotated[Optional[Path], typer.Option(
        "--from", help="The run folder to report on. Default: the config's paths.out (data/processed).")] = None,
    config: ConfigOption = Path("analysis.toml"),
    title: Annotated[Optional[str], typer.Option("--title", help="The report's title.")] = None,
) -> None:
    """Write one self-contained HTML report of a finished run (figures embedded, no JavaScript, offline)."""
    from analysis.export.report import ReportError, write_report

    with _exit_on_user_error(ReportError):
        run_dir = from_dir
        if run_dir is None:
            cfg = load_config(config)
            run_dir = cfg.resolve(cfg.paths.out)
        written = write_report(run_dir, out, title=title)
    typer.echo(f"report: {written} ({written.stat().st_size // 1024} KB, from {run_dir})")


# --------------------------------------------------------------------------- export / import

export_app = typer.Typer(help="Write a finished run for QDA software (NVivo, ATLAS.ti, QualCoder) or people.",
                         no_args_is_help=True)
import_app = typer.Typer(help="Read a project from QDA software back as notes.", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")

FromOption = Annotated[Optional[Path], typer.Option(
    "--from", help="The run folder to export. Default: [paths] out in the config (data/processed).")]


def _export_error() -> type[Exception]:
    from analysis.export import ExportError

    return ExportError


def _run_folder(config: Path, from_dir: Path | None) -> Path:
    if from_dir is not None:
        return from_dir
    cfg = load_config(config)
    return cfg.resolve(cfg.paths.out)


def _export_inputs(run_dir: Path, seed_themes: Path | None, personas: Path | None, want_personas: bool):
    """Seed themes and personas for descriptions: the options, else the run's own (its manifest's run_inputs).

    Never the config's files: they may belong to other notes (the example's, for one).
    """
    from analysis.export import run_inputs
    from analysis.personas import load_personas
    from analysis.themes import load_seed_themes

    own = run_inputs(run_dir)
    seed_path = seed_themes or own.get("seed_themes")
    persona_path = personas or own.get("personas")
    seeds = load_seed_themes(seed_path) if seed_path else None
    people = load_personas(persona_path) if want_personas and persona_path else None
    return seeds, people


@export_app.command("qdpx")
def export_qdpx(
    out: Annotated[Path, typer.Option("--out", help="The .qdpx file to write.")],
    from_dir: FromOption = None,
    config: ConfigOption = Path("analysis.toml"),
    seed_themes: SeedOption = None,
    personas: PersonasOption = None,
) -> None:
    """A REFI-QDA project (.qdpx): themes as codes, notes as coded selections, personas as cases."""
    from analysis.export.refi import write_qdpx

    with _exit_on_user_error(_export_error()):
        run_dir = _run_folder(config, from_dir)
        seeds, people = _export_inputs(run_dir, seed_themes, personas, want_personas=True)
        written = write_qdpx(run_dir, out, seed_themes=seeds, personas=people)
    typer.echo(f"qdpx: {written} ({written.stat().st_size // 1024} KB, from {run_dir})")


@export_app.command("qdc")
def export_qdc(
    out: Annotated[Path, typer.Option("--out", help="The .qdc codebook to write.")],
    from_dir: FromOption = None,
    config: ConfigOption = Path("analysis.toml"),
    seed_themes: SeedOption = None,
) -> None:
    """A REFI-QDA codebook (.qdc) of the run's themes, for import into any QDA software."""
    from analysis.export.refi import write_qdc

    with _exit_on_user_error(_export_error()):
        run_dir = _run_folder(config, from_dir)
        seeds, _ = _export_inputs(run_dir, seed_themes, None, want_personas=False)
        written = write_qdc(run_dir, out, seed_themes=seeds)
    typer.echo(f"qdc: {written} (from {run_dir})")


@export_app.command("codebook")
def export_codebook(
    out: Annotated[Path, typer.Option("--out", help="The folder for codebook.md and codebook.csv.")],
    from_dir: FromOption = None,
    config: ConfigOption = Path("analysis.toml"),
    seed_themes: SeedOption = None,
) -> None:
    """codebook.md and codebook.csv: per theme its definition, keywords, size and three quotes."""
    from analysis.export.codebook import write_codebook

    with _exit_on_user_error(_export_error()):
        run_dir = _run_folder(config, from_dir)
        seeds, _ = _export_inputs(run_dir, seed_themes, None, want_personas=False)
        written = write_codebook(run_dir, out, seed_themes=seeds)
    for path in written.values():
        typer.echo(f"codebook: {path}")


@export_app.command("xlsx")
def export_xlsx(
    out: Annotated[Path, typer.Option("--out", help="The .xlsx workbook to write.")],
    from_dir: FromOption = None,
    config: ConfigOption = Path("analysis.toml"),
) -> None:
    """The run's assignments and themes as an Excel workbook (no cell is ever a formula)."""
    from analysis.export.codebook import write_assignments_xlsx

    with _exit_on_user_error(_export_error()):
        written = write_assignments_xlsx(_run_folder(config, from_dir), out)
    typer.echo(f"xlsx: {written}")


@export_app.command("bundle")
def export_bundle(
    out: Annotated[Path, typer.Option("--out", help="The bundle to write, e.g. reproduce.zip.")],
    from_dir: FromOption = None,
    config: ConfigOption = Path("analysis.toml"),
    with_inputs: Annotated[bool, typer.Option(
        "--with-inputs", help="Also pack the input files (they may hold personal data; default: hashes only).")] = False,
) -> None:
    """A reproduction bundle: manifest, config, input hashes, the run's vectors and its outputs."""
    from analysis.bundle import BundleError, write_bundle

    with _exit_on_user_error(BundleError):
        run_dir = _run_folder(config, from_dir)
        root = config.resolve().parent if config.is_file() else Path.cwd()
        written = write_bundle(run_dir, out, root=root, with_inputs=with_inputs)
    typer.echo(f"bundle: {written} ({written.stat().st_size // 1024} KB, from {run_dir}"
               f"{', with inputs' if with_inputs else ', input hashes only'})")


@import_app.command("qdpx")
def import_qdpx(
    project: Annotated[Path, typer.Argument(help="A .qdpx project exported by NVivo, ATLAS.ti, MAXQDA, QualCoder.")],
    out: Annotated[Path, typer.Option("--out", help="The notes CSV to write (use it with --notes).")],
) -> None:
    """Coded selections as notes, the first code in gold_theme (for `analysis evaluate`)."""
    from analysis.exchange.refi import read_qdpx, write_notes_csv

    with _exit_on_user_error(_export_error()):
        notes, codes = read_qdpx(project)
        written = write_notes_csv(notes, out)
    coded = int((notes["gold_theme"] != "").sum())
    typer.echo(f"imported {len(notes)} notes ({coded} coded) from {notes['source_file'].nunique()} sources; "
               f"{len(codes)} codes -> {written}")


if __name__ == "__main__":  # pragma: no cover
    app()
