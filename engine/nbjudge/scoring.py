"""Scoring one run: the verdict on each hidden check (:func:`.lessons.judge`), the comparison of
each expected-result cell's text with the reference run's, the status (:func:`.status.decide`),
then the points, once.

An expected-result cell's text is its own printed lines (and any output from outside its code),
line for line; what the student's functions print while the cell runs is recorded apart by the
worker, never compared, and named in the feedback as ignored. Nothing here renders a file.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Mapping

from .events import CellError, CellRecord, CopyCell, JobRun, run_of
from .figures import figures_of
from .grades import Failure, Grade, Ignored, Marking, OwnError, Reference
from .lessons import Lesson, judge
from .plan import Plan
from .run import RunResult
from .sanitize import Rules, sanitize, sanitizers
from .status import decide
from .values import MalformedValues, decode_values

__all__ = ["mark_follows", "marked_diff", "probe_values", "reference_from_run", "score"]

_TRUNCATE = 1500
_DIFF_LINES, _DIFF_CHARS = 200, 300  # a diff compares at most these many lines, each cut to so many characters
_VOID = ("invalid-notebook", "sandbox-error")  # statuses of a run that graded nothing: no point, no failure
_MALFORMED = ("the check's values were malformed or sent more than once (does code in your notebook "
              "display output after every cell?)")

Values = object  # decoded values, "malformed", or None


def probe_values(record: CellRecord | None) -> Values:
    """A probe cell's decoded values: ``None`` where none came, ``"malformed"`` where they cannot be
    read or came more than once (something else in the kernel sent some)."""
    if not record or not record.get("values_count"):
        return None
    if record["values_count"] != 1 or record.get("values") is None:
        return "malformed"
    try:
        return decode_values(record["values"])
    except (MalformedValues, RecursionError):
        return "malformed"


def reference_from_run(result: RunResult, plan: Plan) -> Reference:
    """Collect the reference run's expected texts and hidden values; refuse a broken reference.

    :param result: The run of the solution's own grading copy.
    :param plan: The run's plan.
    :raises ValueError: The solution does not pass its own grading copy.
    """
    run = run_of(result.events)
    copy, records = run.cells, run.records
    broken = [f"{c['name'] or c['role']} ({records[i]['status'] if i in records else 'not run'})"
              for i, c in enumerate(copy) if i not in records or records[i]["status"] != "ok"]
    if not copy or broken or result.timed_out:
        raise ValueError("the solution itself does not run cleanly in its grading copy: "
                         + (", ".join(broken[:5]) or "no cells ran") + f"; check --param values.\n{result.log[-2000:]}")
    rules = sanitizers(plan.lesson.sanitize)
    expected = [(i, c) for i, c in enumerate(copy) if c["expected"]]
    texts = {c["name"]: sanitize(records[i].get("text", ""), rules) for i, c in expected}
    tasks = {c["name"]: _task(c) for _, c in expected}
    ignored = {c["name"]: sanitize(records[i].get("ignored", ""), rules) for i, c in expected}
    values = {_task(c): probe_values(records[i]) for i, c in enumerate(copy) if c["role"] == "probe"}
    checks = {check.task: check for check in plan.lesson.checks}
    for task, value in values.items():
        verdict = judge(checks[task], plan.inputs[task], value, value)
        if verdict is not None:
            raise ValueError(f"the solution fails its own hidden check of task {task}: {verdict}")
    return Reference(texts=texts, tasks=tasks, values=values, ignored=ignored, figures=figures_of(result.events))


def _task(cell: CopyCell) -> int:
    """The task of a cell that has one (a probe, an expected-result cell)."""
    assert cell["task"] is not None, cell
    return cell["task"]


def marked_diff(expected: str, got: str) -> str:
    """An ndiff of the two texts (``-`` expected, ``+`` got), on bounded input (ndiff takes
    quadratic time and more), without its ``?`` hint lines, cut to :data:`_TRUNCATE` characters."""
    def cut(text: str) -> list[str]:
        return [line[:_DIFF_CHARS] for line in text.splitlines()[:_DIFF_LINES]]

    lines = difflib.ndiff(cut(expected), cut(got))
    return _cut("\n".join(line for line in lines if not line.startswith("?")))


def _cut(text: str) -> str:
    return text if len(text) <= _TRUNCATE else text[:_TRUNCATE] + f"\n... ({len(text) - _TRUNCATE} more characters)"


def _error_line(record: CellRecord) -> str:
    error: CellError | dict[str, str] = record.get("error") or {}
    evalue = str(error.get("evalue", "")).strip().splitlines()
    return f"{error.get('ename', 'Error')}: {evalue[-1] if evalue else ''}".strip()


def _stub_of(message: str, lesson: Lesson) -> int | None:
    """The task whose stub raised, where a message says one did (:attr:`.lessons.Lesson.stub`: the
    text a stub raises, which also stands where a stub sits inside a function the student kept)."""
    found = lesson.stub.search(message)
    return int(found.group(1)) if found else None


def _blame(record: CellRecord, task: int | None, plan: Plan, hidden_ok: dict[int, bool]) -> str:
    """Say when a cell failed because of another task: a stub of another task raised, or a name
    is missing that an earlier cell makes from tasks whose checks failed."""
    error: CellError | dict[str, str] = record.get("error") or {}
    text = f"{error.get('ename', '')}: {error.get('evalue', '')}"[:4000]
    todo = _stub_of(text, plan.lesson)
    if todo is not None and todo != task:
        return f"This cell needs task {todo}, which is not done yet."
    missing = re.search(r"name '(\w+)' is not defined", text)
    if missing:
        name = missing.group(1)
        owner = plan.lesson.function_tasks().get(name)
        if owner is not None and owner != task:
            return f"This cell needs `{name}` from task {owner}, which is missing."
        failed = sorted(t for t in plan.name_tasks.get(name, ()) if t != task and not hidden_ok.get(t, False))
        if owner is None and failed:
            return f"This cell needs task {', '.join(map(str, failed))}, which is not done yet."
    return ""


def _hidden_verdict(cell: CopyCell, record: CellRecord | None, reference: Reference, plan: Plan, *,
                    stubbed: frozenset[int], cell_timeout_s: int) -> str | None:
    """The verdict on one hidden check: ``None`` where it passed, else the student's message."""
    task = _task(cell)
    if task in stubbed:  # whatever the kernel sent: a hook can forge values, not an answer
        return (f"task {task} is not answered: a function of it is still the exercise's stub (it only "
                "raises NotImplementedError)")
    if record is not None and record["status"] == "timeout":
        return f"the check ran past the {cell_timeout_s} s limit and was interrupted"
    got = probe_values(record)
    if got == "malformed":
        return _MALFORMED
    checks = {c.task: c for c in plan.lesson.checks}
    return judge(checks[task], plan.inputs[task], got, reference.values[task])


def _expected_failure(cell: CopyCell, record: CellRecord | None, reference: Reference, plan: Plan,
                      hidden_ok: dict[int, bool], rules: Rules) -> Failure | None:
    """What went wrong in one expected-result cell, or ``None`` when its text equals the reference's."""
    task, name = _task(cell), cell["name"]
    expected = reference.texts.get(name, "")
    if record is None:
        return {"task": task, "kind": "expected", "cell": name, "message": "not run"}
    got = sanitize(record.get("text", ""), rules)
    if record["status"] == "ok" and got == expected:
        return None
    message = ""
    if record["status"] == "error":
        message = f"raised {_error_line(record)}. {_blame(record, task, plan, hidden_ok)}".strip()
    elif record["status"] != "ok":
        message = {"timeout": "ran past its time limit", "dead": "the kernel died here"}.get(
            record["status"], "the job was stopped here")
    return {"task": task, "kind": "expected", "cell": name, "message": message or "the output differs",
            "diff": marked_diff(expected, got)}


def _own_lines(record: CellRecord | None, helpers: str, rules: Rules) -> int:
    """How many lines the student's code printed while an expected-result cell ran: the cell's
    ignored output, sanitized, less the lines the reference run printed there too (its helpers')."""
    if not record:
        return 0
    printed = Counter(sanitize(str(record.get("ignored", "")), rules).splitlines())
    return sum((printed - Counter(helpers.splitlines())).values())


def _unverified(task: int, reference: Reference, plan: Plan, hidden_ok: dict[int, bool]) -> list[int]:
    """The other tasks whose hidden checks must pass too for ``task``'s expected point (its cells
    run on their functions), and did not."""
    needed: set[int] = set().union(*(n for cell, n in plan.needs.items() if reference.tasks.get(cell) == task))
    return sorted(t for t in needed - {task} if not hidden_ok.get(t, False))


def mark_follows(failures: list[Failure], needs: Mapping[str, Iterable[int]],
                 cell_tasks: Mapping[str, int]) -> list[Failure]:
    """The failures, each expected-result one that runs on another task whose hidden check failed
    marked with ``follows``: those tasks.

    :param failures: A grade's failures.
    :param needs: The tasks each expected-result cell runs on (:attr:`.plan.Plan.needs`).
    :param cell_tasks: The task of each expected-result cell (a failure without a cell stands for
        its task's cells).
    """
    failed = {f["task"] for f in failures if f["kind"] == "hidden"}
    marked: list[Failure] = []
    for f in failures:
        if f["kind"] == "expected":
            cells = [f["cell"]] if f["cell"] else [c for c, t in cell_tasks.items() if t == f["task"]]
            earlier = sorted({t for c in cells for t in needs.get(c, ())} & failed - {f["task"]})
            if earlier:
                f = {**f, "follows": earlier}
        marked.append(f)
    return marked


def score(name: str, result: RunResult, reference: Reference, plan: Plan, *, timeout_s: int,
          cell_timeout_s: int, marking: Marking | None = None) -> Grade:
    """Points and status of one run.

    :param name: Submission name.
    :param result: What the worker recorded.
    :param reference: The reference run's texts and values.
    :param plan: The run's plan (the lesson, its checks' inputs, what each expected result needs).
    :param timeout_s: The notebook limit; ``cell_timeout_s``: the per-cell limit (for the notes).
    :param marking: The lesson's marking (:attr:`.plan.Plan.marking` where not given).
    :returns: The grade.
    """
    marking = marking or plan.marking
    rules = sanitizers(plan.lesson.sanitize)
    run: JobRun = run_of(result.events)
    failures: list[Failure] = []
    errors: list[OwnError] = []
    ignored: list[Ignored] = []
    hidden_ok: dict[int, bool] = {}
    for index, cell in enumerate(run.cells):  # the hidden checks first: the other cells' notes refer to them
        if cell["role"] == "probe":
            verdict = _hidden_verdict(cell, run.records.get(index), reference, plan, stubbed=run.stubbed,
                                      cell_timeout_s=cell_timeout_s)
            hidden_ok[_task(cell)] = verdict is None
            if verdict:
                failures.append({"task": _task(cell), "kind": "hidden", "cell": cell["name"], "message": verdict})
    for index, cell in enumerate(run.cells):
        record = run.records.get(index)
        if cell["role"] == "given" and cell["expected"]:
            failure = _expected_failure(cell, record, reference, plan, hidden_ok, rules)
            if failure:
                failures.append(failure)
            lines = _own_lines(record, reference.ignored.get(cell["name"], ""), rules)
            if lines:
                ignored.append({"task": cell["task"], "cell": cell["name"], "lines": lines})
        elif cell["role"] == "student" and record is not None and record["status"] == "error":
            errors.append({"cell": index + 1, "error": _cut(_error_line(record))})
    visible: dict[int, bool] = {}
    for task in marking.tasks:
        visible[task] = not any(f["task"] == task and f["kind"] == "expected" for f in failures)
        unverified = _unverified(task, reference, plan, hidden_ok)
        if hidden_ok.get(task, False) and visible[task] and unverified:  # printed output alone can be imitated
            visible[task] = False
            failures.append({"task": task, "kind": "expected", "cell": "", "message": (
                f"the expected-result point of task {task} needs the hidden checks of task(s) "
                f"{', '.join(map(str, unverified))} to pass too, since its cells run on their functions")})
    raised = {f["task"] for f in failures if f["kind"] == "hidden" and _stub_of(f["message"], plan.lesson) == f["task"]}
    untouched = run.stubbed | raised >= set(marking.tasks)  # each task still its stub, as read or as it ran
    status, note = decide(result.events, timed_out=result.timed_out, exitcode=result.exitcode, passed=not failures,
                          attempted=not untouched, own_errors=len(errors), timeout_s=timeout_s,
                          cell_timeout_s=cell_timeout_s)
    if status in _VOID:
        return Grade(name, status, marking.zeros(), [], note, round(result.seconds, 1))
    points: dict[int, int | float] = {task: marking.hidden * hidden_ok.get(task, False)
              + marking.expected * (hidden_ok.get(task, False) and visible[task]) for task in marking.tasks}
    figures = {cell: list(kept) for cell, kept in figures_of(result.events).items()}
    marked = mark_follows(failures, plan.needs, reference.tasks)
    return Grade(name, status, points, marked, note,
                 round(result.seconds, 1), errors, ignored=ignored, figures=figures)
