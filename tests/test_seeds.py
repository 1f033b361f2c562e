"""utils.seeds: copies trained together are the runs each seed would make alone."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from utils import seeds

N, FEATURES, CLASSES = 200, 5, 3
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return x, y


def build():
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(CLASSES)])


def fit(seed_list, **options):
    x, y = data()
    settings = dict(loss=LOSS, optimizer=lambda: keras.optimizers.Adam(1e-2), epochs=3, batch_size=32,
                    metrics={"accuracy": seeds.sparse_accuracy})
    return seeds.fit_seeds(build, x, y, seeds=seed_list, **{**settings, **options})


def largest_difference(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("clip_norm", [None, 1e-3])
def test_a_copy_is_the_run_its_seed_makes_alone(clip_norm):
    together = fit([3, 4, 5], clip_norm=clip_norm)
    alone = fit([4], clip_norm=clip_norm)
    assert largest_difference(together.models[1], alone.models[0]) == 0.0
    np.testing.assert_array_equal(together.history["loss"][1], alone.history["loss"][0])


def test_seeds_differ_in_weights_and_in_batch_order():
    runs = fit([0, 1])
    assert largest_difference(runs.models[0], runs.models[1]) > 1e-3
    assert not np.array_equal(runs.history["loss"][0], runs.history["loss"][1])


def test_each_copy_clips_its_own_gradients():
    norms = []

    def recording_clip(grads, max_norm):
        norms.append(tf.linalg.global_norm(grads))
        return tf.clip_by_global_norm(grads, max_norm)

    fit([0, 1, 2], clip_norm=1.0, clip=recording_clip, epochs=1)
    assert len(norms) == 3  # traced once per copy: one global norm over each copy's own gradients


def test_clipping_bounds_each_step():
    x, y = data()
    before = fit([0], epochs=0).models[0].get_weights()
    after = fit([0], epochs=1, batch_size=N, clip_norm=1e-4,
                optimizer=lambda: keras.optimizers.SGD(1.0)).models[0].get_weights()
    moved = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before)))
    assert moved == pytest.approx(1e-4, rel=1e-3)


def test_history_predict_and_evaluate_have_one_row_per_seed():
    x, y = data(1)
    runs = fit([0, 1, 2], validation=(x, y))
    assert set(runs.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(values.shape == (3, 3) for values in runs.history.values())
    assert runs.predict(x).shape == (3, N, CLASSES)
    scores = runs.evaluate(x, y)
    np.testing.assert_allclose(scores["accuracy"], runs.history["val_accuracy"][:, -1], atol=1e-6)
    expected = np.mean(np.argmax(runs.models[2](x).numpy(), axis=-1) == y)
    assert scores["accuracy"][2] == pytest.approx(expected, abs=1e-6)


def test_early_stopping_keeps_each_copys_best_weights():
    x, y = data(1)
    runs = fit([0, 1], validation=(x, y), epochs=40, patience=2,
               optimizer=lambda: keras.optimizers.Adam(0.5))
    losses = runs.history["val_loss"]
    assert losses.shape[1] < 40  # stopped early
    np.testing.assert_array_equal(runs.best_epoch, np.argmin(losses, axis=1) + 1)
    np.testing.assert_allclose(runs.evaluate(x, y)["loss"], losses.min(axis=1), rtol=1e-5)


def test_early_stopping_needs_validation_data():
    with pytest.raises(ValueError, match="validation"):
        fit([0], patience=2)


def test_a_shifted_global_seed_changes_every_copy(monkeypatch):
    """What a seed re-run does: every random choice comes from keras.utils.set_random_seed."""
    original = fit([0])
    real = keras.utils.set_random_seed
    monkeypatch.setattr(keras.utils, "set_random_seed", lambda seed: real(seed + 100))
    shifted = fit([0])
    assert largest_difference(original.models[0], shifted.models[0]) > 1e-3
