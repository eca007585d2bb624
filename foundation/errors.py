"""The one base class of every error a user can cause and fix.

A bad input file, a missing or stale stage output, a bad setting, a corrupt shard or checkpoint,
an unreachable server: each is a :class:`WebtextError` whose message says what was wrong and
where. ``webtext.cli.main`` turns one into a single line, ``webtext <command>: <message>``, and
its ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WebtextError(Exception):
    """Something the user can fix; the message names what and where."""

    exit_code = 1


class NoOutputError(WebtextError):
    """A stage finished with nothing to pass on (no documents, no tokens). What it made is
    written and committed, so the counts say why; the stages after it are not run."""
