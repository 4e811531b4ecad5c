"""A large queue is planned in a process of its own: the same plan as the daemon's own planner,
its errors raised where it was asked, and a new process when the old one is killed."""

import multiprocessing
import os
import signal
import sys
import threading
import time
from datetime import timedelta

import psutil
import pytest

from conftest import EVENING
from observatory import children, command_line, process_ended
from torosmanager.config import default_config
from torosmanager.scheduler.planner import Constraints, Planner, Target
from torosmanager.scheduler.planning_process import PlanningProcess, PlanningStopped

#: Fields high on the tests' simulated evening at CTMO, each a 10-minute observation.
TARGETS = [Target(f"field-{n}", 330.0 + 3 * n, 30.0 + 2 * n, 1.0 + n % 5, 600.0)
           for n in range(12)]


@pytest.fixture
def planners():
    config = default_config()
    constraints = Constraints.from_settings(config["Observing"])
    apart = PlanningProcess(config["Site"], constraints)
    yield Planner(config["Site"], constraints), apart
    apart.stop()


def summary(plan):
    return ([(entry.id, entry.start, entry.slew) for entry in plan.entries],
            plan.unscheduled, plan.total_priority)


def test_the_plan_made_apart_is_the_daemons_own(planners):
    here, apart = planners
    pointing, free_from = (300.0, 20.0), EVENING + timedelta(minutes=20)
    expected = summary(here.plan(TARGETS, EVENING, pointing, free_from))
    assert expected[0], "some of the targets are planned"
    assert summary(apart.plan(TARGETS, EVENING, pointing, free_from)) == expected


def test_an_error_in_planning_is_raised_to_the_caller(planners):
    here, apart = planners
    broken = TARGETS[:2] + [Target("broken", "not an angle", 30.0, 1.0, 600.0)]
    with pytest.raises(Exception) as in_the_daemon:
        here.plan(broken, EVENING)
    with pytest.raises(type(in_the_daemon.value)):
        apart.plan(broken, EVENING)
    assert summary(apart.plan(TARGETS, EVENING)) == summary(here.plan(TARGETS, EVENING))


def test_a_killed_planning_process_is_replaced(planners):
    here, apart = planners
    apart.plan(TARGETS, EVENING)
    processes = multiprocessing.active_children()
    assert len(processes) == 1
    os.kill(processes[0].pid, signal.SIGKILL)
    processes[0].join(timeout=10)
    assert summary(apart.plan(TARGETS, EVENING)) == summary(here.plan(TARGETS, EVENING))
    assert [child.pid for child in multiprocessing.active_children()] != [processes[0].pid]


def test_stop_ends_the_process(planners):
    _, apart = planners
    apart.plan(TARGETS[:1], EVENING)
    child = multiprocessing.active_children()[0]
    apart.stop()
    child.join(timeout=10)
    assert not child.is_alive()


def test_stop_does_not_wait_for_a_child_still_starting(planners):
    _, apart = planners
    apart.start()  # its imports and first plan take seconds: far from done when stopped
    (child,) = multiprocessing.active_children()
    apart.stop()
    assert not child.is_alive()
    assert child.exitcode == -signal.SIGTERM  # ended, not waited for until it was ready


def test_a_plan_under_way_when_stopped_raises_planning_stopped(planners, caplog):
    _, apart = planners
    outcome = []

    def plan():
        try:
            outcome.append(apart.plan(TARGETS, EVENING))
        except PlanningStopped as stopped:
            outcome.append(stopped)

    asking = threading.Thread(target=plan)
    asking.start()
    deadline = time.monotonic() + 10
    while not multiprocessing.active_children():  # the plan is submitted to a starting child
        assert time.monotonic() < deadline, "no planning process 10 s after the plan was asked"
        time.sleep(0.01)
    apart.stop()
    asking.join(timeout=10)
    assert isinstance(outcome[0], PlanningStopped)
    assert multiprocessing.active_children() == []  # and no new child started for it
    assert "ended unexpectedly" not in caplog.text  # a stop is no failure
    with pytest.raises(PlanningStopped):
        apart.plan(TARGETS, EVENING)


def spawned_children(pid):
    """The processes *pid* has spawned with multiprocessing (their command lines say so)."""
    return [child for child in children(pid)
            if any("spawn_main" in argument for argument in command_line(child))]


def planning_process_of(daemon):
    """The PID of *daemon*'s planning process, once it has spawned it (within 30 s)."""
    deadline = time.monotonic() + 30
    while not (children := spawned_children(daemon.pid)):
        assert time.monotonic() < deadline, "no planning process 30 s after the daemon started"
        time.sleep(0.1)
    (child,) = children
    return child


def test_the_scheduler_starts_its_planning_process_with_it_unless_told_never(make_site):
    usual = make_site(name="usual").start("scheduler")
    never = make_site({"Scheduler": {"Planning Process From": 0}}, name="never")
    never.start("scheduler")
    planning_process_of(usual.daemons["scheduler"])
    assert spawned_children(never.daemons["scheduler"].pid) == []


def test_the_planning_process_yields_the_processors_to_the_front_desk(make_site):
    site = make_site({"Scheduler": {"Planning Process Niceness": 7}}, name="nice")
    daemon = site.start("scheduler").daemons["scheduler"]
    child = planning_process_of(daemon)
    # Every thread: Linux gives each its own nice value. (Set as the child starts: waited for.)
    deadline = time.monotonic() + 30
    while set(_nice_values(child)) != {_nice_values(daemon.pid)[0] + 7}:
        assert time.monotonic() < deadline, f"the planning process's threads are at nice " \
                                            f"{_nice_values(child)}"
        time.sleep(0.1)
    assert set(_nice_values(daemon.pid)) == {os.getpriority(os.PRIO_PROCESS, 0)}


def _nice_values(pid):
    """The nice value of each of *pid*'s threads on Linux; elsewhere (macOS) the process's."""
    if not os.path.isdir(f"/proc/{pid}/task"):
        return [psutil.Process(pid).nice()]
    return [int(_stat_fields(f"/proc/{pid}/task/{task}")[16])
            for task in sorted(os.listdir(f"/proc/{pid}/task"))]


def test_the_planning_process_ends_when_its_daemon_is_killed(make_site):
    site = make_site(name="killed").start("scheduler")
    daemon = site.daemons["scheduler"]
    child = planning_process_of(daemon)
    daemon.kill()  # as a power cut, or the OOM killer, would: it cannot stop its child
    deadline = time.monotonic() + 10
    while not process_ended(child):
        assert time.monotonic() < deadline, "the planning process outlived its daemon by 10 s"
        time.sleep(0.1)


def _stat_fields(directory):
    """The fields of *directory*'s ``stat`` after the command's name: the state first."""
    with open(f"{directory}/stat", encoding="ascii") as stream:
        return stream.read().rsplit(")", 1)[1].split()


def test_ctrl_c_stops_the_scheduler_and_its_planning_process_without_a_traceback(make_site):
    """Ctrl-C in the terminal of a scheduler started by hand reaches its whole process group:
    the planning process too. It ended with a traceback of its own ("Process
    SpawnProcess-1:", KeyboardInterrupt) below the scheduler's clean stop."""
    site = make_site(name="ctrl-c").start("scheduler")
    daemon = site.daemons["scheduler"]  # (stopped by the site if the test fails before)
    child = planning_process_of(daemon)
    # At once: the child is still starting (a second or more of imports), before it ignores
    # Ctrl-C; it was born with SIGINT blocked.
    if sys.platform == "linux":  # (its signal masks are in /proc)
        assert not _ignores(child, signal.SIGINT)
    for pid in (child, daemon.pid):  # as the terminal does to its foreground group
        os.kill(pid, signal.SIGINT)
    assert daemon.process.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while not process_ended(child):
        assert time.monotonic() < deadline, "the planning process outlived its daemon by 10 s"
        time.sleep(0.1)
    stderr = (site.directory / "scheduler.stderr").read_text()
    assert "Traceback" not in stderr and "SpawnProcess" not in stderr, stderr


def _ignores(pid, number):
    """Whether process *pid* ignores signal *number* (its SigIgn mask, in /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        mask = next(line.split()[1] for line in stream if line.startswith("SigIgn:"))
    return bool(int(mask, 16) >> (number - 1) & 1)
