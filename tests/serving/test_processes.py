"""Stopping a launched process group, and never another process that happens to hold its pid."""
from __future__ import annotations

import os
import subprocess

import psutil
import pytest

from serving.processes import MARKER_ENV, LaunchedGroup, group_members, is_launched_group, launched_group, stop_group


@pytest.fixture
def spawn():
    """Start `sh -c SCRIPT` in its own process group; everything started is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(script: str, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(["sh", "-c", script], start_new_session=True, env={**os.environ, **env})
        started.append(process)
        return process

    yield start
    for process in started:
        for pid in group_members(process.pid):
            psutil.Process(pid).kill()
        process.wait(10)


def test_a_launched_group_is_stopped_with_the_children_it_forked(spawn):
    process = spawn("sleep 600 & sleep 600 & wait", **{MARKER_ENV: "server-1"})
    group = launched_group(process.pid, marker="server-1")
    assert is_launched_group(group)
    assert stop_group(group, grace_s=5, process=process)
    assert group_members(process.pid) == [] and process.returncode is not None


def test_no_grace_kills_at_once(spawn):
    process = spawn("trap '' TERM; sleep 600")
    assert stop_group(launched_group(process.pid), grace_s=0, process=process)
    assert process.returncode == -9


def test_a_pid_now_held_by_a_process_started_later_is_left_alone(spawn):
    process = spawn("sleep 600")
    # What was recorded at launch: the same pid, but a process that started a minute earlier.
    recorded = launched_group(process.pid)
    reused = LaunchedGroup(pgid=recorded.pgid, host=recorded.host, started_at=recorded.started_at - 60)
    assert not stop_group(reused, grace_s=1)
    assert process.poll() is None


def test_a_process_without_the_marker_is_not_the_launched_one(spawn):
    process = spawn("sleep 600", **{MARKER_ENV: "someone-else"})
    assert not stop_group(launched_group(process.pid, marker="server-1"), grace_s=1)
    assert process.poll() is None


def test_a_group_recorded_on_another_host_is_never_signalled_here(spawn):
    process = spawn("sleep 600")
    recorded = launched_group(process.pid)
    elsewhere = LaunchedGroup(pgid=recorded.pgid, host=recorded.host + "-other", started_at=recorded.started_at)
    assert not stop_group(elsewhere, grace_s=1)
    assert process.poll() is None


def test_members_left_by_a_dead_leader_are_stopped_when_they_carry_the_marker(spawn):
    process = spawn("sleep 600 & exit 0", **{MARKER_ENV: "server-2"})
    group = launched_group(process.pid, marker="server-2")
    process.wait(10)
    assert len(group_members(process.pid)) == 1  # the orphaned sleep, still in the group
    assert stop_group(group, grace_s=5)
    assert group_members(process.pid) == []


def test_members_of_a_leaderless_group_without_the_marker_are_left_alone(spawn):
    process = spawn("sleep 600 & exit 0")
    process.wait(10)
    assert not stop_group(LaunchedGroup(pgid=process.pid, host=os.uname().nodename, marker="server-3"), grace_s=1)
    assert len(group_members(process.pid)) == 1
