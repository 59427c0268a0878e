"""Text handling shared by the loader and the labelling stages.

Normalising (for comparison only), language detection for short Nordic notes, keyword tokens
with stop words and stemming, and sentence spans. Nothing here changes a note's text as
written: every function returns new values or character offsets into the original.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from analysis.schema import LANGUAGES, UNDETERMINED

# --------------------------------------------------------------------------- normalising


def normalise(text: str) -> str:
    """NFC, one space between words, no outer whitespace: a key for comparing and embedding."""
    return " ".join(unicodedata.normalize("NFC", text).split())


# --------------------------------------------------------------------------- language

#: Below this confidence the detector's guess is no better than a coin toss between the
#: Scandinavian neighbours. On 5-word SIB-200 snippets py3langid is right 94 % of the time
#: above it and keeps 84 % of the texts (benchmarks/README.md, "Language detection").
MIN_CONFIDENCE = 0.5

_HAS_LETTER = re.compile(r"[^\W\d_]")


@cache
def _identifier():
    """py3langid restricted to our five languages; built on first use (loading takes ~1 s)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as error:
        raise ImportError("Language detection needs py3langid: pip install 'py3langid>=0.4'") from error

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    # The model has no "nb" label: its "no" is Norwegian as written, i.e. mostly Bokmål.
    identifier.set_languages(["no", "nn", "sv", "da", "en"])
    return identifier


def _from_model_code(code: str) -> str:
    return "nb" if code == "no" else code


def detect_language(texts: Sequence[str]) -> list[tuple[str, float]]:
    """(language code, confidence) per text; ``und`` without letters or below MIN_CONFIDENCE.

    Inside ``language_memo(path)``, texts detected before are answered from the memo file."""
    memo = _MEMO.get()
    results = []
    for text in texts:
        if not _HAS_LETTER.search(text):
            results.append((UNDETERMINED, 0.0))
            continue
        key = _memo_key(normalise(text)) if memo is not None else ""
        if memo is not None and key in memo:
            code, confidence = memo[key]
        else:
            code, confidence = _identifier().classify(normalise(text))
            code, confidence = _from_model_code(code), float(confidence)
            if memo is not None:
                memo[key] = (code, confidence)
        if confidence < MIN_CONFIDENCE or code not in LANGUAGES:
            code = UNDETERMINED
        results.append((code, confidence))
    return results


#: The detector's answers by text, for a ``language_memo`` (None outside one).
_MEMO: ContextVar[dict | None] = ContextVar("language_memo", default=None)


@cache
def _detector_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"py3langid {version('py3langid')}"
    except PackageNotFoundError:
        return "py3langid"


def _memo_key(text: str) -> str:
    # A hash, never the text: the memo lives beside the embedding cache and holds no note text.
    return hashlib.sha256(f"{_detector_version()}\x1f{text}".encode()).hexdigest()[:32]


@contextmanager
def language_memo(path: str | Path | None) -> Iterator[None]:
    """Remember ``detect_language``'s answers in a JSON file at ``path`` (None: no memo).

    Loading the detector's model takes about 0.6 s, most of a warm run's loading; with the
    memo a re-run of the same notes never loads it. The answers are the model's raw ones,
    keyed by a hash of the detector's version and the normalised text, so a memo gives the
    results detection would. An unreadable memo file is ignored and rewritten.
    """
    if path is None:
        yield
        return
    path = Path(path)
    try:
        memo = {key: (code, float(confidence))
                for key, (code, confidence) in json.loads(path.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, TypeError):
        memo = {}
    known = len(memo)
    token = _MEMO.set(memo)
    try:
        yield
    finally:
        _MEMO.reset(token)
    if len(memo) > known:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        temporary.write_text(json.dumps(memo, sort_keys=True), encoding="utf-8")
        temporary.replace(path)


_LANG_ALIASES = {
    "nb": ("nb", "nob", "no", "nor", "bokmål", "bokmal", "norsk", "norwegian"),
    "nn": ("nn", "nno", "nynorsk"),
    "sv": ("sv", "swe", "svenska", "svensk", "swedish"),
    "da": ("da", "dan", "dansk", "danish"),
    "en": ("en", "eng", "english", "engelsk", "engelska"),
}
_LANG_CODES = {alias: code for code, aliases in _LANG_ALIASES.items() for alias in aliases}


def normalise_language(value: str) -> str | None:
    """Our code for a language as people write it ("Bokmål", "swe", "sv-SE"); None if unknown."""
    value = value.strip().lower().replace("_", "-")
    return _LANG_CODES.get(value) or _LANG_CODES.get(value.split("-")[0])


def resolve_languages(given: Sequence[str], texts: Sequence[str], analysable: Sequence[bool],
                      groups: Sequence[str], given_by: Sequence[str] | str = "column"
                      ) -> tuple[list[str], list[str], list[bool]]:
    """Each note's (lang, lang_source) and whether its given language was unknown: the given
    language when it is one we know, else the detected one (notes with text only), else the
    majority language of its group (its file or source), else ``und``. The one rule for every
    reader of notes (tables, documents, REFI-QDA projects)."""
    by = [given_by] * len(given) if isinstance(given_by, str) else list(given_by)
    lang, source = [UNDETERMINED] * len(given), ["undetermined"] * len(given)
    unknown, pending = [False] * len(given), []
    for position, value in enumerate(given):
        code = normalise_language(value) if value.strip() else None
        if code:
            lang[position], source[position] = code, by[position]
            continue
        unknown[position] = bool(value.strip()) and value.strip().lower() != UNDETERMINED
        if analysable[position]:
            pending.append(position)
    for position, (code, _) in zip(pending, detect_language([texts[p] for p in pending])):
        if code != UNDETERMINED:
            lang[position], source[position] = code, "detected"
    for position in pending:
        if lang[position] == UNDETERMINED:
            known = Counter(l for l, g in zip(lang, groups) if g == groups[position] and l in LANGUAGES)
            if known:
                lang[position], source[position] = min(known, key=lambda code: (-known[code], code)), "file_majority"
    return lang, source, unknown


# --------------------------------------------------------------------------- tokens

#: Snowball has one Norwegian stemmer, written for Bokmål; it also strips the common
#: Nynorsk endings well enough for keywords.
_STEMMER_NAMES = {"nb": "norwegian", "nn": "norwegian", "sv": "swedish", "da": "danish",
                  "en": "english"}
_STOP_WORD_LISTS = ("norwegian", "swedish", "danish", "english")

# Letters and digits, with an apostrophe allowed inside a word ("don't", "Elias's") but not
# at its edges; hyphens and slashes split, so "LSS-boende" gives "lss" and "boende".
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@cache
def _stop_words() -> frozenset[str]:
    """One set for all five languages: a Swedish "och" must not become a Norwegian keyword."""
    from stop_words import get_stop_words

    return frozenset(word.lower() for name in _STOP_WORD_LISTS for word in get_stop_words(name))


@cache
def _stemmer(lang: str):
    import snowballstemmer

    return snowballstemmer.stemmer(_STEMMER_NAMES[lang])


def _surface_tokens(text: str, lang: str) -> list[str]:
    """Lower-cased words worth keeping as keywords, before stemming."""
    words = (match.group().lower().replace("’", "'")
             for match in _WORD.finditer(unicodedata.normalize("NFC", text)))
    stop_words = _stop_words()
    return [word for word in words
            if len(word) >= 2 and not word.isdigit() and word not in stop_words
            and word not in REPORTING_AND_FILLER and word != "nn"]


@cache
def _stem(word: str, lang: str) -> str:
    # Cached: Snowball is pure Python, and a corpus repeats its words (320 notes: 6,363 calls, 1,606 distinct).
    return _stemmer(lang).stemWord(word) if lang in _STEMMER_NAMES else word


def tokenize(text: str, lang: str) -> list[str]:
    """Keyword tokens: lower-cased, stop words and numbers dropped, stemmed for ``lang``."""
    return [_stem(word, lang) for word in _surface_tokens(text, lang)]


def stem_display_map(texts: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Stem → the surface word it most often came from (ties: alphabetically first)."""
    surfaces: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for text, lang in texts:
        for word in _surface_tokens(text, lang):
            surfaces[_stem(word, lang)][word] += 1
    return {stem: min(counts, key=lambda word: (-counts[word], word))
            for stem, counts in surfaces.items()}


# --------------------------------------------------------------------------- sentences

#: Abbreviations that never end a sentence, lower-cased as written with their dots.
_ABBREVIATIONS = frozenset({
    "f.eks.", "bl.a.", "kl.", "ca.", "dvs.", "d.v.s.", "t.ex.", "nr.", "ev.", "evt.", "jf.",
    "jfr.", "pga.", "p.g.a.", "iht.", "ift.", "mht.", "inkl.", "ekskl.", "tlf.", "tel.", "ang.",
    "t.d.", "s.k.", "sk.", "bl.", "fr.o.m.", "t.o.m.", "e.g.", "i.e.", "vs.", "dr.", "mr.",
    "mrs.", "ms.", "st.", "prof.", "resp.", "kap.", "ff.", "s.", "jan.", "feb.", "aug.",
    "sep.", "sept.", "okt.", "nov.", "des.", "dec.",
})
#: Abbreviations that often end a list and so a sentence: split only before a capital.
_LIST_ENDINGS = frozenset({"osv.", "o.s.v.", "mm.", "m.m.", "m.fl.", "o.l.", "etc.", "e.d."})

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
_OPENING_PUNCTUATION = "\"'“‘«([¿¡"


def _word_before(text: str, end: int) -> str:
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lower().lstrip(_OPENING_PUNCTUATION)


def _is_boundary(text: str, end: int) -> bool:
    """Whether the punctuation ending at ``end`` closes a sentence."""
    rest = text[end:].lstrip()
    if not rest:
        return False
    following = rest.lstrip(_OPENING_PUNCTUATION)[:1] or rest[0]
    if following.islower():  # "ca. ti", "17. mai", "osv. som"
        return False
    word = _word_before(text, end)
    if word in _ABBREVIATIONS:
        return False
    if word in _LIST_ENDINGS:
        return following.isupper()
    # An initial such as "A. Berg", but not "Jeg så A. Neste dag …" (rare, accepted).
    return not (len(word) == 2 and word[0].isalpha() and word[1] == ".")


def _stripped_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text``, without surrounding whitespace."""
    cuts = [match.end() for match in _SENTENCE_END.finditer(text) if _is_boundary(text, match.end())]
    bounds = [0, *cuts, len(text)]
    spans = (_stripped_span(text, start, end) for start, end in zip(bounds, bounds[1:]))
    return [span for span in spans if span is not None]


# --------------------------------------------------------------------------- names

#: What a person's name becomes in the text themes are found on: nothing. A shared placeholder
#: ("NN") became a shared feature of its own: on the dev suite, removing names gave inductive ARI
#: 0.197 / 0.203 (homecare_nordic / youth_leisure) and guided kappa 0.494 / 0.399, against
#: 0.147 / 0.130 and 0.473 / 0.355 with "NN" (benchmarks/README.md, "Dev suite").
NAME_PLACEHOLDER = ""

#: Words that report or hedge speech rather than say what it is about: they are everywhere in
#: interview notes ("Edel forteller at…", "hon berättar…") and name no theme. Reporting verbs,
#: modal verbs and fillers in nb/nn/sv/da/en that the stop-word lists lack.
REPORTING_AND_FILLER = frozenset("""
    sier sa sagt seier sei forteller fortalte fortel fortalde mener meinte meiner synes syntes
    tenker tror trur forklarer beskriver nevner påpeker spør svarer
    säger sade sagt berättar berättade tycker tyckte menar tänker tror förklarar beskriver nämner
    frågar svarar
    siger sagde fortæller fortalte synes syntes mener mente tænker tror forklarer beskriver nævner
    spørger svarer
    says said tells told thinks thought explains describes mentions asks answers feels felt
    må måtte burde bør skulle kunne ville vet veit visste ved vidste vet vetat
    altid alltid aldri aldrig never always liksom typ bara bare just really actually kanskje kanske
    måske maybe egentlig egentligen faktisk ganske fått fikk fick fået
""".split())


def name_pattern(forms: Iterable[str]) -> re.Pattern | None:
    """One pattern for every name form, longest first, with an optional genitive ending."""
    forms = sorted({" ".join(str(f).split()) for f in forms} - {""}, key=lambda f: (-len(f), f))
    if not forms:
        return None
    alternatives = "|".join(r"\s+".join(map(re.escape, form.split())) for form in forms)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?:'s|’s|s|'|’)?(?![\w-])", re.IGNORECASE)


def neutralise_names(texts: Sequence[str], forms: Iterable[str]) -> list[str]:
    """The texts with every name form replaced by ``NAME_PLACEHOLDER`` (for theme finding and
    keywords only; a note's text as written is never changed)."""
    pattern = name_pattern(forms)
    if pattern is None:
        return [str(text) for text in texts]
    return [" ".join(pattern.sub(NAME_PLACEHOLDER, str(text)).split()) for text in texts]
