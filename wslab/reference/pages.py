"""The small browser pages the chapters serve from their apps (plain HTML and JavaScript, no build)."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["page"]


def page(name: str) -> str:
    """The HTML of the page ``name`` (``"echo"``), ready for an ``HTMLResponse``."""
    static = files(__name__.rpartition(".")[0]) / "static"  # beside this module
    resource = static / f"{name}.html"
    if not resource.is_file():
        known = sorted(p.name.removesuffix(".html") for p in static.iterdir() if p.name.endswith(".html"))
        raise ValueError(f"There is no page {name!r}; the pages are: {', '.join(known)}.")
    return resource.read_text(encoding="utf-8")
