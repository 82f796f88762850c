"""nbval's kernel start, made dependable for a parallel suite (the root conftest.py installs it).

nbval sends the kernel's stderr to a /dev/null it never closes: the ResourceWarning then fails whichever test
the garbage collector happens to run in. And a kernel can die before it answers: jupyter_client picks free
ports for it, and before the kernel binds them, another test's client may take one as its local port (the
same range). Such a kernel is started again, as ``wslab.RedisServer`` does for its port; the last failure
shows what the kernel wrote.
"""

from __future__ import annotations

import tempfile
from typing import Any

import nbval.kernel

STARTS = 3  # tries before a kernel that dies at start fails the notebook
_nbval_start_new_kernel = nbval.kernel.start_new_kernel


def start_new_kernel(startup_timeout: float = 60, kernel_name: str = "python", **kwargs: Any) -> Any:
    """nbval's ``start_new_kernel``: the kernel's stderr in a temporary file instead of nbval's /dev/null,
    and up to :data:`STARTS` tries."""
    nbval_stderr = kwargs.pop("stderr", None)
    if nbval_stderr is not None:
        nbval_stderr.close()
    for attempt in range(1, STARTS + 1):
        with tempfile.TemporaryFile("w+") as stderr:  # the kernel keeps its own copy of the descriptor
            try:
                return _nbval_start_new_kernel(startup_timeout, kernel_name, stderr=stderr, **kwargs)
            except RuntimeError as exc:
                if attempt == STARTS:
                    stderr.seek(0)
                    raise RuntimeError(f"{exc} (tried {STARTS} times); the kernel's stderr:\n"
                                       f"{stderr.read()[-3000:]}") from exc
    raise AssertionError("unreachable")


def install() -> None:
    """Make nbval start its kernels with :func:`start_new_kernel`."""
    nbval.kernel.start_new_kernel = start_new_kernel
