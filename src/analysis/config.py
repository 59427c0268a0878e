"""Run configuration: dataclasses loaded from a committed TOML file.

The CLI and the notebooks read the same file (``analysis.toml``). Loading does no work
beyond parsing and validating; paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.files import CSV_DIALECTS, DEFAULT_CSV_DIALECT


class ConfigError(ValueError):
    """A problem in the config file, phrased for the user who edits it."""


#: How a seed theme is put into words for its embedding (``themes.seed_texts``):
#: "name_description" embeds "name: description" as one text; "all" averages the embeddings of
#: the name, the description and each example (the default). The examples count in the lexical
#: views either way. "name_description" raised guided kappa on the dev sets but lowered what the
#: review loop's first decisions gain on youth_leisure (benchmarks/README.md, "Dev suite").
SEED_TEXTS = ("all", "name_description")


@dataclass(frozen=True)
class PathsConfig:
    notes: tuple[str, ...] = ("data/raw",)
    personas: str | None = "data/raw/personas.yml"
    seed_themes: str | None = "data/raw/seed_themes.yml"
    overrides: str | None = "data/overrides.yml"
    out: str = "data/processed"
    cache: str = ""   # "": a folder "cache" inside out


#: Roles a notes column can play; ``[columns]`` maps each to the user's header.
COLUMN_ROLES = ("text", "note_id", "lang", "source_type", "site", "workshop", "participant_role", "persona")


@dataclass(frozen=True)
class ColumnsConfig:
    """The user's header for each column role ("" : recognised by name, see load.TEXT_HEADERS)."""

    text: str = ""
    note_id: str = ""
    lang: str = ""
    source_type: str = ""
    site: str = ""
    workshop: str = ""
    participant_role: str = ""
    persona: str = ""

    def mapping(self) -> dict[str, str]:
        """role -> header, for the roles that are mapped."""
        return {role: getattr(self, role) for role in COLUMN_ROLES if getattr(self, role).strip()}


@dataclass(frozen=True)
class EmbeddingConfig:
    backend: str = "e5"
    model: str | None = None
    batch_size: int = 32


@dataclass(frozen=True)
class ThemesConfig:
    random_state: int = 0
    n_themes: int | None = None
    min_k: int = 2
    max_k: int | None = None    # None: follows the corpus size (themes.default_max_k)
    centre_by: tuple[str, ...] = ("lang", "source_type")
    seed_threshold: float = 0.08
    secondary_margin: float = 0.02
    min_theme_size: int = 3
    n_keywords: int = 8
    n_quotes: int = 4
    max_fit_notes: int | None = 5000
    # "name_description" (2026-12-04): guided kappa +0.031 / +0.022 / +0.019 on homecare /
    # youth / example against "all", the mean that gave the one- to four-word examples as much
    # weight as the description (benchmarks/README.md, "Dev suite").
    seed_text: str = "all"


@dataclass(frozen=True)
class PersonasConfig:
    similarity_threshold: float = 0.12
    min_margin: float = 0.02
    need_threshold: float | None = None   # None: relative to the corpus (personas.need_threshold_in_use)


@dataclass(frozen=True)
class ReportConfig:
    breakdowns: tuple[str, ...] = ()   # attribute columns for "who says what": theme × value tables


@dataclass(frozen=True)
class OutputConfig:
    #: "standard" (comma, decimal point) or "nordic" (semicolon, decimal comma: what a Danish,
    #: Norwegian or Swedish Excel opens by double-click); see files.CSV_DIALECTS.
    csv_dialect: str = DEFAULT_CSV_DIALECT


@dataclass(frozen=True)
class PrivacyConfig:
    mask: bool = True
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    themes: ThemesConfig = field(default_factory=ThemesConfig)
    personas: PersonasConfig = field(default_factory=PersonasConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    root: Path = Path(".")

    def resolve(self, relative: str | None) -> Path | None:
        """A path from the config, resolved against the config file's folder."""
        if relative is None or relative == "":
            return None
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def cache_dir(self, out: str | Path | None = None) -> Path:
        """The embedding cache: [paths] cache, else a folder "cache" inside the run's output folder."""
        configured = self.resolve(self.paths.cache)
        if configured is not None:
            return configured
        return Path(out) / "cache" if out is not None else self.resolve(self.paths.out) / "cache"

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data, for the run manifest."""
        data = dataclasses.asdict(self)
        data["root"] = "."
        return data


_SECTIONS = {
    "paths": PathsConfig,
    "embedding": EmbeddingConfig,
    "themes": ThemesConfig,
    "personas": PersonasConfig,
    "privacy": PrivacyConfig,
    "columns": ColumnsConfig,
    "report": ReportConfig,
    "output": OutputConfig,
}


def did_you_mean(word: str, known) -> str:
    """ "; did you mean 'x'?" for the closest known word, or "" when none is close."""
    close = difflib.get_close_matches(str(word).lower(), [str(k) for k in known], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _build_section(name: str, cls: type, values: dict[str, Any], source: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = "; ".join(f"'{key}' is not a key{did_you_mean(key, known)}" for key in unknown)
        raise ConfigError(
            f"{source}: section [{name}] has unknown key(s) {unknown} ({hints}); "
            f"known keys are {sorted(known)}."
        )
    converted = {}
    for key, value in values.items():
        default = known[key].default
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list):
                raise ConfigError(f"{source}: [{name}] {key} must be a list, got {value!r}.")
            value = tuple(value)
        elif isinstance(default, str) and name == "columns" and not isinstance(value, str):
            raise ConfigError(f"{source}: [{name}] {key} must be a column header in quotes, got {value!r}.")
        elif name == "themes" and key == "seed_text" and value not in SEED_TEXTS:
            raise ConfigError(f"{source}: [themes] seed_text {value!r} is not a choice"
                              f"{did_you_mean(str(value), SEED_TEXTS) or '.'} Use one of {', '.join(SEED_TEXTS)}.")
        elif name == "output" and key == "csv_dialect" and value not in CSV_DIALECTS:
            raise ConfigError(f"{source}: [output] csv_dialect {value!r} is not a dialect"
                              f"{did_you_mean(str(value), CSV_DIALECTS)} Use one of {', '.join(CSV_DIALECTS)}.")
        converted[key] = value
    return cls(**converted)


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Load ``analysis.toml`` (or defaults when ``path`` is None).

    ``overrides`` replace whole sections' keys, e.g. ``paths={"out": "tmp"}``.
    """
    raw: dict[str, Any] = {}
    root = Path(".")
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found. Pass --config with the path to analysis.toml.")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML ({error}). Fix the line it names.") from error
        root = path.resolve().parent
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        hints = "; ".join(f"[{name}]{did_you_mean(name, _SECTIONS)}" for name in unknown)
        raise ConfigError(f"{source}: unknown section(s) {unknown} ({hints}); "
                          f"known sections are {sorted(_SECTIONS)}.")
    for section, values in overrides.items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    sections = {
        name: _build_section(name, cls, raw.get(name, {}), source) for name, cls in _SECTIONS.items()
    }
    return Config(root=root, **sections)


def config_from_dict(data: dict[str, Any], root: str | Path = ".", source: str = "<manifest>") -> Config:
    """Rebuild a Config from ``Config.to_dict()`` output (e.g. a run manifest's ``config``)."""
    unknown = sorted(set(data) - set(_SECTIONS) - {"root"})
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known sections are {sorted(_SECTIONS)}.")
    sections = {name: _build_section(name, cls, dict(data.get(name, {})), source)
                for name, cls in _SECTIONS.items()}
    return Config(root=Path(root).resolve(), **sections)
