"""The similarity report on synthetic answers to an LSTM-cell exercise: renamed variables and
changed comments are caught, a genuinely different solution is not, reordered statements are
partly similar, and untouched cells are never compared."""
import json

import pytest

from utils import similarity

STUB = '''def lstm_cell(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """One LSTM step."""
    # YOUR CODE HERE
    raise NotImplementedError()
'''

ORIGINAL = '''def lstm_cell(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """One LSTM step."""
    z = tf.matmul(x_t, kernel) + tf.matmul(h_prev, recurrent_kernel) + bias
    z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
    i_t = tf.sigmoid(z_i)
    f_t = tf.sigmoid(z_f)
    o_t = tf.sigmoid(z_o)
    c_t = f_t * c_prev + i_t * tf.tanh(z_c)  # the new cell state
    h_t = o_t * tf.tanh(c_t)
    return h_t, c_t
'''

RENAMED = '''def lstm_cell(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """One LSTM step."""
    # pre-activations of all four gates at once
    pre = tf.matmul(x_t,kernel)+tf.matmul(h_prev,   recurrent_kernel)+bias

    a, b, c, d = tf.split(pre, 4, axis=-1)
    input_gate = tf.sigmoid(a)
    forget_gate = tf.sigmoid(b)
    output_gate = tf.sigmoid(d)  # output
    cell = forget_gate * c_prev + input_gate * tf.tanh(c)
    hidden = output_gate * tf.tanh(cell)
    return (hidden, cell)
'''

REORDERED = '''def lstm_cell(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """One LSTM step."""
    z = tf.matmul(x_t, kernel) + tf.matmul(h_prev, recurrent_kernel) + bias
    z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
    o_t = tf.sigmoid(z_o)
    c_t = tf.sigmoid(z_f) * c_prev + tf.sigmoid(z_i) * tf.tanh(z_c)
    h_t = o_t * tf.tanh(c_t)
    return h_t, c_t
'''

DIFFERENT = '''def lstm_cell(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    """One LSTM step."""
    units = h_prev.shape[-1]
    gates = []
    for k in range(4):
        cols = slice(k * units, (k + 1) * units)
        gates.append(x_t @ kernel[:, cols] + h_prev @ recurrent_kernel[:, cols] + bias[cols])
    i, f, g, o = [fn(t) for fn, t in zip([tf.sigmoid, tf.sigmoid, tf.tanh, tf.sigmoid], gates)]
    new_c = f * c_prev + i * g
    return o * tf.tanh(new_c), new_c
'''


def part(answer: str) -> list[str]:
    return similarity.students_part(answer, STUB)


def pair_score(a: str, b: str) -> float:
    return similarity.score(part(a), part(b))


def test_renamed_variables_changed_comments_and_layout_are_identical():
    assert similarity.normalise(ORIGINAL) == similarity.normalise(RENAMED)
    assert pair_score(ORIGINAL, RENAMED) == 1.0


def test_one_changed_token_is_still_near_identical():
    assert similarity.THRESHOLD <= pair_score(ORIGINAL, ORIGINAL.replace("axis=-1", "axis=1")) < 1.0


def test_a_genuinely_different_solution_scores_low():
    assert pair_score(ORIGINAL, DIFFERENT) < 0.3


def test_reordered_statements_are_partly_similar():
    swapped = ORIGINAL.replace("    i_t = tf.sigmoid(z_i)\n    f_t = tf.sigmoid(z_f)\n",
                               "    f_t = tf.sigmoid(z_f)\n    i_t = tf.sigmoid(z_i)\n")
    assert swapped != ORIGINAL
    assert 0.5 < pair_score(ORIGINAL, swapped) < similarity.THRESHOLD
    assert 0.3 < pair_score(ORIGINAL, REORDERED) < similarity.THRESHOLD  # moved and merged


def test_given_code_is_not_the_students():
    assert part(STUB) == []
    assert "lstm_cell" not in part(ORIGINAL) and "One" not in " ".join(part(ORIGINAL))


def test_code_that_does_not_parse_is_still_compared_without_comments():
    broken = ORIGINAL.replace("return h_t, c_t", "return h_t,, c_t")
    assert similarity.normalise(broken + "# a note\n")[-1] == "return h_t , , c_t"
    assert pair_score(ORIGINAL, broken) < 1.0  # names are not renamed when parsing fails
    assert pair_score(broken, broken.replace("# the new cell state", "# c")) == 1.0


def test_pairs_are_reported_per_exercise_and_per_lesson():
    short = "def relu(x):\n    return tf.maximum(x, 0.0)\n"
    answers = {
        "alice": {"cell": part(ORIGINAL), "relu": similarity.students_part(short, "def relu(x):\n    pass\n")},
        "bob": {"cell": part(RENAMED), "relu": similarity.students_part(short, "def relu(x):\n    pass\n")},
        "carol": {"cell": part(DIFFERENT), "relu": similarity.students_part(short, "def relu(x):\n    pass\n")},
        "dave": {"cell": part(STUB), "relu": []},  # untouched: nothing to compare
    }
    rows = similarity.similar_pairs(answers, "04_lstm", threshold=0.9)
    flagged = {(r[1], r[2], r[3]) for r in rows}
    # relu's one-liner is the same for all three, but too short to count on its own
    assert flagged == {("cell", "alice", "bob"), (similarity.LESSON, "alice", "bob")}
    assert all(r[4] == 1.0 for r in rows)
    assert all(r[5] >= similarity.MIN_TOKENS for r in rows)


def notebook(answer: str) -> str:
    cell = {"cell_type": "code", "source": answer, "metadata": {"nbgrader": {"grade_id": "04-lstm_cell", "solution": True}},
            "outputs": [], "execution_count": None}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.mark.parametrize("text", ["not json", "[]", '{"cells": 3}', '{"cells": [{"source": 1}]}'])
def test_files_that_are_not_notebooks_have_no_answers(text):
    assert similarity.answers_of(text) == {}


def test_report_reads_the_notebooks_and_takes_out_the_real_lessons_stub(tmp_path):
    lesson = "04_lstm_gates_by_hand"
    files = {}
    for student, answer in [("alice", ORIGINAL), ("bob", RENAMED), ("carol", DIFFERENT)]:
        files[student] = tmp_path / f"{student}.ipynb"
        files[student].write_text(notebook(answer))
    (tmp_path / "eve.ipynb").write_bytes(b"\xff not a notebook")
    submissions = [(s, lesson, p) for s, p in files.items()] + [("eve", lesson, tmp_path / "eve.ipynb")]
    rows = similarity.report(submissions)
    assert [(r[1], r[2], r[3]) for r in rows] == [("04-lstm_cell", "alice", "bob"), (similarity.LESSON, "alice", "bob")]
