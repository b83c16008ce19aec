"""The task-leak checker: the tasks trio_h2 runs right now, found by walking
the whole task tree from the root, and a bounded wait for a server's
connection tasks to end."""

from __future__ import annotations

from collections.abc import Callable

import trio

POLL = 0.01
"""Seconds between two looks at the task tree."""


def _task_names(wanted: Callable[[str], bool]) -> list[str]:
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if wanted(task.name):
            names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return names


def _connection_task(name: str) -> bool:
    return ("_Server.handle" in name or name.startswith("trio_h2._io.connection.")
            or name.startswith("trio_h2 stream"))


def trio_h2_tasks() -> list[str]:
    """Names of the tasks trio_h2's server runs for connections and streams
    right now: each connection's ``_Server.handle``, its reader, sender and
    timer tasks, and its handlers. (Not the listeners, and not
    trio_h2.testing's client tasks.)"""
    return _task_names(_connection_task)


def all_trio_h2_tasks() -> list[str]:
    """Names of every task of trio_h2 right now: the connection tasks of
    :func:`trio_h2_tasks`, and also the listeners (``trio_h2._io.server.serve``)
    and trio_h2.testing's client tasks."""
    return _task_names(lambda name: "trio_h2" in name or "_Server.handle" in name)


async def tasks_left(limit: float) -> list[str]:
    """Wait up to ``limit`` seconds for the server's connection tasks to end;
    the names of those still running then (polled: no event says a task has
    gone)."""
    for _ in range(int(limit / POLL)):
        if not trio_h2_tasks():
            return []
        await trio.sleep(POLL)
    return trio_h2_tasks()
