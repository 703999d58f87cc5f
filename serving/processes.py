"""Stopping a process group the platform started, and only that one: the one home of the rule.

A stored pid is only a number: once the process it named is gone the kernel may give the number
to any other process, which `killpg` would then end. So a group is stopped only when it is still
the one that was launched:
- on the host that launched it (a pid means nothing on another machine);
- its leader, when alive, started at the recorded time (`psutil.Process.create_time()`, which a
  reused pid cannot share) and, when a marker is given, carries it in its command line or in the
  `MARKER_ENV` variable of its environment (which its children inherit);
- a group whose leader is gone is stopped only if one of its members carries the marker.

The launcher (a vLLM server), the runs app (a training recipe) and the generation app (a
launched vLLM server, stopped by a task on the worker that started it) all call `stop_group`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import psutil

# Set in the environment of every process group the platform starts; the value is its marker.
MARKER_ENV = "RLHF_LOOP_PROCESS"
# create_time() is a float rounded by the kernel's clock ticks; two readings of one process agree
# to far better than this, and a reused pid starts later by at least the life of the first.
_CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class LaunchedGroup:
    """What identifies a launched process group beyond its id: where and when, and its marker."""

    pgid: int
    host: str
    started_at: float | None = None
    marker: str = ""


def launched_group(pid: int, *, marker: str = "") -> LaunchedGroup:
    """The identity of a group leader just started (call it right after Popen, on its host)."""
    try:
        started_at = psutil.Process(pid).create_time()
    except psutil.Error:
        started_at = None
    return LaunchedGroup(pgid=pid, host=socket.gethostname(), started_at=started_at, marker=marker)


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies, already dead but not yet reaped, do not count)."""
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _carries_marker(process: psutil.Process, marker: str) -> bool:
    try:
        for _ in range(50):
            cmdline = process.cmdline()
            # A process caught inside execve() shows neither command line nor environment yet.
            if cmdline:
                break
            time.sleep(0.01)
        if marker in " ".join(cmdline):
            return True
        return process.environ().get(MARKER_ENV) == marker
    except psutil.Error:
        return False


def is_launched_group(group: LaunchedGroup) -> bool:
    """Whether process group `group.pgid` on this host is still the one that was launched."""
    if group.host != socket.gethostname():
        return False
    try:
        leader = psutil.Process(group.pgid)
        alive = leader.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    except psutil.Error:
        return False
    if alive:
        try:
            if os.getpgid(leader.pid) != group.pgid:
                return False  # the pid now belongs to a process of another group
            if group.started_at is not None and abs(leader.create_time() - group.started_at) > _CREATE_TIME_TOLERANCE_S:
                return False
        except (ProcessLookupError, psutil.Error):
            return False
        return not group.marker or _carries_marker(leader, group.marker)
    if not group.marker:
        return False
    for pid in group_members(group.pgid):
        try:
            if _carries_marker(psutil.Process(pid), group.marker):
                return True
        except psutil.Error:
            continue
    return False


def stop_group(group: LaunchedGroup, *, grace_s: float = 10.0, process: subprocess.Popen | None = None) -> bool:
    """SIGTERM the group, SIGKILL what is left after `grace_s` (0: SIGKILL at once, for what a
    dead worker left behind), and wait until no member lives.

    Returns False, signalling nothing, when the group is not the launched one any more (another
    host, a reused pid, already gone). `process`, the leader's Popen when the caller has it, is
    reaped so it leaves no zombie.
    """
    if not is_launched_group(group):
        if process is not None:
            _reap(process, 0)
        return False
    if grace_s > 0:
        _signal(group.pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while grace_s > 0 and group_members(group.pgid) and time.monotonic() < deadline:
        if process is not None:
            process.poll()  # reap the leader as soon as it exits
        time.sleep(0.1)
    # Members forked into the group may outlive the leader, or ignore SIGTERM.
    _signal(group.pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while group_members(group.pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process is not None:
        _reap(process, 10)
    return True


def _reap(process: subprocess.Popen, timeout_s: float) -> None:
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
