"""Masking personal data: each kind, false positives, properties, the committed corpus, logs.

Valid national id numbers are generated here by computing their check digits (never real
people's numbers); the module's own validators are only checked against these generators.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analysis.config import ConfigError, load_config
from analysis.load import load_notes
from analysis.privacy import (
    KINDS,
    Masker,
    MaskingFilter,
    find_identifiers,
    mask_frame,
    summarise,
    valid_fodselsnummer,
    valid_personnummer,
)

NAMES = ("Kari", "Lena", "Jon", "Kari Nordmann")
PERSONAS = ("Roald", "Edel", "Knut", "Elias")
MASKER = Masker(names=NAMES, keep=PERSONAS)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def masked(text: str, masker: Masker = MASKER) -> str:
    return masker.mask(text).text


# --------------------------------------------------------------------------- check digits, written independently


def fnr_controls(first9: str) -> str | None:
    """The two mod-11 control digits of a Norwegian fødselsnummer, or None when one would be 10."""
    digits = [int(ch) for ch in first9]
    for weights in ((3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)):
        control = (11 - sum(w * d for w, d in zip(weights, digits)) % 11) % 11
        if control == 10:
            return None
        digits.append(control)
    return f"{digits[9]}{digits[10]}"


def luhn_digit(nine: str) -> str:
    """Swedish check digit: weights 2,1,2,… from the left, digit sums, up to a multiple of ten."""
    total = sum(sum(divmod(int(ch) * (2 - i % 2), 10)) for i, ch in enumerate(nine))
    return str(-total % 10)


def make_fnr(born: date, individual: int, d_number: bool = False) -> str | None:
    day = born.day + (40 if d_number else 0)
    first9 = f"{day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}"
    controls = fnr_controls(first9)
    return None if controls is None else first9 + controls


def make_pnr(born: date, serial: int, form: str = "short", samordning: bool = False) -> str:
    day = born.day + (60 if samordning else 0)
    core = f"{born.year % 100:02d}{born.month:02d}{day:02d}{serial:03d}"
    number = core + luhn_digit(core)
    century = f"{born.year // 100}"
    return {"short": f"{number[:6]}-{number[6:]}", "plus": f"{number[:6]}+{number[6:]}",
            "long": century + number, "long_dash": f"{century}{number[:6]}-{number[6:]}"}[form]


def first_valid_fnr(born: date, d_number: bool = False) -> str:
    return next(n for i in range(1000) if (n := make_fnr(born, i, d_number)) is not None)


def test_the_test_generators_agree_with_the_module_validators():
    fnr = first_valid_fnr(date(1985, 7, 14))
    assert valid_fodselsnummer(fnr)
    assert valid_fodselsnummer(first_valid_fnr(date(1985, 7, 14), d_number=True))
    broken = fnr[:-1] + str((int(fnr[-1]) + 1) % 10)
    assert not valid_fodselsnummer(broken)
    pnr = make_pnr(date(1990, 3, 21), 123)
    assert valid_personnummer(pnr) and valid_personnummer(make_pnr(date(1990, 3, 21), 123, "long"))
    assert valid_personnummer(make_pnr(date(1990, 3, 21), 123, samordning=True))
    assert not valid_personnummer(pnr[:-1] + str((int(pnr[-1]) + 1) % 10))
    assert not valid_personnummer("901321-1234")  # month 13


# --------------------------------------------------------------------------- each kind


@pytest.mark.parametrize("phone", [
    "0501-123456", "+47 912 34 567", "912 34 567", "070-123 45 67", "+46 70 123 45 67",
    "08-123 456 78", "+45 12 34 56 78", "22 33 44 55", "98765432", "+46 (0)70-123 45 67",
    "+4791234567", "2233 4455", "912\u00a034\u00a0567",
])
def test_phone_numbers_in_nordic_formats_are_masked(phone):
    result = MASKER.mask(f"Ring {phone} i morgen.")
    assert result.text == "Ring [PHONE] i morgen."
    assert result.counts == {"PHONE": 1}


@pytest.mark.parametrize("email", [
    "kari.nordmann@example.no", "lss.samordnare@example.se", "first+tag@sub.example.co.uk",
    "åse.øvre@kommune.no", "OLA_1@EXAMPLE.COM",
])
def test_email_addresses_are_masked(email):
    result = MASKER.mask(f"Skriv til {email}, takk.")
    assert result.text == "Skriv til [EMAIL], takk."
    assert result.counts == {"EMAIL": 1}


def test_valid_fodselsnummer_and_d_number_are_id_numbers():
    fnr = first_valid_fnr(date(1948, 2, 29))
    d_number = first_valid_fnr(date(1971, 12, 31), d_number=True)
    result = MASKER.mask(f"fnr {fnr}, D-nr {d_number}, med mellomrom {fnr[:6]} {fnr[6:]}.")
    assert result.text == "fnr [ID-NUMBER], D-nr [ID-NUMBER], med mellomrom [ID-NUMBER]."
    assert result.counts == {"ID-NUMBER": 3}


@pytest.mark.parametrize("form", ["short", "plus", "long", "long_dash"])
@pytest.mark.parametrize("samordning", [False, True])
def test_valid_personnummer_and_samordningsnummer_are_id_numbers(form, samordning):
    number = make_pnr(date(1923, 11, 5), 482, form, samordning)
    assert MASKER.mask(f"pnr: {number}").counts == {"ID-NUMBER": 1}


def test_danish_cpr_with_a_real_date_is_an_id_number():
    assert MASKER.mask("CPR 010203-4567 er noteret").text == "CPR [ID-NUMBER] er noteret"


def test_identifier_shaped_numbers_with_wrong_check_digits_are_still_masked():
    fnr = first_valid_fnr(date(1985, 7, 14))
    wrong_fnr = fnr[:-1] + str((int(fnr[-1]) + 1) % 10)
    pnr = make_pnr(date(1990, 3, 21), 123)
    wrong_pnr = pnr[:-1] + str((int(pnr[-1]) + 1) % 10)
    text = f"a {wrong_fnr} b {wrong_pnr} c 310290-1234 d 12345678901 e 1234.5678.90 f 12/34/56/78/90"
    result = MASKER.mask(text)
    assert result.text == "a [NUMBER] b [NUMBER] c [NUMBER] d [NUMBER] e [NUMBER] f [NUMBER]"
    assert result.counts == {"NUMBER": 6}


def test_a_date_next_to_a_phone_is_kept_and_the_phone_masked():
    assert MASKER.mask("Ring 14.02.2023 98765432 kl 08.00").text == "Ring 14.02.2023 [PHONE] kl 08.00"
    assert MASKER.mask("kl 07.00–15.30 22 33 44 55").text == "kl 07.00–15.30 [PHONE]"
    assert MASKER.mask("2023 12345678").text == "[NUMBER]"  # a bare year is not cut off
    assert MASKER.mask("2012 3456").text == "[PHONE]"


@pytest.mark.parametrize("address", [
    "Bærumsveien 208", "Storgata 5B", "Karl Johans gate 1", "Drottninggatan 12, 542 30 Mariestad",
    "Nørre Allé 12, 2200 København", "Kirkevegen 3 A", "Östra vägen 14", "Solsikkestien 9, 1337 Sandvika",
    "Jernbanetorget 1", "Vesterbrogade 44", "Kongens plass 2",
])
def test_street_addresses_are_masked(address):
    result = MASKER.mask(f"Hun bor i {address} nå.")
    assert result.text == "Hun bor i [ADDRESS] nå."
    assert result.counts == {"ADDRESS": 1}


@pytest.mark.parametrize("text", [
    "Alt kom på plass 2 ganger i uka", "Vi møtes på Torget 14.00", "Hun gikk i gata 3 ganger",
    "Gaten var tom", "Storgata 22 33 44 55 er feil ført",
])
def test_street_words_without_an_address_are_not_addresses(text):
    assert "ADDRESS" not in MASKER.mask(text).counts


def test_names_are_masked_whole_word_in_any_case_with_genitives():
    text = "Kari, karis mor, Kari's bror, KARI og Lenas plan. Karianne, Jonas og Jon'. Kari\nNordmann."
    result = MASKER.mask(text)
    assert result.text == ("[NAME], [NAME] mor, [NAME] bror, [NAME] og [NAME] plan. "
                           "Karianne, Jonas og [NAME]. [NAME].")
    assert result.counts == {"NAME": 7}


def test_persona_names_are_never_masked_even_when_configured():
    masker = Masker(names=("Roald", "Kari", "Knut"), keep=PERSONAS)
    assert masker.mask("Roalds sønn Knut og Kari").text == "Roalds sønn Knut og [NAME]"
    assert Masker(names=("Roald",), keep=("roald",)).mask("Roald").counts == {}


def test_masker_from_config_reads_the_privacy_names(tmp_path):
    config_file = tmp_path / "analysis.toml"
    config_file.write_text('[privacy]\nnames = ["Kari", "Lena"]\n', encoding="utf-8")
    masker = Masker.from_config(load_config(config_file).privacy, keep=PERSONAS)
    assert masker.mask("Kari og Lena hjelper Edel").text == "[NAME] og [NAME] hjelper Edel"
    config_file.write_text('[privacy]\nnames = ["Kari", ""]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[privacy\] names: entry 2"):
        Masker.from_config(load_config(config_file).privacy)


def test_mask_result_holds_only_the_masked_text_and_counts():
    result = MASKER.mask("Kari: 98765432, kari@example.no")
    assert [field.name for field in dataclasses.fields(result)] == ["text", "counts"]
    assert result.text == "[NAME]: [PHONE], [EMAIL]"
    assert result.counts == {"EMAIL": 1, "PHONE": 1, "NAME": 1}
    assert result.changed and not MASKER.mask("ingenting").changed


# --------------------------------------------------------------------------- ordinary numbers stay


@pytest.mark.parametrize("text", [
    "Kveldsbesøket kl 19 er for tidlig – han legger seg ikke før 23",          # nb
    "Internopplæring hver 14. dag – 30 min faglig påfyll på basen",
    "Tjenestesafari tirsdag 14. februar 2023, 07.00–15.30.",
    "Dagsplan: 08.00 frokost, 08:30 medisiner, 12.00–12.45 lunsj, 14.00 tur",
    "Medisiner 08.00 12.00 16.00 20.00, 2 tabletter", "Medisin 08.00 20.00 2 tabletter 1 gang",
    "Møte 18.04.2023 kl. 09.15-11.00, neste 2023-04-25 08:30-10:00",
    "Hun er 58 år og faren er 89. Kona døde i 2019.",
    "75 % av brukerne, 3-4 pers per uke, 10-12 sykepleiere, 1 200 000 kr i året",
    "Prosjektet 2017–2018 og 2017-2018, uke 12/13, 1.–3. mai, 24/7-tilsyn",
    "Dato 18/04/2023 og 1.1.2024, 31.12.2023 23:59:59",
    "Idéverkstad LSS 2018-03-14 klockan 13.00-16.00, 12 deltagare i Grupp A",   # sv
    "Ca. 90 minuter, 5 juni 2018, 60 % av tiden, 3 av 4 enheter",
    "Mødet sluttede kl. 15.30; 12 borgere og 4 medarbejdere deltog i 2022",    # da
    "Budget 12 500 000 kr for 2024-2026",
    "The observer stayed from 07:00 to 15:30 on 14 Feb 2023; 80 % of visits were late",  # en
    "B1-123, M-074 and BAE-INT-ANS-u001 are note ids",
])
def test_times_dates_years_counts_and_amounts_are_not_masked(text):
    assert MASKER.mask(text).text == text
    assert find_identifiers(text) == []


# --------------------------------------------------------------------------- properties


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


def formatted(template: str, *sizes: int) -> st.SearchStrategy[str]:
    return st.tuples(*(digits(n) for n in sizes)).map(lambda parts: template.format(*parts))


PHONES = st.one_of(
    formatted("+47 9{} {} {}", 2, 2, 3), formatted("4{} {} {}", 2, 2, 3), formatted("9{}", 7),
    formatted("2{} {} {} {}", 1, 2, 2, 2), formatted("07{}-{} {} {}", 1, 3, 2, 2),
    formatted("+46 7{} {} {} {}", 1, 3, 2, 2), formatted("08-{} {} {}", 3, 3, 2),
    formatted("05{}-{}", 2, 6), formatted("+45 {} {} {} {}", 2, 2, 2, 2),
    formatted("3{} {} {} {}", 1, 2, 2, 2),
)
BIRTH_DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2029, 12, 31))


@st.composite
def fodselsnummer(draw) -> str:
    number = make_fnr(draw(BIRTH_DATES), draw(st.integers(0, 999)), draw(st.booleans()))
    assume(number is not None)
    return number


PERSONNUMMER = st.builds(make_pnr, BIRTH_DATES, st.integers(0, 999),
                         st.sampled_from(["short", "plus", "long", "long_dash"]), st.booleans())
CPR = st.builds(lambda born, tail: f"{born:%d%m%y}-{tail}", BIRTH_DATES, digits(4))
ID_NUMBERS = st.one_of(fodselsnummer(), PERSONNUMMER, CPR)
EMAILS = st.builds(lambda user, host, tld: f"{user}@{host}.{tld}",
                   st.from_regex(r"[a-z][a-z0-9._]{0,10}[a-z0-9]", fullmatch=True),
                   st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z]", fullmatch=True), st.sampled_from(["no", "se", "dk", "com"]))
IDENTIFIERS = st.one_of(PHONES, ID_NUMBERS, EMAILS)
# Filler text: letters (with æøåäöé), spaces and punctuation; no digits and no "@".
FILLER = st.text(alphabet="abcdefghijklmnopqrstuvwxyzæøåäöéABCKLMÆØÅÄÖ .,;:!?()'\"-–/\n", max_size=25)


def has_no_configured_name(text: str) -> bool:
    return not re.search(r"kari|lena|jon", text, re.IGNORECASE)


@PROPERTY
@given(parts=st.lists(st.tuples(FILLER, IDENTIFIERS), min_size=1, max_size=4), tail=FILLER)
def test_inserted_identifiers_never_survive_masking(parts, tail):
    text = " ".join(f"{before} {identifier}" for before, identifier in parts) + " " + tail
    result = MASKER.mask(text)
    for _, identifier in parts:
        assert identifier not in result.text
    # The filler has no digits and no "@": whatever remains of those came from an identifier.
    assert not re.search(r"\d|@", result.text), result.text
    assert find_identifiers(result.text) == []
    assert sum(count for kind, count in result.counts.items() if kind != "NAME") == len(parts)


@PROPERTY
@given(number=ID_NUMBERS)
def test_generated_id_numbers_are_recognised_as_id_numbers(number):
    assert MASKER.mask(f"nr {number}.").counts == {"ID-NUMBER": 1}


@PROPERTY
@given(phone=PHONES)
def test_generated_phone_numbers_are_recognised_as_phones(phone):
    assert MASKER.mask(f"tlf. {phone}.").counts == {"PHONE": 1}


@PROPERTY
@given(text=FILLER.filter(has_no_configured_name))
def test_text_without_digits_at_signs_or_names_is_unchanged(text):
    assert MASKER.mask(text).text == text


@st.composite
def calendar_text(draw) -> str:
    when = draw(st.dates(min_value=date(1950, 1, 1), max_value=date(2049, 12, 31)))
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    pieces = [f"{when:%d.%m.%Y}", f"{when:%Y-%m-%d}", f"{when.day}.{when.month}.{when.year}",
              f"{when:%d/%m/%Y}", f"{hour:02d}.{minute:02d}", f"{hour:02d}:{minute:02d}",
              f"{hour:02d}.{minute:02d}–{(hour + 1) % 24:02d}.{minute:02d}", f"{when.year}",
              f"{when.year}-{when.year + 1}", str(draw(st.integers(0, 999))), f"{draw(st.integers(0, 100))} %"]
    chosen = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=6))
    words = draw(st.lists(st.sampled_from(["kl", "og", "møte", "den", "i", ",", "–"]), min_size=len(chosen),
                          max_size=len(chosen)))
    return " ".join(f"{word} {piece}" for word, piece in zip(words, chosen))


@PROPERTY
@given(text=calendar_text())
def test_dates_times_years_and_counts_are_unchanged(text):
    assert MASKER.mask(text).text == text


MIXED = st.lists(st.one_of(
    st.text(alphabet="0123456789 .-/:+–()@[]abKariENMLæø\n", max_size=10),
    st.sampled_from(["[EMAIL]", "[NAME]", "[PHONE]", "Kari", "kari's", "Storgata", " gate ", ", 1337 Oslo",
                     "Email", "@x.no", "kr", " 2023", "07.00", "(0)"]),
    IDENTIFIERS,
), max_size=8).map("".join)


@pytest.mark.parametrize(("text", "expected"), [
    ("Kari12345678", "Kari[PHONE]"),                  # glued: no name on its own, nor on a second pass
    ("12345678Storgata 7", "[PHONE]Storgata 7"),
    ("ola@x.no12345678", "[EMAIL][PHONE]"),
    ("[Kari ringer] Email [EMAIL]", "[[NAME] ringer] [NAME] [EMAIL]"),  # not "[[NAME]]" inside the token
    ("Storgata 5, 12345678", "[ADDRESS], [PHONE]"),
])
def test_masking_next_to_tokens_is_idempotent(text, expected):
    masker = Masker(names=("Kari", "Email"))
    assert masker.mask(text).text == expected
    assert masker.mask(expected).text == expected


@PROPERTY
@given(text=MIXED)
def test_masking_is_deterministic_and_idempotent(text):
    once = MASKER.mask(text)
    assert Masker(names=NAMES, keep=PERSONAS).mask(text) == once
    twice = MASKER.mask(once.text)
    assert twice.text == once.text and twice.counts == {}
    assert find_identifiers(once.text) == []


# --------------------------------------------------------------------------- the committed corpus

#: Planted fictional contact details in data/raw (found by grepping for "@", "+47", "+46" and
#: runs of 8 or more digits), by note id.
PLANTED = {
    "B1-123": ("EMAIL", "kari.nordmann@example.no"),
    "B2-015": ("EMAIL", "ola.hansen@example.com"),
    "B2-017": ("PHONE", "98765432"),
    "B3-074": ("PHONE", "+47 912 34 567"),
    "M-052": ("EMAIL", "lss.samordnare@example.se"),
    "M-074": ("PHONE", "0501-123456"),
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return load_notes([ROOT / "data" / "raw"], root=ROOT)


def changed_ids(before: pd.DataFrame, after: pd.DataFrame) -> set[str]:
    return set(before.loc[before["text"] != after["text"], "note_id"])


def test_every_planted_identifier_in_the_corpus_is_masked(corpus):
    masked_notes, report = mask_frame(corpus, Masker(keep=PERSONAS))
    assert changed_ids(corpus, masked_notes) == set(PLANTED)
    everything = "\n".join(masked_notes["text"])
    for note_id, (kind, value) in PLANTED.items():
        assert value in corpus.loc[corpus["note_id"] == note_id, "text"].item()
        assert value not in everything
        assert f"[{kind}]" in masked_notes.loc[masked_notes["note_id"] == note_id, "text"].item()
    assert "@" not in everything
    assert all(find_identifiers(text) == [] for text in masked_notes["text"])
    assert sorted(v for t in corpus["text"] for v in find_identifiers(t)) == sorted(v for _, v in PLANTED.values())
    assert summarise(report) == {
        "masked_values": 6, "notes_with_personal_data": 6,
        "by_kind": {"EMAIL": 3, "PHONE": 3, "ID-NUMBER": 0, "ADDRESS": 0, "NAME": 0, "NUMBER": 0},
        "by_source_file": {
            "data/raw/baerum/workshop1_notes.csv": {"EMAIL": 1},
            "data/raw/baerum/workshop2_notes.csv": {"EMAIL": 1, "PHONE": 1},
            "data/raw/baerum/workshop3_notes.xlsx": {"PHONE": 1},
            "data/raw/mariestad/workshop_notes.csv": {"EMAIL": 1, "PHONE": 1},
        },
    }
    report_text = report.to_csv(index=False)
    assert not any(value in report_text for _, value in PLANTED.values())


def test_configured_contact_names_in_the_corpus_are_masked_and_personas_kept(corpus):
    # The planted contacts are signed Kari, Jon and Lena; Kari is also named in B1-126.
    masker = Masker(names=("Kari", "Jon", "Lena", "Roald"), keep=PERSONAS)
    masked_notes, report = mask_frame(corpus, masker)
    assert changed_ids(corpus, masked_notes) == set(PLANTED) | {"B1-126"}
    names = report[report["kind"] == "NAME"].set_index("note_id")["count"].to_dict()
    assert names == {"B1-126": 1, "B2-017": 1, "B3-074": 1, "M-074": 1}
    mentions_roald = corpus["text"].str.contains("Roald")
    assert mentions_roald.sum() > 0
    assert masked_notes.loc[mentions_roald, "text"].str.contains("Roald").all()


# --------------------------------------------------------------------------- tables


def small_notes() -> pd.DataFrame:
    return pd.DataFrame({
        "note_id": ["n1", "n2", "n3", "n4"],
        "text": ["Ring Kari på 98765432 eller 912 34 567", "Møte 14.00", None, "kari@example.no"],
        "comment": ["", "Lena: lena@example.no", "", ""],
        "source_file": ["a.csv", "a.csv", "a.csv", "b.csv"],
        "source_row": [2, 3, 4, 2],
    })


def test_mask_frame_masks_a_copy_and_reports_counts_per_note_column_and_kind():
    notes = small_notes()
    original = notes.copy()
    masked_notes, report = mask_frame(notes, MASKER, columns=("text", "comment"))
    pd.testing.assert_frame_equal(notes, original)
    assert masked_notes["text"].dtype == notes["text"].dtype
    assert masked_notes["text"].isna().tolist() == [False, False, True, False]
    assert masked_notes["text"].dropna().tolist() == ["Ring [NAME] på [PHONE] eller [PHONE]", "Møte 14.00", "[EMAIL]"]
    assert masked_notes["comment"].tolist() == ["", "[NAME]: [EMAIL]", "", ""]
    assert report.columns.tolist() == ["note_id", "source_file", "source_row", "column", "kind", "count"]
    assert report.values.tolist() == [
        ["n1", "a.csv", 2, "text", "PHONE", 2], ["n1", "a.csv", 2, "text", "NAME", 1],
        ["n4", "b.csv", 2, "text", "EMAIL", 1],
        ["n2", "a.csv", 3, "comment", "EMAIL", 1], ["n2", "a.csv", 3, "comment", "NAME", 1],
    ]
    summary = summarise(report)
    assert summary["by_kind"] == {"EMAIL": 2, "PHONE": 2, "ID-NUMBER": 0, "ADDRESS": 0, "NAME": 2, "NUMBER": 0}
    assert summary["by_source_file"] == {"a.csv": {"EMAIL": 1, "NAME": 2, "PHONE": 2}, "b.csv": {"EMAIL": 1}}
    assert (summary["masked_values"], summary["notes_with_personal_data"]) == (6, 3)
    assert json.loads(json.dumps(summary)) == summary


def test_mask_frame_without_location_columns_and_without_findings():
    notes = pd.DataFrame({"id": ["x"], "text": ["Ingen personopplysninger her, kl 08.30."]})
    masked_notes, report = mask_frame(notes, MASKER, id_column="id")
    pd.testing.assert_frame_equal(masked_notes, notes)
    assert report.empty and report.columns.tolist() == ["id", "column", "kind", "count"]
    assert summarise(report, id_column="id") == {
        "masked_values": 0, "notes_with_personal_data": 0,
        "by_kind": dict.fromkeys(KINDS, 0), "by_source_file": {}}


def test_mask_frame_names_the_missing_column():
    with pytest.raises(KeyError, match=r"\['notes'\].*Pass columns="):
        mask_frame(small_notes(), MASKER, columns=("notes",))


# --------------------------------------------------------------------------- logs


@pytest.fixture
def masked_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter(MASKER))
    logger = logging.getLogger("test_privacy.masked")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_masking_filter_masks_the_message_and_its_arguments(masked_log):
    logger, stream = masked_log
    logger.info("note %s: ring %s, skriv til %s (%d%%)", "B2-017", "98765432", "kari@example.no", 50)
    logger.info("Kari ringte 14.00")
    assert stream.getvalue().splitlines() == [
        "note B2-017: ring [PHONE], skriv til [EMAIL] (50%)", "[NAME] ringte 14.00"]


def test_masking_filter_masks_tracebacks_and_broken_format_strings(masked_log):
    logger, stream = masked_log
    try:
        raise ValueError("cannot parse 'ring 0501-123456'")
    except ValueError:
        logger.exception("failed on %s", "M-074")
    logger.info("too few arguments %s %s", "912 34 567")
    output = stream.getvalue()
    assert "failed on M-074" in output and "Traceback" in output and "ValueError" in output
    assert "cannot parse 'ring [PHONE]'" in output
    assert "too few arguments %s %s [PHONE]" in output
    assert "123456" not in output and "912 34 567" not in output
