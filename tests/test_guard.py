"""The kernel's guard (issue 26): what a notebook changes in the libraries after the kernel starts
is undone for a hidden check, and nothing the kernel itself keeps changing is touched. Each case
runs in a fresh interpreter, as a kernel would (the guard switches off this process's hooks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_TAKE = """
import json, sys, threading
import numpy as np
from nbjudge import guard
guard.take(["json"])
"""


def _run(body: str) -> str:
    code = _TAKE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize(("change", "check"), [
    ("np.mean = lambda *a, **k: 'patched'", "np.mean([1.0, 3.0]) == 2.0"),
    ("np.linalg.norm.__code__ = (lambda *a, **k: 'patched').__code__", "np.linalg.norm([3.0, 4.0]) == 5.0"),
    ("json.dumps.__kwdefaults__ = {'sort_keys': True}", "json.dumps({'b': 1, 'a': 2}) == '{\"b\": 1, \"a\": 2}'"),
    ("json.JSONEncoder.encode = lambda self, o: 'patched'", "json.JSONEncoder().encode(1) == '1'"),
    ("sys.modules['json'] = np", "sys.modules['json'].__name__ == 'json'"),
    ("sys.setprofile(lambda *a: None); threading.setprofile(lambda *a: None)",
     "sys.getprofile() is None and threading._profile_hook is None"),
    ("sys.settrace(lambda *a: None)", "sys.gettrace() is None"),
])
def test_a_change_made_after_the_start_is_undone(change, check):
    assert _run(f"{change}\nguard.restore()\nprint({check})") == "True"


def test_data_that_libraries_change_as_they_run_is_left_alone():
    # a cache, a setting, a new attribute: none is a patch, and the kernel (ipykernel's input
    # forwarding, say) relies on attributes it adds while a cell runs
    out = _run("""
    json.decoder.scanstring_cache = {'kept': 1}
    np.new_helper = lambda: 'kept'
    class Kernel:
        pass
    kernel = Kernel()
    kernel._saved = print
    guard.restore()
    print(json.decoder.scanstring_cache, np.new_helper(), kernel._saved is print)
    """)
    assert out == "{'kept': 1} kept True"


def test_outside_a_grading_kernel_restore_only_switches_hooks_off():
    code = ("import sys\nfrom nbjudge import guard\nsys.setprofile(lambda *a: None)\n"
            "print(guard.restore(), sys.getprofile())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "None None"
