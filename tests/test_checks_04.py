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


def gru_with(order="zrh", reset_before=False, keep_new=False, recurrent_bias=True, with_state=False):
    """A GRU cell (Keras's reset_after=True form) with one chosen mistake built in."""

    def cell(x_t, h_prev, kernel, recurrent_kernel, bias):
        from_x = dict(zip(order, tf.split(x_t @ kernel + bias[0], 3, axis=-1)))
        from_h = dict(zip(order, tf.split(h_prev @ recurrent_kernel + (bias[1] if recurrent_bias else 0.0), 3, axis=-1)))
        z, r = tf.sigmoid(from_x["z"] + from_h["z"]), tf.sigmoid(from_x["r"] + from_h["r"])
        if reset_before:
            recurrent_h = tf.split(recurrent_kernel, 3, axis=-1)[order.index("h")]
            candidate = tf.tanh(from_x["h"] + (r * h_prev) @ recurrent_h + tf.split(bias[1], 3)[order.index("h")])
        else:
            candidate = tf.tanh(from_x["h"] + r * from_h["h"])
        h_t = (1 - z) * h_prev + z * candidate if keep_new else z * h_prev + (1 - z) * candidate
        return (h_t, h_t) if with_state else h_t

    return cell


def jacobian_with(order="ifco", gates_fixed=False, old_c=False, untransposed=False, no_cell_path=False,
                  no_forget=False, transposed=False, no_batch=False):
    """The one-step Jacobian ∂(h_t, C_t)/∂(h_{t−1}, C_{t−1}) with one chosen mistake built in."""

    def jacobian(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
        z = x_t @ kernel + h_prev @ recurrent_kernel + bias
        blocks = dict(zip(order, tf.split(z, 4, axis=-1)))
        weights = dict(zip(order, tf.split(recurrent_kernel, 4, axis=-1)))
        i, f, o, g = tf.sigmoid(blocks["i"]), tf.sigmoid(blocks["f"]), tf.sigmoid(blocks["o"]), tf.tanh(blocks["c"])
        c_t = f * c_prev + i * g
        slope = 1 - tf.tanh(c_prev if old_c else c_t) ** 2

        def through(gate_slope, gate):
            u = weights[gate] if untransposed else tf.transpose(weights[gate])
            return gate_slope[:, :, None] * u[None] * (0.0 if gates_fixed else 1.0)

        dc_dh = through(c_prev * f * (1 - f), "f") + through(g * i * (1 - i), "i") + through(i * (1 - g ** 2), "c")
        dh_dh = through(tf.tanh(c_t) * o * (1 - o), "o") + (0.0 if no_cell_path else (o * slope)[:, :, None] * dc_dh)
        dh_dc = tf.linalg.diag(o * slope * (1.0 if no_forget else f))
        result = tf.concat([tf.concat([dh_dh, dh_dc], -1), tf.concat([dc_dh, tf.linalg.diag(f)], -1)], axis=1)
        if transposed:
            result = tf.transpose(result, [0, 2, 1])
        return result[0] if no_batch else result

    return jacobian


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
    "04-gru_cell": {
        "reset before the product (reset_after=False)": gru_with(reset_before=True),
        "z and r swapped": gru_with(order="rzh"),
        "(1 - z) on the old state": gru_with(keep_new=True),
        "no recurrent bias": gru_with(recurrent_bias=False),
        "block order h, z, r": gru_with(order="hzr"),
        "returns (h, h)": gru_with(with_state=True),
    },
    "04-lstm_jacobian": {
        "gates held fixed": jacobian_with(gates_fixed=True),
        "tanh' at the old cell state": jacobian_with(old_c=True),
        "U instead of U transposed": jacobian_with(untransposed=True),
        "no path through C_t in dh/dh": jacobian_with(no_cell_path=True),
        "f missing in dh/dC": jacobian_with(no_forget=True),
        "Jacobian transposed": jacobian_with(transposed=True),
        "gate order i, c, f, o": jacobian_with(order="icfo"),
        "batch axis dropped": jacobian_with(no_batch=True),
        "returns the four blocks": lambda *args: tuple(tf.split(jacobian_with()(*args), 2, axis=1)),
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
                             ("04-shared_gate_cell", shared_with()), ("04-gru_cell", gru_with()),
                             ("04-lstm_jacobian", jacobian_with())]:
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
    ("04-gru_cell", "reset before the product (reset_after=False)", "reset_after=False"),
    ("04-gru_cell", "z and r swapped", "z, r, h"),
    ("04-gru_cell", "(1 - z) on the old state", "wrong term"),
    ("04-gru_cell", "no recurrent bias", "bias[1]"),
    ("04-lstm_jacobian", "gates held fixed", "treated as constants"),
    ("04-lstm_jacobian", "tanh' at the old cell state", "at the new cell state"),
    ("04-lstm_jacobian", "U instead of U transposed", "not Uᵀ"),
    ("04-lstm_jacobian", "no path through C_t in dh/dh", "through C_t"),
    ("04-lstm_jacobian", "f missing in dh/dC", "missing f_t"),
    ("04-lstm_jacobian", "Jacobian transposed", "transposed"),
    ("04-lstm_jacobian", "gate order i, c, f, o", "i, f, c, o"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    message = checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message
    assert words in message, message
