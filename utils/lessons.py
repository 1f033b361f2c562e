"""Build the learners' notebooks in ``lessons/`` from the solutions in ``solutions/``.

The solutions are the source of truth. An exercise is a code cell whose answer sits
between nbgrader's ``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers; its cell
metadata (``nbgrader.grade_id``) holds the exercise id, and the check cell after it holds
the points. Building a lesson blanks every answer, drops hidden-test blocks and clears
all outputs. It is deterministic, so ``--check`` can tell a stale lesson by its bytes.

    python -m utils.lessons build            # regenerate every lesson
    python -m utils.lessons build --check    # exit 1, naming each stale lesson
    python -m utils.lessons execute solutions/01_neurons_and_activations.ipynb
"""
import argparse
import copy
import dataclasses
import os
import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LESSONS = ROOT / "lessons"

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
ANSWER_STUB = "YOUR ANSWER HERE"
CHECK_SUFFIX = "-check"
CELL_TIMEOUT = 300  # seconds; a solution notebook runs in at most 150 s in all


@dataclasses.dataclass
class Exercise:
    id: str  # e.g. "01-sigmoid"
    points: float
    cell: int  # index of the answer cell in its notebook


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer_cell(cell) -> bool:
    return bool(nbgrader(cell).get("solution"))


def is_check_cell(cell) -> bool:
    return bool(nbgrader(cell).get("grade")) and not nbgrader(cell).get("solution")


def exercises(notebook) -> list[Exercise]:
    """The notebook's exercises in order, with the points from their check cells."""
    points = {
        nbgrader(cell)["grade_id"].removesuffix(CHECK_SUFFIX): nbgrader(cell).get("points", 0)
        for cell in notebook.cells
        if is_check_cell(cell)
    }
    found = []
    for index, cell in enumerate(notebook.cells):
        if is_answer_cell(cell):
            exercise_id = nbgrader(cell)["grade_id"]
            if exercise_id not in points:
                raise ValueError(f"exercise {exercise_id} has no check cell ({exercise_id}{CHECK_SUFFIX})")
            found.append(Exercise(exercise_id, points[exercise_id], index))
    return found


def _replace_blocks(lines: list[str], begin: str, end: str, stub: list[str] | None, where: str) -> list[str]:
    """Replace each begin…end block (markers included) by ``stub`` at the block's indent."""
    out, inside = [], False
    for line in lines:
        marker = line.strip()
        if marker == begin:
            if inside:
                raise ValueError(f"{where}: {begin!r} inside another block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in stub or []]
        elif marker == end:
            if not inside:
                raise ValueError(f"{where}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {begin!r} is never closed by {end!r}")
    return out


def build_lesson(solution, name: str = "notebook"):
    """Return the learner's version of a solution notebook (the input is not changed)."""
    lesson = copy.deepcopy(solution)
    for index, cell in enumerate(lesson.cells):
        where = f"{name}, cell {index}"
        lines = cell.source.splitlines()
        if is_answer_cell(cell):
            if cell.cell_type == "code":
                if not any(line.strip() == BEGIN_SOLUTION for line in lines):
                    raise ValueError(f"{where}: answer cell without {BEGIN_SOLUTION!r}")
                lines = _replace_blocks(lines, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB, where)
            else:
                lines = [ANSWER_STUB]
        lines = _replace_blocks(lines, BEGIN_HIDDEN, END_HIDDEN, None, where)
        cell.source = "\n".join(lines)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for volatile in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(volatile, None)
    return lesson


def lesson_path(solution_path: pathlib.Path) -> pathlib.Path:
    return LESSONS / solution_path.name


def lesson_text(solution_path: pathlib.Path) -> str:
    """What ``lessons/<name>.ipynb`` must contain, byte for byte."""
    solution = nbformat.read(solution_path, as_version=4)
    return nbformat.writes(build_lesson(solution, solution_path.name)) + "\n"


def solution_paths() -> list[pathlib.Path]:
    return sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))


def build(check: bool = False) -> int:
    """Write every lesson (or, with ``check``, report the stale ones); return an exit code."""
    stale = []
    for path in solution_paths():
        target, text = lesson_path(path), lesson_text(path)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(target)
        if not check:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)}")
    if check and stale:
        for target in stale:
            print(f"out of date: {target.relative_to(ROOT)} (run: python -m utils.lessons build)")
        return 1
    return 0


def run(notebook: nbformat.NotebookNode, folder: pathlib.Path, allow_errors: bool = False) -> None:
    """Execute a notebook in place, top to bottom, in a fresh kernel started in ``folder``
    (so its set-up cell finds ``utils`` as it would in Jupyter)."""
    from nbclient import NotebookClient

    NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(folder)}}).execute()


def execute(path: pathlib.Path) -> None:
    """Run a solution notebook top to bottom in its own folder and store its outputs.

    This is how the stored outputs in ``solutions/`` are made: by their own code.
    """
    notebook = nbformat.read(path, as_version=4)
    run(notebook, path.parent)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)
    print(f"executed {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.lessons", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="regenerate lessons/ from solutions/")
    build_parser.add_argument("--check", action="store_true", help="only report stale lessons; exit 1 if any")
    execute_parser = commands.add_parser("execute", help="re-run solution notebooks and store their outputs")
    execute_parser.add_argument("notebooks", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(check=args.check)
    for path in args.notebooks:
        execute(path.resolve())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
