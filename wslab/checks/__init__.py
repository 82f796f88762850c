"""Exercise checks: each ``check_*`` serves the learner's app, drives it and returns a verdict."""

from .app import check_reactions, check_typing
from .auth import check_announce, check_room_permissions
from .broadcast import check_count, check_no_echo
from .echo import check_reverse, check_shout, check_sum
from .result import CheckResult
from .rooms import check_history, check_who
from .scaling import check_stream_history, check_typing_everywhere
from .streaming import check_heartbeat, check_since, check_symbols
from .testing import check_leave_test, check_private_test, check_sender_test

__all__ = [
    "CheckResult",
    "check_announce",
    "check_count",
    "check_heartbeat",
    "check_history",
    "check_leave_test",
    "check_no_echo",
    "check_private_test",
    "check_reactions",
    "check_reverse",
    "check_room_permissions",
    "check_sender_test",
    "check_shout",
    "check_since",
    "check_stream_history",
    "check_sum",
    "check_symbols",
    "check_typing",
    "check_typing_everywhere",
    "check_who",
]
