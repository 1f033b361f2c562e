"""Dates written the many ways people write them, to be translated into ISO ``YYYY-MM-DD``:
the translation task of lessons 06 and 07.

Every input names one calendar day between 1950 and 2049 in one of a dozen styles, from
terse to wordy, and the answer is fully determined by it:

    3/3/21                                                   ->  2021-03-03
    the 3rd of March, 2021                                   ->  2021-03-03
    Wednesday the third of March in the year twenty twenty-one  ->  2021-03-03

Two-digit years mean 1950-2049 (``3/3/21`` is 2021, ``3/3/87`` is 1987) and numeric dates
are month first, the American way. Inputs run from 6 to about 80 characters; the test split
draws the wordy styles more often, so its inputs are longer on average and a model's
dependence on input length shows.

The splits were generated once from a fixed seed and frozen in ``data/dates.tsv`` (columns
``split``, ``input``, ``target``); :func:`load_split` checks the file's SHA-256 first.

    python -m utils.dates      # regenerate data/dates.tsv and print its SHA-256
"""
import datetime
import pathlib

import numpy as np

from utils import tasks

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATES_PATH = ROOT / "data" / "dates.tsv"
DATES_SEED = 6
SPLIT_SIZES = {"train": 12000, "validation": 1000, "test": 2000}
DATES_SHA256 = "38af74d82923eda0db4891d973405b2eb981c3245671ddec504be3aa884c4241"
REGENERATE = "python -m utils.dates"

FIRST_DAY, LAST_DAY = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINAL_ONES = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
                "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
                "seventeenth", "eighteenth", "nineteenth"]

# Special tokens of the target vocabulary; id 0 is padding (StringLookup's mask token "").
PAD, START, END = "", "[start]", "[end]"
TARGET_CHARACTERS = list("0123456789-")
TARGET_LENGTH = 10  # "YYYY-MM-DD"


class DatesError(tasks.DataFileError):
    """The frozen dates file is missing or is not the file the lessons were written for."""


def _number_words(n: int) -> str:
    """0 < n < 100 in words: 21 -> "twenty-one"."""
    if n < 20:
        return ONES[n]
    return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")


def _ordinal_words(n: int) -> str:
    """1 <= n <= 31 as an ordinal in words: 23 -> "twenty-third"."""
    if n < 20:
        return ORDINAL_ONES[n]
    if n % 10 == 0:
        return TENS[n // 10][:-1] + "ieth"  # twenty -> twentieth
    return TENS[n // 10] + "-" + ORDINAL_ONES[n % 10]


def _ordinal_digits(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _year_words(year: int, rng: np.random.Generator) -> str:
    """1987 -> "nineteen eighty-seven"; 2021 -> "two thousand (and) twenty-one" or "twenty twenty-one"."""
    if year < 2000:
        return f"nineteen {_number_words(year - 1900)}"
    rest = year - 2000
    if rest == 0:
        return "two thousand"
    if rest >= 10 and rng.random() < 0.5:
        return f"twenty {_number_words(rest)}"
    return "two thousand " + ("and " if rng.random() < 0.3 else "") + _number_words(rest)


def _styles(day: datetime.date, rng: np.random.Generator) -> list[str]:
    """The date written in each of the task's styles, shortest styles first."""
    d, m, y = day.day, day.month, day.year
    month, mon, weekday = MONTHS[m - 1], MONTHS[m - 1][:3], WEEKDAYS[day.weekday()]
    return [
        f"{m}/{d}/{y % 100:02d}",
        f"{m:02d}/{d:02d}/{y}",
        f"{d} {mon} {y}",
        f"{mon} {d}, {y}",
        f"{weekday[:3]} {m}/{d}/{y % 100:02d}",
        f"{month} {d}, {y}",
        f"the {_ordinal_digits(d)} of {month}, {y}",
        f"{weekday}, {month} {_ordinal_digits(d)}, {y}",
        f"{month} {_ordinal_words(d)}, {_year_words(y, rng)}",
        f"the {_ordinal_words(d)} of {month}, {_year_words(y, rng)}",
        f"{weekday}, the {_ordinal_words(d)} day of {month}, {_year_words(y, rng)}",
        f"{weekday} the {_ordinal_words(d)} of {month} in the year {_year_words(y, rng)}",
    ]


# How often each style is drawn: evenly for training, the wordy half 3 times as often for testing.
STYLE_WEIGHTS = {
    "train": np.ones(12),
    "validation": np.ones(12),
    "test": np.array([1] * 6 + [3] * 6, dtype=float),
}


def _untidy(text: str, rng: np.random.Generator) -> str:
    """Capitalised as people write: as is, all lower case, or all upper case."""
    r = rng.random()
    return text.lower() if r < 0.3 else text.upper() if r < 0.4 else text


def generate_pairs(n: int, split: str = "train", seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (input, ISO date) pairs, reproducible from ``seed``; ``split`` picks the mix of
    styles (``"test"`` favours the long, wordy ones)."""
    rng = np.random.default_rng(seed)
    weights = STYLE_WEIGHTS[split] / STYLE_WEIGHTS[split].sum()
    span = (LAST_DAY - FIRST_DAY).days
    pairs = []
    for _ in range(n):
        day = FIRST_DAY + datetime.timedelta(days=int(rng.integers(span + 1)))
        styles = _styles(day, rng)
        text = styles[rng.choice(len(styles), p=weights)]
        pairs.append((_untidy(text, rng), day.isoformat()))
    return pairs


def generate_splits(seed: int = DATES_SEED) -> dict[str, list[tuple[str, str]]]:
    """Train, validation and test pairs; every split draws from its own seed."""
    return {split: generate_pairs(size, split, seed=seed * 100 + i)
            for i, (split, size) in enumerate(SPLIT_SIZES.items())}


def write_dates(path: pathlib.Path = DATES_PATH) -> str:
    """Write all splits as a UTF-8 TSV file with a header line; return its SHA-256."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["split\tinput\ttarget"]
    for split, pairs in generate_splits().items():
        lines += [f"{split}\t{source}\t{target}" for source, target in pairs]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return tasks.sha256(path)


def load_split(split: str, path: pathlib.Path = DATES_PATH,
               expected_sha256: str = DATES_SHA256) -> tuple[list[str], list[str]]:
    """The inputs and ISO targets of one split (``"train"``, ``"validation"`` or ``"test"``)
    of the frozen file, after making sure it is byte for byte the one the lessons were
    written for (their stated results depend on it)."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_SIZES)}")
    text = tasks.read_data_file(path, expected_sha256, REGENERATE, DatesError)
    rows = [line.split("\t") for line in text.splitlines()[1:]]
    inputs = [row[1] for row in rows if row[0] == split]
    targets = [row[2] for row in rows if row[0] == split]
    return inputs, targets


# ---------------------------------------------------------------------------------------
# Tokens: characters, through tensorflow-text (import this module after `import utils`).


def characters(texts):
    """The course's character pipeline: NFKC normalization with case folding
    (tensorflow-text), then one token per Unicode character. Returns a RaggedTensor of
    strings, one row per text."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    return tf.strings.unicode_split(tf_text.case_fold_utf8(tf.constant(texts)), "UTF-8")


def input_lookup(train_inputs: list[str]):
    """A StringLookup over the characters of the training inputs: id 0 is padding, id 1
    stands for a character never seen in training."""
    import keras

    vocabulary = sorted(set(characters(train_inputs).flat_values.numpy().tolist()))
    return keras.layers.StringLookup(vocabulary=vocabulary, mask_token=PAD)


def target_lookup():
    """The StringLookup of the outputs: padding (0), out-of-vocabulary (1), [start], [end], digits, "-"."""
    import keras

    return keras.layers.StringLookup(vocabulary=[START, END] + TARGET_CHARACTERS, mask_token=PAD)


def encode_inputs(texts: list[str], lookup, length: int | None = None):
    """Token ids ``[batch, length]`` (int32), padded with 0 after each text."""
    import tensorflow as tf

    ids = tf.cast(lookup(characters(texts)), tf.int32)
    return ids.to_tensor(shape=None if length is None else [None, length])


def encode_targets(targets: list[str], lookup):
    """Token ids ``[batch, 12]`` (int32) of ``[start] Y Y Y Y - M M - D D [end]``."""
    import tensorflow as tf

    chars = characters(targets)
    starts = tf.fill([chars.nrows(), 1], START)
    ends = tf.fill([chars.nrows(), 1], END)
    tokens = tf.concat([starts, chars, ends], axis=1)
    return tf.cast(lookup(tokens), tf.int32).to_tensor()


def length_batches(inputs, targets, batch_size: int, seed: int = 0):
    """A tf.data pipeline of ``(inputs, targets)`` batches whose inputs have similar
    lengths, each trimmed to its longest input: far less padding to run an LSTM over than
    random batches padded to the longest text of all. Batches come in a new random order
    every epoch (the last, incomplete batch is dropped)."""
    import tensorflow as tf

    inputs, targets = np.asarray(inputs), np.asarray(targets)
    lengths = np.sum(inputs != 0, axis=1)
    shuffled = np.random.default_rng(seed).permutation(len(lengths))
    order = shuffled[np.argsort(lengths[shuffled], kind="stable")]  # by length, ties in random order
    batches = order[: len(order) // batch_size * batch_size].reshape(-1, batch_size)

    def gather(rows):
        x = tf.gather(inputs, rows)
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(x != 0, tf.int32), axis=1))
        return x[:, :longest], tf.gather(targets, rows)

    return (tf.data.Dataset.from_tensor_slices(batches)
            .shuffle(len(batches), seed=seed, reshuffle_each_iteration=True)
            .map(gather))


def decode_ids(ids, lookup) -> list[str]:
    """Token ids back to text, stopping at the first [end] (or padding) of each row."""
    vocabulary = lookup.get_vocabulary()
    texts = []
    for row in np.asarray(ids):
        chars = []
        for token in row:
            word = vocabulary[int(token)]
            if word in (END, PAD):
                break
            if word != START:
                chars.append(word)
        texts.append("".join(chars))
    return texts


# ---------------------------------------------------------------------------------------
# Decoding and scoring, as lesson 06's exercises build them.


def teacher_forcing(token_ids):
    """``(decoder_inputs, decoder_targets)``: the sequence without its last token, and
    without its first. (Lesson 06 builds this as an exercise.)"""
    return token_ids[:, :-1], token_ids[:, 1:]


def greedy_decode(step, states, start_id: int, end_id: int, max_length: int):
    """Feed a decoder its own most likely token until every row has written ``end_id``.

    ``step(tokens [batch], states) -> (logits [batch, vocab], states)``. Returns int32 ids
    ``[batch, max_length]``: each row's tokens up to and including its first ``end_id``,
    then 0. (Lesson 06 builds this as an exercise.)
    """
    import tensorflow as tf

    batch = int(states[0].shape[0])
    tokens = tf.fill([batch], tf.constant(start_id, tf.int32))
    done = tf.zeros([batch], tf.bool)
    outputs = []
    for _ in range(max_length):
        logits, states = step(tokens, states)
        tokens = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        outputs.append(tf.where(done, 0, tokens))
        done = done | (tokens == end_id)
        if bool(tf.reduce_all(done)):
            break
    ids = tf.stack(outputs, axis=1)
    return tf.pad(ids, [[0, 0], [0, max_length - ids.shape[1]]])


def exact_match(y_true, y_pred) -> float:
    """Share of rows whose every non-padding token (id != 0 in ``y_true``) was predicted.
    (Lesson 06 builds this as an exercise.)"""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(np.all((y_true == y_pred) | (y_true == 0), axis=1)))


def character_accuracy(y_true, y_pred) -> float:
    """Share of non-padding positions of ``y_true`` predicted right."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    real = y_true != 0
    return float(np.sum((y_true == y_pred) & real) / np.sum(real))


def length_buckets(texts: list[str], edges: list[int]) -> np.ndarray:
    """Index of each text's length bucket: bucket i holds lengths in [edges[i], edges[i+1])."""
    lengths = np.array([len(t) for t in texts])
    return np.searchsorted(np.asarray(edges), lengths, side="right") - 1


# ---------------------------------------------------------------------------------------
# Lists of dates: the same translation, with more to remember the longer the input.

LIST_SEPARATOR, ISO_SEPARATOR = "; ", " "
NUMERIC_STYLES = 2  # the first two styles: 3/3/21 and 03/03/2021, every character informative


def generate_date_lists(n: int, max_dates: int = 3, seed: int = 0,
                        styles: int = NUMERIC_STYLES) -> list[tuple[str, str]]:
    """``n`` (input, target) pairs, each input a list of 1 to ``max_dates`` days (as many of
    each count) written in the first ``styles`` styles and joined by ``"; "``, each target
    their ISO dates joined by spaces:

        3/26/79; 12/01/2005  ->  1979-03-26 2005-12-01

    Every date adds about 15 bits the model must carry from input to output, so the longer
    the input, the more a fixed-size summary of it has to hold. Reproducible from ``seed``;
    made in well under a second, so lessons draw it at run time instead of reading a file.
    """
    rng = np.random.default_rng(seed)
    span = (LAST_DAY - FIRST_DAY).days
    pairs = []
    for count in rng.permutation(np.arange(n) % max_dates + 1):
        texts, answers = [], []
        for _ in range(count):
            day = FIRST_DAY + datetime.timedelta(days=int(rng.integers(span + 1)))
            texts.append(_styles(day, rng)[int(rng.integers(styles))])
            answers.append(day.isoformat())
        pairs.append((LIST_SEPARATOR.join(texts), ISO_SEPARATOR.join(answers)))
    return pairs


def list_target_lookup():
    """The output StringLookup of date lists: :func:`target_lookup`'s tokens and a space."""
    import keras

    return keras.layers.StringLookup(vocabulary=[START, END] + TARGET_CHARACTERS + [ISO_SEPARATOR],
                                     mask_token=PAD)


def dates_right(targets: list[str], guesses: list[str]) -> np.ndarray:
    """Per row, the share of the target's dates that the guess wrote right, in their place
    (the k-th date of the guess against the k-th of the target): partial credit that says
    how many of a list's dates got through, where exact match only says whether all did."""
    shares = []
    for target, guess in zip(targets, guesses):
        wanted, written = target.split(ISO_SEPARATOR), guess.split(ISO_SEPARATOR)
        shares.append(np.mean([w == g for w, g in zip(wanted, written + [""] * len(wanted))]))
    return np.array(shares)


if __name__ == "__main__":
    digest = write_dates()
    print(f"wrote {DATES_PATH.relative_to(ROOT)} (SHA-256 {digest})")
    if digest != DATES_SHA256:
        print(f"note: utils/dates.py expects SHA-256 {DATES_SHA256}")
