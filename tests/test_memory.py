"""utils.memory: lesson 10's generated tasks and its multi-seed trainer."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import utils  # noqa: F401  (imports TensorFlow quietly)
from utils import memory


def test_needle_streams_put_one_needle_at_each_distance():
    distances = np.array([1, 5, 47, 95, memory.LENGTH - 1])
    tokens, needles = memory.needle_streams(len(distances), distances, seed=0)
    assert tokens.shape == (5, memory.LENGTH) and tokens.dtype == np.int32
    assert (tokens[:, -1] == memory.QUERY).all()
    for row, distance, needle in zip(tokens, distances, needles):
        is_needle = row < memory.NEEDLES
        assert is_needle.sum() == 1 and row[memory.LENGTH - 1 - distance] == needle
    assert tokens.max() < memory.NEEDLE_VOCAB
    with pytest.raises(ValueError):
        memory.needle_streams(1, np.array([memory.LENGTH]))


def test_recall_documents_answer_each_question_with_its_earlier_fact():
    docs = memory.recall_documents(64, seed=0)
    keys, values, targets, back = (docs[k] for k in ("keys", "values", "targets", "back"))
    assert keys.shape == (64, memory.LENGTH)
    assert ((back >= 0) == (values == memory.BLANK)).all()
    assert (back[:, :memory.SEGMENT] == -1).all()  # the first segment holds only facts
    per_segment = (back >= 0).reshape(64, memory.SEGMENTS, memory.SEGMENT).sum(axis=2)
    assert (per_segment[:, 1:] == memory.QUESTIONS).all()
    for d in range(64):
        stated = {}
        for p in range(memory.LENGTH):
            if back[d, p] < 0:
                assert keys[d, p] not in stated  # each key is stated once per document
                stated[keys[d, p]] = (values[d, p], p // memory.SEGMENT)
            else:
                value, segment = stated[keys[d, p]]
                assert targets[d, p] == value and back[d, p] == p // memory.SEGMENT - segment
    assert (back >= 2).sum() > 0.2 * (back >= 0).sum()  # far questions are common


def test_recall_documents_near_share_zero_asks_anything_earlier():
    near_only = memory.recall_documents(64, seed=0, near_share=1.0)["back"]
    assert set(np.unique(near_only[near_only >= 0])) <= {0, 1}


class Tiny(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        logits = self.dense(x)
        self.add_loss(1e-3 * tf.reduce_sum(self.dense.kernel ** 2))  # an auxiliary loss is added in
        return logits


def test_seed_trainer_repeats_a_seed_and_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    trainer = memory.SeedTrainer(Tiny, x, y, batch=16, chunk=4, learning_rate=0.05)
    first = [w.copy() for w in trainer.train(0).get_weights()]
    accuracy = np.mean(np.argmax(trainer.model(x), axis=-1) == y)
    other = trainer.train(1).get_weights()
    again = trainer.train(0).get_weights()
    assert accuracy > 0.9
    assert all(np.allclose(a, b) for a, b in zip(first, again))
    assert not all(np.allclose(a, b) for a, b in zip(first, other))
