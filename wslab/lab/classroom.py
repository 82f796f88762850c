"""A learner's side of the live classroom: each check's verdict reaches the instructor's screen at once.

In chapter 00, one cell joins (opt-in)::

    wslab.join_class("ada", "http://192.168.1.20:8000/", passcode="owl")
    ...
    wslab.leave_class()

From then on, each check's verdict shown in a cell (:class:`~wslab.checks.result.CheckResult`) is sent to the
classroom server (:mod:`wslab.reference.classroom`): the exercise ("2.2"), ✅/❌/⏳, the time and, for a ❌,
the kind of mistake the check found (its first sentence, without quoted values). Never the learner's code.
What the instructor says to the room appears under the next check's verdict, and on the status line the
joining cell shows.

A background thread with its own event loop does the talking (:class:`~wslab.lab.class_member.ClassMember`):
showing a verdict only puts it in a bounded queue (microseconds), and a check never waits for the network.
Joining holds for every chapter's kernel on the machine: the membership and the verdicts are kept in a small
folder (:func:`class_dir`), which a kernel reads when it shows its first check.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Any

from .class_member import ClassJoinError, ClassMember, mistake_of, notice_line

__all__ = ["ClassJoinError", "ClassMember", "join_class", "leave_class", "mistake_of", "shown"]

# -- the notebook's one member ----------------------------------------------------------------------
# Joining in chapter 00 must hold in every chapter's kernel: the membership (name, address, passcode) and the
# verdicts are kept in a small folder on the learner's own machine, which each kernel reads when it shows its
# first check, so that it joins too and a server that restarted gets every chapter's history back.
CLASS_DIR_ENV = "WSLAB_CLASS_DIR"  # where the membership is kept (default ~/.wslab/class)
_member: ClassMember | None = None
_reported: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_looked = False  # this kernel looked for a membership kept by another one


def class_dir() -> Path:
    return Path(os.environ.get(CLASS_DIR_ENV) or Path.home() / ".wslab" / "class")


def join_class(name: str = "", address: str = "", passcode: str | None = None) -> None:
    """Join the live class at ``address`` as ``name`` with the instructor's ``passcode``: from now on each
    check's verdict (never your code) goes to the instructor's screen, from every chapter's notebook.
    Without an address, leaves the class if this machine was in one, and says how to join."""
    global _member, _looked
    if not address:
        left = _forget()
        print(("Left the class: nothing more is sent. " if left else "Not in a class. ") +
              "To join one, fill in your name, the address and the passcode your instructor gives, and run "
              "this cell again. Only each check's ✅/❌/⏳, its time and the kind of mistake are sent: never "
              "your code. wslab.leave_class() leaves.")
        return
    _forget()
    member = ClassMember(name, address, passcode)
    line = _StatusLine()
    member.on_change = line.update
    folder = class_dir()
    folder.mkdir(parents=True, exist_ok=True)
    member.keep_in(folder / "verdicts.jsonl")
    _member = member.start()
    _looked = True
    (folder / "member.json").write_text(json.dumps({"name": name, "address": member.address,
                                                    "passcode": passcode}), encoding="utf-8")
    line.show(member)


def leave_class(*, quiet: bool = False) -> None:
    """Leave the class, in every chapter's notebook: nothing more is sent. Safe to call when not in one."""
    left = _forget()
    if not quiet:
        print("Left the class: nothing more is sent." if left else "Not in a class.")


def _forget() -> bool:
    global _member
    member, _member = _member, None
    if member is not None:
        member.stop()
    kept = [class_dir() / "member.json", class_dir() / "verdicts.jsonl"]
    found = any(path.exists() for path in kept)
    for path in kept:
        path.unlink(missing_ok=True)
    return member is not None or found


def _rejoin() -> str:
    """Join the class another kernel joined (in the background: a check never waits); a line saying so."""
    global _member, _looked
    _looked = True
    try:
        kept = json.loads((class_dir() / "member.json").read_text(encoding="utf-8"))
        member = ClassMember(str(kept["name"]), str(kept["address"]), kept.get("passcode"))
    except (OSError, ValueError, KeyError, TypeError, ClassJoinError):
        return ""
    member.keep_in(class_dir() / "verdicts.jsonl")
    _member = member.start(login_first=False)
    return (f"\n🎓 In class at {member.address} as {member.name}: your verdicts go to your instructor "
            "(wslab.leave_class() stops).")


def shown(result: Any) -> str:
    """Called as a check's verdict is shown: send it (once) if this machine joined a class, and return what
    the instructor said since, as lines to add under it ("" outside a class)."""
    joined = _rejoin() if _member is None and not _looked else ""
    member = _member
    if member is None:
        return ""
    if _reported.get(id(result)) is not result:
        _reported[id(result)] = result
        member.report(result.exercise, result.status, result.summary)
    return joined + "".join(f"\n{line}" for line in member.take_notices())


class _StatusLine:
    """A line under the joining cell that says where the connection stands and what the instructor said last
    (in Jupyter; elsewhere, the first state is printed)."""

    def __init__(self) -> None:
        self.handle: Any = None
        self.last = ""

    def text(self, member: ClassMember) -> str:
        states = {"connecting": "connecting…", "connected": "connected",
                  "offline": f"offline, trying again ({member.problem}); your verdicts wait here",
                  "refused": f"refused: {member.problem}", "left": "left the class"}
        line = f"🎓 Class at {member.address} as {member.name}: {states[member.state]}"
        return f"{line}\n{self.last}" if self.last else line

    def show(self, member: ClassMember) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            get_ipython = None
        if get_ipython is not None and getattr(get_ipython(), "kernel", None) is not None:
            self.handle = display({"text/plain": self.text(member)}, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            print(self.text(member))

    def update(self, member: ClassMember) -> None:
        with member._lock:
            if member._notices:
                self.last = notice_line(member._notices[-1])
        if self.handle is not None:
            self.handle.update({"text/plain": self.text(member)}, raw=True)
