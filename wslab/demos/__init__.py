"""Demonstrations: code that is wrong on purpose, and the helpers that make a failure happen on demand.

:mod:`.naive` is the popular tutorial's code as written (**do not copy it**); :mod:`.planted` is the complete
app with one bug planted in it, for chapter 07's tests to catch; :mod:`.scenarios`, :mod:`.auth_scenarios` and
:mod:`.streaming_scenarios` drive a server through a failure (a dead peer, a stalled reader, an impostor...)
the same way on every run; :mod:`.echo` is chapter 01's echo app and page. What to deploy is
:mod:`wslab.reference`.
"""

__all__: list[str] = []
