"""The HTML report: structure, self-containment, escaping, and a real headless Chromium render.

The run folder is made by the real pipeline (offline e5) on the e2e fixture plus
tests/fixtures/report/injection.csv, whose notes and workshop name carry HTML and script.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import lxml.html
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis import outputs, pipeline
from analysis.cli import app
from analysis.config import load_config
from analysis.embed.cache import CachedEmbedder
from analysis.export.report import SECTIONS, ReportError, write_report

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
INJECTED_WORKSHOP = "Workshop <script>alert(1)</script><img src=x onerror=alert(1)>"
#: The fixture's payloads that would write this into the page if they ever ran.
RAN_MARKER = "PWNED"

runner = CliRunner()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A throwaway project: the committed config, the e2e notes and the injection notes."""
    folder = tmp_path_factory.mktemp("report_project")
    notes = folder / "notes"
    shutil.copytree(FIXTURES / "e2e", notes)
    shutil.copy(FIXTURES / "report" / "injection.csv", notes / "injection.csv")
    config = (ROOT / "analysis.toml").read_text(encoding="utf-8")
    config = config.replace('notes = ["data/raw"]', 'notes = ["notes"]')
    config = config.replace('"data/raw/personas.yml"', f'"{(ROOT / "data/raw/personas.yml").as_posix()}"')
    config = config.replace('"data/raw/seed_themes.yml"', f'"{(ROOT / "data/raw/seed_themes.yml").as_posix()}"')
    # A stricter seed threshold leaves enough notes unmatched for a new candidate theme (and a k choice).
    config = re.sub(r"(?m)^(# )?seed_threshold = [0-9.]+", "seed_threshold = 0.12", config)
    (folder / "analysis.toml").write_text(config, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def run_dir(project, e5, tmp_path_factory) -> Path:
    """A real run folder, at the config's [paths] out, written by the pipeline.

    The session's e5 model sits behind a throwaway cache, so the notes that persona linking and
    need coverage embed again are embedded once.
    """
    config = load_config(project / "analysis.toml")
    embedder = CachedEmbedder(e5, tmp_path_factory.mktemp("e5_cache"), batch_size=32, progress=False)
    result = pipeline.run(config, embedder=embedder, progress=False)
    out = config.resolve(config.paths.out)
    outputs.write_outputs(result, out)
    return out


@pytest.fixture(scope="module")
def report_path(run_dir, tmp_path_factory) -> Path:
    return write_report(run_dir, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def page(report_path) -> str:
    return report_path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tree(page):
    return lxml.html.document_fromstring(page)


@pytest.fixture(scope="module")
def assignments(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "assignments.csv", dtype=str, keep_default_na=False)


def _section(tree, anchor: str):
    found = tree.xpath(f"//section[@id='{anchor}']")
    assert len(found) == 1, f"section #{anchor}"
    return found[0]


def _text(element) -> str:
    """Visible text with one space between text nodes (table cells stay apart)."""
    return " ".join(" ".join(element.itertext()).split())


def _copy(run_dir: Path, folder: Path) -> Path:
    copy = folder / "run"
    shutil.copytree(run_dir, copy)
    return copy


# --------------------------------------------------------------------------- structure


def test_every_section_has_its_heading_and_an_entry_in_the_contents(tree):
    contents = [a.get("href") for a in tree.xpath("//nav//a")]
    assert contents == [f"#{anchor}" for anchor, _ in SECTIONS]
    for anchor, heading in SECTIONS:
        section = _section(tree, anchor)
        assert [_text(h) for h in section.xpath("./h2")] == [heading]
    assert tree.xpath("//html/@lang") == ["en"]


def test_figures_are_embedded_as_png_data_uris_with_alt_text(tree, run_dir):
    images = tree.xpath("//img")
    figures = sorted((run_dir / "figures").glob("*.png"))
    assert len(figures) >= 5 and len(images) == len(figures)
    embedded = set()
    for image in images:
        source = image.get("src")
        assert source.startswith("data:image/png;base64,"), source[:40]
        embedded.add(base64.b64decode(source.removeprefix("data:image/png;base64,")))
        assert len(image.get("alt", "").strip()) > 20
        assert image.getparent().tag == "figure" and image.getparent().xpath("./figcaption")
    assert embedded == {path.read_bytes() for path in figures}


def test_nothing_is_loaded_from_outside_the_file(tree, page):
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if name in {"src", "href", "action", "poster", "data", "srcset", "background"}:
                assert not re.match(r"\s*(https?:)?//", value), f"<{element.tag} {name}={value[:60]}>"
                assert value.startswith(("data:image/png;base64,", "#")), f"<{element.tag} {name}={value[:60]}>"
    assert not tree.xpath("//script | //link | //iframe | //object | //embed | //base | //form")
    style = "".join(tree.xpath("//style/text()"))
    assert "url(" not in style and "@import" not in style
    policy = tree.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")
    assert policy and "default-src 'none'" in policy[0]
    assert "http://" not in page and "https://" not in page


def test_note_text_and_attribute_values_are_escaped(tree, page, assignments):
    # The parser finds no element a sticky note could have smuggled in ...
    assert not tree.xpath("//script")
    assert all(img.get("src", "").startswith("data:") for img in tree.xpath("//img"))
    assert not [(e.tag, a) for e in tree.iter() if isinstance(e.tag, str) for a in e.attrib if a.startswith("on")]
    # ... and the payloads are shown as the text people wrote.
    sources = _text(_section(tree, "data"))
    assert INJECTED_WORKSHOP in sources
    quotes = {_quote_note_id(q): q for q in tree.xpath("//blockquote")}
    injected = assignments[assignments["note_id"].str.startswith("X-")].set_index("note_id")
    shown = sorted(set(quotes) & set(injected.index))
    assert shown, "no injected note is among the quoted notes; the escaping of quotes is untested"
    for note_id in shown:
        assert quotes[note_id].xpath("./p")[0].text_content() == injected.loc[note_id, "text"]
    assert SCRIPT in "".join(q.text_content() for q in quotes.values())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and SCRIPT not in page and IMAGE not in page


def _quote_note_id(blockquote) -> str:
    return blockquote.xpath("./footer")[0].text_content().split(" · ")[0]


def test_each_theme_shows_up_to_three_quotes_in_their_own_language(tree, run_dir, assignments):
    themes = pd.read_csv(run_dir / "themes.csv", dtype=str, keep_default_na=False)
    languages = dict(zip(assignments["note_id"], assignments["lang"]))
    for _, theme in themes.iterrows():
        article = tree.xpath(f"//article[@id='theme-{theme['theme_id']}']")
        assert len(article) == 1, theme["theme_id"]
        quotes = article[0].xpath(".//blockquote")
        representative = [i for i in theme["representative_note_ids"].split("; ") if i]
        assert len(quotes) == min(3, len(representative))
        for quote in quotes:
            note_id = _quote_note_id(quote)
            assert note_id in representative
            assert quote.get("lang") == languages[note_id]
    assert {q.get("lang") for q in tree.xpath("//blockquote")} >= {"nb", "sv"}


def test_every_note_is_accounted_for_in_the_status_table(tree, assignments):
    table = _section(tree, "data").xpath(".//table[caption[contains(., 'status')]]")[0]
    rows = {_text(r.xpath("./td")[0]): int(_text(r.xpath("./td")[1])) for r in table.xpath(".//tbody/tr")}
    total = rows.pop("all")
    assert total == len(assignments)
    assert rows == assignments["status"].value_counts().to_dict()
    assert "every note is accounted for" in _text(_section(tree, "data"))


def test_theme_persona_table_marks_residuals_and_small_cells(tree, run_dir):
    long = pd.read_csv(run_dir / "persona_theme.csv")
    themes = pd.read_csv(run_dir / "themes.csv", dtype=str, keep_default_na=False)
    table = _section(tree, "personas").xpath(".//table[caption='Notes per theme and persona']")[0]
    header = [_text(th) for th in table.xpath(".//thead//th")]
    assert header[-1] == "no persona" and "Roald" in header
    cells = {}
    for row in table.xpath(".//tbody/tr"):
        values = [_text(td) for td in row.xpath("./td")]
        cells.update({(values[0], persona): value for persona, value in zip(header[1:], values[1:])})
    labels = dict(zip(themes["theme_id"], themes["label"]))
    names = {"none": "no persona", "roald": "Roald", "edel": "Edel", "knut": "Knut", "elias": "Elias"}
    for cell in long.itertuples():
        shown = cells[(labels[cell.theme_id], names[cell.persona_id])]
        assert shown.split()[0] == str(cell.count)
        assert ("▲" in shown) == (cell.std_residual >= 2) and ("▼" in shown) == (cell.std_residual <= -2)
        assert ("†" in shown) == bool(cell.small_cell)


def test_needs_gaps_and_sites_are_reported(tree, run_dir):
    personas = _text(_section(tree, "personas"))
    needs = pd.read_csv(run_dir / "persona_needs.csv", dtype=str, keep_default_na=False)
    for need in needs.drop_duplicates("need_id").itertuples():
        assert need.need_text in personas
    gaps = needs[needs["gap"] == "True"]
    assert personas.count("gap:") == len(gaps)
    assert "Sites compared" in personas and "Bærum" in personas and "Mariestad" in personas
    report = json.loads((run_dir / "persona_report.json").read_text(encoding="utf-8"))
    assert "Links by method: " in personas
    for method, count in report["links_by_method"].items():
        assert f"{method} {count}" in personas


def test_method_explains_k_embedder_thresholds_and_agreement(tree, run_dir):
    method = _text(_section(tree, "method"))
    k = pd.read_csv(run_dir / "k_selection.csv")
    chosen = int(k.loc[k["chosen"], "k"].iloc[0])
    assert f"k = {chosen} has the highest graph modularity" in method
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"]["identity"] in method
    assert "lang, source_type" in method and "[themes] seed_threshold 0.12" in method
    evaluation = json.loads((run_dir / "evaluation.json").read_text(encoding="utf-8"))
    metrics = evaluation.get("metrics", evaluation)
    assert f"kappa Cohen's κ against the seed codebook {metrics['kappa']:.3f}" in method


def test_manifest_section_lists_hashes_and_checks_the_files(tree, run_dir):
    section = _text(_section(tree, "manifest"))
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    for item in manifest["inputs"]:
        assert item["sha256"] in section and item["path"] in section
    for path, digest in manifest["outputs"].items():
        assert f"{path} {digest} matches" in section
    assert manifest["versions"]["pandas"] in section


def test_absent_files_are_said_plainly(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    for name in ("manifest.json", "evaluation.json", "privacy_report.json", "overrides_report.json"):
        (copy / name).unlink(missing_ok=True)
    tree = lxml.html.document_fromstring(write_report(copy, tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "privacy_report.json is absent" in _text(_section(tree, "data"))
    method = _text(_section(tree, "method"))
    assert "evaluation.json is absent" in method and "Embedding model: not recorded" in method
    assert "manifest.json is absent" in _text(_section(tree, "manifest"))


def test_privacy_counts_and_changed_outputs_are_shown(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    privacy = {"masking": True, "summary": {"masked_values": 6, "notes_with_personal_data": 5,
                                            "by_kind": {"EMAIL": 3, "PHONE": 2, "<b>NAME</b>": 1},
                                            "by_source_file": {"notes/notes.csv": {"EMAIL": 3}}}, "locations": []}
    (copy / "privacy_report.json").write_text(json.dumps(privacy), encoding="utf-8")
    with open(copy / "trace.csv", "a", encoding="utf-8") as handle:
        handle.write("\n")
    page = write_report(copy, tmp_path / "r.html").read_text(encoding="utf-8")
    data = _text(_section(lxml.html.document_fromstring(page), "data"))
    assert "EMAIL 3" in data and "PHONE 2" in data and "<b>NAME</b> 1" in data
    assert "6 value(s) were masked in 5 note(s)" in data and "notes/notes.csv EMAIL 3" in data
    manifest = _text(_section(lxml.html.document_fromstring(page), "manifest"))
    assert "trace.csv" in manifest and "changed since the run" in manifest


def test_same_run_folder_gives_the_same_bytes(run_dir, report_path, tmp_path):
    again = write_report(run_dir, tmp_path / "again.html", title=None)
    assert again.read_bytes() == report_path.read_bytes()


def test_title_is_escaped(run_dir, tmp_path):
    page = write_report(run_dir, tmp_path / "t.html", title="Bærum & <Mariestad>").read_text(encoding="utf-8")
    assert "<title>Bærum &amp; &lt;Mariestad&gt;</title>" in page


def test_user_mistakes_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(ReportError, match="nowhere.*analysis run --out"):
        write_report(tmp_path / "nowhere", tmp_path / "r.html")
    no_themes = _copy(run_dir, tmp_path / "a")
    (no_themes / "themes.csv").unlink()
    with pytest.raises(ReportError, match=r"themes\.csv: file not found"):
        write_report(no_themes, tmp_path / "r.html")
    no_status = _copy(run_dir, tmp_path / "b")
    assignments = pd.read_csv(no_status / "assignments.csv", dtype=str, keep_default_na=False)
    assignments.drop(columns="status").to_csv(no_status / "assignments.csv", index=False)
    with pytest.raises(ReportError, match=r"assignments\.csv: column\(s\) status missing"):
        write_report(no_status, tmp_path / "r.html")
    broken = _copy(run_dir, tmp_path / "c")
    (broken / "persona_report.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ReportError, match=r"persona_report\.json: not valid JSON"):
        write_report(broken, tmp_path / "r.html")
    with pytest.raises(ReportError, match="is a folder"):
        write_report(run_dir, tmp_path)


# --------------------------------------------------------------------------- CLI


def test_cli_report_defaults_to_the_configs_out_folder(project, run_dir, tmp_path):
    out = tmp_path / "cli" / "report.html"
    result = runner.invoke(app, ["report", "--config", str(project / "analysis.toml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "report:" in result.output
    assert out.read_bytes() == write_report(run_dir, tmp_path / "direct.html").read_bytes()


def test_cli_report_user_errors_exit_2(tmp_path):
    result = runner.invoke(app, ["report", "--from", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "missing" in result.output and "analysis run" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["report", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "nope.toml" in result.output


# --------------------------------------------------------------------------- headless Chromium


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary; requested before the run folder so a missing browser is reported at once."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs it with apt-get (Debian package `chromium`).")
    pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test.")


def _render(binary: str, page: Path, profile: Path, *action: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page``; a hang (e.g. an alert() that ran) fails the test, never blocks it."""
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *action, page.as_uri()]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as browser:
        try:
            stdout, stderr = browser.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)  # the browser's own process group: renderer and GPU too
            browser.communicate()
            pytest.fail(f"Chromium did not finish {page.name} within {timeout} s. A script that ran "
                        "(an alert() dialog blocks headless Chromium) or a very slow machine can cause this.")
    assert browser.returncode == 0, stderr[-2000:]
    return subprocess.CompletedProcess(command, browser.returncode, stdout, stderr)


def _console_messages(stderr: str) -> list[str]:
    """Console output of the page itself (errors, CSP violations, uncaught exceptions)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_chromium_renders_the_report_and_runs_no_script(chromium, report_path, tmp_path):
    dumped = _render(chromium, report_path, tmp_path / "profile", "--dump-dom")
    assert _console_messages(dumped.stderr) == []
    dom = lxml.html.document_fromstring(dumped.stdout)
    headings = [_text(h) for h in dom.xpath("//section/h2")]
    assert headings == [heading for _, heading in SECTIONS]
    assert not dom.xpath("//script") and RAN_MARKER not in dumped.stdout
    assert SCRIPT in _text(dom) and INJECTED_WORKSHOP in _text(dom)
    # Without the Content-Security-Policy fence, escaping alone must keep the payloads inert.
    unfenced = tmp_path / "unfenced.html"
    page = report_path.read_text(encoding="utf-8")
    unfenced.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page), encoding="utf-8")
    assert "Content-Security-Policy" not in unfenced.read_text(encoding="utf-8")
    bare = _render(chromium, unfenced, tmp_path / "profile2", "--dump-dom", timeout=90)
    assert RAN_MARKER not in bare.stdout and _console_messages(bare.stderr) == []


def test_chromium_screenshot_is_saved_for_review(chromium, report_path, tmp_path):
    from PIL import Image, ImageStat

    folder = ROOT / "data" / "processed"
    folder.mkdir(parents=True, exist_ok=True)
    screenshot = folder / "report.png"
    screenshot.unlink(missing_ok=True)
    shot = _render(chromium, report_path, tmp_path / "profile", "--hide-scrollbars",
                   f"--screenshot={screenshot}", "--window-size=1280,2400")
    assert _console_messages(shot.stderr) == []
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2400)
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
    assert spread > 10, "the screenshot is (nearly) blank"
