"""The tables made from grading records (gradebook.csv, the Canvas and Moodle imports, results.csv)
on synthetic records, and how `utils.grade` writes them: results.csv row by row as notebooks
finish, the rest once at the end, nothing lost or doubled when a run is stopped and resumed.
The grader itself is replaced by a fake here (tests/test_grading.py runs the real one)."""
import csv
import io

import nbformat
import pytest

from utils import grade, gradebook, grading, lessons, similarity

LESSON = "01_neurons_and_activations"


def record(student: str, lesson: str, points: dict[str, tuple[float, float]], status="graded") -> dict:
    exercises = [{"exercise": e, "points": p, "max_points": m, "status": "passed" if p == m else "failed",
                  "message": "", "seconds": 0.5} for e, (p, m) in points.items()]
    return {"student": student, "file": f"/x/{student}/{lesson}.ipynb", "lesson": lesson, "status": status,
            "message": "", "exercises": exercises, "seconds": 1.0, "sandboxed": True}


RECORDS = [
    record("alice@uni.edu", "01_a", {"01-x": (3, 3), "01-y": (1, 2)}),
    record("alice@uni.edu", "02_b", {"02-z": (4, 4)}),
    record("bob@uni.edu", "01_a", {"01-x": (0, 3), "01-y": (2, 2)}),
    record("bob@uni.edu", "notes", {}, status="unknown lesson"),
]


def parse(table) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gradebook.to_csv(*table))))


def test_gradebook_has_exercises_lesson_totals_and_total():
    rows = parse(gradebook.gradebook(RECORDS))
    assert rows[0] == ["student", "01-x", "01-y", "01_a total", "02-z", "02_b total", "notes total", "total"]
    assert rows[1] == ["alice@uni.edu", "3", "1", "4", "4", "4", "", "8"]
    assert rows[2] == ["bob@uni.edu", "0", "2", "2", "", "", "0", "2"]


def test_canvas_file_follows_the_gradebook_export_layout():
    rows = parse(gradebook.canvas(RECORDS))
    header, possible, *students = rows
    # Canvas's importer: "Student" first, "ID" second, then SIS User ID, SIS Login ID, Section
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "01_a", "02_b"]
    assert "Points Possible" in possible[0] and possible[5:] == ["5", "4"]
    assert students == [["alice@uni.edu", "", "", "alice@uni.edu", "", "4", "4"],
                        ["bob@uni.edu", "", "", "bob@uni.edu", "", "2", ""]]  # no 02 handed in: no grade


def test_moodle_file_has_an_identifier_column_then_one_column_per_grade_item():
    rows = parse(gradebook.moodle(RECORDS))
    assert rows == [["Email address", "01_a", "02_b"], ["alice@uni.edu", "4", "4"], ["bob@uni.edu", "2", ""]]
    named = [dict(r, student=r["student"].split("@")[0]) for r in RECORDS]
    assert parse(gradebook.moodle(named))[0][0] == "Username"
    assert parse(gradebook.moodle([])) == [["Username"]]


def test_result_rows_give_one_row_per_exercise():
    assert gradebook.result_rows(RECORDS[0]) == [
        ["alice@uni.edu", "01_a", "01-x", 3, 3, "passed", "", "0.50"],
        ["alice@uni.edu", "01_a", "01-y", 1, 2, "failed", "", "0.50"]]


# --- utils.grade with a fake grader ------------------------------------------------------------

SOLVED = (lessons.SOLUTIONS / f"{LESSON}.ipynb").read_bytes()
BLANK = (lessons.LESSONS / f"{LESSON}.ipynb").read_bytes()
EXERCISES = [e.id for e in lessons.exercises(nbformat.reads(BLANK.decode(), as_version=4))]


class FakeGrader:
    """Scores a notebook by its student folder's points; stops the run at ``stop_at``."""

    def __init__(self, points: dict[bytes, float], stop_at: bytes | None = None):
        self.points, self.stop_at, self.calls = points, stop_at, 0

    def __call__(self, data, lesson, limits=None, hidden=None):
        self.calls += 1
        if data == self.stop_at:
            raise KeyboardInterrupt  # the instructor presses Ctrl-C while this notebook is graded
        exercises = [grading.ExerciseResult(e, self.points.get(data, 0), 1, "passed", "", 0.1) for e in EXERCISES]
        return grading.NotebookResult(lesson, "graded", "", exercises, 0.1, True)


def class_folder(tmp_path, notebooks: dict[str, bytes]):
    for student, data in notebooks.items():
        (tmp_path / "submissions" / student).mkdir(parents=True)
        (tmp_path / "submissions" / student / f"{LESSON}.ipynb").write_bytes(data)
    return tmp_path / "submissions"


def results(out) -> list[dict]:
    with open(out / "results.csv") as file:
        return list(csv.DictReader(file))


def test_a_stopped_run_loses_nothing_and_a_resumed_one_doubles_nothing(tmp_path, monkeypatch, capsys):
    a, b, c = SOLVED, BLANK, SOLVED.replace(b"tf.maximum", b"tf.maximum ")  # three different files
    submissions, out = class_folder(tmp_path, {"alice": a, "bob": b, "carol": c}), tmp_path / "out"

    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({a: 1, c: 1}, stop_at=b))
    with pytest.raises(KeyboardInterrupt):
        grade.main([str(submissions), "--out", str(out)])
    assert sorted({r["student"] for r in results(out)}) == ["alice", "carol"]
    assert not (out / "gradebook.csv").exists()  # the tables come once, at the end

    with open(out / "results.csv", "a") as file:  # a row half written when the run was killed
        file.write("alice,01_neurons")
    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({a: 1, c: 1}))
    assert grade.main([str(submissions), "--out", str(out)]) == 0
    assert "2 already graded, 1 to grade" in capsys.readouterr().out
    rows = results(out)
    assert sorted((r["student"], r["exercise"]) for r in rows) == sorted(
        (s, e) for s in ("alice", "bob", "carol") for e in EXERCISES)

    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({b: 1}))  # bob's notebook now passes
    assert grade.main([str(submissions), "--out", str(out), "--regrade", "--student", "bob"]) == 0
    rows = results(out)
    assert len(rows) == 3 * len(EXERCISES)
    assert {r["points"] for r in rows if r["student"] == "bob"} == {"1"}
    with open(out / "gradebook.csv") as file:
        totals = {r["student"]: r["total"] for r in csv.DictReader(file)}
    assert totals == {s: str(len(EXERCISES)) for s in ("alice", "bob", "carol")}
    for name in ("gradebook_canvas.csv", "gradebook_moodle.csv", "similarity.csv"):
        assert (out / name).exists()
    assert not list(out.rglob("*.tmp"))


def test_tables_are_written_once_per_run_not_once_per_notebook(tmp_path, monkeypatch):
    students = {f"s{i}": SOLVED.replace(b"tf.maximum", b"tf.maximum" + b" " * i) for i in range(5)}
    submissions = class_folder(tmp_path, students)
    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({}))
    calls = {"gradebook": 0, "result_rows": 0}

    def counted(name):
        original = getattr(gradebook, name)

        def wrapper(*args):
            calls[name] += 1
            return original(*args)
        return wrapper

    for name in calls:
        monkeypatch.setattr(gradebook, name, counted(name))
    assert grade.main([str(submissions), "--out", str(tmp_path / "out"), "--jobs", "2"]) == 0
    assert calls == {"gradebook": 1, "result_rows": 5}


def test_similarity_report_lists_copied_answers(tmp_path, monkeypatch):
    notebook = nbformat.reads(SOLVED.decode(), as_version=4)
    for cell in notebook.cells:  # a copy with the variables renamed and a comment added
        if lessons.is_answer_cell(cell):
            cell.source = cell.source.replace("x_pos", "positive").replace("x_neg", "negative") + "  # mine"
    copied = nbformat.writes(notebook).encode()
    submissions = class_folder(tmp_path, {"alice": SOLVED, "bob": copied, "carol": BLANK})
    monkeypatch.setattr(grading, "grade_notebook", FakeGrader({}))
    assert grade.main([str(submissions), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "similarity.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows and {(r["student_a"], r["student_b"]) for r in rows} == {("alice", "bob")}
    assert {r["exercise"] for r in rows} >= {"01-sigmoid", similarity.LESSON}
    assert all(float(r["score"]) == 1.0 for r in rows)
