"""The grading engine behind ``python -m utils.check`` (learners) and ``python -m utils.grade``.

Student code never judges itself. For each submission the engine
1. reads the notebook without changing it, and refuses what is not a notebook of the lesson;
2. rebuilds it from the official lesson, keeping only the student's answer cells (matched by
   exercise id in their metadata) and leaving out check cells and cells tagged
   ``skip-grading`` (training and plots no answer needs);
3. runs those cells in a fresh worker (``utils/worker.py``, forked from a warm Python by
   ``utils/warm.py``), sandboxed where the system allows (``utils/sandbox.py``), with limits
   on time, memory and printed output;
4. runs each exercise's check here, in the grader's process: the check draws its inputs now,
   the student's function is called in the worker through a :class:`Remote` stand-in, and
   the results come back as plain arrays (``utils/wire.py``: JSON, never pickles, every reply
   checked) to be compared with references computed here.
Whatever a submission does, grading it ends with a record (:func:`grade_notebook`).
"""
import ast
import builtins
import dataclasses
import json
import os
import pathlib
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import nbformat
import psutil

from utils import checks, lessons, sandbox, warm
from utils.wire import HEADER, MAX_MESSAGE, Handle, WorkerFailed, decode, encode, frame, parse_reply

SKIP_TAG = "skip-grading"
POLL_SECONDS = 0.2
CLOSE_SECONDS = 60.0  # for a killed worker's processes to be gone
SCRATCH_PREFIX = "course-grading-"  # then the grader's PID: course-grading-1234-…
COPY_SUFFIX = re.compile(r"(-Copy\d+| \(\d+\)|-checkpoint)+$")  # Jupyter's and browsers' copies
# Student code's only search path: this Python's and the system's, never the instructor's own
# (the grader's PATH names folders in their home, and everything else in its environment is theirs).
STUDENT_PATH = os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"])
# The largest solution notebook, outputs and plots included, is under 1 MB and 100 cells: these
# leave a learner's outputs room, and keep a hostile file from filling the grader's memory.
MAX_NOTEBOOK_BYTES = 32 * 2**20
MAX_CELLS = 2_000
# Solution notebooks hold about 1,000 JSON objects and arrays. Parsed, each costs ~100 bytes, so a
# file of nothing but "[]," would take ~1 GB: its "{" and "[" are counted (strings too, an upper
# bound) before it is parsed.
MAX_CONTAINERS = 1_000_000

# The statuses of a notebook the grader does not run (NotebookResult.status).
UNREADABLE = "unreadable"  # not UTF-8, not JSON, or not a notebook's structure
REFUSED_SYMLINK = "refused: symlink"
REFUSED_SPECIAL = "refused: not a regular file"  # a FIFO, a device, a socket, a folder
REFUSED_TOO_LARGE = "refused: too large"  # more than MAX_NOTEBOOK_BYTES, MAX_CELLS or MAX_CONTAINERS
REFUSED_TOO_DEEP = "refused: nested too deep"  # JSON deeper than Python's parser recurses
SYMLINK_MESSAGE = "the file is a symbolic link; only regular files are graded, links are not followed"
TOO_DEEP_MESSAGE = "not a notebook: its JSON is nested deeper than a notebook's"


@dataclasses.dataclass
class Limits:
    """How much one submission may take. A learner's check and an instructor's run share them."""
    cell_seconds: float = 60.0
    call_seconds: float = 30.0
    notebook_seconds: float = 300.0
    startup_seconds: float = 120.0
    memory_mb: int = 4096
    output_mb: float = 5.0
    restarts: int = 3


@dataclasses.dataclass
class ExerciseResult:
    exercise: str
    points: float
    max_points: float
    status: str  # passed, failed, not attempted, missing, not graded
    message: str
    seconds: float


@dataclasses.dataclass
class NotebookResult:
    lesson: str
    status: str  # graded, wrong lesson, unknown lesson, gave up, or UNREADABLE or a REFUSED_… above
    message: str
    exercises: list[ExerciseResult]
    seconds: float
    sandboxed: bool | None = None
    isolation: list[str] = dataclasses.field(default_factory=list)

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)


class BadSubmission(Exception):
    """The file is not a notebook the grader will read; ``status`` says which kind of refusal,
    the message what the file is instead (never where a link points: that is not the student's
    to learn, nor the instructor's to publish in a feedback file)."""

    def __init__(self, message: str, status: str = UNREADABLE):
        super().__init__(message)
        self.status = status


class GaveUp(BaseException):
    """Grading this notebook cannot go on (time used up, too many crashes).

    A BaseException, so that no check's ``except Exception`` can mistake it for a wrong answer.
    """


# ---------------------------------------------------------------------------------------
# The grader's side.


def _remote_error(error: dict) -> Exception:
    """An exception like the one raised in the worker: the built-in class where there is one
    (so ``except AttributeError`` still works), else a class of the same name; never one that
    could stop the grader, such as SystemExit."""
    name, message = error.get("type", "Exception"), str(error.get("message", ""))
    name = name if isinstance(name, str) and name.isidentifier() else "Exception"
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin(message)
    return type(name, (Exception,), {})(message)


def remove_abandoned() -> None:
    """Remove the scratch folders and cgroups of graders that were killed outright (a grader
    removes its own when it closes a worker): those named after a process that has gone."""
    def abandoned(name: str) -> bool:
        pid = name.removeprefix(SCRATCH_PREFIX).split("-")[0]
        return pid.isdigit() and not psutil.pid_exists(int(pid))

    for folder in pathlib.Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        if abandoned(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
    for name in sandbox.process_limit_names(SCRATCH_PREFIX):
        if abandoned(name):
            sandbox.remove_process_limit(name)


class Worker:
    """One worker (``utils/worker.py``: a relay and, behind it, the sandboxed process that runs
    the student's code), with its scratch folder and the limits it must keep."""

    unconfined = False  # set once this system has refused to build the sandbox
    tidied = False  # set once this grader has removed what killed graders left behind

    def __init__(self, limits: Limits, hidden: list[pathlib.Path]):
        if not Worker.tidied:
            remove_abandoned()
            Worker.tidied = True
        self.limits = limits
        self.memory_checked = -POLL_SECONDS  # monotonic time of the last look at the worker's memory
        self.scratch = pathlib.Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        (self.scratch / "work").mkdir()
        self.log = open(self.scratch / "output.log", "wb")
        env = {
            "PATH": STUDENT_PATH,
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",  # grade on the CPU: parallel workers must not share a GPU
        }
        argv = ["--scratch", str(self.scratch / "work"), "--repo", str(lessons.ROOT),
                "--output-limit", str(int(limits.output_mb * 2**20))]
        for path in hidden:
            argv += ["--hide", str(path)]
        if Worker.unconfined:
            argv.append("--no-sandbox")
        try:
            self.process = warm.start(argv, self.log, env, lessons.ROOT, limits.startup_seconds)
        except OSError as error:
            self.log.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise WorkerFailed(f"could not start ({error})") from None
        try:
            greeting = self._receive(limits.startup_seconds, "starting Python", "greeting")
        except WorkerFailed:
            if self.process.returncode != sandbox.UNAVAILABLE or Worker.unconfined:
                raise
            Worker.unconfined = True  # namespaces, but no sandbox in them: run as where there are none
            self.__init__(limits, hidden)
            return
        self.sandboxed, self.isolation = greeting["sandboxed"], greeting["isolation"]

    def request(self, message: dict, seconds: float, doing: str, kind: str) -> dict:
        """Send one request and return the worker's checked reply (see wire.parse_reply)."""
        try:
            self.process.stdin.write(frame(json.dumps(message).encode()))
            self.process.stdin.flush()
        except OSError:
            raise self._died(doing) from None
        return self._receive(seconds, doing, kind)

    def _receive(self, seconds: float, doing: str, kind: str) -> dict:
        deadline = (time.monotonic() + seconds, seconds)
        size = HEADER.unpack(self._read(HEADER.size, deadline, doing))[0]
        try:
            if size > MAX_MESSAGE:
                raise WorkerFailed(f"sent back more than {MAX_MESSAGE // 2**20} MB")
            return parse_reply(self._read(size, deadline, doing), kind)
        except WorkerFailed as failure:
            self.close()
            raise WorkerFailed(f"the notebook {failure} while {doing}") from None

    def _read(self, size: int, deadline: tuple[float, float], doing: str) -> bytes:
        fd, data = self.process.stdout.fileno(), b""
        while len(data) < size:
            if time.monotonic() > deadline[0]:
                self.close()
                raise WorkerFailed(f"took longer than {deadline[1]:.0f} s while {doing} (an infinite loop?)")
            if self._memory_exceeded():
                self.close()
                raise WorkerFailed(f"used more than {self.limits.memory_mb} MB of memory while {doing}")
            if select.select([fd], [], [], POLL_SECONDS)[0]:
                chunk = os.read(fd, size - len(data))
                if not chunk:
                    raise self._died(doing)
                data += chunk
        return data

    def _processes(self) -> list[psutil.Process]:
        """The relay's descendants: the sandboxed process and whatever student code started
        (the relay is their reaper, so even detached ones stay below it)."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return []

    def _memory_exceeded(self) -> bool:
        """Whether the worker holds more memory than allowed, looked at every POLL_SECONDS at
        most: summing its processes' memory reads /proc for every process on the machine, which
        took longer than a whole call when done for every reply."""
        now = time.monotonic()
        if now - self.memory_checked < POLL_SECONDS:
            return False
        self.memory_checked = now
        return self._memory_mb() > self.limits.memory_mb

    def _memory_mb(self) -> float:
        total = 0
        for process in self._processes():
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def _died(self, doing: str) -> WorkerFailed:
        code = self.process.wait()
        self.close()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return WorkerFailed(f"the Python process running the notebook died ({how}) while {doing}")

    def close(self) -> None:
        """Kill the worker and everything it started; return when they are gone."""
        if self.process.poll() is None:
            for process in self._processes():  # in a PID namespace, killing its init kills the rest
                try:
                    process.kill()
                except psutil.Error:
                    pass
            try:  # the relay exits once its child has, and a namespace's init only once it is empty
                self.process.wait(CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        sandbox.remove_process_limit(self.scratch.name)
        for stream in (self.process.stdin, self.process.stdout, self.log):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.scratch, ignore_errors=True)


class Remote(Handle):
    """Stands in, in the grader, for an object in the worker: a student's function or layer.

    Calling it, or a method of it, runs the call in the worker and brings back the result:
    tensors as tensors, arrays as arrays, anything else as another Remote.
    """

    def __init__(self, session: "Session", handle: int, name: str):
        super().__init__(handle)
        self._session, self._name = session, name

    def __call__(self, *args, **kwargs):
        return self._session.call("call", self._handle, args, kwargs, f"calling {self._name}")

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._session.call("getattr", self._handle, name=name, doing=f"reading {self._name}.{name}")

    def value_and_gradient(self, *args_then_wrt):
        """``(f(*args), d sum f / d args[wrt])`` by tf.GradientTape where the function lives;
        called as ``value_and_gradient(*args, wrt)``, see utils.checks.value_and_gradient."""
        return self._session.call("gradient", self._handle, args_then_wrt, {}, f"differentiating {self._name}")

    def __repr__(self) -> str:
        return f"<{self._name} in the grading worker>"


class Session:
    """Runs a rebuilt notebook in a worker; after a crash or a timeout it starts a new worker
    and replays the cells that had run, so one bad cell costs one exercise, not all."""

    def __init__(self, cells: list[str], limits: Limits, hidden: list[pathlib.Path]):
        self.cells, self.limits, self.hidden = cells, limits, hidden
        self.deadline = time.monotonic() + limits.notebook_seconds
        self.errors: dict[int, str] = {}
        self.ran: list[int] = []
        self.restarts = 0
        self.worker = Worker(limits, hidden)

    def seconds_left(self, cap: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GaveUp(f"the notebook's time limit of {self.limits.notebook_seconds:.0f} s was reached")
        return min(cap, left)

    def run_cells(self) -> None:
        for index, source in enumerate(self.cells):
            try:
                reply = self.worker.request({"op": "cell", "source": source}, self.seconds_left(self.limits.cell_seconds),
                                            f"running cell {index}", "cell")
            except WorkerFailed as failure:
                self.errors[index] = str(failure)
                self.restart()
                continue
            if not reply["ok"]:
                self.errors[index] = f"{reply['error']['type']}: {reply['error']['message']}"
            self.ran.append(index)

    def restart(self) -> None:
        self.worker.close()
        self.restarts += 1
        if self.restarts > self.limits.restarts:
            raise GaveUp(f"gave up after {self.limits.restarts} restarts of the crashed notebook")
        try:
            self.worker = Worker(self.limits, self.hidden)
            for index in self.ran:
                self.worker.request({"op": "cell", "source": self.cells[index]},
                                    self.seconds_left(self.limits.cell_seconds), f"replaying cell {index}", "cell")
        except WorkerFailed as failure:
            raise GaveUp(f"could not restart the notebook after a crash: {failure}") from None

    def lookup(self, name: str) -> Remote:
        return self.call("lookup", name=name, doing=f"looking up {name}", label=name)

    def call(self, op: str, handle: int | None = None, args=(), kwargs=None, doing: str = "",
             name: str | None = None, label: str | None = None):
        message = {"op": op, "handle": handle, "name": name,
                   "args": encode(list(args)), "kwargs": encode(kwargs or {})}
        try:
            reply = self.worker.request(message, self.seconds_left(self.limits.call_seconds), doing, "value")
        except WorkerFailed as failure:
            self.restart()
            raise TimeoutError(str(failure)) if "longer than" in str(failure) else RuntimeError(str(failure))
        if reply.get("not_implemented"):
            raise NotImplementedError()
        if not reply["ok"]:
            raise _remote_error(reply["error"])
        try:
            return decode(reply["value"], lambda h: Remote(self, h, label or name or doing.split()[-1]))
        except Exception as error:  # well-formed JSON that is no value the grader could have asked for
            self.restart()
            raise RuntimeError(f"the notebook sent back a malformed value while {doing} "
                               f"({type(error).__name__})") from None

    def close(self) -> None:
        self.worker.close()


# ---------------------------------------------------------------------------------------
# Reading submissions and grading one notebook.


def read_submission(path: pathlib.Path) -> bytes:
    """The bytes of a submitted file, or BadSubmission: a symlink (to the solutions, to another
    student's notebook, to a file of the instructor's) is refused, not followed; a FIFO, a
    device or a socket is refused without being opened, so it can neither block the run nor
    act on a device; a file larger than MAX_NOTEBOOK_BYTES is refused without being read.

    What ``lstat`` saw is checked again on the opened descriptor (opened without following a
    link and without blocking), so a file swapped between the look and the open is refused too."""
    try:
        seen = os.lstat(path)
        if not _regular(seen):
            raise _refusal(seen)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        if os.path.islink(path):  # replaced by a link since the lstat: O_NOFOLLOW's ELOOP
            raise BadSubmission(SYMLINK_MESSAGE, REFUSED_SYMLINK) from None
        raise BadSubmission(f"the file cannot be read ({error.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        opened = os.fstat(file.fileno())
        if not _regular(opened):
            raise _refusal(opened)
        check_size(opened.st_size)
        data = file.read(MAX_NOTEBOOK_BYTES + 1)  # + 1: a file still growing is refused too
    check_size(len(data))
    return data


def _regular(status: os.stat_result) -> bool:
    return stat.S_ISREG(status.st_mode)


def _refusal(status: os.stat_result) -> BadSubmission:
    if stat.S_ISLNK(status.st_mode):
        return BadSubmission(SYMLINK_MESSAGE, REFUSED_SYMLINK)
    return BadSubmission("the file is not a regular file (a pipe, a device, a socket or a folder)", REFUSED_SPECIAL)


def check_size(size: int) -> None:
    if size > MAX_NOTEBOOK_BYTES:
        raise BadSubmission(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB", REFUSED_TOO_LARGE)


def notebook_json(data: bytes) -> dict:
    """A submission's JSON, with a list of cells, or BadSubmission: the one parser every reader
    of submissions goes through (grading, ``lesson_of``, the similarity report), so that a
    hostile file (200,000 nested lists, 20,000 cells, 150 MB, millions of empty lists) gets a
    status in all of them instead of crashing one or filling the grader's memory."""
    check_size(len(data))
    if data.count(b"{") + data.count(b"[") > MAX_CONTAINERS:
        raise BadSubmission(f"the file holds more than {MAX_CONTAINERS:,} JSON objects and arrays", REFUSED_TOO_LARGE)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSubmission("not a notebook: the file is not UTF-8 text") from None
    try:
        raw = json.loads(text)
    except RecursionError:
        raise BadSubmission(TOO_DEEP_MESSAGE, REFUSED_TOO_DEEP) from None
    except ValueError as error:
        raise BadSubmission(f"not a notebook: the file is not valid JSON ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise BadSubmission("not a notebook: valid JSON, but without the list of cells a notebook has")
    if len(raw["cells"]) > MAX_CELLS:
        raise BadSubmission(f"the notebook has more than {MAX_CELLS} cells", REFUSED_TOO_LARGE)
    return raw


def read_notebook(data: bytes):
    """Parse a submission, or raise BadSubmission saying what it is instead."""
    notebook_json(data)
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        for cell in notebook.cells:
            assert isinstance(cell.get("source"), str) and isinstance(cell.get("metadata", {}), dict)
    except RecursionError:  # shallow enough for json, too deep for nbformat's validation
        raise BadSubmission(TOO_DEEP_MESSAGE, REFUSED_TOO_DEEP) from None
    except Exception as error:  # nbformat raises many types for many kinds of damage
        raise BadSubmission(f"not a notebook: damaged notebook structure ({type(error).__name__})") from None
    return notebook


def student_answers(notebook) -> dict[str, list[str]]:
    """Answer-cell sources by exercise id, in notebook order (duplicates kept)."""
    answers: dict[str, list[str]] = {}
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if cell.get("cell_type") == "code" and isinstance(meta, dict) and meta.get("solution"):
            exercise_id = meta.get("grade_id")
            if isinstance(exercise_id, str):
                answers.setdefault(exercise_id, []).append(cell.source)
    return answers


def answered_name(check_source: str) -> str:
    """The name a check cell hands to ``utils.check_exercise`` (e.g. ``sigmoid``)."""
    for node in ast.walk(ast.parse(check_source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "check_exercise":
            return node.args[1].id
    raise ValueError("check cell without utils.check_exercise(id, name)")


def official_lesson(lesson: str):
    path = lessons.LESSONS / f"{lesson}.ipynb"
    return nbformat.read(path, as_version=4)


def lesson_names() -> list[str]:
    return [path.stem for path in lessons.solution_paths()]


def hidden_folders(*extra: pathlib.Path) -> list[pathlib.Path]:
    """What student code must never see: the solutions, and the caller's folders."""
    return [lessons.SOLUTIONS, *extra]


def grade_notebook(data: bytes, lesson: str, limits: Limits | None = None,
                   hidden: list[pathlib.Path] | None = None) -> NotebookResult:
    """Grade one submission of ``lesson`` (e.g. "01_neurons_and_activations").

    Always returns a record, whatever the submission does: anything unexpected becomes
    "gave up" with the reason, so one notebook never stops a class's run.
    """
    start = time.monotonic()
    try:
        return _grade(data, lesson, limits or Limits(), hidden or hidden_folders(), start)
    except Exception as error:
        return _not_graded(lesson, _exercises_of(lesson), "gave up", "the grader could not finish this notebook "
                           f"({type(error).__name__}: {error})", start)


def refused(lesson: str, error: BadSubmission) -> NotebookResult:
    """The record of a file the grader would not read (see read_submission): every exercise of
    the lesson not graded, for the reason given."""
    return _not_graded(lesson, _exercises_of(lesson), error.status, str(error), time.monotonic())


def _exercises_of(lesson: str) -> list:
    """The lesson's exercises; none for a lesson that does not exist."""
    try:
        return lessons.exercises(official_lesson(lesson))
    except Exception:
        return []


def _not_graded(lesson: str, exercises, status: str, message: str, start: float, done=()) -> NotebookResult:
    """A record whose exercises (but those ``done``) are not graded, for the reason given."""
    graded = {r.exercise for r in done}
    results = list(done) + [ExerciseResult(e.id, 0, e.points, "not graded", message, 0.0)
                            for e in exercises if e.id not in graded]
    return NotebookResult(lesson, status, message, results, time.monotonic() - start)


def rebuild(official, answers: dict[str, list[str]]) -> tuple[list[str], dict[str, int]]:
    """The cells to run: the official lesson's code with the student's answers in place (the
    last copy of each), without check cells and ``skip-grading`` cells; and where each answer is."""
    cells, answer_cells = [], {}
    for cell in official.cells:
        if cell.cell_type != "code" or lessons.is_check_cell(cell) or SKIP_TAG in cell.metadata.get("tags", []):
            continue
        if lessons.is_answer_cell(cell):
            exercise_id = lessons.nbgrader(cell)["grade_id"]
            answer_cells[exercise_id] = len(cells)
            cells.append(answers.get(exercise_id, [cell.source])[-1])
        else:
            cells.append(cell.source)
    return cells, answer_cells


def _grade(data: bytes, lesson: str, limits: Limits, hidden: list[pathlib.Path], start: float) -> NotebookResult:
    if lesson not in lesson_names():
        return NotebookResult(lesson, "unknown lesson", f"no lesson named {lesson}; lessons are: "
                              + ", ".join(lesson_names()), [], 0.0)
    official = official_lesson(lesson)
    exercises = lessons.exercises(official)
    try:
        answers = student_answers(read_notebook(data))
    except BadSubmission as error:
        return _not_graded(lesson, exercises, error.status, str(error), start)
    if answers and not {e.id for e in exercises} & set(answers):
        found = ", ".join(sorted(answers)[:4])
        return _not_graded(lesson, exercises, "wrong lesson",
                           f"this notebook holds the answers of another lesson ({found}), not {lesson}", start)
    cells, answer_cells = rebuild(official, answers)
    check_sources = {lessons.nbgrader(c)["grade_id"].removesuffix(lessons.CHECK_SUFFIX): c.source
                     for c in official.cells if lessons.is_check_cell(c)}
    try:
        session = Session(cells, limits, hidden)
    except WorkerFailed as failure:
        return _not_graded(lesson, exercises, "gave up", f"could not start Python for this notebook: {failure}", start)
    results = []
    try:
        session.run_cells()
        for exercise in exercises:
            results.append(_grade_exercise(exercise, answers, session, answer_cells, check_sources[exercise.id]))
        record = NotebookResult(lesson, "graded", "", results, time.monotonic() - start)
    except GaveUp as failure:
        record = _not_graded(lesson, exercises, "gave up", str(failure), start, results)
    finally:
        session.close()
    record.sandboxed, record.isolation = session.worker.sandboxed, session.worker.isolation
    return record


def _grade_exercise(exercise, answers, session: Session, answer_cells, check_source) -> ExerciseResult:
    start = time.monotonic()
    if exercise.id not in answers:
        return ExerciseResult(exercise.id, 0, exercise.points, "missing",
                              "the answer cell was not found: it was deleted, or its cell metadata was removed", 0.0)
    note = " (the notebook had several copies of this answer cell; the last one was graded)" \
        if len(answers[exercise.id]) > 1 else ""
    cell_error = session.errors.get(answer_cells[exercise.id])
    name = answered_name(check_source)
    try:
        answer = session.lookup(name)
    except Exception as error:
        why = f"the answer cell failed: {cell_error}" if cell_error else f"{name} was not found ({error})"
        status = "not attempted" if cell_error and cell_error.startswith("NotImplementedError") else "failed"
        return ExerciseResult(exercise.id, 0, exercise.points, status, why + note, time.monotonic() - start)
    result = checks.run(exercise.id, answer)
    message = result.message
    if cell_error and result.status != "passed":
        message = f"the answer cell failed: {cell_error}. {message}"
    points = exercise.points if result.status == "passed" else 0
    return ExerciseResult(exercise.id, points, exercise.points, result.status, message + note,
                          time.monotonic() - start)


def lesson_of(path: pathlib.Path, data: bytes | None = None) -> str | None:
    """Which lesson a submission is, for ``check`` and ``grade`` alike: by its file name
    (``<lesson>`` or ``<student>_<lesson>``, also as a copy such as ``…-Copy1`` or ``… (1)``),
    else by the exercise ids inside (``data``, or the file read now)."""
    stem = COPY_SUFFIX.sub("", path.stem)
    for name in lesson_names():
        if stem == name or stem.endswith("_" + name):
            return name
    try:
        ids = student_answers(read_notebook(read_submission(path) if data is None else data))
    except BadSubmission:
        return None
    prefixes = {exercise_id[:2] for exercise_id in ids}
    matches = [name for name in lesson_names() if name[:2] in prefixes]
    return matches[0] if len(matches) == 1 else None
