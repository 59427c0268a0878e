"""The analyst notebooks: thin, seeded, runnable by nbval, and free of personal data and images.

nbval itself runs the notebooks in `make test`; these tests check what nbval cannot: that the
notebooks hold no logic of their own, start from the shared config, keep committed outputs
small and private, and that `make test` really hands them to nbval.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from analysis.explore import has_contact_details

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ["01-explore-notes.ipynb", "02-themes.ipynb", "03-personas.ipynb", "04-reproduce-and-evaluate.ipynb",
            "05-export.ipynb", "06-review-loop.ipynb"]
#: Cells whose output is removed on commit (see notebooks/README.md): figures and progress bars.
STRIP_TAG = "strip-output"
#: A committed notebook above this size almost certainly carries images or a huge table.
MAX_BYTES = 250_000


def _notebook(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))


def _code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _python(cell: dict) -> ast.Module:
    """The cell as Python, with IPython magics (%matplotlib inline) turned into calls first."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(_source(cell)))


def _output_texts(cell: dict):
    for output in cell.get("outputs", []):
        if "text" in output:
            yield "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") or mime == "application/json":
                yield "".join(value) if isinstance(value, list) else str(value)


@pytest.fixture(params=EXPECTED)
def notebook(request) -> tuple[str, dict]:
    return request.param, _notebook(request.param)


def test_the_notebooks_are_there_in_order():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


def test_no_functions_or_classes_in_notebooks(notebook):
    name, content = notebook
    for number, cell in enumerate(_code_cells(content), start=1):
        for node in ast.walk(_python(cell)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), (
                f"{name}, code cell {number}: defines {type(node).__name__}; move that logic into the package")


def test_one_parameters_cell_names_the_config_and_the_next_loads_it_and_seeds(notebook):
    name, content = notebook
    parameters, setup = (_code_cells(content)[0], _code_cells(content)[1])
    assert "parameters" in parameters.get("metadata", {}).get("tags", []), f"{name}: first code cell tagged parameters"
    assert 'os.environ.get("ANALYSIS_CONFIG", "../analysis.toml")' in _source(parameters), name
    assert "load_config(CONFIG_PATH)" in _source(setup), f"{name}: the setup cell must load CONFIG_PATH"
    assert "config.themes.random_state" in _source(setup) and "np.random.seed(" in _source(setup), name
    every = "".join(_source(cell) for cell in _code_cells(content))
    assert "../analysis.toml" not in every.replace(_source(parameters), ""), f"{name}: config path only in parameters"


def test_notebooks_import_the_installed_package_only(notebook):
    name, content = notebook
    for number, cell in enumerate(_code_cells(content), start=1):
        assert "sys.path" not in _source(cell), f"{name}, code cell {number}: no sys.path changes"
        for node in ast.walk(_python(cell)):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("src"), f"{name}, code cell {number}: import analysis"


def test_notebooks_use_the_project_kernel(notebook):
    name, content = notebook
    assert content["metadata"]["kernelspec"]["name"] == "analysis", name


def test_committed_outputs_are_small_and_have_no_images_or_errors(notebook):
    name, content = notebook
    assert (NOTEBOOKS / name).stat().st_size < MAX_BYTES
    for number, cell in enumerate(_code_cells(content), start=1):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{name}, code cell {number}: committed with an error"
            images = [m for m in output.get("data", {}) if m.startswith("image/")]
            assert not images, f"{name}, code cell {number}: strip image outputs before committing ({images})"


def test_every_code_cell_was_run_and_stripped_cells_are_not_compared(notebook):
    """Cells tagged strip-output (figures, progress bars) lose their output on commit, so nbval must ignore them."""
    name, content = notebook
    for number, cell in enumerate(_code_cells(content), start=1):
        if STRIP_TAG in cell.get("metadata", {}).get("tags", []):
            assert "# NBVAL_IGNORE_OUTPUT" in _source(cell), f"{name}, code cell {number}: stripped but compared"
            assert not cell.get("outputs"), f"{name}, code cell {number}: run the README command to strip outputs"
        else:
            assert cell.get("execution_count"), f"{name}, code cell {number}: not executed before commit"


def test_figure_cells_save_their_figure_and_are_stripped(notebook):
    name, content = notebook
    for number, cell in enumerate(_code_cells(content), start=1):
        if "plots.save(" in _source(cell):
            assert STRIP_TAG in cell.get("metadata", {}).get("tags", []), f"{name}, code cell {number}: tag strip-output"


def test_committed_outputs_hold_no_contact_details(notebook):
    name, content = notebook
    for number, cell in enumerate(_code_cells(content), start=1):
        for text in _output_texts(cell):
            lines = [line for line in text.splitlines() if has_contact_details(line)]
            assert not lines, f"{name}, code cell {number}: output shows contact details ({len(lines)} line(s))"


def test_markdown_explains_each_step(notebook):
    name, content = notebook
    cells = content["cells"]
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# "), f"{name}: starts with a title"
    markdown = sum(cell["cell_type"] == "markdown" for cell in cells)
    assert markdown >= len(_code_cells(content)) // 2, f"{name}: too few explanations for its code cells"


def test_make_test_runs_the_python_tests_and_the_notebooks_through_nbval():
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert recipe, "Makefile has no test target"
    command = recipe.group(1)
    for part in (" tests ", " notebooks ", "--nbval ", "--nbval-kernel-name analysis",
                 "--nbval-sanitize-with notebooks/nbval-sanitize.cfg"):
        assert part in command + " ", f"`make test` must pass {part.strip()!r} to pytest"


def test_sanitize_patterns_compile_and_keep_numbers_that_matter():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((NOTEBOOKS / "nbval-sanitize.cfg").read_text(encoding="utf-8"))
    assert len(patterns) >= 3

    def sanitize(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert sanitize("/tmp/clone/data/processed/x.png") == sanitize("/home/me/work/data/processed/x.png")
    assert sanitize("3 fits in 12.5 s") == sanitize("3 fits in 99.0 s")
    assert sanitize("<Figure at 0x7f3a2b1c9d00>") == sanitize("<Figure at 0x7f00deadbeef>")
    # Counts, metrics and note ids are what nbval is there to compare: they must survive.
    for kept in ("809 notes", "ari 0.372", "B2-073", "k = 8", "data/raw/baerum/workshop1_notes.csv"):
        assert sanitize(kept) == kept


DEVSET = next((parent / "shared" / "devsets" / "youth_leisure" for parent in ROOT.parents
               if (parent / "shared" / "devsets" / "youth_leisure").is_dir()), None)


@pytest.mark.skipif(DEVSET is None, reason="../shared/devsets/youth_leisure is not next to the repository")
@pytest.mark.parametrize("name", ["02-themes.ipynb", "03-personas.ipynb", "06-review-loop.ipynb"])
def test_notebooks_run_on_another_corpus_from_its_config(tmp_path, name):
    """Point ANALYSIS_CONFIG at a devset's config (files used where they are, never copied): no cell fails."""
    import os
    import subprocess
    import sys

    config = tmp_path / "analysis.toml"
    config.write_text(f'[paths]\nnotes = ["{DEVSET / "notes.csv"}"]\nseed_themes = "{DEVSET / "seed_themes.yml"}"\n'
                      f'personas = "{DEVSET / "personas.yml"}"\noverrides = ""\nout = "{tmp_path / "out"}"\n'
                      '[report]\nbreakdowns = ["participant_role", "workshop"]\n', encoding="utf-8")
    environment = {**os.environ, "ANALYSIS_CONFIG": str(config)}
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=900", f"--ExecutePreprocessor.kernel_name={_kernel()}",
               "--output-dir", str(tmp_path), str(NOTEBOOKS / name)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=1200)
    assert finished.returncode == 0, finished.stderr[-3000:]
    executed = json.loads((tmp_path / name).read_text(encoding="utf-8"))
    text = "\n".join(t for cell in _code_cells(executed) for t in _output_texts(cell))
    assert "yl-" in text, "the outputs show the devset's notes"
    for example in ("Roald", "Bærum", "fixed_team", "data/raw"):
        assert example not in text, f"{name}: the example's {example!r} shows up in a run on the devset"


def _kernel() -> str:
    """The project's kernel when installed (make lab / make test), else the default python3."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "analysis" if "analysis" in KernelSpecManager().find_kernel_specs() else "python3"
