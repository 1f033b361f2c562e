"""Lessons are built from their solutions, leak nothing, and fail only where the learner works."""
import re

import nbformat
import pytest

from solved import SOLUTIONS
from utils import lessons

SOLUTION_PATHS = sorted(SOLUTIONS.values())
NAMES = [path.stem for path in SOLUTION_PATHS]
TF_NOISE = re.compile(r"oneDNN custom operations|Could not find cuda drivers|Unable to register cu|"
                      r"absl::InitializeLog|TF_ENABLE_ONEDNN_OPTS|computation placer|cpu_feature_guard")

SOLUTION_CELL = """\
def f(x):
    \"\"\"Doc.\"\"\"
    ### BEGIN SOLUTION
    y = secret(x)
    return y
    ### END SOLUTION
"""


def notebook(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def answer_cell(source, exercise_id="00-f"):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": exercise_id}
    return cell


def check_cell(exercise_id="00-f", points=2):
    cell = nbformat.v4.new_code_cell(f'utils.check_exercise("{exercise_id}", f)')
    cell.metadata["nbgrader"] = {"solution": False, "grade": True, "grade_id": exercise_id + "-check",
                                 "points": points}
    return cell


# --- the builder -----------------------------------------------------------------------


def test_answer_is_replaced_by_a_stub_at_its_indent():
    lesson = lessons.build_lesson(notebook(answer_cell(SOLUTION_CELL)))
    assert lesson.cells[0].source == (
        'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
    )


def test_hidden_tests_outputs_and_counts_are_removed():
    cell = nbformat.v4.new_code_cell("check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS")
    cell.outputs = [nbformat.v4.new_output("stream", text="4\n")]
    cell.execution_count = 3
    lesson = lessons.build_lesson(notebook(cell))
    assert lesson.cells[0].source == "check(f)"
    assert lesson.cells[0].outputs == [] and lesson.cells[0].execution_count is None


def test_markdown_answer_becomes_a_prompt():
    cell = nbformat.v4.new_markdown_cell("Because the gradient vanishes.")
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "00-why"}
    assert lessons.build_lesson(notebook(cell)).cells[0].source == lessons.ANSWER_STUB


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",
    "x = 1\n### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
    "x = 1",
])
def test_malformed_answer_cells_are_refused(source):
    with pytest.raises(ValueError, match="cell 0"):
        lessons.build_lesson(notebook(answer_cell(source)))


def test_building_leaves_the_solution_untouched_and_is_repeatable():
    solution = notebook(answer_cell(SOLUTION_CELL), check_cell())
    before = nbformat.writes(solution)
    first = nbformat.writes(lessons.build_lesson(solution))
    assert nbformat.writes(solution) == before
    assert nbformat.writes(lessons.build_lesson(solution)) == first


def test_exercises_take_points_from_their_check_cells():
    found = lessons.exercises(notebook(answer_cell(SOLUTION_CELL), check_cell(points=3)))
    assert [(e.id, e.points, e.cell) for e in found] == [("00-f", 3, 0)]
    with pytest.raises(ValueError, match="no check cell"):
        lessons.exercises(notebook(answer_cell(SOLUTION_CELL)))


def test_check_mode_names_a_stale_lesson(tmp_path, monkeypatch, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "lessons").mkdir()
    monkeypatch.setattr(lessons, "ROOT", tmp_path)
    monkeypatch.setattr(lessons, "SOLUTIONS", tmp_path / "solutions")
    monkeypatch.setattr(lessons, "LESSONS", tmp_path / "lessons")
    solution = tmp_path / "solutions" / "00_demo.ipynb"
    nbformat.write(notebook(answer_cell(SOLUTION_CELL), check_cell()), solution)

    assert lessons.build(check=True) == 1
    assert "lessons/00_demo.ipynb" in capsys.readouterr().out
    assert lessons.build() == 0
    assert lessons.build(check=True) == 0
    nbformat.write(notebook(answer_cell(SOLUTION_CELL.replace("secret", "other")), check_cell()), solution)
    assert lessons.build(check=True) == 1


# --- the real lessons --------------------------------------------------------------------


@pytest.mark.parametrize("solution", SOLUTION_PATHS, ids=NAMES)
def test_lesson_is_in_sync_with_its_solution(solution):
    lesson = lessons.lesson_path(solution)
    assert lesson.exists(), f"{lesson.name} is missing: run python -m utils.lessons build"
    assert lesson.read_text(encoding="utf-8") == lessons.lesson_text(solution), (
        f"lessons/{lesson.name} is out of date with solutions/{solution.name}: "
        "run python -m utils.lessons build"
    )


def solution_lines(solution_notebook) -> set[str]:
    """Substantial lines that appear only inside BEGIN/END SOLUTION blocks."""
    inside, outside = set(), set()
    for cell in solution_notebook.cells:
        in_block = False
        for line in cell.source.splitlines():
            if line.strip() in (lessons.BEGIN_SOLUTION, lessons.BEGIN_HIDDEN):
                in_block = True
            elif line.strip() in (lessons.END_SOLUTION, lessons.END_HIDDEN):
                in_block = False
            (inside if in_block else outside).add(line.strip())
    return {line for line in inside - outside if len(line) >= 12}


@pytest.mark.parametrize("solution", SOLUTION_PATHS, ids=NAMES)
def test_lesson_leaks_no_solution(solution):
    solved = nbformat.read(solution, as_version=4)
    lesson = nbformat.read(lessons.lesson_path(solution), as_version=4)
    text = "\n".join(cell.source for cell in lesson.cells)
    for marker in (lessons.BEGIN_SOLUTION, lessons.END_SOLUTION, lessons.BEGIN_HIDDEN):
        assert marker not in text
    leaked = [line for line in solution_lines(solved) if line in text]
    assert not leaked, f"solution lines found in the lesson: {leaked}"
    assert all(not cell.get("outputs") for cell in lesson.cells)
    assert [e.id for e in lessons.exercises(lesson)] == [e.id for e in lessons.exercises(solved)]


@pytest.mark.parametrize("solution", SOLUTION_PATHS, ids=NAMES)
def test_solution_outputs_are_clean(solution):
    """Stored outputs carry no stderr (TensorFlow's start-up lines) and no errors."""
    for index, cell in enumerate(nbformat.read(solution, as_version=4).cells):
        for output in cell.get("outputs", []):
            where = f"{solution.name}, cell {index}"
            assert output.output_type != "error", f"{where} stored an error"
            assert output.get("name") != "stderr", f"{where} stored stderr: {output.text[:200]}"
            assert not TF_NOISE.search(output.get("text", "")), f"{where}: TensorFlow start-up noise"


@pytest.mark.parametrize("solution", SOLUTION_PATHS, ids=NAMES)
def test_every_exercise_has_a_registered_check(solution):
    from utils import checks

    for exercise in lessons.exercises(nbformat.read(solution, as_version=4)):
        assert exercise.id in checks.CHECKS
        assert exercise.id.startswith(solution.name[:2] + "-")
        assert exercise.points > 0


@pytest.mark.parametrize("solution", SOLUTION_PATHS, ids=NAMES)
def test_fresh_lesson_fails_only_in_exercises(solution):
    """Run the lesson as a learner first opens it: every check cell says "not implemented
    yet", and any other cell either runs or stops at the learner's unfinished code.

    The learner's own pieces are what the later cells train and measure, so those cells may
    fail: with the NotImplementedError of an exercise not yet done, or, once a cell has
    stopped that way, with a NameError for what it did not get to define. Anything else
    (a type or shape error, a missing file) is a bug in the lesson."""
    path = lessons.lesson_path(solution)
    lesson = nbformat.read(path, as_version=4)
    lessons.run(lesson, path.parent, allow_errors=True)
    stopped = False  # has a cell stopped at unfinished exercise code yet?
    for index, cell in enumerate(lesson.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if lessons.is_check_cell(cell):
            assert [e.ename for e in errors] == ["NotAttempted"], f"cell {index}: {errors}"
            assert "not implemented yet" in errors[0].evalue
        elif lessons.is_answer_cell(cell):
            assert all(e.ename == "NotImplementedError" for e in errors), f"cell {index}: {errors}"
        else:
            allowed = {"NotImplementedError", "NameError"} if stopped else {"NotImplementedError"}
            assert all(e.ename in allowed for e in errors), (
                f"{path.name}, cell {index} fails for a reason other than an unfinished exercise: {errors}")
            stopped = stopped or bool(errors)
