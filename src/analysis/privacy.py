"""Masking personal data in note text: e-mails, phones, national id numbers, addresses, names.

The notes are about vulnerable people, so every derived output and every log line is masked.
Each kind of personal data is replaced by a short, language-neutral token (``[PHONE]``, …).
Masking is deterministic and idempotent, and it never keeps the values it replaced: a
:class:`MaskResult` holds only the masked text and counts per kind.

Number-shaped identifiers are found in two steps. First a *number run* is cut out of the text:
digit groups joined by single separators (space, ``.``, ``-``, ``/``, ``:``, ``+``, en dash).
Then the run is judged. Dates, times, years and their ranges stay. Valid Norwegian
fødselsnummer/D-numbers, Swedish person-/samordningsnummer and Danish CPR numbers become
``[ID-NUMBER]``, Nordic phone formats ``[PHONE]``, and any other run of 8 or more digits
``[NUMBER]``, so that no identifier with a wrong check digit or an unknown format survives.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import pandas as pd

from analysis.config import ConfigError

EMAIL, PHONE, ID_NUMBER, ADDRESS, NAME, NUMBER = "EMAIL", "PHONE", "ID-NUMBER", "ADDRESS", "NAME", "NUMBER"
#: Every kind, in the order of the reports.
KINDS = (EMAIL, PHONE, ID_NUMBER, ADDRESS, NAME, NUMBER)
#: Runs with fewer digits are ordinary numbers (counts, times, postcodes, 7-digit amounts).
MIN_IDENTIFIER_DIGITS = 8

_TOKEN = re.compile(r"\[(?:" + "|".join(map(re.escape, KINDS)) + r")\]")
# A token next to a word acts as a letter would: masking "Kari12345678" gives "Kari[PHONE]",
# and "Kari" must not become a separate name on a second pass (masking is idempotent).
_START = r"(?<!\w)" + "".join(rf"(?<!\[{re.escape(kind)}\])" for kind in KINDS)
_END = rf"(?!\w)(?!{_TOKEN.pattern})"

# Local part, "@", at least one dotted domain label and a letters-only top-level domain. No
# boundary at the end: "ola@x.no12345678" is still an e-mail followed by a number.
_EMAIL = re.compile(r"[\w.%+-]+@(?:[\w-]+\.)+[^\W\d_]{2,}")

_UPPER = "A-ZÆØÅÄÖÉÜ"
_STREET_SUFFIX = ("veien|vegen|vei|veg|gatan|gaten|gata|gate|gade|vägen|väg|vejen|vej|stien|stigen|"
                  "stig|allé|alle|torget|torg|torv|plassen|plass|plads|gränd")
# A street is a proper noun, so it starts with a capital: one word ending in a street suffix
# ("Bærumsveien", "Drottninggatan") or one or two capitalised words before a suffix word
# ("Karl Johans gate", "Nørre Allé"). Then a house number with an optional letter, and either
# a postcode and town ("1337 Sandvika", "542 30 Mariestad") or no further digits: "Torget
# 14.00" is a time and "Storgata 22 33 44 55" a phone. Lower-case "på plass 2" is not matched.
_ADDRESS = re.compile(
    rf"{_START}(?:(?:[{_UPPER}][\w'’-]*\s){{1,2}}(?i:{_STREET_SUFFIX})|[{_UPPER}]\w*?(?i:{_STREET_SUFFIX}))"
    r"\s\d{1,4}(?:[a-zA-Z]|\s[A-Z])?(?!\w)"
    rf"(?:,?\s(?:\d{{4}}|\d{{3}}\s?\d{{2}})\s[{_UPPER}][\w-]+|(?![ .:,/–-]?\d)){_END}"
)

# An optional country code ("+47 ", "+46 (0)"), then digit groups joined by ONE separator each.
# A run starts on a digit (or the "+") and is never cut out of a longer run.
_NUMBER_RUN = re.compile(
    r"(?<!\d)(?:\+\d{1,3}[ \u00a0-]?(?:\(0\)[ \u00a0-]?)?)?\d+(?:[ \u00a0\u202f./:+–-]\d+)*"
)

# Calendar runs are kept: dates (18.04.2023, 2023-04-18, 18/4/23, 18.04), times (07.15, 08:30)
# and years (2019), alone, in lists ("08.00 12.00 16.00") or ranges ("07.00–15.30", "2017-2018").
# A point is atomic and ends where its digits end, so a long list is read in linear time.
_DAY, _MONTH = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:1[89]|20)\d{2}"
_DATE = rf"(?:{_DAY}[./-]{_MONTH}[./-](?:{_YEAR}|\d{{2}})|{_YEAR}[./-]{_MONTH}[./-]{_DAY}|{_DAY}[./]{_MONTH})"
_TIME = r"(?:[01]?\d|2[0-4])[.:][0-5]\d(?::[0-5]\d)?"
_POINT = rf"(?>(?:{_DATE}|{_TIME}|{_YEAR})(?!\d))"
_CALENDAR = re.compile(rf"{_POINT}(?:[ \u00a0\u202f/–-]{_POINT})*")
# A date, time or range written with separators, standing between spaces inside a longer run
# ("08.00 20.00 2 tabletter"): it is kept and the rest of the run judged on its own. A bare
# year is not cut out, so a phone written "2012 3456" stays whole.
_CALENDAR_CHUNK = re.compile(rf"(?<!\S)(?=\d+[./:–-]){_POINT}(?:[/–-]{_POINT})*(?!\S)")

# Amounts written with thousands groups and a unit ("12 500 000 kr") are not identifiers.
_AMOUNT = re.compile(r"[1-9]\d{0,2}(?:([ .])\d{3})(?:\1\d{3})+")
_UNIT_AFTER = re.compile(r"\s?(?:kr\b|kroner|kronor|NOK|SEK|DKK|EUR|€|%|mill|mrd)", re.IGNORECASE)

# National id numbers, judged on the run as written:
_FNR = re.compile(r"(\d{6}) ?(\d{5})")                  # NO: DDMMYY + 3-digit individual + 2 control
_PNR = re.compile(r"(\d{2})?(\d{6})[-+]?(\d{4})")      # SE: (YY)YYMMDD, - or + (aged 100+), 4 digits
_CPR = re.compile(r"(\d{2})(\d{2})(\d{2})-\d{4}")      # DK: DDMMYY-XXXX (no check digit since 2007)

# Nordic phone formats. Norwegian and Danish numbers have 8 digits and no trunk zero, grouped
# 8, 2-2-2-2, 3-2-3 or 4-4; Swedish numbers start with a 0 area code (08, 070, 0501).
_PHONE_NATIONAL = re.compile(
    r"[1-9]\d(?:[ .-]?\d{2}){3}|[1-9]\d{2}[ .-]?\d{2}[ .-]?\d{3}|[1-9]\d{3}[ .-]?\d{4}"
    r"|0\d{1,3}[ -]?\d{2,4}(?:[ -]?\d{2,3}){0,3}"
)


@dataclass(frozen=True)
class MaskResult:
    """The masked text and how many values of each kind were replaced (never the values)."""

    text: str
    counts: dict[str, int]

    @property
    def changed(self) -> bool:
        return bool(self.counts)


@dataclass(frozen=True)
class Masker:
    """Masks personal data in text; ``names`` are real people's names, ``keep`` persona names.

    Names match whole words, in any case, with Nordic and English genitives ("Karis",
    "Kari's", "Jonas'"). A name that is also in ``keep`` is never masked.
    """

    names: Sequence[str] = ()
    keep: Sequence[str] = ()

    @classmethod
    def from_config(cls, privacy_config, keep: Iterable[str] = ()) -> Masker:
        """A masker for the ``[privacy]`` section of analysis.toml (``PrivacyConfig``)."""
        _check_names(privacy_config.names)
        return cls(names=tuple(privacy_config.names), keep=tuple(keep))

    def mask(self, text: str) -> MaskResult:
        counts: Counter[str] = Counter()
        if "@" in text:  # the e-mail pattern is slow on long texts without one
            text = _sub_outside_tokens(_EMAIL, text, lambda match: _count(EMAIL, counts))
        text = _sub_outside_tokens(_ADDRESS, text, lambda match: _count(ADDRESS, counts))
        text = _sub_outside_tokens(_NUMBER_RUN, text, lambda run: _mask_run(run, counts))
        if self._name_pattern is not None:
            text = _sub_outside_tokens(self._name_pattern, text, lambda match: _count(NAME, counts))
        return MaskResult(text, {kind: counts[kind] for kind in KINDS if counts[kind]})

    @cached_property
    def _name_pattern(self) -> re.Pattern | None:
        _check_names(self.names)
        kept = {" ".join(name.split()).casefold() for name in self.keep}
        names = {" ".join(name.split()) for name in self.names} - {""}
        names = sorted((n for n in names if n.casefold() not in kept), key=lambda n: (-len(n), n))
        if not names:
            return None
        # Longest names first, so "Kari Nordmann" wins over "Kari"; whitespace inside a name
        # matches any whitespace (a line break on a sticky note).
        alternatives = "|".join(r"\s+".join(map(re.escape, name.split())) for name in names)
        return re.compile(rf"{_START}(?:{alternatives})(?:'s|’s|s|'|’)?{_END}", re.IGNORECASE)


def _check_names(names: Sequence[str]) -> None:
    for position, name in enumerate(names, start=1):
        if not isinstance(name, str) or not re.search(r"[^\W\d_]", name):
            raise ConfigError(f"[privacy] names: entry {position} ({name!r}) is not a name. "
                             "Write each name as a string with letters in analysis.toml.")


def find_identifiers(text: str) -> list[str]:
    """E-mails and number-shaped identifiers (id numbers, phones, long numbers) in ``text``.

    Dates, times, years and short numbers are not identifiers. On masked text the list is empty.
    """
    found = [email.group() for email in _EMAIL.finditer(text)]
    text = _EMAIL.sub(lambda email: " " * len(email.group()), text)
    for run in _NUMBER_RUN.finditer(text):
        found += [run.group()[start:end] for start, end, _ in _identifier_spans(run)]
    return found


def _sub_outside_tokens(pattern: re.Pattern, text: str, replace: Callable[[re.Match], str]) -> str:
    """``pattern.sub`` that leaves tokens from earlier passes as they are."""
    tokens = [token.span() for token in _TOKEN.finditer(text)]

    def guarded(match: re.Match) -> str:
        if any(start < match.end() and match.start() < end for start, end in tokens):
            return match.group()
        return replace(match)
    return pattern.sub(guarded, text)


def _count(kind: str, counts: Counter) -> str:
    counts[kind] += 1
    return f"[{kind}]"


def _mask_run(run: re.Match, counts: Counter) -> str:
    masked, kept_until = [], 0
    for start, end, kind in _identifier_spans(run):
        masked += [run.group()[kept_until:start], _count(kind, counts)]
        kept_until = end
    return "".join(masked) + run.group()[kept_until:]


def _identifier_spans(run: re.Match) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the identifiers in a number run, relative to the run."""
    digits = run.group()
    if _CALENDAR.fullmatch(digits):
        return []
    cuts = [chunk.span() for chunk in _CALENDAR_CHUNK.finditer(digits)] + [(len(digits), len(digits))]
    spans, start = [], 0
    for cut_start, cut_end in cuts:
        piece = digits[start:cut_start].strip()
        if piece:
            offset = digits.index(piece, start)
            after = run.string[run.end():] if cut_start == len(digits) else ""
            kind = _number_kind(piece, after)
            if kind is not None:
                spans.append((offset, offset + len(piece), kind))
        start = cut_end
    return spans


def _number_kind(run: str, after: str) -> str | None:
    """The kind of identifier a number run is, or None for an ordinary number, date or time."""
    digits = sum(ch.isdigit() for ch in run)
    if digits < MIN_IDENTIFIER_DIGITS or _CALENDAR.fullmatch(run):
        return None
    plain = re.sub(r"[\u00a0\u202f]", " ", run)
    if _AMOUNT.fullmatch(plain) and _UNIT_AFTER.match(after):
        return None
    if _is_id_number(plain):
        return ID_NUMBER
    if (plain.startswith("+") and digits <= 15) or (_PHONE_NATIONAL.fullmatch(plain) and digits <= 10):
        return PHONE
    return NUMBER


def _is_id_number(run: str) -> bool:
    if (match := _FNR.fullmatch(run)) and valid_fodselsnummer("".join(match.groups())):
        return True
    if _PNR.fullmatch(run) and valid_personnummer(run):
        return True
    return bool((match := _CPR.fullmatch(run)) and _valid_date(match[3], match[2], match[1]))


def valid_fodselsnummer(number: str) -> bool:
    """Norwegian fødselsnummer or D-number (day + 40): a real date and both mod-11 digits."""
    if not re.fullmatch(r"\d{11}", number):
        return False
    day = int(number[:2])
    if not _valid_date(number[4:6], number[2:4], f"{day - 40 if day > 40 else day:02d}"):
        return False
    digits = [int(ch) for ch in number]
    for weights, position in (((3, 7, 6, 1, 8, 9, 4, 5, 2), 9), ((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), 10)):
        control = 11 - sum(w * d for w, d in zip(weights, digits)) % 11
        if (0 if control == 11 else control) != digits[position]:
            return False
    return True


def valid_personnummer(number: str) -> bool:
    """Swedish personnummer or samordningsnummer (day + 60): a real date and the Luhn digit."""
    match = _PNR.fullmatch(number)
    if not match:
        return False
    century, core, serial = match.groups()
    if century is not None and century not in ("18", "19", "20"):
        return False
    day = int(core[4:6])
    if not _valid_date(core[:2], core[2:4], f"{day - 60 if day > 60 else day:02d}", century):
        return False
    total = 0
    for position, ch in enumerate(reversed(core + serial)):  # Luhn over the 10 digits
        value = int(ch) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _valid_date(year: str, month: str, day: str, century: str | None = None) -> bool:
    """True when the two-digit year makes a real date in the given (or any recent) century."""
    for prefix in (century,) if century else ("19", "20"):
        try:
            date(int(prefix + year), int(month), int(day))
            return True
        except ValueError:
            continue
    return False


# --------------------------------------------------------------------------- tables and logs

_LOCATION_COLUMNS = ("source_file", "source_row")


def mask_frame(frame: pd.DataFrame, masker: Masker, *, columns: Sequence[str] = ("text",),
               id_column: str = "note_id") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A masked copy of ``frame`` and a report: one row per (note, column, kind) with a count.

    The report has ``id_column``, ``source_file`` and ``source_row`` (when the frame has
    them), ``column``, ``kind`` and ``count``; it never holds the masked values.
    """
    missing = [column for column in (id_column, *columns) if column not in frame.columns]
    if missing:
        raise KeyError(f"mask_frame: the notes table has no column(s) {missing}; it has "
                       f"{list(frame.columns)}. Pass columns=/id_column= with the text and id columns.")
    location = [column for column in _LOCATION_COLUMNS if column in frame.columns]
    # Looked up once: frame.at per cell copies the frame's attrs each time, which made
    # masking quadratic in the number of notes (benchmarks/scale.py).
    places = frame[[id_column, *location]].to_dict("records")
    masked, rows = frame.copy(), []
    for column in columns:
        texts = []
        for place, value in zip(places, frame[column].tolist()):
            if not isinstance(value, str):
                texts.append(value)
                continue
            result = masker.mask(value)
            texts.append(result.text)
            rows += [{**place, "column": column, "kind": kind, "count": count}
                     for kind, count in result.counts.items()]
        masked[column] = pd.Series(texts, index=frame.index, dtype=frame[column].dtype)
    report = pd.DataFrame(rows, columns=[id_column, *location, "column", "kind", "count"])
    return masked, report.astype({"count": "int64"})


def summarise(report: pd.DataFrame, id_column: str = "note_id") -> dict:
    """Counts per kind and per source file from a :func:`mask_frame` report (JSON-ready)."""
    by_kind = report.groupby("kind")["count"].sum()
    summary = {
        "masked_values": int(report["count"].sum()),
        "notes_with_personal_data": int(report[id_column].nunique()),
        "by_kind": {kind: int(by_kind.get(kind, 0)) for kind in KINDS},
        "by_source_file": {},
    }
    if "source_file" in report.columns:
        for (source_file, kind), count in report.groupby(["source_file", "kind"])["count"].sum().items():
            summary["by_source_file"].setdefault(str(source_file), {})[kind] = int(count)
    return summary


class MaskingFilter(logging.Filter):
    """Masks personal data in log records; add it to every handler (``handler.addFilter``).

    The message is formatted with its arguments and then masked; a traceback and stack
    information are masked too. Attributes passed with ``extra=`` are not touched.
    """

    def __init__(self, masker: Masker | None = None, name: str = "") -> None:
        super().__init__(name)
        self.masker = masker if masker is not None else Masker()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: mask its parts as they are
            message = " ".join(map(str, (record.msg, *(record.args or ()))))
        record.msg, record.args = self.masker.mask(message).text, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker.mask(record.exc_text).text
        if record.stack_info:
            record.stack_info = self.masker.mask(record.stack_info).text
        return True
