"""The grader's worker: runs one submission's cells in a sandbox and answers calls.

The grader starts it as a script, ``python utils/worker.py --scratch DIR --hide PATH…``,
and talks to it over its standard input and output with length-prefixed JSON messages (see
``utils.grading``). Student code runs only here; every verdict is reached in the grader.

Before anything else is imported (TensorFlow starts threads, and a threaded process can no
longer enter new namespaces) the worker tries to enter its own Linux mount namespace in
which the whole file system is read-only, the solutions, the submissions and the grader's
output folder are hidden behind empty mounts, and only a private in-memory scratch folder is
writable. Where that is not allowed, it runs unconfined and the grader's own integrity checks
are the only guard; ``sandboxed`` in its greeting says which.
"""
import argparse
import ctypes
import os
import resource
import signal
import struct
import sys

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
SCRATCH_SIZE = "size=512m"


def enter_sandbox(scratch: str, hidden: list[str]) -> bool:
    """Read-only file system, hidden folders, writable tmpfs scratch; False if not allowed."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS if uid == 0 else CLONE_NEWNS | CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        return False
    try:
        if uid != 0:  # keep our own identity inside the new user namespace
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as file:
                    file.write(text)

        def mount(source, target, fstype, flags, data):
            if libc.mount(source, target, fstype, flags, data) != 0:
                raise OSError(ctypes.get_errno(), f"mount {target}")

        mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
        mount(b"tmpfs", scratch.encode(), b"tmpfs", 0, SCRATCH_SIZE.encode())
        for path in hidden:
            if os.path.isdir(path):
                mount(b"tmpfs", path.encode(), b"tmpfs", MS_RDONLY, b"size=4k")
        mount(b"/", b"/", None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
        return True
    except OSError:
        return False


class Channel:
    """Length-prefixed JSON messages on two private file descriptors."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self.writer = os.fdopen(write_fd, "wb", buffering=0)

    def receive(self) -> bytes | None:
        header = self._read(4)
        return None if header is None else self._read(struct.unpack(">I", header)[0])

    def send(self, payload: bytes) -> None:
        self.writer.write(struct.pack(">I", len(payload)) + payload)

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.reader.read(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--output-limit", type=int, required=True, help="bytes of printed output")
    args = parser.parse_args()

    # The protocol moves to private descriptors; what the student prints goes to the log.
    channel = Channel(os.dup(0), os.dup(1))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # the grader opened fd 2 on the scratch log file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, writes fail instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.output_limit, args.output_limit))

    sandboxed = enter_sandbox(args.scratch, args.hide)
    os.chdir(args.scratch)
    sys.path[0] = args.repo  # instead of utils/ itself, where this script lives

    from utils.grading import serve  # imports TensorFlow: only now, after the sandbox

    serve(channel, sandboxed)


if __name__ == "__main__":
    main()
