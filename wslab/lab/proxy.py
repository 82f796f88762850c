"""The address a browser should open to reach a server that runs inside this kernel.

On a laptop, the browser and the kernel share a machine, so ``http://127.0.0.1:<port>/`` works. On
JupyterHub or Binder the kernel runs elsewhere and the learner's browser cannot reach its loopback
ports; jupyter-server-proxy (a dependency of the workbook, enabled by installing it) makes the Jupyter
server forward ``<base_url>proxy/<port>/``, WebSocket upgrades included, to ``127.0.0.1:<port>``. The
pages build their WebSocket address from their own location, so they work unchanged behind it, and the
``Origin`` check holds too: the proxy passes the browser's ``Host`` and ``Origin`` through, and they
still name the same site.

Which address, in order:

1. ``$WSLAB_PROXY``, for setups detection cannot see (a Jupyter server with a base URL, a proxy of
   your own): a template with ``{port}`` (``/lab-base/proxy/{port}/``, ``https://host/x/{port}/``),
   or a prefix that ``<port>/`` is added to; ``off`` forces the plain loopback address;
2. ``$JUPYTERHUB_SERVICE_PREFIX`` (set by JupyterHub, and so on Binder): ``<prefix>proxy/<port>/``, a
   path on the hub's own address;
3. otherwise ``http://127.0.0.1:<port>/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["HUB_PREFIX_ENV", "PROXY_ENV", "browser_url"]

PROXY_ENV = "WSLAB_PROXY"
HUB_PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"


def browser_url(port: int, *, host: str = "127.0.0.1", environ: Mapping[str, str] | None = None) -> str:
    """The address, ending in ``/``, at which a browser reaches the server on ``host``:``port`` of this
    machine (see the module's docstring); ``environ`` defaults to ``os.environ``."""
    env = os.environ if environ is None else environ
    direct = f"http://{host}:{port}/"
    chosen = env.get(PROXY_ENV, "").strip()
    if chosen:
        if chosen.lower() in ("off", "none", "no", "0"):
            return direct
        url = chosen.replace("{port}", str(port)) if "{port}" in chosen else f"{chosen.rstrip('/')}/{port}/"
        return url if url.endswith("/") else f"{url}/"
    prefix = env.get(HUB_PREFIX_ENV, "").strip()
    if prefix:
        return f"{prefix.rstrip('/')}/proxy/{port}/"
    return direct
