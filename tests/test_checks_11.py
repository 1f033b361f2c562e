"""Lesson 11's wrong answers (run by tests/test_checks.py) and the causes its messages name."""
import functools

import keras
import numpy as np
import tensorflow as tf

from utils import checks

SEEDS = [0, 1, 2]


# padding_mask ----------------------------------------------------------------------------

def padding(ids, *, mistake=None):
    real = np.asarray(ids) != 0
    t = real.shape[1]
    mask = np.broadcast_to(real[:, None, :], (len(real), t, t))
    if mistake == "inverted":
        return ~mask
    if mistake == "causal":
        return mask & np.tril(np.ones((t, t), bool))
    if mistake == "queries":
        return np.swapaxes(mask, 1, 2)
    if mistake == "unbroadcast":
        return real[:, None, :]
    if mistake == "float":
        return mask.astype(np.float32)
    return mask


# EncoderLayer ----------------------------------------------------------------------------

class MutantEncoderLayer(keras.layers.Layer):
    """The lesson's encoder layer (sub-layers in keras_hub's order), with one mistake switched on."""

    def __init__(self, d_model, num_heads, ff_units, mistake=None, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim=d_model // num_heads)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5)
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-5)
        self.hidden = keras.layers.Dense(ff_units, activation="gelu")
        self.project = keras.layers.Dense(d_model)
        self.mistake = mistake

    def call(self, x, attention_mask=None):
        mask = attention_mask
        if self.mistake == "mask ignored":
            mask = None
        elif self.mistake == "mask inverted":
            mask = tf.logical_not(tf.cast(mask, tf.bool))
        elif self.mistake == "causal":
            mask = tf.logical_and(tf.cast(mask, tf.bool), tf.linalg.band_part(tf.ones_like(mask, tf.bool), -1, 0))
        if self.mistake == "pre-norm":
            h = self.attention_norm(x)
            x = x + self.attention(h, h, attention_mask=mask)
            return x + self.project(self.hidden(self.feed_forward_norm(x)))
        x = self.attention_norm(x + self.attention(x, x, attention_mask=mask))
        residual = 0 if self.mistake == "no second residual" else x
        return self.feed_forward_norm(residual + self.project(self.hidden(x)))


def encoder_layer(mistake):
    return functools.partial(MutantEncoderLayer, mistake=mistake)


# mask_tokens -----------------------------------------------------------------------------

def masking(ids, rate, mask_id, vocab_size, seed, *, mistake=None):
    rng = np.random.default_rng(None if mistake == "seed ignored" else seed)
    ids = np.asarray(ids)
    if mistake == "rate fixed at 0.15":
        rate = 0.15
    chosen = rng.random(ids.shape) < rate
    if mistake != "padding chosen":
        chosen &= ids != 0
    action = rng.random(ids.shape)
    mask_share, random_share = {"all masked": (1.0, 0.0), "10/80/10": (0.1, 0.8)}.get(mistake, (0.8, 0.1))
    random_ids = rng.integers(2 if mistake == "random ids from a narrow range" else 0,
                              4 if mistake == "random ids from a narrow range" else vocab_size, ids.shape)
    inputs = np.where(chosen & (action < mask_share), mask_id, ids)
    inputs = np.where(chosen & (action >= mask_share) & (action < mask_share + random_share), random_ids, inputs)
    labels = ids.copy() if mistake == "labels everywhere" else np.where(chosen, ids, -1)
    return inputs, labels


# masked_lm_loss --------------------------------------------------------------------------

def mlm_loss(labels, logits, *, average="chosen"):
    labels = tf.cast(labels, tf.int32)
    chosen = tf.cast(labels != -1, logits.dtype)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels, 0), logits)
    if average == "all":
        return tf.reduce_mean(ce)
    if average == "sum":
        return tf.reduce_sum(ce * chosen)
    if average == "over all positions":
        return tf.reduce_sum(ce * chosen) / tf.cast(tf.size(chosen), logits.dtype)
    if average == "per sequence":
        per_row = tf.reduce_sum(ce * chosen, -1) / tf.maximum(tf.reduce_sum(chosen, -1), 1.0)
        return tf.reduce_sum(per_row) / tf.reduce_sum(tf.cast(tf.reduce_sum(chosen, -1) > 0, logits.dtype))
    return tf.reduce_sum(ce * chosen) / tf.reduce_sum(chosen)


def mlm_loss_without_cast(labels, logits):
    """Right for int labels; fails on the float labels Keras's fit passes to a loss."""
    chosen = tf.cast(labels != -1, logits.dtype)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(labels, 0), logits)
    return tf.reduce_sum(ce * chosen) / tf.reduce_sum(chosen)


# classification_report -------------------------------------------------------------------

def report(y_true, y_pred, num_classes, *, mistake=None):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rows = []
    for c in range(num_classes):
        tp = np.sum((y_true == c) & (y_pred == c))
        predicted, actual = np.sum(y_pred == c), np.sum(y_true == c)
        precision, recall = (tp / max(predicted, 1), tp / max(actual, 1))
        if mistake == "precision and recall swapped":
            precision, recall = recall, precision
        f1 = (precision + recall) / 2 if mistake == "F1 as a plain mean" else \
            (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        rows.append([precision, recall, f1, actual])
    rows = np.array(rows, float)
    support = rows[:, 3]
    accuracy = np.mean(y_true == y_pred)
    macro = [accuracy] * 3 if mistake == "micro for macro" else list(rows[:, :3].mean(0))
    weighted = list((rows[:, :3] * support[:, None]).sum(0) / support.sum())
    if mistake == "weighted equals macro":
        weighted = macro
    return np.vstack([rows, macro + [support.sum()], weighted + [support.sum()]])


# span_f1 ---------------------------------------------------------------------------------

def spans(tags, *, typed=True, stray_i_starts=True):
    found, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, tag_kind = tag.partition("-")
        continues = prefix == "I" and kind == tag_kind and start is not None
        if start is not None and not continues:
            found.add((start, i, kind if typed else None))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues and stray_i_starts):
            start, kind = i, tag_kind
    return found


def span_scores(true_tags, pred_tags, *, mistake=None):
    if mistake == "token F1":
        true_sets = [{(i, t) for i, t in enumerate(s) if t != "O"} for s in true_tags]
        pred_sets = [{(i, t) for i, t in enumerate(s) if t != "O"} for s in pred_tags]
    else:
        options = {"type ignored": {"typed": False}, "stray I- ignored": {"stray_i_starts": False}}.get(mistake, {})
        true_sets = [spans(s, **options) for s in true_tags]
        pred_sets = [spans(s, **options) for s in pred_tags]
    correct = sum(len(t & p) for t, p in zip(true_sets, pred_sets))
    n_true, n_pred = sum(map(len, true_sets)), sum(map(len, pred_sets))
    precision, recall = correct / max(n_pred, 1), correct / max(n_true, 1)
    if mistake == "precision and recall swapped":
        precision, recall = recall, precision
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# SentenceClassifier ----------------------------------------------------------------------

class MutantClassifier(keras.Model):
    def __init__(self, encoder, num_classes, mistake=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.mistake = encoder, mistake
        self.head = keras.layers.Dense(num_classes)
        if mistake == "encoder frozen":
            self.encoder.trainable = False

    def call(self, ids):
        h = self.encoder(ids)
        real = keras.ops.cast(ids != 0, h.dtype)[:, :, None]
        if self.mistake == "padding in the mean":
            pooled = keras.ops.mean(h, axis=1)
        elif self.mistake == "first token":
            pooled = h[:, 0]
        else:
            pooled = keras.ops.sum(h * real, axis=1) / keras.ops.sum(real, axis=1)
        logits = self.head(pooled)
        return keras.ops.softmax(logits) if self.mistake == "softmax" else logits


def classifier(mistake):
    return functools.partial(MutantClassifier, mistake=mistake)


MUTANTS = {
    "11-padding_mask": {m: functools.partial(padding, mistake=m)
                        for m in ["inverted", "causal", "queries", "unbroadcast", "float"]},
    "11-encoder_layer": {m: encoder_layer(m)
                         for m in ["mask ignored", "mask inverted", "causal", "pre-norm", "no second residual"]},
    "11-mask_tokens": {m: functools.partial(masking, mistake=m)
                       for m in ["padding chosen", "all masked", "10/80/10", "labels everywhere", "seed ignored",
                                 "rate fixed at 0.15", "random ids from a narrow range"]},
    "11-masked_lm_loss": {
        **{m: functools.partial(mlm_loss, average=m) for m in ["all", "sum", "over all positions", "per sequence"]},
        "float labels not cast to int": mlm_loss_without_cast,
    },
    "11-classification_report": {m: functools.partial(report, mistake=m)
                                 for m in ["precision and recall swapped", "F1 as a plain mean", "micro for macro",
                                           "weighted equals macro"]},
    "11-span_f1": {m: functools.partial(span_scores, mistake=m)
                   for m in ["token F1", "type ignored", "stray I- ignored", "precision and recall swapped"]},
    "11-sentence_classifier": {m: classifier(m) for m in ["padding in the mean", "first token", "softmax",
                                                          "encoder frozen"]},
}


def test_correct_mutants_pass():
    """The mutants' shared code is right when no mistake is switched on."""
    for seed in SEEDS:
        for exercise, answer in [("11-padding_mask", padding), ("11-encoder_layer", MutantEncoderLayer),
                                 ("11-mask_tokens", masking), ("11-masked_lm_loss", mlm_loss),
                                 ("11-classification_report", report), ("11-span_f1", span_scores),
                                 ("11-sentence_classifier", MutantClassifier)]:
            result = checks.run(exercise, answer, seed=seed)
            assert result.status == "passed", (exercise, result.message)


def test_messages_name_the_likely_cause():
    def message(exercise, mutant):
        return checks.run(exercise, MUTANTS[exercise][mutant], seed=0).message

    assert "inverted" in message("11-padding_mask", "inverted")
    assert "causal" in message("11-padding_mask", "causal")
    assert "masks queries" in message("11-padding_mask", "queries")
    assert "not passed to the attention" in message("11-encoder_layer", "mask ignored")
    assert "pre-norm" in message("11-encoder_layer", "pre-norm")
    assert "causal" in message("11-encoder_layer", "causal")
    assert "chose padding" in message("11-mask_tokens", "padding chosen")
    assert "MaskedLMMaskGenerator" in message("11-mask_tokens", "all masked")
    assert "same seed" in message("11-mask_tokens", "seed ignored")
    assert "unchosen ones too" in message("11-masked_lm_loss", "all")
    assert "number of all positions" in message("11-masked_lm_loss", "over all positions")
    assert "micro average" in message("11-classification_report", "micro for macro")
    assert "swapped" in message("11-classification_report", "precision and recall swapped")
    assert "counts tokens" in message("11-span_f1", "token F1")
    assert "type is ignored" in message("11-span_f1", "type ignored")
    assert "includes the padding" in message("11-sentence_classifier", "padding in the mean")
    assert "logits" in message("11-sentence_classifier", "softmax")
    assert "trainable" in message("11-sentence_classifier", "encoder frozen")
