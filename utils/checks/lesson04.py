"""Checks for lesson 04, LSTM gates by hand.

The learner's cell and forward pass get the weights of a freshly drawn
``keras.layers.LSTM(return_sequences=True, return_state=True)`` and must agree with it at
every timestep and in both final states. The shared-gate cell ("spot the bug") is compared
with a direct NumPy transcription of its definition, and the one-step Jacobian with
the gradients tf.GradientTape takes through one step of the same Keras layer. When an answer is wrong, the checks
recompute the known mistakes (gate order, sigmoid and tanh swapped, h and c mixed up) and
name the one that matches.
"""
import keras
import numpy as np
import tensorflow as tf

from utils.checks import CheckFailed, built_once, call, expect_close, register, to_numpy

# Keras packs the four gate blocks of kernel, recurrent_kernel and bias in this order.
KERAS_ORDER = "ifco"
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
# (batch, time, input_dim, units): batch 1, time 1, one unit, and ordinary sizes.
SHAPES = [(1, 1, 1, 1), (1, 1, 3, 2), (1, 6, 2, 3), (3, 1, 4, 5), (4, 9, 3, 4), (2, 14, 5, 6)]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _weights(rng: np.random.Generator, input_dim: int, units: int):
    """Random LSTM weights in Keras's packing, large enough that every gate matters."""
    kernel = rng.normal(scale=0.6, size=(input_dim, 4 * units)).astype(np.float32)
    recurrent = rng.normal(scale=0.6, size=(units, 4 * units)).astype(np.float32)
    bias = rng.normal(scale=0.5, size=4 * units).astype(np.float32)
    return kernel, recurrent, bias


def _numpy_step(x, h, c, kernel, recurrent, bias, order=KERAS_ORDER, swap_activations=False,
                h_without_tanh=False):
    """One LSTM step in NumPy (float64), optionally with a known mistake built in."""
    z = x.astype(np.float64) @ kernel + h @ recurrent + bias
    blocks = dict(zip(order, np.split(z, 4, axis=-1)))
    gate, squash = (np.tanh, _sigmoid) if swap_activations else (_sigmoid, np.tanh)
    i, f, o = gate(blocks["i"]), gate(blocks["f"]), gate(blocks["o"])
    c_new = f * c + i * squash(blocks["c"])
    h_new = o * c_new if h_without_tanh else o * squash(c_new)
    return h_new, c_new


def _numpy_forward(x, h0, c0, kernel, recurrent, bias, **mistake):
    """The unrolled pass in NumPy: (outputs, h_T, c_T, cell states over time)."""
    h, c, hs, cs = h0.astype(np.float64), c0.astype(np.float64), [], []
    for t in range(x.shape[1]):
        h, c = _numpy_step(x[:, t], h, c, kernel, recurrent, bias, **mistake)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, axis=1), h, c, np.stack(cs, axis=1)


def _reference_layer(layer_class, units, inputs, weights):
    """keras.layers.LSTM or GRU returning every step and its final state, built once per shape
    (see built_once) and holding ``weights``: the reference of every check in this lesson."""

    def make():
        layer = layer_class(units, return_sequences=True, return_state=True)
        layer.build((None, None, inputs))
        return layer

    layer = built_once(make, layer_class.__name__, units, inputs)
    layer.set_weights(weights)
    return layer


def _keras_lstm(x, h0, c0, kernel, recurrent, bias):
    """The reference: keras.layers.LSTM with the same weights and initial state."""
    layer = _reference_layer(keras.layers.LSTM, h0.shape[-1], x.shape[-1], [kernel, recurrent, bias])
    outputs, h, c = layer(tf.constant(x), initial_state=[tf.constant(h0), tf.constant(c0)])
    return outputs.numpy(), h.numpy(), c.numpy()


def _mistakes(x, h0, c0, kernel, recurrent, bias):
    """What each known mistake makes of the whole pass: name -> (outputs, h_T, c_T, cells)."""
    variants = {
        "the gate blocks are taken in the order i, c, f, o; Keras packs them i, f, c, o "
        "(input, forget, cell candidate, output).": {"order": "icfo"},
        "the gate blocks are taken in the order i, f, o, c; Keras packs them i, f, c, o "
        "(input, forget, cell candidate, output).": {"order": "ifoc"},
        "the forget and input gate blocks are swapped; Keras packs i, f, c, o.": {"order": "fico"},
        "sigmoid and tanh are swapped: the gates i, f, o use the sigmoid (values in (0, 1)), "
        "the candidate and the output squash use tanh.": {"swap_activations": True},
        "h_t = o_t ⊙ C_t is missing the tanh: h_t = o_t ⊙ tanh(C_t).": {"h_without_tanh": True},
    }
    return {cause: _numpy_forward(x, h0, c0, kernel, recurrent, bias, **kw) for cause, kw in variants.items()}


def _draw(rng, batch, time, input_dim, units):
    x = rng.normal(size=(batch, time, input_dim)).astype(np.float32)
    h0 = rng.normal(scale=0.5, size=(batch, units)).astype(np.float32)
    c0 = rng.normal(scale=0.5, size=(batch, units)).astype(np.float32)
    return x, h0, c0, *_weights(rng, input_dim, units)


def _pair(result, what: str, names: tuple[str, str]):
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        raise CheckFailed(f"{what} should return a tuple ({', '.join(names)}); you returned "
                          f"{type(result).__name__}{'' if not isinstance(result, (tuple, list)) else f' of length {len(result)}'}.")
    return [to_numpy(value, f"{what}[{k}] ({name})") for k, (value, name) in enumerate(zip(result, names))]


def _expect_state(got, expected, what, *, swapped_with, label_swapped, causes,
                  reference="keras.layers.LSTM with the same weights"):
    """Compare one state with the reference, naming h/c mix-ups and the known mistakes."""
    if got.shape == expected.shape and not np.allclose(got, expected, **TOLERANCE) \
            and np.allclose(got, swapped_with, **TOLERANCE):
        raise CheckFailed(f"{what} equals the reference's {label_swapped}: h and c are returned in the "
                          "wrong order, or the wrong one is returned.")
    expect_close(got, expected, what, reference=reference, likely_causes=causes, **TOLERANCE)


@register("04-lstm_cell")
def check_lstm_cell(lstm_cell, rng: np.random.Generator) -> str:
    for batch, _, input_dim, units in SHAPES:
        x, h0, c0, kernel, recurrent, bias = _draw(rng, batch, 1, input_dim, units)
        _, h_ref, c_ref = _keras_lstm(x, h0, c0, kernel, recurrent, bias)
        what = f"lstm_cell(x_t, h_prev, c_prev, …) with batch {batch}, input_dim {input_dim}, units {units}"
        result = call(lstm_cell, *(tf.constant(a) for a in (x[:, 0], h0, c0, kernel, recurrent, bias)), what=what)
        h, c = _pair(result, what, ("h_t", "c_t"))
        mistakes = _mistakes(x, h0, c0, kernel, recurrent, bias)
        _expect_state(h, h_ref, f"h_t from {what}", swapped_with=c_ref, label_swapped="c_t",
                      causes={cause: m[1] for cause, m in mistakes.items()})
        _expect_state(c, c_ref, f"c_t from {what}", swapped_with=h_ref, label_swapped="h_t",
                      causes={cause: m[2] for cause, m in mistakes.items()})
    return (f"agrees with keras.layers.LSTM (same weights, i, f, c, o packing) on {len(SHAPES)} shapes, "
            "batch 1 and one unit included, within 1e-5.")


@register("04-lstm_forward")
def check_lstm_forward(lstm_forward, rng: np.random.Generator) -> str:
    for batch, time, input_dim, units in SHAPES:
        x, h0, c0, kernel, recurrent, bias = _draw(rng, batch, time, input_dim, units)
        out_ref, h_ref, c_ref = _keras_lstm(x, h0, c0, kernel, recurrent, bias)
        what = f"lstm_forward(x, h0, c0, …) with x of shape {list(x.shape)}, units {units}"
        result = call(lstm_forward, *(tf.constant(a) for a in (x, h0, c0, kernel, recurrent, bias)), what=what)
        outputs, h, c = _pair(result, what, ("outputs", "h_T", "c_T"))
        mistakes = _mistakes(x, h0, c0, kernel, recurrent, bias)
        if outputs.shape == (time, batch, units) and time != batch:
            raise CheckFailed(f"outputs from {what} has shape {list(outputs.shape)} = [time, batch, units]; "
                              f"expected [batch, time, units] = {[batch, time, units]}: stack the steps "
                              "along axis 1 (or transpose).")
        if outputs.shape == (batch, time + 1, units):
            raise CheckFailed(f"outputs from {what} has {time + 1} timesteps for {time} inputs: h0 is the "
                              "state before the first input, not an output; leave it out.")
        cells = mistakes.pop("h_t = o_t ⊙ C_t is missing the tanh: h_t = o_t ⊙ tanh(C_t).")
        outputs_causes = {cause: m[0] for cause, m in mistakes.items()}
        outputs_causes["outputs holds the cell states C_t; the layer's outputs are the hidden states h_t."] = \
            _numpy_forward(x, h0, c0, kernel, recurrent, bias)[3]
        outputs_causes["h_t = o_t ⊙ C_t is missing the tanh: h_t = o_t ⊙ tanh(C_t)."] = cells[0]
        expect_close(outputs, out_ref, f"outputs from {what}", reference="keras.layers.LSTM with the same weights",
                     likely_causes=outputs_causes, **TOLERANCE)
        _expect_state(h, h_ref, f"h_T from {what}", swapped_with=c_ref, label_swapped="c_T",
                      causes={})
        _expect_state(c, c_ref, f"c_T from {what}", swapped_with=h_ref, label_swapped="h_T",
                      causes={})
    return (f"outputs at every timestep and both final states agree with keras.layers.LSTM on {len(SHAPES)} "
            "shapes, batch 1 and time 1 included, within 1e-5.")


SHARED_REFERENCE = "the shared-gate cell's definition"


def _shared_step(x, h, c, kernel, bias):
    """The buggy cell, straight from its definition: one pre-activation for every gate."""
    z = np.concatenate([x, h], axis=-1).astype(np.float64) @ kernel + bias
    gate = _sigmoid(z)
    c_new = gate * c + gate * np.tanh(z)
    return gate * np.tanh(c_new), c_new


@register("04-shared_gate_cell")
def check_shared_gate_cell(shared_gate_cell, rng: np.random.Generator) -> str:
    for batch, _, input_dim, units in SHAPES:
        x = rng.normal(size=(batch, input_dim)).astype(np.float32)
        h = rng.normal(scale=0.5, size=(batch, units)).astype(np.float32)
        c = rng.normal(scale=0.5, size=(batch, units)).astype(np.float32)
        kernel = rng.normal(scale=0.6, size=(input_dim + units, units)).astype(np.float32)
        bias = rng.normal(scale=0.5, size=units).astype(np.float32)
        h_ref, c_ref = _shared_step(x, h, c, kernel, bias)
        what = f"shared_gate_cell(x_t, h_prev, c_prev, kernel, bias) with batch {batch}, input_dim {input_dim}, units {units}"
        result = call(shared_gate_cell, *(tf.constant(a) for a in (x, h, c, kernel, bias)), what=what)
        got_h, got_c = _pair(result, what, ("h_t", "c_t"))
        z = np.concatenate([x, h], axis=-1).astype(np.float64) @ kernel + bias
        gate = _sigmoid(z)
        c_causes = {
            "the candidate is tanh(z), not z itself: C_t = g ⊙ C_{t−1} + g ⊙ tanh(z).": gate * c + gate * z,
            "x_t and h_prev are concatenated in the order [h_prev, x_t]; the kernel's first rows "
            "belong to x_t: z = [x_t, h_prev] · kernel + bias.":
                _shared_step(h, x, c, kernel, bias)[1],
        }
        _expect_state(got_c, c_ref, f"c_t from {what}", swapped_with=h_ref, label_swapped="h_t", causes=c_causes,
                      reference=SHARED_REFERENCE)
        _expect_state(got_h, h_ref, f"h_t from {what}", swapped_with=c_ref, label_swapped="c_t",
                      reference=SHARED_REFERENCE,
                      causes={"h_t = g ⊙ C_t is missing the tanh: h_t = g ⊙ tanh(C_t).": gate * c_ref})
    return f"matches the shared-gate cell's definition on {len(SHAPES)} shapes, batch 1 included."


# Keras packs the GRU's three blocks in this order: update gate z, reset gate r, candidate h.
GRU_ORDER = "zrh"


def _keras_gru_step(x, h, kernel, recurrent, bias):
    """The reference: one step of keras.layers.GRU (reset_after=True, its default), same weights."""
    layer = _reference_layer(keras.layers.GRU, h.shape[-1], x.shape[-1], [kernel, recurrent, bias])
    _, h_new = layer(tf.constant(x[:, None]), initial_state=[tf.constant(h)])
    return h_new.numpy()


def _numpy_gru_step(x, h, kernel, recurrent, bias, order=GRU_ORDER, reset_before=False,
                    keep_new=False, recurrent_bias=True):
    """One GRU step in NumPy (float64), optionally with a known mistake built in."""
    x, h = x.astype(np.float64), h.astype(np.float64)
    from_x = dict(zip(order, np.split(x @ kernel + bias[0], 3, axis=-1)))
    from_h = dict(zip(order, np.split(h @ recurrent + (bias[1] if recurrent_bias else 0.0), 3, axis=-1)))
    z, r = _sigmoid(from_x["z"] + from_h["z"]), _sigmoid(from_x["r"] + from_h["r"])
    if reset_before:  # the original paper's form: reset h_prev, then multiply
        recurrent_h = np.split(recurrent, 3, axis=-1)[order.index("h")]
        recurrent_bias_h = np.split(bias[1], 3)[order.index("h")]
        candidate = np.tanh(from_x["h"] + (r * h) @ recurrent_h + recurrent_bias_h)
    else:
        candidate = np.tanh(from_x["h"] + r * from_h["h"])
    if keep_new:
        return (1.0 - z) * h + z * candidate
    return z * h + (1.0 - z) * candidate


def _gru_mistakes(x, h, kernel, recurrent, bias):
    return {
        "the reset gate multiplies h_prev before the recurrent product (reset_after=False, the "
        "original paper's form); Keras's default applies it after: r_t ⊙ (h_{t−1} U_h + b_rh).":
            _numpy_gru_step(x, h, kernel, recurrent, bias, reset_before=True),
        "the update and reset gates are swapped; Keras packs the blocks z, r, h.":
            _numpy_gru_step(x, h, kernel, recurrent, bias, order="rzh"),
        "(1 − z_t) multiplies the wrong term: in Keras z_t is the share of the old state, "
        "h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ h̃_t.":
            _numpy_gru_step(x, h, kernel, recurrent, bias, keep_new=True),
        "the recurrent bias (bias[1]) is missing: each block adds bias[0] to the input part and "
        "bias[1] to the recurrent part.":
            _numpy_gru_step(x, h, kernel, recurrent, bias, recurrent_bias=False),
    }


@register("04-gru_cell")
def check_gru_cell(gru_cell, rng: np.random.Generator) -> str:
    for batch, _, input_dim, units in SHAPES:
        x = rng.normal(size=(batch, input_dim)).astype(np.float32)
        h = rng.normal(scale=0.5, size=(batch, units)).astype(np.float32)
        kernel = rng.normal(scale=0.6, size=(input_dim, 3 * units)).astype(np.float32)
        recurrent = rng.normal(scale=0.6, size=(units, 3 * units)).astype(np.float32)
        bias = rng.normal(scale=0.5, size=(2, 3 * units)).astype(np.float32)
        expected = _keras_gru_step(x, h, kernel, recurrent, bias)
        what = f"gru_cell(x_t, h_prev, kernel, recurrent_kernel, bias) with batch {batch}, input_dim {input_dim}, units {units}"
        result = call(gru_cell, *(tf.constant(a) for a in (x, h, kernel, recurrent, bias)), what=what)
        if isinstance(result, (tuple, list)):
            raise CheckFailed(f"{what} should return h_t alone, one [batch, units] tensor (a GRU has no "
                              f"separate cell state); you returned a {type(result).__name__} of length {len(result)}.")
        got = to_numpy(result, what)
        expect_close(got, expected, what, reference="keras.layers.GRU (reset_after=True) with the same weights",
                     likely_causes=_gru_mistakes(x, h, kernel, recurrent, bias), **TOLERANCE)
    return (f"agrees with keras.layers.GRU (reset_after=True, blocks z, r, h) on {len(SHAPES)} shapes, "
            "batch 1 and one unit included, within 1e-5.")


def _numpy_jacobian(x, h, c, kernel, recurrent, bias, order=KERAS_ORDER, gates_fixed=False,
                    tanh_of_old_c=False, untransposed=False, no_cell_path=False, no_forget_in_dh_dc=False):
    """One step's Jacobian ∂(h_t, C_t)/∂(h_{t−1}, C_{t−1}) in NumPy (float64), [batch, 2u, 2u],
    optionally with a known mistake built in."""
    x, h, c = (a.astype(np.float64) for a in (x, h, c))
    z = x @ kernel + h @ recurrent + bias
    blocks = dict(zip(order, np.split(z, 4, axis=-1)))
    weights = dict(zip(order, np.split(recurrent.astype(np.float64), 4, axis=-1)))  # U_gate[k, a]
    i, f, o, g = _sigmoid(blocks["i"]), _sigmoid(blocks["f"]), _sigmoid(blocks["o"]), np.tanh(blocks["c"])
    c_new = f * c + i * g
    squash_slope = 1.0 - np.tanh(c if tanh_of_old_c else c_new) ** 2

    def through(slope, gate):  # diag(slope) · U_gateᵀ for each example: [batch, units, units]
        u = weights[gate] if untransposed else weights[gate].T
        return slope[:, :, None] * u[None] * (0.0 if gates_fixed else 1.0)

    dc_dh = through(c * f * (1 - f), "f") + through(g * i * (1 - i), "i") + through(i * (1 - g ** 2), "c")
    dh_dh = through(np.tanh(c_new) * o * (1 - o), "o")
    if not no_cell_path:
        dh_dh = dh_dh + (o * squash_slope)[:, :, None] * dc_dh
    dh_dc = o * squash_slope * (1.0 if no_forget_in_dh_dc else f)
    eye = np.eye(h.shape[-1])[None]
    top = np.concatenate([dh_dh, dh_dc[:, :, None] * eye], axis=-1)
    bottom = np.concatenate([dc_dh, f[:, :, None] * eye], axis=-1)
    return np.concatenate([top, bottom], axis=1)


def _tape_jacobian(x, h, c, kernel, recurrent, bias):
    """The reference: the Jacobian of one step of keras.layers.LSTM, row by row from tf.GradientTape."""
    units = h.shape[-1]
    layer = _reference_layer(keras.layers.LSTM, units, x.shape[-1], [kernel, recurrent, bias])
    state = tf.constant(np.concatenate([h, c], axis=-1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(state)
        _, h_new, c_new = layer(tf.constant(x[:, None]), initial_state=[state[:, :units], state[:, units:]])
        new_state = tf.concat([h_new, c_new], axis=-1)
        outputs = [new_state[:, a] for a in range(2 * units)]
    # examples do not interact, so the gradient of output a summed over the batch is row a of each
    # example's Jacobian
    rows = [tape.gradient(output, state).numpy() for output in outputs]
    return np.stack(rows, axis=1)


def _jacobian_mistakes(x, h, c, kernel, recurrent, bias):
    args = (x, h, c, kernel, recurrent, bias)
    return {
        "the gates and the candidate are treated as constants. They read h_{t−1} through U, so "
        "∂C_t/∂h_{t−1} has a term for each of f, i and the candidate, and ∂h_t/∂h_{t−1} one for o "
        "and one through C_t.": lambda: _numpy_jacobian(*args, gates_fixed=True),
        "tanh′ is taken at C_{t−1}; h_t = o_t ⊙ tanh(C_t) needs 1 − tanh²(C_t), at the new cell state.":
            lambda: _numpy_jacobian(*args, tanh_of_old_c=True),
        "the recurrent blocks are used as U, not Uᵀ. With row vectors z = h U, so "
        "∂z_a/∂h_k = U[k, a]: entry [a, k] of the Jacobian reads U[k, a].":
            lambda: _numpy_jacobian(*args, untransposed=True),
        "the Jacobian is transposed: row a should be output a (h_t then C_t), column k input k "
        "(h_{t−1} then C_{t−1}).": lambda: np.swapaxes(_numpy_jacobian(*args), 1, 2),
        "∂h_t/∂h_{t−1} has only the output gate's term; h_t also depends on h_{t−1} through C_t: "
        "add diag(o_t ⊙ tanh′(C_t)) · ∂C_t/∂h_{t−1}.": lambda: _numpy_jacobian(*args, no_cell_path=True),
        "∂h_t/∂C_{t−1} is missing f_t: C_{t−1} reaches h_t only through C_t = f_t ⊙ C_{t−1} + …, "
        "so the chain rule multiplies by f_t.": lambda: _numpy_jacobian(*args, no_forget_in_dh_dc=True),
        "the gate blocks are taken in the order i, c, f, o; Keras packs them i, f, c, o.":
            lambda: _numpy_jacobian(*args, order="icfo"),
    }


@register("04-lstm_jacobian")
def check_lstm_jacobian(lstm_jacobian, rng: np.random.Generator) -> str:
    for batch, _, input_dim, units in SHAPES:
        x, h0, c0, kernel, recurrent, bias = _draw(rng, batch, 1, input_dim, units)
        x = x[:, 0]
        expected = _tape_jacobian(x, h0, c0, kernel, recurrent, bias)
        what = f"lstm_jacobian(x_t, h_prev, c_prev, …) with batch {batch}, input_dim {input_dim}, units {units}"
        result = call(lstm_jacobian, *(tf.constant(a) for a in (x, h0, c0, kernel, recurrent, bias)), what=what)
        if isinstance(result, (tuple, list)):
            raise CheckFailed(f"{what} should return one tensor [batch, 2·units, 2·units] = "
                              f"{[batch, 2 * units, 2 * units]}, the four blocks put together; you returned a "
                              f"{type(result).__name__} of length {len(result)}.")
        got = to_numpy(result, what)
        if got.shape == (2 * units, 2 * units) and batch == 1:
            raise CheckFailed(f"{what} has shape {list(got.shape)}; keep the batch axis: "
                              f"{[batch, 2 * units, 2 * units]}.")
        expect_close(got, expected, what, reference="tf.GradientTape through keras.layers.LSTM",
                     likely_causes=_jacobian_mistakes(x, h0, c0, kernel, recurrent, bias), **TOLERANCE)
    return (f"agrees with tf.GradientTape through keras.layers.LSTM (one step, same weights) on {len(SHAPES)} shapes, "
            "batch 1 and one unit included, within 1e-5.")
