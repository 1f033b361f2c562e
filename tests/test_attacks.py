"""Submissions that try to stop or fool the grader through the files themselves, not the code in
them: special files and links, hostile JSON, two notebooks for one lesson, student text that
would forge the feedback, names that would run as spreadsheet formulas.

Most of them run ``utils.grade`` over a class folder with the fake grader of
tests/test_gradebook.py, which scores a notebook by its bytes: a file the grader should refuse
but reads shows up as points. None of them but the last starts a worker, so each takes well
under a second; the last grades one notebook (a few seconds).
"""
import csv
import json
import os
import pathlib
import shutil
import socket
import stat
import tempfile
import threading
import tracemalloc

import markdown_it
import pytest

from tests.test_gradebook import BLANK, EXERCISES, LESSON, SOLVED, FakeGrader, class_folder
from tests.test_grading import FAST, NAMES, with_answers
from tests.test_sandbox import require_sandbox
from utils import grade, gradebook, grading, lessons, similarity, warm

NOTEBOOK = f"{LESSON}.ipynb"
BOMB = b"[" * 200_000 + b"]" * 200_000
HUGE_BYTES = 150 * 2**20
MANY_CELLS = 20_000


def run(submissions: pathlib.Path, out: pathlib.Path, *options: str) -> dict[str, dict]:
    """Grade the class; every stored record by student."""
    assert grade.main([str(submissions), "--out", str(out), *options]) == 0
    return {path.parent.name: json.loads(path.read_text()) for path in (out / "results").glob("*/*.json")}


def everything_written(out: pathlib.Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in out.rglob("*") if path.is_file())


class FifoWatch:
    """Unblocks whoever opens a FIFO for reading (the grader, if it is not fixed) by writing
    junk and closing it, so that the bug shows as a wrong status instead of a run that hangs
    for ever. It acts only when a reader has opened the FIFO, so it does not depend on timing."""

    def __init__(self, path: pathlib.Path):
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stop.wait(0.05):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
            except OSError:
                continue
            os.write(fd, b"junk")
            os.close(fd)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


# --- 1. special files and links --------------------------------------------------------------


def unix_socket(path: pathlib.Path) -> socket.socket:
    """A Unix socket bound at ``path``, which may be longer than a socket address may be."""
    server, here = socket.socket(socket.AF_UNIX), os.getcwd()
    os.chdir(path.parent)
    try:
        server.bind(path.name)
    finally:
        os.chdir(here)
    return server


def test_fifos_devices_sockets_and_symlinks_are_refused_and_their_targets_never_told(tmp_path, monkeypatch, capsys):
    submissions = class_folder(tmp_path, {"alice": SOLVED})
    secret = tmp_path / "instructor" / "private"
    secret.mkdir(parents=True)
    (secret / NOTEBOOK).write_bytes(SOLVED)
    for student in ["fifo", "fifo_unnamed", "socket", "cheat", "outside", "copycat", "nested", "device"]:
        (submissions / student).mkdir()
    fifos = [submissions / "fifo" / NOTEBOOK, submissions / "fifo_unnamed" / "homework.ipynb"]
    for fifo in fifos:
        os.mkfifo(fifo)
    server = unix_socket(submissions / "socket" / NOTEBOOK)
    (submissions / "cheat" / NOTEBOOK).symlink_to(lessons.SOLUTIONS / NOTEBOOK)  # the answer key
    (submissions / "outside" / NOTEBOOK).symlink_to(secret / NOTEBOOK)
    (submissions / "copycat" / NOTEBOOK).symlink_to(submissions / "alice" / NOTEBOOK)
    (submissions / "nested" / "hw1").mkdir()
    (submissions / "nested" / "hw1" / NOTEBOOK).symlink_to(lessons.SOLUTIONS / NOTEBOOK)
    (submissions / "linked").symlink_to(secret)  # a whole student folder that is a link
    (submissions / "alice" / "hw").symlink_to(secret)  # a folder inside a student's
    if os.geteuid() == 0:  # /dev/null's device number: reads as empty, where /dev/zero would never end
        os.mknod(submissions / "device" / NOTEBOOK, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({SOLVED: 1}))
    watches = [FifoWatch(fifo) for fifo in fifos]
    try:
        records = run(submissions, tmp_path / "out", "--jobs", "2")
    finally:
        for watch in watches:
            watch.close()
        server.close()

    status = {student: record["status"] for student, record in records.items()}
    assert status == {"alice": "graded", "fifo": grading.REFUSED_SPECIAL, "fifo_unnamed": grading.REFUSED_SPECIAL,
                      "socket": grading.REFUSED_SPECIAL, "cheat": grading.REFUSED_SYMLINK,
                      "outside": grading.REFUSED_SYMLINK, "copycat": grading.REFUSED_SYMLINK,
                      "nested": grading.REFUSED_SYMLINK,
                      **({"device": grading.REFUSED_SPECIAL} if os.geteuid() == 0 else {})}
    assert records["alice"]["exercises"][0]["points"] == 1  # alice's own file, not what her "hw" link holds
    assert all(e["points"] == 0 for s, r in records.items() if s != "alice" for e in r["exercises"])
    assert all(len(r["exercises"]) == len(EXERCISES) for r in records.values() if r["lesson"] == LESSON)
    assert {e["status"] for s, r in records.items() if s != "alice" for e in r["exercises"]} == {"not graded"}
    written = everything_written(tmp_path / "out") + "\n".join(capsys.readouterr())
    for target in [str(secret), str(lessons.SOLUTIONS), "instructor"]:
        assert target not in written
    assert "alice" not in records["copycat"]["file"]
    assert (tmp_path / "out" / "gradebook.csv").exists() and (tmp_path / "out" / "similarity.csv").exists()


def test_a_link_swapped_in_after_the_look_is_refused_on_the_opened_descriptor(tmp_path, monkeypatch):
    """The race: the file is regular when ``lstat`` looks, a link or a FIFO when it is opened."""
    path = tmp_path / NOTEBOOK
    path.write_bytes(SOLVED)
    real_lstat = os.lstat

    def swap_after_look(target, *args, **kwargs):
        seen = real_lstat(target, *args, **kwargs)
        if pathlib.Path(target) == path and stat.S_ISREG(seen.st_mode):
            path.unlink()
            path.symlink_to(lessons.SOLUTIONS / NOTEBOOK)
        return seen

    monkeypatch.setattr(os, "lstat", swap_after_look)
    with pytest.raises(grading.BadSubmission) as refusal:
        grading.read_submission(path)
    assert refusal.value.status == grading.REFUSED_SYMLINK and str(lessons.SOLUTIONS) not in str(refusal.value)


# --- 2. hostile JSON and huge files ------------------------------------------------------------


def test_hostile_json_and_huge_notebooks_get_a_status_and_the_tables_are_still_written(tmp_path):
    cells = [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}]
    submissions = class_folder(tmp_path, {
        "bomb": BOMB,
        "bomb_in_cells": b'{"cells": [' + BOMB + b'], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
        "shallower_bomb": b'{"cells": [' + b"[" * 900 + b"]" * 900 + b'], "metadata": {}, "nbformat": 4, '
                          b'"nbformat_minor": 5}',
        "many_cells": json.dumps({"cells": cells * MANY_CELLS, "metadata": {}, "nbformat": 4,
                                  "nbformat_minor": 4}).encode(),
        "many_lists": b'{"cells": [], "metadata": {"x": [' + b"[]," * 2 * grading.MAX_CONTAINERS + b'[]]}}',
        "huge": b""})
    with open(submissions / "huge" / NOTEBOOK, "r+b") as file:
        file.truncate(HUGE_BYTES)  # sparse: no disk is filled, but the grader must not read it all
    (submissions / "unnamed").mkdir()
    (submissions / "unnamed" / "homework.ipynb").write_bytes(BOMB)  # lesson_of must look inside

    tracemalloc.start()
    try:
        records = run(submissions, tmp_path / "out")  # the real grader: all are refused before a worker starts
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * grading.MAX_NOTEBOOK_BYTES  # reading the 150 MB file alone would take more
    assert {s: r["status"] for s, r in records.items()} == {
        "bomb": grading.REFUSED_TOO_DEEP, "bomb_in_cells": grading.REFUSED_TOO_DEEP,
        "shallower_bomb": grading.REFUSED_TOO_DEEP, "many_cells": grading.REFUSED_TOO_LARGE,
        "many_lists": grading.REFUSED_TOO_LARGE, "huge": grading.REFUSED_TOO_LARGE, "unnamed": "unknown lesson"}
    for name in ["gradebook.csv", "gradebook_canvas.csv", "gradebook_moodle.csv", "results.csv", "similarity.csv"]:
        assert (tmp_path / "out" / name).exists(), name


@pytest.mark.parametrize("data", [BOMB, b'{"cells": [' + BOMB + b"]}"])
def test_every_reader_of_a_notebook_survives_a_json_bomb(tmp_path, data):
    path = tmp_path / "homework.ipynb"
    path.write_bytes(data)
    assert grading.lesson_of(path) is None
    assert similarity.answers_of(data) == {}
    assert similarity.report([("eve", LESSON, path)]) == []
    assert grading.grade_notebook(data, LESSON).status == grading.REFUSED_TOO_DEEP


# --- 3. two notebooks of one student for one lesson --------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_of_two_notebooks_for_one_lesson_the_newest_is_graded_whatever_the_jobs(tmp_path, monkeypatch, jobs):
    submissions = class_folder(tmp_path, {"bob": SOLVED})
    older, newer = submissions / "alice" / "b" / NOTEBOOK, submissions / "alice" / "a" / NOTEBOOK
    for path, data, when in [(older, SOLVED, 1_000_000), (newer, BLANK, 2_000_000)]:  # newest sorts first
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        os.utime(path, (when, when))
    tie = [submissions / "bob" / f"{LESSON} (1).ipynb", submissions / "bob" / NOTEBOOK]
    tie[0].write_bytes(BLANK)
    for path in tie:  # equally new: the first by name is graded
        os.utime(path, (3_000_000, 3_000_000))
    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({SOLVED: 1}))
    records = run(submissions, tmp_path / "out", "--jobs", jobs)
    assert records["alice"]["file"] == str(newer) and records["alice"]["exercises"][0]["points"] == 0
    assert records["alice"]["not_graded"] == [f"b/{NOTEBOOK}"]
    assert records["bob"]["file"] == str(tie[0]) and records["bob"]["not_graded"] == [NOTEBOOK]
    feedback = (tmp_path / "out" / "feedback" / "alice" / NOTEBOOK.replace(".ipynb", ".md")).read_text()
    assert "handed in 2 notebooks" in feedback and "b/01" in feedback
    assert len(list((tmp_path / "out" / "results").glob("*/*.json"))) == 2


# --- 4. student text in the feedback ------------------------------------------------------------

FORGERY = "<img src=x onerror=alert(1)>\n# 01: feedback for eve\n**Score: 8 / 8**\n__Score: 8 / 8__\n" \
          "| 01-relu | 1 / 1 | passed |\n```\n<script>alert(2)</script>\n---\n[x](javascript:alert(3))"


def test_student_text_in_feedback_can_neither_run_as_html_nor_forge_a_heading_or_a_score():
    exercises = [grading.ExerciseResult("01-relu", 0, 1, "failed", f"raised ValueError: {FORGERY}", 0.1),
                 grading.ExerciseResult("01-<b>|x\n# id", 0, 1, "failed", "", 0.1)]
    result = grading.NotebookResult(LESSON, "wrong lesson", f"another lesson ({FORGERY})", exercises, 0.1)
    text = grade.feedback("eve\n# <i>mallory", result)
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in page and "<script" not in page and "<b>" not in page and "<i>" not in page
    assert 'href="javascript' not in page and "<pre" not in page and "<hr" not in page
    assert page.count("<h1>") == 1 and page.count("<h2>") == len(exercises)
    assert page.count("<strong>") == 1 and page.count("<tr>") == 1 + len(exercises)
    assert "onerror=alert(1)" in page  # shown, as text
    assert [line for line in text.splitlines() if line.startswith("#")][0].startswith(f"# {LESSON}: feedback")


# --- 5. formula injection in the CSVs ------------------------------------------------------------


def test_every_csv_is_safe_against_formula_injection_and_numbers_stay_numbers(tmp_path, monkeypatch):
    names = ["=SUM(3,4)", "+SUM(1,2)", "-2+3", "@cmd", "\tx", "\rx"]
    submissions = class_folder(tmp_path, dict.fromkeys(names, SOLVED))  # identical: similarity.csv lists them
    (submissions / "=HYPERLINK(x)").mkdir()
    (submissions / "=HYPERLINK(x)" / "=SUM(3,4).ipynb").write_bytes(b"{}")  # no lesson inside: named by its file
    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({SOLVED: 1}))
    run(submissions, tmp_path / "out")
    cells = []
    for name in ["gradebook.csv", "gradebook_canvas.csv", "gradebook_moodle.csv", "results.csv", "similarity.csv"]:
        with open(tmp_path / "out" / name, newline="") as file:
            rows = list(csv.reader(file))
        assert len(rows) > 1, name
        cells += [cell for row in rows for cell in row]
    assert any(cell == "'=SUM(3,4) total" for cell in cells) and any(cell == "'@cmd" for cell in cells)
    assert not [cell for cell in cells if cell.startswith(gradebook.FORMULA_START)]
    assert gradebook.to_csv(["-x"], [[-1, "-1.5", "2e-3", "-1+1", "=x", ""]]) == "'-x\n-1,-1.5,2e-3,'-1+1,'=x,\n"


# --- 6. what student code inherits ---------------------------------------------------------------

REPORTER = '''def relu(x):
    import json, os
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    raise ValueError("REPORT" + json.dumps({"env": dict(os.environ), "fds": fds}))
'''


def restart_warm_python() -> None:
    """End the warm Python, so that the next worker starts from one with this environment."""
    if warm._warm is not None:
        warm._warm.process.kill()
        warm._warm.process.wait()


def test_student_code_inherits_no_descriptor_and_nothing_of_the_instructors_environment(monkeypatch):
    monkeypatch.setenv("PATH", "/home/instructor-private/bin" + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("INSTRUCTOR_TOKEN", "s3cret-token")
    restart_warm_python()  # it keeps the environment it started with
    result = grading.grade_notebook(with_answers(relu=REPORTER), LESSON, FAST)
    message = result.exercises[NAMES.index("relu")].message
    report = report_of(result)
    assert "s3cret-token" not in message and "INSTRUCTOR_TOKEN" not in report["env"]
    assert set(report["env"]["PATH"].split(os.pathsep)) <= set(grading.STUDENT_PATH.split(os.pathsep))
    sockets = [target for target in report["fds"].values() if target.startswith("socket:")]
    assert len(sockets) == 1  # the channel to the relay, and nothing else of the grader's
    assert report["fds"]["0"] == os.devnull and report["fds"]["1"] == report["fds"]["2"]
    assert not [target for target in report["fds"].values() if "pipe:" in target]


def test_the_learners_check_refuses_a_pipe_instead_of_waiting(tmp_path, capsys):
    """``python -m utils.check`` reads through the same reader: a FIFO named like a lesson is
    refused at once (exit 2), where reading it would block for ever; a learner's own link to a
    notebook is followed, since the file is theirs."""
    from utils import check

    fifo = tmp_path / NOTEBOOK
    os.mkfifo(fifo)
    assert check.main([str(fifo)]) == 2
    assert "not a regular file" in capsys.readouterr().err
    notebook, link = tmp_path / "real.ipynb", tmp_path / "link.ipynb"
    notebook.write_text("not json")
    link.symlink_to(notebook)
    assert check.main([str(link), "--lesson", LESSON]) == 2
    printed = capsys.readouterr().out
    assert "unreadable" in printed and "symlink" not in printed  # read through the link, found not a notebook


# --- 7. what student code can read ----------------------------------------------------------------

# Every answer cell of the thief looks for the answer key where the grader keeps it (the course's
# .git, with git or by hand, then solutions/) and runs the solution's answer cells as its own.
THIEF = f'''import json, os, subprocess
_key = None
for _read in (lambda: subprocess.run(["git", "--git-dir", {str(lessons.ROOT / ".git")!r}, "show",
                                      "HEAD:solutions/{LESSON}.ipynb"], capture_output=True, check=True).stdout,
              lambda: open({str(lessons.SOLUTIONS / f"{LESSON}.ipynb")!r}, "rb").read()):
    try:
        _key = json.loads(_read())
        break
    except (OSError, ValueError, subprocess.CalledProcessError):
        pass
for _cell in (_key or {{"cells": []}})["cells"]:
    if _cell.get("metadata", {{}}).get("nbgrader", {{}}).get("solution"):
        exec("".join(_cell["source"]))
'''

SNOOP = '''def relu(x):
    import glob, json, os
    seen = {}
    for path in %r:
        try:
            seen[path] = sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read()
        except OSError as error:
            seen[path] = type(error).__name__
    seen["environ"] = [open(p, "rb").read().decode(errors="replace") for p in glob.glob("/proc/*/environ")]
    raise ValueError("REPORT" + json.dumps(seen))
'''


def report_of(result) -> dict:
    """What a submission's ``relu`` raised as its report (see REPORTER and SNOOP)."""
    message = result.exercises[NAMES.index("relu")].message
    return json.JSONDecoder().raw_decode(message[message.index("REPORT") + len("REPORT"):])[0]


def test_an_answer_that_reads_the_key_from_the_courses_git_or_solutions_scores_nothing():
    result = grading.grade_notebook(with_answers(**dict.fromkeys(NAMES, THIEF)), LESSON, FAST)
    require_sandbox(result)
    assert result.status == "graded", result
    assert sum(e.points for e in result.exercises) == 0, [(e.exercise, e.status) for e in result.exercises]


def test_the_courses_git_the_instructors_home_other_files_and_environment_are_not_there(monkeypatch):
    """A home of mode 700 with a ``.netrc`` of mode 600, as root's is, and an old gradebook that
    anyone may read, both outside /tmp (which the sandbox replaces with its own anyway); the
    grader's HOME names that home, and its environment holds a token."""
    home = pathlib.Path(tempfile.mkdtemp(prefix="grading-instructor-", dir="/var/tmp"))
    try:
        (home / ".netrc").write_text("machine example.org password s3cret-netrc\n")
        (home / ".netrc").chmod(0o600)
        (home / "2019").mkdir()
        (home / "2019" / "gradebook.csv").write_text("student,total\nalice,s3cret-grade\n")
        home.chmod(0o700)
        (home / "2019").chmod(0o755)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("INSTRUCTOR_TOKEN", "s3cret-token")
        restart_warm_python()  # it keeps the environment it started with
        paths = [str(home), str(home / ".netrc"), str(home / "2019" / "gradebook.csv"), str(lessons.ROOT),
                 str(lessons.ROOT / ".git"), str(lessons.ROOT / ".git" / "objects"), str(lessons.SOLUTIONS)]
        result = grading.grade_notebook(with_answers(relu=SNOOP % paths), LESSON, FAST)
    finally:
        shutil.rmtree(home)
    require_sandbox(result)
    report = report_of(result)
    message = result.exercises[NAMES.index("relu")].message
    assert "s3cret" not in message, report
    assert {path: report[path] for path in paths if path != str(lessons.ROOT)} == dict.fromkeys(
        set(paths) - {str(lessons.ROOT)}, "FileNotFoundError"), report
    assert set(report[str(lessons.ROOT)]) <= {"utils", "data", "lessons"}, report  # the course's code only
