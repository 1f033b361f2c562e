"""The grader's worker: runs one submission's cells in a sandbox and answers calls.

The grader starts it as ``python utils/worker.py --scratch DIR --hide PATH…``, or, on Linux,
has the warm Python (``worker.py --warm``, see ``utils/warm.py``) fork one that runs the same
steps, and talks to it over its standard input and output with length-prefixed JSON messages
(``utils.wire``). Student code runs only here; every verdict is reached in the grader.

The script is two processes:
- the relay (this script's own process) enters new namespaces (``utils/sandbox.py``) while it
  is still a bare Python with one thread, forks, and then only copies bytes between the
  grader's pipes and a socket to its child. It holds the grader's pipes; the child never does.
  It stays outside the child's PID namespace, so student code can neither see nor signal it,
  nor the grader, nor any other worker. When the child exits, the relay exits the same way.
- the child is PID 1 of the new PID namespace: it confines itself, imports TensorFlow and
  serves the grader's requests; student code runs in it. When it exits the kernel kills every
  process student code started.
Where namespaces are not allowed the same two processes run unconfined, and the greeting
says ``sandboxed: false``.
"""
import argparse
import errno
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback

import sandbox  # this script's folder: ``utils`` itself would import TensorFlow too early

CHUNK = 2**16
UNLIMITED_DESCRIPTORS = 2**16  # the descriptors to close where their number has no limit (macOS)
# The course's folders student code may read: its code and data, and the learners' notebooks,
# which every student has; never its .git or its solutions, which hold the answer key.
COURSE = ("utils", "data", "lessons")


# ---------------------------------------------------------------------------------------
# The child: answers the grader's requests.


def _describe(error: BaseException) -> dict:
    message = str(error)[:2000]
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        message = f"printed more output than the grader allows ({message})"
    return {"type": type(error).__name__, "message": message}


class Channel:
    """Length-prefixed messages on the socket to the relay."""

    def __init__(self, connection: socket.socket, header):
        self.connection, self.header = connection, header

    def receive(self) -> bytes | None:
        header = self._read(self.header.size)
        return None if header is None else self._read(self.header.unpack(header)[0])

    def send(self, payload: bytes) -> None:
        self.connection.sendall(self.header.pack(len(payload)) + payload)

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.connection.recv(min(size - len(data), 2**20))
            if not chunk:
                return None
            data += chunk
        return data


def serve(connection: socket.socket, isolation: list[str]) -> None:
    """Answer the grader's requests until it closes the channel."""
    import tensorflow as tf
    from IPython.core.interactiveshell import InteractiveShell

    from utils.wire import HEADER, decode, encode

    channel = Channel(connection, HEADER)
    shell = InteractiveShell.instance()
    objects: dict[int, object] = {}

    def keep(value) -> int:
        objects[len(objects)] = value
        return len(objects) - 1

    def handle(request: dict) -> dict:
        op = request["op"]
        if op == "cell":
            result = shell.run_cell(request["source"], store_history=False, silent=True)
            error = result.error_before_exec or result.error_in_exec
            return {"ok": error is None, "error": _describe(error) if error else None}
        if op == "lookup":
            if request["name"] not in shell.user_ns:
                return {"ok": False, "error": {"type": "NameError", "message": f"{request['name']} is not defined"}}
            return {"ok": True, "value": encode(shell.user_ns[request["name"]], keep)}
        target = objects[request["handle"]]
        if op == "getattr":
            return {"ok": True, "value": encode(getattr(target, request["name"]), keep)}
        args = decode(request["args"], objects.__getitem__, functions=True)
        kwargs = decode(request["kwargs"], objects.__getitem__, functions=True)
        if op == "call":
            return {"ok": True, "value": encode(target(*args, **kwargs), keep)}
        if op == "gradient":
            *args, wrt = args
            with tf.GradientTape() as tape:
                tape.watch(args[wrt])
                y = target(*args)
            gradient = tape.gradient(y, args[wrt]) if tf.is_tensor(y) else None
            return {"ok": True, "value": encode((y, gradient), keep)}
        raise ValueError(f"unknown request {op!r}")

    channel.send(json.dumps({"ok": True, "sandboxed": bool(isolation), "isolation": isolation}).encode())
    while (raw := channel.receive()) is not None:
        try:
            reply = handle(json.loads(raw))
        except NotImplementedError:
            reply = {"ok": False, "not_implemented": True}
        except BaseException as error:  # noqa: B036  (sys.exit and friends are answers too)
            reply = {"ok": False, "error": _describe(error)}
        try:
            payload = json.dumps(reply).encode()
        except (TypeError, ValueError) as error:
            payload = json.dumps({"ok": False, "error": _describe(error)}).encode()
        channel.send(payload)


def _descriptor_limit() -> int:
    """One more than the highest descriptor this process can hold: its hard limit, where there is one."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return UNLIMITED_DESCRIPTORS if limit == resource.RLIM_INFINITY else limit


def child(connection: socket.socket, namespaces: dict | None, needed: list[str], cgroup: bool, args) -> None:
    """Set up the child's descriptors and sandbox, then serve until the grader is done."""
    os.setsid()  # its own process group and session: a signal to "my group" stays inside
    sandbox.die_with_parent()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # the grader opened fd 2 on the scratch log file: prints go there
    keep = connection.fileno()  # and no other descriptor of the warm Python's or the relay's:
    os.closerange(3, keep)  # student code inherits only /dev/null, the log and its channel
    os.closerange(keep + 1, _descriptor_limit())
    try:
        isolation = sandbox.confine(namespaces, args.hide, needed, cgroup, args.scratch) if namespaces else []
    except OSError as error:  # half a sandbox is none: the grader starts this worker again without
        print(f"cannot build the sandbox: {error}", file=sys.stderr, flush=True)
        os._exit(sandbox.UNAVAILABLE)
    scratch = sandbox.SCRATCH if namespaces else args.scratch
    os.chdir(scratch)
    for name in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        os.environ[name] = scratch
    os.environ["IPYTHONDIR"] = os.path.join(scratch, ".ipython")
    sys.path[0] = args.repo  # instead of utils/ itself, where this script lives
    serve(connection, isolation)


# ---------------------------------------------------------------------------------------
# The relay.


def relay(connection: socket.socket, pid: int) -> None:
    """Copy bytes both ways until one side ends; then end the child and exit as it did."""
    grader_in, grader_out = sys.stdin.fileno(), sys.stdout.fileno()
    watched = [grader_in, connection]
    ended = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    if ended is not None:
        watched.append(ended)
    while True:
        ready = select.select(watched, [], [], 1.0 if ended is None else None)[0]
        if grader_in in ready:
            data = os.read(grader_in, CHUNK)
            if not data:
                break  # the grader closed: this notebook is done
            try:
                connection.sendall(data)
            except OSError:
                break
        if connection in ready:
            data = connection.recv(CHUNK)
            if not data:
                break
            try:
                _write_all(grader_out, data)
            except OSError:
                break
        if (ended in ready) or (ended is None and os.waitpid(pid, os.WNOHANG)[0]):
            break
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):  # end the same way, so the grader can say how the notebook died
        if os.WTERMSIG(status) not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scratch", required=True,
                        help="the writable folder where there is no sandbox; its parent's name names the cgroup")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--output-limit", type=int, required=True, help="bytes of printed output")
    parser.add_argument("--no-sandbox", action="store_true", help="where the sandbox cannot be built")
    return parser.parse_args(argv)


def visible(repo: str) -> list[str]:
    """The folders the sandbox shows besides the system's: the course's :data:`COURSE` folders,
    and Python (its prefixes and every folder on its path). A folder that holds the course
    itself (an editable install, a PYTHONPATH of the home) is left out: it would show the
    course's ``.git`` and solutions, and the instructor's other files."""
    course = [os.path.join(repo, name) for name in COURSE]
    python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path[1:]}
    holds_course = [path for path in python if _holds(path, repo)]
    return [path for path in [*course, *sorted(python)] if os.path.isdir(path) and path not in holds_course]


def _holds(folder: str, inner: str) -> bool:
    """Whether ``inner`` is ``folder`` or lies inside it, links resolved or not."""
    folders = [os.path.abspath(folder), os.path.realpath(folder)]
    return any(sandbox.inside(path, folders) for path in (os.path.abspath(inner), os.path.realpath(inner)))


def start(args: argparse.Namespace) -> None:
    """Become the relay of a new worker: limits, namespaces, the child; never returns."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, writes fail instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.output_limit, args.output_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sandbox.watch_over_orphans()
    confined = not args.no_sandbox
    cgroup = confined and os.getuid() == 0 and sandbox.limit_processes(os.path.basename(os.path.dirname(args.scratch)))
    needed = visible(args.repo)
    namespaces = sandbox.unshare(needed) if confined else None
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        try:
            child(theirs, namespaces, needed, cgroup, args)
        except BaseException:  # noqa: B036  (the log is where the grader's maintainer looks)
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    theirs.close()
    relay(ours, pid)


# ---------------------------------------------------------------------------------------
# The warm Python: starts workers by forking (see utils/warm.py).


def warm(repo: str) -> None:
    """Import what every notebook imports, then fork a worker for each request that comes on
    the Unix socket that is this process's standard input, until the grader closes it.

    A request is the worker's arguments (JSON) with its standard input, output and error
    attached; the reply is its PID. A second kind of request, ``{"wait": PID}``, reaps a
    worker that has exited and replies with its wait status.
    """
    control = socket.socket(fileno=0)
    sys.path[0] = repo  # instead of utils/ itself, where this script lives
    import utils  # noqa: F401  (TensorFlow, Keras and the checks, imported quietly)
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401
    while True:
        message, fds, _, _ = socket.recv_fds(control, 2**16, 3)
        if not message:
            return  # the grader has gone
        request = json.loads(message)
        if "wait" in request:
            control.send(json.dumps({"status": os.waitpid(request["wait"], 0)[1]}).encode())
            continue
        pid = os.fork()
        if pid == 0:  # one thread again, as a fork is: free to enter namespaces
            try:
                control.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                os.setsid()
                start(parse(request["argv"]))
            except BaseException:  # noqa: B036  (never back into this loop)
                traceback.print_exc()
                sys.stderr.flush()
            os._exit(1)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())


def main() -> None:
    if sys.argv[1] == "--warm":
        warm(sys.argv[2])
    else:
        start(parse(sys.argv[1:]))


if __name__ == "__main__":
    main()
