"""The generated exercise: current, stubs that raise, and the answers put back pass."""

from __future__ import annotations

import base64
import re

import jupytext
import nbformat
import pytest
from bmnist_lesson import exercise
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import ROOT
from tests.solved import put_back_solutions

_STUB = re.compile(r'^[ \t]*raise NotImplementedError\("TODO: task (\d+), \w+"\)$', re.M)


def _stored(path):
    return nbformat.read(path, as_version=4)


def test_committed_exercise_is_current():
    assert exercise.stale_files() == [], "run `make exercise` and commit the result"


def test_solution_notebook_outputs_come_from_the_current_source():
    stored = {c["id"]: c for c in _stored(exercise.SOLUTION_IPYNB).cells}
    for cell in exercise.load_solution().cells:
        assert stored[cell["id"]].source == cell.source, f"{cell['id']}: run `make solution`"
        if cell.cell_type == "code" and "explore" not in exercise.cell_tags(cell):
            assert stored[cell["id"]].get("execution_count"), f"{cell['id']} has no stored run"


def _expected_cells(nb):
    return [c for c in nb.cells if exercise.EXPECTED_TAG in exercise.cell_tags(c)]


def _has_png(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_stored_outputs_are_clean():
    for cell in _stored(exercise.SOLUTION_IPYNB).cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", cell["id"]
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (cell["id"], out["text"][:200])
            text = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            assert "Warning" not in text and "findfont" not in text, cell["id"]
    expected = _expected_cells(_stored(exercise.SOLUTION_IPYNB))
    assert [c["id"] for c in expected] == [
        "er-dataloader", "er-test-images", "er-untrained", "er-gradients", "er-update-step", "er-training",
        "er-examples",
    ]
    assert [c["id"] for c in expected if not _has_png(c)] == ["er-update-step"]  # the others draw figures


def test_exercise_shape():
    nb = _stored(exercise.EXERCISE_IPYNB)
    assert nb.cells[0].source.startswith("# Telling 1 from 7")  # the lesson's title comes first
    note = nb.cells[-1]
    assert note["id"] == "generated-note"
    assert "solutions/binary_mnist.py" in note.source and "make exercise" in note.source
    assert "DO NOT EDIT" not in exercise.EXERCISE_PY.read_text()
    text = exercise.EXERCISE_PY.read_text()
    assert exercise.BEGIN not in text and exercise.END not in text
    assert sorted(int(n) for n in _STUB.findall(text)) == [1, 2, 2, 3, 4, 4, 5]
    assert 'raise NotImplementedError("TODO: task 4, make_update_step")' in text
    for cell in nb.cells:
        tags = exercise.cell_tags(cell)
        assert exercise.SOLUTION_ONLY_TAG not in tags
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell["id"]  # outputs are the student's
    assert "Solution notebook" not in text  # the solution's banner stays in the solution
    assert '"""Yield shuffled training batches forever' in text  # docstrings kept
    assert "def train(params, batches, *, x_test, y_test," in text  # signatures kept
    assert "def make_update_step(optimizer, *, weight_decay):" in text


def _copy_of(nb, cell_id):
    index = next(i for i, c in enumerate(nb.cells) if c.get("id") == cell_id)
    return nb.cells[index + 1]


def _fenced_text(markdown: str) -> str:
    return "".join(body + "\n" for _, body in re.findall(r"^(`{3,})text\n(.*?)\n\1$", markdown, re.M | re.S))


def _shown_images(cell) -> list[bytes]:
    """The PNG images a markdown cell shows through ``attachment:`` links, decoded."""
    names = re.findall(r"!\[[^\]]*\]\(attachment:([^)]+)\)", cell.source)
    attachments = cell.get("attachments", {})
    return [base64.b64decode(attachments[name]["image/png"]) for name in names]


def _printed(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def test_each_expected_result_has_a_static_copy_of_the_instructors_output():
    solution = _stored(exercise.SOLUTION_IPYNB)
    nb = _stored(exercise.EXERCISE_IPYNB)
    for cell in _expected_cells(solution):
        copy = _copy_of(nb, cell["id"])
        assert copy.cell_type == "markdown" and copy["id"] == f"{cell['id']}-expected"
        assert _fenced_text(copy.source) == _printed(cell), cell["id"]
        images = _shown_images(copy)
        stored = [base64.b64decode(o.data["image/png"]) for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images == stored, cell["id"]
        assert all(png.startswith(b"\x89PNG") for png in images)
    nbformat.validate(nb)  # attachments are valid nbformat 4


def _bad_solution(source, *, outputs=True):
    cell = nbformat.v4.new_code_cell(source, id="er-broken")
    cell.metadata["tags"] = ["expected-result", "task-1", "er-broken"]
    if outputs:
        cell.outputs = [nbformat.v4.new_output("stream", text="ok\n")]
    return nbformat.v4.new_notebook(cells=[cell])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", r"cell er-broken, line 2: .*never closed"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
         "    ### END SOLUTION\n", r"cell er-broken, line 3: .*cannot nest"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", r"cell er-broken, lines 1-3: .*not inside a function"),
        ("def f():\n    return 1\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "not inside a function"),
        ("x = 1\n### END SOLUTION\n", r"cell er-broken, line 2: .*without a"),
    ],
)
def test_bad_solution_regions_are_refused_naming_the_cell(source, message):
    with pytest.raises(exercise.ExerciseError, match=message):
        exercise.build_exercise(_bad_solution(source))


def test_expected_result_without_stored_output_is_refused():
    with pytest.raises(exercise.ExerciseError, match=r"cell er-broken .*without a stored output.*make solution"):
        exercise.build_exercise(_bad_solution("print(1)\n", outputs=False))


def test_the_command_line_reports_bad_input_without_a_traceback(monkeypatch, capsys):
    bad = _bad_solution("x = 1\n", outputs=False)
    monkeypatch.setattr(exercise, "exercise_files", lambda: exercise.build_exercise(bad))
    assert exercise.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cell er-broken") and "Traceback" not in err


def _put_back(nb, *, except_task=None):
    return put_back_solutions(nb, exercise.load_solution(), except_task=except_task)


def _run(nb, **kwargs):
    resources = {"metadata": {"path": str(ROOT / "notebooks")}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources, **kwargs).execute()
    return nb


@pytest.mark.notebook
@pytest.mark.parametrize("task", [1, 2, 3, 4, 5])
def test_each_todo_raises_not_implemented(task):
    nb = _put_back(_stored(exercise.EXERCISE_IPYNB), except_task=task)
    for cell in nb.cells:  # explore cells would start training in the background; not needed here
        if "explore" in exercise.cell_tags(cell):
            cell.source = ""
    with pytest.raises(CellExecutionError) as info:
        _run(nb)
    assert info.value.ename == "NotImplementedError"
    assert f"TODO: task {task}," in info.value.evalue


@pytest.mark.notebook
def test_run_all_keeps_the_expected_results_visible():
    """Run All as JupyterLab does it: run until the first error, clear the outputs of the rest."""
    nb = _stored(exercise.EXERCISE_IPYNB)
    with pytest.raises(CellExecutionError) as info:
        _run(nb)
    assert (info.value.ename, info.value.evalue) == ("NotImplementedError", "TODO: task 1, train_dataloader")
    failed = next(i for i, c in enumerate(nb.cells) if any(o.output_type == "error" for o in c.get("outputs", [])))
    assert nb.cells[failed]["id"] == "er-dataloader"
    for cell in nb.cells[failed + 1 :]:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    saved = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in _expected_cells(_stored(exercise.SOLUTION_IPYNB)):
        copy = _copy_of(saved, cell["id"])
        assert _fenced_text(copy.source) == _printed(cell), cell["id"]
        assert bool(_shown_images(copy)) == _has_png(cell), cell["id"]


@pytest.mark.notebook
def test_answers_put_back_reproduce_the_expected_results():
    solution = {c["id"]: c for c in _expected_cells(_stored(exercise.SOLUTION_IPYNB))}
    nb = _run(_put_back(_stored(exercise.EXERCISE_IPYNB)))
    ran = {c["id"]: c for c in nb.cells}
    for cell_id, cell in solution.items():
        assert _printed(ran[cell_id]) == _printed(cell), cell_id
        assert _has_png(ran[cell_id]) == _has_png(cell), cell_id
    script = jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")  # still a valid script
    assert [c.source for c in script.cells if c.cell_type == "code"] == [c.source for c in nb.cells
                                                                         if c.cell_type == "code"]
