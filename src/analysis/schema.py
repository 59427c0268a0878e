"""Column names and status values shared by every stage.

The notes table (one row per note or document unit) always has the core columns below; any
other column from the input files is kept unchanged as an attribute. Columns whose name
starts with ``gold_`` are evaluation labels: the run keeps them as attributes but no model
ever reads them, and ``analysis evaluate`` removes them before the model sees the notes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Columns every notes table has, in this order.
CORE_COLUMNS = (
    "note_id",        # str, unique across the run
    "text",           # str, the note's text as written (never modified)
    "source_file",    # str, path of the input file relative to the run's root (or its name)
    "source_row",     # int, spreadsheet row number (header = 1) or unit number in a document
    "source_type",    # "note" for table rows; "safari", "interview", … for document units
    "doc_id",         # str, document id for document units; "" for table rows
    "char_start",     # int, offset of the unit's text in the decoded document; -1 for table rows
    "char_end",       # int, end offset (exclusive); -1 for table rows
    "lang",           # nb | nn | sv | da | en | und
    "lang_source",    # "column" | "detected" | "file_majority" | "undetermined" | "front_matter"
    "status",         # see STATUS_* below
    "status_reason",  # human-readable reason for a status other than ok; "" otherwise
    "flags",          # ";"-separated non-fatal findings, e.g. "duplicate_id;truncated"
)

STATUS_OK = "ok"
STATUS_EMPTY = "empty"

#: Statuses after theming (in assignments.csv).
STATUS_ASSIGNED = "assigned"          # matched a seed theme
STATUS_NEW_THEME = "new_theme"        # placed in a new candidate theme (inductive)
STATUS_UNASSIGNED = "unassigned"      # no theme fits well enough; see status_reason
STATUS_EXCLUDED = "excluded"          # excluded by an analyst override
STATUS_PINNED = "pinned"              # pinned to a theme by an analyst override

LANGUAGES = ("nb", "nn", "sv", "da", "en")
UNDETERMINED = "und"

NO_PERSONA = "none"
GOLD_PREFIX = "gold_"


@dataclass(frozen=True)
class SeedTheme:
    """A theme of the analyst's codebook (seed file or REFI-QDA codebook)."""

    id: str
    name: str
    description: str
    examples: tuple[str, ...] = ()

    def texts(self) -> list[str]:
        """What represents the theme in embedding space: name, description, examples."""
        return [self.name, self.description, *self.examples]
