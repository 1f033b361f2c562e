"""Lesson 03's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import pytest
import tensorflow as tf

from utils import checks



def cell_with(activation=tf.tanh, swap=False, transpose=False, bias=True):
    """A SimpleRNN cell with one deliberate mistake (or none)."""

    def cell(x_t, h_prev, kernel, recurrent_kernel, bias_vector):
        if swap:
            kernel, recurrent_kernel = recurrent_kernel, kernel
        if transpose:
            recurrent_kernel = tf.transpose(recurrent_kernel)
        z = x_t @ kernel + h_prev @ recurrent_kernel
        return activation(z + bias_vector if bias else z)

    return cell


right_cell = cell_with()


def forward_with(cell=right_cell, start_from_zero=False, keep_h0=False, feed_back=True, reverse=False,
                 last_only=False, time_major=False, as_list=False):
    """An unrolled forward pass with one deliberate mistake (or none)."""

    def forward(x, h0, kernel, recurrent_kernel, bias):
        h = tf.zeros_like(h0) if start_from_zero else h0
        steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        states = [h0] if keep_h0 else []
        for t in steps:
            new = cell(x[:, t], h, kernel, recurrent_kernel, bias)
            states.append(new)
            h = new if feed_back else h
        if keep_h0:
            states = states[:-1]
        if last_only:
            return h
        if as_list:
            return states
        return tf.stack(states, axis=0 if time_major else 1)

    return forward


def clip_each(grads, max_norm):
    return [tf.clip_by_norm(g, max_norm) for g in grads], tf.linalg.global_norm(grads)


def global_norm_of(grads):
    return tf.sqrt(tf.add_n([tf.reduce_sum(g**2) for g in grads]))


def jacobian_with(newest_left=True, slope=True, transpose=False, extra=False, previous=False):
    """∂h_T/∂h_k as a product of step Jacobians, with one chosen mistake built in."""

    def jacobian_product(states, recurrent_kernel, k):
        def step(t):
            h = states[:, t - 2] if previous else states[:, t - 1]
            return ((1 - h ** 2) if slope else tf.ones_like(h))[:, :, None] * tf.transpose(recurrent_kernel)

        result = tf.eye(recurrent_kernel.shape[0], batch_shape=[states.shape[0]])
        for t in range(k + 1, states.shape[1] + 1):
            result = step(t) @ result if newest_left else result @ step(t)
        if extra:
            result = result @ step(k)
        return tf.linalg.matrix_transpose(result) if transpose else result

    return jacobian_product


def bptt_with(slope="h_t", transpose_back=True, steps="all", reduce_batch=tf.reduce_sum, u_state="h_prev",
              h0_grad="delta_0", seed_ones=False, order=None, outputs=4):
    """BPTT for a SimpleRNN (L depends on h_T only), with one chosen mistake built in."""

    def bptt_gradient(x, h0, kernel, recurrent_kernel, bias, grad_last):
        states = [h0]
        for t in range(x.shape[1]):
            states.append(tf.tanh(x[:, t] @ kernel + states[-1] @ recurrent_kernel + bias))
        slopes = {"h_t": lambda t: 1 - states[t] ** 2, "h_prev": lambda t: 1 - states[t - 1] ** 2,
                  "none": lambda t: tf.ones_like(states[t])}
        back = tf.transpose(recurrent_kernel) if transpose_back else recurrent_kernel
        contributions = []  # per sequence, for t = T … 1
        delta = tf.ones_like(grad_last) if seed_ones else grad_last
        for t in range(x.shape[1], 0, -1):
            delta_t, a = delta, delta * slopes[slope](t)
            h_used = states[t] if u_state == "h_t" else states[t - 1]
            contributions.append((x[:, t - 1, :, None] * a[:, None], h_used[:, :, None] * a[:, None], a))
            delta = a @ back
        kept = {"all": contributions, "last": contributions[:1], "first": contributions[-1:]}[steps]
        grads = [tf.add_n([c[i] for c in kept]) for i in range(3)]
        grads = [g if reduce_batch is None else reduce_batch(g, axis=0) for g in grads]
        grad_h0 = {"delta_0": delta, "a_1": a, "delta_1": delta_t}[h0_grad]
        result = (*grads, grad_h0)
        return tuple(result[i] for i in order) if order else result[:outputs]

    return bptt_gradient


MUTANTS = {
    "03-rnn_cell": {
        "kernel and recurrent_kernel swapped": cell_with(swap=True),
        "ReLU instead of tanh": cell_with(activation=tf.nn.relu),
        "sigmoid instead of tanh": cell_with(activation=tf.sigmoid),
        "no activation": cell_with(activation=tf.identity),
        "recurrent kernel transposed": cell_with(transpose=True),
        "bias missing": cell_with(bias=False),
        "h_prev ignored": lambda x_t, h_prev, kernel, recurrent_kernel, bias: tf.tanh(x_t @ kernel + bias),
        "tanh of the input part only":
            lambda x_t, h_prev, kernel, recurrent_kernel, bias: tf.tanh(x_t @ kernel + bias) + h_prev @ recurrent_kernel,
    },
    "03-rnn_forward": {
        "h0 ignored": forward_with(start_from_zero=True),
        "returns h0 … h_{T-1}": forward_with(keep_h0=True),
        "state never fed back": forward_with(feed_back=False),
        "time reversed": forward_with(reverse=True),
        "ReLU cell": forward_with(cell=cell_with(activation=tf.nn.relu)),
        "swapped weights": forward_with(cell=cell_with(swap=True)),
        "last state only": forward_with(last_only=True),
        "time-major output": forward_with(time_major=True),
        "a Python list of states": forward_with(as_list=True),
    },
    "03-jacobian_product": {
        "wrong order": jacobian_with(newest_left=False),
        "no tanh derivative": jacobian_with(slope=False),
        "transposed": jacobian_with(transpose=True),
        "one Jacobian too many": jacobian_with(extra=True),
        "slope of h_{t-1}": jacobian_with(previous=True),
    },
    "03-bptt_gradient": {
        "no tanh slope": bptt_with(slope="none"),
        "slope of h_{t-1}": bptt_with(slope="h_prev"),
        "U instead of U^T going back": bptt_with(transpose_back=False),
        "last step only": bptt_with(steps="last"),
        "sum overwritten each step": bptt_with(steps="first"),
        "averaged over the batch": bptt_with(reduce_batch=tf.reduce_mean),
        "not summed over the batch": bptt_with(reduce_batch=None),
        "U's gradient uses h_t": bptt_with(u_state="h_t"),
        "grad_h0 missing the last U^T": bptt_with(h0_grad="a_1"),
        "grad_h0 is dL/dh_1": bptt_with(h0_grad="delta_1"),
        "grad_last ignored": bptt_with(seed_ones=True),
        "outputs in the wrong order": bptt_with(order=(3, 0, 1, 2)),
        "grad_h0 left out": bptt_with(outputs=3),
        "a dict instead of a tuple": lambda *args: dict(zip("abcd", bptt_with()(*args))),
    },
    "03-clip_by_global_norm": {
        "each tensor clipped separately": clip_each,
        "always rescaled to max_norm":
            lambda grads, max_norm: ([g * max_norm / global_norm_of(grads) for g in grads], global_norm_of(grads)),
        "clipped by value": lambda grads, max_norm: ([tf.clip_by_value(g, -max_norm, max_norm) for g in grads],
                                                     global_norm_of(grads)),
        "square root missing": lambda grads, max_norm: (tf.clip_by_global_norm(grads, max_norm)[0],
                                                         global_norm_of(grads) ** 2),
        "sum of per-tensor norms": lambda grads, max_norm: (tf.clip_by_global_norm(grads, max_norm)[0],
                                                            tf.add_n([tf.norm(g) for g in grads])),
        "factor inverted": lambda grads, max_norm: (
            [g * tf.maximum(global_norm_of(grads) / max_norm, 1.0) for g in grads], global_norm_of(grads)),
        "returns only the clipped list": lambda grads, max_norm: tf.clip_by_global_norm(grads, max_norm)[0],
    },
}


def test_reference_mutants_are_right():
    """The unmutated helpers above are correct, so each mutant differs by its one mistake."""
    assert checks.run("03-rnn_cell", right_cell).status == "passed"
    assert checks.run("03-rnn_forward", forward_with()).status == "passed"
    assert checks.run("03-clip_by_global_norm", tf.clip_by_global_norm).status == "passed"
    assert checks.run("03-jacobian_product", jacobian_with()).status == "passed"
    assert checks.run("03-bptt_gradient", bptt_with()).status == "passed"


@pytest.mark.parametrize("exercise,mutant,words", [
    ("03-rnn_cell", "ReLU instead of tanh", "ReLU instead of tanh"),
    ("03-rnn_cell", "kernel and recurrent_kernel swapped", "multiplies h_prev"),
    ("03-rnn_cell", "recurrent kernel transposed", "transposed"),
    ("03-rnn_forward", "h0 ignored", "h0 is ignored"),
    ("03-rnn_forward", "returns h0 … h_{T-1}", "shifted by one step"),
    ("03-rnn_forward", "state never fed back", "feed each new state back"),
    ("03-rnn_forward", "last state only", "not only the last one"),
    ("03-rnn_forward", "a Python list of states", "tf.stack"),
    ("03-jacobian_product", "wrong order", "wrong order"),
    ("03-jacobian_product", "no tanh derivative", "tanh derivative is missing"),
    ("03-jacobian_product", "transposed", "transposed"),
    ("03-jacobian_product", "one Jacobian too many", "too many"),
    ("03-bptt_gradient", "no tanh slope", "tanh slope is missing"),
    ("03-bptt_gradient", "slope of h_{t-1}", "slope of h_{t−1} is used"),
    ("03-bptt_gradient", "U instead of U^T going back", "U instead of Uᵀ"),
    ("03-bptt_gradient", "last step only", "only the last step's contribution"),
    ("03-bptt_gradient", "sum overwritten each step", "overwrites the sum"),
    ("03-bptt_gradient", "averaged over the batch", "averaged over the batch"),
    ("03-bptt_gradient", "not summed over the batch", "sum over the batch"),
    ("03-bptt_gradient", "U's gradient uses h_t", "off by one"),
    ("03-bptt_gradient", "grad_h0 missing the last U^T", "last multiplication by Uᵀ is missing"),
    ("03-bptt_gradient", "grad_h0 is dL/dh_1", "that is ∂L/∂h_1"),
    ("03-bptt_gradient", "grad_last ignored", "grad_last is ignored"),
    ("03-bptt_gradient", "outputs in the wrong order", "in that order"),
    ("03-bptt_gradient", "grad_h0 left out", "leave out grad_h0"),
    ("03-clip_by_global_norm", "each tensor clipped separately", "clipped on its own"),
    ("03-clip_by_global_norm", "always rescaled to max_norm", "below max_norm"),
    ("03-clip_by_global_norm", "square root missing", "square root"),
    ("03-clip_by_global_norm", "sum of per-tensor norms", "sum of the tensors' own norms"),
])
def test_messages_name_the_likely_cause(exercise, mutant, words):
    assert words in checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message
