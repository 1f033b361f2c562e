"""Grade a class's notebooks against the official lessons:

    python -m utils.grade SUBMISSIONS --out DIR [--jobs 2] [--student NAME] [--lesson 01]

SUBMISSIONS is a folder laid out SUBMISSIONS/<student>/<NN_name>.ipynb (nbgrader's layout;
deeper folders such as <student>/<assignment>/ are fine too), or notebook files named
<student>_<NN_name>.ipynb. DIR receives

    gradebook.csv                one row per student: points per exercise, per lesson, total
    results.csv                  one row per student, lesson and exercise, with the message
    feedback/<student>/<NN_name>.md   what each student reads
    results/<student>/<NN_name>.json  the record each of the above is made from

Each result is written (atomically) as soon as its notebook is graded, so a run that is
stopped resumes where it left off; --regrade grades the selected notebooks again.
Submissions are only read, never changed.
"""
import argparse
import concurrent.futures
import csv
import dataclasses
import io
import json
import os
import pathlib
import sys
import threading

from utils import grading


@dataclasses.dataclass
class Submission:
    student: str
    lesson: str
    path: pathlib.Path


def find_submissions(paths: list[pathlib.Path]) -> list[Submission]:
    """Every notebook under the given folders and files, with its student and lesson."""
    names = grading.lesson_names()

    def from_file_name(path: pathlib.Path) -> Submission:
        for name in names:
            if path.stem.endswith("_" + name):
                return Submission(path.stem[: -len(name) - 1], name, path)
        student, _, lesson = path.stem.partition("_")
        return Submission(student, lesson or path.stem, path)

    found = []
    for root in paths:
        if root.is_file():
            found.append(from_file_name(root))
            continue
        for entry in sorted(root.iterdir()):
            if entry.is_file() and entry.suffix == ".ipynb":
                found.append(from_file_name(entry))
            elif entry.is_dir():
                for notebook in sorted(entry.rglob("*.ipynb")):
                    if ".ipynb_checkpoints" not in notebook.parts:
                        found.append(Submission(entry.name, notebook.stem, notebook))
    return found


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Write a whole file or nothing: a run killed mid-write leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def feedback(student: str, result: grading.NotebookResult) -> str:
    lines = [f"# {result.lesson}: feedback for {student}", "",
             f"**Score: {result.points:g} / {result.max_points:g}**", ""]
    if result.status != "graded":
        lines += [f"This notebook could not be graded in full ({result.status}): {result.message}", ""]
    lines += ["| exercise | points | status |", "|---|---|---|"]
    lines += [f"| {e.exercise} | {e.points:g} / {e.max_points:g} | {e.status} |" for e in result.exercises]
    for e in result.exercises:
        lines += ["", f"## {e.exercise}: {e.status}", "", e.message or "(no message)"]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(out: pathlib.Path) -> None:
    """gradebook.csv and results.csv, rebuilt from every stored result."""
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "results").glob("*/*.json"))]
    long_rows, points, columns = [], {}, {}
    for record in records:
        student, lesson = record["student"], record["lesson"]
        for e in record["exercises"]:
            long_rows.append([student, lesson, e["exercise"], e["points"], e["max_points"], e["status"],
                              e["message"], f"{e['seconds']:.2f}"])
            points.setdefault(student, {})[e["exercise"]] = e["points"]
            columns.setdefault(lesson, []).append(e["exercise"])
        points.setdefault(student, {})[f"{lesson} total"] = sum(e["points"] for e in record["exercises"])
        columns.setdefault(lesson, [])
    header = ["student"]
    for lesson in sorted(columns):
        header += sorted(set(columns[lesson]), key=columns[lesson].index) + [f"{lesson} total"]
    header.append("total")
    wide = []
    for student in sorted(points):
        row = points[student]
        total = sum(v for k, v in row.items() if k.endswith(" total"))
        wide.append([student] + [row.get(column, "") for column in header[1:-1]] + [total])
    write_atomically(out / "gradebook.csv", to_csv(header, wide))
    write_atomically(out / "results.csv", to_csv(
        ["student", "lesson", "exercise", "points", "max_points", "status", "message", "seconds"], long_rows))


def record_path(out: pathlib.Path, submission: Submission) -> pathlib.Path:
    return out / "results" / submission.student / f"{submission.lesson}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.grade", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("submissions", nargs="+", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for the gradebook and feedback")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--lesson", action="append", help="grade only this lesson, e.g. 01 (repeatable)")
    parser.add_argument("--regrade", action="store_true", help="grade again notebooks that already have a result")
    limits = grading.Limits()
    parser.add_argument("--cell-timeout", type=float, default=limits.cell_seconds, help="seconds per cell")
    parser.add_argument("--call-timeout", type=float, default=limits.call_seconds, help="seconds per call of an answer")
    parser.add_argument("--notebook-timeout", type=float, default=limits.notebook_seconds, help="seconds per notebook")
    parser.add_argument("--memory-mb", type=int, default=limits.memory_mb, help="memory per notebook")
    parser.add_argument("--output-mb", type=float, default=limits.output_mb, help="printed output per notebook")
    args = parser.parse_args(argv)
    limits = grading.Limits(cell_seconds=args.cell_timeout, call_seconds=args.call_timeout,
                            notebook_seconds=args.notebook_timeout, memory_mb=args.memory_mb,
                            output_mb=args.output_mb)

    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        parser.error(f"not found: {', '.join(missing)}")
    out = args.out.resolve()
    submissions = [s for s in find_submissions(args.submissions)
                   if (not args.student or s.student in args.student)
                   and (not args.lesson or any(s.lesson.startswith(lesson) for lesson in args.lesson))]
    todo = [s for s in submissions if args.regrade or not record_path(out, s).exists()]
    print(f"{len(submissions)} notebooks found, {len(submissions) - len(todo)} already graded, {len(todo)} to grade")
    hidden = grading.hidden_folders(*[p.resolve() if p.is_dir() else p.resolve().parent for p in args.submissions], out)
    lock = threading.Lock()

    def grade(submission: Submission) -> None:
        try:
            data = submission.path.read_bytes()
        except OSError as error:
            data = f"unreadable: {error.strerror}".encode()
        result = grading.grade_notebook(data, submission.lesson, limits, hidden)
        record = {"student": submission.student, "file": str(submission.path), **dataclasses.asdict(result)}
        with lock:
            if result.sandboxed is False and not warned:
                warned.append(True)
                print("warning: this system does not let the grader sandbox student code (Linux mount "
                      "namespaces are unavailable): it can read and write your files. Grade untrusted "
                      "work on Linux.", file=sys.stderr)
            write_atomically(record_path(out, submission), json.dumps(record, indent=1, ensure_ascii=False))
            write_atomically(out / "feedback" / submission.student / f"{submission.lesson}.md",
                             feedback(submission.student, result))
            write_tables(out)
            done.append(submission)
            print(f"[{len(done)}/{len(todo)}] {submission.student} {submission.lesson}: "
                  f"{result.points:g}/{result.max_points:g} ({result.status}, {result.seconds:.1f} s)", flush=True)

    done: list[Submission] = []
    warned: list[bool] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(grade, s) for s in todo]:
            future.result()
    out.mkdir(parents=True, exist_ok=True)
    write_tables(out)
    print(f"wrote {out / 'gradebook.csv'}, {out / 'results.csv'} and {out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
