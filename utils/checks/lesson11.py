"""Checks for lesson 11, pre-training and fine-tuning a tiny BERT.

The padding mask, the masked-LM loss, the classification report and span F1 are compared
with brute-force NumPy definitions on inputs drawn here; the encoder layer with
``keras_hub.layers.TransformerEncoder`` carrying the same (random, non-zero) weights; the
masking with the statistics of ``keras_hub.layers.MaskedLMMaskGenerator`` over many draws;
the fine-tuning head with a masked mean and a Dense layer computed here. keras-hub takes
seconds to import, so only the two checks that need it import it.
"""
import keras
import numpy as np

from utils.checks import CheckFailed, built_once, call, expect_close, register, to_numpy, value_and_gradient

PAD = 0


def _padded_ids(rng, batch, length, vocab_size, min_length=1):
    """Random ids in 2…vocab_size−1 with a padded tail (id 0) of random length per row;
    one row is full and one has the shortest length."""
    ids = rng.integers(2, vocab_size, size=(batch, length)).astype(np.int32)
    lengths = rng.integers(min_length, length + 1, size=batch)
    lengths[0], lengths[-1] = length, min_length
    ids[np.arange(length)[None, :] >= lengths[:, None]] = PAD
    return ids


# ---------------------------------------------------------------------------------------
# padding_mask


@register("11-padding_mask")
def check_padding_mask(padding_mask, rng: np.random.Generator) -> str:
    for batch, length in [(3, 7), (1, 1), (1, 5), (int(rng.integers(2, 6)), int(rng.integers(8, 20)))]:
        ids = _padded_ids(rng, batch, length, 30)
        what = f"padding_mask(ids) for ids of shape {ids.shape}"
        got = to_numpy(call(padding_mask, ids, what=what), what)
        real = ids != PAD
        expected = np.broadcast_to(real[:, None, :], (batch, length, length))
        if got.shape != expected.shape:
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}: one [T, T] mask per "
                              "sequence, rows = queries, columns = keys (the shape of MultiHeadAttention's "
                              "attention_mask).")
        if got.dtype != bool:
            raise CheckFailed(f"{what} has dtype {got.dtype}; return booleans (True = may attend), e.g. from a "
                              "comparison such as ids != 0.")
        if np.array_equal(got, expected):
            continue
        causal = expected & np.tril(np.ones((length, length), bool))
        if np.array_equal(got, ~expected):
            cause = ("it is inverted: True must mark the real tokens a query may attend to, False the padding. "
                     "An inverted mask lets every query read only padding.")
        elif np.array_equal(got, causal):
            cause = ("it is causal: a bidirectional encoder lets every token attend to the tokens after it too; "
                     "only padding keys are hidden.")
        elif np.array_equal(got, np.swapaxes(expected, 1, 2)):
            cause = "it masks queries instead of keys: entry [b, i, j] depends on whether key j is padding."
        else:
            cause = "entry [b, i, j] must be True exactly when ids[b, j] is not padding (0)."
        raise CheckFailed(f"{what} is wrong: {cause}")
    return "True for every real key, False for padding keys, shape [batch, T, T], for batch 1 to 5 and T 1 to 19."


# ---------------------------------------------------------------------------------------
# EncoderLayer


def _keras_hub():
    import keras_hub  # seconds to import: only the checks that compare with it pay for it

    return keras_hub


@register("11-encoder_layer")
def check_encoder_layer(layer_class, rng: np.random.Generator) -> str:
    keras_hub = _keras_hub()
    for heads, d_model, ff_units, batch, length in [(2, 8, 16, 3, 6), (4, 16, 24, 2, 9), (1, 4, 8, 1, 1)]:
        def make():
            layer = keras_hub.layers.TransformerEncoder(intermediate_dim=ff_units, num_heads=heads,
                                                        activation="gelu", layer_norm_epsilon=1e-5)
            layer(np.zeros((1, 1, d_model), np.float32))
            return layer

        reference = built_once(make, "TransformerEncoder", heads, d_model, ff_units)
        x = rng.normal(size=(batch, length, d_model)).astype(np.float32)
        ids = _padded_ids(rng, batch, length, 30)
        real = ids != PAD
        weights = [(rng.normal(size=w.shape) * (0.5 if w.ndim > 1 else 0.3)
                    + (1.0 if "gamma" in w.path else 0.0)).astype(np.float32) for w in reference.weights]
        reference.set_weights(weights)
        expected = reference(x, padding_mask=real).numpy()

        made = f"EncoderLayer(d_model={d_model}, num_heads={heads}, ff_units={ff_units})"
        layer = call(lambda: layer_class(d_model, heads, ff_units), what=made)
        mask = np.broadcast_to(real[:, None, :], (batch, length, length))
        what = f"{made}(x {x.shape}, attention_mask=padding mask {mask.shape})"
        call(lambda: layer(x, attention_mask=mask), what=f"the first call of {what}")
        shapes = [tuple(w.shape) for w in call(lambda: layer.get_weights(), what=f"{made}.get_weights()")]
        if shapes != [w.shape for w in weights]:
            raise CheckFailed(f"after its first call, {made} has weights of shapes {shapes}; "
                              f"keras_hub.layers.TransformerEncoder has {[w.shape for w in weights]}. Keep the "
                              "sub-layers the constructor creates, in its order, and use each once.")
        call(lambda: layer.set_weights(weights), what=f"{made}.set_weights(keras_hub_layer.get_weights())")
        got = to_numpy(call(lambda: layer(x, attention_mask=mask), what=what), what)
        expect_close(got, expected, f"the output of {what}", rtol=1e-4, atol=1e-4,
                     reference="keras_hub.layers.TransformerEncoder with the same weights",
                     likely_causes=_encoder_mistakes(reference, x, real))
    return ("matches keras_hub.layers.TransformerEncoder with copied weights (post-norm, padding masks), "
            "1 to 4 heads, batch 1 and time 1.")


def _encoder_mistakes(reference, x, real) -> dict:
    """What the usual mistakes would output, computed with the reference's own sub-layers."""
    attention = reference._self_attention_layer
    norm1, norm2 = reference._self_attention_layer_norm, reference._feedforward_layer_norm
    hidden, output = reference._feedforward_intermediate_dense, reference._feedforward_output_dense
    length = x.shape[1]
    masks = {"padding": real[:, None, :], "none": None, "inverted": ~real[:, None, :],
             "causal": real[:, None, :] & np.tril(np.ones((length, length), bool))}

    def post_norm(mask, residual=True):
        h = norm1(x + attention(x, x, attention_mask=mask))
        return norm2((h if residual else 0) + output(hidden(h))).numpy()

    def pre_norm():
        h = x + attention(norm1(x), norm1(x), attention_mask=masks["padding"])
        return (h + output(hidden(norm2(h)))).numpy()

    return {  # functions: computed only when the answer is wrong
        "the padding mask is not passed to the attention: padding keys must get no weight.":
            lambda: post_norm(masks["none"]),
        "the mask reaches the attention inverted.": lambda: post_norm(masks["inverted"]),
        "the attention is causal; an encoder attends in both directions.": lambda: post_norm(masks["causal"]),
        "the LayerNormalization comes before each sub-layer (pre-norm); this encoder normalizes after adding "
        "the residual (post-norm), as lesson 08's block does.": pre_norm,
        "the feed-forward net's input is not added back (the second residual connection is missing).":
            lambda: post_norm(masks["padding"], residual=False),
    }


# ---------------------------------------------------------------------------------------
# mask_tokens

DRAWS = 6  # calls with different seeds; ≈ 25,000 non-padding tokens in all


def _masking_statistics(inputs, labels, ids, mask_id) -> dict[str, float]:
    chosen = labels != -1
    return {
        "share of non-padding tokens chosen": chosen.sum() / (ids != PAD).sum(),
        "share of chosen tokens replaced by the mask id": np.mean(inputs[chosen] == mask_id),
        "share of chosen tokens left unchanged": np.mean(inputs[chosen] == ids[chosen]),
        "share of chosen tokens replaced by another token": np.mean((inputs[chosen] != mask_id)
                                                                    & (inputs[chosen] != ids[chosen])),
    }


def _keras_hub_statistics(ids, rate, mask_id, vocab_size) -> dict[str, float]:
    generator = _keras_hub().layers.MaskedLMMaskGenerator(
        vocabulary_size=vocab_size, mask_selection_rate=rate, mask_token_id=mask_id,
        mask_selection_length=ids.shape[1], unselectable_token_ids=[PAD])
    all_inputs, all_labels = [], []
    for _ in range(DRAWS):
        out = generator(ids)
        positions, weights = np.asarray(out["mask_positions"]), np.asarray(out["mask_weights"]) > 0
        labels = np.full(ids.shape, -1)
        for row in range(len(ids)):
            labels[row, positions[row][weights[row]]] = ids[row, positions[row][weights[row]]]
        all_inputs.append(np.asarray(out["token_ids"]))
        all_labels.append(labels)
    return _masking_statistics(np.concatenate(all_inputs), np.concatenate(all_labels),
                               np.concatenate([ids] * DRAWS), mask_id)


@register("11-mask_tokens")
def check_mask_tokens(mask_tokens, rng: np.random.Generator) -> str:
    vocab_size, mask_id = int(rng.integers(40, 60)), 1
    ids = _padded_ids(rng, 300, 24, vocab_size, min_length=4)
    for rate in [0.15, 0.4]:
        all_inputs, all_labels = [], []
        for draw in range(DRAWS):
            seed = int(rng.integers(1 << 30))
            what = f"mask_tokens(ids {ids.shape}, rate={rate}, mask_id={mask_id}, vocab_size={vocab_size}, seed={seed})"
            result = call(mask_tokens, ids, rate, mask_id, vocab_size, seed, what=what)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise CheckFailed(f"{what} returned a {type(result).__name__}; expected a pair (inputs, labels).")
            inputs, labels = (to_numpy(r, f"{what}[{i}]") for i, r in enumerate(result))
            for name, array in [("inputs", inputs), ("labels", labels)]:
                if array.shape != ids.shape:
                    raise CheckFailed(f"the {name} of {what} have shape {array.shape}, expected {ids.shape}.")
            chosen = labels != -1
            if (chosen & (ids == PAD)).any():
                raise CheckFailed(f"{what} chose padding positions: only real tokens (id ≠ 0) may be chosen.")
            if not np.array_equal(labels[chosen], ids[chosen]):
                raise CheckFailed(f"{what}: at chosen positions the labels must be the original ids (what the "
                                  "model has to recover); elsewhere −1.")
            if not np.array_equal(inputs[~chosen], ids[~chosen]):
                raise CheckFailed(f"{what} changed tokens that were not chosen (label −1): only chosen positions "
                                  "may change.")
            if ((inputs < 0) | (inputs >= vocab_size)).any():
                raise CheckFailed(f"{what} put ids outside 0…{vocab_size - 1} into the inputs.")
            again = call(mask_tokens, ids, rate, mask_id, vocab_size, seed, what=what)
            if not all(np.array_equal(to_numpy(a, what), b) for a, b in zip(again, (inputs, labels))):
                raise CheckFailed(f"{what} gave a different result when called again with the same seed: draw "
                                  "every random number from the seed (e.g. np.random.default_rng(seed)).")
            all_inputs.append(inputs)
            all_labels.append(labels)
        if all(np.array_equal(all_labels[0], labels) for labels in all_labels[1:]):
            raise CheckFailed("mask_tokens chose the same positions for every seed: use the seed argument.")
        got = _masking_statistics(np.concatenate(all_inputs), np.concatenate(all_labels),
                                  np.concatenate([ids] * DRAWS), mask_id)
        expected = _keras_hub_statistics(ids, rate, mask_id, vocab_size)
        for name, value in got.items():
            if abs(value - expected[name]) > 0.04:
                raise CheckFailed(
                    f"over {DRAWS} calls with rate={rate}, the {name} is {value:.3f}; "
                    f"keras_hub.layers.MaskedLMMaskGenerator gives {expected[name]:.3f} on the same ids. "
                    f"Choose each non-padding token with probability rate; of the chosen, 80% become mask_id, "
                    f"10% a random id in 0…vocab_size−1, 10% stay as they are.")
        inputs, chosen = np.concatenate(all_inputs), np.concatenate(all_labels) != -1
        replaced = inputs[chosen & (inputs != mask_id) & (inputs != np.concatenate([ids] * DRAWS))]
        if np.mean(replaced >= vocab_size // 2) < 0.3:
            raise CheckFailed("the random replacements are not spread over the vocabulary: draw them uniformly "
                              "from 0…vocab_size−1.")
    return (f"over {DRAWS} seeds at rates 0.15 and 0.4 the chosen share and the 80/10/10 split match "
            "keras_hub.layers.MaskedLMMaskGenerator; padding never chosen; labels only where chosen; repeatable.")


# ---------------------------------------------------------------------------------------
# masked_lm_loss


def _masked_lm_loss(labels, logits, *, average="chosen") -> float:
    """Mean cross-entropy over chosen positions (label ≠ −1), in float64."""
    logits = np.asarray(logits, np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    chosen = labels != -1
    ce = -np.take_along_axis(log_probs, np.maximum(labels, 0)[..., None], -1)[..., 0]
    if average == "all":
        return float(ce.mean())
    if average == "chosen over all":
        return float((ce * chosen).sum() / chosen.size)
    return float((ce * chosen).sum() / chosen.sum())


@register("11-masked_lm_loss")
def check_masked_lm_loss(masked_lm_loss, rng: np.random.Generator) -> str:
    for batch, length, vocab, dtype in [(4, 10, 12, np.int32), (2, 7, 30, np.float32), (1, 1, 5, np.int32),
                                        (int(rng.integers(2, 6)), int(rng.integers(5, 20)), 50, np.int32)]:
        labels = rng.integers(0, vocab, size=(batch, length))
        labels[rng.random((batch, length)) < 0.7] = -1
        labels.flat[rng.integers(labels.size)] = int(rng.integers(vocab))  # at least one chosen position
        logits = (2 * rng.normal(size=(batch, length, vocab))).astype(np.float32)
        what = (f"masked_lm_loss(labels {labels.shape} {np.dtype(dtype).name}, logits {logits.shape}) "
                f"with {int((labels != -1).sum())} chosen positions")
        value, gradient = value_and_gradient(masked_lm_loss, labels.astype(dtype), logits, what=what, wrt=1)
        got = to_numpy(value, what)
        if got.shape != ():
            raise CheckFailed(f"{what} has shape {got.shape}; return one number (a scalar tensor), the mean "
                              "over the chosen positions.")
        expected = _masked_lm_loss(labels, logits)
        expect_close(got, np.float32(expected), what, rtol=1e-4, atol=1e-5,
                     reference="the mean cross-entropy over positions with label ≠ −1",
                     likely_causes={
                         "every position is averaged, unchosen ones too; only chosen positions (label ≠ −1) "
                         "count.": _masked_lm_loss(labels, logits, average="all"),
                         "the sum over chosen positions is divided by the number of all positions; divide by "
                         "the number of chosen ones.": _masked_lm_loss(labels, logits, average="chosen over all"),
                     })
        if gradient is None:
            raise CheckFailed(f"{what}: no gradient reaches the logits; compute the loss with TensorFlow ops.")
        gradient = to_numpy(gradient, f"the gradient of {what}")
        if np.abs(gradient[labels == -1]).max(initial=0) > 1e-6:
            raise CheckFailed(f"{what}: the loss changes with the logits of unchosen positions; they must not count.")
    return "the mean cross-entropy over chosen positions only, for int and float labels; no gradient elsewhere."


# ---------------------------------------------------------------------------------------
# classification_report and span_f1


def _report(y_true, y_pred, num_classes) -> np.ndarray:
    """Per-class precision, recall, F1, support by counting, then macro and weighted averages."""
    rows = []
    for c in range(num_classes):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        predicted = sum(1 for p in y_pred if p == c)
        actual = sum(1 for t in y_true if t == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append([precision, recall, f1, actual])
    rows = np.array(rows, np.float64)
    support = rows[:, 3]
    macro = list(rows[:, :3].mean(axis=0)) + [support.sum()]
    weighted = list((rows[:, :3] * support[:, None]).sum(axis=0) / support.sum()) + [support.sum()]
    return np.vstack([rows, macro, weighted])


@register("11-classification_report")
def check_classification_report(classification_report, rng: np.random.Generator) -> str:
    for n, classes in [(40, 3), (200, 5), (6, 4), (int(rng.integers(20, 100)), int(rng.integers(2, 7)))]:
        y_true = rng.choice(classes, size=n, p=np.linspace(1, 3, classes) / np.linspace(1, 3, classes).sum())
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, classes, n))
        if n == 6:  # a class never predicted: its precision is 0 by convention, not NaN
            y_pred[y_pred == classes - 1] = 0
        what = f"classification_report(y_true, y_pred, num_classes={classes}) for {n} examples"
        got = to_numpy(call(classification_report, y_true, y_pred, classes, what=what), what)
        expected = _report(y_true, y_pred, classes)
        if got.shape != expected.shape:
            raise CheckFailed(f"{what} has shape {got.shape}, expected {expected.shape}: one row per class, then "
                              "the macro and the weighted average; columns precision, recall, F1, support.")
        per_class = expected[:classes]
        micro = np.mean(np.asarray(y_true) == np.asarray(y_pred))
        expect_close(got[:classes], per_class, f"the per-class rows of {what}", rtol=1e-6, atol=1e-6,
                     reference="counting", likely_causes={
                         "precision and recall are swapped: precision divides by how often the class was "
                         "predicted, recall by how often it is true.": per_class[:, [1, 0, 2, 3]],
                     })
        expect_close(got[classes], expected[classes], f"the macro-average row of {what}", rtol=1e-6, atol=1e-6,
                     reference="the unweighted mean of the per-class rows", likely_causes={
                         "this is the micro average (pooled counts, equal to accuracy here); the macro average "
                         "is the plain mean of the per-class scores.": [micro, micro, micro, n],
                         "this is the support-weighted average; the macro average weights every class "
                         "equally.": expected[classes + 1],
                     })
        expect_close(got[classes + 1], expected[classes + 1], f"the weighted-average row of {what}", rtol=1e-6,
                     atol=1e-6, reference="the mean of the per-class rows weighted by support", likely_causes={
                         "this is the macro (unweighted) average; weight each class by its support.":
                             expected[classes],
                     })
    return "per-class precision, recall, F1 and support, macro and weighted averages, agree with counting."


def _spans(tags) -> set:
    """CoNLL chunks of one tag sequence: (start, end, type), a chunk starting at B-X or at an
    I-X that does not continue a chunk of type X."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, tag_kind = tag.partition("-")
        continues = prefix == "I" and kind == tag_kind
        if start is not None and not continues:
            spans.add((start, i, kind))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues):
            start, kind = i, tag_kind
    return spans


def _f1_from_sets(true_sets, pred_sets):
    correct = sum(len(t & p) for t, p in zip(true_sets, pred_sets))
    n_true, n_pred = sum(map(len, true_sets)), sum(map(len, pred_sets))
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_true if n_true else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def _random_tags(rng, length, kinds=("PER", "LOC")):
    tags = []
    for _ in range(length):
        r = rng.random()
        kind = kinds[rng.integers(len(kinds))]
        tags.append("O" if r < 0.4 else (f"B-{kind}" if r < 0.7 else f"I-{kind}"))
    return tags


def _corrupt(rng, tags):
    """A prediction: the true tags with some changed (boundaries, types, stray I- tags)."""
    pred = list(tags)
    for i in range(len(pred)):
        if rng.random() < 0.3:
            pred[i] = _random_tags(rng, 1)[0]
    return pred


@register("11-span_f1")
def check_span_f1(span_f1, rng: np.random.Generator) -> str:
    cases = [("a B-PER I-PER span predicted as B-PER B-PER", [["B-PER", "I-PER", "O"]], [["B-PER", "B-PER", "O"]]),
             ("an I-LOC after O starts a span", [["O", "I-LOC", "I-LOC", "O"]], [["O", "B-LOC", "I-LOC", "O"]]),
             ("the right words with the wrong type", [["B-PER", "I-PER"]], [["B-LOC", "I-LOC"]]),
             ("an I- tag of another type starts a new span", [["B-PER", "I-LOC", "O"]], [["B-PER", "B-LOC", "O"]])]
    for n in [5, 30]:
        true = [_random_tags(rng, int(rng.integers(1, 12))) for _ in range(n)]
        cases.append((f"{n} random sentences", true, [_corrupt(rng, t) for t in true]))
    for name, true, pred in cases:
        what = f"span_f1(true_tags, pred_tags) ({name})"
        result = call(span_f1, true, pred, what=what)
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise CheckFailed(f"{what} returned a {type(result).__name__}; expected (precision, recall, f1).")
        got = np.array([float(to_numpy(r, what)) for r in result])
        true_sets = [_spans(t) for t in true]
        expected = np.array(_f1_from_sets(true_sets, [_spans(p) for p in pred]))
        tokens = _f1_from_sets([{(i, t) for i, t in enumerate(s) if t != "O"} for s in true],
                               [{(i, t) for i, t in enumerate(s) if t != "O"} for s in pred])
        untyped = _f1_from_sets([{s[:2] for s in spans} for spans in true_sets],
                                [{s[:2] for s in _spans(p)} for p in pred])
        expect_close(got, expected, what, rtol=1e-6, atol=1e-6, reference="counting exact (start, end, type) spans",
                     likely_causes={
                         "this counts tokens, not spans: a span counts only when its start, end and type all "
                         "match.": tokens,
                         "the type is ignored: a span with the right words but the wrong type is wrong.": untyped,
                     })
    return "precision, recall and F1 over exact typed spans (CoNLL rules for stray I- tags) agree with counting."


# ---------------------------------------------------------------------------------------
# SentenceClassifier


class _ToyEncoder(keras.layers.Layer):
    """An encoder stand-in: a fixed embedding plus a position-dependent shift, so that pooling
    the wrong positions gives a different answer. Its weights come from a fixed seed, so the
    grader's copy and the grading worker's copy of it are the same encoder."""

    def __init__(self, vocab_size, d_model, **kwargs):
        super().__init__(**kwargs)
        table = np.random.default_rng(d_model).normal(size=(vocab_size, d_model)).astype(np.float32)
        self.embedding = keras.layers.Embedding(vocab_size, d_model,
                                                embeddings_initializer=keras.initializers.Constant(table))

    def call(self, ids):
        positions = keras.ops.cast(keras.ops.arange(keras.ops.shape(ids)[1]), "float32")
        return self.embedding(ids) + 0.3 * positions[None, :, None]


def _toy_encoder(d_model: int) -> _ToyEncoder:
    """The module-level encoder for ``d_model``, named so that the grader can hand it to a
    student's class in the worker by its module and name instead of sending the object."""
    name = f"_TOY_ENCODER_{d_model}"
    if name not in globals():
        encoder = _ToyEncoder(TOY_VOCABULARY, d_model)
        encoder.__qualname__ = name
        globals()[name] = encoder
    globals()[name].trainable = True  # an answer that froze it must not fail the next one
    return globals()[name]


TOY_VOCABULARY = 40


def __getattr__(name: str):
    """Let the grading worker find a toy encoder by its name (module ``__getattr__``, PEP 562):
    made on first use, so importing the checks creates no layer."""
    prefix = "_TOY_ENCODER_"
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return _toy_encoder(int(name[len(prefix):]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@register("11-sentence_classifier")
def check_sentence_classifier(model_class, rng: np.random.Generator) -> str:
    for batch, length, d_model, classes in [(4, 9, 8, 3), (1, 1, 4, 2), (int(rng.integers(2, 6)), 12, 6, 5)]:
        encoder = _toy_encoder(d_model)
        ids = _padded_ids(rng, batch, length, TOY_VOCABULARY)
        made = f"SentenceClassifier(encoder, num_classes={classes})"
        model = call(lambda: model_class(encoder, classes), what=made)
        what = f"{made}(ids {ids.shape})"
        got = to_numpy(call(model, ids, what=what), what)
        head_weights = call(lambda: model.head.get_weights(), what=f"{made}.head.get_weights()")
        if len(head_weights) != 2 or np.shape(head_weights[0]) != (d_model, classes):
            raise CheckFailed(f"{made} has no Dense layer named `head` with {classes} units; create it in the "
                              "constructor, a keras.layers.Dense(num_classes) stored as self.head.")
        kernel, bias = (np.asarray(w) for w in head_weights)
        features = np.asarray(encoder(ids))
        real = (ids != PAD)[:, :, None]
        pooled = (features * real).sum(1) / real.sum(1)
        expected = pooled @ kernel + bias
        logits_all = features.mean(1) @ kernel + bias
        expect_close(got, expected, what, rtol=1e-4, atol=1e-5,
                     reference="head(mean of the encoder's outputs over non-padding positions)",
                     likely_causes={
                         "the mean includes the padding positions; average over real tokens only.": logits_all,
                         "this pools the first position only; average over all real tokens.":
                             features[:, 0] @ kernel + bias,
                         "these are probabilities; return the logits (no softmax), as the loss takes "
                         "from_logits=True.": keras.ops.softmax(expected).numpy(),
                     })
        trainable = call(lambda: model.trainable_weights, what=f"{made}.trainable_weights")
        if len(trainable) != len(encoder.weights) + 2:
            raise CheckFailed(f"{made}: the encoder's weights are not among the model's trainable weights; "
                              "fine-tuning trains the encoder too (do not freeze it).")
    return "logits = head(mean of the encoder's outputs over real tokens), encoder trainable, batch 1 and time 1."
