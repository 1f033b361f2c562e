"""The course's generated data: right shapes, seeded, and the properties lessons rely on."""
import numpy as np

from utils import tasks


def test_two_spirals_is_balanced_seeded_and_not_linearly_separable():
    x, y = tasks.two_spirals(400, seed=3)
    assert x.shape == (400, 2) and y.shape == (400,) and x.dtype == np.float32
    assert y.mean() == 0.5
    np.testing.assert_array_equal(x, tasks.two_spirals(400, seed=3)[0])
    # the best least-squares line classifies barely better than chance
    design = np.c_[x, np.ones(len(x))]
    w, *_ = np.linalg.lstsq(design, 2 * y - 1, rcond=None)
    assert np.mean((design @ w > 0) == (y == 1)) < 0.75


def test_recall_task_answer_is_the_first_token():
    x, y = tasks.recall_task(1000, lag=5, vocab_size=4, seed=1)
    assert x.shape == (1000, 6) and x.dtype == np.int32
    np.testing.assert_array_equal(y, x[:, 0])
    assert set(np.unique(x)) == {0, 1, 2, 3}


def test_most_frequent_token_counts_then_prefers_the_first_seen():
    x = np.array([[2, 1, 1, 0], [3, 0, 3, 0], [5, 4, 6, 7], [1, 1, 1, 1]])
    np.testing.assert_array_equal(tasks.most_frequent_token(x, vocab_size=8), [1, 3, 5, 1])
    # on the recall task it beats chance, always at lag 1, and less as the lag grows
    scores = []
    for lag in (1, 10, 80):
        tokens, answers = tasks.recall_task(4000, lag, vocab_size=8, seed=lag)
        scores.append(np.mean(tasks.most_frequent_token(tokens, 8) == answers))
    assert scores[0] == 1.0 and scores[0] > scores[1] > scores[2] > 1 / 8 + 0.02


def test_adding_problem_marks_two_steps_one_per_half():
    x, y = tasks.adding_problem(500, length=20, seed=2)
    assert x.shape == (500, 20, 2) and y.shape == (500,)
    markers = x[..., 1]
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    np.testing.assert_array_equal(markers[:, :10].sum(axis=1), 1)
    np.testing.assert_allclose(y, (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    # always answering 1 gives MSE ≈ 2/12
    _, y = tasks.adding_problem(20_000, length=20, seed=2)
    assert abs(np.mean((y - 1.0) ** 2) - 2 / 12) < 0.01
