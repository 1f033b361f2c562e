"""Lesson 04's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import pytest
import tensorflow as tf

from utils import checks



def cell_with(order="ifco", gate=tf.sigmoid, squash=tf.tanh, h_of_c=None, swap_return=False, forget=True):
    """An LSTM cell with one chosen mistake built in (the defaults make the right cell)."""

    def cell(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
        z = x_t @ kernel + h_prev @ recurrent_kernel + bias
        blocks = dict(zip(order, tf.split(z, 4, axis=-1)))
        i, f, o = gate(blocks["i"]), gate(blocks["f"]), gate(blocks["o"])
        c_t = (f * c_prev if forget else c_prev) + i * squash(blocks["c"])
        h_t = h_of_c(o, c_t) if h_of_c else o * squash(c_t)
        return (c_t, h_t) if swap_return else (h_t, c_t)

    return cell


def forward_with(cell=None, keep_h0=False, transpose=False, return_cells=False, swap_final=False,
                 reuse_h0=False, last_only=False):
    """An unrolled pass with one chosen mistake built in."""
    cell = cell or cell_with()

    def forward(x, h0, c0, kernel, recurrent_kernel, bias):
        h, c, hs, cs = h0, c0, [h0] if keep_h0 else [], []
        for t in range(x.shape[1]):
            h, c = cell(x[:, t], h0 if reuse_h0 else h, c, kernel, recurrent_kernel, bias)
            hs.append(h)
            cs.append(c)
        outputs = tf.stack(cs if return_cells else hs, axis=0 if transpose else 1)
        if last_only:
            outputs = h
        return (outputs, c, h) if swap_final else (outputs, h, c)

    return forward


def shared_with(concat_hx=False, no_tanh_candidate=False, no_tanh_h=False, separate_output=False):
    def cell(x_t, h_prev, c_prev, kernel, bias):
        parts = [h_prev, x_t] if concat_hx else [x_t, h_prev]
        z = tf.concat(parts, axis=-1) @ kernel + bias
        g = tf.sigmoid(z)
        c_t = g * c_prev + g * (z if no_tanh_candidate else tf.tanh(z))
        h_t = g * (c_t if no_tanh_h else tf.tanh(c_t))
        if separate_output:
            h_t = tf.tanh(c_t)
        return h_t, c_t

    return cell


MUTANTS = {
    "04-lstm_cell": {
        "gate order i, c, f, o": cell_with(order="icfo"),
        "gate order i, f, o, c": cell_with(order="ifoc"),
        "input and forget swapped": cell_with(order="fico"),
        "sigmoid and tanh swapped": cell_with(gate=tf.tanh, squash=tf.sigmoid),
        "h without tanh": cell_with(h_of_c=lambda o, c: o * c),
        "returns (c, h)": cell_with(swap_return=True),
        "no forget gate": cell_with(forget=False),
        "relu candidate": cell_with(squash=tf.nn.relu),
        "returns h only": lambda *args: cell_with()(*args)[0],
    },
    "04-lstm_forward": {
        "gate order i, c, f, o": forward_with(cell_with(order="icfo")),
        "sigmoid and tanh swapped": forward_with(cell_with(gate=tf.tanh, squash=tf.sigmoid)),
        "outputs include h0": forward_with(keep_h0=True),
        "outputs [time, batch, units]": forward_with(transpose=True),
        "outputs are the cell states": forward_with(return_cells=True),
        "final h and c swapped": forward_with(swap_final=True),
        "h never updated": forward_with(reuse_h0=True),
        "last step only": forward_with(last_only=True),
    },
    "04-shared_gate_cell": {
        "[h, x] concatenation": shared_with(concat_hx=True),
        "candidate without tanh": shared_with(no_tanh_candidate=True),
        "h without tanh": shared_with(no_tanh_h=True),
        "no output gate": shared_with(separate_output=True),
        "returns (c, h)": lambda *args: shared_with()(*args)[::-1],
    },
}


def test_right_answers_written_here_pass():
    """The mutant builders with no mistake are right, so each mutant differs by one mistake."""
    for exercise, answer in [("04-lstm_cell", cell_with()), ("04-lstm_forward", forward_with()),
                             ("04-shared_gate_cell", shared_with())]:
        result = checks.run(exercise, answer, seed=0)
        assert result.status == "passed", result.message


@pytest.mark.parametrize("exercise,mutant,words", [
    ("04-lstm_cell", "gate order i, c, f, o", "i, f, c, o"),
    ("04-lstm_cell", "sigmoid and tanh swapped", "sigmoid and tanh are swapped"),
    ("04-lstm_cell", "returns (c, h)", "h and c"),
    ("04-lstm_cell", "h without tanh", "missing the tanh"),
    ("04-lstm_forward", "gate order i, c, f, o", "i, f, c, o"),
    ("04-lstm_forward", "outputs are the cell states", "cell states"),
    ("04-lstm_forward", "final h and c swapped", "h and c"),
    ("04-lstm_forward", "outputs [time, batch, units]", "[batch, time, units]"),
    ("04-lstm_forward", "outputs include h0", "h0"),
    ("04-shared_gate_cell", "[h, x] concatenation", "[x_t, h_prev]"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    message = checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message
    assert words in message, message
