"""Generate the student exercise from the solution notebook (nbdev/nbgrader style).

Instructor tooling (``bmnist-lesson``). ``solutions/binary_mnist.py`` is the single source. Every
answer in it sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` inside a function; the generator replaces each
such region with a stub that raises ``NotImplementedError("TODO: ...")``, clears every output,
drops solution-only cells, writes what the student's self-check compares with into the
metadata (:mod:`.self_check_data`), puts beside each expected-result cell a markdown copy of the output
stored in ``solutions/binary_mnist.ipynb`` (text in a fenced block, figures as image
attachments), and writes ``notebooks/binary_mnist.py`` and ``.ipynb`` exactly as Jupytext's
contents manager would save them, so that opening them in JupyterLab changes nothing. Command
line::

    python -m bmnist_lesson.exercise                       # regenerate the exercise
    python -m bmnist_lesson.exercise --check               # exit 1 if the exercise is stale
    python -m bmnist_lesson.exercise --execute-solution    # re-run the solution, store outputs
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from pathlib import Path

import nbformat
from nbjudge import write_atomic
from nbjudge.lessons import STUB_MARK
from nbjudge.tags import EXPECTED_TAG, cell_tags, task_of

from .files import CHECKOUT, SOLUTION_PY, in_checkout, solution_notebook
from .self_check_data import add_self_check, is_verdict, self_check_differs

__all__ = [
    "BEGIN",
    "END",
    "EXPECTED_TAG",
    "SOLUTION_ONLY_TAG",
    "ExerciseError",
    "build_exercise",
    "cell_tags",
    "execute_solution",
    "exercise_files",
    "expected_copy",
    "load_solution",
    "solution_regions",
    "strip_solutions",
    "task_of",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SOLUTION_ONLY_TAG = "solution-only"
# The generator works in a checkout: the sources are solutions/ and it writes notebooks/.
ROOT = CHECKOUT
SOLUTION_IPYNB = solution_notebook()
EXERCISE_PY = ROOT / "notebooks" / "binary_mnist.py"
EXERCISE_IPYNB = ROOT / "notebooks" / "binary_mnist.ipynb"
_KERNELSPEC = {"display_name": "bmnist", "language": "python", "name": "bmnist"}
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n(.*?)^[ \t]*{re.escape(END)}[^\n]*$", re.M | re.S)
_DEF = re.compile(r"^[ \t]*def (\w+)\(", re.M)


class ExerciseError(ValueError):
    """The solution cannot be turned into an exercise; the message names the cell and the fix."""


def solution_regions(source: str) -> list[str]:
    """Return the code between each pair of solution markers, in order.

    :param source: Cell or file source.
    """
    return [m.group(2) for m in _REGION.finditer(source)]


def check_regions(source: str, *, cell_id: str = "?") -> None:
    """Check that every solution region is terminated, not nested and inside a function body.

    :param source: Cell source.
    :param cell_id: Name of the cell, quoted in the error.
    :raises ExerciseError: The first problem found, naming the cell and the line.
    """
    marks = []
    for number, line in enumerate(source.splitlines(), 1):
        if BEGIN in line or END in line:
            marks.append((number, BEGIN in line))
    open_line: int | None = None
    regions: list[tuple[int, int]] = []
    for number, is_begin in marks:
        if is_begin and open_line is not None:
            raise ExerciseError(
                f"cell {cell_id}, line {number}: a solution region starts inside the one opened on line "
                f"{open_line}; regions cannot nest. Close the first with `{END}` before opening another."
            )
        if is_begin:
            open_line = number
        elif open_line is None:
            raise ExerciseError(f"cell {cell_id}, line {number}: `{END}` without a `{BEGIN}` before it.")
        else:
            regions.append((open_line, number))
            open_line = None
    if open_line is not None:
        raise ExerciseError(
            f"cell {cell_id}, line {open_line}: the solution region is never closed; add `{END}` after the answer."
        )
    if not regions:
        return
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ExerciseError(f"cell {cell_id}, line {exc.lineno}: not valid Python ({exc.msg}).") from exc
    lines = source.splitlines()
    bodies = [
        (node.body[0].lineno, _body_end(lines, node))
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    for first, last in regions:
        if not any(start <= first and last <= end for start, end in bodies):
            raise ExerciseError(
                f"cell {cell_id}, lines {first}-{last}: the solution region is not inside a function body; "
                "the exercise replaces a region by `raise NotImplementedError`, which only makes sense as a "
                "function's body. Move the answer into a function."
            )


def _body_end(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Last line of a function body, counting the comments indented under it after its last statement."""
    end = node.end_lineno or node.lineno
    while end < len(lines):
        line = lines[end]
        indent = len(line) - len(line.lstrip())
        if line.strip() and not (line.strip().startswith("#") and indent > node.col_offset):
            break
        end += 1
    return end


def strip_solutions(source: str, *, task: int | None = None, cell_id: str = "?") -> str:
    """Replace every solution region by a ``raise NotImplementedError("TODO: ...")`` stub.

    :param source: Cell source with ``### BEGIN SOLUTION`` / ``### END SOLUTION`` regions.
    :param task: Task number, quoted in the TODO message.
    :param cell_id: Name of the cell, quoted in errors.
    :returns: The source with stubs, indented like the regions they replace.
    :raises ExerciseError: An unterminated or nested region, or one outside a function.
    """
    check_regions(source, cell_id=cell_id)

    def stub(match: re.Match) -> str:
        names = _DEF.findall(source[: match.start()])
        where = f" {names[-1]}" if names else ""
        label = f"{STUB_MARK} {task}," if task is not None else STUB_MARK  # the engine finds the task by it
        return f'{match.group(1)}raise NotImplementedError("{label}{where}")'

    return _REGION.sub(stub, source)


def _cell_id(index: int, cell) -> str:
    named = [t for t in cell_tags(cell) if t.startswith("er-")]
    return named[0] if named else f"cell-{index:02d}"


# jupytext is imported where it is used: the grader's workers import this module for its tag names
# only, and importing jupytext costs them half a second each.


def _jupytext_config():
    from jupytext.config import load_jupytext_config

    return load_jupytext_config(str(SOLUTION_PY.parent))


def _as_jupyter_saves(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give the notebook the jupytext metadata that Jupytext's contents manager adds on opening."""
    config = _jupytext_config()
    if config is not None:
        metadata = nb.metadata.setdefault("jupytext", {})
        config.set_default_format_options(metadata, read=True)
    return nb


def _as_javascript_numbers(value):
    """``value`` with every whole float as an int: what a JSON value becomes after a trip through
    the browser (JavaScript has one number type, and ``JSON.stringify(1.0)`` is ``1``).

    JupyterLab sends the notebook it saves as JSON that JavaScript wrote, so a widget state stored
    as ``"max": 1.0`` comes back as ``"max": 1``. Other numbers survive the trip unchanged (both
    sides write the shortest text that reads back as the same double).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return type(value)({key: _as_javascript_numbers(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_as_javascript_numbers(item) for item in value]
    return value


def _ipynb_text(nb: nbformat.NotebookNode) -> str:
    """The ``.ipynb`` text as JupyterLab saves it: no text representation, one-space indent, a final
    newline, and numbers as the browser writes them (see :func:`_as_javascript_numbers`)."""
    from jupytext.jupytext import drop_text_representation_metadata

    text = nbformat.writes(_as_javascript_numbers(drop_text_representation_metadata(nb)))
    return text if text.endswith("\n") else text + "\n"


def _py_text(nb: nbformat.NotebookNode) -> str:
    """The py:percent text as Jupytext's contents manager saves it (with the repository's configuration)."""
    import jupytext

    return jupytext.writes(nb, fmt="py:percent", config=_jupytext_config())


def load_solution(path: Path = SOLUTION_PY) -> nbformat.NotebookNode:
    """Read the solution script as a notebook with stable cell ids (``er-*`` tag or position).

    :param path: The py:percent source.
    """
    import jupytext

    nb = jupytext.read(path)
    for index, cell in enumerate(nb.cells):
        cell["id"] = _cell_id(index, cell)
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    return _as_jupyter_saves(nb)


def _note(source: Path) -> nbformat.NotebookNode:
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    return nbformat.v4.new_markdown_cell(
        f"<sub>The kit's exercise is generated from `{rel}` by `make exercise` (`python -m bmnist_lesson.exercise`); "
        "instructors change the solution and regenerate. `make lab` gives a student a copy of it to work in, "
        "`work/binary_mnist.ipynb`, which no update of the kit overwrites.</sub>",
        id="generated-note",
    )


def _fence(text: str) -> str:
    ticks = max([3, *(len(run) + 1 for run in re.findall(r"`{3,}", text))])
    return f"{'`' * ticks}text\n{text.rstrip()}\n{'`' * ticks}"


def expected_copy(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A markdown cell that shows the stored output of an expected-result cell, to sit beside it.

    Text (printed output and plain results) goes into fenced blocks, figures into PNG attachments
    of the markdown cell, in the order the cell produced them. Unlike an output, the copy stays
    when outputs are cleared, when Run All stops at an error, and when the cell is run again.

    :param cell: An executed expected-result code cell with an ``id``.
    :returns: The markdown cell, with id ``<cell id>-expected``.
    :raises ExerciseError: The cell has no stored output, or an error output.
    """
    cell_id = cell.get("id", "?")
    if not cell.get("outputs"):
        raise ExerciseError(
            f"cell {cell_id} is an expected-result cell without a stored output; run `make solution` "
            "(it executes the solution and stores its outputs), then `make exercise`."
        )
    parts: list[str] = []
    text: list[str] = []
    attachments: dict[str, dict[str, str]] = {}

    def flush() -> None:
        if "".join(text).strip():
            parts.append(_fence("".join(text)))
        text.clear()

    for out in cell.outputs:
        if is_verdict(out):  # the self-check's line under the cell, not the cell's output
            continue
        if out.output_type == "error":
            raise ExerciseError(
                f"cell {cell_id} stored an error ({out.ename}) as its expected result; fix the solution "
                "and run `make solution`."
            )
        if out.output_type == "stream":
            text.append(out.text)
            continue
        data = out.get("data", {})
        if "image/png" in data:
            flush()
            name = f"{cell_id}-{len(attachments) + 1}.png"
            attachments[name] = {"image/png": data["image/png"].replace("\n", "")}
            parts.append(f"![{name}](attachment:{name})")
        elif "text/plain" in data:
            text.append(data["text/plain"].rstrip("\n") + "\n")
    flush()
    head = "**The instructor's output** of the cell above, for comparison (it stays when outputs are cleared):"
    copy_cell = nbformat.v4.new_markdown_cell("\n\n".join([head, *parts]), id=f"{cell_id}-expected")
    if attachments:
        copy_cell["attachments"] = attachments
    return copy_cell


def build_exercise(solution: nbformat.NotebookNode, *, source: Path = SOLUTION_PY) -> nbformat.NotebookNode:
    """Turn an executed solution notebook into the exercise notebook.

    :param solution: The solution notebook, with its stored outputs.
    :param source: Path named in the generated-file note at the end.
    :returns: A new notebook: stubs instead of answers, no outputs, and a static copy of the
        stored output beside every expected-result cell.
    :raises ExerciseError: A bad solution region, or an expected-result cell without output.
    """
    exercise = copy.deepcopy(solution)
    cells = []
    for cell in exercise.cells:
        tags = cell_tags(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        cell.source = strip_solutions(cell.source, task=task_of(cell), cell_id=cell.get("id", "?"))
        static = expected_copy(cell) if EXPECTED_TAG in tags else None
        cell.outputs = []
        cell.execution_count = None
        cells.append(cell)
        if static is not None:
            cells.append(static)
    exercise.cells = [*cells, _note(source)]
    add_self_check(exercise, solution)
    exercise.metadata.pop("widgets", None)  # widget state belongs to the solution's outputs
    return exercise


def _with_outputs(source_nb: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution source with the outputs of the stored executed notebook, matched by cell id."""
    stored = {c["id"]: c for c in executed.cells if c.cell_type == "code"}
    for cell in source_nb.cells:
        if cell.cell_type == "code" and cell["id"] in stored and stored[cell["id"]].source == cell.source:
            cell.outputs = stored[cell["id"]].outputs
            cell.execution_count = stored[cell["id"]].execution_count
    if "language_info" in executed.metadata:  # Lab writes it on opening; keep it so that opening changes nothing
        source_nb.metadata["language_info"] = executed.metadata["language_info"]
    return source_nb


def exercise_files() -> dict[Path, str]:
    """The exercise files as they should be, built from the solution script and notebook.

    :returns: ``{path: text}`` for ``notebooks/binary_mnist.py`` and ``.ipynb``.
    :raises ExerciseError: See :func:`build_exercise`.
    """
    solution = _with_outputs(load_solution(), nbformat.read(SOLUTION_IPYNB, as_version=4))
    exercise = build_exercise(solution)
    return {EXERCISE_IPYNB: _ipynb_text(exercise), EXERCISE_PY: _py_text(exercise)}


def solution_script_text() -> str:
    """The solution script as Jupytext saves it (the source, with the header Jupytext writes)."""
    return _py_text(load_solution())


def execute_solution(*, timeout: int = 600, again: bool = True) -> nbformat.NotebookNode:
    """Run the solution script in a fresh kernel and store it, outputs included, as the ``.ipynb``;
    give the script the header Jupytext writes. Run once more where its self-check saw other lines.

    :param timeout: Seconds allowed per cell.
    :param again: Whether a second run is allowed.
    :returns: The executed notebook.
    """
    from nbclient import NotebookClient

    nb = load_solution()
    resources = {"metadata": {"path": str(ROOT / "solutions")}}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    write_atomic(SOLUTION_IPYNB, _ipynb_text(nb))
    script = solution_script_text()
    if SOLUTION_PY.read_text(encoding="utf-8") != script:
        write_atomic(SOLUTION_PY, script)
    if again and self_check_differs(nb):
        for path, text in exercise_files().items():
            write_atomic(path, text)
        return execute_solution(timeout=timeout, again=False)
    return nb


def stale_files() -> list[Path]:
    """Return the generated files whose content differs from a fresh generation (and the solution
    script, when its header is not the one Jupytext writes)."""
    stale = [p for p, text in exercise_files().items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if SOLUTION_PY.read_text(encoding="utf-8") != solution_script_text():
        stale.append(SOLUTION_PY)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bmnist_lesson.exercise", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed exercise is stale")
    parser.add_argument("--execute-solution", action="store_true", help="re-run the solution and store its outputs")
    args = parser.parse_args(argv)
    if not in_checkout():
        print("error: generating the exercise needs the instructor's checkout of the repository (its source "
              "is solutions/binary_mnist.py)", file=sys.stderr)
        return 2
    try:
        if args.execute_solution:
            execute_solution()
            print(f"executed {SOLUTION_IPYNB.relative_to(ROOT)}")
            return 0
        if args.check:
            stale = stale_files()
            for path in stale:
                fix = "`make solution`" if path == SOLUTION_PY else "`make exercise`"
                print(f"stale: {path.relative_to(ROOT)} (run {fix})", file=sys.stderr)
            return 1 if stale else 0
        for path, text in exercise_files().items():
            write_atomic(path, text)
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    except ExerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
