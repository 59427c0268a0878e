"""Persona tracing: which notes speak for which persona, and which needs the themes answer.

A note is linked to a persona in one of three ways, trusted in this order:

1. ``tag``: the workshop wrote the persona on the note (the ``persona`` column).
2. ``mention``: the note names the persona or one of its aliases, as a whole word, with
   the Nordic/English possessive (Roalds, Elias', Roald's). Names are proper nouns, so the
   match is case-sensitive ("edel" is an adjective, "knute" a knot).
3. ``similarity``: the note speaks for a particular person without naming one (first person,
   "han"/"hon", "pappa") and is much closer to one persona's description and needs than to
   any other persona's. Topic alone is not enough: "personal följer med vid flytt" is on
   Elias' topic but speaks for nobody, so notes without a personal voice stay ``none``.

Everything downstream (theme × persona tables, need coverage, traces, summaries) keeps
the note ids, so every claim in a report can be followed back to the sticky note.
"""

from __future__ import annotations

import hashlib
import logging
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import PersonasConfig, did_you_mean
from analysis.files import read_yaml, yaml_item_lines
from analysis.schema import NO_PERSONA, STATUS_EXCLUDED, STATUS_UNASSIGNED
from analysis.stats import cell_statistics, contingency_table, contingency_tests
from analysis.text import normalise, split_sentences

log = logging.getLogger(__name__)


def persona_order(ids) -> list[str]:
    """Persona ids sorted, each once, with ``none`` last so the named personas sit together
    (figures, tables and the report show them in this order)."""
    return sorted(set(ids), key=lambda persona: (persona == NO_PERSONA, persona))

METHOD_TAG = "tag"
METHOD_TAG_UNKNOWN = "tag_unknown"
METHOD_MENTION = "mention"
METHOD_SIMILARITY = "similarity"
METHOD_NONE = "none"

LINK_COLUMNS = ("persona_id", "persona_method", "persona_score", "persona_secondary", "persona_evidence")

#: Mention strength: naming a persona outright is the strongest evidence; a possessive
#: ("Roalds medisiner") is about the persona's world and slightly weaker.
MENTION_SCORE = 1.0
POSSESSIVE_MENTION_SCORE = 0.9

QUOTE_CHARS = 200

#: Suggested need-coverage threshold (centred cosine, the persona-linking scale). On the
#: example corpus 0.35 keeps matches that share the need's substance; at 0.30 loosely related
#: notes ("ledere må gi tid til å teste") start to count as support. Candidate for the config.
NEED_THRESHOLD = 0.35


# --------------------------------------------------------------------------- loading


class PersonaFileError(ValueError):
    """A problem in the personas file, phrased for the analyst who edits it."""


@dataclass(frozen=True)
class Need:
    id: str
    text: str


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    role: str
    aliases: tuple[str, ...]
    description: str
    needs: tuple[Need, ...]
    site: str | None = None

    def surface_forms(self) -> tuple[str, ...]:
        """Name, first name and aliases, longest first, without repeats.

        Notes call "Astrid Haugen" Astrid; the first name counts when the name has more than
        one word and starts with a capital (so "fru Haugen" does not make "fru" a name).
        """
        words = normalise(self.name).split()
        first = [words[0]] if len(words) > 1 and words[0][:1].isupper() and len(words[0]) > 1 else []
        forms = {normalise(form) for form in (self.name, *first, *self.aliases) if normalise(form)}
        return tuple(sorted(forms, key=lambda form: (-len(form), form)))

    def sentences(self) -> tuple[str, ...]:
        """Description sentences and need texts: what the persona's notes sound like."""
        description = normalise(self.description)
        spoken = [description[start:end] for start, end in split_sentences(description)]
        return tuple(dict.fromkeys([*spoken, *(normalise(need.text) for need in self.needs)]))


def _fail(path: Path, where: str, problem: str, fix: str) -> PersonaFileError:
    return PersonaFileError(f"{path}: {where}: {problem}. {fix}")


PERSONA_FIELDS = ("id", "name", "role", "aliases", "description", "needs", "site")
NEED_FIELDS = ("id", "text")


def _unknown_keys(path, where, entry: dict, known: Sequence[str], what: str) -> None:
    """An unknown key is an error that names it and the field it most likely means."""
    for key in entry:
        if str(key) not in known:
            raise _fail(path, where, f"'{key}' is not a field{did_you_mean(str(key), known)}",
                        f"The fields of a {what} are {', '.join(known)}.")


def _text_field(path, where, entry, key, required) -> str:
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _fail(path, where, f"key '{key}' is missing or empty", f"Add '{key}: ...' to this persona.")
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise _fail(path, where, f"key '{key}' must be text, got a {_yaml_kind(value)}",
                    f"Write '{key}' as a single line of text.")
    return normalise(str(value))


def _aliases(path, where, entry) -> tuple[str, ...]:
    aliases = entry.get("aliases") or []
    if isinstance(aliases, str):
        aliases = [aliases]
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _fail(path, where, "key 'aliases' must be a list of names",
                    "Write it as 'aliases: [Name, Other name]'.")
    return tuple(normalise(a) for a in aliases if normalise(a))


def _needs(path, where, entry, persona_id: str) -> tuple[Need, ...]:
    """A persona's needs: each a line of text, or a mapping with ``id`` and ``text``.

    A need written as plain text (or as a mapping without ``id``) gets the id
    ``<persona id>-<position>`` (1-based), so that ``- Vite hvem som kommer`` as the second
    need of ``astrid`` is ``astrid-2``. A key other than ``id`` and ``text`` is named with
    the field it most likely means.
    """
    raw = entry.get("needs") or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise _fail(path, where, f"key 'needs' must be a list, got a {_yaml_kind(raw)}",
                    "Write each need on its own line as '- text of the need' (or '- id: ...' with 'text: ...').")
    needs, seen = [], set()
    for number, need in enumerate(raw, start=1):
        need_where = f"{where}, need {number}"
        if isinstance(need, str) and normalise(need):
            need = {"text": need}  # the natural way: a need is a line of text
        if not isinstance(need, dict):
            got = "an empty line" if need is None or isinstance(need, str) else f"a {_yaml_kind(need)}"
            raise _fail(path, need_where, f"a need must be a line of text or a mapping with 'id' and 'text', got {got}",
                        "Write the need as '- text of the need'.")
        _unknown_keys(path, need_where, need, NEED_FIELDS, "need")
        if need.get("id") is None:
            need_id = f"{persona_id}-{number}"
        else:
            need_id = _text_field(path, need_where, need, "id", required=True)
        text = _text_field(path, f"{need_where} ('{need_id}')", need, "text", required=True)
        if need_id in seen:
            raise _fail(path, need_where, f"duplicate need id '{need_id}'", "Give each need its own id.")
        seen.add(need_id)
        needs.append(Need(need_id, text))
    return tuple(needs)


def _yaml_kind(value) -> str:
    """What a YAML value is, in the words of someone who edits YAML (not Python's type names)."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, (int, float)):
        return "number"
    return "line of text"


def _persona(path: Path, number: int, entry, line: int | None = None) -> Persona:
    """One persona entry; ``number`` is its 1-based position in the file."""
    at_line = f"line {line}, " if line else ""
    where = f"{at_line}persona {number}"
    if not isinstance(entry, dict):
        raise _fail(path, where, f"each persona must be a mapping, got a {_yaml_kind(entry)}",
                    "Start each persona with '- id: ...'.")
    if entry.get("id") is None:
        _unknown_keys(path, where, entry, PERSONA_FIELDS, "persona")  # 'ID:' or 'navn:' before 'id' is missing
    persona_id = _text_field(path, where, entry, "id", required=True)
    where = f"{at_line}persona {number} ('{persona_id}')"
    _unknown_keys(path, where, entry, PERSONA_FIELDS, "persona")
    if persona_id.lower() == NO_PERSONA:
        raise _fail(path, where, f"the id '{NO_PERSONA}' is reserved for notes without a persona",
                    "Choose another id.")
    site = _text_field(path, where, entry, "site", required=False) or None
    return Persona(
        id=persona_id,
        name=_text_field(path, where, entry, "name", required=True),
        role=_text_field(path, where, entry, "role", required=False),
        aliases=_aliases(path, where, entry),
        description=_text_field(path, where, entry, "description", required=False),
        needs=_needs(path, where, entry, persona_id),
        site=site.lower() if site else None,
    )


def load_personas(path: str | Path) -> list[Persona]:
    """Read ``personas.yml``; raise PersonaFileError naming the file, persona and key."""
    path = Path(path)
    if not path.is_file():
        raise PersonaFileError(f"{path}: personas file not found. Set [paths] personas in analysis.toml.")
    data, text = read_yaml(path, PersonaFileError, "personas")
    if not isinstance(data, dict) or not isinstance(data.get("personas"), list):
        raise PersonaFileError(f"{path}: expected a top-level 'personas:' list. "
                               "Start the file with 'personas:' and list each persona under it.")
    personas, seen = [], {}
    lines = yaml_item_lines(text, "personas")
    for number, entry in enumerate(data["personas"], start=1):
        line = lines[number - 1] if number - 1 < len(lines) else None
        persona = _persona(path, number, entry, line)
        # Ids are compared case-insensitively everywhere (tags, gold labels), so two ids
        # that differ only in case would be one persona there.
        key = persona.id.casefold()
        if key in seen:
            raise _fail(path, f"{f'line {line}, ' if line else ''}persona {number} ('{persona.id}')",
                        f"duplicate id, already used by persona {seen[key]} (ids are compared ignoring case)",
                        "Give each persona its own id.")
        seen[key] = number
        personas.append(persona)
    return personas


# --------------------------------------------------------------------------- tags


def _tag_lookup(personas: Sequence[Persona]) -> dict[str, str]:
    lookup = {}
    for persona in personas:
        for key in (persona.id, persona.name, *persona.aliases):
            lookup.setdefault(key.casefold(), persona.id)
    return lookup


def _tag_value(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return normalise(str(value))


# --------------------------------------------------------------------------- mentions


@dataclass(frozen=True)
class Mention:
    persona_id: str
    start: int
    end: int
    surface: str
    possessive: bool


def _form_pattern(form: str) -> str:
    words = [re.escape(word) for word in form.split()]
    return r"\s+".join(words)


@cache
def _mention_regex(persona: Persona) -> re.Pattern:
    """Whole-word name or alias with an optional possessive; capitalised or all-caps only.

    ``(?<![\\w-])`` keeps "Jens-Roald" out; ``(?!\\w|-\\w)`` after the optional possessive keeps
    "Roaldsen", "Knutepunkt" and "Edelweiss" out while "Roalds", "Elias'", "Roald's" match.
    A compound on the name ("Astrid-filmen", "Jonas-personan") is about something named
    after the persona (the persona film, the sheet), not the persona: not a mention.
    """
    forms = []
    for form in persona.surface_forms():
        # As written, sentence-initial ("Sønnen til Roald") and shouted ("ROALD").
        for variant in (form, form[0].upper() + form[1:], form.upper()):
            forms.append(_form_pattern(variant))
    alternatives = "|".join(dict.fromkeys(forms))
    return re.compile(rf"(?<![\w-])(?P<form>{alternatives})(?P<possessive>['’]s|s|['’])?(?!\w|-\w)")


def find_mentions(text: str, personas: Sequence[Persona]) -> list[Mention]:
    """Persona mentions in reading order; a mention inside a longer one is dropped.

    "Roalds sønn" is an alias of Knut, so the "Roalds" inside it is not a mention of Roald.
    """
    found = []
    for persona in personas:
        for match in _mention_regex(persona).finditer(text):
            found.append(Mention(persona.id, match.start(), match.end(), match.group(0),
                                 match.group("possessive") is not None))
    found.sort(key=lambda m: (m.start, -(m.end - m.start), m.persona_id))
    kept: list[Mention] = []
    for mention in found:
        if any(other.start <= mention.start and mention.end <= other.end for other in kept):
            continue
        kept.append(mention)
    return kept


def perspective(mentions: Sequence[Mention]) -> tuple[Mention, str]:
    """The mention whose perspective the note takes, and the other persona named (or "").

    The first persona named outright is usually the grammatical subject ("Knut vil vite om
    Roald …"). A possessive names whose world it is, not who acts ("Edels datter sier at
    Roald …"), so it only wins when every mention is possessive.
    """
    plain = [m for m in mentions if not m.possessive]
    primary = (plain or list(mentions))[0]
    others = [m.persona_id for m in mentions if m.persona_id != primary.persona_id]
    return primary, (others[0] if others else "")


# --------------------------------------------------------------------------- implicit voice

#: Words that make a note speak for one particular person rather than about a service:
#: first person singular, third person singular, and kinship (a relative's voice). Plural
#: "vi"/"me"/"we" is left out on purpose: it is the staff's or the workshop's voice.
_VOICE_WORDS = frozenset("""
    jeg eg jag meg mig mej min mitt mine mi mina
    han hun ho hon ham honom henne hans hennes hennar
    pappa mamma far faren fars mor mora moren mors sønnen sønn datter datteren dattera
    son sonen dotter dottern
    my me mine he she him his dad mum mom father mother
""".split())
# English "her" is left out: in Norwegian it means "here" ("Hvem er fra NAV her?").
_VOICE_CASED = frozenset({"I"})  # English "I"; lowercase "i" is the Nordic preposition
#: "min" after a number is minutes ("30 min", "15 min forsinket"), not "my".
_MINUTES = re.compile(r"\d\s*min\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def speaks_for_a_person(text: str) -> bool:
    """Whether a note is voiced by or about one particular person (see _VOICE_WORDS)."""
    text = _MINUTES.sub(" ", text)
    for word in _WORD.findall(text):
        if word in _VOICE_CASED or word.casefold() in _VOICE_WORDS:
            return True
    return False


# --------------------------------------------------------------------------- explicit links


def _note_texts(notes: pd.DataFrame) -> list[str]:
    if "text" not in notes.columns:
        raise KeyError("the notes table has no 'text' column; load it with analysis.load.load_notes.")
    return [normalise(t) if isinstance(t, str) else "" for t in notes["text"]]


def _link(persona_id=NO_PERSONA, method=METHOD_NONE, score=0.0, secondary="", evidence="") -> dict:
    return {"persona_id": persona_id, "persona_method": method, "persona_score": float(score),
            "persona_secondary": secondary, "persona_evidence": evidence}


def _explicit_link(tag: str, text: str, personas: Sequence[Persona], tags: dict[str, str]) -> dict:
    """Link from the tag column or a name in the text; the 'none' link when neither says anything."""
    mentions = find_mentions(text, personas)
    if tag:
        persona_id = tags.get(tag.casefold())
        if persona_id is None and tag.casefold() == NO_PERSONA:
            persona_id = NO_PERSONA  # the workshop wrote "none" on purpose
        if persona_id is None:
            return _link(method=METHOD_TAG_UNKNOWN, evidence=tag)
        others = [m.persona_id for m in mentions if m.persona_id != persona_id]
        return _link(persona_id, METHOD_TAG, 1.0, others[0] if others else "", tag)
    if mentions:
        primary, secondary = perspective(mentions)
        score = POSSESSIVE_MENTION_SCORE if primary.possessive else MENTION_SCORE
        return _link(primary.persona_id, METHOD_MENTION, score, secondary, primary.surface)
    return _link()


def explicit_links(notes: pd.DataFrame, personas: Sequence[Persona]) -> pd.DataFrame:
    """Tag and mention links for every note (no embeddings); other notes get method 'none'."""
    tags = _tag_lookup(personas)
    raw_tags = notes["persona"] if "persona" in notes.columns else pd.Series("", index=notes.index)
    rows = [_explicit_link(_tag_value(tag), text, personas, tags)
            for tag, text in zip(raw_tags, _note_texts(notes))]
    links = pd.DataFrame(rows, index=notes.index, columns=list(LINK_COLUMNS))
    if "note_id" in notes.columns:  # kept so links can be joined to assignments by id
        links.insert(0, "note_id", notes["note_id"].astype(str).to_numpy())
    unknown_tags = links.loc[links["persona_method"] == METHOD_TAG_UNKNOWN, "persona_evidence"]
    for value, count in sorted(unknown_tags.value_counts().items()):
        log.warning("persona tag %r on %d note(s) matches no persona id, name or alias; "
                    "those notes are linked to 'none' (method tag_unknown). Fix the tag or add an alias.",
                    value, count)
    return links


# --------------------------------------------------------------------------- similarity

#: A persona's score is the mean of its TOP_K most similar exemplars (description and need
#: sentences plus the notes already tagged or naming it). One lucky sentence cannot carry a
#: note, and the workshop's own notes sound more like the implicit ones than prose does.
TOP_K = 5

#: A similarity link whose runner-up is within this margin names the runner-up as secondary,
#: so the analyst sees the close calls (Roald and Edel share needs such as familiar faces).
CLOSE_CALL = 0.05

#: At most this many explicitly linked notes serve as one persona's exemplars, chosen by a
#: hash of text and note id (not by row order). Beyond a few hundred, more exemplars add
#: near-duplicates rather than evidence, and comparing every note with every linked note
#: would grow with the square of the corpus (benchmarks/scale.py). Notes are compared with
#: the exemplars in chunks of SIMILARITY_CHUNK rows, so memory stays flat too.
MAX_EXEMPLAR_NOTES = 1000
SIMILARITY_CHUNK = 2048


def _embed(embedder, texts: Sequence[str]) -> np.ndarray:
    """Each distinct text embedded once, in sorted order, so row order cannot change a vector."""
    unique = sorted(set(texts))
    vectors = embedder.encode(unique, kind="query") if unique else np.zeros((0, 1), np.float32)
    row = {text: i for i, text in enumerate(unique)}
    return np.asarray(vectors, dtype=np.float64)[[row[text] for text in texts]]


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def _note_ids(notes: pd.DataFrame) -> np.ndarray:
    ids = notes["note_id"] if "note_id" in notes.columns else notes.index.to_series()
    return ids.astype(str).to_numpy()


@dataclass(frozen=True)
class NoteSpace:
    """The notes' vectors in the space persona linking compares in, and the way in for other texts.

    In a run this is the run's own vectors, centred by its fitted ThemeModel
    (``pipeline.note_space``), so the notes are not embedded a second time; persona
    descriptions and needs, which are not notes, are embedded and centred the same way.
    ``NoteSpace.from_notes`` builds one for notes outside a run.
    """

    note_ids: tuple[str, ...]
    vectors: np.ndarray  # one unit-length row per note id; zero for a note without text
    embedder: object
    centre: Callable[[np.ndarray], np.ndarray]  # raw embeddings -> centred, unit length

    @classmethod
    def from_notes(cls, notes: pd.DataFrame, embedder) -> "NoteSpace":
        """Embed the notes and centre on their mean (averaged in text order: row order cannot matter)."""
        texts = _note_texts(notes)
        raw = _embed(embedder, texts)
        written = sorted((i for i, text in enumerate(texts) if text), key=lambda i: texts[i])
        mean = raw[written].mean(axis=0) if written else np.zeros(raw.shape[1])

        def centre(vectors: np.ndarray) -> np.ndarray:
            return _unit(np.asarray(vectors, dtype=np.float64) - mean)

        vectors = centre(raw)
        vectors[[not text for text in texts]] = 0.0
        return cls(tuple(_note_ids(notes)), vectors, embedder, centre)

    def rows(self, note_ids) -> np.ndarray:
        """Row positions of these note ids in ``vectors``."""
        where = {note_id: i for i, note_id in enumerate(self.note_ids)}
        missing = [str(n) for n in note_ids if str(n) not in where]
        if missing:
            raise KeyError(f"{len(missing)} note(s) are not in the run's vectors (e.g. {missing[0]!r}); "
                           "build the NoteSpace from the same notes.")
        return np.array([where[str(n)] for n in note_ids], dtype=int)

    def of_notes(self, notes: pd.DataFrame) -> np.ndarray:
        return self.vectors[self.rows(_note_ids(notes))] if len(notes) else np.zeros((0, self.vectors.shape[1]))

    def of_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Centred unit vectors of texts that are not notes (persona descriptions, needs)."""
        if not texts:
            return np.zeros((0, self.vectors.shape[1]))
        return self.centre(_embed(self.embedder, texts))


def _space(notes: pd.DataFrame, space_or_embedder) -> NoteSpace:
    """A NoteSpace as given, or one built from the notes with this embedder."""
    if isinstance(space_or_embedder, NoteSpace):
        return space_or_embedder
    return NoteSpace.from_notes(notes, space_or_embedder)


def _note_sites(notes: pd.DataFrame) -> np.ndarray | None:
    if "site" not in notes.columns:
        return None
    return np.array([str(s).strip().lower() if isinstance(s, str) else "" for s in notes["site"]])


def _persona_exemplars(persona: Persona, links: pd.DataFrame, texts: list[str]) -> tuple[list[str], list[int]]:
    """The persona's sentences, then its explicitly linked notes (row positions, -1 for sentences)."""
    sentences = list(persona.sentences())
    explicit = links["persona_method"].isin([METHOD_TAG, METHOD_MENTION]).to_numpy()
    mine = (links["persona_id"] == persona.id).to_numpy() & explicit
    rows = [i for i in np.flatnonzero(mine) if texts[i]]
    if len(rows) > MAX_EXEMPLAR_NOTES:
        ids = links["note_id"].astype(str).to_numpy() if "note_id" in links.columns else np.arange(len(texts))
        key = {i: hashlib.sha256(f"{texts[i]}\x1f{ids[i]}".encode()).hexdigest() for i in rows}
        rows = sorted(sorted(rows, key=key.get)[:MAX_EXEMPLAR_NOTES])
    return sentences + [texts[i] for i in rows], [-1] * len(sentences) + rows


def _persona_scores(persona, notes, links, texts, sites, space: NoteSpace):
    """Top-k mean similarity of every note to one persona (NaN where the site rules it out).

    Also the similarity to the persona's own sentences alone (description and needs, no
    notes), which the reliability check uses, and the best-matching sentence as evidence.
    """
    exemplar_texts, exemplar_rows = _persona_exemplars(persona, links, texts)
    n_notes = len(texts)
    if not exemplar_texts:
        return np.full(n_notes, np.nan), np.full(n_notes, np.nan), np.full(n_notes, "", dtype=object)
    rows = np.asarray(exemplar_rows)
    n_sentences = int((rows == -1).sum())
    exemplars = np.vstack([space.of_texts(exemplar_texts[:n_sentences]), notes[rows[rows >= 0]]])
    k = min(TOP_K, len(exemplars))
    scores, own, best_sentence = np.empty(n_notes), np.full(n_notes, np.nan), np.zeros(n_notes, dtype=int)
    for start in range(0, n_notes, SIMILARITY_CHUNK):
        chunk = np.arange(start, min(start + SIMILARITY_CHUNK, n_notes))
        similarity = notes[chunk] @ exemplars.T
        similarity[chunk[:, None] == rows[None, :]] = -np.inf  # a note is not its own exemplar
        scores[chunk] = np.sort(similarity, axis=1)[:, -k:].mean(axis=1)
        if n_sentences:
            sentences = similarity[:, :n_sentences]
            own[chunk] = np.sort(sentences, axis=1)[:, -min(TOP_K, n_sentences):].mean(axis=1)
            best_sentence[chunk] = sentences.argmax(axis=1)
    evidence = np.array([exemplar_texts[j] for j in best_sentence], dtype=object) if n_sentences \
        else np.full(n_notes, "", dtype=object)
    if persona.site and sites is not None:
        scores[sites != persona.site] = np.nan
        own[sites != persona.site] = np.nan
    return scores, own, evidence


def similarity_scores(notes: pd.DataFrame, personas: Sequence[Persona], space,
                      links: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per note: best persona by similarity, its score, the runner-up and the margin.

    ``space`` is the run's NoteSpace (or an embedder, to embed the notes here). Columns:
    best_persona, score, runner_up, runner_up_score, margin, voiced, evidence,
    sentence_persona (the persona whose own description and needs the note is closest to),
    plus one ``score_<persona id>`` column per persona. ``links`` are the explicit links
    whose notes serve as exemplars (computed when not given).
    """
    links = explicit_links(notes, personas) if links is None else links
    space = _space(notes, space)
    texts = _note_texts(notes)
    sites = _note_sites(notes)
    vectors = space.of_notes(notes)
    table = pd.DataFrame(index=notes.index)
    evidence, own = {}, {}
    for persona in sorted(personas, key=lambda p: p.id):
        scores, own[persona.id], evidence[persona.id] = _persona_scores(persona, vectors, links, texts, sites, space)
        table[f"score_{persona.id}"] = scores
    table = _rank_personas(table, evidence, texts)
    table["sentence_persona"] = _best_of(own, len(texts))
    return table


def _best_of(scores: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per row, the id with the highest finite score ("" where none is finite); ties: first id."""
    ids = sorted(scores)
    if not ids:
        return np.full(n, "", dtype=object)
    matrix = np.column_stack([np.where(np.isnan(scores[i]), -np.inf, scores[i]) for i in ids])
    best = matrix.argmax(axis=1)
    return np.where(np.isfinite(matrix[np.arange(n), best]), np.array(ids, dtype=object)[best], "")


def _rank_personas(table: pd.DataFrame, evidence: dict[str, np.ndarray], texts: list[str]) -> pd.DataFrame:
    ids = [column.removeprefix("score_") for column in table.columns]
    scores = table.to_numpy(dtype=float)
    ranked = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-ranked, axis=1, kind="stable")  # ties go to the alphabetically first id
    rows = np.arange(len(table))
    best = ranked[rows, order[:, 0]] if ids else np.full(len(table), -np.inf)
    runner = ranked[rows, order[:, 1]] if len(ids) > 1 else np.full(len(table), -np.inf)
    linkable = np.isfinite(best)
    # With a single eligible persona the runner-up is "nobody", scored 0: the average note.
    runner_score = np.where(np.isfinite(runner), runner, 0.0)
    table["best_persona"] = np.where(linkable, [ids[j] for j in order[:, 0]] if ids else "", NO_PERSONA)
    table["score"] = np.where(linkable, best, np.nan)
    table["runner_up"] = np.where(np.isfinite(runner), [ids[j] for j in order[:, 1]] if len(ids) > 1 else "", "")
    table["runner_up_score"] = np.where(linkable, runner_score, np.nan)
    table["margin"] = table["score"] - table["runner_up_score"]
    table["voiced"] = [bool(text) and speaks_for_a_person(text) for text in texts]
    table["evidence"] = [evidence[pid][i] if ok else "" for i, (pid, ok) in
                         enumerate(zip(table["best_persona"], linkable))]
    return table


# --------------------------------------------------------------------------- reliability

#: The similarity step links nothing on a corpus where it cannot be trusted. Two personas
#: whose descriptions and needs are this alike (centred cosine of their mean sentence
#: vectors) cannot be told apart by similarity.
MAX_PROFILE_SIMILARITY = 0.8
#: The notes that name or are tagged with a persona are a check the corpus gives for free:
#: the persona whose description and needs are closest to such a note should be the one it
#: names. With fewer than MIN_CHECK_NOTES such notes the check is too small to pass; below
#: MIN_AGREEMENT of them the descriptions do not pick out the persona's notes on this corpus.
MIN_CHECK_NOTES = 10
MIN_AGREEMENT = 0.6


def _profile_overlap(personas: Sequence[Persona], space: NoteSpace) -> tuple[float, tuple[str, str] | None]:
    """The highest cosine between two personas' mean sentence vectors, and which two."""
    profiles = {p.id: _unit(space.of_texts(list(p.sentences())).mean(axis=0)) for p in personas if p.sentences()}
    ids = sorted(profiles)
    best, pair = -1.0, None
    for i, first in enumerate(ids):
        for second in ids[i + 1:]:
            value = float(profiles[first] @ profiles[second])
            if value > best:
                best, pair = value, (first, second)
    return best, pair


def similarity_reliability(links: pd.DataFrame, similarity: pd.DataFrame, personas: Sequence[Persona],
                           space: NoteSpace) -> dict:
    """Whether the similarity step can be trusted on this corpus, with the reasons in words.

    ``{"reliable": bool, "reasons": [...], "checks": {...}}``. Not reliable when no note
    without a tag or name speaks in a personal voice, when two personas' descriptions are
    too alike, or when the notes that name a persona are not closest to that persona's own
    description and needs (see MIN_CHECK_NOTES, MIN_AGREEMENT).
    """
    reasons = []
    voiced = int((similarity["voiced"] & (links["persona_method"] == METHOD_NONE)).sum())
    if voiced == 0:
        reasons.append("no note without a tag or a name speaks in a personal voice (first person or a "
                       "family word such as 'pappa'), so there is nothing similarity could link")
    overlap, pair = _profile_overlap(personas, space)
    if pair is not None and overlap >= MAX_PROFILE_SIMILARITY:
        reasons.append(f"the descriptions and needs of personas '{pair[0]}' and '{pair[1]}' are too alike "
                       f"(similarity {overlap:.2f} ≥ {MAX_PROFILE_SIMILARITY}) to tell their notes apart")
    explicit = links["persona_method"].isin([METHOD_TAG, METHOD_MENTION]).to_numpy() \
        & (similarity["sentence_persona"] != "").to_numpy()
    agree = int((similarity["sentence_persona"].to_numpy()[explicit] == links["persona_id"].to_numpy()[explicit]).sum())
    checked = int(explicit.sum())
    if len(personas) > 1:
        if checked < MIN_CHECK_NOTES:
            reasons.append(f"only {checked} note(s) carry a persona tag or name (at least {MIN_CHECK_NOTES} are "
                           "needed to check that the persona descriptions pick out their notes)")
        elif agree / checked < MIN_AGREEMENT:
            reasons.append(f"of the {checked} notes that carry a persona tag or name, only {agree} "
                           f"({agree / checked:.0%}, below {MIN_AGREEMENT:.0%}) are closest to that persona's "
                           "description and needs")
    return {"reliable": not reasons, "reasons": reasons,
            "checks": {"voiced_unlinked_notes": voiced, "max_profile_similarity": round(overlap, 4),
                       "most_alike_personas": list(pair) if pair else [],
                       "explicit_notes_checked": checked, "explicit_notes_agreeing": agree}}


# --------------------------------------------------------------------------- linking


#: The similarity bar is relative to the corpus. The notes with no tag, no name and no personal
#: voice speak for nobody; a voiced note must be closer to a persona than this share of them
#: are. A fixed cosine does not carry over between corpora (language, register, how alike the
#: personas are); on the dev sets a fixed 0.12 linked a quarter of the notes that speak for
#: nobody, and this bar none (benchmarks/README.md, "Persona linking").
NULL_QUANTILE = 0.95
#: Fewer notes than this that speak for nobody are too few to set that bar: similarity links nothing.
MIN_NULL_NOTES = 20
#: The corpus bar's grid (see ``corpus_similarity_bar``): coarse enough that another CPU's vectors
#: rarely move it, fine enough that it moves by at most half a step (0.005).
BAR_STEP = 0.01


def _null_notes(links: pd.DataFrame, similarity: pd.DataFrame) -> pd.Series:
    """Notes that speak for nobody: no tag, no name, no personal voice (but some text and a score)."""
    return (links["persona_method"] == METHOD_NONE) & ~similarity["voiced"] & similarity["score"].notna()


def corpus_similarity_bar(links: pd.DataFrame, similarity: pd.DataFrame) -> tuple[float, int]:
    """The NULL_QUANTILE quantile of the scores of the notes that speak for nobody, and their number.

    NaN when there are fewer than MIN_NULL_NOTES of them.
    """
    null = similarity.loc[_null_notes(links, similarity), "score"].to_numpy(dtype=float)
    if len(null) < MIN_NULL_NOTES:
        return float("nan"), int(len(null))
    # Rounded to the nearest BAR_STEP: a quantile follows the vectors' last digits, so another
    # CPU's vectors (docs/reproducing.md) gave 0.2995 where this machine gave 0.3; on the grid
    # both are 0.30 unless the quantile crosses the midpoint between two grid lines.
    quantile = float(np.quantile(np.sort(null), NULL_QUANTILE))
    return round(round(quantile / BAR_STEP) * BAR_STEP, 6), int(len(null))


def _similarity_linkable(links: pd.DataFrame, similarity: pd.DataFrame, config: PersonasConfig) -> pd.Series:
    """Notes similarity may link: no explicit link, a personal voice, and a clear winner.

    Clear means a margin of ``min_margin`` over the runner-up, and the same persona on top
    when the note is compared with the personas' own descriptions and needs alone.
    """
    return ((links["persona_method"] == METHOD_NONE)
            & similarity["voiced"]
            & similarity["score"].notna()
            & (similarity["margin"] >= config.min_margin)
            & (similarity["best_persona"] == similarity["sentence_persona"]))


def candidate_scores(links: pd.DataFrame, similarity: pd.DataFrame, config: PersonasConfig) -> pd.Series:
    """The score the threshold is applied to; NaN where similarity cannot link the note at all.

    This is what ``choose_similarity_threshold`` should be calibrated on.
    """
    return similarity["score"].where(_similarity_linkable(links, similarity, config))


def link_personas(notes: pd.DataFrame, personas: Sequence[Persona], space,
                  config: PersonasConfig) -> pd.DataFrame:
    """One persona link per note, indexed like ``notes`` (see the module docstring for the rules).

    ``space`` is the run's NoteSpace (or an embedder, to embed the notes here). A note is
    linked by similarity when its score reaches both ``config.similarity_threshold`` and the
    corpus's own bar (``corpus_similarity_bar``). What the similarity step concluded about
    itself is in ``links.attrs["similarity"]`` (``similarity_reliability`` plus the bar in
    use): when it is not reliable it links nothing.
    """
    links = explicit_links(notes, personas)
    if links.empty or not personas:
        links.attrs["similarity"] = {"reliable": False, "reasons": ["there are no notes or no personas"],
                                     "checks": {}, "threshold": None}
        return links
    space = _space(notes, space)
    similarity = similarity_scores(notes, personas, space, links)
    verdict = similarity_reliability(links, similarity, personas, space)
    bar, n_null = corpus_similarity_bar(links, similarity)
    verdict["checks"]["notes_speaking_for_nobody"] = n_null
    verdict["checks"]["corpus_bar"] = None if np.isnan(bar) else round(bar, 4)
    if np.isnan(bar):
        verdict["reliable"] = False
        verdict["reasons"].append(f"only {n_null} note(s) have neither a persona tag, a name nor a personal voice "
                                  f"(at least {MIN_NULL_NOTES} are needed to set the corpus's similarity bar)")
    threshold = max(config.similarity_threshold, bar) if not np.isnan(bar) else config.similarity_threshold
    verdict["threshold"] = round(float(threshold), 4)
    linked = candidate_scores(links, similarity, config) >= threshold
    verdict["checks"]["notes_passing_threshold"] = int(linked.sum())
    if not verdict["reliable"]:
        linked[:] = False
    # The runner-up is worth recording only when it, too, clears the bar and the call was close.
    close_call = (similarity["runner_up_score"] >= threshold) & (similarity["margin"] < CLOSE_CALL)
    secondary = similarity["runner_up"].where(close_call, "")
    links.loc[linked, "persona_id"] = similarity.loc[linked, "best_persona"]
    links.loc[linked, "persona_method"] = METHOD_SIMILARITY
    links.loc[linked, "persona_score"] = similarity.loc[linked, "score"].astype(float)
    links.loc[linked, "persona_secondary"] = secondary[linked]
    links.loc[linked, "persona_evidence"] = similarity.loc[linked, "evidence"]
    links.attrs["similarity"] = verdict
    return links


# --------------------------------------------------------------------------- threshold


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    false_rate: float | None
    recall: float | None
    n_persona_notes: int | None
    n_none_notes: int | None
    reason: str


def choose_similarity_threshold(scores, is_persona_note, max_false_rate: float = 0.02) -> ThresholdChoice:
    """The lowest threshold that links at most ``max_false_rate`` of the true-none notes.

    ``scores`` are ``candidate_scores`` (NaN: similarity cannot link the note);
    ``is_persona_note`` is the reference label (e.g. gold_persona != "none", in evaluation
    only). Lowest, because every notch above the budget only loses persona notes. The value
    is rounded up to 3 decimals so it can be written into analysis.toml as it is. ``recall``
    in the result is the share of all persona notes that similarity links (tags and
    mentions link the rest).
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(is_persona_note, dtype=bool)
    none_scores = np.sort(scores[~positive & np.isfinite(scores)])[::-1]
    n_none = int((~positive).sum())
    allowed = int(np.floor(max_false_rate * n_none))
    if len(none_scores) > allowed:
        threshold = np.ceil((none_scores[allowed] + 1e-9) * 1000) / 1000
        why = (f"lowest value that links at most {allowed} of {n_none} true-none notes "
               f"(max_false_rate {max_false_rate:.0%})")
    else:
        linkable = scores[np.isfinite(scores)]
        threshold = np.floor(linkable.min() * 1000) / 1000 if linkable.size else 0.0
        why = (f"only {len(none_scores)} true-none notes can be linked by similarity at all, within the "
               f"budget of {allowed}; the threshold is the lowest candidate score")
    return _describe_threshold(float(threshold), scores, positive, why)


def _describe_threshold(threshold: float, scores: np.ndarray, positive: np.ndarray, why: str) -> ThresholdChoice:
    passed = np.isfinite(scores) & (scores >= threshold)
    n_none, n_persona = int((~positive).sum()), int(positive.sum())
    false_rate = float((passed & ~positive).sum() / n_none) if n_none else 0.0
    recall = float((passed & positive).sum() / n_persona) if n_persona else 0.0
    return ThresholdChoice(threshold, false_rate, recall, n_persona, n_none, why)


def similarity_threshold_in_use(config: PersonasConfig, scores=None, is_persona_note=None,
                                 verdict: dict | None = None) -> ThresholdChoice:
    """The threshold link_personas applied, why, and (given reference labels) what it costs.

    ``verdict`` is ``links.attrs["similarity"]`` from link_personas; without it the
    threshold is the config's alone.
    """
    threshold = config.similarity_threshold
    why = (f"[personas] similarity_threshold = {config.similarity_threshold} from the config; "
           f"a note also needs a personal voice and a margin of {config.min_margin} over the runner-up")
    bar = (verdict or {}).get("checks", {}).get("corpus_bar")
    if bar is not None:
        threshold = verdict["threshold"]
        why += (f"; the corpus's own bar is {bar} (the score {NULL_QUANTILE:.0%} of the "
                f"{verdict['checks']['notes_speaking_for_nobody']} notes without tag, name or personal voice "
                f"stay below), so {threshold} is used")
    if scores is None or is_persona_note is None:
        n_passed = None if scores is None else int(np.nansum(np.asarray(scores, float) >= threshold))
        extra = "" if n_passed is None else f"; {n_passed} note(s) pass it"
        return ThresholdChoice(threshold, None, None, None, None, why + extra)
    return _describe_threshold(threshold, np.asarray(scores, dtype=float),
                               np.asarray(is_persona_note, dtype=bool), why)


# --------------------------------------------------------------------------- themes × personas

#: Assignment statuses that put a note in a theme; unassigned and excluded notes have none.
_THEMED = frozenset({"assigned", "new_theme", "pinned"})


def _themed(assignments: pd.DataFrame) -> pd.DataFrame:
    themed = assignments[assignments["status"].isin(_THEMED) & assignments["theme_id"].notna()]
    themed = themed[themed["theme_id"].astype(str).str.strip() != ""].copy()
    themed["note_id"] = themed["note_id"].astype(str)
    themed["theme_id"] = themed["theme_id"].astype(str)
    return themed


def _persona_of_note(links: pd.DataFrame) -> pd.DataFrame:
    ids = links["note_id"] if "note_id" in links.columns else links.index.to_series()
    return pd.DataFrame({"note_id": ids.astype(str).to_numpy(),
                         "persona_id": links["persona_id"].astype(str).to_numpy(),
                         "persona_method": links["persona_method"].astype(str).to_numpy()})


def themes_with_personas(assignments: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """Themed notes with their persona link (notes without a link count as 'none')."""
    # The links are the source of truth; assignments that already carry a persona copy it from them.
    themed = _themed(assignments).drop(columns=["persona_id", "persona_method"], errors="ignore")
    merged = themed.merge(_persona_of_note(links), on="note_id", how="left")
    merged["persona_id"] = merged["persona_id"].fillna(NO_PERSONA)
    merged["persona_method"] = merged["persona_method"].fillna(METHOD_NONE)
    return merged.sort_values(["theme_id", "note_id"], kind="stable").reset_index(drop=True)


def theme_persona_counts(assignments: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """Wide theme × persona count table (persona 'none' is a column like any other)."""
    return contingency_table(themes_with_personas(assignments, links), "theme_id", "persona_id")


def _long_statistics(table: pd.DataFrame, row: str, column: str, row_short: str, column_short: str) -> pd.DataFrame:
    cells = cell_statistics(table).rename(columns={
        f"share_within_{column}": f"share_within_{column_short}",
        f"share_within_{row}": f"share_within_{row_short}",
    })
    cells.attrs["tests"] = contingency_tests(table).to_dict()
    return cells


def theme_persona_table(assignments: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """Long theme × persona table with counts, shares, adjusted residuals and Holm-corrected Fisher p.

    The overall chi-square test (statistic, dof, p, whether it can be trusted, and a
    permutation p when it cannot) is in ``.attrs["tests"]``; the same numbers come from
    ``stats.contingency_tests(theme_persona_counts(assignments, links))``.
    """
    return _long_statistics(theme_persona_counts(assignments, links), "theme_id", "persona_id", "theme", "persona")


def compare_groups(assignments: pd.DataFrame, attribute: str, notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Theme × group (e.g. ``site`` or ``workshop``) with the same statistics as theme_persona_table.

    The attribute is taken from ``assignments`` or, when it is not there, from ``notes``
    joined on note_id.
    """
    themed = _themed(assignments)
    if attribute not in themed.columns:
        if notes is None or attribute not in notes.columns:
            raise KeyError(f"attribute {attribute!r} is neither in the assignments nor in the notes; "
                           "pass notes=... with that column, or choose another attribute.")
        values = notes[["note_id", attribute]].astype({"note_id": str})
        themed = themed.merge(values, on="note_id", how="left")
    themed[attribute] = themed[attribute].fillna("").astype(str)
    table = contingency_table(themed, "theme_id", attribute)
    return _long_statistics(table, "theme_id", attribute, "theme", attribute)


# --------------------------------------------------------------------------- needs


def _need_scores(personas: Sequence[Persona], notes: pd.DataFrame, space: NoteSpace) -> pd.DataFrame:
    """Centred cosine of every need with every note of the persona's site (long format)."""
    texts = _note_texts(notes)
    sites = _note_sites(notes)
    vectors = space.of_notes(notes)
    rows = []
    for persona in personas:
        if not persona.needs:
            continue
        need_vectors = space.of_texts([need.text for need in persona.needs])
        eligible = [i for i, text in enumerate(texts)
                    if text and (sites is None or not persona.site or sites[i] == persona.site)]
        if not eligible:
            continue
        similarity = need_vectors @ vectors[eligible].T
        for n, need in enumerate(persona.needs):
            for column, i in enumerate(eligible):
                rows.append((persona.id, need.id, need.text, i, float(similarity[n, column])))
    frame = pd.DataFrame(rows, columns=["persona_id", "need_id", "need_text", "row", "score"])
    # An empty list would make a float64 column, which cannot be merged with the str note ids.
    frame["note_id"] = pd.Series(notes["note_id"].astype(str).to_numpy()[frame["row"]] if len(frame) else [],
                                 index=frame.index, dtype="str")
    return frame.drop(columns="row")


def _with_site(themed: pd.DataFrame, notes: pd.DataFrame | None) -> pd.DataFrame:
    if "site" in themed.columns or notes is None or "site" not in notes.columns:
        return themed
    return themed.merge(notes[["note_id", "site"]].astype({"note_id": str}), on="note_id", how="left")


def need_support(personas: Sequence[Persona], assignments: pd.DataFrame, space,
                 notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every (need, themed note) pair with its similarity and the note's theme.

    ``space`` is the run's NoteSpace (the notes' own vectors), or an embedder to embed the
    themed notes here.

    A persona with a site is compared only with notes from that site; the site comes from
    the assignments or, when they lack it, from ``notes``.
    """
    themed = _with_site(_themed(assignments), notes).sort_values("note_id", kind="stable").reset_index(drop=True)
    scores = _need_scores(personas, themed, _space(themed, space))
    columns = ["note_id", "theme_id", "theme_label", "text"]
    return scores.merge(themed[[c for c in columns if c in themed.columns]], on="note_id", how="left")


#: The corpus-relative rule (``need_threshold_in_use``): similarities are standardised per need
#: over the corpus's notes (z). A theme addresses a need when its notes' mean z is at least
#: THEME_Z and at least MIN_THEME_NOTES of them reach NOTE_Z; those notes are its support.
THEME_Z = 0.5
NOTE_Z = 1.0
MIN_THEME_NOTES = 2


@dataclass(frozen=True)
class NeedThreshold:
    threshold: float | None   # None: the corpus-relative rule
    reason: str


def need_threshold_in_use(config: PersonasConfig) -> NeedThreshold:
    """Which rule decides that notes address a need, and why, in words for the run's report.

    Centred cosines sit at different levels in different corpora (language mix, note length,
    how alike the notes are), so a fixed value does not carry over: 0.35 suited the example and
    flagged a need as a gap next to a 12-note theme about it elsewhere. By default the rule is
    relative: each need's similarities are standardised over the corpus's notes, and a theme
    addresses the need when its notes are, on average, THEME_Z standard deviations closer to it
    than the corpus's average note, with at least MIN_THEME_NOTES notes NOTE_Z above. A need no
    theme addresses is a gap. A number in ``[personas] need_threshold`` fixes a cosine instead.
    """
    if config.need_threshold is not None:
        return NeedThreshold(float(config.need_threshold),
                             f"[personas] need_threshold = {config.need_threshold} from the config (fixed cosine)")
    return NeedThreshold(None, f"relative to the corpus: a theme addresses a need when its notes' mean similarity "
                               f"to it is {THEME_Z} standard deviations above the corpus's mean note, with at "
                               f"least {MIN_THEME_NOTES} notes {NOTE_Z} standard deviations above")


def _supporting(scores: pd.DataFrame, threshold: float | None) -> pd.Series:
    """Which (need, note) pairs of one need count as support, by the rule ``threshold`` names."""
    if threshold is not None:
        return scores["score"] >= threshold
    spread = scores["score"].std(ddof=0)
    z = (scores["score"] - scores["score"].mean()) / (spread if spread > 0 else 1.0)
    strong = z >= NOTE_Z
    themes = pd.DataFrame({"theme_id": scores["theme_id"], "z": z, "strong": strong})
    by_theme = themes.groupby("theme_id")
    passes = (by_theme["z"].mean() >= THEME_Z) & (by_theme["strong"].sum() >= MIN_THEME_NOTES)
    return strong & scores["theme_id"].map(passes).fillna(False).astype(bool)


def _need_support_pairs(support: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """The supporting (need, note) pairs of every need (the rows of ``support`` that count)."""
    kept = [scores[_supporting(scores, threshold)] for _, scores in support.groupby(["persona_id", "need_id"], sort=False)]
    return pd.concat(kept) if kept else support.iloc[0:0]


def _gap_row(persona_id, need, scores: pd.DataFrame, threshold: float) -> dict:
    closest = scores.sort_values(["score", "note_id"], ascending=[False, True]).head(1)
    return {"persona_id": persona_id, "need_id": need.id, "need_text": need.text, "theme_id": "",
            "theme_label": "", "n_notes": 0,
            "best_score": float(closest["score"].iloc[0]) if len(closest) else float("nan"),
            "mean_score": float("nan"),
            "best_note_id": str(closest["note_id"].iloc[0]) if len(closest) else "",
            "note_ids": "", "threshold": threshold, "gap": True}


def need_coverage(personas: Sequence[Persona], assignments: pd.DataFrame, space,
                  threshold: float | None, notes: pd.DataFrame | None = None,
                  support: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per need, the themes whose notes address it, strongest first (``threshold``: a fixed cosine,
    or None for the corpus-relative rule of ``need_threshold_in_use``).

    One row per (need, theme) with the number of supporting notes, their best and mean
    score and their ids ranked by score. A need no note reaches is one row with
    ``gap=True`` and the closest note, so the analyst can see how near it came.
    Similarity is the centred cosine used for persona linking (same scale); ``threshold``
    usually comes from ``need_threshold_in_use``. ``support`` (need_support's table) is
    computed when not given.
    """
    support = need_support(personas, assignments, space, notes) if support is None else support
    rows = []
    for persona in personas:
        for need in persona.needs:
            scores = support[(support["persona_id"] == persona.id) & (support["need_id"] == need.id)]
            above = scores[_supporting(scores, threshold)] if len(scores) else scores
            if above.empty:
                rows.append(_gap_row(persona.id, need, scores, threshold))
                continue
            for theme_id, notes in above.groupby("theme_id", sort=True):
                notes = notes.sort_values(["score", "note_id"], ascending=[False, True])
                rows.append({"persona_id": persona.id, "need_id": need.id, "need_text": need.text,
                             "theme_id": theme_id, "theme_label": str(notes["theme_label"].iloc[0]),
                             "n_notes": len(notes), "best_score": float(notes["score"].iloc[0]),
                             "mean_score": float(notes["score"].mean()),
                             "best_note_id": str(notes["note_id"].iloc[0]),
                             "note_ids": ";".join(notes["note_id"]), "threshold": threshold, "gap": False})
    return _order_coverage(pd.DataFrame(rows, columns=_COVERAGE_COLUMNS), personas)


_COVERAGE_COLUMNS = ["persona_id", "need_id", "need_text", "theme_id", "theme_label", "n_notes",
                     "best_score", "mean_score", "best_note_id", "note_ids", "threshold", "gap"]


def _order_coverage(coverage: pd.DataFrame, personas: Sequence[Persona]) -> pd.DataFrame:
    """Personas and needs in file order; within a need the best-supported theme first."""
    need_rank = {(p.id, n.id): (i, j) for i, p in enumerate(personas) for j, n in enumerate(p.needs)}
    coverage["_need"] = [need_rank[(p, n)] for p, n in zip(coverage["persona_id"], coverage["need_id"])]
    coverage = coverage.sort_values(["_need", "n_notes", "best_score", "theme_id"],
                                    ascending=[True, False, False, True], kind="stable")
    return coverage.drop(columns="_need").reset_index(drop=True)


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """The note's text on one line, cut at a word boundary to at most ``limit`` characters."""
    text = normalise(text if isinstance(text, str) else "")
    return text if len(text) <= limit else textwrap.shorten(text, width=limit, placeholder=" …")


def trace_table(personas: Sequence[Persona], assignments: pd.DataFrame, links: pd.DataFrame,
                space, threshold: float | None, notes: pd.DataFrame | None = None,
                quote_chars: int = QUOTE_CHARS, support: pd.DataFrame | None = None) -> pd.DataFrame:
    """Persona → need → theme → note, one row per supporting note, with a quote.

    ``linked_to_persona`` says whether the note itself speaks for that persona (by tag,
    mention or similarity): such rows are the strongest evidence for a need.
    """
    support = need_support(personas, assignments, space, notes) if support is None else support
    support = _need_support_pairs(support, threshold).merge(
        _persona_of_note(links).rename(columns={"persona_id": "note_persona_id",
                                                "persona_method": "note_persona_method"}),
        on="note_id", how="left")
    support["note_persona_id"] = support["note_persona_id"].fillna(NO_PERSONA)
    support["note_persona_method"] = support["note_persona_method"].fillna(METHOD_NONE)
    support["linked_to_persona"] = support["note_persona_id"] == support["persona_id"]
    support["quote"] = [quote(t, quote_chars) for t in support.get("text", pd.Series("", index=support.index))]
    order = {p.id: i for i, p in enumerate(personas)}
    need_order = {n.id: j for p in personas for j, n in enumerate(p.needs)}
    support["_p"] = support["persona_id"].map(order)
    support["_n"] = support["need_id"].map(need_order)
    support = support.sort_values(["_p", "_n", "theme_id", "score", "note_id"],
                                  ascending=[True, True, True, False, True], kind="stable")
    columns = ["persona_id", "need_id", "need_text", "theme_id", "theme_label", "note_id", "score",
               "linked_to_persona", "note_persona_id", "note_persona_method", "quote"]
    return support[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- summary


def persona_quotes(assignments: pd.DataFrame, links: pd.DataFrame, persona_id: str) -> pd.DataFrame:
    """Per theme, the persona's most typical note (highest theme score, then note id)."""
    notes = themes_with_personas(assignments, links)
    notes = notes[notes["persona_id"] == persona_id]
    if "theme_score" not in notes.columns:
        notes = notes.assign(theme_score=0.0)
    notes = notes.sort_values(["theme_id", "theme_score", "note_id"], ascending=[True, False, True], kind="stable")
    best = notes.groupby("theme_id", sort=True).head(1)
    return best[["theme_id", "note_id", "text"]].reset_index(drop=True)


def _top_themes_lines(persona: Persona, table: pd.DataFrame, quotes: pd.DataFrame, labels: dict, n_themes: int):
    cells = table[(table["persona_id"] == persona.id) & (table["count"] > 0)]
    cells = cells.sort_values(["count", "theme_id"], ascending=[False, True]).head(n_themes)
    if cells.empty:
        return ["No themed notes are linked to this persona."], False
    lines, any_small = [], False
    quote_of = {row.theme_id: (row.note_id, row.text) for row in quotes.itertuples()}
    for cell in cells.itertuples():
        flag = " (over-represented)" if cell.std_residual >= 2 else ""
        small = " †" if cell.small_cell else ""
        any_small |= bool(cell.small_cell)
        lines.append(f"- **{labels.get(cell.theme_id, cell.theme_id)}**: {cell.count} note(s), "
                     f"{cell.share_within_persona:.0%} of this persona's themed notes{flag}{small}")
        if cell.theme_id in quote_of:
            note_id, text = quote_of[cell.theme_id]
            lines.append(f"  > «{quote(text)}» ({note_id})")
    return lines, any_small


def _needs_lines(persona: Persona, coverage: pd.DataFrame, labels: dict) -> tuple[list[str], list[str]]:
    needs, gaps = [], []
    for need in persona.needs:
        rows = coverage[(coverage["persona_id"] == persona.id) & (coverage["need_id"] == need.id)]
        if rows.empty or rows["gap"].all():
            needs.append(f"- {need.text} (`{need.id}`): no note above the threshold")
            gaps.append(f"- {need.text} (`{need.id}`)")
            continue
        themes = ", ".join(f"{labels.get(r.theme_id, r.theme_label) or r.theme_id} ({r.n_notes})"
                           for r in rows.itertuples())
        needs.append(f"- {need.text} (`{need.id}`): {themes}")
    return needs, gaps


def persona_summary_markdown(persona: Persona, table: pd.DataFrame, coverage: pd.DataFrame,
                             assignments: pd.DataFrame, links: pd.DataFrame, n_themes: int = 5) -> str:
    """A Markdown page for one persona: who, needs and the themes answering them, top themes
    with a quote each, gaps, and a caution where counts are small.

    ``table`` is theme_persona_table(...), ``coverage`` need_coverage(...).
    """
    labels = _theme_labels(assignments)
    persona_links = links[links["persona_id"] == persona.id]
    methods = persona_links["persona_method"].value_counts().sort_index()
    top, any_small = _top_themes_lines(persona, table, persona_quotes(assignments, links, persona.id),
                                       labels, n_themes)
    needs, gaps = _needs_lines(persona, coverage, labels)
    site = f", {persona.site}" if persona.site else ""
    lines = [f"# {persona.name} (`{persona.id}`)", "",
             f"*{persona.role or 'persona'}{site}*", "", persona.description, "",
             f"Linked notes: {len(persona_links)} (" +
             (", ".join(f"{method} {count}" for method, count in methods.items()) or "none") + ").", "",
             "## Needs", "", *(needs or ["No needs are listed for this persona."]), "",
             "## Top themes", "", *top, ""]
    lines += ["## Gaps", "", *(gaps or ["Every need has at least one supporting note."]), ""]
    if any_small or len(persona_links) < 20:
        lines += ["## Small counts", "",
                  f"† marks cells whose expected count is below 5. With {len(persona_links)} linked notes, "
                  "shares and residuals are descriptive: read them as pointers to the quotes, not as "
                  "estimates.", ""]
    return "\n".join(lines)


def _theme_labels(assignments: pd.DataFrame) -> dict[str, str]:
    if "theme_label" not in assignments.columns:
        return {}
    themed = _themed(assignments).sort_values(["theme_id", "note_id"], kind="stable")
    return dict(zip(themed["theme_id"], themed["theme_label"].astype(str)))
