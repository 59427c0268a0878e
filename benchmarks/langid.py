"""Compare two language detectors on nb / nn / sv / da / en, for full sentences and short notes.

Candidates:
  * lingua-language-detector, restricted to the five languages, default (high-accuracy) mode.
  * py3langid, restricted with set_languages. Its model has no ``nb`` label, only ``no``
    (Norwegian, in practice Bokmål) next to ``nn``, so ``no`` is scored as ``nb``.

Test sets:
  * SIB-200 (FLORES-200 sentences, parallel across the five languages), full sentences.
  * The same sentences cut to their first 5 words: our sticky notes are 3–15 words long.
  * Notes from the example corpus whose file has a ``lang`` column (if --corpus exists).

Run from the project root:
    .venv/bin/python benchmarks/langid.py [--benchdata ../shared/benchdata] [--corpus data/raw]
It prints Markdown tables for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

LANGS = ("nb", "nn", "sv", "da", "en")
SIB_FILES = {"nb": "nob", "nn": "nno", "sv": "swe", "da": "dan", "en": "eng"}
SHORT_WORDS = 5
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6)

Detector = Callable[[Sequence[str]], list[tuple[str, float]]]


def lingua_detector() -> Detector:
    from lingua import Language, LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_languages(
        Language.BOKMAL, Language.NYNORSK, Language.SWEDISH, Language.DANISH, Language.ENGLISH
    ).build()

    def detect(texts: Sequence[str]) -> list[tuple[str, float]]:
        results = []
        for text in texts:
            best = detector.compute_language_confidence_values(text)[0]
            results.append((best.language.iso_code_639_1.name.lower(), best.value))
        return results

    return detect


def py3langid_detector() -> Detector:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(["no", "nn", "sv", "da", "en"])

    def detect(texts: Sequence[str]) -> list[tuple[str, float]]:
        results = []
        for text in texts:
            code, confidence = identifier.classify(text)
            results.append(("nb" if code == "no" else code, confidence))
        return results

    return detect


def sib200_sets(benchdata: Path) -> dict[str, pd.DataFrame]:
    frames = []
    for lang, stem in SIB_FILES.items():
        sentences = pd.read_csv(benchdata / f"sib200_{stem}.csv")["text"]
        frames.append(pd.DataFrame({"text": sentences, "lang": lang}))
    full = pd.concat(frames, ignore_index=True)
    short = full.assign(text=full["text"].map(lambda t: " ".join(t.split()[:SHORT_WORDS])))
    return {"SIB-200 full sentences": full, f"SIB-200 first {SHORT_WORDS} words": short}


def corpus_set(corpus: Path) -> dict[str, pd.DataFrame]:
    """Notes whose language was given in a `lang` column: the analysts' own labels."""
    from analysis.load import load_notes

    notes = load_notes([corpus])
    labelled = notes[(notes["lang_source"] == "column") & (notes["status"] == "ok")]
    if labelled.empty:
        return {}
    return {"example corpus (lang column)": labelled[["text", "lang", "source_file"]].reset_index(drop=True)}


def score(detect: Detector, test_set: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    predictions = detect(list(test_set["text"]))
    seconds = time.perf_counter() - start
    scored = test_set.assign(
        predicted=[code for code, _ in predictions],
        confidence=[confidence for _, confidence in predictions],
    )
    return scored, seconds


def accuracy_row(scored: pd.DataFrame) -> dict[str, str]:
    correct = scored["predicted"] == scored["lang"]
    row = {}
    for lang in LANGS:
        mask = scored["lang"] == lang
        row[lang] = f"{correct[mask].mean():.3f} (n={mask.sum()})" if mask.any() else "–"
    row["all"] = f"{correct.mean():.3f}"
    return row


def threshold_rows(scored: pd.DataFrame) -> list[str]:
    """How many notes keep a language at each confidence floor, and how often it is right."""
    lines = []
    for floor in THRESHOLDS:
        kept = scored[scored["confidence"] >= floor]
        accuracy = (kept["predicted"] == kept["lang"]).mean() if len(kept) else float("nan")
        lines.append(f"| {floor:.1f} | {len(kept) / len(scored):.3f} | {accuracy:.3f} |")
    return lines


def loader_rule(test_set: pd.DataFrame) -> str:
    """What the loader does for a note without a usable `lang`: detect, else the file's majority."""
    from analysis.schema import UNDETERMINED
    from analysis.text import MIN_CONFIDENCE, detect_language

    scored = test_set.assign(predicted=[code for code, _ in detect_language(list(test_set["text"]))])
    undetermined = scored["predicted"] == UNDETERMINED
    for _, rows in scored[~undetermined].groupby("source_file"):
        counts = rows["predicted"].value_counts()
        majority = min(counts.index, key=lambda code: (-counts[code], code))
        scored.loc[undetermined & (scored["source_file"] == rows["source_file"].iloc[0]), "predicted"] = majority
    accuracy = (scored["predicted"] == scored["lang"]).mean()
    return (f"Loader rule (analysis.text.detect_language, floor {MIN_CONFIDENCE}, `und` → file majority): "
            f"accuracy {accuracy:.3f}, {undetermined.mean():.1%} of notes took the file majority.")


def report(test_sets: dict[str, pd.DataFrame], detectors: dict[str, Detector]) -> str:
    lines = []
    for set_name, test_set in test_sets.items():
        lines += [f"#### {set_name} ({len(test_set)} texts)", ""]
        lines += ["| detector | " + " | ".join(LANGS) + " | all | ms/text |"]
        lines += ["|---|" + "---|" * (len(LANGS) + 2)]
        confidence_tables = []
        for detector_name, detect in detectors.items():
            scored, seconds = score(detect, test_set)
            row = accuracy_row(scored)
            cells = " | ".join(row[lang] for lang in LANGS)
            per_text = 1000 * seconds / len(test_set)
            lines.append(f"| {detector_name} | {cells} | {row['all']} | {per_text:.2f} |")
            confidence_tables += ["", f"{detector_name}: confidence floor → share kept, accuracy of kept"]
            confidence_tables += ["", "| floor | kept | accuracy |", "|---|---|---|"]
            confidence_tables += threshold_rows(scored)
        lines += confidence_tables + [""]
        if "source_file" in test_set:
            lines += [loader_rule(test_set), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchdata", type=Path, default=Path("../shared/benchdata"))
    parser.add_argument("--corpus", type=Path, default=Path("data/raw"))
    args = parser.parse_args()

    test_sets = sib200_sets(args.benchdata)
    if args.corpus.exists():
        test_sets |= corpus_set(args.corpus)
    detectors = {"lingua": lingua_detector(), "py3langid": py3langid_detector()}
    print(report(test_sets, detectors))


if __name__ == "__main__":
    main()
