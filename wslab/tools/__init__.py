"""Tooling: the ``wslab`` command (:mod:`.cli`: ``wslab serve``, ``wslab doctor``, ``wslab student``), the
setup check behind ``wslab.diagnose()`` (:mod:`.doctor`), and the student copies of the chapters
(:mod:`.student`)."""

__all__: list[str] = []
