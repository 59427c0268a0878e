"""Command line: ``analysis run``, ``analysis evaluate``.

Every command reads the same ``analysis.toml`` as the notebooks. User mistakes (a missing
file, a bad column, a broken YAML file) end with one clear message and exit code 2, never a
traceback.
"""

from __future__ import annotations

import json
import logging
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


def _user_errors() -> tuple[type[Exception], ...]:
    from analysis.embed.base import EmbedderNotAvailable
    from analysis.load import LoadError
    from analysis.personas import PersonaFileError
    from analysis.manifest import ManifestError
    from analysis.overrides import OverridesFileError
    from analysis.themes import SeedFileError

    return (ConfigError, LoadError, PersonaFileError, SeedFileError, EmbedderNotAvailable, FileNotFoundError,
            OverridesFileError, ManifestError)


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: ConfigOption = Path("analysis.toml"),
    notes: NotesOption = None,
    personas: PersonasOption = None,
    seed_themes: SeedOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder. Default: [paths] out (data/processed).")] = None,
    no_seed_themes: Annotated[bool, typer.Option("--no-seed-themes", help="Find all themes inductively.")] = False,
) -> None:
    """Run the whole analysis: load, embed, find themes, link personas, write tables and figures.

    Writes assignments.csv (one row per input note, with status), themes.csv,
    k_selection.csv, persona_theme.csv and figures/*.png, then prints a short summary.
    """
    from analysis import pipeline

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = {"paths": {"seed_themes": ""}} if no_seed_themes else {}
        cfg = load_config(config, **overrides)
        result = pipeline.run(cfg, notes_paths=notes, personas_path=personas,
                              seed_themes_path=None if no_seed_themes else seed_themes)
        out_dir = out or cfg.resolve(cfg.paths.out)
        written = pipeline.write_outputs(result, out_dir)
    except _user_errors() as error:
        _fail(error)
    for line in pipeline.summary_lines(result, written, out_dir):
        typer.echo(line)


@app.command()
def evaluate(
    gold: Annotated[str, typer.Option("--gold", help="Column with the gold theme labels.")] = "gold_theme",
    config: ConfigOption = Path("analysis.toml"),
    notes: NotesOption = None,
    seed_themes: SeedOption = None,
    personas: PersonasOption = None,
    gold_persona: Annotated[Optional[str], typer.Option("--gold-persona", help="Column with gold persona ids.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Measure agreement with gold labels. The gold columns are removed before the model runs."""
    from analysis import evaluate as evaluation

    try:
        cfg = load_config(config, paths={"seed_themes": "" if seed_themes is None else str(seed_themes),
                                         "personas": "" if personas is None else str(personas)})
        report = evaluation.evaluate_run(cfg, gold_column=gold, notes_paths=notes,
                                         gold_persona_column=gold_persona)
    except (*_user_errors(), evaluation.EvaluationError) as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(report.metrics, ensure_ascii=False, sort_keys=True))
        return
    for key, value in report.metrics.items():
        if key != "per_theme_recall":
            typer.echo(f"{key:>18}: {value}")
    typer.echo("per-theme recall (after optimal matching):")
    for theme, recall in (report.metrics.get("per_theme_recall") or {}).items():
        typer.echo(f"  {theme:<28} {recall}")


@app.command()
def verify(
    manifest: Annotated[Path, typer.Argument(help="The manifest.json a run wrote next to its outputs.")],
    config: ConfigOption = Path("analysis.toml"),
    work_dir: Annotated[Optional[Path], typer.Option(
        "--work-dir", help="Where the re-run writes its outputs. Default: a temporary folder, removed after.")] = None,
) -> None:
    """Re-run the analysis a manifest describes and report every difference.

    Inputs are checked by sha256, then the run is repeated with the manifest's config and each
    output is compared byte for byte. Exit code 0: identical; 1: differences (listed).
    """
    import tempfile

    from analysis import pipeline

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = config.resolve().parent if config.is_file() else Path.cwd()
    try:
        if work_dir is None:
            with tempfile.TemporaryDirectory(prefix="analysis-verify-") as tmp:
                check = pipeline.verify(manifest, root=root, work_dir=Path(tmp))
        else:
            check = pipeline.verify(manifest, root=root, work_dir=work_dir)
    except _user_errors() as error:
        _fail(error)
    for line in check.lines():
        typer.echo(line)
    if not check.identical:
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover
    app()
