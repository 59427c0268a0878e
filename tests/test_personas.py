"""Persona tracing: loading, tags, mentions, similarity with the real e5 model, theme tables."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.config import PersonasConfig
from analysis.embed import get_embedder
from analysis.embed.cache import CachedEmbedder
from analysis.personas import (NoteSpace, PersonaFileError, candidate_scores, choose_similarity_threshold, compare_groups,
                               explicit_links, find_mentions, link_personas, load_personas, need_coverage,
                               persona_quotes, persona_summary_markdown, quote, similarity_scores,
                               similarity_threshold_in_use, speaks_for_a_person, theme_persona_table,
                               trace_table)

PERSONAS_YML = """\
personas:
  - id: roald
    name: Roald
    role: user
    site: baerum
    aliases: [Roald]
    description: >-
      Roald er 84 år, enkemann og pensjonert snekker. Han bor alene i et rekkehus på Østerås og
      får hjemmetjenester morgen og kveld: medisiner, hjelp med støttestrømper og dusj. Han vet
      aldri hvem som kommer eller når, det kommer mange ulike ansikter, og han må forklare det
      samme om og om igjen. Han sitter ofte og venter påkledd. Han vil bestemme over sin egen dag,
      og kvelden er lang og ensom etter at hjemmetjenesten har gått.
    needs:
      - id: roald_know_who
        text: Vite hvem som kommer og når de kommer
      - id: roald_continuity
        text: Slippe å forklare alt på nytt til stadig nye ansatte
      - id: roald_self_determination
        text: Bestemme selv over egen dag og når han får hjelp
      - id: roald_company
        text: Ha noen å snakke med og noe å gå til, ikke være ensom på kveldene

  - id: edel
    name: Edel
    role: user
    site: baerum
    aliases: [Edel]
    description: >-
      Edel er 91 år og bor alene i leilighet med katten sin. Hun har begynnende demens og
      nedsatt hørsel, og blir urolig når noen hun ikke kjenner ringer på. Uka hennes har faste
      holdepunkter: seniorsenteret på tirsdag, kirkekoret på torsdag og datteren som ringer i
      helgene. Hun glemmer om hun har spist og tatt medisinene, og hun trenger besøk av folk som
      kjenner demens og som tar seg tid.
    needs:
      - id: edel_safe_faces
        text: Kjente fjes som hun er trygg på
      - id: edel_week_structure
        text: Oversikt over uka, faste holdepunkter og påminnelser
      - id: edel_competent_staff
        text: Ansatte med kunnskap om demens og hørselstap
      - id: edel_social_life
        text: Beholde sosialt liv, aktiviteter og fellesskap

  - id: knut
    name: Knut
    role: relative
    site: baerum
    aliases: [Knut, Roalds sønn, sønnen til Roald]
    description: >-
      Knut er 52 år, Roalds sønn. Han jobber fullt og bor en time unna. Han ringer faren flere
      ganger om dagen fordi han er bekymret, og han vet ikke hva hjemmetjenesten har gjort eller
      om pappa har fått medisinene. Han får ikke tak i noen på telefon, og han føler at han må
      koordinere alt selv. Han ønsker å bli informert og å kunne dele det han vet om faren.
    needs:
      - id: knut_informed
        text: Bli informert om hva hjemmetjenesten har gjort og om endringer
      - id: knut_reach_someone
        text: Få tak i noen som kjenner faren hans
      - id: knut_share_knowledge
        text: Kunne dele det han vet om faren med de ansatte
      - id: knut_less_worry
        text: Slippe å bekymre seg og koordinere alt selv

  - id: elias
    name: Elias
    role: user
    site: mariestad
    aliases: [Elias]
    description: >-
      Elias är 19 år och har en intellektuell funktionsnedsättning och autism. Han har haft
      korttidsboende och stöd enligt LSS som barn, och flyttar nu till en gruppbostad för vuxna.
      Han är känslig för förändringar, blir orolig med nya människor och nya rutiner, och
      tryggheten finns hos personalen som känner honom. Han behöver att någon han litar på
      följer med i flytten och att rutinerna följer med.
    needs: []
"""

# (note_id, text, persona tag, site, theme_id); the fixture corpus for similarity and tables.
NOTES = [
    ("B-01", "Roald vil vite hvem som kommer i morgen", "", "baerum", "day_plan"),
    ("B-02", "Ukeplan på kjøleskapet med bilde av de som kommer", "roald", "baerum", "day_plan"),
    ("B-03", "Roalds kvelder er lange, noen å prate med?", "", "baerum", "volunteering"),
    ("B-04", "Samme folk hver gang, han orker ikke forklare alt på nytt", "Roald", "baerum", "fixed_team"),
    ("B-05", "Edel åpner ikke for fremmede", "", "baerum", "fixed_team"),
    ("B-06", "Kjente fjes – hun åpner ikke for folk hun ikke kjenner", "edel", "baerum", "fixed_team"),
    ("B-07", "Edel vil ha besøk etter koret på torsdag", "", "baerum", "day_plan"),
    ("B-08", "Hun hører dårlig, snakk tydelig og se på henne", "EDEL", "baerum", "competence"),
    ("B-09", "Knut vil vite om Roald har fått medisinene", "", "baerum", "digital_communication"),
    ("B-10", "Roalds sønn ringer hele tiden fordi ingen svarer", "", "baerum", "digital_communication"),
    ("B-11", "Knut får ikke tak i noen på telefonen", "knut", "baerum", "digital_communication"),
    ("B-12", "Jeg ringer pappa fem ganger om dagen fordi jeg ikke vet om han har fått medisinene",
     "", "baerum", "digital_communication"),
    ("B-13", "Jeg blir urolig når noen jeg ikke kjenner ringer på. Jeg hører dårlig og glemmer ting",
     "", "baerum", "fixed_team"),
    ("B-14", "Kurs i velferdsteknologi for ansatte", "", "baerum", "competence"),
    ("B-15", "Internopplæring hver 14. dag – 30 min faglig påfyll på basen", "", "baerum", "competence"),
    ("B-16", "Faste team gir færre ansikter i døra", "", "baerum", "fixed_team"),
    ("B-17", "Takk for i dag!", "", "baerum", "other"),
    ("B-18", "Snekkerverksted for pensjonister", "roald", "baerum", "volunteering"),
    ("B-19", "Tavle med dagens besøk og klokkeslett", "", "baerum", "day_plan"),
    ("B-20", "Pappa sier de har vært her, men jeg vet ikke hva de gjorde. Trenger en logg",
     "", "baerum", "digital_communication"),
    ("B-21", "Jeg har sittet påkledd siden sju og ventet. Vil bestemme selv når dere kommer",
     "", "baerum", "user_chooses_time"),
    ("B-22", "Opplæring i demens for alle nyansatte", "", "baerum", "competence"),
    ("B-23", "Frivilligsentralen kan ha besøksvenner", "", "baerum", "volunteering"),
    ("B-24", "Tidsvindu i stedet for fast klokkeslett", "", "baerum", "user_chooses_time"),
    ("B-25", "App der pårørende ser når hjemmetjenesten har vært der", "", "baerum", "digital_communication"),
    ("B-26", "Primærkontakt som kjenner brukeren", "", "baerum", "fixed_team"),
    ("B-27", "Seniortreff i nabolaget for nye pensjonister", "", "baerum", "volunteering"),
    ("B-28", "Ledelsen må sette av tid til å teste nye ideer", "", "baerum", "leadership"),
    ("B-29", "SMS-varsel hvis besøket blir forsinket", "", "baerum", "digital_communication"),
    ("B-30", "Edel trenger folk med demenskompetanse", "", "baerum", "competence"),
    ("B-31", "Roald vil legge seg sent, kveldsbesøket er for tidlig", "", "baerum", "user_chooses_time"),
    ("B-32", "Knut vil se ukeplanen på mobilen", "", "baerum", "day_plan"),
    ("M-01", "Elias behöver att någon han litar på är med första natten", "", "mariestad", "familiar_staff_transition"),
    ("M-02", "Elias' rutiner måste följa med till gruppbostaden", "elias", "mariestad", "familiar_staff_transition"),
    ("M-03", "Han blir orolig av nya ansikten, det var personalen som kände honom som gjorde skillnaden",
     "", "mariestad", "familiar_staff_transition"),
    ("M-04", "Personal följer med vid flytt de första veckorna", "", "mariestad", "familiar_staff_transition"),
    ("M-05", "Budskapet måste komma från högsta ledningen", "", "mariestad", "leadership"),
    ("M-06", "Jag vill att Anna från korttids följer med när jag flyttar", "", "mariestad",
     "familiar_staff_transition"),
    ("M-07", "Elias ska ha fast kontaktman", "Elias", "mariestad", "fixed_team"),
    ("M-08", "", "", "mariestad", "other"),
    ("M-09", "Utbildning i autism för nya personalgruppen", "", "mariestad", "competence"),
    ("M-10", "Bemanningen måste gå ihop på båda enheterna", "", "mariestad", "leadership"),
    ("M-11", "Veckoschema med foton på personalen", "", "mariestad", "day_plan"),
    ("M-12", "Överlämning av rutiner till nya personalgruppen", "", "mariestad", "familiar_staff_transition"),
    ("M-13", "Chefer som är positiva till att testa nya saker", "", "mariestad", "leadership"),
    ("M-14", "Elias behöver samma kvällsrutin varje dag", "elias", "mariestad", "familiar_staff_transition"),
    ("M-15", "Digital loggbok som gamla och nya personalen kan läsa", "", "mariestad", "digital_communication"),
]

CONFIG = PersonasConfig(similarity_threshold=0.12, min_margin=0.02)


@pytest.fixture(scope="session")
def personas(tmp_path_factory):
    path = tmp_path_factory.mktemp("personas") / "personas.yml"
    path.write_text(PERSONAS_YML, encoding="utf-8")
    return load_personas(path)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    return CachedEmbedder(get_embedder("e5"), tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture()
def notes():
    frame = pd.DataFrame(NOTES, columns=["note_id", "text", "persona", "site", "theme_id"])
    frame["persona"] = frame["persona"].replace("", np.nan)  # blank tags arrive as NaN from pandas
    frame["lang"] = np.where(frame["site"] == "baerum", "nb", "sv")
    frame["workshop"] = np.where(frame.index % 2 == 0, "ws1", "ws2")
    return frame.drop(columns="theme_id")


@pytest.fixture(scope="session")
def links(personas, embedder):
    frame = pd.DataFrame(NOTES, columns=["note_id", "text", "persona", "site", "theme_id"])
    return link_personas(frame.drop(columns="theme_id"), personas, embedder, CONFIG)


@pytest.fixture()
def assignments():
    frame = pd.DataFrame(NOTES, columns=["note_id", "text", "persona", "site", "theme_id"])
    status = np.where(frame["theme_id"] == "other", "unassigned", "assigned")
    return pd.DataFrame({"note_id": frame["note_id"], "theme_id": frame["theme_id"],
                         "theme_label": frame["theme_id"].str.replace("_", " ").str.capitalize(),
                         "theme_score": np.linspace(0.9, 0.5, len(frame)), "status": status,
                         "text": frame["text"]})


def _by_id(frame):
    return frame.set_index("note_id")


# --------------------------------------------------------------------------- loading


def test_load_real_personas_file():
    path = Path(__file__).resolve().parents[1] / "data" / "raw" / "personas.yml"
    loaded = load_personas(path)
    assert [p.id for p in loaded] == ["roald", "edel", "knut", "elias"]
    assert all(p.needs for p in loaded)
    assert "Roalds sønn" in loaded[2].aliases and loaded[3].site == "mariestad"


def test_empty_needs_are_fine(personas):
    elias = next(p for p in personas if p.id == "elias")
    assert elias.needs == ()
    assert elias.sentences()  # the description still gives sentences to compare with


def _write(tmp_path, text):
    path = tmp_path / "personas.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, expected", [
    ("personas:\n  - id: a\n    name: [unclosed\n", r"line \d+"),
    ("people: []\n", "top-level 'personas:'"),
    ("personas:\n  - name: Anna\n", r"line 2, persona 1: key 'id' is missing"),
    ("personas:\n  - id: anna\n", r"persona 1 \('anna'\): key 'name' is missing"),
    ("personas:\n  - {id: a, name: A}\n  - {id: a, name: B}\n", r"persona 2 \('a'\): duplicate id, already used by persona 1"),
    ("personas:\n  - {id: Åse, name: A}\n  - {id: åse, name: B}\n", r"persona 2 \('åse'\): duplicate id.*ignoring case"),
    ("personas:\n  - id: a\n    name: A\n    needs:\n      - {id: n1, text: x}\n      - {id: n1, text: y}\n",
     "duplicate need id 'n1'"),
    ("personas:\n  - {id: a, name: A, aliases: {x: 1}}\n", "'aliases' must be a list"),
    ("personas:\n  - {id: a, name: A, needs: 5}\n", "'needs' must be a list, got a number"),
    ("personas:\n  - {id: a, name: [A, B]}\n", "'name' must be text, got a list"),
    ("personas:\n  - {id: a, name: A, needs: [{id: n1}]}\n", r"need 1 \('n1'\): key 'text' is missing"),
    ("personas:\n  - {id: a, name: A, needs: [x, [1, 2]]}\n", r"persona 1 \('a'\), need 2: .*got a list"),
    ("personas:\n  - {id: None, name: Nobody}\n", "reserved"),
    ("personas:\n  - just a string\n", "must be a mapping"),
    ("personas:\n  - id: a\n    navn: Anna\n", r"line 2, persona 1 \('a'\): 'navn' is not a field; did you mean 'name'\?"),
    ("personas:\n  - {id: a, name: A, needs: [{id: n1, tekst: x}]}\n", r"need 1: 'tekst' is not a field; did you mean 'text'\?"),
    ("personas:\n  - {id: a, name: A, needs: [[x]]}\n", "need 1: a need must be a line of text or a mapping with 'id' and 'text', got a list"),
])
def test_persona_file_errors_name_file_persona_and_key(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(PersonaFileError, match=expected) as caught:
        load_personas(path)
    assert str(path) in str(caught.value)


def test_needs_written_as_plain_text_get_ids_from_persona_and_position(tmp_path):
    path = _write(tmp_path, "personas:\n  - id: Øystein\n    name: Øystein Berg\n    needs:\n"
                            "      - Vite hvem som kommer\n      - {id: own, text: Eget valg}\n      - Noen å prate med\n")
    (persona,) = load_personas(path)
    assert [(n.id, n.text) for n in persona.needs] == [("Øystein-1", "Vite hvem som kommer"), ("own", "Eget valg"),
                                                       ("Øystein-3", "Noen å prate med")]


DEVSETS = Path("/work/shared/devsets") if Path("/work/shared/devsets").is_dir() \
    else Path(__file__).resolve().parents[2] / "shared" / "devsets"


@pytest.mark.skipif(not DEVSETS.is_dir(), reason="the shared dev sets are not next to the project")
def test_dev_set_persona_files_load_as_they_are():
    homecare = load_personas(DEVSETS / "homecare_nordic" / "personas.yml")
    assert [p.id for p in homecare] == ["astrid", "bengt", "lena", "jonas"]
    assert homecare[0].needs[1].id == "astrid-2" and homecare[0].needs[1].text
    assert all(p.needs for p in load_personas(DEVSETS / "youth_leisure" / "personas.yml"))


def test_missing_file_says_where_to_set_it(tmp_path):
    with pytest.raises(PersonaFileError, match="analysis.toml"):
        load_personas(tmp_path / "nope.yml")


# --------------------------------------------------------------------------- mentions


@pytest.mark.parametrize("text, persona_id", [
    ("Roalds kveld er lang", "roald"),
    ("Edels katt må få mat", "edel"),
    ("Knuts far vil bestemme selv", "knut"),
    ("Elias' rutiner följer med", "elias"),
    ("Elias's routines should move with him", "elias"),
    ("Roald's evenings are long", "roald"),
    ("Elias mamma vill veta vem som kommer", "elias"),
    ("ROALD vil bestemme selv", "roald"),
    ("Sønnen til Roald lurer på om vikarene vet noe", "knut"),
])
def test_inflected_names_are_mentions(personas, text, persona_id):
    mentions = find_mentions(text, personas)
    assert mentions and mentions[0].persona_id == persona_id


FULL_NAMES_YML = """\
personas:
  - {id: Åse, name: Åse Haugen, aliases: [fru Haugen]}
  - {id: Øystein, name: Øystein Nilsson}
"""


@pytest.mark.parametrize("text, persona_id", [
    ("Åse vil vite hvem som kommer", "Åse"),
    ("Åses kvelder er lange", "Åse"),
    ("Øystein's pills", "Øystein"),
    ("Spør fru Haugen først", "Åse"),
    ("Øystein Nilsson kjører buss", "Øystein"),
])
def test_a_first_name_is_a_mention_of_a_full_name(tmp_path, text, persona_id):
    personas = load_personas(_write(tmp_path, FULL_NAMES_YML))
    assert [m.persona_id for m in find_mentions(text, personas)][:1] == [persona_id]


def test_a_compound_on_the_name_is_not_the_persona(tmp_path, personas):
    assert find_mentions("Roald-filmen hadde dårlig lyd", personas) == []
    assert find_mentions("Er Edel-personaen for gammel?", personas) == []
    assert find_mentions("Hilsen fru", load_personas(_write(tmp_path, FULL_NAMES_YML))) == []


@pytest.mark.parametrize("text", [
    "Knutepunkt for informasjon", "Edelweiss på bordet", "Hilsen fra Jens Roaldsen",
    "En edel tanke", "knuten må løses", "Jens-Roald kommer",
])
def test_names_inside_other_words_are_not_mentions(personas, text):
    assert find_mentions(text, personas) == []


def test_two_personas_pick_the_one_whose_perspective_the_note_takes(personas, notes):
    links = _by_id(explicit_links(notes, personas))
    assert links.loc["B-09", ["persona_id", "persona_secondary"]].tolist() == ["knut", "roald"]
    assert links.loc["B-10", ["persona_id", "persona_method", "persona_evidence"]].tolist() == \
        ["knut", "mention", "Roalds sønn"]
    frame = pd.DataFrame({"note_id": ["x"], "text": ["Edels datter sier at Roald trenger selskap"]})
    link = explicit_links(frame, personas).iloc[0]
    assert (link["persona_id"], link["persona_secondary"]) == ("roald", "edel")


def test_possessive_mentions_score_below_plain_ones(personas, notes):
    links = _by_id(explicit_links(notes, personas))
    assert links.loc["B-01", "persona_score"] == 1.0
    assert links.loc["B-03", "persona_score"] < 1.0


# --------------------------------------------------------------------------- tags


def test_tags_match_id_or_name_case_insensitively(personas, notes):
    links = _by_id(explicit_links(notes, personas))
    assert links.loc["B-08", ["persona_id", "persona_method", "persona_score"]].tolist() == ["edel", "tag", 1.0]
    assert links.loc["M-07", "persona_id"] == "elias"
    assert links.loc["B-14", "persona_method"] == "none"


def test_unknown_tag_is_kept_visible_and_logged_without_note_text(personas, notes, caplog):
    notes.loc[notes["note_id"] == "B-14", "persona"] = "Marit"
    with caplog.at_level(logging.WARNING, logger="analysis.personas"):
        links = _by_id(explicit_links(notes, personas))
    assert links.loc["B-14", ["persona_id", "persona_method", "persona_evidence"]].tolist() == \
        ["none", "tag_unknown", "Marit"]
    assert "'Marit'" in caplog.text
    assert "velferdsteknologi" not in caplog.text


def test_tag_wins_and_a_named_other_persona_becomes_secondary(personas):
    frame = pd.DataFrame({"note_id": ["x"], "text": ["Knut ringer om pappa"], "persona": ["roald"]})
    link = explicit_links(frame, personas).iloc[0]
    assert (link["persona_id"], link["persona_method"], link["persona_secondary"]) == ("roald", "tag", "knut")


# --------------------------------------------------------------------------- similarity (real e5)


def test_voice_cues():
    assert speaks_for_a_person("Jeg vet aldri hvem som kommer")
    assert speaks_for_a_person("Pappa åpner ikke døra")
    assert speaks_for_a_person("I never know who comes")
    assert not speaks_for_a_person("Internopplæring hver 14. dag – 30 min")
    assert not speaks_for_a_person("Hvem er fra NAV her?")
    assert not speaks_for_a_person("Vi er for få på jobb i helgene")


def test_implicit_notes_link_by_similarity_and_generic_notes_stay_none(links):
    links = _by_id(links)
    assert links.loc["B-12", ["persona_id", "persona_method"]].tolist() == ["knut", "similarity"]
    assert links.loc["B-13", "persona_id"] == "edel"
    assert links.loc["B-21", "persona_id"] == "roald"
    # Third-person and quoted staff voices stay out unless they clear the corpus's own bar.
    assert set(links.loc[links["persona_method"] == "similarity"].index) <= {"B-12", "B-13", "B-20", "B-21", "M-03", "M-06"}
    speaks_for_someone = {"B-01", "B-03", "B-05", "B-07", "B-09", "B-10", "B-12", "B-13", "B-20", "B-21",
                          "B-30", "B-31", "B-32", "M-01", "M-03", "M-06"}
    for generic in [note[0] for note in NOTES if not note[2] and note[0] not in speaks_for_someone]:
        assert links.loc[generic, ["persona_id", "persona_method", "persona_score"]].tolist() == ["none", "none", 0.0]
    assert links.loc["B-12", "persona_evidence"]  # the persona sentence it resembled


def test_similarity_reports_that_it_is_reliable_and_the_bar_it_used(links):
    verdict = links.attrs["similarity"]
    assert verdict["reliable"] and verdict["reasons"] == []
    checks = verdict["checks"]
    assert checks["notes_speaking_for_nobody"] >= 20 and checks["explicit_notes_checked"] >= 10
    assert verdict["threshold"] == max(CONFIG.similarity_threshold, checks["corpus_bar"])
    linked = links[links["persona_method"] == "similarity"]
    assert (linked["persona_score"] >= verdict["threshold"]).all()


def test_similarity_links_nothing_when_the_personas_cannot_be_told_apart(tmp_path, embedder, notes):
    same = _write(tmp_path, "personas:\n" + "\n".join(
        f"  - {{id: {pid}, name: {name}, site: baerum, description: Han bor alene og vet aldri hvem som kommer, "
        "needs: [Vite hvem som kommer og når]}" for pid, name in (("roald", "Roald"), ("knut", "Knut"))) + "\n")
    links = link_personas(notes, load_personas(same), embedder, CONFIG)
    verdict = links.attrs["similarity"]
    assert not verdict["reliable"] and "too alike" in " ".join(verdict["reasons"])
    assert "similarity" not in set(links["persona_method"])
    assert set(links["persona_method"]) <= {"tag", "tag_unknown", "mention", "none"}


def test_similarity_links_nothing_without_personal_voices(personas, embedder, notes):
    impersonal = notes[~notes["text"].map(speaks_for_a_person)]
    links = link_personas(impersonal, personas, embedder, CONFIG)
    verdict = links.attrs["similarity"]
    assert not verdict["reliable"] and "personal voice" in " ".join(verdict["reasons"])
    assert "similarity" not in set(links["persona_method"])


class _Recording:
    """An embedder that remembers every text it was asked to embed."""

    def __init__(self, inner):
        self.inner, self.texts = inner, []

    def encode(self, texts, kind="query"):
        self.texts += list(texts)
        return self.inner.encode(texts, kind=kind)


def test_with_the_run_vectors_no_note_is_embedded_again(personas, embedder, notes, assignments):
    space = NoteSpace.from_notes(notes, embedder)
    recording = _Recording(embedder)
    space = NoteSpace(space.note_ids, space.vectors, recording, space.centre)
    links = link_personas(notes, personas, space, CONFIG)
    need_coverage(personas, assignments, space, threshold=0.3, notes=notes)
    trace_table(personas, assignments, links, space, threshold=0.3, notes=notes)
    note_texts = set(notes["text"]) - {""}
    assert recording.texts and not note_texts & set(recording.texts)
    expected = link_personas(notes, personas, embedder, CONFIG)
    pd.testing.assert_frame_equal(links[["persona_id", "persona_method"]], expected[["persona_id", "persona_method"]])


def test_site_restricts_similarity(personas, embedder, notes):
    scores = _by_id(similarity_scores(notes.assign(), personas, embedder).assign(note_id=notes["note_id"]))
    assert np.isnan(scores.loc["B-12", "score_elias"])
    assert np.isnan(scores.loc["M-03", "score_roald"])
    assert scores.loc["M-03", "runner_up"] == ""  # Elias is the only Mariestad persona


def test_links_do_not_depend_on_row_order(personas, embedder, notes, links):
    shuffled = notes.sample(frac=1, random_state=7)
    again = link_personas(shuffled, personas, embedder, CONFIG)
    expected = _by_id(links).loc[shuffled["note_id"]]
    actual = _by_id(again)
    columns = ["persona_id", "persona_method", "persona_secondary", "persona_evidence"]
    pd.testing.assert_frame_equal(actual[columns], expected[columns])
    assert actual["persona_score"].to_numpy() == pytest.approx(expected["persona_score"].to_numpy(), abs=1e-6)


def test_links_are_indexed_like_notes(personas, embedder, notes):
    notes.index = [f"row{i}" for i in range(len(notes))]
    links = link_personas(notes, personas, embedder, CONFIG)
    assert list(links.index) == list(notes.index)
    assert set(links["persona_method"]) <= {"tag", "tag_unknown", "mention", "similarity", "none"}


def test_a_high_threshold_keeps_implicit_notes_out(personas, embedder, notes):
    strict = link_personas(notes, personas, embedder, PersonasConfig(similarity_threshold=0.99, min_margin=0.02))
    assert "similarity" not in set(strict["persona_method"])


# --------------------------------------------------------------------------- threshold


def test_choose_threshold_respects_false_rate_budget():
    scores = np.array([0.30, 0.25, 0.20, 0.18, 0.15, np.nan, 0.10, np.nan])
    is_persona = np.array([True, True, False, True, True, False, False, False])
    choice = choose_similarity_threshold(scores, is_persona, max_false_rate=0.0)
    assert choice.threshold == pytest.approx(0.201)  # just above the best-scoring none note
    assert choice.false_rate == 0.0 and choice.recall == pytest.approx(0.5)
    loose = choose_similarity_threshold(scores, is_persona, max_false_rate=0.25)
    assert loose.threshold == pytest.approx(0.101) and loose.false_rate == pytest.approx(0.25)


def test_threshold_in_use_explains_itself(personas, embedder, notes):
    links = explicit_links(notes, personas)
    scores = candidate_scores(links, similarity_scores(notes, personas, embedder, links), CONFIG)
    in_use = similarity_threshold_in_use(CONFIG, scores)
    assert in_use.threshold == CONFIG.similarity_threshold
    assert "similarity_threshold" in in_use.reason and "pass it" in in_use.reason
    assert np.isnan(scores[notes["note_id"] == "B-14"]).all()  # no voice: cannot be linked at all


# --------------------------------------------------------------------------- themes, needs, traces


def test_theme_persona_table(assignments, links):
    table = theme_persona_table(assignments, links)
    assert {"theme_id", "persona_id", "count", "share_within_persona", "share_within_theme", "std_residual",
            "p_value_cell", "small_cell"} <= set(table.columns)
    assert "none" in set(table["persona_id"])
    assert "other" not in set(table["theme_id"])  # unassigned notes are not in a theme
    assert table["count"].sum() == (assignments["status"] == "assigned").sum()
    tests = table.attrs["tests"]
    assert {"chi2", "dof", "p_value", "trustworthy"} <= set(tests) and tests["trustworthy"] is False


def test_theme_persona_table_ignores_row_order(assignments, links):
    first = theme_persona_table(assignments, links)
    again = theme_persona_table(assignments.sample(frac=1, random_state=2), links.sample(frac=1, random_state=5))
    pd.testing.assert_frame_equal(first, again)


def test_compare_groups_takes_the_attribute_from_notes(assignments, notes):
    table = compare_groups(assignments, "site", notes=notes)
    assert set(table["site"]) == {"baerum", "mariestad"}
    assert "share_within_site" in table.columns
    with pytest.raises(KeyError, match="workshop_x"):
        compare_groups(assignments, "workshop_x", notes=notes)


def test_need_coverage_ranks_themes_and_lists_gaps(personas, assignments, embedder, notes):
    # Centred on the mean of these 47 mixed Norwegian/Swedish notes, similarities are lower than in a run.
    coverage = need_coverage(personas, assignments, embedder, threshold=0.2, notes=notes)
    know_who = coverage[coverage["need_id"] == "roald_know_who"]
    assert know_who.iloc[0]["theme_id"] == "day_plan" and not know_who.iloc[0]["gap"]
    strict = need_coverage(personas, assignments, embedder, threshold=0.99, notes=notes)
    assert strict["gap"].all() and set(strict["need_id"]) == {n.id for p in personas for n in p.needs}
    assert not strict["best_note_id"].str.startswith("M-").any()  # Bærum needs never see Mariestad notes
    shuffled = need_coverage(personas, assignments.sample(frac=1, random_state=1), embedder, 0.2, notes)
    pd.testing.assert_frame_equal(coverage, shuffled)


def test_trace_table_follows_each_claim_to_a_quote(personas, assignments, links, embedder, notes):
    trace = trace_table(personas, assignments, links, embedder, threshold=0.3, notes=notes)
    assert list(trace.columns[:6]) == ["persona_id", "need_id", "need_text", "theme_id", "theme_label", "note_id"]
    assert (trace["quote"].str.len() <= 200).all()
    row = trace[trace["note_id"] == "B-06"]
    assert not row.empty and row["linked_to_persona"].iloc[0]


def test_quote_is_cut_at_a_word_boundary():
    text = "ord " * 100
    assert len(quote(text)) <= 200 and quote(text).endswith("…")
    assert quote("kort\nlapp") == "kort lapp"


def test_persona_summary_markdown(personas, assignments, links, embedder, notes):
    table = theme_persona_table(assignments, links)
    coverage = need_coverage(personas, assignments, embedder, threshold=0.3, notes=notes)
    roald = personas[0]
    text = persona_summary_markdown(roald, table, coverage, assignments, links)
    for heading in ["# Roald (`roald`)", "## Needs", "## Top themes", "## Gaps", "## Small counts"]:
        assert heading in text
    quotes = persona_quotes(assignments, links, "roald")
    assert any(note_id in text for note_id in quotes["note_id"])
    elias = personas[3]
    assert "No needs are listed" in persona_summary_markdown(elias, table, coverage, assignments, links)


def test_links_win_over_persona_columns_already_in_the_assignments(assignments, links):
    stale = assignments.assign(persona_id="roald", persona_method="tag")
    pd.testing.assert_frame_equal(theme_persona_table(stale, links), theme_persona_table(assignments, links))


def test_needs_written_as_plain_sentences_get_ids(tmp_path):
    path = _write(tmp_path, "personas:\n  - id: birthe\n    name: Birthe\n    needs:\n"
                            "      - Kunne få breve og blanketter på papir\n      - Hjelp med digitale tjenester\n"
                            "      - Hjelp med digitale tjenester\n      - {text: Nokon å snakke med}\n")
    (birthe,) = load_personas(path)
    assert [need.text for need in birthe.needs] == ["Kunne få breve og blanketter på papir",
                                                    "Hjelp med digitale tjenester", "Hjelp med digitale tjenester",
                                                    "Nokon å snakke med"]
    assert [need.id for need in birthe.needs] == ["birthe-1", "birthe-2", "birthe-3", "birthe-4"]


def test_a_single_need_written_as_one_line_is_a_list_of_one(tmp_path):
    (birthe,) = load_personas(_write(tmp_path, "personas:\n  - {id: birthe, name: Birthe, needs: Papir}\n"))
    assert [(need.id, need.text) for need in birthe.needs] == [("birthe-1", "Papir")]


@pytest.mark.parametrize("broken_line, expected", [
    ("    name Edel", "line 6, column 5: not valid YAML (a key without ':' after it"),
    ('    name: "Edel', "line 6, column 11: not valid YAML (a quote opened here is never closed)"),
])
def test_yaml_syntax_errors_name_the_line_where_the_mistake_is(tmp_path, broken_line, expected):
    lines = ["personas:", "  - id: roald", "    name: Roald", "    description: Pensjonist.", "  - id: edel",
             broken_line, "    description: Datter.", "  - id: knut", "    name: Knut"]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(PersonaFileError) as caught:
        load_personas(path)
    assert expected in str(caught.value)


def test_the_corpus_bar_stays_put_when_the_scores_move_in_their_last_digits():
    """Another CPU's vectors move every similarity a little; the bar is on a 0.01 grid."""
    from analysis.personas import BAR_STEP, METHOD_NONE, corpus_similarity_bar

    rng = np.random.default_rng(0)
    scores = rng.uniform(0.05, 0.29, 200)
    scores[-15:] = 0.2995  # the 95th percentile sits just below 0.30
    links = pd.DataFrame({"persona_method": [METHOD_NONE] * 200})
    bars = set()
    for draw in range(5):
        moved = scores + np.random.default_rng(draw).normal(0, 1e-4, 200)
        similarity = pd.DataFrame({"voiced": False, "score": moved})
        bar, n_null = corpus_similarity_bar(links, similarity)
        assert n_null == 200
        bars.add(bar)
    assert bars == {0.3}
    assert round(bar / BAR_STEP, 9) == round(bar / BAR_STEP)   # on the grid
    assert abs(bar - np.quantile(scores, 0.95)) <= BAR_STEP / 2   # the corpus's own quantile, on the grid
