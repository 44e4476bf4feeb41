"""A real Jupyter server (or JupyterLab) on 127.0.0.1 for the tests, with a random token.

The server runs the kit's own environment, so Jupytext's server extension (and with it Jupytext's
contents manager) is active exactly as in ``make lab``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running server: its base URL, token and log file."""

    url: str
    token: str
    log: Path

    def contents(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call the contents API (``GET`` returns the model with content, ``PUT`` saves one)."""
        query = f"token={self.token}" + ("&content=1" if method == "GET" else "")
        request = urllib.request.Request(
            f"{self.url}/api/contents/{path}?{query}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


@contextlib.contextmanager
def jupyter(root: Path, *, lab: bool = False, args: Sequence[str] = (), timeout: float = 90) -> Iterator[Server]:
    """Start ``jupyter server`` (or ``jupyter lab``) serving ``root``; stop it afterwards.

    :param root: The server's root directory.
    :param lab: Start JupyterLab (for the browser), not the bare server.
    :param args: More options, after the test's own (e.g. those of ``make lab``).
    :param timeout: Seconds to wait for the server to answer.
    """
    state = root.parent / f".{root.name}-jupyter"
    state.mkdir(exist_ok=True)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, **{f"JUPYTER_{k}_DIR": str(state / k.lower()) for k in ("CONFIG", "DATA", "RUNTIME")}}
    env["JUPYTER_PATH"] = str(ROOT / ".venv" / "share" / "jupyter")
    command = [sys.executable, "-m", "jupyterlab" if lab else "jupyter_server", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", *(["--allow-root"] if os.geteuid() == 0 else [])]
    if lab:
        command += ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                    f"--LabApp.user_settings_dir={state / 'settings'}",
                    f"--LabApp.workspaces_dir={state / 'workspaces'}"]
    # An option given twice is an error for traitlets: the caller's value replaces the test's own.
    given = {a.split("=", 1)[0] for a in args}
    command = [a for a in command if a.split("=", 1)[0] not in given] + list(args)
    log_path = state / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"Jupyter did not start:\n{log_path.read_text()[-3000:]}") from None
                    time.sleep(0.5)
            yield Server(url, token, log_path)
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
