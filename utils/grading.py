"""The grading engine behind ``python -m utils.check`` (learners) and ``python -m utils.grade``.

Student code never judges itself. For each submission the engine
1. reads the notebook without changing it, and refuses what is not a notebook of the lesson;
2. rebuilds it from the official lesson, keeping only the student's answer cells (matched by
   exercise id in their metadata) and leaving out check cells and cells tagged
   ``skip-grading`` (training and plots no answer needs);
3. runs those cells in a fresh worker process (``utils/worker.py``) in a scratch folder,
   sandboxed where the system allows, with limits on time, memory and printed output;
4. runs each exercise's check here, in the grader's process: the check draws its inputs now,
   the student's function is called in the worker through a :class:`Remote` stand-in, and
   the results come back as plain arrays (JSON, never pickles) to be compared with
   references computed here.
"""
import ast
import base64
import builtins
import dataclasses
import errno
import io
import json
import os
import pathlib
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import nbformat
import numpy as np
import psutil
import tensorflow as tf

from utils import checks, lessons

WORKER = pathlib.Path(__file__).with_name("worker.py")
SKIP_TAG = "skip-grading"
MAX_MESSAGE = 64 * 2**20  # bytes in one reply from the worker
POLL_SECONDS = 0.2


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
    status: str  # graded, unreadable, wrong lesson, unknown lesson, gave up
    message: str
    exercises: list[ExerciseResult]
    seconds: float
    sandboxed: bool | None = None

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)


class BadSubmission(Exception):
    """The file is not a notebook of the lesson; the message says what it is instead."""


class WorkerFailed(Exception):
    """The worker hit a limit or died; the message says which, in a student's terms."""


class GaveUp(BaseException):
    """Grading this notebook cannot go on (time used up, too many crashes).

    A BaseException, so that no check's ``except Exception`` can mistake it for a wrong answer.
    """


# ---------------------------------------------------------------------------------------
# Values crossing between grader and worker: JSON with arrays as .npy bytes, never pickles,
# so nothing the student's process sends can run code in the grader.


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _array_from(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def _plain_array(value) -> dict:
    array = np.asarray(value)
    if array.dtype == object:  # strings from tf.string tensors
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
        return {"strings": [base64.b64encode(v).decode("ascii") for v in items], "shape": list(array.shape)}
    return {"npy": _npy(array)}


def _array_back(data: dict) -> np.ndarray:
    if "strings" in data:
        items = [base64.b64decode(v) for v in data["strings"]]
        return np.array(items, dtype=object).reshape(data["shape"])
    return _array_from(data["npy"])


def encode(value, keep=None):
    """Turn a value into JSON-able data; objects that are not data become handles via ``keep``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tf.RaggedTensor):
        return {"ragged": {"values": encode(value.flat_values),
                           "splits": [encode(s) for s in value.nested_row_splits]}}
    if isinstance(value, tf.Variable):
        return {"variable": _plain_array(value.numpy())}
    if isinstance(value, tf.Tensor):
        return {"tensor": _plain_array(value.numpy())}
    if isinstance(value, (np.ndarray, np.generic)):
        return {"array": _plain_array(value)}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [encode(v, keep) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: encode(v, keep) for k, v in value.items()}}
    if isinstance(value, Remote):
        return {"remote": value._handle}
    if keep is None and callable(value) and getattr(value, "__module__", None) and "<" not in value.__qualname__:
        return {"function": f"{value.__module__}:{value.__qualname__}"}
    if keep is not None:
        return {"remote": keep(value)}
    raise TypeError(f"cannot send {type(value).__name__} to the worker")


def decode(data, resolve, functions: bool = False):
    """Inverse of :func:`encode`; ``resolve`` turns a handle into an object (or a Remote).

    Only the worker accepts functions by name (from the grader); the grader never takes
    them from the worker, which could otherwise name ``os.system``.
    """
    if not isinstance(data, dict):
        return data
    (kind, body), = data.items()
    if kind == "tensor":
        return tf.constant(_array_back(body))
    if kind == "ragged":
        splits = [decode(split, resolve) for split in body["splits"]]
        return tf.RaggedTensor.from_nested_row_splits(decode(body["values"], resolve), splits)
    if kind == "variable":
        return tf.Variable(_array_back(body))
    if kind == "array":
        return _array_back(body)
    if kind in ("list", "tuple"):
        items = [decode(v, resolve, functions) for v in body]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {k: decode(v, resolve, functions) for k, v in body.items()}
    if kind == "remote":
        return resolve(body)
    if kind == "function" and functions:
        import importlib

        module, qualname = body.split(":")
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        return value
    raise ValueError(f"unknown value kind {kind!r}")


# ---------------------------------------------------------------------------------------
# The worker's side (runs in utils/worker.py, after the sandbox is set up).


def _describe(error: BaseException) -> dict:
    message = str(error)[:2000]
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        message = f"printed more output than the grader allows ({message})"
    return {"type": type(error).__name__, "message": message}


def serve(channel, sandboxed: bool) -> None:
    """Answer the grader's requests until it closes the channel."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    objects: dict[int, object] = {}

    def keep(value) -> int:
        objects[len(objects)] = value
        return len(objects) - 1

    def handle(request: dict) -> dict:
        op = request["op"]
        if op == "cell":
            result = shell.run_cell(request["source"], store_history=False, silent=True)
            error = result.error_before_exec or result.error_in_exec
            return {"ok": error is None, "error": _describe(error) if error else None}
        if op == "lookup":
            if request["name"] not in shell.user_ns:
                return {"ok": False, "error": {"type": "NameError", "message": f"{request['name']} is not defined"}}
            return {"ok": True, "value": encode(shell.user_ns[request["name"]], keep)}
        target = objects[request["handle"]]
        if op == "getattr":
            return {"ok": True, "value": encode(getattr(target, request["name"]), keep)}
        args = decode(request["args"], objects.__getitem__, functions=True)
        kwargs = decode(request["kwargs"], objects.__getitem__, functions=True)
        if op == "call":
            return {"ok": True, "value": encode(target(*args, **kwargs), keep)}
        if op == "gradient":
            *args, wrt = args
            with tf.GradientTape() as tape:
                tape.watch(args[wrt])
                y = target(*args)
            gradient = tape.gradient(y, args[wrt]) if tf.is_tensor(y) else None
            return {"ok": True, "value": encode((y, gradient), keep)}
        raise ValueError(f"unknown request {op!r}")

    channel.send(json.dumps({"ok": True, "sandboxed": sandboxed}).encode())
    while (raw := channel.receive()) is not None:
        try:
            reply = handle(json.loads(raw))
        except NotImplementedError:
            reply = {"ok": False, "not_implemented": True}
        except BaseException as error:  # noqa: B036  (sys.exit and friends are answers too)
            reply = {"ok": False, "error": _describe(error)}
        try:
            payload = json.dumps(reply).encode()
        except (TypeError, ValueError) as error:
            payload = json.dumps({"ok": False, "error": _describe(error)}).encode()
        channel.send(payload)


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


class Worker:
    """One worker process, with its scratch folder and the limits it must keep."""

    def __init__(self, limits: Limits, hidden: list[pathlib.Path]):
        self.limits = limits
        self.scratch = pathlib.Path(tempfile.mkdtemp(prefix="course-grading-"))
        (self.scratch / "work").mkdir()
        self.log = open(self.scratch / "output.log", "wb")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.scratch / "work"),
            "TMPDIR": str(self.scratch / "work"),
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(self.scratch / "work"),
            "IPYTHONDIR": str(self.scratch / "work" / ".ipython"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",  # grade on the CPU: parallel workers must not share a GPU
        }
        command = [sys.executable, str(WORKER), "--scratch", str(self.scratch / "work"),
                   "--repo", str(lessons.ROOT), "--output-limit", str(int(limits.output_mb * 2**20))]
        for path in hidden:
            command += ["--hide", str(path)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, env=env, start_new_session=True)
        self.sandboxed = self._receive(limits.startup_seconds, "starting Python")["sandboxed"]

    def request(self, message: dict, seconds: float, doing: str) -> dict:
        payload = json.dumps(message).encode()
        try:
            self.process.stdin.write(struct.pack(">I", len(payload)) + payload)
            self.process.stdin.flush()
        except OSError:
            raise self._died(doing) from None
        return self._receive(seconds, doing)

    def _receive(self, seconds: float, doing: str) -> dict:
        header = self._read(4, seconds, doing)
        size = struct.unpack(">I", header)[0]
        if size > MAX_MESSAGE:
            self.close()
            raise WorkerFailed(f"sent back more than {MAX_MESSAGE // 2**20} MB while {doing}")
        try:
            return json.loads(self._read(size, seconds, doing))
        except ValueError:
            self.close()
            raise WorkerFailed(f"sent back a garbled reply while {doing}") from None

    def _read(self, size: int, seconds: float, doing: str) -> bytes:
        deadline = time.monotonic() + seconds
        fd, data = self.process.stdout.fileno(), b""
        while len(data) < size:
            if time.monotonic() > deadline:
                self.close()
                raise WorkerFailed(f"took longer than {seconds:.0f} s while {doing} (an infinite loop?)")
            if self._memory_mb() > self.limits.memory_mb:
                self.close()
                raise WorkerFailed(f"used more than {self.limits.memory_mb} MB of memory while {doing}")
            if select.select([fd], [], [], POLL_SECONDS)[0]:
                chunk = os.read(fd, size - len(data))
                if not chunk:
                    raise self._died(doing)
                data += chunk
        return data

    def _memory_mb(self) -> float:
        try:
            process = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20
        except psutil.Error:
            return 0.0

    def _died(self, doing: str) -> WorkerFailed:
        code = self.process.wait()
        self.close()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return WorkerFailed(f"the Python process running the notebook died ({how}) while {doing}")

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.log):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.scratch, ignore_errors=True)


class Remote:
    """Stands in, in the grader, for an object in the worker: a student's function or layer.

    Calling it, or a method of it, runs the call in the worker and brings back the result:
    tensors as tensors, arrays as arrays, anything else as another Remote.
    """

    def __init__(self, session: "Session", handle: int, name: str):
        self._session, self._handle, self._name = session, handle, name

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
                reply = self.worker.request({"op": "cell", "source": source},
                                            self.seconds_left(self.limits.cell_seconds), f"running cell {index}")
            except WorkerFailed as failure:
                self.errors[index] = str(failure)
                self.restart()
                continue
            if not reply.get("ok"):
                error = reply.get("error") or {}
                self.errors[index] = f"{error.get('type')}: {error.get('message')}"
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
                                    self.seconds_left(self.limits.cell_seconds), f"replaying cell {index}")
        except WorkerFailed as failure:
            raise GaveUp(f"could not restart the notebook after a crash: {failure}") from None

    def lookup(self, name: str) -> Remote:
        return self.call("lookup", name=name, doing=f"looking up {name}", label=name)

    def call(self, op: str, handle: int | None = None, args=(), kwargs=None, doing: str = "",
             name: str | None = None, label: str | None = None):
        message = {"op": op, "handle": handle, "name": name,
                   "args": encode(list(args)), "kwargs": encode(kwargs or {})}
        try:
            reply = self.worker.request(message, self.seconds_left(self.limits.call_seconds), doing)
        except WorkerFailed as failure:
            self.restart()
            raise TimeoutError(str(failure)) if "longer than" in str(failure) else RuntimeError(str(failure))
        if reply.get("not_implemented"):
            raise NotImplementedError()
        if not reply.get("ok"):
            raise _remote_error(reply.get("error") or {})
        return decode(reply.get("value"), lambda h: Remote(self, h, label or name or doing.split()[-1]))

    def close(self) -> None:
        self.worker.close()


# ---------------------------------------------------------------------------------------
# Reading submissions and grading one notebook.


def read_notebook(data: bytes):
    """Parse a submission, or raise BadSubmission saying what it is instead."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSubmission("not a notebook: the file is not UTF-8 text") from None
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise BadSubmission(f"not a notebook: the file is not valid JSON ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise BadSubmission("not a notebook: valid JSON, but without the list of cells a notebook has")
    try:
        notebook = nbformat.reads(text, as_version=4)
        for cell in notebook.cells:
            assert isinstance(cell.get("source"), str) and isinstance(cell.get("metadata", {}), dict)
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
    """Grade one submission of ``lesson`` (e.g. "01_neurons_and_activations")."""
    limits = limits or Limits()
    start = time.monotonic()
    if lesson not in lesson_names():
        return NotebookResult(lesson, "unknown lesson", f"no lesson named {lesson}; lessons are: "
                              + ", ".join(lesson_names()), [], 0.0)
    official = official_lesson(lesson)
    exercises = lessons.exercises(official)

    def everything(status: str, message: str) -> NotebookResult:
        results = [ExerciseResult(e.id, 0, e.points, "not graded", message, 0.0) for e in exercises]
        return NotebookResult(lesson, status, message, results, time.monotonic() - start)

    try:
        answers = student_answers(read_notebook(data))
    except BadSubmission as error:
        return everything("unreadable", str(error))
    ours = {e.id for e in exercises}
    if answers and not ours & set(answers):
        found = ", ".join(sorted(answers)[:4])
        return everything("wrong lesson", f"this notebook holds the answers of another lesson ({found}), not {lesson}")

    cells, answer_cells = [], {}
    for index, cell in enumerate(official.cells):
        if cell.cell_type != "code" or lessons.is_check_cell(cell) or SKIP_TAG in cell.metadata.get("tags", []):
            continue
        if lessons.is_answer_cell(cell):
            exercise_id = lessons.nbgrader(cell)["grade_id"]
            answer_cells[exercise_id] = len(cells)
            cells.append(answers.get(exercise_id, [cell.source])[-1])
        else:
            cells.append(cell.source)
    check_sources = {lessons.nbgrader(c)["grade_id"].removesuffix(lessons.CHECK_SUFFIX): c.source
                     for c in official.cells if lessons.is_check_cell(c)}

    try:
        session = Session(cells, limits, hidden or hidden_folders())
    except WorkerFailed as failure:
        return everything("gave up", f"could not start Python for this notebook: {failure}")
    results = []
    try:
        session.run_cells()
        for exercise in exercises:
            results.append(_grade_exercise(exercise, answers, session, answer_cells, check_sources[exercise.id]))
        status, message = "graded", ""
    except GaveUp as failure:
        status, message = "gave up", str(failure)
        done = {r.exercise for r in results}
        results += [ExerciseResult(e.id, 0, e.points, "not graded", message, 0.0) for e in exercises if e.id not in done]
    finally:
        session.close()
    return NotebookResult(lesson, status, message, results, time.monotonic() - start, session.worker.sandboxed)


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


def lesson_of(notebook_path: pathlib.Path, data: bytes) -> str | None:
    """Which lesson a learner's notebook is: by file name, else by the exercise ids inside."""
    for name in lesson_names():
        if notebook_path.stem == name or notebook_path.stem.endswith("_" + name):
            return name
    try:
        ids = student_answers(read_notebook(data))
    except BadSubmission:
        return None
    prefixes = {exercise_id[:2] for exercise_id in ids}
    matches = [name for name in lesson_names() if name[:2] in prefixes]
    return matches[0] if len(matches) == 1 else None
