"""The lab harness: what the notebooks use to run and watch servers inside the kernel.

An in-kernel uvicorn server (:mod:`.server`, with :mod:`.sessions` and :mod:`.serverlog` behind it), clients
that print a transcript (:mod:`.client`, :mod:`.transcript`), the address a browser uses on a laptop or a hub
(:mod:`.proxy`), a headless Chromium (:mod:`.browser`) and a real ``redis-server`` (:mod:`.redis_server`) for
cells and tests, and the errors they raise (:mod:`.exceptions`). ``import wslab`` re-exports what a notebook
needs. Not for production: deploy :mod:`wslab.reference`.
"""

__all__: list[str] = []
