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

A student with several notebooks for one lesson has the newest graded (of equally new ones,
the first by name), the others named in their feedback. Links, FIFOs, devices, huge files and
hostile JSON are refused with a status of their own (grading.read_submission and
grading.notebook_json); student text in feedback is escaped (markdown_text), and every CSV
cell is safe to open in a spreadsheet (gradebook.spreadsheet_safe).
"""
import argparse
import concurrent.futures
import dataclasses
import html
import json
import os
import pathlib
import re
import sys
import threading

from utils import gradebook, grading, similarity


@dataclasses.dataclass
class Submission:
    student: str
    lesson: str
    path: pathlib.Path
    name: str = ""  # the file as the student named it: its path in the student's folder
    others: list[str] = dataclasses.field(default_factory=list)  # the student's other files for this lesson


def find_submissions(paths: list[pathlib.Path]) -> list[Submission]:
    """Every notebook under the given folders and files, with its student and lesson: one per
    student and lesson (see one_per_lesson).

    Links are never followed: a notebook that is a symlink, a FIFO or a device is listed, to be
    refused with a status of its own when it is graded (grading.read_submission); a folder that
    is a symlink is not entered, and only named on the console."""
    def from_file_name(path: pathlib.Path) -> Submission:
        lesson = grading.lesson_of(path)
        if lesson and "_" + lesson in path.stem:
            return Submission(path.stem.partition("_" + lesson)[0], lesson, path, path.name)
        student, _, rest = path.stem.partition("_")
        return Submission(student, lesson or rest or path.stem, path, path.name)

    found = []
    for root in paths:
        if not root.is_dir():
            found.append(from_file_name(root))
            continue
        for entry in sorted(root.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                found += [Submission(entry.name, grading.lesson_of(notebook) or notebook.stem, notebook,
                                     str(notebook.relative_to(entry)))
                          for notebook in notebooks_in(entry)]
            elif entry.suffix == ".ipynb":
                found.append(from_file_name(entry))
            elif entry.is_symlink():
                refuse_linked_folder(entry, root)
    return one_per_lesson(found)


def notebooks_in(folder: pathlib.Path) -> list[pathlib.Path]:
    """The ``*.ipynb`` entries of a student's folder and its subfolders, whatever their file
    type, by name; folders that are links are named on the console, never entered."""
    found = []
    for parent, folders, files in os.walk(folder):  # os.walk does not follow links by default
        here = pathlib.Path(parent)
        for name in [name for name in folders if (here / name).is_symlink()]:
            refuse_linked_folder(here / name, folder.parent)
        folders[:] = sorted(name for name in folders
                            if name != ".ipynb_checkpoints" and not (here / name).is_symlink())
        found += [here / name for name in sorted(files) if name.endswith(".ipynb")]
    return sorted(found)


def refuse_linked_folder(path: pathlib.Path, root: pathlib.Path) -> None:
    print(f"{grading.REFUSED_SYMLINK}: {path.relative_to(root)}/ is a link to a folder, not followed "
          "(nothing in it is graded)", file=sys.stderr)


def one_per_lesson(found: list[Submission]) -> list[Submission]:
    """One submission per student and lesson, the same whatever the order of grading: of a
    student's files for one lesson, the newest (by modification time, of the file itself, not
    of what a link points to) is graded; of equally new ones, the first by name. The others are
    named in that student's feedback."""
    groups: dict[tuple[str, str], list[Submission]] = {}
    for submission in found:
        groups.setdefault((submission.student, submission.lesson), []).append(submission)
    chosen = []
    for group in groups.values():
        by_name = sorted(group, key=lambda s: s.name)
        newest = max(by_name, key=modified)
        newest.others = [s.name for s in by_name if s is not newest]
        chosen.append(newest)
    return chosen


def modified(submission: Submission) -> int:
    try:
        return os.lstat(submission.path).st_mtime_ns
    except OSError:
        return 0


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Write a whole file or nothing: a run killed mid-write leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# Markdown's meaningful characters in student text, each escaped with a backslash: anywhere, the
# escape itself, code, emphasis, links and images, table cells and strikethrough (an underscore
# between letters or digits, as in x_pos, starts no emphasis and is left alone); at the start of
# a line, headings, list items and rules, and the dot or parenthesis of a numbered item.
MARKDOWN_ANYWHERE = re.compile(r"([\\`*\[\]|~]|_(?![^\W_])|(?<![^\W_])_)")
MARKDOWN_LINE_START = re.compile(r"^([ \t]*)([#+=-])", re.MULTILINE)
MARKDOWN_NUMBERED = re.compile(r"^([ \t]*\d+)([.)])", re.MULTILINE)


def markdown_text(text: str, one_line: bool = False) -> str:
    """Student text (messages, names, ids) as Markdown that shows it as it is: it can neither
    open an HTML tag (``<``, ``>`` and ``&`` become entities) nor start a heading, a list, a
    rule, a table row or a code block, nor make a line bold (``**Score: 8 / 8**``), so it can
    neither run script where the feedback is shown as HTML nor forge a heading or a score.
    ``one_line`` (for headings and table cells) joins its lines with spaces."""
    lines = str(text).splitlines() or [""]  # every line break Markdown knows, and more
    text = html.escape((" " if one_line else "\n").join(lines), quote=False)
    for pattern in (MARKDOWN_ANYWHERE, MARKDOWN_LINE_START, MARKDOWN_NUMBERED):
        text = pattern.sub(lambda match: match[0][:-1] + "\\" + match[0][-1], text)
    return text


def feedback(student: str, result: grading.NotebookResult, others: list[str] = ()) -> str:
    """What a student reads. Every piece of text that came from the submission (its file and
    student names, messages, which quote the student's exceptions and exercise ids) goes
    through markdown_text, so only the grader writes headings and the score."""
    md = markdown_text
    lines = [f"# {md(result.lesson, True)}: feedback for {md(student, True)}", "",
             f"**Score: {result.points:g} / {result.max_points:g}**", ""]
    if others:
        lines += [f"You handed in {len(others) + 1} notebooks for this lesson; only the newest was graded "
                  f"(of equally new ones, the first by name). Not graded: {md(', '.join(others), True)}.", ""]
    if result.status != "graded":
        lines += [f"This notebook could not be graded in full ({md(result.status, True)}): {md(result.message)}", ""]
    lines += ["| exercise | points | status |", "|---|---|---|"]
    lines += [f"| {md(e.exercise, True)} | {e.points:g} / {e.max_points:g} | {md(e.status, True)} |"
              for e in result.exercises]
    for e in result.exercises:
        lines += ["", f"## {md(e.exercise, True)}: {md(e.status, True)}", "", md(e.message or "(no message)")]
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
            data = grading.read_submission(submission.path)
        except grading.BadSubmission as refusal:
            result = grading.refused(submission.lesson, refusal)
        else:
            result = grading.grade_notebook(data, submission.lesson, limits, hidden)
        # the path as found, never resolved: where a link points is not for the record to tell
        record = {"student": submission.student, "file": os.path.abspath(submission.path),
                  "not_graded": submission.others, **dataclasses.asdict(result)}
        with lock:
            if result.sandboxed is False and not warned:
                warned.append(True)
                print("warning: this system does not let the grader sandbox student code (Linux mount "
                      "namespaces are unavailable): it can read and write your files. Grade untrusted "
                      "work on Linux.", file=sys.stderr)
            write_atomically(record_path(out, submission), json.dumps(record, indent=1, ensure_ascii=False))
            write_atomically(out / "feedback" / submission.student / f"{submission.lesson}.md",
                             feedback(submission.student, result, submission.others))
            append_results(out, record)
            stored[record_path(out, submission)] = record
            done.append(submission)
            print(f"[{len(done)}/{len(todo)}] {submission.student} {submission.lesson}: "
                  f"{result.points:g}/{result.max_points:g} ({result.status}, {result.seconds:.1f} s)"
                  + (f"; not graded: {', '.join(submission.others)}" if submission.others else ""), flush=True)

    done: list[Submission] = []
    warned: list[bool] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(grade, s) for s in todo]:
            future.result()
    records = [stored[path] for path in sorted(stored)]
    write_tables(out, records, args.similarity_threshold)
    print(f"wrote {out / 'gradebook.csv'} (and for Canvas and Moodle), {out / 'results.csv'}, "
          f"{out / 'similarity.csv'} and {out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
