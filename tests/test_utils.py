"""The utils package: quiet import, seeding, device report and the check machinery."""
import concurrent.futures
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import utils
from utils import checks, lessons


def test_import_prints_nothing_on_stderr():
    """TensorFlow's C++ start-up lines are silenced by importing utils first."""
    done = subprocess.run([sys.executable, "-c", "import utils, tensorflow as tf; tf.ones(3)"],
                          cwd=lessons.ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_set_seed_makes_draws_repeatable():
    utils.set_seed(7)
    first = tf.random.normal([4]).numpy(), np.random.rand(3)
    utils.set_seed(7)
    second = tf.random.normal([4]).numpy(), np.random.rand(3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_device_report_is_one_line(capsys):
    utils.device_report()
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert ("CPU only" in out) != ("GPU: " in out)
    assert tf.__version__ in out


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(KeyError, match="01-sigmoid"):
        checks.run("01-sigmod", tf.math.sigmoid)


def test_check_exercise_prints_a_tick_or_raises(capsys):
    utils.check_exercise("01-relu", tf.nn.relu)
    assert capsys.readouterr().out.startswith("✓ 01-relu passed")
    with pytest.raises(checks.CheckFailed, match="01-relu failed"):
        utils.check_exercise("01-relu", tf.abs)
    with pytest.raises(checks.NotAttempted, match="not implemented yet"):
        utils.check_exercise("01-relu", lambda x: (_ for _ in ()).throw(NotImplementedError()))


def test_a_crashing_answer_is_a_failure_not_a_crash():
    result = checks.run("01-relu", lambda x: 1 / 0)
    assert result.status == "failed" and "ZeroDivisionError" in result.message


def test_expect_close_reports_shape_position_and_cause():
    with pytest.raises(checks.CheckFailed, match=r"shape \(2,\), expected \(3,\)"):
        checks.expect_close(np.zeros(2), np.zeros(3), "f(x)", rtol=0, atol=0)
    with pytest.raises(checks.CheckFailed, match=r"1 of 3 entries; first at x = 5: you returned 1.*Likely cause: off"):
        checks.expect_close(np.array([0, 0, 1.0]), np.zeros(3), "f(x)", rtol=0, atol=1e-9,
                            inputs=np.array([3, 4, 5.0]), likely_causes={"off": np.array([0, 0, 1.0])})


def test_a_cause_given_as_a_function_is_computed_only_for_a_wrong_answer():
    calls = []

    def costly():
        calls.append(1)
        return np.array([0, 0, 1.0])

    checks.expect_close(np.zeros(3), np.zeros(3), "f(x)", rtol=0, atol=0, likely_causes={"off": costly})
    assert calls == []
    with pytest.raises(checks.CheckFailed, match="Likely cause: off"):
        checks.expect_close(np.array([0, 0, 1.0]), np.zeros(3), "f(x)", rtol=0, atol=0, likely_causes={"off": costly})
    assert calls == [1]


def test_a_reference_layer_is_built_once_per_key_and_thread():
    def make():
        return object()

    first = checks.built_once(make, "test", 1)
    assert checks.built_once(make, "test", 1) is first
    assert checks.built_once(make, "test", 2) is not first
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(checks.built_once, make, "test", 1).result() is not first


def test_to_numpy_refuses_none_and_lists():
    with pytest.raises(checks.CheckFailed, match="return"):
        checks.to_numpy(None, "f(x)")
    with pytest.raises(checks.CheckFailed, match="list"):
        checks.to_numpy([1.0], "f(x)")


def test_checks_keep_tf32_setting():
    tf.config.experimental.enable_tensor_float_32_execution(True)
    try:
        checks.run("01-relu", tf.nn.relu)
        assert tf.config.experimental.tensor_float_32_execution_enabled()
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(False)


def test_spread_gives_mean_and_range_over_seeds():
    assert utils.spread([0.5, 0.61, 0.7]) == "0.603 (0.500–0.700 over 3 seeds)"
    assert utils.spread([2, 4], digits=1) == "3.0 (2.0–4.0 over 2 seeds)"


def test_diagram_names_the_known_drawings_when_one_is_missing():
    from utils import plots

    with pytest.raises(FileNotFoundError, match="no diagram 'no_such_drawing'"):
        plots.diagram("no_such_drawing")
