"""What crosses between the grader and its worker, and the one gate every reply passes.

Messages are length-prefixed JSON; arrays travel as ``.npy`` bytes and nothing is ever
unpickled, so no value the worker sends can run code in the grader. Student code runs in the
worker and may write anything there, so every reply is read by :func:`parse_reply`, which
returns a reply of the expected shape or raises :class:`WorkerFailed`: never a crash of the
grader.
"""
import base64
import importlib
import io
import json
import struct

import numpy as np
import tensorflow as tf

MAX_MESSAGE = 64 * 2**20  # bytes in one message
MAX_DEPTH = 64  # nesting of one reply; the deepest value a check sends is a few levels
HEADER = struct.Struct(">I")


class WorkerFailed(Exception):
    """The worker hit a limit, died or broke the protocol; the message says which, in a
    student's terms."""


class Handle:
    """A stand-in for an object that lives on the other side; it crosses as its number."""

    def __init__(self, handle: int):
        self._handle = handle


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


# ---------------------------------------------------------------------------------------
# Values


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plain_array(value) -> dict:
    array = np.asarray(value)
    if array.dtype == object:  # strings from tf.string tensors
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
        return {"strings": [base64.b64encode(v).decode("ascii") for v in items], "shape": list(array.shape)}
    return {"npy": _npy(array)}


def _array_back(data: dict) -> np.ndarray:
    if "strings" in data:
        items = [base64.b64decode(v) for v in data["strings"]]
        return np.array(items, dtype=object).reshape(data["shape"])
    return np.load(io.BytesIO(base64.b64decode(data["npy"])), allow_pickle=False)


def encode(value, keep=None):
    """Turn a value into JSON-able data; objects that are not data become handles via ``keep``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tf.RaggedTensor):
        return {"ragged": {"values": encode(value.flat_values),
                           "splits": [encode(s) for s in value.nested_row_splits]}}
    if isinstance(value, tf.Variable):
        return {"variable": _plain_array(value.numpy())}
    if isinstance(value, tf.Tensor):
        return {"tensor": _plain_array(value.numpy())}
    if isinstance(value, (np.ndarray, np.generic)):
        return {"array": _plain_array(value)}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [encode(v, keep) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"set": [encode(v, keep) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: encode(v, keep) for k, v in value.items()}}
    if isinstance(value, Handle):
        return {"remote": value._handle}
    if keep is None and callable(value) and getattr(value, "__module__", None) and "<" not in value.__qualname__:
        return {"function": f"{value.__module__}:{value.__qualname__}"}
    if keep is not None:
        return {"remote": keep(value)}
    raise TypeError(f"cannot send {type(value).__name__} to the worker")


def decode(data, resolve, functions: bool = False):
    """Inverse of :func:`encode`; ``resolve`` turns a handle into an object (or a stand-in).

    Only the worker accepts functions by name (from the grader); the grader never takes
    them from the worker, which could otherwise name ``os.system``.
    """
    if not isinstance(data, dict):
        return data
    (kind, body), = data.items()
    if kind == "tensor":
        return tf.constant(_array_back(body))
    if kind == "ragged":
        splits = [decode(split, resolve) for split in body["splits"]]
        return tf.RaggedTensor.from_nested_row_splits(decode(body["values"], resolve), splits)
    if kind == "variable":
        return tf.Variable(_array_back(body))
    if kind == "array":
        return _array_back(body)
    if kind in ("list", "tuple"):
        items = [decode(v, resolve, functions) for v in body]
        return items if kind == "list" else tuple(items)
    if kind == "set":
        return {decode(v, resolve, functions) for v in body}
    if kind == "dict":
        return {k: decode(v, resolve, functions) for k, v in body.items()}
    if kind == "remote":
        return resolve(body)
    if kind == "function" and functions:
        module, qualname = body.split(":")
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        return value
    raise ValueError(f"unknown value kind {kind!r}")


# ---------------------------------------------------------------------------------------
# Replies


REPLY_KEYS = {"greeting": {"ok", "sandboxed", "isolation"},
              "cell": {"ok", "error"},
              "value": {"ok", "value", "error", "not_implemented"}}


def _depth(data) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack += [(child, depth + 1) for child in children]
    return deepest


def parse_reply(raw: bytes, kind: str) -> dict:
    """The worker's reply to a request of ``kind`` ("greeting", "cell" or "value"), checked:
    a dict with a boolean ``ok``, only the keys that kind has, an ``error`` of two strings
    when not ok, a ``value`` when ok. Anything else raises WorkerFailed."""
    if len(raw) > MAX_MESSAGE:
        raise WorkerFailed(f"sent back more than {MAX_MESSAGE // 2**20} MB")
    try:
        reply = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise WorkerFailed("sent back a garbled reply") from None
    if _depth(reply) > MAX_DEPTH:
        raise WorkerFailed(f"sent back a reply nested more than {MAX_DEPTH} deep")
    if not (isinstance(reply, dict) and isinstance(reply.get("ok"), bool) and set(reply) <= REPLY_KEYS[kind]):
        raise WorkerFailed("sent back a reply that is not one the grader asked for")
    error = reply.get("error")
    if kind == "greeting":
        good = reply["ok"] and isinstance(reply.get("sandboxed"), bool) and \
            isinstance(reply.get("isolation"), list) and all(isinstance(s, str) for s in reply["isolation"])
    elif reply["ok"]:
        good = error is None and (kind == "cell" or "value" in reply) and "not_implemented" not in reply
    else:
        good = reply.get("not_implemented") is True and kind == "value" and error is None or \
            isinstance(error, dict) and set(error) == {"type", "message"} and \
            all(isinstance(v, str) for v in error.values()) and "not_implemented" not in reply
    if not good:
        raise WorkerFailed("sent back a reply that is not one the grader asked for")
    return reply
