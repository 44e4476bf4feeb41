"""bmnist-kit: the helpers that students and instructors import for the binary-MNIST lesson.

Modules: ``data`` (download, cache, two-digit subset), ``plotting`` (the lesson's figures),
``widgets`` (threshold and seed explorers), ``lesson`` (the lesson's notebooks wherever the kit
is installed; ``python -m bmnist_helpers lesson DIR``), ``setup`` (the notebook's setup cell:
add what a runtime lacks, replace nothing; ``python -m bmnist_helpers setup``), ``kernel`` (the
``bmnist`` Jupyter kernel), ``exercise`` (exercise generator), ``grading`` (``bmnist-grade``). None of them contains
the answers to the lesson's tasks.
"""

__version__ = "0.1.0"  # the one place; pyproject.toml reads it
