"""One function turns what a run did into its status and note.

The facts come from the runner's own knowledge, never from text in the outputs: the grader's
timer (``timed_out``), the worker's records of each cell (the cell timer, the kernel's liveness,
the execute reply), the sandbox's mark of a job stopped at its process limit, and the worker's
exit. The same facts give the same status on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["STATUSES", "decide"]

STATUSES = {
    "ok": "every check passed (a cell of the student's own that raised is named in the note)",
    "partial": "some check failed",
    "not-attempted": "no task was answered: every task is still its stub",
    "timeout": "a cell ran past its limit and was interrupted, or the notebook ran past its limit",
    "crashed": "a cell ended the kernel (it exited, crashed or hit a resource limit); the copy ran again without it",
    "invalid-notebook": "the file could not be read as a notebook",
    "sandbox-error": "the kernel could not be started",
    "grader-error": "the grader itself failed on this notebook",
}


def _where(cell: Mapping[str, Any], index: int) -> str:
    if cell["role"] == "probe":
        return f"the hidden check of task {cell['task']}"
    if cell["role"] == "given":
        return f"the given cell `{cell['name']}`"
    return f"your cell number {index + 1} of the grading copy"


def decide(events: list[dict[str, Any]], *, timed_out: bool, exitcode: int | None, passed: bool, attempted: bool,
           own_errors: int, timeout_s: int, cell_timeout_s: int) -> tuple[str, str]:
    """The status of one job, and a note that says what happened.

    :param events: The worker's records (``invalid``, ``kernel-failed``, ``copy``, ``cell``,
        ``restart``, ``gave-up``, ``done``); a later record of a cell replaces an earlier one. A
        cell's status is ``ok``, ``error``, ``timeout``, ``dead``, ``malformed`` (kernel traffic the
        worker could not read) or ``overflow`` (the job's output budget was spent).
    :param timed_out: Whether the grader stopped the job at its notebook limit.
    :param exitcode: The worker's exit status (``None`` when it was stopped).
    :param passed: Whether every check passed.
    :param attempted: Whether any task was answered (not every task still its stub).
    :param own_errors: How many of the student's own cells (not answers' checks) raised.
    :param timeout_s: The notebook limit; ``cell_timeout_s``: the cell limit (for the notes).
    :returns: ``(status, note)``, the status one of :data:`STATUSES`.
    """
    kinds = {e.get("event"): e for e in events}
    if "invalid" in kinds:
        return "invalid-notebook", str(kinds["invalid"].get("note", ""))
    if "kernel-failed" in kinds:
        return "sandbox-error", f"the kernel did not start: {kinds['kernel-failed'].get('note', '')}"
    copy = kinds.get("copy", {}).get("cells", [])
    latest = {e["index"]: e for e in events if e.get("event") == "cell" and isinstance(e.get("index"), int)
              and 0 <= e["index"] < len(copy)}
    if timed_out:
        return "timeout", f"the notebook ran past its {timeout_s} s limit and was stopped"
    in_order = [e for _, e in sorted(latest.items())]
    broken = next((e for e in in_order if e.get("status") == "malformed"), None)
    if broken is not None:
        return "crashed", (f"the kernel sent a message the grader could not read (a wrong signature or malformed "
                           f"content) in {_where(copy[broken['index']], broken['index'])}, and the job was stopped")
    flood = next((e for e in in_order if e.get("status") == "overflow"), None)
    if flood is not None:
        return "crashed", (f"the notebook's output passed what the grader keeps for one notebook, in "
                           f"{_where(copy[flood['index']], flood['index'])}, and the job was stopped")
    fatal = [e for e in in_order if e["status"] == "dead"]
    if fatal:
        notes = [f"{_where(copy[e['index']], e['index'])} ended the kernel "
                 f"({str(e.get('how') or 'it died')[:120]})" for e in fatal[:3]]
        again = ("the grader gave up after that many kernels" if "gave-up" in kinds
                 else "the rest of the notebook ran again in a fresh kernel without it")
        return "crashed", "; ".join(notes) + f"; {again}"
    slow = next((e for e in in_order if e["status"] == "timeout"), None)
    if slow is not None:
        return "timeout", (f"{_where(copy[slow['index']], slow['index'])} ran past the {cell_timeout_s} s limit and "
                           "was interrupted")
    if "done" not in kinds:  # the note is the grader's own words: the worker's log can hold student output
        return "grader-error", f"the grader could not finish this notebook (its worker exited with status {exitcode})"
    if not attempted:
        return "not-attempted", "no task was answered: every task's function is still the exercise's stub"
    own = f"{own_errors} of your own cells raised an error (see the feedback)" if own_errors else ""
    return ("ok", own) if passed else ("partial", own)
