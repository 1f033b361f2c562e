"""The course's shared code: seeding, a device report, and the exercise checks.

Import `utils` before anything else (every lesson's set-up cell does): it imports
TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) silenced, so they never
end up in a notebook's output.
"""
import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null for a moment.

    TensorFlow prints its start-up lines from C++ before its own log level applies, so
    only silencing the descriptor itself keeps them out of notebooks.
    """
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _stderr_silenced():
    import tensorflow as tf
    import keras

from utils.checks import check_exercise  # noqa: E402  (needs TensorFlow imported quietly)


def set_seed(seed: int = 0) -> None:
    """Make a run repeatable: seed Python, NumPy, TensorFlow and Keras, and ask for
    deterministic TensorFlow ops (slower on a GPU, identical results on a re-run).

    TensorFloat-32 is turned off too, so float32 matrix products keep full precision on
    recent NVIDIA GPUs and results agree with the CPU.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)


def device_report() -> None:
    """Print one line saying which TensorFlow, Keras and device this notebook runs on."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        device = "GPU: " + ", ".join(names)
    else:
        device = "CPU only"
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {device}")


def spread(values, digits: int = 3) -> str:
    """Summarise one result over several seeds as "mean (min–max over n seeds)".

    Every comparison that carries a lesson's argument is run on several seeds and printed
    this way, beside its chance or baseline level, so a lucky run cannot pass for a finding.
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    return (f"{values.mean():.{digits}f} ({values.min():.{digits}f}–{values.max():.{digits}f} "
            f"over {values.size} seeds)")
