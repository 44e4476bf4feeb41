"""bmnist-kit: the student kit of the binary-MNIST lesson, what a student's kernel imports.

Modules: ``data`` (download, cache, two-digit subset), ``plotting`` (the lesson's figures),
``widgets`` (threshold and seed explorers), ``lesson`` (the exercise wherever the kit is
installed; ``python -m bmnist_helpers lesson DIR``), ``setup`` (the notebook's setup cell: add
what a runtime lacks, replace nothing; ``python -m bmnist_helpers setup``), ``kernel`` (the
``bmnist`` Jupyter kernel), ``lab`` (``make lab``). The kit holds no answer to the lesson's tasks,
no solution, no verdict and no grader: those are the instructor's (``bmnist-lesson``, ``nbjudge``).
"""

__version__ = "0.1.0"  # the one place; kit/pyproject.toml reads it
