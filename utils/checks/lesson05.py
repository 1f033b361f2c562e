"""Checks for lesson 05, sequence models in Keras.

The tokenizer is compared with a brute-force pipeline written with Python's unicodedata on
messy sentences and must survive a round trip; WordPiece with tensorflow-text's
WordpieceTokenizer on random vocabularies; the vocabulary with a brute-force count and a round trip
through StringLookup; perplexity with the exponential of Keras's sparse categorical
cross-entropy; temperature sampling statistically, against softmax(logits / T); and the
fixed autoencoder by the shapes it builds and by information flowing through it.
"""
import collections
import unicodedata

import keras
import numpy as np
import tensorflow as tf

from utils import text
from utils.checks import CheckFailed, NotAttempted, call, expect_close, register, softmax, to_numpy

# Pieces of messy text: capitals, accents composed and decomposed, ß, a ligature, digits, punctuation.
WORDS = ["The", "dog", "DOGS", "café", "Café", "naïve", "Straße", "ﬁne", "runs", "Über", "élan", "42", "x", "3.5",
         "(it)", "a+b"]
PUNCTUATION = [".", ",", "!", "?", ";", "—"]
SPACES = [" ", " ", " ", "  ", "\t"]


def _messy_sentence(rng: np.random.Generator) -> str:
    """A random sentence in which every trap of normalization and tokenization shows up."""
    parts = []
    for _ in range(rng.integers(1, 9)):
        word = WORDS[rng.integers(len(WORDS))]
        if rng.random() < 0.5:
            word = unicodedata.normalize("NFD", word)
        if rng.random() < 0.3:
            word += PUNCTUATION[rng.integers(len(PUNCTUATION))]
        parts += [word, SPACES[rng.integers(len(SPACES))]]
    return "".join(parts).strip() if rng.random() < 0.8 else "".join(parts)


def _rows(value, what: str) -> list[list[bytes]]:
    """A RaggedTensor of strings as lists of bytes; anything else is refused clearly."""
    if value is None:
        raise CheckFailed(f"{what} returned None: is a `return` statement missing?")
    if isinstance(value, tf.RaggedTensor):
        return value.to_list()
    if isinstance(value, (tf.Tensor, np.ndarray)):
        raise CheckFailed(
            f"{what} returned a dense {type(value).__name__} of shape {tuple(value.shape)}; return the "
            "tf.RaggedTensor the tokenizer gives (rows of different lengths), padding comes later."
        )
    raise CheckFailed(f"{what} returned a {type(value).__name__}; expected a tf.RaggedTensor of strings.")


def _reference_tokens(sentence: str) -> list[bytes]:
    """Brute force, with Python's unicodedata: NFKC case folding, then split at white space
    and around every punctuation mark (category P*) or symbol (S*), keeping each mark."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", sentence).casefold())
    tokens, word = [], ""
    for char in folded:
        if char.isspace() or unicodedata.category(char)[0] in "PS":
            tokens += [word] if word else []
            tokens += [] if char.isspace() else [char]
            word = ""
        else:
            word += char
    tokens += [word] if word else []
    return [token.encode("utf-8") for token in tokens]


def _tokenizer_mistakes(texts: tf.Tensor) -> dict[str, list]:
    """What common wrong pipelines produce, to name the likely cause of a mismatch."""
    import tensorflow_text as tf_text

    def split(strings):
        return tf_text.regex_split(strings, text.SPLIT_PATTERN, text.KEEP_PATTERN).to_list()

    nfkc = tf_text.normalize_utf8(texts, "NFKC")
    folded = tf_text.case_fold_utf8(texts)
    lowered = tf.strings.lower(texts, encoding="utf-8")
    return {
        "case is not folded: apply tf_text.case_fold_utf8.": split(nfkc),
        "lowercasing is not case folding (\"ß\" folds to \"ss\", \"ﬁ\" to \"fi\"): use tf_text.case_fold_utf8.":
            split(tf_text.normalize_utf8(lowered, "NFKC")),
        "the text is not normalized: composed and decomposed accents stay different; normalize to NFKC.":
            split(lowered),
        "NFD decomposes accents; the course's pipeline uses NFKC (composed).":
            split(tf_text.normalize_utf8(folded, "NFD")),
        "UnicodeScriptTokenizer puts digits and punctuation in the same script (Common), so \"42,\" "
        "stays one token: split around every punctuation mark instead (tf_text.regex_split).":
            tf_text.UnicodeScriptTokenizer().tokenize(tf_text.normalize_utf8(folded, "NFKC")).to_list(),
        "punctuation stays glued to words: split around every punctuation mark, not only at whitespace.":
            tf_text.WhitespaceTokenizer().tokenize(folded).to_list(),
        "those are characters; this exercise wants words and punctuation.":
            tf.strings.unicode_split(folded, "UTF-8").to_list(),
    }


def _show(tokens: list[bytes]) -> str:
    return str([t.decode("utf-8", "replace") for t in tokens])


@register("05-tokenize")
def check_tokenize(tokenize, rng: np.random.Generator) -> str:
    batches = [[_messy_sentence(rng) for _ in range(size)] for size in (1, 3, 8)]
    batches.append(["", "   ", "The naïve dog, near the cafés, runs.", "dogs, 42; run..."])
    batches.append([unicodedata.normalize("NFD", "Straße ﬁne Café.")])
    for batch in batches:
        texts = tf.constant(batch)
        what = f"tokenize(texts) for a batch of {len(batch)}"
        got = _rows(call(tokenize, texts, what=what), what)
        expected = [_reference_tokens(sentence) for sentence in batch]
        if len(got) != len(expected):
            raise CheckFailed(f"{what} returned {len(got)} rows; expected one row of tokens per text ({len(expected)}).")
        for row, (mine, reference) in enumerate(zip(got, expected)):
            if mine != reference:
                message = (f"{what}: for text {batch[row]!r} you returned {_show(mine)}, "
                           f"expected {_show(reference)}.")
                for cause, output in _tokenizer_mistakes(texts).items():
                    if output[row] == mine:
                        message += f" Likely cause: {cause}"
                        break
                raise CheckFailed(message)
        # round trip: the tokens, joined with spaces and tokenized again, come back unchanged
        rejoined = tf.constant([b" ".join(row) for row in got])
        again = _rows(call(tokenize, rejoined, what="tokenize(your tokens joined by spaces)"),
                      "tokenize(your tokens joined by spaces)")
        if again != got:
            raise CheckFailed("tokenizing your own tokens joined by spaces changed them: the pipeline is not stable.")
    return ("matches NFKC case folding, then words, numbers and single punctuation marks, on messy text, "
            "and round-trips.")


def _as_strings(value, what: str) -> list[str]:
    """A vocabulary as a list of str; accepts lists of str or bytes, arrays and tensors."""
    if value is None:
        raise CheckFailed(f"{what} returned None: is a `return` statement missing?")
    if isinstance(value, (tf.Tensor, tf.RaggedTensor)):
        if isinstance(value, tf.RaggedTensor) or value.shape.rank != 1:
            raise CheckFailed(f"{what} should be a flat list of tokens, not a tensor of shape {value.shape}.")
        value = value.numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise CheckFailed(f"{what} returned a {type(value).__name__}; expected a list of str.")
    words = []
    for item in value:
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if not isinstance(item, str):
            raise CheckFailed(f"{what} contains {item!r} ({type(item).__name__}); expected tokens as str.")
        words.append(item)
    return words


def _random_tokens(rng: np.random.Generator) -> tf.RaggedTensor:
    """Sentences of tokens with very uneven (Zipf-like) frequencies, and some empty rows."""
    distinct = rng.integers(3, 40)
    pool = [f"w{i}" for i in range(distinct - 2)] + ["é", "naïve"]
    weights = 1.0 / np.arange(1, distinct + 1) ** 1.1
    rows = []
    for _ in range(rng.integers(1, 12)):
        length = rng.integers(0, 15)
        rows.append([pool[i] for i in rng.choice(distinct, size=length, p=weights / weights.sum())])
    rows[0] = rows[0] + [pool[0], pool[1]]  # at least two distinct tokens, so a cap can cut
    return tf.ragged.constant(rows, dtype=tf.string)


@register("05-build_vocabulary")
def check_build_vocabulary(build_vocabulary, rng: np.random.Generator) -> str:
    for trial in range(12):
        tokens = _random_tokens(rng)
        counts = collections.Counter(t.decode("utf-8") for t in tokens.flat_values.numpy())
        # every kind of cap in turn: keep one, keep half, keep all exactly, a cap above the count
        max_size = [1, max(1, len(counts) // 2), len(counts), len(counts) + 5][trial % 4]
        what = f"build_vocabulary(tokens, max_size={max_size}) with {len(counts)} distinct tokens"
        vocabulary = _as_strings(call(build_vocabulary, tokens, max_size, what=what), what)

        for reserved in ("", "[UNK]"):
            if reserved in vocabulary:
                raise CheckFailed(f"{what} contains {reserved!r}; leave it out, StringLookup adds the padding "
                                  "'' and '[UNK]' itself.")
        repeated = [w for w, n in collections.Counter(vocabulary).items() if n > 1]
        if repeated:
            raise CheckFailed(f"{what} lists {repeated[0]!r} more than once: a vocabulary holds distinct tokens.")
        unknown = [w for w in vocabulary if w not in counts]
        if unknown:
            raise CheckFailed(f"{what} contains {unknown[0]!r}, which is not among the tokens.")
        expected_size = min(max_size, len(counts))
        if len(vocabulary) != expected_size:
            raise CheckFailed(f"{what} has {len(vocabulary)} entries, expected {expected_size} "
                              f"(min(max_size, number of distinct tokens)).")
        frequencies = [counts[w] for w in vocabulary]
        if any(a < b for a, b in zip(frequencies, frequencies[1:])):
            hint = (" It is in increasing order: put the most frequent first."
                    if frequencies == sorted(frequencies) else "")
            raise CheckFailed(f"{what} is not ordered by frequency; the counts along your list are "
                              f"{frequencies[:10]}.{hint}")
        cut = frequencies[-1]
        missing = [w for w, n in counts.items() if n > cut and w not in vocabulary]
        if missing:
            raise CheckFailed(f"{what} leaves out {missing[0]!r} ({counts[missing[0]]} times) but keeps a token seen "
                              f"only {cut} times: keep the most frequent ones.")

        # round trip through StringLookup: every token comes back, or as [UNK] if it was cut
        to_ids = keras.layers.StringLookup(vocabulary=vocabulary, mask_token="")
        to_tokens = keras.layers.StringLookup(vocabulary=vocabulary, mask_token="", invert=True)
        back = [t.decode("utf-8") for t in to_tokens(to_ids(tokens.flat_values)).numpy()]
        expected = [w if w in vocabulary else "[UNK]" for w in (t.decode("utf-8") for t in tokens.flat_values.numpy())]
        if back != expected:
            raise CheckFailed(f"{what}: the round trip tokens → ids → tokens through StringLookup lost tokens.")
    return "most frequent tokens first, no duplicates or reserved tokens, and a lossless round trip through StringLookup."


def _keras_perplexity(targets: np.ndarray, logits: np.ndarray) -> np.ndarray:
    real = targets != 0
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return np.exp(loss(targets[real], logits[real]).numpy())


def _perplexity_mistakes(targets, logits, token_nll, real) -> dict:
    """What common wrong perplexities give, to name the likely cause of a mismatch."""
    return {
        "padding counted: average only over targets that are not 0.":
            np.exp(keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True).numpy().mean()),
        "that is the cross-entropy itself; perplexity is its exponential.": token_nll[real].mean(),
        "summed instead of averaged: divide by the number of real tokens.": np.exp(token_nll[real].sum()),
        "the exponential is averaged per token; perplexity is exp of the *mean* cross-entropy.":
            np.exp(token_nll[real]).mean(),
        "the logits are used as if they were probabilities: apply softmax (log_softmax) first.":
            np.exp(-np.log(np.clip(np.take_along_axis(logits, targets[..., None], -1)[..., 0][real], 1e-7, None)).mean()),
        "base 2: 2 ** (cross-entropy in nats) mixes units; use exp.": 2.0 ** token_nll[real].mean(),
    }


# exp overflows float32 above a mean cross-entropy of 88.7 nats; a case is drawn again until
# its perplexity is finite, so that a right answer in float32 always matches.
MAX_MEAN_NLL = 80.0


def _perplexity_case(rng: np.random.Generator, batch: int, time: int, vocab: int, scale: float):
    """Logits of the given scale and right-padded targets whose perplexity fits in float32."""
    while True:
        logits = (scale * rng.normal(size=(batch, time, vocab))).astype(np.float32)
        targets = rng.integers(1, vocab, size=(batch, time))
        lengths = rng.integers(1, time + 1, size=batch)
        targets[np.arange(time)[None, :] >= lengths[:, None]] = 0
        log_probs = tf.nn.log_softmax(logits).numpy()
        token_nll = -np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        if token_nll[targets != 0].mean() < MAX_MEAN_NLL:
            return logits, targets, token_nll


@register("05-perplexity")
def check_perplexity(perplexity, rng: np.random.Generator) -> str:
    for batch, time, vocab in [(1, 1, 2), (1, 6, 5), (4, 7, 11), (8, 12, 30)]:
        for scale in (0.5, 3.0, 30.0):
            logits, targets, token_nll = _perplexity_case(rng, batch, time, vocab, scale)
            what = f"perplexity(targets, logits) with logits of shape {logits.shape}"
            got = to_numpy(call(perplexity, tf.constant(targets), tf.constant(logits), what=what), what)
            if got.size != 1:
                raise CheckFailed(f"{what} has shape {got.shape}; return one number (a scalar) for the whole batch.")
            got = got.reshape(())
            expected = _keras_perplexity(targets, logits)

            real = targets != 0
            with np.errstate(over="ignore", divide="ignore"):
                causes = _perplexity_mistakes(targets, logits, token_nll, real)
            if not np.isfinite(got):
                raise CheckFailed(f"{what} is {got} for logits of scale {scale}: take log-probabilities with "
                                  "tf.nn.log_softmax, not tf.math.log(tf.nn.softmax(...)), which underflows to log(0).")
            expect_close(got, expected, what, rtol=1e-4, atol=0.0, reference="exp(keras SparseCategoricalCrossentropy)",
                         likely_causes=causes)
    return "equals exp(Keras's sparse categorical cross-entropy) over the real tokens, batch 1 to 8, time 1 to 12."


def _sample_counts(sample, logits: np.ndarray, temperature: float, num_samples: int, seed: int) -> np.ndarray:
    what = f"sample_with_temperature(logits of shape {logits.shape}, {temperature}, {num_samples}, seed={seed})"
    got = to_numpy(call(sample, tf.constant(logits), temperature, num_samples, seed, what=what), what)
    batch, vocab = logits.shape
    if got.shape != (batch, num_samples):
        raise CheckFailed(f"{what} has shape {got.shape}, expected ({batch}, {num_samples}): one row of "
                          "num_samples token ids per row of logits.")
    if not np.issubdtype(got.dtype, np.integer):
        raise CheckFailed(f"{what} returned {got.dtype} values; expected integer token ids.")
    if got.min() < 0 or got.max() >= vocab:
        raise CheckFailed(f"{what} returned ids outside 0..{vocab - 1}.")
    return np.stack([np.bincount(row, minlength=vocab) for row in got]).astype(np.float64)


NUM_SAMPLES = 20_000
# A sample frequency is within Z standard errors sqrt(p(1 - p) / n) of p except with
# probability about 1e-9 per category, so a right answer fails essentially never.
Z = 6.0


@register("05-sample_with_temperature")
def check_sample_with_temperature(sample, rng: np.random.Generator) -> str:
    for batch, vocab, temperature in [(1, 2, 0.5), (3, 5, 2.0), (2, 8, 0.7), (1, 4, 1.0), (2, 6, 3.0)]:
        logits = rng.normal(scale=1.5, size=(batch, vocab)).astype(np.float32)
        logits[:, 0] += 2.0  # a clear favourite, so argmax and flattening are easy to tell apart
        seed = int(rng.integers(2**31 - 1))
        counts = _sample_counts(sample, logits, temperature, NUM_SAMPLES, seed)
        frequencies = counts / NUM_SAMPLES
        expected = softmax(logits.astype(np.float64) / temperature)
        tolerance = Z * np.sqrt(expected * (1 - expected) / NUM_SAMPLES) + 1e-3
        wrong = np.abs(frequencies - expected) > tolerance
        if not wrong.any():
            continue
        row, token = (int(i) for i in np.argwhere(wrong)[0])
        message = (f"with temperature {temperature}, token {token} of row {row} was drawn "
                   f"{frequencies[row, token]:.3f} of the time over {NUM_SAMPLES} samples; "
                   f"softmax(logits / T) gives {expected[row, token]:.3f} (± {tolerance[row, token]:.3f}).")
        causes = {
            "every sample is the argmax: draw at random from the distribution instead.":
                np.eye(vocab)[logits.argmax(axis=-1)],
            "the temperature is ignored: divide the logits by it.": softmax(logits.astype(np.float64)),
            "the logits are multiplied by the temperature; divide them by it.": softmax(logits * temperature),
            "probabilities were passed where logits are expected (categorical applies softmax itself).":
                softmax(expected),
            "the temperature is applied to the probabilities (p ** T); divide the logits by T.":
                softmax(logits * 1.0) ** temperature / (softmax(logits * 1.0) ** temperature).sum(-1, keepdims=True),
        }
        for cause, distribution in causes.items():
            if np.all(np.abs(frequencies - distribution) <= Z * np.sqrt(distribution * (1 - distribution) / NUM_SAMPLES) + 1e-3):
                message += f" Likely cause: {cause}"
                break
        raise CheckFailed(message)
    return (f"frequencies over {NUM_SAMPLES} samples match softmax(logits / T) for T from 0.5 to 3, "
            "batch 1 to 3, vocabularies 2 to 8.")


def _call_model(model, x: np.ndarray, what: str):
    try:
        return model(tf.constant(x))
    except Exception as error:
        raise CheckFailed(f"calling the model from {what} raised {type(error).__name__}: {error}") from None


def _count_lstms(config) -> int:
    """LSTM layers named anywhere in a model's config (inside wrappers and nested models too).

    The config is plain data, so this works on a model living in the grader's worker as well.
    """
    if isinstance(config, dict):
        return (config.get("class_name") == "LSTM") + sum(_count_lstms(v) for v in config.values())
    if isinstance(config, (list, tuple)):
        return sum(_count_lstms(v) for v in config)
    return 0


@register("05-build_autoencoder")
def check_build_autoencoder(build_autoencoder, rng: np.random.Generator) -> str:
    for time_steps, features, units in [(1, 1, 4), (5, 3, 8), (12, 2, 16)]:
        what = f"build_autoencoder({time_steps}, {features}, {units})"
        try:
            model = call(build_autoencoder, time_steps, features, units, what=what)
        except NotAttempted:
            raise
        except CheckFailed as failure:
            if "ndim" not in str(failure):
                raise
            raise CheckFailed(
                f"{str(failure).splitlines()[0]} The decoder LSTM got the encoder's 2-D output [batch, units]: "
                "repeat it over time with keras.layers.RepeatVector(time_steps), or let the encoder "
                "return_sequences=True."
            ) from None
        config = call(getattr(model, "get_config", None) or (lambda: None), what=f"{what}.get_config()")
        if not isinstance(config, dict):
            raise CheckFailed(f"{what} returned a {type(model).__name__}; expected a keras.Model.")
        if _count_lstms(config) < 2:
            raise CheckFailed(f"{what} has {_count_lstms(config)} LSTM layer(s); an encoder and a decoder "
                              "make at least two.")
        batch = int(rng.integers(1, 5))
        x = rng.normal(size=(batch, time_steps, features)).astype(np.float32)
        y = to_numpy(_call_model(model, x, what), what)
        if y.shape != (batch, time_steps, features):
            hint = ""
            if y.ndim == 2:
                hint = " The time axis is lost: the decoder needs return_sequences=True."
            elif y.ndim == 3 and y.shape[1] != time_steps:
                hint = " RepeatVector should repeat the encoding time_steps times."
            raise CheckFailed(f"{what} maps input {x.shape} to {y.shape}; expected "
                              f"{(batch, time_steps, features)}.{hint}")
        changed = x.copy()
        changed[:, 0] += 3.0  # change only the first input step
        y_changed = to_numpy(_call_model(model, changed, what), what)
        if np.allclose(y[:, -1], y_changed[:, -1], atol=1e-7):
            raise CheckFailed(f"in {what}, the last output does not depend on the first input step: the "
                              "encoder's memory never reaches the decoder.")
    return "builds for 1 to 12 time steps, maps [batch, T, F] to [batch, T, F] through two LSTMs, first input reaches the last output."


# --- WordPiece ---------------------------------------------------------------------------
UNKNOWN = "[UNK]"
SUFFIX = "##"


def _tf_wordpiece(words: list[str], vocabulary: list[str]) -> list[list[str]]:
    """The reference: tensorflow-text's WordpieceTokenizer, greedy longest match first."""
    import tensorflow_text as tf_text

    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(vocabulary, tf.range(len(vocabulary), dtype=tf.int64)), 1)
    tokenizer = tf_text.WordpieceTokenizer(table, suffix_indicator=SUFFIX, unknown_token=UNKNOWN,
                                           token_out_type=tf.string)
    return [[piece.decode() for piece in row] for row in tokenizer.tokenize(tf.constant(words)).to_list()]


def _greedy_pieces(word: str, vocabulary: set[str], longest: bool, marked: bool) -> list[str]:
    """Known wrong variants of the algorithm, to name the likely cause of a mismatch."""
    pieces, start = [], 0
    while start < len(word):
        ends = range(len(word), start, -1) if longest else range(start + 1, len(word) + 1)
        prefix = SUFFIX if start and marked else ""
        end = next((end for end in ends if prefix + word[start:end] in vocabulary), None)
        if end is None:
            return [UNKNOWN]
        pieces.append(prefix + word[start:end])
        start = end
    return pieces


def _wordpiece_case(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """A random vocabulary of pieces over a small alphabet, and words to split with it."""
    alphabet = "abcde"
    pieces = {"".join(rng.choice(list(alphabet), size=rng.integers(1, 4))) for _ in range(14)}
    vocabulary = sorted({piece if rng.random() < 0.5 else SUFFIX + piece for piece in pieces})
    vocabulary += [letter for letter in alphabet[:3] if letter not in vocabulary]
    words = ["".join(rng.choice(list(alphabet), size=rng.integers(1, 9))) for _ in range(40)]
    return vocabulary, words


@register("05-wordpiece")
def check_wordpiece(wordpiece, rng: np.random.Generator) -> str:
    for _ in range(6):
        vocabulary, words = _wordpiece_case(rng)
        expected = _tf_wordpiece(words, vocabulary)
        for word, reference in zip(words, expected):
            what = f"wordpiece({word!r}, vocabulary)"
            got = call(wordpiece, word, set(vocabulary), what=what)
            if not isinstance(got, (list, tuple)) or not all(isinstance(p, str) for p in got):
                raise CheckFailed(f"{what} returned {got!r}; expected a list of str pieces.")
            if list(got) == reference:
                continue
            message = (f"{what} with vocabulary {vocabulary} returned {list(got)}, "
                       f"tf_text.WordpieceTokenizer gives {reference}.")
            causes = {
                "you take the shortest matching piece first; WordPiece takes the longest.":
                    _greedy_pieces(word, set(vocabulary), longest=False, marked=True),
                f"pieces after the first must be looked up with the {SUFFIX!r} prefix (and returned with it).":
                    _greedy_pieces(word, set(vocabulary), longest=True, marked=False),
            }
            cause = next((c for c, output in causes.items() if output == list(got) != reference), None)
            if cause is None and UNKNOWN in got and got != [UNKNOWN]:
                cause = f"when any part of a word has no piece, the whole word becomes {UNKNOWN}, alone."
            raise CheckFailed(message + (f" Likely cause: {cause}" if cause else ""))
    return "matches tf_text.WordpieceTokenizer (greedy longest match first, ## continuations, [UNK]) on 240 words."
