"""Loading analysis.toml: the committed file, clear errors, and paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "analysis.toml"


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "analysis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_config_loads():
    config = load_config(COMMITTED)
    assert isinstance(config, Config)
    assert config.root == ROOT
    assert config.embedding.backend == "e5"
    assert config.paths.notes == ("data/raw",)
    assert config.themes.centre_by == ("lang", "source_type")
    assert config.themes.n_themes is None
    assert config.privacy.names == ()
    assert config.resolve(config.paths.out) == ROOT / "data" / "processed"
    assert config.to_dict()["root"] == "."


def test_committed_config_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(COMMITTED).resolve("data/raw") == ROOT / "data" / "raw"


def test_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    path = _write(tmp_path / "project", '[paths]\nnotes = "notes"\nseed_themes = ""\ncache = "/abs/cache"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("project") / "analysis.toml")
    assert config.root == path.parent.resolve()
    assert config.paths.notes == ("notes",)  # a single string becomes a one-item list
    assert [config.resolve(p) for p in config.paths.notes] == [tmp_path / "project" / "notes"]
    assert config.resolve(config.paths.seed_themes) is None
    assert config.resolve(config.paths.cache) == Path("/abs/cache")
    assert config.resolve(None) is None


def test_defaults_without_a_file():
    config = load_config()
    assert config.root == Path(".")
    assert config.embedding.backend == "e5"


def test_overrides_replace_keys_and_skip_none():
    config = load_config(COMMITTED, paths={"out": "elsewhere", "cache": None}, themes={"n_themes": 5})
    assert config.paths.out == "elsewhere"
    assert config.paths.cache == load_config(COMMITTED).paths.cache
    assert config.themes.n_themes == 5


@pytest.mark.parametrize(("text", "expected"), [
    ("[paths]\nout = 'x'\n[plots]\ndpi = 300\n", r"unknown section\(s\) \['plots'\]"),
    ("[themes]\nn_theme = 4\n", r"section \[themes\] has unknown key\(s\) \['n_theme'\]"),
    ("[themes]\ncentre_by = 3\n", r"\[themes\] centre_by must be a list"),
    ("[themes]\nseed_text = 'name_desc'\n", r"seed_text 'name_desc' is not a choice; did you mean 'name_description'\?"),
    ("[themes]\nseed_text = 'x'\n", r"seed_text 'x' is not a choice\. Use one of all, name_description\."),
    ("[themes\nn_themes = 4\n", r"not valid TOML .*line 1"),
    ("[themes]\nn_themes = \n", r"not valid TOML .*line 2"),
])
def test_config_errors_name_the_file(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as error:
        load_config(path)
    assert str(error.value).startswith(str(path))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "analysis.toml")


def test_the_defaults_have_one_home():
    """ThemeModel's parameters a config can set default to the config's values, and the committed
    analysis.toml sets none of [themes] or [personas] (its lines are the defaults, commented)."""
    import dataclasses

    from analysis.config import PersonasConfig, ThemesConfig
    from analysis.themes import ThemeModel

    params = ThemeModel().get_params()
    shared = set(params) & {f.name for f in dataclasses.fields(ThemesConfig)}
    assert shared >= {"min_k", "max_k", "seed_threshold", "centre_by", "max_fit_notes", "random_state"}
    assert {name: params[name] for name in shared} == {name: getattr(ThemesConfig(), name) for name in shared}
    config = load_config(COMMITTED)
    assert config.themes == ThemesConfig() and config.personas == PersonasConfig()
