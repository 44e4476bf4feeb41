"""The text of an expected-result cell as it is compared: the lesson's sanitize patterns applied
(times, addresses), figure reprs and blank lines dropped, trailing spaces cut."""

from __future__ import annotations

import configparser
import functools
import re
from pathlib import Path

from .lessons import LessonError

__all__ = ["Rules", "sanitize", "sanitizers"]

Rules = tuple[tuple[re.Pattern[str], str], ...]  # (pattern, replacement) of a sanitize file, in order
_SANITIZE_CHARS = 20_000  # characters of a cell's text compared (the worker keeps as many)
_FIGURE = re.compile(r"^\(?<(Figure|Axes|matplotlib\.)[^>]*>.*$")


@functools.cache
def sanitizers(path: Path | None) -> Rules:
    """The patterns of an nbval sanitize file (``[section]`` with ``regex:`` and ``replace:``).

    :param path: The lesson's file (:attr:`.lessons.Lesson.sanitize`); ``None``: no patterns.
    :raises LessonError: The file cannot be read or a pattern does not compile.
    """
    if path is None:
        return ()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if not parser.read(path, encoding="utf-8"):
            raise OSError("missing")
        return tuple((re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections())
    except (OSError, KeyError, re.error, configparser.Error) as exc:
        raise LessonError(f"the lesson's sanitize file {path} is not usable ({exc}); give an nbval sanitize file "
                          "with a regex and a replace line in each section") from None


def sanitize(text: str, rules: Rules = ()) -> str:
    """The text as compared: volatile parts replaced (the lesson's sanitize patterns), figure reprs dropped.

    Student output goes through this in the grader process, so its time is bounded: the text is
    cut to :data:`_SANITIZE_CHARS` first (the worker keeps no more of a cell), and the patterns are
    linear (a match starts only where a run of digits starts).

    :param text: A cell's text output.
    :param rules: The patterns, from :func:`sanitizers`.
    """
    text = text[:_SANITIZE_CHARS]
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip() and not _FIGURE.match(line.strip()))
