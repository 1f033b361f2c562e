"""Measure the course's speed on this machine and write the table to BENCHMARKS.md:

    python -m utils.bench                         # everything, 3 repetitions (hours with nbgrader)
    python -m utils.bench --parts layers xl --repeats 5
    python -m utils.bench --quick --out /tmp/bench.md   # smallest sizes, a smoke test

Parts:
  runtime  wall time to run each solution notebook headless, and the total
  layers   hand-built layers of lessons 04 and 08 against Keras's, as throughput ratios
  xl       lesson 09's Transformer-XL evaluation with cached memory against a vanilla
           Transformer's sliding window, in tokens per second
  grading  seconds to grade a solution notebook as a submission, with 1 and 2 parallel jobs,
           once the warm Python that starts workers is up (utils/warm.py);
           and, when nbgrader is installed, `python -m utils.grade` against `nbgrader
           autograde` on the same class of six (three copies of the solution, three of the
           untouched lesson), each timed as a whole command, with the ratio; and a class of 200 copies of the
           solution that took longest above, graded by `python -m utils.grade --jobs 2`, with
           the grading process's peak memory
--lessons 01 04 limits the runtime and grading parts to those lessons.
Every figure is the median over the repetitions, with the spread (min–max) beside it. A part
whose lesson does not exist yet is reported as "not available", never silently skipped.
"""
import argparse
import concurrent.futures
import contextlib
import csv
import datetime
import importlib.util
import inspect
import linecache
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import nbformat
import numpy as np
import psutil
import tensorflow as tf

from utils import grading, lessons

PARTS = ("runtime", "layers", "xl", "grading")
TARGETS = {
    "notebook": 150.0,  # seconds per solution notebook
    "course": 20 * 60.0,  # seconds for all of them
    "layer ratio": 0.8,  # hand-built throughput / library throughput, at least
    "xl speed-up": 50.0,  # at context 256, at least
    "grading": 30.0,  # seconds per submission, at most
    "nbgrader ratio": 3.0,  # nbgrader autograde seconds / utils.grade seconds, at least
    "class": 10 * 60.0,  # seconds to grade a class of CLASS_SIZE submissions with 2 jobs, at most
    "grader memory": 2000.0,  # MB the grading process itself may hold at its peak, over a class
}
CLASS_SIZE = 200
# Both tools pay a fixed cost (starting Python; ours also imports TensorFlow twice) and a
# cost per submission: six submissions are the smallest class where the second dominates.
NBGRADER_CLASS = 6
NOT_AVAILABLE = "not available"


def spread(samples: list[float], digits: int = 2) -> str:
    """``median (min–max)`` of repeated measurements."""
    median = statistics.median(samples)
    if len(samples) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(samples):.{digits}f}–{max(samples):.{digits}f})"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def tagged_cell(lesson_prefix: str, tag: str) -> str | None:
    """Source of the solution cell carrying ``tag`` (e.g. a hand-built layer), if any."""
    for path in lessons.solution_paths():
        if path.name.startswith(lesson_prefix):
            for cell in nbformat.read(path, as_version=4).cells:
                if tag in cell.metadata.get("tags", []):
                    return cell.source
    return None


def run_cell(source: str, filename: str) -> dict:
    """Run one solution cell on its own, with the lessons' imports, and return what it defines."""
    # AutoGraph reads a function's source through linecache, as it does for notebook cells.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"tf": tf, "keras": keras, "np": np}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def load_tagged(lesson_prefix: str, tag: str) -> dict | None:
    """Run a tagged solution cell on its own and return what it defines."""
    source = tagged_cell(lesson_prefix, tag)
    return None if source is None else run_cell(source, f"<{lesson_prefix}{tag}>")


def solution_answer(exercise_id: str):
    """The solution's function for an exercise ("04-lstm_cell" -> its lstm_cell), for a layer
    that is built on the learner's own function."""
    for path in lessons.solution_paths():
        if path.name.startswith(exercise_id[:2]):
            for cell in nbformat.read(path, as_version=4).cells:
                if lessons.is_answer_cell(cell) and lessons.nbgrader(cell)["grade_id"] == exercise_id:
                    return run_cell(cell.source, f"<{exercise_id}>")[exercise_id.split("-", 1)[1]]
    raise KeyError(f"no answer cell {exercise_id} in the solutions")


def layer_class(namespace: dict) -> type:
    """The one keras.layers.Layer subclass a tagged cell defines."""
    found = [v for v in namespace.values()
             if isinstance(v, type) and issubclass(v, keras.layers.Layer) and not v.__module__.startswith("keras")]
    if len(found) != 1:
        raise ValueError(f"expected one Layer class in the tagged cell, found {[v.__name__ for v in found]}")
    return found[0]


# --- 1. course runtime --------------------------------------------------------------------


def bench_runtime(repeats: int, paths: list[pathlib.Path]) -> list[str]:
    rows = ["| notebook | seconds | target ≤ 150 s |", "|---|---|---|"]
    medians = []
    for path in paths:
        samples = []
        for _ in range(repeats):
            notebook = nbformat.read(path, as_version=4)
            start = time.perf_counter()
            lessons.run(notebook, path.parent)
            samples.append(time.perf_counter() - start)
        medians.append(statistics.median(samples))
        rows.append(f"| {path.stem} | {spread(samples, 1)} | {verdict(medians[-1] <= TARGETS['notebook'])} |")
    total = sum(medians)
    rows.append(f"| **all {len(paths)} notebooks** | {total:.1f} | ≤ 1200 s: {verdict(total <= TARGETS['course'])} |")
    return rows


# --- 2. hand-built layers against Keras's ----------------------------------------------------


MIN_SAMPLE_SECONDS = 0.3  # one call of a small layer takes milliseconds: too short to time alone


def seconds_per_call(function, min_seconds: float = MIN_SAMPLE_SECONDS, clock=time.perf_counter) -> float:
    """Mean wall seconds of ``function()`` over as many calls as fill ``min_seconds``.

    ``clock`` is there so that a test can count calls on a fake clock, not on this machine's speed.
    """
    calls, start = 0, clock()
    while (elapsed := clock() - start) < min_seconds or calls == 0:
        function()
        calls += 1
    return elapsed / calls


def compiled_call(layer, inputs, backward: bool):
    """A function running one compiled call of ``layer`` (forward, or forward and backward)
    on ``inputs`` and waiting for its result."""

    @tf.function
    def run(*args):
        if not backward:
            return layer(*args)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(*args))
        return tape.gradient(loss, layer.trainable_variables)

    return lambda: tf.nest.map_structure(lambda t: t.numpy(), run(*inputs))


def compare_layers(name: str, size: str, hand, library, inputs, repeats: int) -> list[str]:
    """Table rows for a hand-built layer against Keras's, forward and forward+backward.
    The two are timed in turn within each repetition, so a busy moment of the machine
    slows both alike, and each repetition gives one ratio."""
    rows = []
    for backward in (False, True):
        hand_call, keras_call = compiled_call(hand, inputs, backward), compiled_call(library, inputs, backward)
        hand_call(), keras_call()  # warm-up: tracing and compiling
        hand_s, keras_s = [], []
        for _ in range(repeats):
            hand_s.append(seconds_per_call(hand_call))
            keras_s.append(seconds_per_call(keras_call))
        ratio = [k / h for h, k in zip(hand_s, keras_s)]
        rows.append(f"| {name} | {size} | {'forward+backward' if backward else 'forward'} | "
                    f"{spread([s * 1e3 for s in hand_s])} | {spread([s * 1e3 for s in keras_s])} | "
                    f"{spread(ratio)} | {verdict(statistics.median(ratio) >= TARGETS['layer ratio'])} |")
    return rows


def bench_layers(repeats: int, quick: bool) -> list[str]:
    rows = ["| layer | size | pass | hand-built ms | Keras ms | throughput ratio (hand / Keras) | target ≥ 0.8× |",
            "|---|---|---|---|---|---|---|"]
    lstm = load_tagged("04_", "hand-lstm-layer")
    if lstm is None:
        rows.append(f"| lesson 04 LSTM | | | | | {NOT_AVAILABLE} | |")
    else:
        units, features = (8, 4) if quick else (64, 16)
        for batch, steps in [(4, 8)] if quick else [(32, 50), (128, 100)]:
            x = tf.random.normal([batch, steps, features])
            hand_class = layer_class(lstm)
            # the lesson's layer runs the learner's lstm_cell when its constructor asks for one
            cell = {"cell": solution_answer("04-lstm_cell")} \
                if "cell" in inspect.signature(hand_class.__init__).parameters else {}
            library, hand = keras.layers.LSTM(units), hand_class(units, **cell)
            library(x), hand(x)
            hand.set_weights(library.get_weights())
            rows += compare_layers(f"lesson 04 LSTM, {units} units", f"batch {batch}, {steps} steps",
                                   hand, library, [x], repeats)
    mha = load_tagged("08_", "hand-mha-layer")
    if mha is None:
        rows.append(f"| lesson 08 multi-head attention | | | | | {NOT_AVAILABLE} | |")
    else:
        heads, key_dim = (2, 4) if quick else (4, 16)
        for batch, steps in [(2, 8)] if quick else [(32, 64), (16, 256)]:
            x = tf.random.normal([batch, steps, heads * key_dim])
            library = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=key_dim)
            hand = layer_class(mha)(num_heads=heads, key_dim=key_dim)
            library(x, x), hand(x, x)
            hand.set_weights(library.get_weights())
            rows += compare_layers(f"lesson 08 multi-head attention, {heads}×{key_dim}",
                                   f"batch {batch}, {steps} steps", hand, library, [x, x], repeats)
    return rows


# --- 3. Transformer-XL evaluation speed ------------------------------------------------------


def bench_xl(repeats: int, quick: bool) -> list[str]:
    rows = ["| context length | cached XL tokens/s | sliding-window tokens/s | speed-up | target ≥ 50× at 256 |",
            "|---|---|---|---|---|"]
    try:
        from utils import xl
    except ImportError:
        return rows + [f"| 64, 128, 256 | {NOT_AVAILABLE} | {NOT_AVAILABLE} | {NOT_AVAILABLE} | |"]
    for length in [8] if quick else [64, 128, 256]:
        runs = [xl.eval_speed(length, repeats=1) for _ in range(repeats)]
        cached = [r["xl_tokens_per_second"] for r in runs]
        window = [r["vanilla_tokens_per_second"] for r in runs]
        speedup = [c / w for c, w in zip(cached, window)]
        target = verdict(statistics.median(speedup) >= TARGETS["xl speed-up"]) if length == 256 else ""
        rows.append(f"| {length} | {spread(cached, 0)} | {spread(window, 0)} | {spread(speedup, 1)}× | {target} |")
    return rows


# --- 4. grading speed ---------------------------------------------------------------------------


def bench_grading(repeats: int, quick: bool, paths: list[pathlib.Path]) -> list[str]:
    rows = ["| submission | parallel jobs | seconds per submission | target ≤ 30 s |", "|---|---|---|---|"]
    slowest = {}
    for path in paths:
        data = path.read_bytes()
        grading.grade_notebook(data, path.stem)  # untimed: a class's run starts the warm Python once
        for jobs in (1,) if quick else (1, 2):
            samples, short = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
                    results = list(pool.map(lambda _: grading.grade_notebook(data, path.stem), range(jobs)))
                samples.append((time.perf_counter() - start) / jobs)
                short += [r for r in results if r.points != r.max_points]
            for result in short:  # a solution must score full marks: say so, and go on measuring
                failed = [f"{e.exercise}: {e.status}: {e.message}" for e in result.exercises if e.points < e.max_points]
                print(f"{path.stem}: the solution scored {result.points}/{result.max_points}", *failed,
                      sep="\n  ", file=sys.stderr)
            warning = f"; **the solution lost points in {len(short)} gradings**" if short else ""
            rows.append(f"| {path.stem} (solution) | {jobs} | {spread(samples, 1)} | "
                        f"{verdict(statistics.median(samples) <= TARGETS['grading'])}{warning} |")
            slowest[path] = max(slowest.get(path, 0.0), statistics.median(samples))
    rows += ["", *bench_class(max(slowest, key=slowest.get), 4 if quick else CLASS_SIZE)]
    return rows + ["", *bench_against_nbgrader(repeats, quick, paths)]


def peak_memory_mb(process: subprocess.Popen, every: float = 0.5) -> float:
    """The largest resident memory of ``process`` itself (not its children), sampled until it
    ends: the grader's own growth over a class, which its workers' limits do not bound."""
    peak = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            peak = max(peak, watched.memory_info().rss / 2**20)
            time.sleep(every)
    return peak


def bench_class(path: pathlib.Path, size: int) -> list[str]:
    """Whole-command seconds of ``python -m utils.grade --jobs 2`` on a class of ``size``
    copies of one solution, once (a class is long enough to average itself), and the
    grading process's peak memory."""
    target, memory = TARGETS["class"] * size / CLASS_SIZE, TARGETS["grader memory"]
    rows = [f"| class | submissions | parallel jobs | seconds in all | grader's peak memory, MB | "
            f"target ≤ {target:.0f} s and ≤ {memory:.0f} MB |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="course-bench-") as folder:
        submissions, out = pathlib.Path(folder) / "submissions", pathlib.Path(folder) / "grades"
        for student in range(size):
            (submissions / f"s{student:03d}").mkdir(parents=True)
            shutil.copy(path, submissions / f"s{student:03d}" / path.name)
        start = time.perf_counter()
        with open(pathlib.Path(folder) / "errors.txt", "w+b") as errors, subprocess.Popen(
                [sys.executable, "-m", "utils.grade", str(submissions), "--out", str(out), "--jobs", "2"],
                cwd=lessons.ROOT, stdout=subprocess.DEVNULL, stderr=errors) as grader:
            peak = peak_memory_mb(grader)
            errors.seek(0)
            if grader.wait():
                raise RuntimeError(f"python -m utils.grade exited with {grader.returncode}:\n"
                                   + errors.read()[-2000:].decode(errors="replace"))
        seconds = time.perf_counter() - start
        with open(out / "gradebook.csv", encoding="utf-8") as file:
            totals = [row["total"] for row in csv.DictReader(file)]
    full = sum(e.points for e in lessons.exercises(nbformat.read(path, as_version=4)))
    short = sum(float(total) != full for total in totals)
    warning = f"; **{short} of {len(totals)} copies lost points**" if short or len(totals) != size else ""
    return rows + [f"| {path.stem} (the slowest above) | {size} | 2 | {seconds:.0f} | {peak:.0f} | "
                   f"{verdict(seconds <= target and peak <= memory)}{warning} |"]


NBGRADER_CONFIG = """c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = "sqlite:///" + {database!r}
c.Execute.timeout = {cell_seconds}
"""


def nbgrader_course(root: pathlib.Path, lesson: str, submissions: dict[str, bytes],
                    cell_seconds: int = 600, source: bytes | None = None) -> str:
    """An nbgrader course folder in ``root``: the lesson's solution (or ``source``, a notebook
    of it) as its source (nbgrader's source/<assignment>/ layout) and each student's notebook in
    submitted/<student>/<assignment>/. Returns the assignment's name, the lesson's number ("01")."""
    assignment = lesson[:2]
    (root / "source" / assignment).mkdir(parents=True)
    solution = lessons.SOLUTIONS / f"{lesson}.ipynb"
    (root / "source" / assignment / solution.name).write_bytes(source or solution.read_bytes())
    for student, data in submissions.items():
        (root / "submitted" / student / assignment).mkdir(parents=True)
        (root / "submitted" / student / assignment / f"{lesson}.ipynb").write_bytes(data)
    (root / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(
        root=str(root), database=str(root / "gradebook.db"), cell_seconds=cell_seconds))
    return assignment


def run_nbgrader(root: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """One nbgrader command in the course folder ``root``. Its kernels find the course's
    ``utils`` through PYTHONPATH, as a course that keeps the repository beside it would, and
    nbgrader finds the commands it runs (``alembic``) beside this Python, even when the
    virtual environment is not activated."""
    python_path = os.pathsep.join(filter(None, [str(lessons.ROOT), os.environ.get("PYTHONPATH")]))
    path = os.pathsep.join(filter(None, [str(pathlib.Path(sys.executable).parent), os.environ.get("PATH")]))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root,
                          env=dict(os.environ, PYTHONPATH=python_path, PATH=path), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return done


def bench_against_nbgrader(repeats: int, quick: bool, paths: list[pathlib.Path]) -> list[str]:
    """Whole-command seconds of ``python -m utils.grade`` and ``nbgrader autograde`` on the same
    class of NBGRADER_CLASS submissions of a lesson, timed in turn within each repetition (one
    ratio each)."""
    half = NBGRADER_CLASS // 2
    rows = [f"| lesson ({half} solutions + {half} untouched lessons) | utils.grade s | nbgrader autograde s | "
            "ratio (nbgrader / utils.grade) | target ≥ 3× |", "|---|---|---|---|---|"]
    if importlib.util.find_spec("nbgrader") is None:
        return rows + [f"| nbgrader is not installed | {NOT_AVAILABLE} | {NOT_AVAILABLE} | {NOT_AVAILABLE} | |"]
    if quick:
        return rows + ["| not measured with --quick (nbgrader runs every cell of the lesson) | | | | |"]
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="course-bench-") as folder:
            root = pathlib.Path(folder)
            blank = lessons.lesson_path(path).read_bytes()
            solution = path.read_bytes()
            assignment = nbgrader_course(root, path.stem, {**{f"solution{i}": solution for i in range(half)},
                                                           **{f"blank{i}": blank for i in range(half)}})
            run_nbgrader(root, "generate_assignment", assignment, "--force")
            ours, theirs = [], []
            for repeat in range(repeats):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "utils.grade", str(root / "submitted"),
                                "--out", str(root / f"grades-{repeat}")],
                               cwd=lessons.ROOT, capture_output=True, check=True)
                ours.append(time.perf_counter() - start)
                start = time.perf_counter()
                run_nbgrader(root, "autograde", assignment, "--force")
                theirs.append(time.perf_counter() - start)
            ratio = [t / o for o, t in zip(ours, theirs)]
            rows.append(f"| {path.stem} | {spread(ours, 1)} | {spread(theirs, 1)} | {spread(ratio, 1)}× | "
                        f"{verdict(statistics.median(ratio) >= TARGETS['nbgrader ratio'])} |")
    return rows


# --- the report ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU: {len(gpus)} × {gpus[0].name}" if gpus else "no GPU"
    return (f"{os.cpu_count()} cores ({cpu}), {device}; Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of each measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="smallest sizes and one notebook: a smoke test")
    parser.add_argument("--out", type=pathlib.Path, default=lessons.ROOT / "BENCHMARKS.md")
    parser.add_argument("--lessons", nargs="+", metavar="NN", help="runtime and grading of these lessons only")
    args = parser.parse_args(argv)

    paths = [p for p in lessons.solution_paths() if not args.lessons or p.name[:2] in args.lessons]
    paths = paths[:1] if args.quick else paths
    sections = {"runtime": ("Course runtime", lambda repeats, quick: bench_runtime(repeats, paths)),
                "layers": ("Hand-built layers against Keras", bench_layers),
                "xl": ("Transformer-XL evaluation speed", bench_xl),
                "grading": ("Grading speed", lambda repeats, quick: bench_grading(repeats, quick, paths))}
    report = ["# Benchmarks", "",
              f"Measured by `python -m utils.bench{' --quick' if args.quick else ''} --repeats {args.repeats}"
              f"{' --lessons ' + ' '.join(args.lessons) if args.lessons else ''}` "
              f"on {datetime.date.today().isoformat()}.", "", f"Machine: {machine()}.", "",
              "Each figure is the median over the repetitions, with the spread (min–max) in brackets. "
              f"A layer's time in one repetition is the mean over as many calls as fill {MIN_SAMPLE_SECONDS} s."]
    for part in args.parts:
        title, bench = sections[part]
        print(f"measuring: {title} …", file=sys.stderr, flush=True)
        report += ["", f"## {title}", "", *bench(args.repeats, args.quick)]
        args.out.write_text("\n".join(report) + "\n", encoding="utf-8")  # a later part's failure keeps this one
    print("\n".join(report))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
