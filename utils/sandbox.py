"""Linux isolation for the grading worker, from system calls alone.

This module imports nothing but the standard library, because a process can enter new
namespaces only while it has a single thread (TensorFlow and OpenBLAS start many). It works
in two steps, one per process of the worker (see ``utils/worker.py``):

1. :func:`unshare`, in the relay, before it forks: new user (where allowed), mount, PID,
   network and IPC namespaces. The relay's one child becomes PID 1 of the new PID namespace,
   so when it exits the kernel kills every process it started, however detached.
2. :func:`confine`, in that child, before any student code: a new root built from an empty
   tmpfs that holds only what the worker needs (the system's programs and libraries, a few
   files of ``/etc``, a few devices, Python and its packages, the course's code and data), all
   read-only; a ``/proc`` that shows only the sandbox's processes; one private writable tmpfs
   seen as ``/tmp`` and ``/dev/shm``; no nested user namespaces, a process limit, and no
   capabilities left. It is an allow-list: the course's ``.git`` and solutions, the
   instructor's home and every other file on the disk are simply not there.

Where a step is not allowed (not Linux, namespaces disabled) the worker runs unconfined and
says so in its greeting; the grader then warns.
"""
import ctypes
import os
import resource
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
CLONE_NEWNET, CLONE_NEWIPC = 0x40000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture Linux added it for
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 24, 36, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAPABILITY_VERSION_3 = 0x20080522
NOBODY = 65534  # whom a root grader's student code runs as

UNAVAILABLE = 70  # the worker's exit code when namespaces were entered but the sandbox failed
SCRATCH = "/tmp"  # where the private scratch appears inside the sandbox
SCRATCH_SIZE = "size=512m,mode=1777"
PROCESS_LIMIT = 64  # processes and threads in the sandbox, plus what TensorFlow needs per core
THREADS_PER_CORE = 8

# What the new root holds besides Python and the course (worker.py names those): the system's
# programs and libraries (whichever of these exist; links such as /lib -> usr/lib are copied as
# links), the files of /etc that the C library and Python read (not /etc itself: root-only
# files such as /etc/shadow would be readable by a sandbox that runs as root without
# capabilities), the CPU list that os.cpu_count and TensorFlow read, and harmless devices.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache", "/etc/ld.so.conf",
          "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts",
          "/sys/devices/system/cpu", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEVICE_LINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                "/dev/stderr": "/proc/self/fd/2"}
ROOT_SIZE = "size=1m,mode=755"  # the new root's own tmpfs holds only folders and links
MAX_LINKS = 40  # links followed on the way to one path, as the kernel's own limit (ELOOP)

CGROUP_PIDS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")  # cgroup v1's pids controller, or v2

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encoded = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]), f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def watch_over_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux), so that a student
    process that detaches itself stays in this process's tree, where the grader finds it."""
    if _libc is not None:
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def unshare(needed: list[str]) -> dict | None:
    """Enter new namespaces (this process's next child is their PID 1); None if not allowed.

    A user namespace comes first where the kernel allows it: it lets an unprivileged grader
    build the sandbox, and it gives the sandbox its own process count. A root grader maps the
    sandbox's root to ``nobody``, so student code cannot read root's private files, where
    ``nobody`` can read the ``needed`` folders (Python, the course); else to root, without
    any capability.
    """
    if _libc is None:
        return None
    uid, gid = os.getuid(), os.getgid()
    others = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
    if uid != 0:
        if _libc.unshare(others | CLONE_NEWUSER) != 0:
            return None
        _write("/proc/self/setgroups", "deny")  # an unprivileged map may name only oneself
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        return {"user": True, "uid": uid, "gid": gid, "setgroups": False, "outside": uid}
    outside = NOBODY if _can_read(NOBODY, needed) else 0
    if _unshare_mapped_to(outside, others | CLONE_NEWUSER):
        return {"user": True, "uid": 0, "gid": 0, "setgroups": True, "outside": outside}
    if _libc.unshare(others) == 0:
        return {"user": False, "uid": outside, "gid": outside, "setgroups": True, "outside": outside}
    return None


def _can_read(uid: int, folders: list[str]) -> bool:
    """Whether ``uid`` can list every one of ``folders``: asked of a short-lived child."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for folder in folders:
                os.listdir(folder)
        except OSError:
            os._exit(1)
        os._exit(0)
    return os.waitpid(pid, 0)[1] == 0


def _unshare_mapped_to(outside: int, flags: int) -> bool:
    """unshare(flags) with the new user namespace's root mapped to ``outside``. Only a
    process still in the parent namespace may write such a map, so a helper forked just
    before writes it."""
    ready, go = os.pipe()
    parent = os.getpid()
    helper = os.fork()
    if helper == 0:
        os.close(go)
        code = 1
        if os.read(ready, 1) == b"x":
            try:
                _write(f"/proc/{parent}/uid_map", f"0 {outside} 1")
                _write(f"/proc/{parent}/gid_map", f"0 {outside} 1")
                code = 0
            except OSError:
                pass
        os._exit(code)
    os.close(ready)
    entered = _libc.unshare(flags) == 0
    os.write(go, b"x" if entered else b"-")
    os.close(go)
    mapped = os.waitpid(helper, 0)[1] == 0
    if entered and not mapped:
        raise OSError(f"could not map the sandbox's root to user {outside}")
    return entered


def process_limit() -> int:
    return PROCESS_LIMIT + THREADS_PER_CORE * (os.cpu_count() or 1)


def limit_processes(name: str) -> bool:
    """Put this process in a new cgroup ``name`` that allows :func:`process_limit`
    processes and threads: how a root grader limits them, since the kernel does not apply
    RLIMIT_NPROC to root. Needs write access to the cgroup file system."""
    for base in CGROUP_PIDS:
        controllers = os.path.join(base, "cgroup.subtree_control")
        if base == CGROUP_PIDS[1] and not (os.path.exists(controllers) and "pids" in open(controllers).read()):
            continue
        folder = os.path.join(base, name)
        try:
            os.mkdir(folder)
            _write(os.path.join(folder, "pids.max"), str(process_limit()))
            _write(os.path.join(folder, "cgroup.procs"), str(os.getpid()))
            return True
        except OSError:
            remove_process_limit(name)
    return False


def remove_process_limit(name: str) -> None:
    """Remove the cgroup ``name``, once its processes are gone."""
    for base in CGROUP_PIDS:
        try:
            os.rmdir(os.path.join(base, name))
        except OSError:
            pass


def process_limit_names(prefix: str) -> list[str]:
    """The cgroups :func:`limit_processes` made whose names start with ``prefix``."""
    names = []
    for base in CGROUP_PIDS:
        try:
            names += [name for name in os.listdir(base) if name.startswith(prefix)]
        except OSError:
            pass
    return names


def die_with_parent() -> None:
    """The kernel kills this process when the relay that forked it dies (Linux)."""
    if _libc is not None:
        _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl PDEATHSIG")


def confine(namespaces: dict, hidden: list[str], needed: list[str], cgroup: bool, staging: str) -> list[str]:
    """Build the sandbox around this process (PID 1 of the new namespace); say what it is.

    The new root is built on ``staging`` (an empty folder of the grader's) and then moved onto
    ``/``: only :data:`SYSTEM` and ``needed`` (Python, the course) are in it, so nothing else of
    the instructor's can be read, whoever student code runs as. ``hidden`` folders that lie
    inside those (the solutions, the submissions, the output) are covered by empty mounts.
    """
    if namespaces["user"]:  # first, so that what it creates has an owner the namespace knows
        _become(namespaces)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here shows outside
    quiet = MS_NOSUID | MS_NODEV | MS_NOEXEC
    _mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_SIZE)
    os.mkdir(staging + SCRATCH)  # first, so that Python or the course under /tmp is bound onto it
    _mount("tmpfs", staging + SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, SCRATCH_SIZE)
    grafted: list[str] = []
    for path in [*SYSTEM, *sorted(needed, key=lambda p: os.path.abspath(p).count("/"))]:
        _graft(path, staging, grafted)
    for folder in _folders_in_scratch(needed):  # its own mount, so it stays read-only below
        _mount(staging + folder, staging + folder, None, MS_BIND | MS_REC)
    for folder in ("/proc", "/dev/shm", SCRATCH + "/.shm"):
        os.makedirs(staging + folder, exist_ok=True)
    for link, target in DEVICE_LINKS.items():
        os.symlink(target, staging + link)
    _mount("proc", staging + "/proc", "proc", quiet)  # shows only this PID namespace's processes
    os.chdir(staging)  # the new root replaces the old one, as switch_root does
    _mount(".", "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")
    for path in hidden:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | quiet, "size=4k")
    if namespaces["user"]:  # before /proc turns read-only: no nested namespace can undo ours
        _write("/proc/sys/user/max_user_namespaces", "0")
    _read_only_everywhere()
    _mount(None, SCRATCH, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)  # the one writable place
    os.chmod(SCRATCH + "/.shm", 0o1777)
    _mount(SCRATCH + "/.shm", "/dev/shm", None, MS_BIND)
    # RLIMIT_NPROC counts per user namespace, and the kernel never applies it to root
    counted = cgroup or namespaces["user"] and namespaces["outside"] != 0
    if counted and not cgroup:
        resource.setrlimit(resource.RLIMIT_NPROC, (process_limit(), process_limit()))
    if not namespaces["user"]:  # last: becoming nobody outside a user namespace drops all rights
        _become(namespaces)
    _drop_capabilities()
    who = "nobody" if namespaces["outside"] == NOBODY else "root" if namespaces["outside"] == 0 else "you"
    return ["own PID namespace", "no network", "only the system, Python and the course visible, read-only",
            "private /tmp and /dev/shm", f"runs as {who}, without capabilities"] + \
        ([f"at most {process_limit()} processes and threads"] if counted else [])


def _graft(path: str, root: str, grafted: list[str]) -> None:
    """Bind ``path`` (a folder or a file) into the new ``root`` at the same place, copying the
    links met on the way as links, so that the path, and every path Python has already
    imported from, reads the same inside as outside. ``grafted`` lists the real folders bound
    so far: what lies inside one is there already. A path that does not exist is skipped."""
    parts, current = [p for p in os.path.abspath(path).split("/") if p], "/"
    for _ in range(MAX_LINKS):
        while parts and not os.path.islink(os.path.join(current, parts[0])):
            current = os.path.join(current, parts.pop(0))
        if not parts:
            break
        link = os.path.join(current, parts.pop(0))
        if not inside(link, grafted) and not os.path.lexists(root + link):
            os.makedirs(root + current, exist_ok=True)
            os.symlink(os.readlink(link), root + link)
        parts = [p for p in os.path.normpath(os.path.join(current, os.readlink(link))).split("/") if p] + parts
        current = "/"
    else:
        return  # a loop of links: nothing to bind
    if not os.path.exists(current) or inside(current, grafted):
        return
    if os.path.isdir(current):
        os.makedirs(root + current, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(root + current), exist_ok=True)
        open(root + current, "a").close()
    _mount(current, root + current, None, MS_BIND | MS_REC)
    grafted.append(current)


def _folders_in_scratch(needed: list[str]) -> list[str]:
    """The folders of ``/tmp`` that hold a needed path (a course cloned to /tmp, a venv there).

    Grafting makes them as plain folders of the writable scratch tmpfs, so student code could
    write beside the course; bound onto themselves, they become mounts of their own, which the
    read-only pass covers and the scratch's writable remount does not."""
    tops = {os.path.join(SCRATCH, os.path.relpath(os.path.abspath(path), SCRATCH).split("/")[0])
            for path in needed if inside(os.path.abspath(path), [SCRATCH]) and os.path.abspath(path) != SCRATCH}
    return sorted(tops)


def inside(path: str, folders: list[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or lies inside one (paths as given, links not resolved)."""
    return any(path == folder or path.startswith(folder.rstrip("/") + "/") for folder in folders)


def _read_only_everywhere() -> None:
    """Every mount read-only, recursively: mount_setattr (Linux 5.12) where there is one,
    else a read-only bind remount of each mount point listed in /proc/self/mountinfo."""
    attributes = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, attributes, ctypes.sizeof(attributes)) == 0:
        return
    with open("/proc/self/mountinfo") as file:
        points = [line.split()[4] for line in file]
    for point in (p.encode().decode("unicode_escape") for p in points):  # undo octal escapes (\040)
        kept = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # same bits as ST_*
        _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)


def _become(namespaces: dict) -> None:
    """Take the sandbox's user and group, and no other groups."""
    if namespaces["setgroups"]:  # an unprivileged user namespace denies it (and needs it not)
        os.setgroups([])
    os.setresgid(*[namespaces["gid"]] * 3)
    os.setresuid(*[namespaces["uid"]] * 3)


def _drop_capabilities() -> None:
    """Keep no capability, and let no program give one back."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    nothing = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, nothing), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl NO_NEW_PRIVS")
