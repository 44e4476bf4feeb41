"""The documentation site (``make docs``): it builds offline with warnings as errors, its lesson page
shows the exercise with the instructor's expected results and no answer, and the reference pages
that moved out of the README are there."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bmnist_lesson.docs_page import lesson_page, shown_answers
from bmnist_lesson.exercise import EXERCISE_IPYNB, SOLUTION_IPYNB, solution_regions
from bmnist_lesson.release import answer_lines
from nbjudge.tags import EXPECTED_TAG, cell_tags

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Lines from between the solution markers of solutions/binary_mnist.py: the answers of tasks 1 to 5.
ANSWERS = (
    "batch = order[start : start + batch_size]",
    "activations = nonlinearity(activations @ w + b)",
    "bias = stddev * jax.random.normal(b_key, (d_out,))",
    "cross_entropy = jnp.mean(jnp.logaddexp(0.0, logits) - targets * logits)",
    '"posmax": positives[::-1][:num_samples],',
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as ``make docs`` builds it (``-W --keep-going -n``), into a temporary folder."""
    out = tmp_path_factory.mktemp("docs") / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                           str(DOCS), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _text(page: Path) -> str:
    """The page's text, tags removed and entities unescaped, line by line as the HTML has it."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_the_answers_named_here_are_the_solutions():
    regions = "\n".join(solution_regions((ROOT / "solutions" / "binary_mnist.py").read_text(encoding="utf-8")))
    for line in ANSWERS:
        assert line in regions, line


def test_the_lesson_page_shows_the_expected_figures_and_printed_lines(site):
    page = site / "_generated" / "lesson.html"
    assert page.is_file()
    text = page.read_text(encoding="utf-8")
    solution = nbformat.read(SOLUTION_IPYNB, as_version=4)
    expected = [c for c in solution.cells if c.cell_type == "code" and EXPECTED_TAG in cell_tags(c)]
    figures = sum("image/png" in o.get("data", {}) for c in expected for o in c.outputs)
    assert figures >= 5
    images = re.findall(r'<img [^>]*src="([^"]+\.png)"', text)
    assert len(images) >= figures
    for src in images:
        assert not src.startswith(("http:", "https:", "//")), src
        assert (page.parent / src).is_file(), src
    shown = _text(page)
    printed = [line for c in expected for o in c.outputs if o.output_type == "stream" for line in o.text.splitlines()]
    assert len(printed) >= 10
    for line in printed:
        assert line.strip() in shown, line
    assert 'raise NotImplementedError("TODO: task 2, mlp")' in shown


def test_the_lesson_page_shows_no_answer(site):
    shown = _text(site / "_generated" / "lesson.html")
    for line in ANSWERS:
        assert line not in shown, line
    lines = {line.strip() for line in shown.splitlines()}
    assert not lines & answer_lines()


def test_only_expected_result_cells_keep_outputs():
    page = lesson_page(nbformat.read(EXERCISE_IPYNB, as_version=4), nbformat.read(SOLUTION_IPYNB, as_version=4))
    with_output = {c.id for c in page.cells if c.cell_type == "code" and c.outputs}
    expected = {c.id for c in page.cells if c.cell_type == "code" and EXPECTED_TAG in cell_tags(c)}
    assert with_output == expected and len(expected) >= 5
    assert not any(c.id.endswith("-expected") for c in page.cells)  # the markdown copies, replaced by the outputs
    assert not shown_answers(page, answer_lines())


def test_shown_answers_finds_an_answer_line_in_an_output():
    page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    page.cells[0].outputs = [nbformat.v4.new_output("stream", text=f"  {ANSWERS[1]}\n")]
    assert shown_answers(page, frozenset(ANSWERS)) == [ANSWERS[1]]


def test_the_reference_pages_are_built(site):
    grading = _text(site / "grading.html")
    assert "bmnist-grade merge SHARD_DIR... --out DIR" in grading and "Points set by hand" in grading
    security = _text(site / "security.html")
    assert "| guarantee |" not in security and "answers never enter the student's kernel" in security  # a table
    assert "# grade.sbatch: sbatch --array=1-8 grade.sbatch" in _text(site / "scaling.html")
    index = (site / "index.html").read_text(encoding="utf-8")
    for name in ("students", "install", "instructors", "_generated/lesson", "grading", "platforms", "engine",
                 "security", "scaling", "performance", "layout", "errata", "credits", "contributing"):
        assert f'href="{name}.html"' in index, name


def test_the_readme_is_short_and_links_the_docs_sources():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target
    assert "make docs" in readme and "docs/_build/html/index.html" in readme
