"""Given the same vectors, every output is byte-identical on any BLAS kernel, SIMD level and thread count.

Each variant runs ``analysis run`` in a fresh process over the e2e fixture with the embedding
cache filled by the first run, so every variant sees the same vectors. What another machine
changes and this one can force: OpenBLAS's kernel (OPENBLAS_CORETYPE), numpy's SIMD code paths
(NPY_DISABLE_CPU_FEATURES), OpenMP and BLAS thread counts, and Python's string hash seed (set
and dict order). AVX-512 kernels cannot be forced on a CPU without AVX-512; the code avoids
what would depend on them (ties in unstable sorts) instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.cli import app
from test_reproduce import make_project

runner = CliRunner()


def _numpy_simd_found() -> str:
    """numpy's dispatched SIMD targets this CPU has (disabling them forces the baseline loops)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(name for name in __cpu_dispatch__ if __cpu_features__.get(name))


VARIANTS = {
    "openblas-prescott-1-thread": {"OPENBLAS_CORETYPE": "Prescott", "OMP_NUM_THREADS": "1",
                                   "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "1"},
    "openblas-sandybridge-2-threads": {"OPENBLAS_CORETYPE": "Sandybridge", "OMP_NUM_THREADS": "2",
                                       "OPENBLAS_NUM_THREADS": "2", "PYTHONHASHSEED": "2"},
    "openblas-haswell-2-threads": {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "2",
                                   "OPENBLAS_NUM_THREADS": "2", "PYTHONHASHSEED": "4"},
    "numpy-baseline-simd": {"NPY_DISABLE_CPU_FEATURES": _numpy_simd_found(), "PYTHONHASHSEED": "3"},
}

PROBE = ("import json; import numpy; from numpy._core._multiarray_umath import __cpu_features__ as f; "
         "from threadpoolctl import threadpool_info; "
         "print(json.dumps({'blas': sorted({i.get('architecture') or '' for i in threadpool_info() "
         "if i['user_api'] == 'blas'}), 'simd': sorted(k for k, v in f.items() if v)}))")


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    project = make_project(tmp_path_factory.mktemp("machines") / "project")
    result = runner.invoke(app, ["run", "--config", str(project / "analysis.toml"), "--out", str(project / "out-reference")])
    assert result.exit_code == 0, result.output
    return project, project / "out-reference"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_outputs_are_byte_identical_whatever_the_kernel_simd_and_threads(reference, variant):
    project, reference_dir = reference
    env = _environment(VARIANTS[variant])
    probe = json.loads(subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    default = json.loads(subprocess.run([sys.executable, "-c", PROBE], env=_environment({}), capture_output=True,
                                        text=True, check=True).stdout)
    assert probe != default, f"{variant} forced nothing on this machine: {probe}"
    out = project / f"out-{variant}"
    run = subprocess.run([sys.executable, "-m", "analysis.cli", "run", "--config", str(project / "analysis.toml"),
                          "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "(0 embedded," in run.stdout  # the same vectors: every one from the cache
    expected, actual = _hashes(reference_dir), _hashes(out)
    assert sorted(actual) == sorted(expected)
    assert [name for name in expected if expected[name] != actual[name]] == []


# --------------------------------------------------------------------------- the means, in-process


def test_products_of_grid_unit_vectors_are_exact_in_any_summation_order():
    """What makes BLAS kernels agree: every partial sum of a product of grid unit vectors is exact."""
    import math

    import numpy as np

    from analysis.themes import GRID_BITS, _unit

    rng = np.random.default_rng(0)
    a, b = _unit(rng.normal(size=(20, 384))), _unit(rng.normal(size=(30, 384)))
    assert np.array_equal(a, np.round(a * 2 ** GRID_BITS) / 2 ** GRID_BITS)
    products = a @ b.T
    exact = np.array([[math.fsum(x * y) for y in b] for x in a])
    backwards = np.array([[sum((x * y)[::-1]) for y in b] for x in a])  # another summation order
    assert np.array_equal(products, exact) and np.array_equal(backwards, exact)
    assert np.abs(np.linalg.norm(a, axis=1) - 1).max() < 1e-6


def test_a_repeated_eigenvalue_gets_the_same_basis_however_lapack_rotates_it():
    """A complete graph of 9 notes: eigenvalue 9/8 eight times. OpenBLAS's Prescott and Haswell
    kernels gave different rotations of its eigenvectors, hence different new themes."""
    import numpy as np
    from scipy.sparse.csgraph import laplacian

    from analysis.themes import canonical_eigenbasis, cluster_spectral

    graph = np.ones((9, 9)) - np.eye(9)
    values, vecs = np.linalg.eigh(laplacian(graph, normed=True))
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(8, 8)))
    rotated = vecs.copy()
    rotated[:, 1:] = vecs[:, 1:] @ rotation  # as correct an eigenbasis as LAPACK's
    first, second = canonical_eigenbasis(values, vecs), canonical_eigenbasis(values, rotated)
    assert np.abs(first - second).max() < 1e-12
    assert np.allclose(first.T @ first, np.eye(9))
    assert not np.allclose(rotated[:, 1:3], vecs[:, 1:3])
    for k in (2, 3, 4):
        assert np.array_equal(cluster_spectral(first, k, 0), cluster_spectral(second, k, 0))


def test_knn_graph_breaks_equal_similarities_by_row_order():
    """Notes 1-4 are at 0.8 from note 0 and at 0.64 from each other: each note's second neighbour
    is the lowest-numbered of its ties, so notes 2, 3 and 4 link to 0 and 1 only."""
    import numpy as np

    from analysis.themes import knn_graph

    centre = np.eye(5)[0]
    vectors = np.vstack([centre, *(0.8 * centre + 0.6 * np.eye(5)[i] for i in range(1, 5))])
    graph = knn_graph(vectors, 2).toarray()
    assert graph[0].tolist() == [0, 1, 1, 1, 1] and graph[1].tolist() == [1, 0, 1, 1, 1]
    assert graph[2:].tolist() == [[1, 1, 0, 0, 0]] * 3
    assert np.array_equal(graph, graph.T)
