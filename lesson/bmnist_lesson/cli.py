"""``bmnist-grade``: the engine's grader (:mod:`nbjudge.cli`) with this lesson as its default."""

from __future__ import annotations

import sys

from nbjudge.cli import main as engine_main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Grade submissions of the binary-MNIST lesson (``bmnist-grade --help``)."""
    return engine_main(argv, lesson="binary-mnist")


if __name__ == "__main__":
    sys.exit(main())
