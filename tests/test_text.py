"""Normalising, language detection, keyword tokens and sentence spans."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import text
from analysis.text import detect_language, normalise, split_sentences, stem_display_map, tokenize

# --------------------------------------------------------------------------- normalise


def test_normalise_composes_collapses_and_strips():
    decomposed = unicodedata.normalize("NFD", "  Blåbær\t og\n\n kaffe ")
    assert normalise(decomposed) == "Blåbær og kaffe"
    assert normalise(decomposed) == unicodedata.normalize("NFC", normalise(decomposed))


def test_normalise_of_whitespace_is_empty():
    assert normalise(" \r\n\t ") == ""


# --------------------------------------------------------------------------- language

EXAMPLES = {
    "nb": "Vi trenger faste ansatte som kjenner brukeren og vet hva hun trenger",
    "nn": "Eg vil vite kven som kjem, og eg vil sleppe å forklare alt på nytt",
    "sv": "Personalen följer med vid flytten de första veckorna och det skapar trygghet",
    "da": "Vi har brug for faste medarbejdere, som kender borgeren og hendes behov",
    "en": "The user should choose the time of the visit and know who is coming",
}


@pytest.mark.parametrize("lang", sorted(EXAMPLES))
def test_detect_language_knows_the_five_languages(lang):
    [(code, confidence)] = detect_language([EXAMPLES[lang]])
    assert code == lang
    assert text.MIN_CONFIDENCE <= confidence <= 1.0


def test_detect_language_without_letters_is_undetermined():
    assert detect_language(["", "   ", "123 456", "!!! 🙏", "12.5 %"]) == [("und", 0.0)] * 5


def test_detect_language_below_the_floor_is_undetermined(monkeypatch):
    monkeypatch.setattr(text, "MIN_CONFIDENCE", 1.01)
    assert [code for code, _ in detect_language(list(EXAMPLES.values()))] == ["und"] * 5


def test_detect_language_is_deterministic_and_independent_of_the_batch():
    texts = [*EXAMPLES.values(), "Kaffe!", "Faste folk"]
    together = detect_language(texts)
    assert detect_language(texts) == together
    assert [detect_language([t])[0] for t in texts] == together
    assert detect_language(texts[::-1]) == together[::-1]


def test_importing_text_builds_no_detector():
    probe = "import sys, analysis.text; print('py3langid' in sys.modules, 'stop_words' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- tokens


def test_tokenize_lowercases_and_keeps_abbreviations():
    assert tokenize("HBT, LSS og SoL", "und") == ["hbt", "lss", "sol"]


def test_tokenize_drops_stop_words_of_every_language():
    # "och" and "the" are Swedish and English stop words; they must not become nb keywords.
    assert tokenize("Turnus och the vikarer", "und") == ["turnus", "vikarer"]


def test_tokenize_drops_numbers_and_one_letter_tokens():
    assert tokenize("Kl 7, 2018-03-14, 3.5 x Demensteam", "und") == ["kl", "demensteam"]


def test_tokenize_keeps_nordic_letters():
    assert tokenize("Blåbær, ÆRLIG, Öppen, café", "und") == ["blåbær", "ærlig", "öppen", "café"]


@pytest.mark.parametrize(("lang", "note", "stems"), [
    ("nb", "ansatte trenger", ["ansatt", "treng"]),
    ("nn", "tilsette", ["tilsett"]),
    ("sv", "personalen flyttar", ["personal", "flytt"]),
    ("da", "medarbejderne", ["medarbejd"]),
    ("en", "visits nurses", ["visit", "nurs"]),
    ("und", "ansatte", ["ansatte"]),
])
def test_tokenize_stems_with_the_note_language(lang, note, stems):
    assert tokenize(note, lang) == stems


def test_stem_display_map_picks_the_most_frequent_surface_form():
    notes = [("faste ansatte", "nb"), ("ansatte og ansatt", "nb"), ("ansattes tid", "nb")]
    assert stem_display_map(notes)["ansatt"] == "ansatte"


def test_stem_display_map_breaks_ties_alphabetically():
    assert stem_display_map([("ansatte", "nb"), ("ansatt", "nb")])["ansatt"] == "ansatt"
    assert stem_display_map([("ansatt", "nb"), ("ansatte", "nb")])["ansatt"] == "ansatt"


# --------------------------------------------------------------------------- sentences


def sentences(note: str) -> list[str]:
    return [note[start:end] for start, end in split_sentences(note)]


def test_split_sentences_on_sentence_ends():
    note = "  Første setning. Andre setning!\nTredje? Fjerde uten punktum  "
    assert sentences(note) == ["Første setning.", "Andre setning!", "Tredje?", "Fjerde uten punktum"]


@pytest.mark.parametrize("note", [
    "Vi tar f.eks. Oslo som eksempel.",
    "Det gjelder bl.a. Roald og Edel.",
    "Møtet er kl. 14.30 i morgen.",
    "Det kom ca. 30 personer.",
    "Vi trenger flere, dvs. Tre til.",
    "Vi tar t.ex. Mariestad som exempel.",
    "Stoler, bord osv. til møtet.",
    "Frukt, kaffe mm. ble servert.",
    "Se sak nr. 5 i planen.",
    "Ta med ev. Notater fra forrige gang.",
    "Budsjettet er 3.5 millioner kroner.",
    "Det skjedde 17. mai i fjor.",
])
def test_split_sentences_keeps_abbreviations_and_numbers_together(note):
    assert sentences(note) == [note]


def test_split_sentences_after_a_list_ending_before_a_capital():
    assert sentences("Vi kjøpte stoler, bord osv. Neste punkt var mat.") == [
        "Vi kjøpte stoler, bord osv.", "Neste punkt var mat."]


def test_split_sentences_of_nothing():
    assert split_sentences("") == []
    assert split_sentences(" \n ") == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("abcÆø .!?…\n\"'()0123456789 AB") + ["f.eks.", " kl. ", "🙏"])))
def test_split_sentences_spans_cover_every_visible_character_once(pieces):
    note = "".join(pieces)
    spans = split_sentences(note)
    covered = [False] * len(note)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(note)
        assert note[start:end] == note[start:end].strip()
        covered[start:end] = [True] * (end - start)
        previous_end = end
    assert all(covered[i] for i, char in enumerate(note) if not char.isspace())


def test_names_are_neutralised_with_their_genitive_but_not_inside_other_words():
    from analysis.text import NAME_PLACEHOLDER, neutralise_names

    texts = ["Roald vil ha faste folk", "Roalds datter ringer", "Roaldsen kommer", "ROALD'S plan"]
    out = neutralise_names(texts, ["Roald"])
    assert out[:2] == ["vil ha faste folk", "datter ringer"]
    assert out[2] == "Roaldsen kommer"
    assert out[3] == "plan"
    assert NAME_PLACEHOLDER == ""


def test_reporting_verbs_and_the_name_placeholder_are_no_keywords():
    from analysis.text import tokenize

    assert tokenize("Hun forteller at hun sier hun må ha ukeplan", "nb") == ["ukeplan"]
    assert tokenize("Hon berättar att hon alltid vill ha fika", "sv") == ["fik"]
