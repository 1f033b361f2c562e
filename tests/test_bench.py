"""A smoke test of the benchmark command at its smallest sizes (the real run is never part of pytest)."""
import nbformat

from utils import bench


def test_quick_benchmark_writes_every_part(tmp_path, capsys):
    """Every part but the runtime, whose quick run would execute lesson 01 whole, as the nbval
    run does already: the next test runs that part on a notebook of two cells."""
    out = tmp_path / "BENCHMARKS.md"
    assert bench.main(["--quick", "--repeats", "1", "--parts", "layers", "xl", "grading", "--out", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out.strip() == text.strip()
    for title in ("Hand-built layers against Keras", "Transformer-XL evaluation speed", "Grading speed", "Machine: "):
        assert title in text
    assert "| 01_neurons_and_activations (solution) | 1 |" in text
    assert "| 01_neurons_and_activations (the slowest above) | 4 | 2 |" in text
    assert "lost points" not in text


def test_runtime_times_each_notebook_and_the_total(tmp_path):
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 2"),
                                                   nbformat.v4.new_code_cell("assert x * x == 4")]), path)
    rows = bench.bench_runtime(2, [path])
    assert rows[2].startswith("| 99_tiny | ") and rows[2].endswith(" |")
    assert rows[3].startswith("| **all 1 notebooks** | ")


def test_spread_gives_median_and_range():
    assert bench.spread([3.0, 1.0, 2.0], 1) == "2.0 (1.0–3.0)"
    assert bench.spread([4.0]) == "4.00"


class FakeClock:
    """A clock that moves only when told to: each call of the timed function takes ``step`` seconds."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step


def test_seconds_per_call_averages_over_enough_calls():
    clock, calls = FakeClock(0.25), []  # binary fractions: sums are exact

    def one_call():
        calls.append(1)
        clock.tick()

    assert bench.seconds_per_call(one_call, min_seconds=1.0, clock=clock) == 0.25
    assert len(calls) == 4
    calls.clear()
    assert bench.seconds_per_call(lambda: calls.append(1), min_seconds=0.0, clock=clock) == 0 and len(calls) == 1
