"""The preprocessor's local worker processes start ready to work.

Workers are forked from a server that imported :data:`TASK_MODULES` once. Whatever a task
brings with it (its function, a :class:`ScienceTask` with its :class:`Layout`, a
:class:`StackSpec`) must be unpicklable without importing anything more: an import there
(ccdproc, astropy: a fraction of a second) would delay the first frame of every new worker.
"""

import os
import pickle
import subprocess
import sys

import pytest

from observatory import children, process_ended, wait_until
from torosmanager.preprocessor.calibrate import ScienceTask, task_calibrate
from torosmanager.preprocessor.classify import Kind
from torosmanager.preprocessor.executors import (TASK_MODULES, WORKER_DIED, LocalRunner,
                                                 RunnerError)
from torosmanager.preprocessor.layout import Layout
from torosmanager.preprocessor.masters import StackSpec, task_combine_rows, task_flat_level


def tasks():
    layout = Layout.for_frame((64, 80), overscan="[1:8,1:64]", trim="[9:80,1:64]")
    science = ScienceTask(path="light.fits", output="light_reduced.fits", layout=layout,
                          bias="bias.fits", dark=None, flat="flat.fits", exptime=30.0,
                          gain=1.5, cards=(("GAINCOR", 1.5, "e-/ADU"),), history=("x",))
    stack = StackSpec(Kind.FLAT, ("a.fits", "b.fits"), (2.0, 2.0), (1.5, 1.5), (1.0, 1.0),
                      layout, bias="bias.fits")
    return [task_calibrate, task_combine_rows, task_flat_level, science, stack]


def test_a_task_needs_no_import_beyond_the_preloaded_modules():
    program = (
        "import pickle, sys\n"
        f"for name in {list(TASK_MODULES)!r}:\n"
        "    __import__(name)\n"
        "before = set(sys.modules)\n"
        f"pickle.loads({pickle.dumps(tasks())!r})\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n")
    imported = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              check=True, timeout=120).stdout.split()
    assert imported == []


def test_workers_start_with_the_task_modules_imported():
    runner = LocalRunner(1)
    try:
        # A builtin and a string: nothing of this test's own is imported in the worker.
        [(_, loaded, error)] = list(runner.run(eval, [("sorted(__import__('sys').modules)",)]))
    finally:
        runner.close()
    assert error is None
    assert set(TASK_MODULES) <= set(loaded)


def test_workers_start_under_a_temporary_directory_too_long_for_a_socket(tmp_path):
    # The fork server's socket goes in TMPDIR/pymp-XXXXXXXX/: here past any Unix socket's
    # limit (103 characters on macOS, 107 on Linux), as under the demo's TMPDIR on macOS.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    program = ("from torosmanager.preprocessor.executors import LocalRunner\n"
               "runner = LocalRunner(1)\n"
               "try:\n"
               "    [(_, answer, error)] = list(runner.run(abs, [(-3,)]))\n"
               "finally:\n"
               "    runner.close()\n"
               "print(answer, error)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, TMPDIR=str(deep)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3", "None"]
    assert list(deep.iterdir()) == []  # nothing left in TMPDIR


def test_a_dead_worker_is_said_so_whether_a_result_or_the_next_task_finds_it():
    runner = LocalRunner(1)
    try:
        # A worker that ends abruptly (os._exit: as SIGKILL or the out-of-memory killer would).
        with pytest.raises(RunnerError) as from_result:
            list(runner.run(os._exit, [(1,)]))
        # The pool is now unusable: the next task's submission finds it so.
        with pytest.raises(RunnerError) as from_submission:
            list(runner.run(abs, [(-3,)]))
    finally:
        runner.close()
    assert str(from_result.value) == str(from_submission.value) == WORKER_DIED
    assert runner.broken


#: Starts a pool of two local workers, each on a long task, says so, and waits to be killed.
OWNER = """
import sys, time
from torosmanager.preprocessor.executors import LocalRunner
runner = LocalRunner(2)
futures = [runner._pool.submit(time.sleep, 600) for _ in range(2)]
while len(runner._pool._processes) < 2:
    time.sleep(0.05)
print("ready", flush=True)
time.sleep(600)
"""


def descendants(pid):
    """Every process started by *pid* or by one of them, on Linux's /proc."""
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def test_workers_and_their_fork_server_end_when_their_owner_is_killed():
    # A daemon killed (kill -9, out of memory) does not shut its pool down: its workers, on
    # a task or waiting for one, and the fork server, would live on, outliving restarts.
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline() == "ready\n"
        left = descendants(owner.pid)
        assert len(left) >= 3  # the fork server, its two workers (and a resource tracker)
    finally:
        owner.kill()
        owner.wait()
    wait_until(lambda: all(process_ended(pid) for pid in left), "the workers to end", patience=30)
