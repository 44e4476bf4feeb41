"""What an instructor gives students, and the wheels of the three distributions.

::

    python -m bmnist_lesson.release OUT [--kit-url URL] [--repo-url URL]   # make release OUT=DIR
    python -m bmnist_lesson.release --wheels OUT                            # make wheels OUT=DIR

A student release holds the exercise notebook, ``wheels/`` with the student kit's wheel (what
the exercise's setup cell installs, offline with ``BMNIST_WHEELHOUSE=wheels``), a README for
students, and Binder's ``requirements.txt`` and ``postBuild``. ``--kit-url`` is where the
instructor publishes that wheel (GitHub Releases, a course web server): the setup cell installs
from it. ``--repo-url`` is the repository that holds the release (a GitHub Classroom template,
say): the README's Colab and Binder links point there. Nothing in a release answers a task:
before it is written, every file, opened down into its wheels and zips, is searched for the
solution's answer lines (:func:`leaks`), and a release that holds one is refused.
"""

from __future__ import annotations

import argparse
import io
import json
import keyword
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import nbformat
from bmnist_helpers import __version__ as KIT_VERSION
from nbjudge import write_atomic
from nbjudge.tags import cell_tags

from .exercise import EXERCISE_IPYNB, EXERCISE_PY, solution_regions
from .files import CHECKOUT, SOLUTION_PY

__all__ = ["DISTRIBUTIONS", "Leak", "Release", "ReleaseError", "answer_lines", "build_wheels", "leaks",
           "write_release"]

# folder of the repository -> distribution (``make wheels`` builds each).
DISTRIBUTIONS = {"kit": "bmnist-kit", "engine": "nbjudge", "lesson": "bmnist-lesson"}
KIT_URL_LINE = re.compile(r"^KIT_URL = .*$", re.M)  # in the exercise's setup cell
_NAME = re.compile(r"[A-Za-z_]\w*")


class ReleaseError(ValueError):
    """The release cannot be made as asked; the message names the fix."""


@dataclass(frozen=True)
class Leak:
    """An answer line found in a released file (``path`` names the members of wheels and zips with ``!``)."""

    path: str
    line: str


@dataclass(frozen=True)
class Release:
    """What :func:`write_release` wrote: the folder, the exercise and the kit's wheel."""

    folder: Path
    notebook: Path
    wheel: Path


def _names_something(line: str) -> bool:
    """A line that names a variable, function or module; ``return {`` or ``}`` answer nothing alone."""
    return any(not keyword.iskeyword(word) for word in _NAME.findall(line))


def answer_lines(solution: Path = SOLUTION_PY, exercise: Path = EXERCISE_PY) -> frozenset[str]:
    """The answers: each line of the solution's ``### BEGIN SOLUTION`` regions, stripped, that names
    something and that the exercise does not show itself (a hint, a signature).

    :param solution: The solution's single source (``solutions/binary_mnist.py``).
    :param exercise: The generated exercise's script.
    """
    shown = {line.strip() for line in exercise.read_text(encoding="utf-8").splitlines()}
    lines = {line.strip() for region in solution_regions(solution.read_text(encoding="utf-8"))
             for line in region.splitlines()}
    return frozenset(line for line in lines - shown if line and _names_something(line))


def _texts(name: str, data: bytes):
    """``(path, text)`` of a file and, for a zip or wheel, of every member, recursively; a notebook
    or JSON file also as each string it holds (its sources and outputs, unescaped)."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                if not member.is_dir():
                    yield from _texts(f"{name}!{member.filename}", archive.read(member))
        return
    text = data.decode("utf-8", "replace")
    yield name, text
    if name.endswith((".ipynb", ".json")):
        try:
            yield name, "\n".join(_strings(json.loads(text)))
        except ValueError:
            pass


def _strings(value):
    """Every string of a JSON value; a list of strings (a notebook's source) as one."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        yield "".join(value)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def leaks(folder: Path, lines: frozenset[str]) -> list[Leak]:
    """Every answer line that a file of ``folder`` holds (wheels and zips opened).

    :param folder: A release.
    :param lines: From :func:`answer_lines`.
    """
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        for name, text in _texts(str(path.relative_to(folder)), path.read_bytes()):
            held = {line.strip() for line in text.splitlines()} & lines
            found += [Leak(name, line) for line in sorted(held)]
    return sorted(set(found), key=lambda leak: (leak.path, leak.line))


def build_wheels(out: Path, *, root: Path = CHECKOUT, only: tuple[str, ...] = tuple(DISTRIBUTIONS)) -> dict[str, Path]:
    """Build the wheels of the repository's distributions into ``out``.

    :param out: A folder (made if missing).
    :param root: The repository (a checkout, or a copy of its files).
    :param only: The folders to build (``kit``, ``engine``, ``lesson``).
    :returns: ``{folder: wheel}``.
    :raises ReleaseError: pip could not build one; its last lines say why.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wheels = {}
    for folder in only:
        with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
            proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(root / folder),
                                   "-w", tmp], capture_output=True, text=True)
            built = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or len(built) != 1:
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
                raise ReleaseError(f"building the wheel of {folder}/ ({DISTRIBUTIONS[folder]}) failed:\n{tail}")
            target = out / built[0].name
            shutil.move(built[0], target)
            wheels[folder] = target
    return wheels


def _check_url(url: str | None, what: str) -> str | None:
    if url is None:
        return None
    parts = urlparse(url)
    if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.scheme == "file"):
        raise ReleaseError(f"{what} {url!r} is not an http(s) URL; give the full address, e.g. "
                           "https://github.com/COURSE/REPO/releases/download/v1/bmnist_kit-X.Y.Z-py3-none-any.whl")
    return url


def release_notebook(exercise: nbformat.NotebookNode, *, kit_url: str | None) -> nbformat.NotebookNode:
    """The exercise as released: its setup cell installs the kit from ``kit_url`` when it is missing.

    :raises ReleaseError: The exercise has no setup cell with a ``KIT_URL = ...`` line.
    """
    notebook = nbformat.from_dict(json.loads(json.dumps(exercise)))
    setup = [c for c in notebook.cells if "setup" in cell_tags(c) and KIT_URL_LINE.search(c.source)]
    if len(setup) != 1:
        raise ReleaseError("the exercise needs one setup cell (tag setup) with a line `KIT_URL = ...`; "
                           "regenerate it with `make exercise`")
    if kit_url:
        line = f"KIT_URL = {kit_url!r}  # where this course publishes the kit's wheel"
        setup[0].source = KIT_URL_LINE.sub(lambda _: line, setup[0].source)
    return notebook


def _links(repo_url: str | None, notebook: str) -> list[str]:
    if not repo_url:
        return ["Open `binary_mnist.ipynb` in JupyterLab, VS Code, or upload it to Colab or your JupyterHub."]
    lines = [f"The exercise's repository: {repo_url}"]
    parts = urlparse(repo_url)
    if parts.netloc == "github.com":
        slug = parts.path.strip("/").removesuffix(".git")
        lines += [f"- [Open in Colab](https://colab.research.google.com/github/{slug}/blob/main/{notebook})",
                  f"- [Launch on Binder](https://mybinder.org/v2/gh/{slug}/main?labpath={notebook})"]
    return lines


def readme_text(*, kit_url: str | None, repo_url: str | None, wheel: str, notebook: str) -> str:
    """The students' README of a release."""
    source = f"from {kit_url}" if kit_url else "from the package index, or from `wheels/` (see below)"
    return "\n".join([
        "# Telling 1 from 7: a small neural network in JAX", "",
        f"Your exercise is `{notebook}`. Its first cell (setup) installs the course's kit, `bmnist-kit` "
        f"{KIT_VERSION}, {source}, when your Python does not have it yet, and adds only what is missing: it never "
        "replaces a package your runtime already has.", "",
        *_links(repo_url, notebook), "",
        "## Where to run it", "",
        "- **Colab**: open the notebook (link above, or File > Upload notebook) and run all cells.",
        "- **A JupyterHub**: upload the notebook, open it and run all cells.",
        f"- **JupyterLab or VS Code on your machine**: `python -m pip install --no-deps wheels/{wheel}` and then "
        "`python -m bmnist_helpers setup` (adds the kit's missing dependencies), or `pip install "
        f"\"wheels/{wheel}[lab]\"` in a fresh virtual environment; open the notebook and pick that Python.",
        "- **Offline**: set `BMNIST_WHEELHOUSE` to this release's `wheels/` folder before starting Jupyter; the "
        "setup cell then installs the kit from there.", "",
        "## How to work", "",
        "Replace each `raise NotImplementedError(\"TODO: ...\")` with your code and run the cells. Under each "
        "expected-result cell, a box shows what the instructor's run printed and drew. After Run All, scroll up "
        "to the first red error box: the cells below it have not run yet.", "",
        "If the setup cell says the kit could not be installed, check your network connection (and that the "
        "address it names opens in a browser), or ask your instructor for the kit's wheel.", "",
    ])


def write_release(out: Path, *, kit_url: str | None = None, repo_url: str | None = None,
                  log=print) -> Release:
    """Write the student release into ``out`` (a new or empty folder).

    :param out: The release folder.
    :param kit_url: Where the kit's wheel will be published (the setup cell installs from there).
    :param repo_url: The repository that will hold the release (Colab and Binder links).
    :returns: What was written.
    :raises ReleaseError: ``out`` is not empty, a URL is not one, or the release would hold an answer.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"{out} exists and is not an empty folder; give a new folder, nothing was written")
    kit_url, repo_url = _check_url(kit_url, "KIT_URL"), _check_url(repo_url, "REPO_URL")
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        stage = Path(tmp) / "release"
        wheel = build_wheels(stage / "wheels", only=("kit",))["kit"]
        notebook = stage / EXERCISE_IPYNB.name
        nbformat.write(release_notebook(nbformat.read(EXERCISE_IPYNB, as_version=4), kit_url=kit_url), notebook)
        (stage / "README.md").write_text(readme_text(kit_url=kit_url, repo_url=repo_url, wheel=wheel.name,
                                                     notebook=notebook.name), encoding="utf-8")
        # Binder (repo2docker): the kit with JupyterLab, then the notebook's kernel.
        (stage / "requirements.txt").write_text(f"./wheels/{wheel.name}[lab]\n", encoding="utf-8")
        post_build = ("#!/usr/bin/env bash\nset -euo pipefail\n"
                      "python -m bmnist_helpers kernel --sys-prefix --name bmnist\n")
        (stage / "postBuild").write_text(post_build, encoding="utf-8")
        (stage / "postBuild").chmod(0o755)
        found = leaks(stage, answer_lines())
        if found:
            where = "\n".join(f"  {leak.path}: {leak.line}" for leak in found[:10])
            raise ReleaseError(f"the release would hold {len(found)} answer line(s); nothing was written:\n{where}")
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(stage.rglob("*")):
            target = out / path.relative_to(stage)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                write_atomic(target, path.read_bytes())
                target.chmod(path.stat().st_mode & 0o777)
    if not kit_url:
        log("note: no KIT_URL: the setup cell installs bmnist-kit from the package index or BMNIST_WHEELHOUSE; "
            "make release ... KIT_URL=https://.../" + wheel.name + " points it at your copy")
    log(f"wrote the student release {out}: {notebook.name}, wheels/{wheel.name}, README.md "
        "(no answer line in any file, wheels opened)")
    return Release(out, out / notebook.name, out / "wheels" / wheel.name)


def main(argv: list[str] | None = None) -> int:
    """``make release`` and ``make wheels``."""
    parser = argparse.ArgumentParser(prog="python -m bmnist_lesson.release", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (new or empty)")
    parser.add_argument("--kit-url", default=None, help="where the kit's wheel is published (setup cell)")
    parser.add_argument("--repo-url", default=None, help="the repository that holds the release (Colab, Binder)")
    parser.add_argument("--wheels", action="store_true", help="write the wheel of every distribution instead")
    args = parser.parse_args(argv)
    try:
        if args.wheels:
            for folder, wheel in build_wheels(args.out).items():
                print(f"{DISTRIBUTIONS[folder]}: {wheel}")
        else:
            write_release(args.out, kit_url=args.kit_url or None, repo_url=args.repo_url or None)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
