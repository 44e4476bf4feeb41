"""A seccomp filter for jobs: no kernel keyrings and no System V IPC, the channels that outlive a
job or cross its uid without a namespace of their own.

Keys (``add_key``, ``keyctl``, ``request_key``) belong to a uid, not to a namespace: as root there
is no user namespace, pool uids are reused, and a key one job stores is there for the next job of
that uid. System V shared memory, semaphores and message queues live in the IPC namespace
(bubblewrap gives each job its own) but, without bubblewrap, in the machine's; shared memory is
also memory outside every per-process limit. A call of any of them fails with ``EPERM``, as does
every system call of a foreign ABI (x32, i386 from a 64-bit process), which the filter cannot read.

The filter is a classic BPF program, assembled here (no libseccomp needed), for x86-64 and
AArch64; elsewhere :func:`program` returns ``None`` and the protection is reported as absent.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

__all__ = ["install", "program", "purge_keys"]

_ALLOW = 0x7FFF0000
_DENY = 0x00050000 | errno.EPERM  # SECCOMP_RET_ERRNO
_LOAD, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
_X32 = 0x40000000

# machine -> (audit arch, {name: number})
_TABLES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, {
        "add_key": 248, "request_key": 249, "keyctl": 250,
        "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220,
        "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    }),
    "aarch64": (0xC00000B7, {
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "shmget": 194, "shmat": 196, "shmctl": 195, "semget": 190, "semop": 193, "semctl": 191, "semtimedop": 192,
        "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187,
    }),
}
_KEYCTL_CLEAR = 7
_USER_KEYRINGS = (-4, -5)  # KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING


def _table() -> tuple[int, dict[str, int]] | None:
    return _TABLES.get(platform.machine().lower().replace("arm64", "aarch64"))


def program() -> bytes | None:
    """The filter as an array of ``struct sock_filter`` (what ``bwrap --seccomp FD`` reads).

    :returns: The program, or ``None`` on a machine this module has no system call table for.
    """
    table = _table()
    if table is None:
        return None
    arch, numbers = table
    denied = sorted(set(numbers.values()))
    # 0: load arch; 1: foreign arch -> deny; 2: load nr; [3: x32 -> deny]; one test per call; allow; deny
    code: list[tuple[int, int, int, int]] = [(_LOAD, 0, 0, 4)]
    tests = [(_JGE, _X32)] if arch == _TABLES["x86_64"][0] else []
    tests += [(_JEQ, nr) for nr in denied]
    deny_at = 3 + len(tests) + 1  # index of the deny instruction
    code.append((_JEQ, 0, deny_at - 2, arch))  # equal: go on; else jump to deny
    code.append((_LOAD, 0, 0, 0))
    for op, k in tests:
        here = len(code)
        code.append((op, deny_at - here - 1, 0, k))
    code.append((_RET, 0, 0, _ALLOW))
    code.append((_RET, 0, 0, _DENY))
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)


def install(filter_program: bytes) -> None:
    """Install the filter on the calling process (and all it starts), with ``no_new_privs``.

    For a child between fork and exec where bubblewrap does not install it (``--seccomp``).

    :param filter_program: What :func:`program` returned.
    :raises OSError: The kernel refused it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(filter_program, len(filter_program))

    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = _Prog(len(filter_program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    for args in ((pr_set_no_new_privs, 1, 0, 0, 0), (pr_set_seccomp, seccomp_mode_filter, ctypes.byref(prog), 0, 0)):
        if libc.prctl(*args) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))


def purge_keys(uid: int) -> None:
    """Clear the user keyrings of ``uid`` (run as root when a pool uid is given back).

    Keys made before the filter existed, or by another program of that uid, go with them. A child
    process takes the uid, so that this process keeps its own.

    :param uid: A sandbox uid.
    """
    table = _table()
    if table is None or os.geteuid() != 0:
        return
    keyctl = table[1]["keyctl"]
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            libc = ctypes.CDLL(None, use_errno=True)
            for ring in _USER_KEYRINGS:
                libc.syscall(keyctl, _KEYCTL_CLEAR, ring)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
