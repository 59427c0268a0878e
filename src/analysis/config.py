"""Run configuration: dataclasses loaded from a committed TOML file.

The CLI and the notebooks read the same file (``analysis.toml``). Loading does no work
beyond parsing and validating; paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A problem in the config file, phrased for the user who edits it."""


@dataclass(frozen=True)
class PathsConfig:
    notes: tuple[str, ...] = ("data/raw",)
    personas: str | None = "data/raw/personas.yml"
    seed_themes: str | None = "data/raw/seed_themes.yml"
    overrides: str | None = "data/overrides.yml"
    out: str = "data/processed"
    cache: str = "data/processed/cache"


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
    max_k: int = 20
    centre_by: tuple[str, ...] = ("lang", "source_type")
    seed_threshold: float = 0.08
    secondary_margin: float = 0.02
    min_theme_size: int = 3
    n_keywords: int = 8
    n_quotes: int = 4
    max_fit_notes: int | None = 5000


@dataclass(frozen=True)
class PersonasConfig:
    similarity_threshold: float = 0.12
    min_margin: float = 0.02
    need_threshold: float = 0.35


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
    root: Path = Path(".")

    def resolve(self, relative: str | None) -> Path | None:
        """A path from the config, resolved against the config file's folder."""
        if relative is None or relative == "":
            return None
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

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
}


def _build_section(name: str, cls: type, values: dict[str, Any], source: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: section [{name}] has unknown key(s) {unknown}; "
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
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known sections are {sorted(_SECTIONS)}.")
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
