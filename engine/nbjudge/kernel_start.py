"""The kernel's start inside the sandbox: bind its sockets, tell the launcher, wait for its go, run.

``python -m <package>.kernel_start GATE_FD CONNECTION_FILE``, started by the sandbox's
launcher (:mod:`.launcher`). It is part of the engine's kernel side (:data:`.kernel_path.ENGINE_KERNEL_MODULES`), so
it imports nothing of the engine but that side. Before the kernel runs any cell, :mod:`.guard`
notes the libraries' originals (after importing the probe modules named in the environment).
"""

from __future__ import annotations

import os
import socket
import sys

from . import guard


def main(gate_fd: int, connection_file: str) -> None:
    """Start an IPython kernel on ``connection_file`` once the launcher answers on ``gate_fd``."""
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does: the working directory is not a module source
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    # parent_handle=1: the launcher's PR_SET_PDEATHSIG chain, not a poller, ends the kernel with its
    # parent (and no "Ctrl-C will not work" banner in the grader's log).
    app.initialize(["-f", connection_file, "--IPKernelApp.parent_handle=1"])  # type: ignore[no-untyped-call]
    preload = [name for name in os.environ.pop(guard.PRELOAD_ENV, "").split(",") if name]
    guard.take(preload, shell=app.shell)
    with socket.socket(fileno=gate_fd) as gate:
        gate.sendall(b"r")
        gate.recv(1)
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
