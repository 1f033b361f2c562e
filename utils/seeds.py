"""Several seeds of one experiment, trained together.

A finding is only worth printing if it survives another seed, and a course that asks for
five seeds must not cost five times as much. :func:`fit_seeds` trains one independent copy
of a Keras model per seed inside a single compiled loop: each copy starts from the weights
that ``keras.utils.set_random_seed(seed)`` gives it, reads its own shuffled batches, has its
own optimizer and clips its own gradients, so every copy is exactly the run that seed would
make alone. Only the bookkeeping is shared: one traced step moves every copy, so small
models, whose time goes into launching operations rather than arithmetic, cost far less
than separate runs (five seeds of lesson 03's recall model: about twice one ``model.fit``).
"""
import contextlib
import dataclasses
import logging
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

Metric = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
EVAL_BATCHES = 32  # evaluation keeps no gradients, so it reads this many training batches at once


def sparse_accuracy(y_true, logits):
    """Share of rows whose largest logit is the true class (labels as integer ids)."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predicted, tf.cast(y_true, tf.int32)), tf.float32))


@dataclasses.dataclass
class SeedRuns:
    """The trained copies of one experiment, one per seed, and their history.

    ``history[name]`` is an array ``[seeds, epochs run]``: ``loss`` and each metric averaged
    over the epoch's batches (as Keras reports them), and with validation data ``val_loss``
    and ``val_<metric>`` measured after each epoch. ``best_epoch`` (1-based) is each copy's
    epoch of lowest validation loss, whose weights it holds, when early stopping was asked for.
    """

    seeds: list[int]
    models: list[keras.Model]
    history: dict[str, np.ndarray]
    loss: Callable
    metrics: dict[str, Metric]
    batch_size: int
    forward: Callable = dataclasses.field(repr=False)  # every copy's outputs on one batch, compiled
    best_epoch: np.ndarray | None = None

    def predict(self, x) -> np.ndarray:
        """Every copy's outputs on ``x``: an array ``[seeds, n, ...]``."""
        return _predict(self.forward, x, self.batch_size).numpy()

    def evaluate(self, x, y) -> dict[str, np.ndarray]:
        """Loss and metrics of every copy on ``(x, y)``: ``{name: [seeds]}``."""
        return {name: value.numpy() for name, value in _scores(self.forward, self.loss, self.metrics,
                                                                x, y, self.batch_size).items()}


def fit_seeds(build: Callable[[], keras.Model], x, y, *, seeds: Sequence[int], loss: Callable,
              optimizer: Callable[[], keras.optimizers.Optimizer], epochs: int, batch_size: int,
              clip_norm: float | None = None, clip: Callable = tf.clip_by_global_norm,
              validation: tuple | None = None, metrics: dict[str, Metric] | None = None,
              patience: int | None = None) -> SeedRuns:
    """Train one copy of ``build()`` per seed, all in one compiled loop.

    build: makes a fresh, uncompiled model; it is called right after
        ``keras.utils.set_random_seed(seed)``, so each copy starts as that seed's run would.
    loss, metrics: ``fn(y_true, y_pred)`` returning the batch mean (a Keras loss object works).
    optimizer: makes a fresh optimizer; every copy gets its own.
    clip_norm, clip: each copy's gradients, as one list, go through ``clip(grads, clip_norm)``
        (anything with the signature of ``tf.clip_by_global_norm``) before its step.
    patience: stop once every copy has gone this many epochs without a lower validation loss,
        and give each copy back the weights of its best epoch (needs ``validation``).
    """
    if patience is not None and validation is None:
        raise ValueError("early stopping (patience) needs validation data")
    metrics = dict(metrics or {})
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    models, optimizers, orders = [], [], []
    for seed in seeds:
        keras.utils.set_random_seed(int(seed))
        model = build()
        model(x[:1])  # create the weights now, from this seed's generator
        models.append(model)
        optimizers.append(optimizer())
        orders.append(np.random.randint(2**31 - 1))  # this copy's shuffling, drawn from its seed
    for model, opt in zip(models, optimizers):
        opt.build(model.trainable_variables)
    shufflers = [np.random.default_rng(order) for order in orders]
    train_epoch = _epoch_function(models, optimizers, loss, metrics, clip, clip_norm, batch_size)
    forward = _forward(models, x)

    names = ["loss", *metrics] + ([f"val_{n}" for n in ["loss", *metrics]] if validation else [])
    history = {name: [] for name in names}
    best_loss = np.full(len(models), np.inf)
    best_epoch = np.zeros(len(models), dtype=int)
    best_weights = [model.get_weights() for model in models]
    for epoch in range(1, epochs + 1):
        order = np.stack([rng.permutation(int(x.shape[0])) for rng in shufflers])
        for name, value in zip(["loss", *metrics], train_epoch(x, y, tf.constant(order))):
            history[name].append(value.numpy())
        if validation:
            scores = _scores(forward, loss, metrics, *validation, batch_size)
            for name, value in scores.items():
                history[f"val_{name}"].append(value.numpy())
            improved = scores["loss"].numpy() < best_loss
            for i in np.flatnonzero(improved):
                best_loss[i], best_epoch[i] = scores["loss"].numpy()[i], epoch
                if patience is not None:
                    best_weights[i] = models[i].get_weights()
            if patience is not None and np.all(epoch - best_epoch >= patience):
                break
    if patience is not None:
        for model, weights in zip(models, best_weights):
            model.set_weights(weights)
    return SeedRuns(list(seeds), models, {name: np.reshape(np.transpose(v), (len(models), -1)) for name, v in history.items()},
                    loss, metrics, batch_size, forward, best_epoch if patience is not None else None)


def _epoch_function(models, optimizers, loss, metrics, clip, clip_norm, batch_size):
    """One compiled epoch for every copy: ``(x, y, order [copies, n]) -> mean loss and metrics``.

    It is traced afresh for each call of :func:`fit_seeds`, so it holds no stale constant.
    """

    @tf.function
    def train_epoch(x, y, order):
        n = tf.shape(order)[1]
        steps = (n + batch_size - 1) // batch_size
        totals = [tf.zeros([len(models)]) for _ in range(1 + len(metrics))]
        for step in tf.range(steps):
            rows = order[:, step * batch_size:(step + 1) * batch_size]
            results = []
            for i, (model, opt) in enumerate(zip(models, optimizers)):
                x_batch, y_batch = tf.gather(x, rows[i]), tf.gather(y, rows[i])
                with tf.GradientTape() as tape:
                    y_pred = model(x_batch, training=True)
                    batch_loss = loss(y_batch, y_pred)
                grads = tape.gradient(batch_loss, model.trainable_variables)
                if clip_norm is not None:
                    grads, _ = clip(grads, clip_norm)
                opt.apply(grads, model.trainable_variables)
                results.append([batch_loss] + [fn(y_batch, y_pred) for fn in metrics.values()])
            totals = [total + tf.cast(tf.stack(values), tf.float32)
                      for total, values in zip(totals, zip(*results))]
        return [total / tf.cast(steps, tf.float32) for total in totals]

    return train_epoch


def _forward(models, example):
    """One compiled function giving every copy's outputs on a batch: ``[copies, batch, ...]``.

    Traced once for batches of any size shaped like ``example``'s rows.
    """
    spec = tf.TensorSpec([None, *example.shape[1:]], example.dtype)
    return tf.function(lambda x: tf.stack([model(x, training=False) for model in models]),
                       input_signature=[spec])


def _predict(forward, x, batch_size):
    """Outputs of every copy on ``x``, read in chunks of many batches (no gradients are kept)."""
    x = tf.convert_to_tensor(x, dtype=forward.input_signature[0].dtype)
    chunk = EVAL_BATCHES * batch_size
    with _first_traces_expected():
        return tf.concat([forward(x[start:start + chunk]) for start in range(0, int(x.shape[0]), chunk)], axis=1)


class _RetracingWarning(logging.Filter):
    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _first_traces_expected():
    """Every fit makes and traces its own forward function once, by design. TensorFlow counts
    those first traces of one piece of code together and would warn of "retracing" after a
    few fits; the warning is held back here only, not for the learner's own functions."""
    quiet = _RetracingWarning()
    tf.get_logger().addFilter(quiet)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(quiet)


def _scores(forward, loss, metrics, x, y, batch_size):
    """Loss and metrics of every copy on the whole of ``(x, y)``: ``{name: [copies]}``."""
    y_pred = _predict(forward, x, batch_size)
    y = tf.convert_to_tensor(y)
    named = {"loss": loss, **metrics}
    return {name: tf.stack([tf.cast(fn(y, y_pred[i]), tf.float32) for i in range(y_pred.shape[0])])
            for name, fn in named.items()}
