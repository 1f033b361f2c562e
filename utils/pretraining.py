"""Lesson 11's toy language: unlabelled text to pre-train on, and two small labelled tasks.

The language has words whose meaning shows only in the company they keep:

- 24 adjectives, 12 *pleasant* and 12 *unpleasant*. In the unlabelled text a pleasant
  adjective's noun does pleasant things ("the kind baker praises the pilot") and an
  unpleasant one's does unpleasant things ("the cruel baker mocks the pilot"), 9 times in 10.
- 24 first names and 24 places. Names are followed by "said" or met in "met …"; places come
  after "in", "from" or "to". Some names take a surname ("anna berg").

The labelled tasks put those words in *neutral* frames that say nothing about them ("there
is a kind baker ."), so a word's label can only come from a labelled example of that word
or from what pre-training stored about it:

- **sentence classification**: neutral (no adjective), pleasant or unpleasant;
- **tagging** with BIO tags: ``B-PER``/``I-PER`` for a name and its surname, ``B-LOC`` for a
  place, ``O`` for everything else.

Labelled training examples use only the first few adjectives, names and places of each
kind (``LABELLED_PER_KIND``); test examples use only the others. Everything is generated
from a seed in well under a second, so nothing is stored on disk.
"""
import numpy as np

PAD, MASK = "[pad]", "[mask]"
PLEASANT = ["kind", "brave", "gentle", "honest", "cheerful", "clever", "calm", "generous",
            "polite", "wise", "loyal", "patient"]
UNPLEASANT = ["cruel", "lazy", "rude", "greedy", "selfish", "nasty", "bitter", "grumpy",
              "vain", "sly", "jealous", "careless"]
PLEASANT_VERBS = ["praises", "helps", "thanks", "hugs", "welcomes", "cheers"]
UNPLEASANT_VERBS = ["mocks", "blames", "robs", "insults", "cheats", "scolds"]
NOUNS = ["baker", "pilot", "farmer", "teacher", "nurse", "driver", "singer", "doctor"]
NAMES = ["anna", "boris", "chen", "dora", "emil", "fatima", "gustav", "hana", "ivan", "julia",
         "kofi", "lena", "marco", "nadia", "omar", "petra", "quentin", "rosa", "sven", "tara",
         "umar", "vera", "wim", "yusuf"]
SURNAMES = ["berg", "costa", "diaz", "novak", "okafor", "smith"]
PLACES = ["paris", "lima", "oslo", "delhi", "cairo", "quito", "rome", "seoul", "tunis", "accra",
          "hanoi", "kyiv", "dakar", "minsk", "porto", "riga", "sofia", "tokyo", "vienna", "zagreb",
          "bern", "dublin", "lagos", "perth"]
FUNCTION_WORDS = [".", "the", "a", "there", "is", "was", "said", "that", "met", "in", "from", "to",
                  "went", "lives", "came", "we", "talked", "about", "i", "know", "like", "see",
                  "with", "and", "here", "today", "this"]
VOCABULARY = [PAD, MASK] + FUNCTION_WORDS + NOUNS + PLEASANT + UNPLEASANT + PLEASANT_VERBS + \
    UNPLEASANT_VERBS + NAMES + SURNAMES + PLACES
WORD_ID = {word: i for i, word in enumerate(VOCABULARY)}
PAD_ID, MASK_ID = WORD_ID[PAD], WORD_ID[MASK]
MAX_LENGTH = 12  # tokens per sequence, padding included

LABELLED_PER_KIND = 3  # adjectives (or names, or places) of each kind that labelled examples may use
SENTENCE_CLASSES = ["neutral", "pleasant", "unpleasant"]
CLASS_SHARES = [0.5, 0.25, 0.25]
TAGS = ["O", "B-PER", "I-PER", "B-LOC"]
COOCCURRENCE = 0.9  # how often an adjective's sentence has a verb of its own kind
SURNAME_RATE = 0.4


def _pick(rng, words):
    return words[rng.integers(len(words))]


def _person(rng, names=NAMES):
    return [_pick(rng, names)] + ([_pick(rng, SURNAMES)] if rng.random() < SURNAME_RATE else [])


def _unlabelled_sentence(rng) -> list[str]:
    kind = rng.integers(4)
    if kind <= 1:  # an adjective and, 9 times in 10, a verb of its own kind
        pleasant = rng.random() < 0.5
        adjective = _pick(rng, PLEASANT if pleasant else UNPLEASANT)
        verbs = PLEASANT_VERBS if (pleasant == (rng.random() < COOCCURRENCE)) else UNPLEASANT_VERBS
        if kind == 0:
            return ["the", adjective, _pick(rng, NOUNS), _pick(rng, verbs), "the", _pick(rng, NOUNS), "."]
        return ["the", _pick(rng, NOUNS), _pick(rng, verbs), "the", adjective, _pick(rng, NOUNS), "."]
    if kind == 2:  # people say things and meet people
        if rng.random() < 0.5:
            return _person(rng) + ["said", "that", "the", _pick(rng, NOUNS), "was", "here", "."]
        return _person(rng) + ["met"] + _person(rng) + ["today", "."]
    person, place = _person(rng), _pick(rng, PLACES)  # places are where people live, come from, go to
    frame = rng.integers(3)
    if frame == 0:
        return person + ["lives", "in", place, "."]
    if frame == 1:
        return person + ["came", "from", place, "."]
    return ["we", "went", "to", place, "with"] + person + ["."]


def encode(sentences: list[list[str]], length: int = MAX_LENGTH) -> np.ndarray:
    """Word lists → int32 ids [n, length], padded with PAD_ID on the right."""
    ids = np.full((len(sentences), length), PAD_ID, np.int32)
    for row, words in enumerate(sentences):
        ids[row, :len(words)] = [WORD_ID[w] for w in words]
    return ids


def decode(ids: np.ndarray) -> str:
    """One row of ids → its words, padding left out."""
    return " ".join(VOCABULARY[i] for i in ids if i != PAD_ID)


def unlabelled_corpus(n: int, seed: int = 0) -> np.ndarray:
    """``n`` sentences of unlabelled text as padded ids [n, MAX_LENGTH]."""
    rng = np.random.default_rng(seed)
    return encode([_unlabelled_sentence(rng) for _ in range(n)])


def _split(words: list[str], labelled: bool) -> list[str]:
    """The words labelled examples may use (the first LABELLED_PER_KIND), or the others."""
    return words[:LABELLED_PER_KIND] if labelled else words[LABELLED_PER_KIND:]


SENTENCE_FRAMES = [(["there", "is", "a"], ["here", "."]), (["i", "know", "the"], ["."]),
                   (["we", "talked", "about", "the"], ["."]), (["i", "see", "a"], ["today", "."])]


def sentence_task(n: int, labelled: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sentence classification: ids [n, MAX_LENGTH] and classes [n] (0 neutral, 1 pleasant,
    2 unpleasant, in shares CLASS_SHARES). The frame says nothing about the class: only the
    adjective does, and a neutral sentence has none. ``labelled`` picks the adjectives of
    the labelled (training) split or of the test split."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(len(SENTENCE_CLASSES), size=n, p=CLASS_SHARES)
    sentences = []
    for label in classes:
        before, after = SENTENCE_FRAMES[rng.integers(len(SENTENCE_FRAMES))]
        adjective = [] if label == 0 else [_pick(rng, _split(PLEASANT if label == 1 else UNPLEASANT, labelled))]
        sentences.append(before + adjective + [_pick(rng, NOUNS)] + after)
    return encode(sentences), classes.astype(np.int32)


TAG_FRAMES = [(["we", "talked", "about"], ["."]), (["i", "know"], ["."]), (["this", "is"], ["."]),
              (["i", "like"], ["and", "the", "NOUN", "."])]


def tagging_task(n: int, labelled: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tagging: ids [n, MAX_LENGTH] and tag ids [n, MAX_LENGTH] (TAGS; padding tagged 0, "O").
    Each sentence mentions a person (with or without a surname) or a place in a frame that
    says nothing about which it is; ``labelled`` picks names and places of the labelled
    split or of the test split."""
    rng = np.random.default_rng(seed)
    sentences, tags = [], []
    for _ in range(n):
        before, after = TAG_FRAMES[rng.integers(len(TAG_FRAMES))]
        after = [_pick(rng, NOUNS) if w == "NOUN" else w for w in after]
        if rng.random() < 0.5:
            entity = _person(rng, _split(NAMES, labelled))
            entity_tags = ["B-PER"] + ["I-PER"] * (len(entity) - 1)
        else:
            entity, entity_tags = [_pick(rng, _split(PLACES, labelled))], ["B-LOC"]
        sentences.append(before + entity + after)
        tags.append(["O"] * len(before) + entity_tags + ["O"] * len(after))
    tag_ids = np.zeros((n, MAX_LENGTH), np.int32)
    for row, row_tags in enumerate(tags):
        tag_ids[row, :len(row_tags)] = [TAGS.index(t) for t in row_tags]
    return encode(sentences), tag_ids


# ---------------------------------------------------------------------------------------
# Helpers for the experiments: restarting a compiled model, and a linear probe.


def restart(model, weights: list[np.ndarray]) -> None:
    """Give a compiled model new starting weights and a fresh optimizer (step count and
    Adam's moments back to zero; the learning rate kept), so one compiled training step
    serves every seed and every run instead of being traced again for each."""
    model.set_weights(weights)
    for variable in model.optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))


def linear_probe(features: np.ndarray, labels: np.ndarray, classes: int, steps: int = 200,
                 learning_rate: float = 0.5, l2: float = 1e-3):
    """Fit softmax regression on frozen features by full-batch gradient descent and return
    a function that predicts classes: what a representation offers a linear read-out."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    z = (features - mean) / std
    weights, bias = np.zeros((z.shape[1], classes)), np.zeros(classes)
    targets = np.eye(classes)[labels]
    for _ in range(steps):
        logits = z @ weights + bias
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        grad = (probs - targets) / len(z)
        weights -= learning_rate * (z.T @ grad + l2 * weights)
        bias -= learning_rate * grad.sum(0)
    return lambda x: (((x - mean) / std) @ weights + bias).argmax(1)
