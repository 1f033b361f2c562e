"""Attacks on the grader, handed in as submissions of lesson 01.

Each attack sits in the body of an answer function, so it runs when the check calls it. The
grader must end every run with a record, other exercises and other students must keep their
marks, nothing the submission started may outlive its grading, and nothing may be written
outside the worker's private scratch. The process marker below names every process an attack
starts, so the whole process table can be searched for them afterwards.
"""
import csv
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import nbformat
import psutil
import pytest

from tests.test_grading import ALL_RIGHT, FAST, FULL, LESSON, RIGHT, SOLVED, with_answers
from utils import grading, lessons

MARKER = f"grading-attack-{uuid.uuid4().hex[:12]}"
WRITABLE_INSIDE = ["/dev/shm", "/tmp"]  # private to the worker: writes there vanish with it
DEADLINE = 120.0  # seconds to wait for a killed worker's processes to disappear
# the forger's worker restarts twice: on a busy machine three starts can outlast FAST's notebook limit
LIMITS = dataclasses.replace(FAST, notebook_seconds=10 * FAST.notebook_seconds)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux's")


def wrapped(name: str, attack: str, prelude: str = "") -> str:
    """The solution's answer cell for ``name``, whose function first runs ``attack``."""
    body = "\n".join("    " + line for line in attack.strip().splitlines())
    return (f"{RIGHT['01-' + name]}\n{prelude}\n_right_{name} = {name}\n\n"
            f"def {name}(*args):\n{body}\n    return _right_{name}(*args)\n")


FORGE = """
import os, struct

def forge(payload):
    for fd in range(3, 64):
        try:
            os.set_blocking(fd, False)
            os.write(fd, struct.pack(">I", len(payload)) + payload)
        except OSError:
            pass
"""


def forger() -> bytes:
    """Writes replies of its own to every descriptor: a list, and a list nested 5000 deep."""
    return with_answers(**dict(ALL_RIGHT, relu=wrapped("relu", 'forge(b"[]")', FORGE),
                               tanh=wrapped("tanh", 'forge(b"[" * 5000 + b"]" * 5000)', FORGE)))


def intruder(own_mount: str = "/nonexistent") -> bytes:
    """Signals its parent and process group, leaves a detached process, starts processes
    until refused, and writes wherever it can."""
    signals = """
for attack in (lambda: os.kill(os.getppid(), signal.SIGKILL),
               lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGTERM)):
    try:
        attack()
    except OSError:
        pass
"""
    escape = f"""
if not _escaped:
    _escaped.append(True)
    if os.fork() == 0:  # double fork + setsid: reparented away from the worker
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", [{MARKER!r}, "600"])
        os._exit(0)
    os.wait()
"""
    fork_loop = f"""
started = 0
try:
    while started < 500:
        subprocess.Popen([{MARKER!r}, "600"], executable="/bin/sleep")
        started += 1
except OSError as error:
    raise RuntimeError(f"started {{started}} processes, then: {{error}}")
raise RuntimeError(f"started {{started}} processes and was never refused")
"""
    writes = f"""
wrote, refused = [], []
for folder in {[*WRITABLE_INSIDE, str(lessons.ROOT), own_mount]!r}:
    try:
        with open(os.path.join(folder, {MARKER!r}), "w") as file:
            file.write("x")
        wrote.append(folder)
    except OSError:
        refused.append(folder)
raise RuntimeError(f"wrote in {{wrote}}, refused in {{refused}}")
"""
    return with_answers(**dict(ALL_RIGHT, sigmoid=wrapped("sigmoid", signals, "import os, signal"),
                               tanh=wrapped("tanh", escape, "import os\n_escaped = []"),
                               relu=wrapped("relu", fork_loop, "import subprocess"),
                               neuron=wrapped("neuron", writes, "import os")))


def marked_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(MARKER in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def assert_nothing_left(folders=(*WRITABLE_INSIDE, str(lessons.ROOT))) -> None:
    deadline = time.monotonic() + DEADLINE
    while marked_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not marked_processes(), "a process started by a submission outlived its grading"
    assert not [f for f in folders if os.path.exists(os.path.join(f, MARKER))], "a submission wrote outside scratch"


def by_name(result) -> dict:
    return {e.exercise.removeprefix("01-"): e for e in result.exercises}


def require_sandbox(result) -> None:
    if not result.sandboxed:
        pytest.skip("this system does not allow the worker's namespaces: the attacks ran unconfined")


def test_forged_replies_cost_the_forger_those_exercises_only():
    result = grading.grade_notebook(forger(), LESSON, LIMITS)
    graded = by_name(result)
    assert result.status == "graded", result
    for name in ("relu", "tanh"):
        assert graded[name].points == 0 and "sent back" in graded[name].message, graded[name]
    assert {n for n, e in graded.items() if e.status == "passed"} == {n.removeprefix("01-") for n in RIGHT} - {
        "relu", "tanh"}


def test_signals_detached_processes_fork_loops_and_writes_stay_inside():
    result = grading.grade_notebook(intruder(), LESSON, LIMITS)
    assert_nothing_left()
    require_sandbox(result)
    graded = by_name(result)
    assert graded["sigmoid"].status == "passed", graded["sigmoid"]  # the signals reached no one
    assert graded["tanh"].status == "passed", graded["tanh"]
    assert "Resource temporarily unavailable" in graded["relu"].message, graded["relu"]
    assert f"wrote in {WRITABLE_INSIDE}, refused in ['{lessons.ROOT}'" in graded["neuron"].message, graded["neuron"]
    assert "own PID namespace" in result.isolation and "no network" in result.isolation


def can_mount() -> bool:
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def test_a_class_with_attackers_is_graded_in_full(tmp_path):
    """``python -m utils.grade`` in a mount namespace of its own, where a tmpfs sits on a folder
    of its own: read-only must reach it too (a remount of / alone would not)."""
    # not under /tmp, which the worker covers with its own: the folder must be visible inside
    own_mount = pathlib.Path(tempfile.mkdtemp(prefix="grading-own-mount-", dir="/var/tmp"))
    listing = tmp_path / "listing"
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    for student, data in [("alice", nbformat.writes(SOLVED).encode()), ("eve", forger()),
                          ("mallory", intruder(str(own_mount)))]:
        (submissions / student).mkdir(parents=True)
        (submissions / student / f"{LESSON}.ipynb").write_bytes(data)
    grade = [sys.executable, "-m", "utils.grade", str(submissions), "--out", str(out), "--jobs", "2",
             "--cell-timeout", str(FAST.cell_seconds), "--call-timeout", str(FAST.call_seconds),
             "--notebook-timeout", str(LIMITS.notebook_seconds), "--memory-mb", str(FAST.memory_mb)]
    mounted = can_mount()
    if mounted:
        script = 'mount -t tmpfs tmpfs "$0" && "$@"; code=$?; ls -A "$0" > "$LISTING"; exit $code'
        grade = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(own_mount), *grade]
    try:
        run = subprocess.run(grade, cwd=lessons.ROOT, capture_output=True, text=True,
                             env=dict(os.environ, LISTING=str(listing)), timeout=900)
    finally:
        shutil.rmtree(own_mount, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out / "gradebook.csv") as file:
        book = {row["student"]: row for row in csv.DictReader(file)}
    assert set(book) == {"alice", "eve", "mallory"}
    assert float(book["alice"]["total"]) == FULL
    assert_nothing_left()
    if not mounted:
        pytest.skip("cannot create a mount here (needs root or CAP_SYS_ADMIN): read-only on a folder "
                    "with a mount of its own is untested")
    assert listing.read_text() == "", "a submission wrote into a folder on its own mount"


def worker_processes(pid: int) -> list[psutil.Process]:
    """The processes below ``pid`` that run utils/worker.py; not the short-lived ones that
    importing the course starts (``uname -p``), which an earlier version of the test mistook
    for a worker."""
    found = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if any(part.endswith("worker.py") for part in process.cmdline()):
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_what_a_killed_grader_leaves_is_removed_by_the_next():
    """A grader killed outright cannot remove its worker's scratch folder or cgroup; the next
    grader removes those of graders that have gone, and nothing of one still running."""
    looping = with_answers(**dict(ALL_RIGHT, tanh="while True:\n    pass"))
    grader = subprocess.Popen([sys.executable, "-c", "import sys; from utils import grading; "
                               "grading.grade_notebook(sys.stdin.buffer.read(), sys.argv[1])", LESSON],
                              cwd=lessons.ROOT, stdin=subprocess.PIPE)
    grader.stdin.write(looping)
    grader.stdin.close()
    deadline = time.monotonic() + DEADLINE
    while len(workers := worker_processes(grader.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the warm Python and the relay it forked: a worker has started
    assert len(workers) >= 2, "the grader never started a worker"
    grader.kill()
    grader.wait()
    psutil.wait_procs(workers, timeout=DEADLINE)  # a worker ends once it sees its grader gone
    left = list(pathlib.Path(tempfile.gettempdir()).glob(f"{grading.SCRATCH_PREFIX}{grader.pid}-*"))
    assert left, "the killed grader's scratch folder is already gone: nothing to test"
    ours = pathlib.Path(tempfile.mkdtemp(prefix=f"{grading.SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        grading.remove_abandoned()
        assert not [folder for folder in left if folder.exists()]
        assert not grading.sandbox.process_limit_names(f"{grading.SCRATCH_PREFIX}{grader.pid}-")
        assert ours.exists(), "removed the scratch folder of a grader that still runs"
    finally:
        shutil.rmtree(ours)
