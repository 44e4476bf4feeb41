"""The generated exercise: current, stubs that raise, and the answers put back pass."""

from __future__ import annotations

import re

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from bmnist_helpers import exercise
from tests.conftest import ROOT

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


def test_stored_outputs_are_clean():
    for cell in _stored(exercise.SOLUTION_IPYNB).cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", cell["id"]
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (cell["id"], out["text"][:200])
            text = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            assert "Warning" not in text and "findfont" not in text, cell["id"]
    expected = [c for c in _stored(exercise.SOLUTION_IPYNB).cells if exercise.EXPECTED_TAG in exercise.cell_tags(c)]
    assert len(expected) == 6
    assert all(any("image/png" in o.get("data", {}) for o in c.outputs) for c in expected)


def test_exercise_shape():
    nb = _stored(exercise.EXERCISE_IPYNB)
    header = nb.cells[0].source
    assert "DO NOT EDIT" in header and "solutions/binary_mnist.py" in header and "make exercise" in header
    text = exercise.EXERCISE_PY.read_text()
    assert exercise.BEGIN not in text and exercise.END not in text
    assert sorted(int(n) for n in _STUB.findall(text)) == [1, 2, 2, 3, 4, 5]
    for cell in nb.cells:
        tags = exercise.cell_tags(cell)
        assert exercise.SOLUTION_ONLY_TAG not in tags
        if cell.cell_type == "code":
            assert bool(cell.outputs) == (exercise.EXPECTED_TAG in tags), cell["id"]
    assert '"""Yield shuffled training batches forever' in text  # docstrings kept
    assert "def train(params, batches, *, x_test, y_test," in text  # signatures kept


def test_strip_solutions_rejects_unbalanced_markers():
    with pytest.raises(ValueError, match="unbalanced"):
        exercise.strip_solutions("def f():\n    ### BEGIN SOLUTION\n    return 1\n")


def _put_back(nb, *, except_task=None):
    return exercise.put_back_solutions(nb, exercise.load_solution(), except_task=except_task)


def _run(nb, **kwargs):
    resources = {"metadata": {"path": str(ROOT / "notebooks")}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources, **kwargs).execute()
    return nb


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


def test_untouched_exercise_raises_on_task_1_first():
    nb = _stored(exercise.EXERCISE_IPYNB)
    _run(nb, allow_errors=True)
    errors = [(c["id"], o.ename, o.evalue) for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors[0][1:] == ("NotImplementedError", "TODO: task 1, train_dataloader")


def _texts(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_answers_put_back_reproduce_the_expected_results():
    stored = _stored(exercise.EXERCISE_IPYNB)
    nb = _run(_put_back(_stored(exercise.EXERCISE_IPYNB)))
    expected = [c for c in stored.cells if exercise.EXPECTED_TAG in exercise.cell_tags(c)]
    ran = {c["id"]: c for c in nb.cells}
    for cell in expected:
        assert _texts(ran[cell["id"]]) == _texts(cell), cell["id"]
    assert jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")  # still a valid script
