"""Session fixtures: one offline e5 embedder and the small committed themes corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

THEMES_FIXTURES = Path(__file__).parent / "fixtures" / "themes"


@pytest.fixture(scope="session")
def e5():
    from analysis.embed import get_embedder

    return get_embedder("e5")


@pytest.fixture(scope="session")
def topic_notes() -> pd.DataFrame:
    """40 short notes in nb/sv/en on four topics (coffee, parking, medication, volunteering)."""
    return pd.read_csv(THEMES_FIXTURES / "notes.csv", dtype=str)


@pytest.fixture(scope="session")
def topic_vectors(e5, topic_notes) -> np.ndarray:
    vectors = e5.encode(topic_notes["text"].tolist(), kind="query")
    vectors.setflags(write=False)
    return vectors
