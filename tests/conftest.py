import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import apps.py

SLOWEST_FIRST = ("test_notebooks.py",)  # run whole notebooks in a kernel of their own, for minutes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest file first, so that with two workers (``./run test``: ``-n 2 --dist loadfile
    --no-loadscope-reorder``) it does not begin last and leave the other worker idle at the end."""
    items.sort(key=lambda item: item.path.name not in SLOWEST_FIRST)
