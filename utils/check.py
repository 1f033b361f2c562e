"""Check your own notebook, the way the instructor's grader will:

    python -m utils.check lessons/01_neurons_and_activations.ipynb

Your answers run in a fresh Python process, the checks draw new inputs, and you get, per
exercise, passed / failed / not attempted with the reason, and your score. The exit code is 0
when every exercise you attempted passes, 1 when one fails, 2 when the notebook can't be read.
"""
import argparse
import pathlib
import sys

from utils import grading

MARKS = {"passed": "✓", "failed": "✗", "not attempted": "·"}


def report(result: grading.NotebookResult) -> str:
    """The verdict as a learner reads it in a terminal."""
    lines = [f"{result.lesson}: {result.status}" + (f": {result.message}" if result.message else "")]
    width = max((len(e.exercise) for e in result.exercises), default=0)
    for e in result.exercises:
        lines.append(f"  {MARKS.get(e.status, '!')} {e.exercise:<{width}}  {e.points:g}/{e.max_points:g}  "
                     f"{e.status}" + (f": {e.message}" if e.status != "passed" else ""))
    lines.append(f"Score: {result.points:g} / {result.max_points:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=pathlib.Path)
    parser.add_argument("--lesson", help="the lesson, when the file name does not say (e.g. 01_neurons_and_activations)")
    args = parser.parse_args(argv)
    try:  # a learner's own link is followed; a pipe or device is refused instead of blocking
        data = grading.read_submission(args.notebook.resolve())
    except grading.BadSubmission as error:
        print(f"cannot read {args.notebook}: {error}", file=sys.stderr)
        return 2
    lesson = args.lesson or grading.lesson_of(args.notebook, data)
    if lesson is None:
        print(f"cannot tell which lesson {args.notebook.name} is: name it like the lesson "
              f"(e.g. 01_neurons_and_activations.ipynb) or pass --lesson", file=sys.stderr)
        return 2
    result = grading.grade_notebook(data, lesson)
    print(report(result))
    if result.status != "graded":
        return 2
    return 1 if any(e.status not in ("passed", "not attempted") for e in result.exercises) else 0


if __name__ == "__main__":
    sys.exit(main())
