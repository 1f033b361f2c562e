"""Grading workers forked from a warm Python, so that no submission pays for starting one.

Before a worker (``utils/worker.py``) can run a student's first cell it must start Python and
import TensorFlow, Keras and the course's ``utils``: about three seconds of CPU, more than the
grading of a light lesson itself takes. So a grader keeps one *warm* Python
(``worker.py --warm``) that has imported them once, and asks it for each new worker: the warm
Python forks, and the fork becomes the worker's relay, on the pipes the grader hands over as
file descriptors on a Unix socket.

A fork has a single thread, so it can still enter the sandbox's namespaces. The warm Python
holds nothing a student may not see: modules anyone can read, imported before any student
code ran. Where ``os.fork`` and descriptor passing are missing (not Linux), workers start
cold, each a new Python.
"""
import json
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import threading

WORKER = pathlib.Path(__file__).with_name("worker.py")
MAX_REPLY = 2**12


class Relay:
    """A worker's relay forked by the warm Python, with the part of ``subprocess.Popen``'s
    interface the grader uses: ``pid``, ``stdin``, ``stdout``, ``poll``, ``wait``, ``kill``,
    ``returncode``."""

    def __init__(self, warm: "WarmPython", pid: int, stdin, stdout):
        self.warm, self.pid, self.stdin, self.stdout = warm, pid, stdin, stdout
        self.returncode: int | None = None
        # valid until the warm Python reaps the relay, which it does only when asked to
        self._ended = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._ended], [], [], 0)[0]:
            self._reap()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._ended], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"grading worker {self.pid}", timeout)
            self._reap()
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self._ended, signal.SIGKILL)
            except ProcessLookupError:  # it has just exited
                pass

    def _reap(self) -> None:
        try:
            self.returncode = os.waitstatus_to_exitcode(self.warm.reap(self.pid))
        except OSError:  # the warm Python itself has gone: how the relay ended is lost
            self.returncode = -signal.SIGKILL
        os.close(self._ended)


class WarmPython:
    """The warm Python, and the one conversation with it that threads take turns in."""

    def __init__(self, env: dict, repo: pathlib.Path):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen([sys.executable, str(WORKER), "--warm", str(repo)], stdin=theirs,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
        theirs.close()
        self.control, self.lock, self.broken = ours, threading.Lock(), False

    @property
    def alive(self) -> bool:
        return not self.broken and self.process.poll() is None

    def _ask(self, request: dict, seconds: float | None = None, fds: list[int] = ()) -> dict:
        with self.lock:
            try:
                if self.broken:
                    raise OSError("out of step")
                self.control.settimeout(seconds)
                socket.send_fds(self.control, [json.dumps(request).encode()], list(fds))
                reply = self.control.recv(MAX_REPLY)
                if not reply:
                    raise OSError("it has ended")
                return json.loads(reply)
            except (OSError, ValueError) as error:  # a late reply would answer the next request
                self.broken = True
                self.process.kill()
                raise OSError(f"the warm Python that starts grading workers failed: {error}") from None

    def start(self, argv: list[str], stderr, seconds: float) -> Relay:
        """A new worker ``worker.py *argv``; its errors go to the file ``stderr``."""
        to_worker, from_grader = os.pipe()
        to_grader, from_worker = os.pipe()
        try:
            pid = self._ask({"argv": argv}, seconds, [to_worker, from_worker, stderr.fileno()])["pid"]
        except BaseException:
            for fd in (from_grader, to_grader):
                os.close(fd)
            raise
        finally:
            os.close(to_worker)
            os.close(from_worker)
        return Relay(self, pid, os.fdopen(from_grader, "wb"), os.fdopen(to_grader, "rb"))

    def reap(self, pid: int) -> int:
        """The wait status of the worker ``pid``, which has exited."""
        return self._ask({"wait": pid})["status"]


_warm: WarmPython | None = None
_starting = threading.Lock()


def start(argv: list[str], stderr, env: dict, repo: pathlib.Path, seconds: float):
    """A new worker running ``worker.py *argv``, with pipes on its standard input and output:
    forked from the warm Python where the system allows, else a new Python."""
    global _warm
    if not (hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")):
        return subprocess.Popen([sys.executable, str(WORKER), *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True)
    with _starting:
        if _warm is None or not _warm.alive:
            _warm = WarmPython(env, repo)
        warm = _warm
    return warm.start(argv, stderr, seconds)
