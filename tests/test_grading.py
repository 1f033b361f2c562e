"""The grader, on submissions made from the real lesson 01: exact scores and statuses for the
solution, the untouched lesson, a partial answer, and every kind of bad input."""
import copy
import csv
import dataclasses
import hashlib
import json
import pathlib

import nbformat
import pytest

from utils import check, grade, grading, lessons, warm, wire

LESSON = "01_neurons_and_activations"
FAST = grading.Limits(cell_seconds=20, call_seconds=10, notebook_seconds=120, memory_mb=1500, output_mb=1)

SOLVED = nbformat.read(lessons.SOLUTIONS / f"{LESSON}.ipynb", as_version=4)
BLANK = nbformat.read(lessons.LESSONS / f"{LESSON}.ipynb", as_version=4)
RIGHT = {lessons.nbgrader(c)["grade_id"]: c.source for c in SOLVED.cells if lessons.is_answer_cell(c)}
FULL = sum(e.points for e in lessons.exercises(SOLVED))
NAMES = [exercise_id.removeprefix("01-") for exercise_id in RIGHT]


def with_answers(**sources) -> bytes:
    """The lesson as a learner would hand it in, with some answer cells filled in.

    Keys are exercise names (``relu`` for ``01-relu``); the value "right" takes the solution.
    """
    notebook = copy.deepcopy(BLANK)
    for cell in notebook.cells:
        name = lessons.nbgrader(cell).get("grade_id", "").removeprefix("01-")
        if lessons.is_answer_cell(cell) and name in sources:
            cell.source = RIGHT[f"01-{name}"] if sources[name] == "right" else sources[name]
    return nbformat.writes(notebook).encode()


def edited(change) -> bytes:
    notebook = nbformat.reads(with_answers(**ALL_RIGHT), 4)
    change(notebook.cells)
    return nbformat.writes(notebook).encode()


def statuses(result) -> dict[str, str]:
    return {e.exercise.removeprefix("01-"): e.status for e in result.exercises}


def grade_bytes(data: bytes, limits=FAST):
    return grading.grade_notebook(data, LESSON, limits)


ALL_RIGHT = dict.fromkeys(NAMES, "right")


# --- honest submissions ------------------------------------------------------------------


def test_solution_gets_full_marks():
    result = grading.grade_notebook(nbformat.writes(SOLVED).encode(), LESSON)
    assert (result.status, result.points, result.max_points) == ("graded", FULL, FULL)
    assert set(statuses(result).values()) == {"passed"}


def test_untouched_lesson_gets_zero_all_not_attempted():
    result = grade_bytes(nbformat.writes(BLANK).encode())
    assert result.points == 0
    assert set(statuses(result).values()) == {"not attempted"}


def test_partial_answer_gets_exactly_its_points():
    naive_sigmoid = "def sigmoid(x):\n    return 1 / (1 + tf.exp(-x))"
    result = grade_bytes(with_answers(sigmoid=naive_sigmoid, relu="right", neuron="right"))
    assert result.points == 3
    assert statuses(result) == dict(dict.fromkeys(NAMES, "not attempted"), sigmoid="failed", relu="passed",
                                    neuron="passed")
    assert "NaN" in result.exercises[0].message


# --- files that are not the lesson's notebook ----------------------------------------------


@pytest.mark.parametrize("data,words", [
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    (b"{ this is not json", "not valid JSON"),
    (b'{"name": "a JSON file", "cells": "none"}', "without the list of cells"),
    (b'{"cells": [{"cell_type": 7}], "nbformat": 4}', "damaged notebook"),
])
def test_unreadable_files_are_reported_not_graded(data, words):
    result = grade_bytes(data)
    assert result.status == "unreadable" and words in result.message
    assert result.points == 0 and {e.status for e in result.exercises} == {"not graded"}


def test_notebook_of_another_lesson():
    def relabel(cells):
        for cell in cells:
            meta = cell.metadata.get("nbgrader", {})
            if "grade_id" in meta:
                meta["grade_id"] = meta["grade_id"].replace("01-", "02-")
    result = grade_bytes(edited(relabel))
    assert result.status == "wrong lesson" and "02-" in result.message and result.points == 0


def test_unknown_lesson_name():
    result = grading.grade_notebook(b"{}", "99_no_such_lesson")
    assert result.status == "unknown lesson"


# --- answer cells deleted, duplicated, moved ----------------------------------------------


def answer_index(cells, name):
    return next(i for i, c in enumerate(cells) if lessons.nbgrader(c).get("grade_id") == f"01-{name}")


def test_deleted_answer_cell_is_missing_and_the_rest_is_graded():
    result = grade_bytes(edited(lambda cells: cells.pop(answer_index(cells, "tanh"))))
    assert statuses(result) == dict(dict.fromkeys(NAMES, "passed"), tanh="missing")
    assert result.points == FULL - 2


def test_duplicated_answer_cell_grades_the_last_copy():
    def duplicate(cells):
        index = answer_index(cells, "relu")
        wrong = copy.deepcopy(cells[index])
        wrong.source = "def relu(x):\n    return tf.abs(x)"
        cells.insert(index, wrong)
    result = grade_bytes(edited(duplicate))
    assert result.points == FULL and "last one was graded" in result.exercises[2].message


def test_moved_and_added_cells_do_not_break_matching():
    def shuffle(cells):
        neuron = cells.pop(answer_index(cells, "neuron"))
        cells.insert(3, neuron)
        cells.insert(5, nbformat.v4.new_code_cell("scratch = 42  # the learner's own experiment"))
    assert grade_bytes(edited(shuffle)).points == FULL


# --- code that is wrong in every way code can be wrong ---------------------------------------


@pytest.mark.parametrize("name,source,words", [
    ("tanh", "def tanh(x)\n    return x", "SyntaxError"),
    ("tanh", "import no_such_module\ndef tanh(x):\n    return tf.math.tanh(x)", "ModuleNotFoundError"),
    ("relu", "def relu(x):\n    raise ValueError('oops')", "raised ValueError: oops"),
    ("neuron", "def neuron(x, w):\n    return x", "TypeError"),
    ("neuron", "def neuron(x, w, b, activation):\n    return activation(x * w + b)", "shape"),
    ("relu", "def relu(x):\n    return tf.cast(tf.nn.relu(x), tf.float16)", "float16"),
])
def test_wrong_code_fails_that_exercise_only(name, source, words):
    answers = dict(ALL_RIGHT, **{name: source})
    result = grade_bytes(with_answers(**answers))
    graded = {e.exercise.removeprefix("01-"): e for e in result.exercises}
    assert graded[name].status == "failed" and words in graded[name].message
    assert all(e.status == "passed" for n, e in graded.items() if n != name)


def test_numpy_results_are_accepted_where_reasonable():
    numpy_neuron = "def neuron(x, w, b, activation):\n    return np.asarray(activation(x.numpy() @ w.numpy() + b))"
    assert grade_bytes(with_answers(neuron=numpy_neuron)).exercises[3].status == "passed"


@pytest.mark.parametrize("name,source,words", [
    ("relu", "def relu(x):\n    while True:\n        pass", "longer than"),
    ("tanh", "while True:\n    pass", "longer than"),
    ("tanh", "import os\nos._exit(3)", "died (exit code 3)"),
    ("relu", "def relu(x):\n    import ctypes\n    return ctypes.string_at(0)", "died (signal SIGSEGV)"),
    ("relu", "def relu(x):\n    print('spam ' * 10**6)\n    return tf.nn.relu(x)", "File too large"),
    ("relu", "def relu(x):\n    big = np.ones(400_000_000)\n    return tf.nn.relu(x)", "memory"),
    ("relu", "def relu(x):\n    try:\n        while True:\n            pass\n    except BaseException:\n"
             "        return tf.nn.relu(x)", "longer than"),
])
def test_runaway_code_is_stopped_and_the_rest_is_graded(name, source, words):
    # filling memory is slow on a busy machine: give the memory limit time to be the one that stops it
    limits = dataclasses.replace(FAST, call_seconds=FAST.notebook_seconds) if words == "memory" else FAST
    result = grade_bytes(with_answers(**dict(ALL_RIGHT, **{name: source})), limits)
    graded = {e.exercise.removeprefix("01-"): e for e in result.exercises}
    assert graded[name].status == "failed" and words in graded[name].message, graded[name]
    assert all(e.status == "passed" for n, e in graded.items() if n != name), result


# --- tampering -----------------------------------------------------------------------------


def tampering_sources(tmp_path: pathlib.Path) -> dict[str, str]:
    victim = tmp_path / "submissions" / "bob" / f"{LESSON}.ipynb"
    solution = lessons.SOLUTIONS / f"{LESSON}.ipynb"
    return {
        "patch checks": "import utils, utils.checks\n"
                        "utils.checks.run = lambda *a, **k: None\n"
                        "np.allclose = np.isclose = lambda *a, **k: True\n"
                        "tf.nn.relu = keras.activations.relu = lambda x: x\n"
                        "def relu(x):\n    return x",
        "read the solutions": f"import json\nnb = json.load(open({str(solution)!r}))\n"
                              "exec(''.join(c['source'] if isinstance(c['source'], str) else ''.join(c['source'])"
                              " for c in nb['cells'] if 'def relu' in ''.join(c['source'])))",
        "write and delete files": f"import os\nos.remove({str(victim)!r})\n"
                                  f"open({str(lessons.ROOT / 'pwned.txt')!r}, 'w').write('x')\n"
                                  "def relu(x):\n    return x",
    }


def test_tampering_scores_no_more_than_the_untouched_lesson_and_changes_nothing(tmp_path):
    victim = tmp_path / "submissions" / "bob" / f"{LESSON}.ipynb"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(nbformat.writes(SOLVED).encode())
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    hidden = grading.hidden_folders(tmp_path / "submissions")
    for label, source in tampering_sources(tmp_path).items():
        result = grading.grade_notebook(with_answers(relu=source), LESSON, FAST, hidden)
        assert result.points == 0, (label, result)
        assert result.exercises[2].status == "failed", (label, result.exercises[2])
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before
    assert not (lessons.ROOT / "pwned.txt").exists()


def test_what_a_notebook_does_to_its_python_never_reaches_the_next():
    """Workers are forks of one warm Python (utils/warm.py): a notebook that patches modules
    and builtins changes only its own copy."""
    poison = ("import builtins, numpy, tensorflow, keras, utils\n"
              "numpy.exp = numpy.tanh = numpy.maximum = lambda *a, **k: 0\n"
              "tensorflow.exp = tensorflow.tanh = tensorflow.maximum = lambda *a, **k: 0\n"
              "tensorflow.math.exp = tensorflow.math.tanh = tensorflow.nn.relu = lambda *a, **k: 0\n"
              "keras.activations.sigmoid = keras.ops.exp = lambda *a, **k: 0\n"
              "builtins.abs = builtins.max = lambda *a, **k: 0\n"
              "def relu(x):\n    return x")
    assert grade_bytes(with_answers(relu=poison)).points == 0
    assert grade_bytes(nbformat.writes(SOLVED).encode()).points == FULL


def test_a_warm_python_that_died_is_started_again():
    grade_bytes(with_answers())
    warm._warm.process.kill()
    warm._warm.process.wait()
    assert grade_bytes(nbformat.writes(SOLVED).encode()).points == FULL


@pytest.mark.parametrize("lesson", grading.lesson_names())
def test_every_solution_runs_cleanly_and_gets_full_marks_in_the_grader(lesson):
    """The cells the grader runs (training and plots tagged ``skip-grading`` left out) still
    define everything the later ones use, and the solution loses no point."""
    data = (lessons.SOLUTIONS / f"{lesson}.ipynb").read_bytes()
    cells, _ = grading.rebuild(grading.official_lesson(lesson), grading.student_answers(grading.read_notebook(data)))
    session = grading.Session(cells, grading.Limits(), grading.hidden_folders())
    try:
        session.run_cells()
    finally:
        session.close()
    assert not session.errors, session.errors
    result = grading.grade_notebook(data, lesson)
    assert result.points == result.max_points, [e for e in result.exercises if e.points < e.max_points]


# --- the command-line tools ------------------------------------------------------------------


def test_grade_writes_gradebook_results_feedback_and_resumes(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    for student, data in [("alice", nbformat.writes(SOLVED).encode()),
                          ("bob", with_answers(relu="right")),
                          ("carol", b"not a notebook")]:
        (submissions / student).mkdir(parents=True)
        (submissions / student / f"{LESSON}.ipynb").write_bytes(data)
    hashes = {p: p.read_bytes() for p in submissions.rglob("*.ipynb")}
    out = tmp_path / "out"
    limits = ["--cell-timeout", "20", "--call-timeout", "10"]

    assert grade.main([str(submissions), "--out", str(out), "--student", "alice", *limits]) == 0
    assert grade.main([str(submissions), "--out", str(out), "--jobs", "2", *limits]) == 0
    assert "1 already graded, 2 to grade" in capsys.readouterr().out

    with open(out / "gradebook.csv") as file:
        book = {row["student"]: row for row in csv.DictReader(file)}
    assert {s: book[s]["total"] for s in book} == {"alice": f"{FULL:g}", "bob": "1", "carol": "0"}
    assert book["bob"]["01-relu"] == "1" and book["bob"][f"{LESSON} total"] == "1"
    with open(out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 * len(NAMES) and {r["status"] for r in rows if r["student"] == "carol"} == {"not graded"}
    assert f"Score: 1 / {FULL:g}" in (out / "feedback" / "bob" / f"{LESSON}.md").read_text()
    assert json.loads((out / "results" / "carol" / f"{LESSON}.json").read_text())["status"] == "unreadable"
    assert {p: p.read_bytes() for p in submissions.rglob("*.ipynb")} == hashes
    assert not list(out.rglob("*.tmp"))


def test_flat_file_names_give_student_and_lesson(tmp_path):
    (tmp_path / f"dana_smith_{LESSON}.ipynb").write_text("{}")
    found = grade.find_submissions([tmp_path])
    assert [(s.student, s.lesson) for s in found] == [("dana_smith", LESSON)]


def test_check_command_reports_and_sets_the_exit_code(tmp_path, capsys):
    partial = tmp_path / f"{LESSON}.ipynb"
    partial.write_bytes(with_answers(relu="right", tanh="def tanh(x):\n    return x"))
    assert check.main([str(partial)]) == 1
    out = capsys.readouterr().out
    assert "✓ 01-relu" in out and "✗ 01-tanh" in out and "· 01-sigmoid" in out and f"Score: 1 / {FULL:g}" in out

    partial.write_bytes(with_answers(relu="right"))
    assert check.main([str(partial)]) == 0
    (tmp_path / "notes.ipynb").write_text("garbage")
    assert check.main([str(tmp_path / "notes.ipynb")]) == 2


# --- what crosses between grader and worker ----------------------------------------------------


def test_values_cross_as_plain_data():
    import numpy as np
    import tensorflow as tf

    ragged = tf.ragged.constant([[b"a", b"bc"], [b"d"]])
    sent = [ragged, tf.constant([1.0, 2.0]), tf.Variable([3.0]), np.int32(3), {"k": (1, None, "s")}, {"a", "b"}]
    back = wire.decode(json.loads(json.dumps(wire.encode(sent))), resolve=None)
    assert back[0].to_list() == ragged.to_list()
    assert tf.is_tensor(back[1]) and back[1].numpy().tolist() == [1.0, 2.0]
    assert isinstance(back[2], tf.Variable) and back[3] == 3 and back[4] == {"k": (1, None, "s")}
    assert back[5] == {"a", "b"}


def test_grader_never_takes_a_function_from_the_worker():
    with pytest.raises(ValueError, match="unknown value kind"):
        wire.decode({"function": "os:system"}, resolve=None)
    assert wire.decode({"function": "os.path:join"}, resolve=None, functions=True) is __import__("os").path.join


@pytest.mark.parametrize("raw,kind", [
    (b"[]", "cell"),
    (b"[" * 5000 + b"]" * 5000, "cell"),  # deeper than Python's recursion limit
    (b'{"ok": true, "value": ' + b"[" * 100 + b"]" * 100 + b"}", "value"),  # parses, but too deep
    (b'{"ok": "yes"}', "cell"),
    (b'{"ok": true}', "value"),  # no value
    (b'{"ok": false}', "cell"),  # no error
    (b'{"ok": false, "error": {"type": 1, "message": "m"}}', "value"),
    (b'{"ok": false, "not_implemented": true}', "cell"),
    (b'{"ok": true, "error": null, "extra": 1}', "cell"),
    (b'{"ok": true, "sandboxed": "no", "isolation": []}', "greeting"),
    (b"\xff\xfe", "value"),
    (b" " * (wire.MAX_MESSAGE + 1), "cell"),
])
def test_every_malformed_reply_is_a_worker_failure(raw, kind):
    with pytest.raises(wire.WorkerFailed):
        wire.parse_reply(raw, kind)


def test_well_formed_replies_pass_the_gate():
    assert wire.parse_reply(b'{"ok": true, "error": null}', "cell")["ok"]
    assert wire.parse_reply(b'{"ok": false, "not_implemented": true}', "value")["not_implemented"]
    assert wire.parse_reply(b'{"ok": false, "error": {"type": "E", "message": "m"}}', "value")["error"]["type"] == "E"
    assert wire.parse_reply(b'{"ok": true, "value": {"list": [1, 2]}}', "value")["value"] == {"list": [1, 2]}


@pytest.mark.parametrize("name", [f"{LESSON}.ipynb", f"{LESSON}-Copy1.ipynb", f"{LESSON} (2).ipynb",
                                  f"dana_smith_{LESSON}-Copy2.ipynb", "homework.ipynb"])
def test_check_and_grade_find_the_lesson_the_same_way(tmp_path, name):
    path = tmp_path / "dana_smith" / name
    path.parent.mkdir()
    path.write_bytes(with_answers(relu="right"))
    assert grading.lesson_of(path) == LESSON
    assert [s.lesson for s in grade.find_submissions([tmp_path])] == [LESSON]
    assert [s.lesson for s in grade.find_submissions([path])] == [LESSON]
