"""Exercise checks: each ``check_*`` serves the learner's app, drives it and returns a verdict."""

from .echo import check_reverse, check_shout, check_sum
from .result import CheckResult

__all__ = ["CheckResult", "check_reverse", "check_shout", "check_sum"]
