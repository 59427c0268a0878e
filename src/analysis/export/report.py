"""One self-contained HTML report of a finished run, for the municipal team that reads it.

``write_report(run_dir, out_path)`` reads the files ``analysis run`` wrote (assignments,
themes, persona tables, figures, and, when present, manifest.json, evaluation.json and
privacy_report.json) and writes one HTML file: CSS inline, figures as base64 PNG data URIs,
no JavaScript and no external URL, so it opens offline and prints well.

Every value read from the run folder (note text above all: a sticky note may contain
``<script>``) is escaped with ``html.escape``. HTML is built from escaped parts only, through
the ``Markup`` marker below, and a Content-Security-Policy forbids scripts and remote loads as
a second fence. The report holds no timestamp: the same run folder gives the same bytes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pandas as pd

from analysis.export import N_QUOTES, ExportError, RunFolder, read_run, theme_quotes
from analysis.files import sha256_file
from analysis.personas import persona_order
from analysis.stats import RESIDUAL_MARK, contingency_tests, structure_strength
from analysis.export.html import (
    absent,
    bullet_list,
    code,
    element,
    esc,
    fmt,
    join,
    language_tag,
    Markup,
    paragraph,
    percent,
    plain_text,
    sentence,
    setting,
    table,
)

SITE_NAMES = {"baerum": "Bærum", "mariestad": "Mariestad"}
LANGUAGE_NAMES = {"nb": "Norwegian Bokmål", "nn": "Norwegian Nynorsk", "sv": "Swedish", "da": "Danish",
                  "en": "English", "und": "undetermined"}
SOURCE_KINDS = {"note": "sticky notes", "interview": "interview units", "safari": "service-safari units"}
STATUS_MEANING = {
    "assigned": "matches a seed theme",
    "new_theme": "falls in a new theme found inductively",
    "pinned": "placed in a theme by the analyst (override file)",
    "unassigned": "no theme fits well enough (the reason is in assignments.csv, status_reason)",
    "excluded": "excluded by the analyst (override file)",
    "empty": "the text is empty; the note is kept so nothing is lost",
}
FIGURE_ALT = {
    "theme_sizes": "Bar chart: number of notes in each theme.",
    "k_selection": "Line chart: graph modularity for each candidate number of new themes, with the chosen k marked.",
    "theme_persona_heatmap": "Heatmap: notes per theme and persona; ▲ and ▼ mark cells with an adjusted "
                             "residual of at least 2 above or below what independence predicts.",
    "persona_theme_flow": "Flow diagram: which themes each persona's notes fall in; band width is the number of notes.",
}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
SECTIONS = (("data", "1. The question and the data"), ("themes", "2. Themes"), ("who", "3. Who says what"),
            ("personas", "4. Personas"), ("method", "5. Method and agreement with gold labels"),
            ("manifest", "6. Run manifest"))
#: The run folder cannot be turned into a report; the message says which file and what to do.
ReportError = ExportError


def site_name(site) -> str:
    return SITE_NAMES.get(plain_text(site), plain_text(site) or "(no site)")


# --------------------------------------------------------------------------- figures


class FigureShelf:
    """Hands out each PNG once, as an embedded <figure>; the rest go in a last 'other figures' block."""

    def __init__(self, figures: dict[str, Path], persona_names: dict[str, str]):
        self.figures = dict(figures)
        self.persona_names = persona_names

    def alt(self, stem: str) -> str:
        if stem.startswith("persona_top_themes_"):
            persona = stem.removeprefix("persona_top_themes_")
            return (f"Bar chart: the themes {self.persona_names.get(persona, persona)}'s notes fall in most, "
                    "with one quote for each.")
        return FIGURE_ALT.get(stem, f"Figure {stem.replace('_', ' ')} from the run.")

    def take(self, stem: str, caption: str | None = None) -> Markup:
        path = self.figures.pop(stem, None)
        if path is None:
            return Markup("")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        image = Markup(f'<img src="data:image/png;base64,{data}" alt="{esc(self.alt(stem))}">')
        return element("figure", join([image, element("figcaption", caption or self.alt(stem))]))

    def rest(self) -> Markup:
        return join(self.take(stem) for stem in sorted(self.figures))


# --------------------------------------------------------------------------- section 1: data


def _counts(series: pd.Series) -> pd.Series:
    return series.replace("", "(blank)").value_counts().sort_index()


def _sources_table(notes: pd.DataFrame) -> Markup:
    columns = ["source_file", "source_type"] + [c for c in ("site", "workshop") if c in notes.columns]
    grouped = notes.groupby(columns[:2], sort=True)
    rows = []
    for (source_file, source_type), part in grouped:
        row = [code(source_file), source_type]
        if "site" in notes.columns:
            row.append(", ".join(site_name(s) for s in sorted(set(part["site"]))))
        if "workshop" in notes.columns:
            row.append("; ".join(w for w in sorted(set(part["workshop"])) if w))
        rows.append(row + [fmt(len(part))])
    header = ["file", "kind"] + (["site"] if "site" in notes.columns else []) \
        + (["workshop / session"] if "workshop" in notes.columns else []) + ["notes or units"]
    return table(header, rows, caption="Where the notes come from", numeric=[len(header) - 1])


def _language(code_: str) -> str:
    return f"{LANGUAGE_NAMES[code_]} ({code_})" if code_ in LANGUAGE_NAMES else code_


def _languages_table(notes: pd.DataFrame) -> Markup:
    by = "site" if "site" in notes.columns else None
    if by is None:
        counts = _counts(notes["lang"])
        return table(["language", "notes"], [[_language(k), fmt(v)] for k, v in counts.items()],
                     caption="Languages (detected where the input did not say)", numeric=[1])
    grid = pd.crosstab(notes["lang"].replace("", "und"), notes[by].replace("", "(no site)"))
    header = ["language"] + [site_name(s) for s in grid.columns] + ["all"]
    rows = [[_language(lang)] + [fmt(v) for v in grid.loc[lang]] + [fmt(grid.loc[lang].sum())] for lang in grid.index]
    return table(header, rows, caption="Languages per site (detected where the input did not say)",
                 numeric=range(1, len(header)))


def _status_table(notes: pd.DataFrame) -> Markup:
    counts = notes["status"].value_counts()
    order = [s for s in STATUS_MEANING if s in counts.index] + sorted(set(counts.index) - set(STATUS_MEANING))
    rows = [[code(s), fmt(counts[s]), percent(counts[s], len(notes)), STATUS_MEANING.get(s, "")] for s in order]
    rows.append([element("strong", "all"), element("strong", fmt(counts.sum())), "100.0 %", ""])
    return table(["status", "notes", "share", "meaning"], rows, caption="Every note has exactly one status",
                 numeric=[1, 2])


def _accounting(run: RunFolder) -> Markup:
    notes = run.assignments
    total, by_status = len(notes), int(notes["status"].value_counts().sum())
    recorded = (run.manifest or {}).get("counts", {}).get("notes")
    parts = [f"The statuses add up to {by_status} of the {total} rows in assignments.csv"]
    if by_status == total and notes["note_id"].is_unique:
        parts.append(": every note is accounted for, once.")
    else:
        parts.append(": some rows are counted twice or not at all. Re-run the analysis before using this report.")
    if recorded is not None:
        same = "matches" if int(recorded) == total else "does NOT match"
        parts.append(f" The manifest records {recorded} notes, which {same} the table.")
    return paragraph(*parts)


def _privacy_block(privacy: dict | None) -> Markup:
    heading = element("h3", "Personal data")
    if privacy is None:
        return join([heading, absent(
            "privacy_report.json is absent: this run did not record any masking of personal data. "
            "Quotes in this report are shown as written and may contain names, phone numbers or e-mail "
            "addresses. Treat the report as being as sensitive as the raw notes.")])
    if not privacy.get("masking", True):
        return join([heading, absent(
            f"Masking of personal data was switched off ({privacy.get('why', 'by the config')}). Quotes in "
            "this report are shown as written; treat it as being as sensitive as the raw notes.")])
    summary = privacy.get("summary", {})
    by_kind = [[kind, fmt(count)] for kind, count in sorted(summary.get("by_kind", {}).items())]
    by_file = [[source, kind, fmt(count)] for source, kinds in sorted(summary.get("by_source_file", {}).items())
               for kind, count in sorted(kinds.items())]
    return join([heading, paragraph(
        "Personal data was masked before the notes were analysed, so every quote, keyword and figure "
        f"here shows the masked text. {fmt(summary.get('masked_values', 0))} value(s) were masked in "
        f"{fmt(summary.get('notes_with_personal_data', 0))} note(s). By kind:"),
        table(["kind", "masked"], by_kind, numeric=[1]),
        table(["file", "kind", "masked"], by_file, caption="Where (the note ids are in privacy_report.json)",
              numeric=[2]) if by_file else ""])


def data_section(run: RunFolder) -> Markup:
    notes = run.assignments
    sites = sorted(set(notes["site"]) - {""}) if "site" in notes.columns else []
    kinds = _counts(notes["source_type"])
    intro = paragraph(
        "Which recurring ideas do the workshop sticky notes and interview notes contain, and which of the "
        "personas' needs do they answer? This report follows each theme and each persona back to the notes. ",
        f"The run read {len(notes)} notes and document units from {notes['source_file'].nunique()} file(s)",
        f" at {len(sites)} site(s) ({', '.join(site_name(s) for s in sites)})" if sites else "",
        ": " + ", ".join(f"{v} {SOURCE_KINDS.get(k, k)}" for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))) + ".")
    return join([intro, _sources_table(notes), _languages_table(notes), _status_table(notes),
                 _accounting(run), _privacy_block(run.privacy)])


# --------------------------------------------------------------------------- section 2: themes


def _split_ids(value: str) -> list[str]:
    return [part.strip() for part in re.split(r"[;,]", plain_text(value)) if part.strip()]


def _quote(note: pd.Series, attributes: Sequence[str] = ()) -> Markup:
    """A note as a quote; the footer says who wrote it (its attributes) and where it came from."""
    who = [f"{column.replace('_', ' ')}: {site_name(note[column]) if column == 'site' else note[column]}"
           for column in attributes if plain_text(note.get(column, "")).strip()]
    where = [note["note_id"], note.get("source_type", ""), *who]
    return element("blockquote", join([element("p", note["text"]),
                                       element("footer", " · ".join(w for w in where if w))]),
                   lang=language_tag(note["lang"]))


def _themes_table(themes: pd.DataFrame, total: int) -> Markup:
    rows = [[code(t["theme_id"]), t["label"], t["kind"], fmt(t["size"]), percent(float(t["size"] or 0), total),
             ", ".join(_split_ids(t["keywords"]))] for _, t in themes.iterrows()]
    return table(["id", "theme", "kind", "notes", "share", "keywords (class-based TF-IDF)"], rows,
                 caption="Themes: seed themes come from the codebook, new ones were found in the notes",
                 numeric=[3, 4])


def themes_section(run: RunFolder, shelf: FigureShelf) -> Markup:
    themes = run.themes
    kinds = themes["kind"].value_counts()
    themed = int((run.assignments["theme_id"] != "").sum())
    intro = paragraph(f"{len(themes)} themes: {int(kinds.get('seed', 0))} from the seed codebook and "
                      f"{int(kinds.get('new', 0))} new ones found in the notes. {themed} of "
                      f"{len(run.assignments)} notes are in a theme. Each theme shows up to {N_QUOTES} "
                      "representative notes in their original language.")
    notes_by_id = run.notes_by_id()
    attributes = run.quote_attributes()
    blocks = []
    for _, theme in themes.iterrows():
        quotes = theme_quotes(theme, notes_by_id)
        body = join(_quote(q, attributes) for q in quotes) if quotes else absent("No notes in this theme.")
        blocks.append(element("article", join([
            element("h3", join([theme["label"], " ", element("span", f"{theme['kind']} · {fmt(theme['size'])} notes",
                                                             class_="tag")])), body]),
            class_="theme", id=f"theme-{theme['theme_id']}"))
    return join([intro, _themes_table(themes, len(run.assignments)), shelf.take("theme_sizes"),
                 element("h3", "Quotes per theme"), join(blocks)])


# --------------------------------------------------------------------------- section 3: who says what


def _breakdown_tests(cells: pd.DataFrame) -> dict:
    grid = cells.pivot_table(index="theme_id", columns="value", values="count", aggfunc="sum", fill_value=0)
    return contingency_tests(grid.astype(int)).to_dict()


def who_section(run: RunFolder, shelf: FigureShelf) -> Markup:
    """One theme × value table and figure per breakdown attribute, with a quote for the strongest cells."""
    if run.breakdowns is None or run.breakdowns.empty:
        return absent("breakdowns.csv is absent or empty: the notes have no attribute to break the themes down by "
                      "(set [report] breakdowns in analysis.toml, or --breakdown COLUMN).")
    labels = _theme_labels(run)
    long = run.breakdowns.rename(columns={"notes": "count", "adjusted_residual": "std_residual"})
    notes_by_id = run.notes_by_id()
    attributes = run.quote_attributes()
    blocks = [paragraph("Which groups of participants raise which themes. Counts of themed notes per theme and "
                        "value; ▲ marks a cell with an adjusted residual of 2 or more (more notes than "
                        "independence predicts), ▼ one of −2 or less, † a cell whose expected count is below 5. "
                        "breakdowns.csv has the shares both ways.")]
    for attribute, cells in long.groupby("attribute", sort=False):
        cells = _numeric(cells, ["count", "std_residual"])
        title = attribute.replace("_", " ")
        blocks += [element("h3", f"Themes by {title}"),
                   _cross_table(cells, "value", labels, str, f"Notes per theme and {title}"),
                   _test_sentence(_breakdown_tests(cells), f"theme and {title}"),
                   shelf.take(f"breakdown_{attribute}", f"Share of each {title}'s themed notes per theme.")]
        strongest = cells[cells["std_residual"] >= RESIDUAL_MARK].sort_values(
            ["std_residual", "theme_id"], ascending=[False, True]).head(3)
        quotes = [(row, notes_by_id.loc[row["quote_note_id"]]) for _, row in strongest.iterrows()
                  if row["quote_note_id"] in notes_by_id.index]
        if quotes:
            blocks.append(element("h4", f"Over-represented: a typical note per cell"))
            blocks += [join([paragraph(f"{row['value']} · {labels.get(row['theme_id'], row['theme_id'])}"),
                             _quote(note, attributes)]) for row, note in quotes]
    return join(blocks)


# --------------------------------------------------------------------------- section 4: personas


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _truthy(value) -> bool:
    return plain_text(value).strip().lower() in {"true", "1", "yes"}


def residual_mark(residual: float) -> str:
    if residual >= RESIDUAL_MARK:
        return "▲"
    if residual <= -RESIDUAL_MARK:
        return "▼"
    return ""


def _cell(count, residual, small) -> Markup:
    mark = residual_mark(residual)
    text = fmt(count) + (f" {mark}" if mark else "") + (" †" if small else "")
    title = f"adjusted residual {fmt(residual, 2)}" + ("; expected count below 5" if small else "")
    return element("span", text, title=title, class_={"▲": "over", "▼": "under"}.get(mark))


def _theme_labels(run: RunFolder) -> dict[str, str]:
    return dict(zip(run.themes["theme_id"], run.themes["label"]))


def _cross_table(long: pd.DataFrame, column: str, labels: dict[str, str], names, caption) -> Markup:
    long = _numeric(long, ["count", "std_residual"])
    columns = persona_order(long[column]) if column == "persona_id" else sorted(set(long[column]))
    cells = {(r["theme_id"], r[column]): r for _, r in long.iterrows()}
    rows = []
    for theme_id in [t for t in labels if any((t, c) in cells for c in columns)]:
        row = [labels[theme_id]]
        for c in columns:
            cell = cells.get((theme_id, c))
            row.append(_cell(cell["count"], cell["std_residual"], _truthy(cell["small_cell"])) if cell is not None else "")
        rows.append(row)
    return table(["theme"] + [names(c) for c in columns], rows, caption=caption, numeric=range(1, len(columns) + 1))


def _test_sentence(tests: dict | None, what: str) -> Markup:
    if not tests:
        return Markup("")
    p = tests.get("p_permutation") if not tests.get("trustworthy", True) else tests.get("p_value")
    which = "permutation p" if not tests.get("trustworthy", True) else "p"
    return paragraph(f"Overall test of independence between {what}: χ² = {fmt(tests.get('chi2'), 1)}, "
                     f"df = {fmt(tests.get('dof'))}, {which} = {fmt(p, 4)}. {sentence(tests.get('reason'))}")


def _links_block(run: RunFolder) -> Markup:
    notes = run.assignments
    methods = _counts(notes["persona_method"])
    report = run.persona_report or {}
    grid = pd.crosstab(notes["persona_id"], notes["persona_method"])
    personas = persona_order(grid.index)
    method_order = [m for m in ("tag", "mention", "similarity", "none") if m in grid.columns] \
        + sorted(set(grid.columns) - {"tag", "mention", "similarity", "none"})
    rows = [[_persona_label(run, p)] + [fmt(grid.loc[p, m]) for m in method_order] + [fmt(grid.loc[p].sum())]
            for p in personas]
    return join([
        paragraph("Every note is linked to at most one persona: by an explicit persona tag (", code("tag"),
                  "), by the persona's name or alias in the text (", code("mention"),
                  "), or by a first-person note close to the persona's description and needs (",
                  code("similarity"), "). Links by method: ",
                  ", ".join(f"{k} {v}" for k, v in methods.items()), "."),
        paragraph("Similarity threshold: ", setting(report.get("similarity_threshold")), ". ",
                  sentence(report.get("why"))) if report else absent(
            "persona_report.json is absent: the persona thresholds of this run are not recorded."),
        table(["persona"] + method_order + ["all"], rows, caption="Notes per persona and link method",
              numeric=range(1, len(method_order) + 2)),
    ])


def _persona_label(run: RunFolder, persona_id: str) -> str:
    if persona_id == "none":
        return "no persona"
    return run.persona_names.get(persona_id, persona_id)


def _personas_in_file_order(run: RunFolder) -> list[str]:
    """Persona ids in personas.yml order (as persona_needs.csv lists them), then any others by name."""
    listed = list(dict.fromkeys(run.persona_needs["persona_id"])) if run.persona_needs is not None else []
    figured = [s.removeprefix("persona_top_themes_") for s in run.figures if s.startswith("persona_top_themes_")]
    return listed + sorted(set(figured) - set(listed))


def _needs_block(run: RunFolder) -> Markup:
    if run.persona_needs is None:
        return absent("persona_needs.csv is absent: need coverage was not computed in this run.")
    needs = _numeric(run.persona_needs, ["n_notes", "best_score", "threshold"])
    blocks = []
    for persona_id, rows in needs.groupby("persona_id", sort=False):
        items = []
        for need_id, need in rows.groupby("need_id", sort=False):
            first = need.iloc[0]
            if need["gap"].map(_truthy).all():
                items.append(join([element("strong", "gap: ", class_="gap"), first["need_text"], " (",
                                   code(need_id), f"): no note reaches the threshold {fmt(first['threshold'], 2)}; "
                                   f"the closest, {first['best_note_id']}, scores {fmt(first['best_score'], 3)}."]))
                continue
            themes = "; ".join(f"{t.theme_label or t.theme_id} ({fmt(t.n_notes)})" for t in need.itertuples())
            items.append(join([first["need_text"], " (", code(need_id), "): ", themes]))
        blocks.append(join([element("h4", _persona_label(run, persona_id)), bullet_list(items)]))
    return join([paragraph("For each persona need, the themes whose notes address it (similarity at or above "
                           "the need threshold) and how many notes; a need no note reaches is a gap."),
                 join(blocks)])


def _site_sentence(site, rows: pd.DataFrame, long: pd.DataFrame, labels: dict[str, str]) -> str:
    """Which themes a site has more of than the other sites, with both shares."""
    others = long[long["site"] != site]
    other_total = others["count"].sum()
    other_names = ", ".join(site_name(s) for s in sorted(set(others["site"])))
    over = rows[rows["std_residual"] >= RESIDUAL_MARK].sort_values("std_residual", ascending=False)
    named = []
    for r in over.itertuples():
        elsewhere = others.loc[others["theme_id"] == r.theme_id, "count"].sum()
        named.append(f"{labels.get(r.theme_id, r.theme_id)} ({percent(r.count, rows['count'].sum())} of its "
                     f"themed notes vs {percent(elsewhere, other_total)})")
    lead = f"{site_name(site)} ({fmt(rows['count'].sum())} themed notes)"
    if not named:
        return f"{lead}: no theme is clearly more frequent than in {other_names}."
    return f"{lead}: more often than in {other_names}: " + "; ".join(named) + "."


def _site_block(run: RunFolder) -> Markup:
    heading = element("h3", "Sites compared")
    if run.site_theme is None:
        return join([heading, absent("site_theme.csv is absent: the notes come from one site, or carry no site.")])
    long = _numeric(run.site_theme, ["count", "std_residual", "share_within_site"])
    labels = _theme_labels(run)
    sentences = [_site_sentence(site, rows, long, labels) for site, rows in long.groupby("site", sort=True)]
    tests = (run.persona_report or {}).get("site_theme_tests")
    return join([heading,
                 paragraph("A theme is named when its adjusted residual is 2 or more: the site has clearly more "
                           "notes in it than the sites' sizes predict."),
                 bullet_list(sentences), _test_sentence(tests, "theme and site"),
                 _cross_table(long, "site", labels, site_name,
                              "Notes per theme and site (▲/▼: adjusted residual ≥ 2 or ≤ −2; †: expected count below 5)")])


def personas_section(run: RunFolder, shelf: FigureShelf) -> Markup:
    if run.persona_theme is None:
        return absent("This run linked no personas (no personas file): persona_theme.csv is absent.")
    labels = _theme_labels(run)
    tests = (run.persona_report or {}).get("theme_persona_tests")
    top = join(shelf.take(f"persona_top_themes_{persona}") for persona in _personas_in_file_order(run))
    return join([
        element("h3", "Links by method"), _links_block(run),
        element("h3", "Themes by persona"),
        paragraph("Counts of notes per theme and persona. ▲ marks a cell with an adjusted residual of 2 or more "
                  "(more notes than independence predicts), ▼ one of −2 or less; † marks a cell whose expected "
                  "count is below 5, where the residual is only a pointer to the quotes."),
        _cross_table(run.persona_theme, "persona_id", labels, partial(_persona_label, run),
                     "Notes per theme and persona"),
        _test_sentence(tests, "theme and persona"),
        shelf.take("theme_persona_heatmap"), shelf.take("persona_theme_flow"),
        element("h3", "Needs: coverage and gaps"), _needs_block(run),
        element("h3", "Top themes per persona"), top or absent("No per-persona figures in this run."),
        _site_block(run),
    ])


# --------------------------------------------------------------------------- section 4: method


def _config(run: RunFolder) -> dict:
    return (run.manifest or {}).get("config") or {}


def _k_choice(run: RunFolder, config: dict) -> Markup:
    if run.k_selection is None or run.k_selection.empty:
        return absent("k_selection.csv is absent: no new themes were searched for (every note matched a seed "
                      "theme, or too few were left over).")
    k = _numeric(run.k_selection, ["k", "modularity", "smallest_theme"])
    chosen = k[k["chosen"].map(_truthy)]
    if chosen.empty:
        return absent("k_selection.csv marks no k as chosen.")
    row, best = chosen.iloc[0], k.loc[k["modularity"].idxmax()]
    fixed = (config.get("themes") or {}).get("n_themes")
    if fixed is not None:
        reason = f"k was fixed at {fixed} by [themes] n_themes in the config."
    elif row["k"] == best["k"]:
        reason = (f"k = {fmt(row['k'])} has the highest graph modularity ({fmt(row['modularity'])}) of the "
                  f"candidates k = {fmt(k['k'].min())}–{fmt(k['k'].max())} on one fixed kNN graph.")
    else:
        reason = (f"k = {fmt(row['k'])} (modularity {fmt(row['modularity'])}) was chosen, although k = "
                  f"{fmt(best['k'])} has a higher modularity ({fmt(best['modularity'])}).")
    strength = structure_strength(float(row["modularity"]))
    verdict = {"none": "No group structure. ", "weak": "Weak structure. ", "clear": "Clear structure. "}[strength.level]
    explained = join([element("strong", verdict), sentence(strength.sentence[0].upper() + strength.sentence[1:]),
                      " Modularity compares the links inside the themes of the notes' neighbour graph with what "
                      "a random split of the same sizes would give: 0 means no better than chance, 1 means themes "
                      "with no links between them."])
    return join([paragraph("Number of new themes: ", reason, f" Its smallest theme has {fmt(row['smallest_theme'])} notes."),
                 element("p", explained, class_="gap" if strength.level == "none" else None)])


def _embedding_block(run: RunFolder, config: dict) -> Markup:
    embedder = (run.manifest or {}).get("embedder")
    themes = config.get("themes") or {}
    centre = themes.get("centre_by")
    lines = []
    if embedder:
        lines.append(join(["Embedding model: ", code(embedder.get("identity")), ", weights sha256 ",
                           code(embedder.get("weights_sha256") or "not recorded"), "."]))
    else:
        lines.append("Embedding model: not recorded (manifest.json is absent).")
    if centre is not None:
        lines.append(join(["Centring: before themes are found, the group effects of ",
                           ", ".join(centre) or "no group",
                           " are estimated from within-theme residuals and removed, so that clusters follow "
                           "meaning rather than language or source type."]))
    else:
        lines.append("Centring: not recorded (manifest.json is absent).")
    return bullet_list(lines)


def _setting(config: dict, section: str, key: str) -> str:
    value = (config.get(section) or {}).get(key)
    if key == "n_themes" and value is None:
        return "automatic (modularity)"
    if key == "max_k" and value is None:
        return "automatic (about √notes, at most 40)"
    return setting(value)


def _thresholds_table(run: RunFolder, config: dict) -> Markup:
    wanted = [("themes", "seed_threshold"), ("themes", "secondary_margin"), ("themes", "min_theme_size"),
              ("themes", "n_themes"), ("themes", "min_k"), ("themes", "max_k"), ("themes", "random_state"),
              ("personas", "similarity_threshold"), ("personas", "min_margin"), ("personas", "need_threshold")]
    if config:
        rows = [[code(f"[{s}] {k}"), _setting(config, s, k)] for s, k in wanted if k in (config.get(s) or {})]
        return table(["setting", "value"], rows, caption="Thresholds from the config (manifest.json)", numeric=[1])
    report = run.persona_report or {}
    rows = [[code(f"[personas] {k}"), setting(report[k])] for k in ("similarity_threshold", "need_threshold") if k in report]
    if not rows:
        return absent("manifest.json and persona_report.json are absent, so the thresholds of this run are not "
                      "recorded.")
    return join([absent("manifest.json is absent, so the configuration of this run is not recorded. "
                        "The persona thresholds below come from persona_report.json."),
                 table(["setting", "value"], rows, numeric=[1])])


METRIC_MEANING = {
    "n": "notes evaluated", "n_themes": "themes found", "ari": "adjusted Rand index",
    "ami": "adjusted mutual information", "nmi": "normalised mutual information",
    "nmi_lang": "NMI between themes and language (lower is better)",
    "accuracy": "accuracy against the seed codebook", "macro_f1": "macro-F1 against the seed codebook",
    "kappa": "Cohen's κ against the seed codebook", "persona_accuracy": "persona accuracy",
    "persona_macro_f1": "persona macro-F1",
}


def _agreement_block(evaluation: dict | None) -> Markup:
    """evaluation.json, either flat (the metrics) or ``{"metrics": {...}, "gold_column": ..., ...}``."""
    heading = element("h3", "Agreement with gold labels", id="agreement")
    if evaluation is None:
        return join([heading, absent("evaluation.json is absent: agreement with a human coding (gold labels) "
                                     "was not measured for this run, either because the notes carry no ",
                                     code("gold_*"), " columns or because the run did not evaluate them.")])
    metrics = evaluation.get("metrics") if isinstance(evaluation.get("metrics"), dict) else evaluation
    context = {k: v for k, v in evaluation.items() if k != "metrics"} if metrics is not evaluation else {}
    rows = [[code(key), METRIC_MEANING.get(key, ""), fmt(value, 3) if value is not None else "does not apply"]
            for key, value in metrics.items() if key != "per_theme_recall" and not isinstance(value, (dict, list))]
    recall = metrics.get("per_theme_recall") or {}
    intro = paragraph("The model never saw the gold columns; they were compared with its output afterwards. ",
                      "; ".join(f"{k.replace('_', ' ')}: {plain_text(v)}" for k, v in sorted(context.items())),
                      "." if context else "")
    return join([heading, intro, table(["metric", "what it measures", "value"], rows, numeric=[2]),
                 table(["gold theme", "recall after optimal matching"],
                       [[code(k), fmt(v, 3)] for k, v in sorted(recall.items())],
                       caption="Recall per gold theme", numeric=[1]) if recall else Markup("")])


def _overrides_block(overrides: list | dict | None) -> Markup:
    heading = element("h3", "Analyst overrides")
    if overrides is None:
        return join([heading, absent("overrides_report.json is absent: no overrides file was applied; the "
                                     "themes are the model's own.")])
    entries = overrides.get("report", []) if isinstance(overrides, dict) else overrides
    if not entries:
        return join([heading, paragraph("An overrides file was read, but it holds no overrides: the themes are "
                                        "the model's own.")])
    rows = [[e.get("operation", ""), e.get("state", ""),
             ", ".join(f"{k}={v}" for k, v in (e.get("entry") or {}).items()), e.get("detail", "")]
            for e in entries if isinstance(e, dict)]
    applied = sum(1 for e in entries if isinstance(e, dict) and e.get("state") == "applied")
    return join([heading, paragraph(f"The analyst's overrides file changed the model's themes: {applied} of "
                                    f"{len(entries)} override(s) applied; a stale one no longer matches any "
                                    "note or theme."),
                 table(["operation", "state", "entry", "detail"], rows)])


def method_section(run: RunFolder, shelf: FigureShelf) -> Markup:
    config = _config(run)
    return join([
        element("h3", "Embeddings and centring"), _embedding_block(run, config),
        element("h3", "Themes"),
        paragraph("Seed themes are prototypes built from the codebook; a note that reaches no seed prototype is "
                  "clustered with the other leftovers (spectral clustering of a cosine kNN graph) into new "
                  "candidate themes. Keywords come from class-based TF-IDF; quotes are chosen to be central "
                  "and different from each other."),
        _k_choice(run, config), shelf.take("k_selection"),
        element("h3", "Thresholds"), _thresholds_table(run, config),
        _overrides_block(run.overrides),
        _agreement_block(run.evaluation),
        join([element("h3", "Other figures"), shelf.rest()]) if shelf.figures else Markup(""),
    ])


# --------------------------------------------------------------------------- section 5: manifest


def _file_check(path: Path, recorded) -> Markup:
    if not path.is_file():
        return element("span", "missing", class_="under")
    digest = sha256_file(path)
    return Markup("matches") if digest == recorded else element("span", "changed since the run", class_="over")


def _hash(value) -> Markup:
    return element("code", value, class_="hash")


def manifest_section(run: RunFolder) -> Markup:
    manifest = run.manifest
    if manifest is None:
        return absent("manifest.json is absent: this run did not record the hashes of its inputs and outputs, "
                      "its configuration or the package versions, so nobody can check that a re-run gives the "
                      "same numbers. Re-run with a version of ", code("analysis run"), " that writes the manifest.")
    inputs = [[code(i.get("path")), i.get("role", ""), fmt(i.get("bytes")), _hash(i.get("sha256"))]
              for i in manifest.get("inputs", [])]
    outputs = [[code(path), _hash(digest), _file_check(run.path / path, digest)]
               for path, digest in sorted((manifest.get("outputs") or {}).items())]
    versions = [[name, version or "not installed"] for name, version in (manifest.get("versions") or {}).items()]
    platform = [[key, value] for key, value in (manifest.get("platform") or {}).items()]
    seeds = ", ".join(f"{k} = {v}" for k, v in sorted((manifest.get("seeds") or {}).items()))
    return join([
        paragraph("What these results depend on. ", code("analysis verify"), " re-runs the analysis from this "
                  "manifest and lists every difference. Seeds: ", seeds or "not recorded", ". The last column of "
                  "the outputs says whether the file in the run folder, which this report was made from, still "
                  "has the hash the run recorded."),
        table(["input", "role", "bytes", "sha256"], inputs, caption="Inputs", numeric=[2]),
        table(["output", "sha256", "file now"], outputs, caption="Outputs (this report is not among them)"),
        table(["package", "version"], versions, caption="Versions"),
        table(["platform", "value"], platform, caption="Platform"),
    ])


# --------------------------------------------------------------------------- the page


STYLE = """
:root { --ink: #1d1d1f; --muted: #5b5b66; --rule: #d0d0d7; --accent: #0a5c8a; --over: #8a3b00; --under: #1f4e9c; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0 auto; max-width: 62rem; padding: 2rem 1.5rem 4rem; color: var(--ink); background: #fff;
       font-family: "DejaVu Sans", "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; line-height: 1.55; }
h1 { font-size: 2rem; line-height: 1.2; margin: 0 0 .5rem; }
h2 { font-size: 1.5rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem; border-bottom: 2px solid var(--accent); }
h3 { font-size: 1.15rem; margin: 1.8rem 0 .5rem; }
h4 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
p, li { max-width: 46rem; }
a { color: var(--accent); }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .85em; }
code.hash { word-break: break-all; font-size: .75em; }
.subtitle { color: var(--muted); margin-top: 0; }
nav.toc { background: #f4f6f8; border: 1px solid var(--rule); border-radius: 6px; padding: .75rem 1.25rem; }
nav.toc ul { margin: .25rem 0; padding-left: 0; list-style: none; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; min-width: 50%; }
caption { text-align: left; font-weight: bold; padding: .3rem 0; color: var(--muted); }
th, td { text-align: left; vertical-align: top; padding: .3rem .6rem; border-bottom: 1px solid var(--rule); }
th { border-bottom: 2px solid var(--ink); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafafa; }
.over { color: var(--over); font-weight: bold; }
.under { color: var(--under); font-weight: bold; }
figure { margin: 1.25rem 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--rule); }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .3rem; }
article.theme { border-left: 4px solid var(--rule); padding-left: 1rem; margin: 1rem 0; }
article.theme h3 { margin-top: .5rem; }
.tag { font-size: .75rem; font-weight: normal; color: var(--muted); border: 1px solid var(--rule);
       border-radius: 3px; padding: 0 .3rem; margin-left: .3rem; white-space: nowrap; }
blockquote { margin: .5rem 0; padding: .4rem .9rem; background: #fbf8ef; border-left: 3px solid #c9a227; }
blockquote p { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
blockquote footer { font-size: .8rem; color: var(--muted); }
.absent { color: var(--muted); font-style: italic; border-left: 3px solid var(--rule); padding-left: .75rem; }
.gap { color: var(--over); }
@media print {
  html { font-size: 11pt; }
  body { max-width: none; padding: 0; }
  @page { margin: 18mm 15mm; }
  h2 { break-before: page; }
  section:first-of-type h2 { break-before: avoid; }
  h2, h3, h4 { break-after: avoid; }
  figure, blockquote, tr, article.theme h3 { break-inside: avoid; }
  figure img { max-height: 240mm; width: auto; }
  thead { display: table-header-group; }
  nav.toc, tbody tr:nth-child(even), blockquote { background: none; }
  .table-wrap { overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
"""


def _table_of_contents() -> Markup:
    items = join(element("li", element("a", title, href=f"#{anchor}")) for anchor, title in SECTIONS)
    return element("nav", join([element("strong", "Contents"), element("ul", items)]), class_="toc",
                   aria_label="Contents")


def render_report(run: RunFolder, title: str | None = None) -> str:
    """The whole report as one HTML string."""
    title = title or "Workshop notes: themes and personas"
    shelf = FigureShelf(run.figures, run.persona_names)
    bodies = {"data": data_section(run), "themes": themes_section(run, shelf), "who": who_section(run, shelf),
              "personas": personas_section(run, shelf), "manifest": manifest_section(run)}
    bodies["method"] = method_section(run, shelf)  # last to render: it also takes the figures left over
    sections = join(element("section", join([element("h2", heading), bodies[anchor]]), id=anchor)
                    for anchor, heading in SECTIONS)
    head = join([Markup('<meta charset="utf-8">'),
                 Markup(f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'),
                 Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
                 element("title", title), element("style", Markup(STYLE))])
    subtitle = element("p", f"Run folder {run.path.name}: {len(run.assignments)} notes, {len(run.themes)} themes. "
                            "This file is self-contained: it needs no network and no JavaScript.", class_="subtitle")
    header = element("header", join([element("h1", title), subtitle]))
    body = join([header, _table_of_contents(), element("main", sections)])
    return f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>{head}</head>\n<body>{Markup(body)}</body>\n</html>\n"


def write_report(run_dir: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    """Write the HTML report of the run in ``run_dir`` to ``out_path``; return the path written."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ReportError(f"{out_path}: is a folder; give a file name such as {out_path / 'report.html'}.")
    document = render_report(read_run(run_dir), title=title)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(document, encoding="utf-8")
    return out_path
