"""The tables an instructor takes away from a grading run, each made from the stored records
(one record per student and lesson, as ``utils.grade`` writes them to results/<student>/<lesson>.json):

    results.csv            one row per student, lesson and exercise (``result_rows``)
    gradebook.csv          one row per student: points per exercise, per lesson, total (``gradebook``)
    gradebook_canvas.csv   Canvas's gradebook import format (``canvas``)
    gradebook_moodle.csv   Moodle's CSV grade import format (``moodle``)

Canvas and Moodle get one grade column per lesson (its total points): their gradebooks
hold one grade per assignment, and a lesson is what a student hands in. Lessons no exercise
was graded in (a notebook of an unknown lesson) have no column there.
"""
import csv
import io
import re

RESULTS_HEADER = ["student", "lesson", "exercise", "points", "max_points", "status", "message", "seconds"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula (OWASP)
NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")  # as number() and the CSV module write numbers


def to_csv(header: list[str], rows: list[list]) -> str:
    """The one writer of every CSV the grader makes: each text cell goes through spreadsheet_safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow([spreadsheet_safe(cell) for cell in header])
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def spreadsheet_safe(cell):
    """A cell that no spreadsheet opens as a formula: text beginning with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return (student and notebook names are the students' to choose:
    ``=HYPERLINK(…)`` would run when the instructor opens the gradebook) gets a leading ``'``,
    as OWASP recommends. Numbers, and text that is a plain number such as ``-2``, stay numbers."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def result_rows(record: dict) -> list[list]:
    """results.csv rows of one record, one per exercise."""
    return [[record["student"], record["lesson"], e["exercise"], e["points"], e["max_points"], e["status"],
             e["message"], f"{e['seconds']:.2f}"] for e in record["exercises"]]


def gradebook(records: list[dict]) -> tuple[list[str], list[list]]:
    """gradebook.csv: per student, the points of every exercise, a total per lesson and the total."""
    points, columns = {}, {}
    for record in records:
        student, lesson = record["student"], record["lesson"]
        for e in record["exercises"]:
            points.setdefault(student, {})[e["exercise"]] = e["points"]
            columns.setdefault(lesson, []).append(e["exercise"])
        points.setdefault(student, {})[f"{lesson} total"] = sum(e["points"] for e in record["exercises"])
        columns.setdefault(lesson, [])
    header = ["student"]
    for lesson in sorted(columns):
        header += sorted(set(columns[lesson]), key=columns[lesson].index) + [f"{lesson} total"]
    header.append("total")
    rows = []
    for student in sorted(points):
        row = points[student]
        total = sum(v for k, v in row.items() if k.endswith(" total"))
        rows.append([student] + [row.get(column, "") for column in header[1:-1]] + [total])
    return header, rows


def lesson_totals(records: list[dict]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Points possible per lesson, and each student's points per lesson (graded lessons only)."""
    possible, scores = {}, {}
    for record in records:
        if record["exercises"]:
            possible[record["lesson"]] = sum(e["max_points"] for e in record["exercises"])
            scores.setdefault(record["student"], {})[record["lesson"]] = sum(e["points"] for e in record["exercises"])
    return dict(sorted(possible.items())), dict(sorted(scores.items()))


def number(value: float) -> str:
    return f"{value:g}"


CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def canvas(records: list[dict]) -> tuple[list[str], list[list]]:
    """gradebook_canvas.csv, in the layout of a Canvas gradebook export, which Canvas's
    gradebook import (Grades > Import) reads back:

    - the first five columns are Canvas's student columns, in its order: ``Student`` (the
      student's name: here the submission's student name), ``ID`` (Canvas's internal user id:
      unknown here, left empty), ``SIS User ID`` (empty), ``SIS Login ID`` (the submission's
      student name) and ``Section`` (empty). Canvas finds each row's student by ID, then SIS
      User ID, then SIS Login ID, then by name, so name each student's folder by their Canvas
      login (or their name as Canvas shows it);
    - then one column per assignment, headed by its title: a lesson's file name. A title that
      matches an existing assignment updates it; a new title creates an assignment;
    - the second row starts with ``Points Possible`` and gives each assignment's maximum,
      which Canvas uses as a new assignment's points;
    - an empty cell is "no grade" (the student handed in nothing for that lesson).
    """
    possible, scores = lesson_totals(records)
    header = CANVAS_STUDENT_COLUMNS + list(possible)
    rows = [["    Points Possible", "", "", "", ""] + [number(p) for p in possible.values()]]
    for student, points in scores.items():
        rows.append([student, "", "", student, ""]
                    + [number(points[lesson]) if lesson in points else "" for lesson in possible])
    return header, rows


def moodle(records: list[dict]) -> tuple[list[str], list[list]]:
    """gradebook_moodle.csv, for Moodle's CSV grade import (Grades > Import > CSV file):

    - the first column identifies the user. On the import's mapping page choose "Map from"
      this column and "Map to" ``useremail`` when the header is ``Email address`` (every
      student name contains an @) or ``username`` when it is ``Username``; Moodle's other
      identifiers (``userid``, ``useridnumber``) are not known here. Moodle stops the whole
      import at a row whose user it cannot find, so the student folders must carry the
      Moodle usernames or email addresses;
    - then one column per grade item, headed by a lesson's file name: map it to an existing
      grade item or to "new grade item", whose maximum grade must be at least the lesson's
      points (the Points Possible row of gradebook_canvas.csv). Points are plain decimals;
    - an empty cell means no grade (Moodle's import reads "" and "-" as no grade).
    """
    possible, scores = lesson_totals(records)
    emails = bool(scores) and all("@" in student for student in scores)
    header = ["Email address" if emails else "Username"] + list(possible)
    rows = [[student] + [number(points[lesson]) if lesson in points else "" for lesson in possible]
            for student, points in scores.items()]
    return header, rows
