"""Grade a class's notebooks against the official lessons:

    python -m utils.grade SUBMISSIONS --out DIR [--jobs 2] [--student NAME] [--lesson 01]
                          [--similarity-threshold 0.9]

SUBMISSIONS is a folder laid out SUBMISSIONS/<student>/<NN_name>.ipynb (nbgrader's layout;
deeper folders such as <student>/<assignment>/ are fine too), or notebook files named
<student>_<NN_name>.ipynb. DIR receives

    gradebook.csv                one row per student: points per exercise, per lesson, total
    gradebook_canvas.csv         the same totals per lesson, for Canvas's gradebook import
    gradebook_moodle.csv         the same totals per lesson, for Moodle's CSV grade import
    results.csv                  one row per student, lesson and exercise, with the message
    similarity.csv               pairs of students whose answers are near-identical
    feedback/<student>/<NN_name>.md   what each student reads
    results/<student>/<NN_name>.json  the record each of the above is made from

Each result is written (atomically) as soon as its notebook is graded, and its rows are
appended to results.csv, so a run that is stopped resumes where it left off; the gradebooks
and the similarity report are written once, at the end. --regrade grades the selected
notebooks again. Submissions are only read, never changed.
"""
import argparse
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import sys
import threading

from utils import gradebook, grading, similarity


@dataclasses.dataclass
class Submission:
    student: str
    lesson: str
    path: pathlib.Path


def find_submissions(paths: list[pathlib.Path]) -> list[Submission]:
    """Every notebook under the given folders and files, with its student and lesson."""
    def from_file_name(path: pathlib.Path) -> Submission:
        lesson = grading.lesson_of(path)
        if lesson and "_" + lesson in path.stem:
            return Submission(path.stem.partition("_" + lesson)[0], lesson, path)
        student, _, rest = path.stem.partition("_")
        return Submission(student, lesson or rest or path.stem, path)

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
                        found.append(Submission(entry.name, grading.lesson_of(notebook) or notebook.stem, notebook))
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


def write_tables(out: pathlib.Path, records: list[dict], threshold: float) -> None:
    """The gradebooks and the similarity report, from every stored record: once per run."""
    for name, table in [("gradebook.csv", gradebook.gradebook), ("gradebook_canvas.csv", gradebook.canvas),
                        ("gradebook_moodle.csv", gradebook.moodle)]:
        write_atomically(out / name, gradebook.to_csv(*table(records)))
    pairs = similarity.report([(r["student"], r["lesson"], pathlib.Path(r["file"])) for r in records], threshold)
    write_atomically(out / "similarity.csv", gradebook.to_csv(similarity.HEADER, pairs))


def start_results(out: pathlib.Path, records: list[dict]) -> None:
    """results.csv from the stored records that stay, before a run appends the new ones: a
    row a stopped run wrote twice or half, or never wrote, is put right here."""
    rows = [row for record in records for row in gradebook.result_rows(record)]
    write_atomically(out / "results.csv", gradebook.to_csv(gradebook.RESULTS_HEADER, rows))


def append_results(out: pathlib.Path, record: dict) -> None:
    """A graded notebook's rows, appended in one write after its record is stored."""
    with open(out / "results.csv", "a", encoding="utf-8", newline="") as file:
        file.write(gradebook.to_csv([], gradebook.result_rows(record)))
        file.flush()
        os.fsync(file.fileno())


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
    parser.add_argument("--similarity-threshold", type=float, default=similarity.THRESHOLD,
                        help=f"score (0-1) from which similarity.csv lists a pair (default {similarity.THRESHOLD})")
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
    regraded = {record_path(out, s) for s in todo}
    stored = {path: json.loads(path.read_text(encoding="utf-8")) for path in sorted((out / "results").glob("*/*.json"))}
    start_results(out, [record for path, record in stored.items() if path not in regraded])

    def grade(submission: Submission) -> None:
        try:
            data = submission.path.read_bytes()
        except OSError as error:
            data = f"unreadable: {error.strerror}".encode()
        result = grading.grade_notebook(data, submission.lesson, limits, hidden)
        record = {"student": submission.student, "file": str(submission.path.resolve()), **dataclasses.asdict(result)}
        with lock:
            if result.sandboxed is False and not warned:
                warned.append(True)
                print("warning: this system does not let the grader sandbox student code (Linux mount "
                      "namespaces are unavailable): it can read and write your files. Grade untrusted "
                      "work on Linux.", file=sys.stderr)
            write_atomically(record_path(out, submission), json.dumps(record, indent=1, ensure_ascii=False))
            write_atomically(out / "feedback" / submission.student / f"{submission.lesson}.md",
                             feedback(submission.student, result))
            append_results(out, record)
            stored[record_path(out, submission)] = record
            done.append(submission)
            print(f"[{len(done)}/{len(todo)}] {submission.student} {submission.lesson}: "
                  f"{result.points:g}/{result.max_points:g} ({result.status}, {result.seconds:.1f} s)", flush=True)

    done: list[Submission] = []
    warned: list[bool] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(grade, s) for s in todo]:
            future.result()
    records = [stored[path] for path in sorted(stored)]
    if len(regraded) < len(todo):  # two notebooks of one student and lesson: only the last one's record stays
        start_results(out, records)
    write_tables(out, records, args.similarity_threshold)
    print(f"wrote {out / 'gradebook.csv'} (and for Canvas and Moodle), {out / 'results.csv'}, "
          f"{out / 'similarity.csv'} and {out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
