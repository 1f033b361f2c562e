"""Real nbgrader takes solutions/ as a course's source folder: `nbgrader generate_assignment`
releases lesson 01 without its solutions, and `nbgrader autograde` gives the solution full
marks and the untouched lesson none. Offline: nbgrader runs the notebooks on this machine.

The notebooks are lesson 01 without its ``skip-grading`` cells (its experiments, which the
nbval run executes already): every exercise, check and set-up cell is there, so nbgrader
releases and grades exactly what it would in the whole lesson."""
import csv
import importlib.util

import nbformat
import pytest

from solved import without_skipped_cells
from utils import bench, lessons

pytestmark = pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None,
                                reason="nbgrader is not installed (pip install nbgrader==0.9.6)")

LESSON = "01_neurons_and_activations"
EXERCISES = lessons.exercises(nbformat.read(lessons.SOLUTIONS / f"{LESSON}.ipynb", as_version=4))


def test_nbgrader_releases_and_autogrades_lesson_01(tmp_path):
    solved = without_skipped_cells(lessons.SOLUTIONS / f"{LESSON}.ipynb")
    blank = without_skipped_cells(lessons.LESSONS / f"{LESSON}.ipynb")
    assignment = bench.nbgrader_course(tmp_path, LESSON, {"solved": solved, "blank": blank}, source=solved)

    bench.run_nbgrader(tmp_path, "generate_assignment", assignment, "--force")
    released = nbformat.read(tmp_path / "release" / assignment / f"{LESSON}.ipynb", as_version=4)
    answers = [c.source for c in released.cells if lessons.nbgrader(c).get("solution")]
    assert len(answers) == len(EXERCISES) and all("raise NotImplementedError" in a for a in answers)
    assert "BEGIN SOLUTION" not in nbformat.writes(released)

    bench.run_nbgrader(tmp_path, "autograde", assignment, "--force")  # both students in one run
    bench.run_nbgrader(tmp_path, "export", "--to", str(tmp_path / "grades.csv"))
    with open(tmp_path / "grades.csv") as file:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(file)}
    full = sum(e.points for e in EXERCISES)
    assert full > 0 and scores == {"solved": (full, full), "blank": (0, full)}
