"""Lesson 10's data and training loop: memories that reach beyond the attention window.

Two generated tasks, both streams of ``segments`` segments read one segment at a time:

- :func:`needle_streams`: one "needle" token at a chosen distance before the last token; the
  model must name it. It measures how far back a memory reaches at a fixed number of slots.
- :func:`recall_documents`: facts "key → value" stated once each, and questions "key → ?"
  about facts stated earlier in the same document, near (this or the previous segment) or
  far. It measures whether a memory can find an old fact again.

:class:`SeedTrainer` trains one model on several seeds while tracing and compiling its
training step only once: each seed starts from the weights a fresh model gets under that
seed, and from a reset optimizer, so the runs differ only in their initial weights.
"""
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

import utils

SEGMENT = 16          # tokens per segment
SEGMENTS = 8          # segments per stream
LENGTH = SEGMENT * SEGMENTS

NEEDLES = 8           # needle tokens 0..7: the classes to name; guessing scores 1/8
FILLERS = 16          # filler tokens 8..23
QUERY = NEEDLES + FILLERS      # the last token of every needle stream
NEEDLE_VOCAB = QUERY + 1

KEYS = 128            # key tokens of the recall task (each stated at most once per document)
VALUES = 16           # value tokens 0..15; guessing scores 1/16
BLANK = VALUES        # the value slot of a question
QUESTIONS = 4         # questions per segment, from the second segment on


def needle_streams(n: int, distances: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Streams of ``LENGTH`` filler tokens with one needle ``distances[i]`` steps before the
    last token, which is ``QUERY``. Returns tokens ``[n, LENGTH]`` and the needles ``[n]`` (int32).

    Fillers are drawn at random, so nothing but the needle itself tells the answer.
    """
    distances = np.asarray(distances)
    if distances.shape != (n,) or distances.min() < 1 or distances.max() > LENGTH - 1:
        raise ValueError(f"need {n} distances between 1 and {LENGTH - 1}")
    rng = np.random.default_rng(seed)
    tokens = rng.integers(NEEDLES, NEEDLES + FILLERS, size=(n, LENGTH))
    needles = rng.integers(0, NEEDLES, size=n)
    tokens[np.arange(n), LENGTH - 1 - distances] = needles
    tokens[:, -1] = QUERY
    return tokens.astype(np.int32), needles.astype(np.int32)


def recall_documents(n: int, seed: int = 0, near_share: float = 0.5) -> dict[str, np.ndarray]:
    """Documents of ``LENGTH`` tokens, each a fact (key, value) or a question (key, BLANK).

    Every document draws its own value for each key and states each key at most once. The
    first segment holds only facts; each later segment has ``QUESTIONS`` questions at random
    slots (not its first two). A question asks about a key stated earlier in the document:
    with probability ``near_share`` one from this or the previous segment, otherwise any
    earlier one. Returns int32 arrays ``[n, LENGTH]``: ``keys``, ``values`` (BLANK at
    questions), ``targets`` (the value of the token's key) and ``back`` (for a question, how
    many segments back its fact was stated; -1 for a fact).
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    order = np.argsort(rng.random((n, KEYS)), axis=1)           # the order keys get stated in
    answer = rng.integers(0, VALUES, size=(n, KEYS))
    slots = np.argsort(rng.random((n, SEGMENTS, SEGMENT - 2)), axis=2)[:, :, :QUESTIONS] + 2
    question = np.zeros((n, SEGMENTS, SEGMENT), bool)
    question[rows[:, None, None], np.arange(SEGMENTS)[None, :, None], slots] = True
    question[:, 0] = False
    question = question.reshape(n, LENGTH)

    keys = np.zeros((n, LENGTH), np.int64)
    back = np.full((n, LENGTH), -1, np.int64)
    stated_in = np.full((n, KEYS), -1)                            # segment of each key's fact
    facts = np.zeros(n, np.int64)
    for p in range(LENGTH):
        segment = p // SEGMENT
        stated = stated_in >= 0
        near = stated_in >= segment - 1
        pool = np.where((rng.random(n) < near_share)[:, None] & near.any(1, keepdims=True), near, stated)
        asked = np.argmax(np.where(pool, rng.random((n, KEYS)), -1.0), axis=1)
        new = order[rows, np.minimum(facts, KEYS - 1)]
        is_question = question[:, p]
        keys[:, p] = np.where(is_question, asked, new)
        back[:, p] = np.where(is_question, segment - stated_in[rows, asked], -1)
        stated_in[rows[~is_question], new[~is_question]] = segment
        facts += ~is_question
    targets = answer[rows[:, None], keys]
    values = np.where(question, BLANK, targets)
    return {name: array.astype(np.int32) for name, array in
            [("keys", keys), ("values", values), ("targets", targets), ("back", back)]}


class SeedTrainer:
    """Train a model on several seeds with one compiled training step.

    ``make_model()`` builds an untrained model; ``inputs`` is an array or a tuple of arrays
    whose first axis runs over examples, ``targets`` the matching labels, ``weights`` optional
    per-label weights (e.g. 1 where a loss counts). The model returns logits; any losses it
    adds with ``add_loss`` (an auxiliary loss) are added to the cross-entropy. Each call of
    :meth:`train` runs ``len(targets) // batch`` Adam steps, ``chunk`` of them per compiled
    call (like Keras's ``steps_per_execution``), on the same batches in the same order.
    """

    def __init__(self, make_model: Callable[[], keras.Model], inputs, targets: np.ndarray,
                 weights: np.ndarray | None = None, batch: int = 32, chunk: int = 25,
                 learning_rate: float = 3e-3):
        self.make_model = make_model
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        weights = np.ones(targets.shape, np.float32) if weights is None else weights.astype(np.float32)
        steps = (len(targets) // (batch * chunk)) * chunk
        if steps == 0:
            raise ValueError(f"need at least batch × chunk = {batch * chunk} examples")
        shape = lambda a: a[:steps * batch].reshape(steps // chunk, chunk, batch, *a.shape[1:])  # noqa: E731
        self.batches = [shape(a) for a in (*inputs, targets, weights)]
        self.model = make_model()
        self.model(*[tf.constant(a[:2]) for a in inputs])  # create the weights
        self.optimizer = keras.optimizers.Adam(learning_rate, clipnorm=1.0)
        self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._steps = tf.function(self._run_chunk, jit_compile=True)

    def _run_chunk(self, *chunk):
        *inputs, targets, weights = chunk
        for i in tf.range(tf.shape(targets)[0]):
            with tf.GradientTape() as tape:
                logits = self.model(*[a[i] for a in inputs], training=True)
                loss = self.loss_fn(targets[i], logits, sample_weight=weights[i])
                loss += sum(self.model.losses)
            variables = self.model.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def train(self, seed: int) -> keras.Model:
        """Start from a fresh model's weights under ``seed`` and train; returns the model."""
        utils.set_seed(seed)
        fresh = self.make_model()
        fresh(*[tf.constant(a[0, 0, :2]) for a in self.batches[:-2]])
        self.model.set_weights(fresh.get_weights())
        for variable in self.optimizer.variables:
            if "learning_rate" not in variable.path:
                variable.assign(tf.zeros_like(variable))
        for c in range(len(self.batches[0])):
            self._steps(*[tf.constant(a[c]) for a in self.batches])
        return self.model
