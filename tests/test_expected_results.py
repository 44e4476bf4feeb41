"""The expected results tell a student something: they catch the typical mistakes, accept the
correct alternatives, and stay true when a cell is run again.

* Every typical one-task mistake of ``tests/fixtures/alternatives/`` makes at least one printed
  line of an expected-result cell differ from the line the solution notebook stores.
* Every correct alternative prints exactly the stored lines (so the checks do not flag a correct
  answer, and the grader's expected-result points stay with it).
* Re-running any expected-result cell after the last cell of the notebook shows what the first run
  showed: the cells read no name that a later cell rebinds.

The mistakes and alternatives run in this process through the solution's cells
(``tests/lesson_cells.py``), with the grader's settings (200 training steps, 20 random models),
from the answered task on; the re-run test runs the solution notebook in a Jupyter kernel.
"""

from __future__ import annotations

import ast
import copy

import nbformat
import pytest
from bmnist_lesson import GRADING_PARAMS
from bmnist_lesson.exercise import EXPECTED_TAG, SOLUTION_IPYNB, cell_tags, load_solution

from tests.fixtures.alternatives import ALTERNATIVES, WRONG
from tests.lesson_cells import LessonRun, Printed, grading_run, stored_printed

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def stored() -> Printed:
    return stored_printed(nbformat.read(SOLUTION_IPYNB, as_version=4))


@pytest.fixture(scope="module")
def lesson() -> LessonRun:
    return grading_run()


def _differences(stored: Printed, got: Printed) -> list[tuple[str, str, str | None]]:
    """``(cell id, stored line, printed line)`` for every line that differs; ``None``: not printed."""
    found = []
    for cell_id in stored.text:
        want, have = stored.lines(cell_id), got.lines(cell_id)
        for i in range(max(len(want), len(have))):
            a = want[i] if i < len(want) else None
            b = have[i] if i < len(have) else None
            if a != b:
                found.append((cell_id, a, b))
    return found


def test_the_solution_prints_the_stored_expected_results_under_the_graders_settings(lesson, stored):
    # The comparisons below are against the stored lines, so they must not depend on the settings.
    assert set(lesson.printed.text) == set(stored.text)
    assert not _differences(stored, lesson.printed)
    assert all(stored.text[c] for c in stored.text if c != "er-test-images")  # every other cell prints checks


@pytest.mark.parametrize(("task", "mistake"), [(t, m) for t, group in WRONG.items() for m in group])
def test_every_typical_mistake_changes_a_printed_expected_result(lesson, stored, task, mistake):
    got = lesson.with_answer(task, WRONG[task][mistake])
    # Run All reaches every expected-result cell (none raises), and one of them prints another line.
    assert got.error is None, f"cell {got.error} raised: {got.text.get(got.error)}"
    changed = [(cell_id, want, have) for cell_id, want, have in _differences(stored, got) if have is not None]
    assert changed, f"task {task}, {mistake}: every printed expected-result line is the stored one"
    for cell_id, want, have in changed:  # shown with pytest -rP
        print(f"{cell_id}: {want!r} -> {have!r}")


@pytest.mark.parametrize(("task", "style"), [(t, s) for t, group in ALTERNATIVES.items() for s in group])
def test_every_correct_alternative_prints_the_stored_expected_results(lesson, stored, task, style):
    got = lesson.with_answer(task, ALTERNATIVES[task][style])
    assert got.error is None, f"cell {got.error} raised: {got.text.get(got.error)}"
    assert not _differences(stored, got)


class _TopLevelNames(ast.NodeVisitor):
    """Names a cell binds in the notebook's namespace (not those local to its functions and comprehensions)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self.names.add(node.id)

    def _definition(self, node) -> None:
        self.names.add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def _import(self, node) -> None:
        self.names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}

    visit_Import = visit_ImportFrom = _import

    def _own_scope(self, node) -> None:
        pass

    visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _own_scope


def _bound(source: str) -> set[str]:
    visitor = _TopLevelNames()
    visitor.visit(ast.parse(source))
    return visitor.names


def _read_before_bound(source: str) -> set[str]:
    """Names a cell reads that it does not bind itself anywhere (so they come from earlier cells)."""
    tree = ast.parse(source)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    local |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    return read - local - _bound(source)


def test_expected_result_cells_read_no_name_that_a_later_cell_rebinds():
    cells = [c for c in load_solution().cells if c.cell_type == "code"]
    problems = []
    for index, cell in enumerate(cells):
        if EXPECTED_TAG not in cell_tags(cell):
            continue
        reads = _read_before_bound(cell.source)
        for later in cells[index + 1:]:
            rebound = reads & _bound(later.source)
            problems += [f"{cell['id']} reads {name}, which {later['id']} rebinds" for name in sorted(rebound)]
    assert not problems


def _shown(cell) -> tuple[str, list]:
    """What a cell shows: its printed text (however the kernel split it into stream messages), then
    its figures (PNG data) and errors, in order."""
    text = "".join(out.text for out in cell.outputs if out.output_type == "stream")
    rest = [("error", out.ename, out.evalue) if out.output_type == "error" else ("png", out.data["image/png"])
            for out in cell.outputs
            if out.output_type == "error" or "image/png" in out.get("data", {})]
    return text, rest


def test_expected_result_cells_show_the_same_when_run_again_after_the_last_cell():
    from nbclient import NotebookClient

    nb = load_solution()
    for cell in nb.cells:
        if "parameters" in cell_tags(cell):
            cell.source += "\n" + "\n".join(f"{k} = {v}" for k, v in GRADING_PARAMS.items())
    expected = [i for i, c in enumerate(nb.cells) if EXPECTED_TAG in cell_tags(c)]
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(SOLUTION_IPYNB.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        first = {i: _shown(nb.cells[i]) for i in expected}
        assert all(text or figures for text, figures in first.values())
        again = {}
        # Last to first, then first to last: each cell runs after every cell below it has run again too.
        for order in (expected[::-1], expected):
            for index in order:
                cell = copy.deepcopy(nb.cells[index])
                client.execute_cell(cell, index)
                again[(index, order[0])] = _shown(cell)
    changed = [f"{nb.cells[i]['id']} (pass starting at {nb.cells[start]['id']})"
               for (i, start), shown in again.items() if shown != first[i]]
    assert not changed, f"re-run after the last cell, these expected-result cells show something else: {changed}"
