"""Sphinx configuration of the bmnist-kit documentation (``make docs``; sources here, HTML in ``_build/html``).

Sphinx with MyST-NB and the furo theme, not Jupyter Book 2 / mystmd: they are pip packages (the dev
extra) that build offline, where mystmd needs Node.js and fetches its theme at build time. The build
is offline by design: no intersphinx, no remote images, no notebook execution; warnings are errors
(``sphinx-build -W --keep-going -n``). The lesson page, ``_generated/lesson.ipynb``, is written on
every build from the exercise and the executed solution (:mod:`bmnist_lesson.docs_page`).
"""

from __future__ import annotations

from pathlib import Path

from bmnist_lesson.docs_page import write_lesson_page

DOCS = Path(__file__).resolve().parent
LESSON_PAGE = DOCS / "_generated" / "lesson.ipynb"

project = "bmnist-kit"
author = "the bmnist-kit maintainers"
copyright = "the bmnist-kit maintainers"  # noqa: A001 (Sphinx's name)

extensions = ["myst_nb"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "bmnist-kit"
highlight_language = "none"
smartquotes = False  # the text as written: straight quotes, `--` stays two hyphens

myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"
nb_merge_streams = True


def _write_lesson_page(app) -> None:
    write_lesson_page(LESSON_PAGE)


def setup(app) -> None:
    """Write the lesson page before Sphinx reads the sources."""
    app.connect("builder-inited", _write_lesson_page)
