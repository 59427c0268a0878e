"""Scale benchmark: 1k, 10k and 100k synthetic notes through the whole pipeline.

Usage (from the project root):

    .venv/bin/python benchmarks/scale.py --sizes 1000 10000 [--work /tmp/scale]
    .venv/bin/python benchmarks/scale.py --sizes 100000 --resume-demo
    .venv/bin/python benchmarks/scale.py --corpus-only --sizes 100000   # just write the corpus

For each size it writes a synthetic corpus under ``<work>/corpus-<n>/`` (notes tables and
interview documents composed from the vocabulary of ``data/raw``), runs ``pipeline.run`` on
it with an embedding cache under ``<work>/cache-<n>/`` (never ``data/processed``), writes
the outputs to ``<work>/out-<n>/`` and prints one Markdown row per step (load, mask, embed,
seeds, lexical, themes, overrides, labels, personas, breakdowns, evaluate, tables, figures,
manifest: the pipeline's on_stage hook) with wall time, CPU time and peak
resident memory. The timings come from the hook around the stages ``pipeline.run`` runs, so what is
measured is the real path. On a shared machine run it with ``OMP_WAIT_POLICY=PASSIVE``
(benchmarks/README.md, "Scale"); the machine line records the OpenMP settings in use.

``--resume-demo`` first starts the embedding in a child process, kills it when about half
the texts are in the cache, and then runs the benchmark, whose embed step must embed only
the other half. It prints how many texts were re-embedded.

No note text is printed (the synthetic notes are fictional, but the habit matters).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"

# --------------------------------------------------------------------------- synthetic corpus

#: Words a sticky note starts or ends with, per language: time, place, audience, emphasis.
#: They vary notes the way workshop tables do without inventing new topics.
OPENERS = {
    "nb": ["Forslag:", "Idé:", "Viktig:", "Hva med", "Kanskje", "Vi trenger", "Ønske:", "Bord 3:",
           "Fra pårørende:", "Ansatte sier:", "Spørsmål:", "Husk:"],
    "nn": ["Forslag:", "Idé:", "Viktig:", "Kva med", "Kanskje", "Vi treng", "Ønskje:", "Hugs:"],
    "sv": ["Förslag:", "Idé:", "Viktigt:", "Vad sägs om", "Kanske", "Vi behöver", "Önskemål:",
           "Grupp B:", "Från anhöriga:", "Personalen säger:", "Fråga:", "Kom ihåg:"],
    "da": ["Forslag:", "Idé:", "Vigtigt:", "Hvad med", "Måske", "Vi har brug for"],
    "en": ["Idea:", "Suggestion:", "Important:", "What about", "Maybe", "We need", "Question:",
           "From relatives:", "Staff say:", "Note:"],
}
CLOSERS = {
    "nb": ["på kveldstid", "i helgene", "om morgenen", "etter sykehusopphold", "første uka",
           "for brukere med demens", "for pårørende", "for nyansatte", "for vikarer", "i sone nord",
           "på Østerås", "i hele kommunen", "i hjemmetjenesten", "fra neste år", "hver uke",
           "uten ekstra kostnad", "som et forsøk", "!!", "?", "– viktig", "(alle enige)", "(2 stemmer)"],
    "nn": ["på kveldstid", "i helgane", "om morgonen", "første veka", "for pårørande", "for nytilsette",
           "i heile kommunen", "kvar veke", "som eit forsøk", "!!", "?"],
    "sv": ["på kvällstid", "på helgerna", "på morgonen", "efter sjukhusvistelse", "första veckan",
           "för brukare med demens", "för anhöriga", "för nyanställda", "för vikarier", "i Mariestad",
           "i hela kommunen", "inom LSS", "inom SoL", "från nästa år", "varje vecka", "som ett försök",
           "!!", "?", "– viktigt", "(alla överens)", "(3 röster)"],
    "da": ["om aftenen", "i weekenden", "for pårørende", "hver uge", "som et forsøg", "!!", "?"],
    "en": ["in the evenings", "at weekends", "in the morning", "after a hospital stay", "in the first week",
           "for users with dementia", "for relatives", "for new staff", "for temps", "across the municipality",
           "from next year", "every week", "as a pilot", "!!", "?", "(everyone agreed)", "(2 votes)"],
}
SPEAKERS = {
    "nb": ["Sykepleier", "Helsefagarbeider", "Vernepleier", "Teamleder", "Bruker", "Datter", "Sønn"],
    "sv": ["Stödpedagog", "Enhetschef", "Undersköterska", "Brukare", "Mamma", "Kontaktperson"],
    "en": ["Nurse", "Care worker", "Manager", "User", "Daughter"],
}
_SPLIT = re.compile(r"\s*(?:[.;!?…]+\s+|\n+|\s[–—-]\s|:\s|\s->\s)\s*")
_WORD = re.compile(r"[^\W\d_]{4,}")


@dataclass
class TemplateNote:
    text: str
    lang: str
    theme: str
    site: str
    persona: str
    role: str


def template_notes(raw: Path = RAW) -> list[TemplateNote]:
    """The example corpus's sticky notes (tables only, with text): what synthetic notes imitate."""
    from analysis.load import load_notes

    notes = load_notes([raw], root=raw.parent)
    notes = notes[(notes["status"] == "ok") & (notes["source_type"] == "note")]
    return [TemplateNote(" ".join(row.text.split()), row.lang if row.lang != "und" else "nb",
                         row.gold_theme or "other", row.site, row.persona.lower(), row.participant_role)
            for row in notes.itertuples()]


def clauses(text: str) -> list[str]:
    """A note cut at sentence ends, dashes, colons and line breaks: the pieces notes recombine."""
    return [piece.strip(" \"”“'") for piece in _SPLIT.split(text) if len(piece.split()) >= 2]


class NoteComposer:
    """Composes new sticky notes from clauses of real notes on the same theme in the same language.

    A note is one template's clause, often joined by a clause of a sibling note, with an
    opener or closer, and sometimes a word swapped for one from the theme's own vocabulary,
    a word dropped or two letters transposed (the corpus's typos). Lengths follow the real
    notes, clipped to 5-25 words.
    """

    def __init__(self, templates: list[TemplateNote], rng: np.random.Generator):
        self.templates = templates
        self.rng = rng
        self.clauses: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.vocabulary: dict[tuple[str, str], list[str]] = defaultdict(list)
        for note in templates:
            key = (note.theme, note.lang)
            self.clauses[key].extend(clauses(note.text) or [note.text])
            self.vocabulary[key].extend(_WORD.findall(note.text))
        self.lengths = np.clip([len(n.text.split()) for n in templates], 5, 25)

    def _pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def compose(self, template: TemplateNote, target_words: int | None = None) -> str:
        key = (template.theme, template.lang)
        target = int(target_words or self._pick(self.lengths))
        first = self._pick(clauses(template.text) or [template.text])
        words, used = first.split(), {first}
        siblings = self.clauses[key]
        for step in range(6):
            # At least one step, so a note is never just a copy of its template's clause.
            if step and len(words) >= target:
                break
            roll = self.rng.random()
            sibling = self._pick(siblings)
            closer = self._pick(CLOSERS.get(template.lang, CLOSERS["en"]))
            if roll < 0.55 and sibling not in used and len(words) + len(sibling.split()) <= target + 3:
                used.add(sibling)
                joiner = self._pick([",", "–", ".", ";", "+"])
                if joiner in ",.;":
                    words[-1] += joiner
                else:
                    words.append(joiner)
                words += sibling.split()
            elif roll < 0.85 and closer not in used:
                used.add(closer)
                words += closer.split()
            elif not step or roll >= 0.85:
                words = self._pick(OPENERS.get(template.lang, OPENERS["en"])).split() + words
        return " ".join(self._vary(words[:25], key))

    def _vary(self, words: list[str], key: tuple[str, str]) -> list[str]:
        """Up to two edits of the kind real sticky notes show: a word from the theme's own
        vocabulary, a dropped word, a transposed letter pair, a word in capitals."""
        vocabulary = self.vocabulary.get(key) or []
        for _ in range(int(self.rng.choice(3, p=[0.2, 0.5, 0.3]))):
            roll = self.rng.random()
            position = int(self.rng.integers(1, len(words))) if len(words) > 1 else 0
            word = words[position]
            if roll < 0.4 and vocabulary:
                words[position] = self._pick(vocabulary).lower()
            elif roll < 0.6 and len(words) > 5:
                del words[position]
            elif roll < 0.85 and len(word) > 4:
                i = int(self.rng.integers(1, len(word) - 2))
                words[position] = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            elif word.isalpha():
                words[position] = word.upper()
        return words


@dataclass
class CorpusInfo:
    folder: Path
    n_units: int
    n_note_rows: int
    n_document_units: int
    words: list[int] = field(default_factory=list)
    n_unique_texts: int = 0

    def describe(self) -> str:
        words = np.asarray(self.words)
        q = np.percentile(words, [5, 25, 50, 75, 95])
        return (f"{self.n_units} units ({self.n_note_rows} table rows, {self.n_document_units} document units); "
                f"words per unit p5/p25/median/p75/p95 = {'/'.join(f'{v:.0f}' for v in q)}, "
                f"min {words.min()}, max {words.max()}, mean {words.mean():.1f}; "
                f"unique texts {self.n_unique_texts} ({self.n_unique_texts / self.n_units:.1%})")


NOTES_PER_FILE = 5000
NOTE_COLUMNS = ["note_id", "text", "workshop", "table", "participant_role", "persona", "lang", "site",
                "gold_theme"]


def make_corpus(n: int, folder: Path, seed: int = 0, document_share: float = 0.1,
                copy_share: float = 0.02, blank_lang_share: float = 0.1) -> CorpusInfo:
    """Write ``n`` synthetic units: notes tables (CSV, ≤ 5,000 rows each) and interview documents.

    ``copy_share`` of the notes repeat an earlier note word for word (the same idea written
    at two tables), as real workshop notes do; everything else is composed afresh.
    ``blank_lang_share`` of the table rows leave ``lang`` empty, so language detection runs.
    """
    rng = np.random.default_rng(seed)
    templates = template_notes()
    composer = NoteComposer(templates, rng)
    folder.mkdir(parents=True, exist_ok=True)
    for old in list(folder.glob("notes-*.csv")) + list(folder.glob("doc-*.md")):
        old.unlink()
    n_documents_units = int(round(n * document_share))
    n_rows = n - n_documents_units
    texts: list[str] = []
    origin: list[TemplateNote] = []
    rows = []
    for i in range(n_rows):
        template = templates[int(rng.integers(len(templates)))]
        if texts and rng.random() < copy_share:
            # The same idea written at another table: same words, same language and theme.
            original = int(rng.integers(len(texts)))
            text, template = texts[original], origin[original]
        else:
            text = composer.compose(template)
        texts.append(text)
        origin.append(template)
        workshop = i // 300
        persona = template.persona if template.persona and rng.random() < 0.8 else ""
        rows.append({"note_id": f"S{i // NOTES_PER_FILE:03d}-{i % NOTES_PER_FILE:05d}", "text": text,
                     "workshop": f"Workshop {workshop + 1}", "table": f"Bord {int(rng.integers(1, 6))}",
                     "participant_role": template.role, "persona": persona,
                     "lang": "" if rng.random() < blank_lang_share else template.lang,
                     "site": template.site, "gold_theme": template.theme})
    for start in range(0, n_rows, NOTES_PER_FILE):
        path = folder / f"notes-{start // NOTES_PER_FILE:03d}.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, NOTE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows[start:start + NOTES_PER_FILE])
    texts += _write_documents(n_documents_units, folder, templates, composer, rng)
    words = [len(t.split()) for t in texts]
    return CorpusInfo(folder, len(texts), n_rows, n_documents_units, words, len(set(texts)))


def _write_documents(n_units: int, folder: Path, templates, composer: NoteComposer, rng) -> list[str]:
    """Interview and safari write-ups: front matter, one heading per theme, quoted list items."""
    units: list[str] = []
    by_site = defaultdict(list)
    for note in templates:
        by_site[(note.site, note.lang)].append(note)
    # The sites' own languages only: interviews were held in Norwegian and Swedish.
    keys = sorted(k for k in by_site if k in {("baerum", "nb"), ("mariestad", "sv")})
    number = 0
    while len(units) < n_units:
        site, lang = keys[int(rng.integers(len(keys)))]
        pool = by_site[(site, lang)]
        size = min(int(rng.integers(20, 61)), n_units - len(units))
        kind = "interview" if rng.random() < 0.6 else "safari"
        lines = ["---", f"doc_id: SYN-{number:05d}", f"site: {site}", f"source_type: {kind}", f"lang: {lang}",
                 "---", "", f"# Syntetisk {kind} {number}", ""]
        by_theme = defaultdict(list)
        for _ in range(size):
            template = pool[int(rng.integers(len(pool)))]
            text = composer.compose(template, target_words=int(rng.integers(10, 26)))
            speaker = SPEAKERS[lang][int(rng.integers(len(SPEAKERS[lang])))]
            by_theme[template.theme].append(f'{speaker}: "{text}"')
        for theme in sorted(by_theme):
            lines += [f"## {theme.replace('_', ' ').capitalize()}", ""]
            lines += [f"- {item}" for item in by_theme[theme]] + [""]
            units += [item for item in by_theme[theme]]
        (folder / f"doc-{number:05d}.md").write_text("\n".join(lines), encoding="utf-8")
        number += 1
    return units


# --------------------------------------------------------------------------- measuring

STEPS = ("load", "mask", "embed", "seeds", "lexical", "themes", "learn", "overrides", "review", "labels", "personas",
         "breakdowns", "evaluate", "tables", "figures", "manifest")


def _status_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (VmHWM) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class StepRecorder:
    """Wall time, CPU time and peak resident memory per pipeline step.

    ``step`` is the pipeline's ``on_stage`` hook (``pipeline.run(..., on_stage=recorder.step)``).
    ``wrap`` replaces a function with a timed one (kept for other callers; the pipeline needs no
    wrapping). Calls made while another step is running count for that step.
    """

    def __init__(self):
        self.wall: Counter = Counter()
        self.cpu: Counter = Counter()
        self.peak_mb: dict[str, float] = {}
        self.active: str | None = None
        self.can_reset_peak = reset_peak_rss()

    @contextmanager
    def step(self, name: str):
        if self.active is not None:
            yield
            return
        self.active = name
        reset_peak_rss()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - wall
            self.cpu[name] += time.process_time() - cpu
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), _status_mb("VmHWM"))
            self.active = None

    def wrap(self, owner, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        recorder = self

        def timed(*args, **kwargs):
            with recorder.step(name):
                return original(*args, **kwargs)

        timed.__wrapped__ = original
        setattr(owner, attribute, timed)


def benchmark_config(corpus: Path, cache: Path, out: Path, batch_size: int, max_fit_notes: int,
                     backend: str = "e5"):
    from analysis.config import load_config

    return load_config(ROOT / "analysis.toml",
                       paths={"notes": [str(corpus)], "cache": str(cache), "out": str(out), "overrides": "",
                              "personas": str(RAW / "personas.yml"), "seed_themes": str(RAW / "seed_themes.yml")},
                       embedding={"batch_size": batch_size, "backend": backend},
                       themes={"max_fit_notes": max_fit_notes})


def run_measured(config, out: Path) -> tuple[StepRecorder, dict]:
    """``pipeline.run`` and ``outputs.write_outputs`` with every step timed; returns the recorder and facts."""
    from analysis import outputs, pipeline

    recorder = StepRecorder()
    start = time.perf_counter()
    result = pipeline.run(config, progress=False, on_stage=recorder.step)
    written = outputs.write_outputs(result, out, on_stage=recorder.step)
    total = time.perf_counter() - start
    status = result.assignments["status"].value_counts().to_dict()
    facts = {
        "total_s": total, "units": len(result.notes), "embedding": result.embedding_stats,
        "themes": len(result.themes), "new_themes": int((result.themes["kind"] == "new").sum()),
        "fit_notes": len(getattr(result.model, "fit_sample_", [])), "status": status,
        "persona_links": result.assignments["persona_method"].value_counts().to_dict(),
        "metrics": (result.evaluation or {}).get("metrics", {}), "files": len(written),
        "peak_rss_mb": max(recorder.peak_mb.values()),
    }
    return recorder, facts


def table_rows(n: int, recorder: StepRecorder, facts: dict, load: str) -> list[str]:
    rows = [f"| {n:,} | {step} | {recorder.wall[step]:.1f} | {recorder.cpu[step]:.1f} | "
            f"{recorder.peak_mb.get(step, float('nan')):.0f} | {load} |" for step in STEPS if step in recorder.wall]
    other = facts["total_s"] - sum(recorder.wall.values())
    rows.append(f"| {n:,} | (rest of run) | {other:.1f} | – | – | {load} |")
    rows.append(f"| {n:,} | **total** | **{facts['total_s']:.1f}** | {sum(recorder.cpu.values()):.1f} | "
                f"**{facts['peak_rss_mb']:.0f}** | {load} |")
    return rows


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


# --------------------------------------------------------------------------- resuming


def cached_rows(cache: Path, counted: dict[str, int]) -> int:
    """Vectors in the cache folder now (finished shards only; counts are memoised per file)."""
    total = 0
    for shard in cache.rglob("shard-*.npz"):
        if shard.name not in counted:
            try:
                with np.load(shard, allow_pickle=False) as data:
                    counted[shard.name] = len(data["keys"])
            except (OSError, ValueError, KeyError):
                continue  # merged away or renamed while we looked
        total += counted[shard.name]
    return total


def pipeline_texts(config) -> list[str]:
    """The texts ``pipeline.run`` embeds: the loaded notes with text, after masking."""
    from analysis.load import load_notes
    from analysis.personas import load_personas
    from analysis.pipeline import mask_personal_data, notes_paths_from

    notes = load_notes(notes_paths_from(config), root=config.root)
    notes, _ = mask_personal_data(notes, config, load_personas(config.resolve(config.paths.personas)))
    return notes.loc[notes["status"] == "ok", "text"].tolist()


def interrupted_embedding(corpus: Path, cache: Path, batch_size: int, share: float = 0.5,
                          backend: str = "e5") -> dict:
    """Embed in a child process and SIGKILL it once ``share`` of the distinct texts are cached."""
    distinct = len(set(pipeline_texts(benchmark_config(corpus, cache, cache.parent / "unused-out", batch_size, 0))))
    child = subprocess.Popen([sys.executable, __file__, "--embed-only", str(corpus), "--cache", str(cache),
                              "--batch-size", str(batch_size), "--backend", backend], stdout=subprocess.DEVNULL)
    start, counted = time.perf_counter(), {}
    while child.poll() is None:
        time.sleep(2)
        if cached_rows(cache, counted) >= share * distinct:
            child.send_signal(signal.SIGKILL)
            child.wait()
            break
    elapsed = time.perf_counter() - start
    at_kill = cached_rows(cache, {})
    return {"distinct_texts": int(distinct), "cached_at_kill": at_kill, "seconds_to_kill": elapsed,
            "killed": child.returncode == -signal.SIGKILL}


def embed_only(corpus: Path, cache: Path, batch_size: int, backend: str = "e5") -> None:
    """The pipeline's embedding step alone (what the interrupted child runs)."""
    from analysis.pipeline import build_embedder

    config = benchmark_config(corpus, cache, cache.parent / "unused-out", batch_size, 0, backend)
    build_embedder(config, progress=False).encode(pipeline_texts(config), kind="query")


# --------------------------------------------------------------------------- main


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    return (f"{os.cpu_count()} cores, {memory:.0f} GiB, {cpu}, Python {platform.python_version()}, "
            f"OMP_NUM_THREADS={threads}, OMP_WAIT_POLICY={wait}")


def benchmark_size(n: int, work: Path, args) -> dict:
    corpus, cache, out = work / f"corpus-{n}", work / f"cache-{n}", work / f"out-{n}"
    info = make_corpus(n, corpus, seed=args.seed)
    print(f"corpus {n:,}: {info.describe()}", flush=True)
    if args.corpus_only:
        return {"n": n, "corpus": info.describe()}
    if args.cold and cache.exists():
        for shard in cache.rglob("*.npz"):
            shard.unlink()
    resume = interrupted_embedding(corpus, cache, args.batch_size, backend=args.backend) if args.resume_demo else None
    if resume:
        print(f"interrupted embedding: {json.dumps(resume)}", flush=True)
    config = benchmark_config(corpus, cache, out, args.batch_size, args.max_fit_notes, args.backend)
    before = load_average()
    recorder, facts = run_measured(config, out)
    load = f"{before} → {load_average()}"
    for row in table_rows(n, recorder, facts, load):
        print(row, flush=True)
    embedding = facts["embedding"]
    print(f"facts {n:,}: {json.dumps({k: v for k, v in facts.items() if k != 'embedding'})}", flush=True)
    print(f"embedding {n:,}: {json.dumps(embedding)}; "
          f"{embedding.get('embedded', 0) / max(recorder.wall['embed'], 1e-9):.1f} texts/s wall, "
          f"{embedding.get('embedded', 0) / max(recorder.cpu['embed'], 1e-9):.1f} texts per CPU-second", flush=True)
    if resume:
        redone = embedding.get("embedded", 0) + resume["cached_at_kill"] - resume["distinct_texts"]
        print(f"resume {n:,}: killed with {resume['cached_at_kill']:,} of {resume['distinct_texts']:,} distinct texts "
              f"cached after {resume['seconds_to_kill']:.0f} s; the resumed run embedded {embedding.get('embedded', 0):,} "
              f"and took {embedding.get('from_cache', 0):,} from the cache; texts embedded twice: {redone}", flush=True)
    return {"n": n, "corpus": info.describe(), "resume": resume, "facts": facts,
            "wall": dict(recorder.wall), "cpu": dict(recorder.cpu), "peak_mb": recorder.peak_mb, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32, help="[embedding] batch_size for the run")
    parser.add_argument("--max-fit-notes", type=int, default=5000, help="[themes] max_fit_notes for the run")
    parser.add_argument("--backend", default="e5", help="[embedding] backend for the run (e5, e5-fast, ...)")
    parser.add_argument("--cold", action="store_true", help="empty the size's embedding cache first")
    parser.add_argument("--resume-demo", action="store_true", help="kill the embedding at ~50%%, then resume")
    parser.add_argument("--corpus-only", action="store_true", help="write the corpora and stop")
    parser.add_argument("--results", type=Path, help="append one JSON line per size to this file")
    parser.add_argument("--embed-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embed_only:
        embed_only(args.embed_only, args.cache, args.batch_size, args.backend)
        return
    print(f"machine: {machine()}; backend {args.backend}; load average at start {load_average()}", flush=True)
    print("| notes | step | wall s | CPU s | peak RSS MB | load avg (1/5/15 min) before → after |")
    print("|---:|---|---:|---:|---:|---|", flush=True)
    for n in args.sizes:
        summary = benchmark_size(n, args.work, args)
        if args.results:
            with open(args.results, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(summary, default=str) + "\n")


if __name__ == "__main__":
    main()
