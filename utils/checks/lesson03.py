"""Checks for lesson 03, recurrence and working memory.

The cell and the unrolled forward pass are compared with ``keras.layers.SimpleRNN`` given
the same weights (its ``get_weights()`` layout: kernel ``[features, units]``, recurrent
kernel ``[units, units]``, bias ``[units]``) and a non-zero initial state; clipping is
compared with ``tf.clip_by_global_norm``.
"""
import keras
import numpy as np
import tensorflow as tf

from utils.checks import CheckFailed, built_once, call, expect_close, register, to_numpy

# float32 sums of a few products differ from Keras's in the last bits; a real mistake is
# off by far more than this.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}

WEIGHT_ROLES = (
    " Check which weight multiplies which: `kernel` is [features, units] and multiplies x_t; "
    "`recurrent_kernel` is [units, units] and multiplies h_prev."
)


def _weights(rng: np.random.Generator, features: int, units: int):
    """Random SimpleRNN weights, scaled so the tanh is neither linear nor saturated."""
    kernel = rng.normal(scale=1.0 / np.sqrt(features), size=(features, units))
    recurrent_kernel = rng.normal(scale=0.9 / np.sqrt(units), size=(units, units))
    bias = rng.normal(scale=0.5, size=units)
    return [w.astype(np.float32) for w in (kernel, recurrent_kernel, bias)]


def _keras_rnn(inputs: int, units: int, weights):
    """The reference keras.layers.SimpleRNN(return_sequences=True), built once, with these weights."""

    def make():
        layer = keras.layers.SimpleRNN(units, return_sequences=True)
        layer.build((None, None, inputs))
        return layer

    layer = built_once(make, "SimpleRNN", units, inputs)
    layer.set_weights(weights)
    return layer


def _keras_states(x: np.ndarray, h0: np.ndarray, weights) -> np.ndarray:
    """All hidden states of keras.layers.SimpleRNN with these weights: [batch, time, units]."""
    layer = _keras_rnn(x.shape[-1], h0.shape[-1], weights)
    return keras.ops.convert_to_numpy(layer(x, initial_state=[h0]))


def _by_hand(x_t, h_prev, kernel, recurrent_kernel, bias, activation=np.tanh):
    return activation(x_t @ kernel + h_prev @ recurrent_kernel + bias)


def _call(answer, *args, what: str, hint: str = ""):
    """Call the answer; when it raises on mismatched shapes, add a hint about the likely cause."""
    try:
        return call(answer, *args, what=what)
    except CheckFailed as error:
        shapes_clash = "ncompatible" in str(error) or "shape" in str(error).lower()
        if type(error) is CheckFailed and hint and shapes_clash:
            raise CheckFailed(str(error) + hint) from None
        raise


CELL_CASES = [(1, 1, 1), (1, 3, 4), (4, 3, 3), (5, 6, 2), (16, 8, 10)]  # batch, features, units


@register("03-rnn_cell")
def check_rnn_cell(rnn_cell, rng: np.random.Generator) -> str:
    for batch, features, units in CELL_CASES:
        kernel, recurrent_kernel, bias = weights = _weights(rng, features, units)
        x_t = rng.normal(size=(batch, features)).astype(np.float32)
        h_prev = rng.uniform(-0.9, 0.9, size=(batch, units)).astype(np.float32)
        expected = _keras_states(x_t[:, None, :], h_prev, weights)[:, 0]
        what = f"rnn_cell(x_t, h_prev, ...) with x_t of shape {x_t.shape} and h_prev of shape {h_prev.shape}"
        args = [tf.constant(a) for a in (x_t, h_prev, kernel, recurrent_kernel, bias)]
        got = to_numpy(_call(rnn_cell, *args, what=what, hint=WEIGHT_ROLES), what)
        z = x_t @ kernel + h_prev @ recurrent_kernel + bias
        causes = {
            "ReLU instead of tanh: a SimpleRNN squashes its state with tanh.": np.maximum(z, 0),
            "sigmoid instead of tanh: a SimpleRNN squashes its state with tanh.": 1 / (1 + np.exp(-z)),
            "no activation: h_t = tanh(x_t·W + h_prev·U + b).": z,
            "the bias b is missing: h_t = tanh(x_t·W + h_prev·U + b).": np.tanh(z - bias),
            "h_prev is left out: the new state must mix in the previous one through recurrent_kernel.":
                np.tanh(x_t @ kernel + bias),
            "recurrent_kernel is transposed: Keras computes h_prev @ recurrent_kernel "
            "(its rows index the previous state).": np.tanh(x_t @ kernel + h_prev @ recurrent_kernel.T + bias),
            "tanh covers only part of the sum: h_t = tanh(x_t·W + h_prev·U + b), all inside the tanh.":
                np.tanh(x_t @ kernel + bias) + h_prev @ recurrent_kernel,
        }
        if features == units:
            causes["the weights are swapped: `kernel` multiplies x_t and `recurrent_kernel` multiplies "
                   "h_prev."] = np.tanh(x_t @ recurrent_kernel + h_prev @ kernel + bias)
        expect_close(got, expected, what, reference="keras.layers.SimpleRNN with the same weights",
                     likely_causes=causes, **TOLERANCE)
    return f"matches keras.layers.SimpleRNN for one step on {len(CELL_CASES)} shapes, batch 1 to 16."


FORWARD_CASES = [(1, 1, 2, 3), (1, 6, 3, 4), (3, 1, 4, 2), (4, 9, 5, 5), (8, 15, 3, 6)]  # batch, time, features, units


def _states_by_hand(x, h0, weights, *, first=None, feed_back=True, activation=np.tanh):
    """All states by the definition; the keywords build known mistakes for the messages."""
    h, states = (h0 if first is None else first), []
    for t in range(x.shape[1]):
        new = _by_hand(x[:, t], h, *weights, activation=activation)
        states.append(new)
        h = new if feed_back else h
    return np.stack(states, axis=1)


def _sequence_case(rng: np.random.Generator, batch: int, time: int, features: int, units: int):
    """Random weights, a sequence x [batch, time, features] and a start state h0 [batch, units]."""
    weights = _weights(rng, features, units)
    x = rng.normal(size=(batch, time, features)).astype(np.float32)
    h0 = rng.uniform(-0.9, 0.9, size=(batch, units)).astype(np.float32)
    return weights, x, h0


@register("03-rnn_forward")
def check_rnn_forward(rnn_forward, rng: np.random.Generator) -> str:
    for batch, time, features, units in FORWARD_CASES:
        weights, x, h0 = _sequence_case(rng, batch, time, features, units)
        expected = _keras_states(x, h0, weights)
        what = f"rnn_forward(x, h0, ...) with x of shape {x.shape} and h0 of shape {h0.shape}"
        args = [tf.constant(a) for a in (x, h0, *weights)]
        got = _call(rnn_forward, *args, what=what, hint=WEIGHT_ROLES)
        if isinstance(got, (list, tuple)):
            raise CheckFailed(f"{what} returned a Python {type(got).__name__}, not a tensor; stack the states "
                              "into one tensor [batch, time, units] with tf.stack(states, axis=1).")
        got = to_numpy(got, what)
        if got.shape == (batch, units):
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}: return every hidden "
                              "state h_1 … h_T, not only the last one.")
        if got.shape == (time, batch, units) and time != batch:
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}: time comes second; "
                              "stack the states with axis=1 (tf.stack(states, axis=1)).")
        if got.shape == (batch, time + 1, units):
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}: return h_1 … h_T, "
                              "one state per input step, without the initial state h0.")
        shifted = np.concatenate([h0[:, None], expected[:, :-1]], axis=1)
        expect_close(got, expected, what, reference="keras.layers.SimpleRNN(return_sequences=True) with the "
                     "same weights and initial_state=[h0]", **TOLERANCE, likely_causes={
                         "h0 is ignored: the first step must start from the given h0, not from zeros.":
                             _states_by_hand(x, h0, weights, first=np.zeros_like(h0)),
                         "the states are shifted by one step: return h_1 … h_T (the state after each "
                         "input), not h_0 … h_{T-1}.": shifted,
                         "every step starts from h0: feed each new state back in as h_prev for the next "
                         "step.": _states_by_hand(x, h0, weights, feed_back=False),
                         "time runs backwards: process x[:, 0] first and x[:, -1] last.":
                             _states_by_hand(x[:, ::-1], h0, weights),
                         "ReLU instead of tanh: a SimpleRNN squashes its state with tanh.":
                             _states_by_hand(x, h0, weights, activation=lambda z: np.maximum(z, 0)),
                     })
    return (f"matches keras.layers.SimpleRNN(return_sequences=True) with initial_state on {len(FORWARD_CASES)} "
            "shapes, including batch 1 and time 1.")


def _gradient_like(rng: np.random.Generator, shapes, scale: float):
    return [(rng.normal(size=shape) * scale).astype(np.float32) for shape in shapes]


CLIP_CASES = [  # (shapes, scale of the entries, max_norm): clipped hard, barely, not at all
    ([(3, 4), (4,), (4, 4)], 10.0, 1.0),
    ([(5,)], 3.0, 2.0),
    ([(2, 3), (), (7,), (3, 3, 2)], 1000.0, 5.0),
    ([(4, 4), (4,)], 0.1, 5.0),
    ([(6,), (2, 2)], 1.0, 100.0),
]


@register("03-clip_by_global_norm")
def check_clip_by_global_norm(clip_by_global_norm, rng: np.random.Generator) -> str:
    for shapes, scale, max_norm in CLIP_CASES:
        grads = _gradient_like(rng, shapes, scale)
        expected, expected_norm = tf.clip_by_global_norm([tf.constant(g) for g in grads], max_norm)
        expected = [e.numpy() for e in expected]
        norms = [np.sqrt(np.sum(g.astype(np.float64) ** 2)) for g in grads]
        what = f"clip_by_global_norm(grads, {max_norm}) for {len(grads)} tensors of shapes {shapes}"
        result = call(clip_by_global_norm, [tf.constant(g) for g in grads], max_norm, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"{what} returned a {type(result).__name__}; return a pair "
                              "(clipped, global_norm): the list of clipped tensors and the norm before clipping.")
        clipped, global_norm = result
        if not isinstance(clipped, (tuple, list)) or len(clipped) != len(grads):
            count = f" of {len(clipped)} items" if isinstance(clipped, (tuple, list)) else ""
            raise CheckFailed(f"{what}: the clipped gradients are a {type(clipped).__name__}{count}; return a list "
                              f"with one tensor per gradient ({len(grads)}), in the same order.")

        got_norm = to_numpy(global_norm, f"the global norm from {what}")
        if got_norm.size == 1:
            got_norm = got_norm.reshape(())  # a number, a scalar tensor or a [1] tensor are all fine
        expect_close(got_norm, expected_norm.numpy(),
                     f"the global norm returned by {what}", reference="tf.clip_by_global_norm", **TOLERANCE,
                     likely_causes={
                         "the square root is missing: the global norm is sqrt(Σ over all tensors of Σ g²).":
                             np.float32(sum(n**2 for n in norms)),
                         "that is the sum of the tensors' own norms; the global norm is the norm of all "
                         "entries together, sqrt(Σ_i ‖g_i‖²).": np.float32(sum(norms)),
                         "that is the largest single tensor's norm; the global norm takes all tensors "
                         "together, sqrt(Σ_i ‖g_i‖²).": np.float32(max(norms)),
                     })
        scale_factor = max_norm / max(float(expected_norm), max_norm)
        for index, (got, want, norm) in enumerate(zip(clipped, expected, norms)):
            name = f"clipped tensor {index} (shape {want.shape}) from {what}"
            got = to_numpy(got, name)
            grad = grads[index]
            expect_close(got, want, name, reference="tf.clip_by_global_norm", **TOLERANCE, likely_causes={
                "each tensor is clipped on its own (like tf.clip_by_norm); scale them all by the same factor "
                "max_norm / global_norm, so the update keeps its direction.":
                    grad * min(1.0, max_norm / max(norm, 1e-30)),
                "the gradients are scaled even though the global norm is below max_norm: clip only when "
                "global_norm > max_norm.": grad * max_norm / float(expected_norm),
                "each entry is clipped to [-max_norm, max_norm] (that is tf.clip_by_value); clipping by "
                "norm rescales whole tensors.": np.clip(grad, -max_norm, max_norm),
                "the factor is inverted: multiply by max_norm / global_norm, not global_norm / max_norm.":
                    grad / scale_factor,
            })
    return (f"matches tf.clip_by_global_norm on {len(CLIP_CASES)} gradient lists, clipped and unclipped, "
            "scalars included.")


# (batch, time, features, units, k): k = T (no step, the identity), k = T − 1 (one Jacobian),
# k = 1 and ordinary cases.
JACOBIAN_CASES = [(1, 1, 2, 3, 1), (2, 5, 3, 4, 4), (1, 6, 2, 3, 1), (3, 7, 3, 5, 2), (2, 9, 4, 6, 3), (2, 4, 2, 4, 4)]


def _tape_jacobian(x, h0, weights, k: int) -> np.ndarray:
    """The reference: ∂h_T/∂h_k by tf.GradientTape, re-running steps k+1..T from h_k."""
    kernel, recurrent_kernel, bias = (tf.constant(w, tf.float64) for w in weights)
    states = _states_by_hand(x.astype(np.float64), h0.astype(np.float64), weights)
    h_k = tf.constant(states[:, k - 1])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(h_k)
        h = h_k
        for t in range(k, x.shape[1]):  # x[:, t] is the input of step t + 1
            h = tf.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)
    return tape.batch_jacobian(h, h_k, experimental_use_pfor=False).numpy(), states


def _jacobian_mistakes(states, recurrent_kernel, k: int) -> dict:
    """What each known mistake makes of ∂h_T/∂h_k: cause -> [batch, units, units]."""
    batch, time, units = states.shape
    U = recurrent_kernel.astype(np.float64)

    def jac(t, tanh_slope=True, previous=False):
        """J_t = ∂h_t/∂h_{t−1} = diag(1 − h_t²) Uᵀ (states[:, t − 1] is h_t), or a mistake."""
        h = states[:, t - 2] if previous else states[:, t - 1]
        slope = 1 - h ** 2 if tanh_slope else np.ones_like(h)
        return slope[:, :, None] * U.T[None]

    def product(first, last, newest_left=True, **kw):
        """J_last ⋯ J_first (or J_first ⋯ J_last with newest_left=False)."""
        result = np.broadcast_to(np.eye(units), (batch, units, units))
        for t in range(first, last + 1):
            result = jac(t, **kw) @ result if newest_left else result @ jac(t, **kw)
        return result

    right = product(k + 1, time)
    causes = {
        "the Jacobians are multiplied in the wrong order: ∂h_T/∂h_k = J_T J_{T−1} ⋯ J_{k+1}, the "
        "latest step on the left.": product(k + 1, time, newest_left=False),
        "the tanh derivative is missing: each step's Jacobian is diag(1 − h_t²) Uᵀ, not Uᵀ.":
            product(k + 1, time, tanh_slope=False),
        "the result is transposed: entry [i, j] should be ∂h_T[i]/∂h_k[j], so each step is "
        "diag(1 − h_t²) Uᵀ, not U diag(1 − h_t²).": np.swapaxes(right, 1, 2),
        "one Jacobian too many: ∂h_T/∂h_k has T − k factors, J_T down to J_{k+1} (the identity "
        "when k = T).": right @ jac(k),
    }
    if k >= 1:
        causes["the slope of the wrong state is used: step t's Jacobian uses h_t, the state it "
               "produces, not h_{t−1}."] = product(k + 1, time, previous=True)
    return causes


@register("03-jacobian_product")
def check_jacobian_product(jacobian_product, rng: np.random.Generator) -> str:
    for batch, time, features, units, k in JACOBIAN_CASES:
        x = rng.normal(size=(batch, time, features)).astype(np.float32)
        h0 = rng.normal(scale=0.5, size=(batch, units)).astype(np.float32)
        weights = _weights(rng, features, units)
        expected, states = _tape_jacobian(x, h0, weights, k)
        what = (f"jacobian_product(states, recurrent_kernel, k={k}) with states of shape "
                f"{[batch, time, units]}")
        got = to_numpy(call(jacobian_product, tf.constant(states.astype(np.float32)), tf.constant(weights[1]), k,
                            what=what), what)
        causes = _jacobian_mistakes(states, weights[1], k)
        expect_close(got, expected, what, reference="tf.GradientTape's batch_jacobian", likely_causes=causes,
                     **TOLERANCE)
    return (f"matches tf.GradientTape's ∂h_T/∂h_k on {len(JACOBIAN_CASES)} cases, k = T (the identity) "
            "and k = T − 1 included.")


# (batch, time, features, units): batch 1, time 1 and units 1 each appear, beside ordinary cases.
BPTT_CASES = [(1, 1, 2, 3), (3, 4, 3, 1), (1, 5, 3, 4), (4, 1, 2, 3), (2, 6, 4, 5), (8, 9, 3, 6)]
BPTT_OUTPUTS = ("grad_kernel", "grad_recurrent_kernel", "grad_bias", "grad_h0")
BPTT_ORDER = "(grad_kernel, grad_recurrent_kernel, grad_bias, grad_h0), in that order"


def _keras_gradients(x, h0, weights, grad_last) -> list[np.ndarray]:
    """The reference: ∂L/∂W, ∂L/∂U, ∂L/∂b and ∂L/∂h0 by tf.GradientTape through
    keras.layers.SimpleRNN with these weights, for L = Σ h_T ⊙ grad_last."""
    layer = _keras_rnn(x.shape[-1], h0.shape[-1], weights)
    h0 = tf.constant(h0)
    with tf.GradientTape() as tape:
        tape.watch(h0)
        loss = tf.reduce_sum(layer(tf.constant(x), initial_state=[h0])[:, -1] * grad_last)
    kernel, recurrent_kernel, bias = layer.trainable_weights  # get_weights() order
    return [g.numpy() for g in tape.gradient(loss, [kernel, recurrent_kernel, bias, h0])]


def _bptt_by_hand(x, h0, weights, grad_last, *, slope="h_t", back=np.transpose, steps="all",
                  batch_reduce=np.sum, u_state="h_prev", h0_grad="delta_0", start_from_zero=False,
                  seed_ones=False) -> list[np.ndarray]:
    """[grad_kernel, grad_recurrent_kernel, grad_bias, grad_h0] by BPTT in float64; the
    keywords build the known mistakes the messages name."""
    x, h0, grad_last = (np.asarray(a, np.float64) for a in (x, h0, grad_last))
    W, U, b = (np.asarray(w, np.float64) for w in weights)
    states = [np.zeros_like(h0) if start_from_zero else h0]  # states[t] is h_t
    for t in range(x.shape[1]):
        states.append(np.tanh(x[:, t] @ W + states[-1] @ U + b))
    slopes = {"h_t": lambda t: 1 - states[t] ** 2, "h_prev": lambda t: 1 - states[t - 1] ** 2,
              "none": lambda t: np.ones_like(states[t]), "sigmoid": lambda t: states[t] * (1 - states[t])}
    per_step = []  # per sequence, for t = T … 1: x_tᵀ a_t, h_{t−1}ᵀ a_t, a_t
    delta = np.ones_like(grad_last) if seed_ones else grad_last  # delta is ∂L/∂h_t
    for t in range(x.shape[1], 0, -1):
        delta_t, a = delta, delta * slopes[slope](t)
        h_used = states[t] if u_state == "h_t" else states[t - 1]
        per_step.append((x[:, t - 1, :, None] * a[:, None], h_used[:, :, None] * a[:, None], a))
        delta = a @ back(U)
    kept = {"all": per_step, "last": per_step[:1], "first": per_step[-1:]}[steps]
    grads = [batch_reduce(sum(step[i] for step in kept), axis=0) for i in range(3)]
    grad_h0 = {"delta_0": delta, "a_1": a, "delta_1": delta_t, "slope_of_h0": delta * (1 - states[0] ** 2)}
    return grads + [grad_h0[h0_grad]]


BPTT_MISTAKES = {  # cause: the keywords of _bptt_by_hand that make that mistake
    "the tanh slope is missing: going back through h_t = tanh(z_t) multiplies ∂L/∂h_t by "
    "tanh'(z_t) = 1 − h_t², entry by entry.": {"slope": "none"},
    "the slope of h_{t−1} is used: step t's tanh produced h_t, so its slope is 1 − h_t².": {"slope": "h_prev"},
    "that is the sigmoid's slope h(1 − h); the tanh's slope is 1 − h².": {"slope": "sigmoid"},
    "going back you multiply by U instead of Uᵀ: z_t = x_t·W + h_{t−1}·U + b with row vectors, so "
    "∂L/∂h_{t−1} = a_t·Uᵀ.": {"back": lambda U: U},
    "only the last step's contribution is kept: W, U and b are used at every step, so their gradients "
    "add up the contributions of all T steps.": {"steps": "last"},
    "only step 1's contribution is kept: each step overwrites the sum instead of adding to it (+=).":
        {"steps": "first"},
    "the gradients are averaged over the batch: L adds up all sequences, so sum over the batch.":
        {"batch_reduce": np.mean},
    "off by one: U's gradient pairs a_t with h_t, but the state U multiplied at step t is h_{t−1}.":
        {"u_state": "h_t"},
    "the last multiplication by Uᵀ is missing: h0 reaches z_1 through U, so ∂L/∂h0 = a_1·Uᵀ, "
    "not a_1.": {"h0_grad": "a_1"},
    "that is ∂L/∂h_1: walk one more step back, through step 1's tanh slope and Uᵀ.": {"h0_grad": "delta_1"},
    "one tanh slope too many: h0 is given, not the output of a tanh, so ∂L/∂h0 = a_1·Uᵀ with "
    "nothing after it.": {"h0_grad": "slope_of_h0"},
    "grad_last is ignored: the walk back starts from ∂L/∂h_T = grad_last (yours is the gradient "
    "of L = Σ h_T).": {"seed_ones": True},
    "the forward pass ignores h0: it must start from the given h0, not from zeros.": {"start_from_zero": True},
}


def _bptt_outputs(result, what: str) -> list[np.ndarray]:
    """The four gradients as arrays, or a CheckFailed naming what is wrong with the structure."""
    if result is None:
        raise CheckFailed(f"{what} returned None: is a `return` statement missing?")
    if isinstance(result, dict):
        raise CheckFailed(f"{what} returned a dict; return a tuple of four tensors, {BPTT_ORDER}.")
    if not isinstance(result, (tuple, list)):
        shape = f" of shape {tuple(result.shape)}" if hasattr(result, "shape") else ""
        raise CheckFailed(f"{what} returned one {type(result).__name__}{shape}; return a tuple of four "
                          f"tensors, {BPTT_ORDER}.")
    if len(result) != 4:
        missing = " (did you leave out grad_h0, ∂L/∂h0?)" if len(result) == 3 else ""
        raise CheckFailed(f"{what} returned {len(result)} items{missing}; return four, {BPTT_ORDER}.")
    return [to_numpy(value, f"{name} from {what}") for name, value in zip(BPTT_OUTPUTS, result)]


def _expect_gradient_shape(got: np.ndarray, name: str, shapes: dict, batch: int, what: str) -> None:
    want = shapes[name]
    if got.shape == want:
        return
    message = f"{name} from {what} has shape {got.shape}, expected {want}"
    others = [other for other, shape in shapes.items() if shape == got.shape and other != name]
    if name != "grad_h0" and got.shape == (batch, *want):
        hint = (": sum over the batch. W, U and b are shared by every sequence, so their gradient adds up "
                "all sequences' contributions and has the weight's own shape.")
    elif len(want) == 2 and got.shape == want[::-1]:
        hint = f": it is transposed. A weight's gradient has the weight's shape, {want}."
    elif name == "grad_h0" and got.shape == want[1:]:
        hint = ": do not sum ∂L/∂h0 over the batch; each sequence has its own h0, so it is [batch, units]."
    elif others:
        hint = f": that is the shape of {others[0]}. Return the four gradients {BPTT_ORDER}."
    else:
        hint = ". A weight's gradient has the weight's shape; grad_h0 has h0's shape [batch, units]."
    raise CheckFailed(message + hint)


@register("03-bptt_gradient")
def check_bptt_gradient(bptt_gradient, rng: np.random.Generator) -> str:
    for batch, time, features, units in BPTT_CASES:
        weights, x, h0 = _sequence_case(rng, batch, time, features, units)
        grad_last = rng.normal(size=(batch, units)).astype(np.float32)
        expected = _keras_gradients(x, h0, weights, grad_last)
        what = (f"bptt_gradient(x, h0, kernel, recurrent_kernel, bias, grad_last) with x of shape {x.shape} "
                f"and {units} unit{'s' if units > 1 else ''}")
        args = [tf.constant(a) for a in (x, h0, *weights, grad_last)]
        got = _bptt_outputs(_call(bptt_gradient, *args, what=what, hint=WEIGHT_ROLES), what)
        shapes = {name: want.shape for name, want in zip(BPTT_OUTPUTS, expected)}
        for name, output in zip(BPTT_OUTPUTS, got):
            _expect_gradient_shape(output, name, shapes, batch, what)
        for index, name in enumerate(BPTT_OUTPUTS):
            causes = {cause: (lambda kw=kw, index=index: _bptt_by_hand(x, h0, weights, grad_last, **kw)[index])
                      for cause, kw in BPTT_MISTAKES.items()}
            expect_close(got[index], expected[index], f"{name} from {what}", likely_causes=causes,
                         reference="tf.GradientTape through keras.layers.SimpleRNN", **TOLERANCE)
    return (f"all four gradients match tf.GradientTape through keras.layers.SimpleRNN on {len(BPTT_CASES)} "
            "shapes, including batch 1, time 1 and 1 unit.")
