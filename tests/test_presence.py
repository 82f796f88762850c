"""A client's copy of the room's user list (wslab.reference.presence): in step while the versions follow one
another and the counts agree; out of step, and put right by the whole list, otherwise."""

from __future__ import annotations

from wslab.reference.presence import Presence


def joined(user: str, count: int, version: int) -> dict[str, object]:
    return {"type": "join", "user": user, "count": count, "version": version}


def left(user: str, count: int, version: int) -> dict[str, object]:
    return {"type": "leave", "user": user, "count": count, "version": version}


def test_a_copy_starts_from_the_whole_list_and_follows_the_changes_in_order() -> None:
    presence = Presence()
    assert presence.apply({"type": "join", "user": "bo", "users": ["ada", "bo"], "version": 2})
    assert presence.apply(joined("cy", 3, 3))
    assert presence.apply(left("ada", 2, 4))
    assert presence.apply(joined("ada", 3, 5))
    assert (presence.users, presence.version) == (["bo", "cy", "ada"], 5)


def test_a_skipped_version_says_ask_again_and_the_whole_list_puts_the_copy_right() -> None:
    presence = Presence()
    presence.apply({"type": "join", "user": "ada", "users": ["ada"], "version": 1})
    assert not presence.apply(left("bo", 1, 3))  # 2 (bo's join) never came: bo is not known to leave
    assert presence.apply(joined("cy", 2, 4))  # applied meanwhile, in step with the last one
    assert presence.apply({"type": "users", "users": ["ada", "cy"], "version": 4})
    assert (presence.users, presence.version) == (["ada", "cy"], 4)


def test_a_count_that_disagrees_with_the_copy_says_ask_again() -> None:
    presence = Presence()
    presence.apply({"type": "join", "user": "ada", "users": ["ada"], "version": 1})
    assert not presence.apply(joined("bo", 3, 2))  # the next version, but the room holds 3, not 2


def test_a_change_older_than_the_list_is_ignored_and_an_older_list_too() -> None:
    presence = Presence()
    presence.apply({"type": "users", "users": ["ada", "bo"], "version": 7})
    assert presence.apply(left("ada", 1, 6))
    assert presence.apply({"type": "users", "users": ["ada"], "version": 5})
    assert (presence.users, presence.version) == (["ada", "bo"], 7)


def test_a_change_before_any_list_says_ask_again() -> None:
    presence = Presence()
    assert not presence.apply(joined("bo", 2, 2))
    assert presence.apply({"type": "users", "users": ["ada", "bo"], "version": 2})
    assert presence.users == ["ada", "bo"]


def test_frames_about_something_else_change_nothing() -> None:
    presence = Presence()
    presence.apply({"type": "join", "user": "ada", "users": ["ada"], "version": 1})
    for frame in ({"type": "message", "user": "bo", "content": "hi"}, {"type": "error", "message": "no"}, []):
        assert presence.apply(frame)  # type: ignore[arg-type]
    assert (presence.users, presence.version) == (["ada"], 1)
