"""Pairs of submissions whose answers are near-identical, for an instructor to look at.

Only what a student wrote counts: the code of each answer cell after the lesson's given code
(the ``def`` line, the docstring, ``raise NotImplementedError()``) is taken out, so two
untouched cells are never "similar". The rest is normalised before comparing:

- names the student's code binds (variables, arguments, functions, classes, attributes it
  assigns such as ``self.kernel``) are renamed ``v0, v1, …`` in order of first use, so renaming
  variables changes nothing; names it only reads (``tf``, ``np``, ``range``) stay;
- comments, docstrings, blank lines and layout are dropped (the code is parsed with ``ast`` and
  printed back in one canonical form; a cell that does not parse keeps its names, without
  comments and extra whitespace).

The score of two answers is the share of runs of ``K`` consecutive tokens they have in
common (the Jaccard index of their token K-grams, the fingerprinting idea behind MOSS): 1 when
identical after normalising, a little less for a changed token, part of it for statements
moved around, low for a different solution. It needs only set operations, so a class of 200
is compared pair by pair in seconds. A lesson's score pools the K-grams of the exercises both
students answered. A pair is reported when an exercise or the whole lesson reaches the
threshold; exercises shorter than ``MIN_TOKENS`` tokens (a one-line ``return``) are too short
to tell copying from the obvious answer and count only through the lesson's score.
"""
import ast
import itertools
import pathlib
import re

from utils import grading, lessons

THRESHOLD = 0.9
MIN_TOKENS = 20
K = 4  # tokens per K-gram
LESSON = "all"  # the exercise column of a whole-lesson row
HEADER = ["lesson", "exercise", "student_a", "student_b", "score", "tokens"]
TOKEN = re.compile(r"\w+|[^\w\s]")


class _Renamer(ast.NodeTransformer):
    """Gives the names a piece of code binds canonical names, in order of first appearance."""

    def __init__(self, bound: set[str]):
        self.bound, self.names = bound, {}

    def rename(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        node.id = self.rename(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.rename(node.arg)
        node.annotation = None
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if "." + node.attr in self.bound:
            node.attr = self.rename("." + node.attr)
        return node

    def _visit_definition(self, node):
        node.name = self.rename(node.name)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # the docstring
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_definition


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the code itself binds; attributes it assigns are kept as ".name"."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            bound.add("." + node.attr)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def normalise(source: str) -> list[str]:
    """The code as canonical lines: names renamed, comments, docstrings and layout dropped."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        lines = (re.sub(r"#.*", "", line).strip() for line in source.splitlines())
        return [" ".join(TOKEN.findall(line)) for line in lines if line]
    tree = _Renamer(_bound_names(tree)).visit(tree)  # depth-first, in the order fields are written
    return [line for line in ast.unparse(tree).splitlines() if line.strip()]


def students_part(answer: str, given: str) -> list[str]:
    """Tokens of the lines of ``answer`` the student wrote: those of the lesson's given cell
    (the stub) are left out, as is indentation."""
    stub = {line.strip() for line in normalise(given)}
    tokens = []
    for line in normalise(answer):
        if line.strip() not in stub:
            tokens += TOKEN.findall(line) + ["\n"]
    return tokens


def kgrams(tokens: list[str]) -> frozenset:
    return frozenset(tuple(tokens[i:i + K]) for i in range(max(1, len(tokens) - K + 1))) if tokens else frozenset()


def score(a: list[str], b: list[str]) -> float:
    """Jaccard index of the K-grams of two token lists."""
    first, second = kgrams(a), kgrams(b)
    return len(first & second) / len(first | second) if first or second else 0.0


def answers_of(notebook: bytes | str) -> dict[str, str]:
    """Answer-cell sources by exercise id (the last cell of an id wins, as in grading);
    nothing for a file that is not a notebook, hostile JSON included (the grader's parser,
    grading.notebook_json, refuses it)."""
    try:
        cells = grading.notebook_json(notebook.encode() if isinstance(notebook, str) else notebook)["cells"]
        found = {}
        for cell in cells:
            if isinstance(cell, dict) and lessons.is_answer_cell(cell):
                source = cell.get("source", "")
                found[str(lessons.nbgrader(cell).get("grade_id"))] = \
                    source if isinstance(source, str) else "".join(source)
        return found
    except (grading.BadSubmission, AttributeError, TypeError):
        return {}


def similar_pairs(answers: dict[str, dict[str, list[str]]], lesson: str,
                  threshold: float = THRESHOLD) -> list[list]:
    """similarity.csv rows for one lesson. ``answers``: student -> exercise id -> the tokens
    the student wrote (``students_part``); empty or missing when the exercise was left alone."""
    grams = {s: {e: kgrams(tokens) for e, tokens in answers[s].items() if tokens} for s in answers}
    rows = []
    for first, second in itertools.combinations(sorted(answers), 2):
        shared = total = 0
        for exercise in grams[first].keys() & grams[second].keys():
            a, b = grams[first][exercise], grams[second][exercise]
            common = len(a & b)
            union = len(a) + len(b) - common
            shared, total = shared + common, total + union
            size = min(len(answers[first][exercise]), len(answers[second][exercise]))
            if common / union >= threshold and size >= MIN_TOKENS:
                rows.append([lesson, exercise, first, second, round(common / union, 3), size])
        if total and shared / total >= threshold:
            size = min(sum(len(answers[s][e]) for e in grams[first].keys() & grams[second].keys())
                       for s in (first, second))
            rows.append([lesson, LESSON, first, second, round(shared / total, 3), size])
    return rows


def report(submissions: list[tuple[str, str, pathlib.Path]], threshold: float = THRESHOLD) -> list[list]:
    """similarity.csv rows for a class: ``submissions`` are (student, lesson, notebook file);
    each lesson's answers are compared with that lesson's given cells taken out. Highest
    scores first."""
    by_lesson: dict[str, dict[str, dict[str, list[str]]]] = {}
    given: dict[str, dict[str, str]] = {}
    for student, lesson, path in submissions:
        if lesson not in given:
            official = lessons.LESSONS / f"{lesson}.ipynb"
            given[lesson] = answers_of(official.read_bytes()) if official.exists() else {}
        try:
            written = answers_of(grading.read_submission(path))  # never a link, a FIFO or a huge file
        except grading.BadSubmission:
            continue
        if given[lesson]:
            by_lesson.setdefault(lesson, {})[student] = {
                exercise: students_part(written[exercise], stub)
                for exercise, stub in given[lesson].items() if exercise in written}
    rows = [row for lesson in sorted(by_lesson) for row in similar_pairs(by_lesson[lesson], lesson, threshold)]
    return sorted(rows, key=lambda row: -row[4])
