"""``python -m bmnist_helpers``: the kit's commands for students and instructors.

::

    python -m bmnist_helpers lesson DIR [--force]                # write the exercise notebook
    python -m bmnist_helpers kernel [--sys-prefix | --user]      # register the bmnist kernel
    python -m bmnist_helpers setup                               # add the kit's missing dependencies, replace nothing
    python -m bmnist_helpers --version
"""

from __future__ import annotations

import argparse
import sys

from . import __version__, kernel, lesson, setup


def main(argv: list[str] | None = None) -> int:
    """Command line entry point.

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :returns: Exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m bmnist_helpers", description="bmnist-kit commands")
    parser.add_argument("--version", action="version", version=f"bmnist-kit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, text in (
        ("lesson", lesson, "write the exercise notebook into a folder (the solution is the instructor's)"),
        ("kernel", kernel, "register the bmnist Jupyter kernel with its JAX compilation cache"),
        ("setup", setup, "install the kit's dependencies this Python lacks; never replace an installed package"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        module.configure_parser(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
