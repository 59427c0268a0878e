"""How the choice of k would change with Newman's modularity resolution γ (benchmarks/README.md).

For each set: fit the configured ThemeModel inductively, rebuild its final kNN graph and spectral
embedding from the centred vectors, cluster at every k, and print ARI against the labels and
Q_γ = Σ_c [e_c/m − γ (d_c/2m)²] for a few γ (γ = 1 is the criterion ThemeModel uses).

Usage: .venv/bin/python benchmarks/k_criterion.py [--datasets sib_nb swefaq gold] [--max-k 25]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import themes as bench  # noqa: E402  (benchmarks/themes.py: the same set loaders)

from analysis.config import load_config  # noqa: E402
from analysis.pipeline import build_embedder, theme_model_from_config  # noqa: E402
from analysis.themes import (  # noqa: E402
    cluster_spectral,
    default_neighbors,
    knn_graph,
    modularity,
    spectral_embedding,
)

GAMMAS = (1.0, 1.25, 1.5, 2.0)
ROOT = Path(__file__).resolve().parents[1]


def curve(bench_set, vectors: np.ndarray, config, max_k: int) -> pd.DataFrame:
    model = theme_model_from_config(config).set_params(max_k=max_k).fit(vectors, groups=bench_set.groups)
    centred = model.centre(vectors, bench_set.groups)
    graph = knn_graph(centred, model.n_neighbors or default_neighbors(len(centred)))
    embedding = spectral_embedding(graph, max_k)
    rows = []
    for k in range(2, max_k + 1):
        labels = cluster_spectral(embedding, k, model.random_state)
        rows.append({"k": k, "ari": adjusted_rand_score(bench_set.labels[bench_set.scored], labels[bench_set.scored]),
                     **{f"q_{gamma:g}": modularity(graph, labels, gamma) for gamma in GAMMAS}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sib_nb", "sib_sv", "sib_da", "swefaq", "argumentation", "gold"])
    parser.add_argument("--max-k", type=int, default=25)
    parser.add_argument("--config", type=Path, default=ROOT / "analysis.toml")
    parser.add_argument("--benchdata", type=Path, default=ROOT.parent / "shared" / "benchdata")
    args = parser.parse_args()
    config = load_config(args.config)
    embedder = build_embedder(config, progress=False)
    loaders = bench.dataset_loaders(args.benchdata, config)
    for name in args.datasets:
        bench_set = loaders[name]()
        vectors = embedder.encode(bench_set.texts, kind="query")
        with threadpool_limits(1):
            table = curve(bench_set, vectors, config, args.max_k)
        picks = {f"γ={gamma:g}": int(table.loc[table[f"q_{gamma:g}"].round(3).idxmax(), "k"]) for gamma in GAMMAS}
        print(f"\n{name}: true k {len(set(bench_set.labels[bench_set.scored]))}; k picked {picks}; "
              f"best k by ARI {int(table.loc[table['ari'].idxmax(), 'k'])}")
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
