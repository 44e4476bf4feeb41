"""The repository's own pytest hook: the solution notebook's nbval cells are in the ``notebook`` tier.

nbval collects ``solutions/*.ipynb`` (``testpaths`` and ``--nbval`` in pyproject.toml), and its cells
carry no marker of their own; marked here, they leave ``make check`` (``-m "not (... or notebook)"``)
as the other tests of the whole lesson do, and ``pytest -m notebook`` runs them. The tests' own
fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark a notebook's cell (an item of a ``.ipynb`` file: nbval's) ``notebook``."""
    if item.path.suffix == ".ipynb":
        item.add_marker(pytest.mark.notebook)
