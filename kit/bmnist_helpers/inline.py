"""Each figure of a cell drawn once in a notebook's kernel.

With matplotlib's inline backend (JupyterLab, VS Code, Colab, a JupyterHub), two hooks run after
every cell: pyplot's, which draws every changed figure on its canvas (for a window that shows the
canvas), and the inline backend's, which draws each figure again into the PNG the notebook shows.
Nothing ever shows the first drawing, and it costs as much as the second: about 0.1 s a figure,
one to two CPU-seconds a run of the lesson. :func:`draw_once` removes pyplot's hook once pyplot is
imported, with matplotlib's own ``pyplot.uninstall_repl_displayhook``, where the backend is the
inline one; any other backend (``ipympl``, a window) keeps it. The PNGs are the same.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

__all__ = ["draw_once"]

_INLINE = ("inline", "module://matplotlib_inline.backend_inline")
_settled = False  # pyplot's backend settled by :func:`_drop_extra_drawing`


def draw_once(shell: Any = None) -> bool:
    """In a notebook's kernel, draw each figure of a cell once (see the module's docstring).

    Registers a hook that runs after every cell; harmless to call again.

    :param shell: The IPython shell; default: the running one.
    :returns: Whether the hook is registered (not outside IPython).
    """
    shell = shell or getattr(builtins, "get_ipython", lambda: None)()
    if shell is None:
        return False
    if _drop_extra_drawing not in shell.events.callbacks["post_execute"]:
        shell.events.register("post_execute", _drop_extra_drawing)
    return True


def _drop_extra_drawing() -> None:
    """After each cell: where pyplot runs with the inline backend, drop its drawing hook.

    pyplot adds the hook when it settles its backend, at its first figure; so the first time no
    figure is open, the backend is settled here (which would close open figures, hence the wait).
    A later ``%matplotlib`` adds the hook again, and that cell's figures are drawn twice.
    """
    global _settled
    import matplotlib

    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    try:
        backend = matplotlib.get_backend(auto_select=False)  # never settles the backend itself
    except TypeError:  # matplotlib < 3.10
        backend = matplotlib.rcParams["backend"]
    if str(backend) not in _INLINE:
        return
    if not _settled and not pyplot.get_fignums():
        pyplot.switch_backend(str(backend))
        _settled = True
    pyplot.uninstall_repl_displayhook()
