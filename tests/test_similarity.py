"""The similarity report (issue 20): a copy with renamed variables is listed, and so is a copy of the
lesson's solution (issue 29); independent correct answers are not."""

from __future__ import annotations

import ast
import io
import tokenize

import nbformat
from bmnist_lesson import LESSON, TASK_FUNCTIONS
from bmnist_lesson.exercise import EXERCISE_IPYNB
from nbjudge import cli
from nbjudge.cells import answered
from nbjudge.notebook import SolutionCell, student_cells
from nbjudge.similarity import REPORT, SOLUTION_ROW, answer_code, find_pairs, scaffold_lines, similarity_report

from tests.fixtures.alternatives import ALTERNATIVES
from tests.test_platforms import write_export

NAMES = {name for group in TASK_FUNCTIONS.values() for name in group}
KEYWORDS = {"batch_size", "key", "stddev", "l2_reg", "weight_decay", "x_test", "y_test", "num_steps", "learning_rate",
            "eval_every", "threshold", "nonlinearity", "num_samples"}  # keyword-only: callers name them


def _rename(source: str) -> str:
    """The same code with every local variable and positional parameter renamed, as a copier would."""
    tree = ast.parse(source)
    local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    mapping = {name: f"my_{name[::-1]}_{i}" for i, name in enumerate(sorted(local - NAMES - KEYWORDS))}
    tokens = [tok._replace(string=mapping.get(tok.string, tok.string)) if tok.type == tokenize.NAME else tok
              for tok in tokenize.generate_tokens(io.StringIO(source).readline)]
    return "# my own work\n" + tokenize.untokenize(tokens)


def _notebook(answers: dict[int, str]) -> bytes:
    """The exercise with each task's stub cells replaced by an answer (task 4's two cells by one)."""
    nb = nbformat.read(EXERCISE_IPYNB, as_version=4)
    done = set()
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        task = next((int(t[5:]) for t in tags if t.startswith("task-") and t[5:].isdigit()), None)
        if cell.cell_type != "code" or task is None or "expected-result" in tags or "def " not in cell.source:
            continue
        cell.source = "" if task in done else answers[task]
        done.add(task)
    return nbformat.writes(nb).encode()


def _style(index: int) -> dict[int, str]:
    return {task: list(styles.values())[index % len(styles)] for task, styles in ALTERNATIVES.items()}


def test_a_copy_with_renamed_variables_is_flagged_and_independent_answers_are_not():
    scaffold = scaffold_lines(EXERCISE_IPYNB, task_functions=TASK_FUNCTIONS)
    notebooks = {f"student-{i}": _notebook(_style(i)) for i in range(4)}  # independent correct answers
    notebooks["copier"] = _notebook({task: "%matplotlib inline\n" * (task == 1) + _rename(source)
                                     for task, source in _style(0).items()})  # a magic does not hide a cell
    codes = {name: answer_code(data, task_functions=TASK_FUNCTIONS, scaffold=scaffold)
             for name, data in notebooks.items()}
    assert all(codes.values())
    assert not any("NotImplementedError" in code or '"""' in code for code in codes.values())  # scaffolding gone
    pairs = find_pairs(codes)
    assert [(p.first, p.second) for p in pairs] == [("copier", "student-0")]
    assert pairs[0].similarity > 0.9
    assert any("jax.random.permutation" in line for line in pairs[0].shared)
    everything = find_pairs(codes, threshold=0.0)  # the independent pairs share little
    assert max(p.similarity for p in everything if "copier" not in (p.first, p.second)) < 0.3


def test_the_exercise_itself_has_no_answer_code():
    scaffold = scaffold_lines(EXERCISE_IPYNB, task_functions=TASK_FUNCTIONS)
    assert answer_code(EXERCISE_IPYNB.read_bytes(), task_functions=TASK_FUNCTIONS, scaffold=scaffold) == ""


def test_bmnist_grade_similarity_on_a_zip_export_writes_a_report_not_grades(tmp_path, capsys):
    files = {f"Student {i}_{100 + i}_assignsubmission_file_/binary_mnist.ipynb": _notebook(_style(i)) for i in range(3)}
    files["Student 9_109_assignsubmission_file_/binary_mnist.ipynb"] = _notebook(
        {task: _rename(source) for task, source in _style(1).items()})
    export = write_export(tmp_path / "export", files, as_zip=True)
    assert cli.main(["similarity", str(export), "--out", str(tmp_path / "report")]) == 0
    assert "1 pair(s) at or above 60%" in capsys.readouterr().out
    report = (tmp_path / "report" / REPORT).read_text()
    assert "## Student_1_101 and Student_9_109: " in report and report.count("\n## ") == 1
    assert "never a grade" in report
    # similarity.json: the pairs, for the class report
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted([REPORT, "similarity.json"])


def test_a_copy_of_the_solution_with_renamed_variables_is_listed_first(tmp_path):
    """A student who found the solution: its answers, renamed and reformatted, match the lesson's
    solution, and the report says so before the pairs; independent answers do not match it."""
    nb = nbformat.read(LESSON.solution, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and any(t.startswith("task-") for t in tags) and "expected-result" not in tags:
            cell.source = _rename(cell.source)
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "finder.ipynb").write_text(nbformat.writes(nb))
    for i in (1, 2):
        (klass / f"student-{i}.ipynb").write_bytes(_notebook(_style(i)))
    pairs = similarity_report([klass], out=tmp_path / "report", exercise=EXERCISE_IPYNB,
                              task_functions=TASK_FUNCTIONS, solution=LESSON.solution, log=lambda line: None)
    found = [p for p in pairs if SOLUTION_ROW in (p.first, p.second)]
    assert [(p.first, p.second) for p in found] == [(SOLUTION_ROW, "finder")] and found[0].similarity > 0.9
    report = (tmp_path / "report" / REPORT).read_text()
    assert "## Answers that match the lesson's solution" in report
    assert report.index("finder") < report.index(f"## {SOLUTION_ROW} and finder")


def test_the_grader_and_the_similarity_report_agree_on_what_is_an_answer():
    """One test of an answer cell (:func:`nbjudge.cells.answered`): a cell that binds a task function by
    an import, and one that binds it by an annotated assignment, are answers for both."""
    functions = {"mlp": 1, "loss_fn": 2}
    cells = ["from my_helpers import mlp\nprint('imported')", "loss_fn: object = make_loss(mlp)",
             "def helper(x):\n    return x", "%%time\nloss_fn: object = None"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    code = answer_code(nbformat.writes(nb).encode(), task_functions={1: ["mlp"], 2: ["loss_fn"]}, scaffold=frozenset())
    solution = [SolutionCell("a1", "def mlp(): ...", ("task-1",)),
                SolutionCell("a2", "def loss_fn(): ...", ("task-2",))]
    slots = student_cells([(source, None, []) for source in cells], solution, functions=functions, instructor=set())
    graded = {cell.source: cell.task for slot in slots.values() for cell in slot}
    assert [answered(source, functions) for source in cells] == [[1], [2], [], [2]]
    assert graded == {cells[0]: 1, cells[1]: 2, cells[2]: None, cells[3]: 2}
    assert "from my_helpers import mlp" in code and "loss_fn: object = make_loss(mlp)" in code
    assert "def helper" not in code  # not an answer for either
