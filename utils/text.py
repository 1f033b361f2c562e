"""The course's own text: a small English-like grammar in which verbs agree with a subject
that may lie many words back, and the frozen corpus lesson 05 trains on.

Each sentence is a subject, zero or more *fillers* (prepositional phrases and relative
clauses, each with nouns of their own), then the main verb, which agrees in number with
the subject, not with the nearest noun:

    The old dog near the cats that the child sees runs quietly.

Predicting "runs" rather than "run" takes memory: the subject's number has to be carried
past every filler. The text is also slightly untidy on purpose, as real text is: sentences
start with a capital, and "café" and "naïve" are written sometimes as one code point per
accented letter (NFC) and sometimes as a letter plus a combining accent (NFD), so a text
pipeline has to normalize and fold case before it counts words.

    python -m utils.text      # regenerate data/agreement_corpus.txt and print its SHA-256
"""
import pathlib
import unicodedata

import numpy as np

from utils import tasks

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS_PATH = ROOT / "data" / "agreement_corpus.txt"
CORPUS_SEED = 5
CORPUS_SENTENCES = 4000
CORPUS_SHA256 = "1a48406243247522c438ebac2b9885e906efece2f0725fcb4f31bd8f9362130e"
REGENERATE = "python -m utils.text"

# (singular, plural) pairs
NOUNS = [("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("child", "children"),
         ("teacher", "teachers"), ("farmer", "farmers"), ("fox", "foxes"), ("horse", "horses")]
PLACES = [("tree", "trees"), ("house", "houses"), ("café", "cafés"), ("river", "rivers")]
INTRANSITIVE = [("runs", "run"), ("sleeps", "sleep"), ("sings", "sing"), ("waits", "wait"),
                ("laughs", "laugh")]
TRANSITIVE = [("sees", "see"), ("likes", "like"), ("follows", "follow"), ("helps", "help")]
ADJECTIVES = ["old", "young", "small", "happy", "tired", "naïve"]
PREPOSITIONS = ["near", "behind", "with", "beside", "under"]
ADVERBS = ["quietly", "today", "again", "slowly"]
FILLER_COUNTS = [0, 1, 2, 3, 4]  # fillers between subject and verb, drawn uniformly


class CorpusError(tasks.DataFileError):
    """The frozen corpus file is missing or is not the file the lessons were written for."""


def _noun_phrase(rng: np.random.Generator, plural: bool, nouns=NOUNS) -> list[str]:
    words = ["the"]
    if rng.random() < 0.3:
        words.append(ADJECTIVES[rng.integers(len(ADJECTIVES))])
    words.append(nouns[rng.integers(len(nouns))][int(plural)])
    return words


def _filler(rng: np.random.Generator) -> list[str]:
    """A prepositional phrase or an object relative clause, with nouns of random number."""
    if rng.random() < 0.6:
        nouns = NOUNS if rng.random() < 0.5 else PLACES
        return [PREPOSITIONS[rng.integers(len(PREPOSITIONS))]] + _noun_phrase(rng, rng.random() < 0.5, nouns)
    plural = rng.random() < 0.5  # "that the cats see": the inner verb agrees with its own subject
    return ["that"] + _noun_phrase(rng, plural) + [TRANSITIVE[rng.integers(len(TRANSITIVE))][int(plural)]]


def _verb_phrase(rng: np.random.Generator, plural: bool) -> list[str]:
    if rng.random() < 0.5:
        words = [INTRANSITIVE[rng.integers(len(INTRANSITIVE))][int(plural)]]
    else:
        words = [TRANSITIVE[rng.integers(len(TRANSITIVE))][int(plural)]] + _noun_phrase(rng, rng.random() < 0.5)
    if rng.random() < 0.3:
        words.append(ADVERBS[rng.integers(len(ADVERBS))])
    return words


def _untidy(words: list[str], rng: np.random.Generator) -> str:
    """Join words into a sentence as people write it: capital first letter, a full stop,
    and accented letters sometimes decomposed (NFD)."""
    text = " ".join(words)
    if rng.random() < 0.5:
        text = unicodedata.normalize("NFD", text)
    return text[0].upper() + text[1:] + "."


def agreement_probes(n: int, fillers: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` sentence beginnings that stop just before the main verb, each with the verb
    form that agrees with the subject and the form that does not.

    Every probe has exactly ``fillers`` fillers, and the noun right before the verb
    disagrees with the subject (an *attractor*), so a model that copies the number of the
    nearest noun scores 0 and one that guesses scores 1/2. Returns
    ``[(prefix, right_verb, wrong_verb), ...]`` in the corpus's untidy spelling.
    """
    rng = np.random.default_rng(seed)
    probes = []
    while len(probes) < n:
        plural = rng.random() < 0.5
        words = _noun_phrase(rng, plural)
        for _ in range(fillers):
            words += _filler(rng)
        nearest_plural = words[-1] in {p for _, p in NOUNS + PLACES} | {p for _, p in TRANSITIVE}
        if fillers and nearest_plural == plural:
            continue  # keep only probes whose last noun (or inner verb) is an attractor
        verbs = INTRANSITIVE[rng.integers(len(INTRANSITIVE))]
        prefix = _untidy(words, rng)[:-1]  # without the full stop
        probes.append((prefix, verbs[int(plural)], verbs[int(not plural)]))
    return probes


def generate_corpus(n: int = CORPUS_SENTENCES, seed: int = CORPUS_SEED) -> list[str]:
    """``n`` sentences of the agreement grammar, one string each, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        plural = rng.random() < 0.5
        words = _noun_phrase(rng, plural)
        for _ in range(rng.choice(FILLER_COUNTS)):
            words += _filler(rng)
        sentences.append(_untidy(words + _verb_phrase(rng, plural), rng))
    return sentences


# Split at runs of white space and around every punctuation mark or symbol, keeping the marks
# as tokens of their own (RE2 syntax, as tensorflow-text's regex_split takes it).
SPLIT_PATTERN = r"[\s\p{Z}]+|[\p{P}\p{S}]"
KEEP_PATTERN = r"[\p{P}\p{S}]"


def tokenize(texts):
    """The course's text pipeline: Unicode NFKC normalization with case folding, then words,
    numbers and single punctuation marks split apart.

    ``texts`` is a string tensor of any batch size; returns a RaggedTensor of tokens,
    one row per text. (Lesson 05 builds this as an exercise.)
    """
    import tensorflow_text as tf_text

    normalized = tf_text.normalize_utf8(tf_text.case_fold_utf8(texts), "NFKC")
    return tf_text.regex_split(normalized, SPLIT_PATTERN, KEEP_PATTERN)


def write_corpus(path: pathlib.Path = CORPUS_PATH) -> str:
    """Write the corpus, one sentence per line in UTF-8, and return its SHA-256."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(generate_corpus()) + "\n").encode("utf-8"))
    return tasks.sha256(path)


def load_corpus(path: pathlib.Path = CORPUS_PATH, expected_sha256: str = CORPUS_SHA256) -> list[str]:
    """Read the frozen corpus, after making sure it is byte for byte the one the lessons
    were written for (their stated results depend on it)."""
    return tasks.read_data_file(path, expected_sha256, REGENERATE, CorpusError).splitlines()


if __name__ == "__main__":
    digest = write_corpus()
    print(f"wrote {CORPUS_PATH.relative_to(ROOT)} (SHA-256 {digest})")
    if digest != CORPUS_SHA256:
        print(f"note: utils/text.py expects SHA-256 {CORPUS_SHA256}")
