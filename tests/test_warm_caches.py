"""The caches that make a warm `analysis run` fast give exactly what the work they skip would.

Rendered figures are kept by a hash of what they show (outputs.figure_key) and detected
languages by a hash of the text (text.language_memo); issue 17's benchmark is benchmarks/run_time.py.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from analysis import outputs, plots, text


def _pngs(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


@pytest.fixture()
def cached_run(small_run, tmp_path):
    return dataclasses.replace(small_run, cache=tmp_path / "cache")


def test_a_warm_run_copies_the_figures_it_would_render(cached_run, tmp_path, monkeypatch):
    first = outputs.write_outputs(cached_run, tmp_path / "first")
    rendered = _pngs(tmp_path / "first" / "figures")
    assert len(rendered) >= 5

    def no_rendering(result):
        raise AssertionError("the figures were rendered although nothing they show changed")

    monkeypatch.setattr(plots, "run_figures", no_rendering)
    second = outputs.write_outputs(cached_run, tmp_path / "second")
    assert _pngs(tmp_path / "second" / "figures") == rendered
    assert sorted(k for k in second if k.startswith("figure:")) == sorted(k for k in first if k.startswith("figure:"))
    # The manifests record the same output hashes (paths aside).
    hashes = [json.loads(written["manifest"].read_text(encoding="utf-8"))["outputs"] for written in (first, second)]
    assert hashes[0] == hashes[1]


def test_a_changed_table_or_a_damaged_cache_renders_again(cached_run, tmp_path, monkeypatch):
    outputs.write_outputs(cached_run, tmp_path / "first")
    calls = []
    run_figures = plots.run_figures
    monkeypatch.setattr(plots, "run_figures", lambda result: calls.append(1) or run_figures(result))

    relabelled = cached_run.themes.assign(label=cached_run.themes["label"] + " (renamed)")
    outputs.write_outputs(dataclasses.replace(cached_run, themes=relabelled), tmp_path / "relabelled")
    assert len(calls) == 1

    (entry,) = [p for p in (cached_run.cache / "figures").iterdir()
                if p.name == outputs.figure_key(cached_run)]
    damaged = next(entry.glob("*.png"))
    damaged.write_bytes(b"not the figure")
    outputs.write_outputs(cached_run, tmp_path / "again")
    assert len(calls) == 2
    assert _pngs(tmp_path / "again" / "figures") == _pngs(tmp_path / "first" / "figures")


def test_verify_renders_the_figures_itself(cached_run, tmp_path, monkeypatch):
    outputs.write_outputs(cached_run, tmp_path / "first")
    calls = []
    run_figures = plots.run_figures
    monkeypatch.setattr(plots, "run_figures", lambda result: calls.append(1) or run_figures(result))
    outputs.write_outputs(cached_run, tmp_path / "checked", figure_cache=False)
    assert calls == [1]


def test_a_run_without_a_disk_cache_keeps_no_figures(small_run, tmp_path):
    assert small_run.cache is None
    outputs.write_outputs(small_run, tmp_path / "out")
    assert not (tmp_path / "out" / "cache").exists()


NOTES = ["Hjemmetjenesten kommer alltid til forskjellige tider og jeg vet aldri hvem som kommer.",
         "Personalen ringer inte innan de kommer, och jag vet inte vem som kommer i morgon.",
         "Vi savner en fast kontaktperson som kender min mor og hendes vaner.",
         "The visits are too short and nobody has time to talk.", "12 / 14"]


def test_the_language_memo_answers_as_the_detector_does(tmp_path, monkeypatch):
    memo = tmp_path / "languages.json"
    detected = text.detect_language(NOTES)
    with text.language_memo(memo):
        assert text.detect_language(NOTES) == detected
    stored = memo.read_text(encoding="utf-8")
    assert all(note[:20] not in stored for note in NOTES)  # hashes, never the notes' text

    def no_model():
        raise AssertionError("the detector was loaded although the memo knows every text")

    monkeypatch.setattr(text, "_identifier", no_model)
    with text.language_memo(memo):
        assert text.detect_language(NOTES) == detected
    with pytest.raises(AssertionError, match="the detector was loaded"):
        text.detect_language(["En helt ny lapp om middag og besøk."])


def test_an_unreadable_memo_is_rebuilt(tmp_path):
    memo = tmp_path / "languages.json"
    memo.write_text("{not json", encoding="utf-8")
    with text.language_memo(memo):
        detected = text.detect_language(NOTES[:2])
    assert detected == text.detect_language(NOTES[:2])
    assert len(json.loads(memo.read_text(encoding="utf-8"))) == 2
