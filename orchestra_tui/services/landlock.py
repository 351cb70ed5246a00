"""Landlock + seccomp confinement: the code tool's sandbox where bubblewrap cannot run.

Without namespaces the snippet shares the host's file system, network and process table, so each is
closed another way by a bootstrap (`python -I -S -B -c BOOTSTRAP SPEC`) that confines itself and then
execs a fresh interpreter on the snippet. The bootstrap is text built from `confine` and its helpers:
with -S nothing of the venv or of this app runs or can be imported before confinement, and a fresh
single-threaded process avoids preexec_fn in the app's threaded one. The parent decides every path,
right and syscall (`launch`, `ruleset`, `seccomp_program`, tested directly); the child only applies.

- Files: Landlock grants read+execute on /usr and the /lib*, /bin links, the few /etc files the loader
  needs (as bubblewrap: /etc/passwd would name the host's users), this Python and the venv's
  site-packages; read+write only on a fresh work folder (cwd, HOME, TMPDIR). No /proc, /tmp, home or
  project. Landlock (ABI <= 7) does not see chmod, chown, utime, xattrs or truncate(path), and without
  root the uid owns files outside, so seccomp refuses those. Names stay visible to stat, contents not.
- Network: seccomp refuses socket() for every family, AF_UNIX included (a change from "all but
  AF_UNIX"): seccomp cannot read a connect()'s address and Landlock does not confine pathname unix
  sockets, so D-Bus or the docker socket would be ways out. socketpair(AF_UNIX), asyncio's self-pipe,
  stays. Landlock's TCP rules (ABI >= 4) deny bind/connect as well; io_uring, a way past seccomp, is off.
- Processes: ptrace, process_vm_readv/writev, pidfd_getfd and kcmp are refused, and prlimit and
  setpriority on others; Landlock also forbids tracing outside its domain and (ABI >= 6) scopes signals
  and abstract sockets to it. With no pid namespace to kill, setsid/setpgid are refused: every
  descendant stays in the process group the timeout kills. Namespaces (clone flags, unshare; clone3
  gets ENOSYS so glibc uses clone), mounts, keyrings, bpf, perf, SysV/POSIX IPC and modules are refused:
  surface Python does not need. A call of another ABI (i386, x32) kills the process: other numbers.
- Limits: the same rlimits. As root the child drops its groups and takes limits.uid/gid, or NPROC
  would not bind and the app's processes could be signalled; without root no uid change is possible,
  so Landlock ABI 6 (signal scoping) is then required.
- Root also makes a private mount namespace when it can (not in unprivileged containers): the work
  folder becomes a tmpfs capped at work_mb, as bubblewrap's, and a folder the sandbox uid cannot enter
  on the way to Python (/root, for a pyenv) is covered by a tmpfs holding only Python's paths, bound
  back. Elsewhere each file is capped by RLIMIT_FSIZE but not their total, and /dev/shm (multiprocessing
  semaphores) is out of reach.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import inspect
import json
import os
import platform
import resource
import shutil
import stat
import struct
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestra_tui.services import sandbox_layout as layout_mod

if TYPE_CHECKING:  # sandbox.py imports this module; the limits type is only named here
    from orchestra_tui.services.sandbox import SandboxLimits

SYS_LANDLOCK_CREATE_RULESET = 444  # the same on x86_64 and aarch64
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_MAKE_CHAR, FS_MAKE_BLOCK = 1 << 6, 1 << 11
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3 and 5
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # those a file rule takes
READ_EXEC = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
DEVICES = {"/dev/null": FS_READ_FILE | FS_WRITE_FILE, "/dev/zero": FS_READ_FILE, "/dev/random": FS_READ_FILE,
           "/dev/urandom": FS_READ_FILE}

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000  # x32 calls carry the x86_64 audit arch: told apart by this bit only
# name: (x86_64, aarch64); None where that architecture has no such call. Each is refused with EPERM.
DENIED_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    "socket": (41, 198),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "process_madvise": (440, 440), "pidfd_getfd": (438, 438), "kcmp": (312, 272),
    "setsid": (112, 157), "setpgid": (109, 154),
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "init_module": (175, 105),
    "finit_module": (313, 273), "delete_module": (176, 106),
    "name_to_handle_at": (303, 264), "open_by_handle_at": (304, 265),
    "chmod": (90, None), "fchmod": (91, 52), "fchmodat": (268, 53), "fchmodat2": (452, 452),
    "chown": (92, None), "fchown": (93, 55), "lchown": (94, None), "fchownat": (260, 54),
    "setxattr": (188, 5), "lsetxattr": (189, 6), "fsetxattr": (190, 7), "removexattr": (197, 14),
    "lremovexattr": (198, 15), "fremovexattr": (199, 16), "setxattrat": (463, 463), "removexattrat": (466, 466),
    "utime": (132, None), "utimes": (235, None), "futimesat": (261, None), "utimensat": (280, 88),
    "truncate": (76, 45), "inotify_add_watch": (254, 27), "fanotify_init": (300, 262),
    "shmget": (29, 194), "shmat": (30, 196), "shmctl": (31, 195), "semget": (64, 190), "semop": (65, 193),
    "semctl": (66, 191), "semtimedop": (220, 192), "msgget": (68, 186), "msgsnd": (69, 189),
    "msgrcv": (70, 188), "msgctl": (71, 187), "mq_open": (240, 180),
}
# Calls checked on their arguments, and clone3, refused with ENOSYS so that glibc falls back to clone,
# whose flags (unlike clone3's, behind a pointer) the filter can read.
CHECKED_SYSCALLS = {"socketpair": (53, 199), "clone": (56, 220), "clone3": (435, 435), "prlimit64": (302, 261),
                    "setpriority": (141, 140), "ioprio_set": (251, 30)}
AF_UNIX = 1
# Allowed only with these (argument, value) pairs, else EPERM: a pathless socket pair, and limits and
# priorities of the caller only. Landlock does not scope these calls: without root they could lower the
# app's limits or renice all of the user's processes (`who` 0 with PRIO_USER).
ONLY_WITH = {"socketpair": ((0, AF_UNIX),), "prlimit64": ((0, 0),), "setpriority": ((0, 0), (1, 0)),
             "ioprio_set": ((0, 1), (1, 0))}  # PRIO_PROCESS / IOPRIO_WHO_PROCESS, and pid 0
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
NR_OFFSET, ARCH_OFFSET, ARGS_OFFSET = 0, 4, 16  # struct seccomp_data; args are u64, read by their low word


def machine() -> str:
    name = platform.machine()
    return "aarch64" if name == "arm64" else name


def syscall_numbers(arch: str | None = None) -> dict[str, int]:
    """Every syscall the filter names, with its number on `arch` (this machine by default)."""
    index = ("x86_64", "aarch64").index(arch or machine())
    table = {**DENIED_SYSCALLS, **CHECKED_SYSCALLS}
    return {name: numbers[index] for name, numbers in table.items() if numbers[index] is not None}


def seccomp_program(arch: str | None = None, *, audit_arch: int | None = None) -> bytes:
    """The classic-BPF seccomp filter, as the kernel's packed `struct sock_filter` array."""
    arch = arch or machine()
    if arch not in AUDIT_ARCH:
        raise OSError(errno.ENOTSUP, f"no seccomp filter for the {arch} architecture")
    numbers = syscall_numbers(arch)

    def insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    kill, allow = insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS), insn(BPF_RET_K, SECCOMP_RET_ALLOW)
    refuse = insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM)
    # A call made under another ABI (int 0x80, x32) has other numbers: kill rather than misread it.
    program = [insn(BPF_LD_W_ABS, ARCH_OFFSET), insn(BPF_JEQ_K, audit_arch or AUDIT_ARCH[arch], 1, 0), kill,
               insn(BPF_LD_W_ABS, NR_OFFSET)]
    if arch == "x86_64":
        program += [insn(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1), kill]
    for name in DENIED_SYSCALLS:
        if name in numbers:
            program += [insn(BPF_JEQ_K, numbers[name], 0, 1), refuse]
    program += [insn(BPF_JEQ_K, numbers["clone3"], 0, 1), insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    # Each argument check ends in a return, since loading an argument overwrote the syscall number. The
    # arguments checked are ints, of which the kernel reads the low word only (little-endian: offset 0).
    for name, pairs in ONLY_WITH.items():
        program.append(insn(BPF_JEQ_K, numbers[name], 0, 2 * len(pairs) + 2))
        for index, (arg, value) in enumerate(pairs):  # a mismatch jumps over the rest, to `refuse`
            to_refuse = 2 * (len(pairs) - index) - 1
            program += [insn(BPF_LD_W_ABS, ARGS_OFFSET + 8 * arg), insn(BPF_JEQ_K, value, 0, to_refuse)]
        program += [allow, refuse]
    program += [insn(BPF_JEQ_K, numbers["clone"], 0, 4), insn(BPF_LD_W_ABS, ARGS_OFFSET),
                insn(BPF_JSET_K, CLONE_NAMESPACES, 0, 1), refuse, allow]
    return b"".join([*program, allow])


def abi_version() -> int:
    """The kernel's Landlock ABI; OSError when it has none (ENOSYS) or it is disabled (EOPNOTSUPP)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_long(0), ctypes.c_long(1))
    if abi < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return int(abi)


def handled_rights(abi: int) -> tuple[int, int, int]:
    """(fs, net, scopes) this ABI can restrict: all of them are restricted, and only rules reopen some."""
    fs = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    fs |= (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scopes = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scopes


def python_paths() -> list[str]:
    """What this interpreter reads at start and import: the installation and the venv's packages."""
    paths = {sys.base_prefix, sys.base_exec_prefix, sys.executable, getattr(sys, "_base_executable", sys.executable)}
    paths |= {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    if sys.prefix != sys.base_prefix:
        paths.add(os.path.join(sys.prefix, "pyvenv.cfg"))
    return sorted({os.path.realpath(path) for path in paths})


def ruleset(work: str) -> list[tuple[str, int]]:
    """(path, rights) granted; everything else is denied. Rights a file cannot take are dropped later."""
    read = [*layout_mod.SYSTEM_DIRS, *layout_mod.SYSTEM_LINKS, *layout_mod.ETC_FILES, *python_paths()]
    rules = [(path, READ_EXEC) for path in read]
    rules += list(DEVICES.items())
    # Everything in the work folder except device nodes (which would need CAP_MKNOD anyway).
    rules.append((work, ((1 << 16) - 1) & ~(FS_MAKE_CHAR | FS_MAKE_BLOCK)))
    return rules


def hidden_parents(paths: list[str]) -> list[tuple[str, list[str]]]:
    """For each top folder others cannot enter (no o+x) on the way to one of `paths`: that folder and
    the paths under it (outermost only), which the child, as root, binds into a tmpfs laid over it."""
    found: dict[str, list[str]] = {}
    for path in sorted(set(paths)):
        if not os.path.exists(path):
            continue
        parents = list(reversed(Path(path).parents))[1:]  # from the top down, without "/"
        top = next((str(p) for p in parents if not os.stat(p).st_mode & stat.S_IXOTH), None)
        if top and not any(path.startswith(kept + "/") for kept in found.get(top, [])):
            found.setdefault(top, []).append(path)
    return sorted(found.items())


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    fds: tuple[int, ...]


@contextlib.contextmanager
def launch(code: str, limits: SandboxLimits, env: dict[str, str]) -> Iterator[Launch]:
    """The bootstrap's command line for one snippet; the work folder is removed afterwards."""
    abi = abi_version()
    fs, net, scopes = handled_rights(abi)
    as_root = os.geteuid() == 0
    if not as_root and not scopes & SCOPE_SIGNAL:
        raise OSError(errno.ENOTSUP, f"Landlock ABI {abi} cannot keep signals from this user's processes "
                                     "and, not being root, the sandbox cannot switch uid (ABI 6 is needed)")
    uid, gid = limits.uid, limits.gid
    program = seccomp_program()
    work = tempfile.mkdtemp(prefix="orchestra-landlock-")
    fd = os.memfd_create("orchestra-landlock", 0)  # memfd: a tmpfs mounted on the work folder would hide a file
    try:
        os.write(fd, code.encode("utf-8"))
        os.lseek(fd, 0, os.SEEK_SET)
        if as_root:
            os.chown(work, uid, gid)
        rlimits = [item.split("=") for item in layout_mod.rlimit_args(limits)]
        spec = {
            "parent": os.getpid(), "work": work, "code_fd": fd, "script": layout_mod.SCRIPT_NAME,
            "drop": [uid, gid] if as_root else None, "work_bytes": limits.work_mb << 20,
            "reveal": hidden_parents([*python_paths(), work]) if as_root else [],
            "rlimits": [[name, *map(int, value.split(":"))] for name, value in rlimits],
            "fs": fs, "net": net, "scopes": scopes, "file_rights": FILE_RIGHTS,
            "rules": ruleset(work), "bpf": program.hex(),
            # -X utf8: -I ignores PYTHONIOENCODING, and the output is decoded as UTF-8 whatever the locale.
            "argv": [sys.executable, "-I", "-B", "-X", "utf8", layout_mod.SCRIPT_NAME],
        }
        argv = [sys.executable, "-I", "-S", "-B", "-c", bootstrap(), json.dumps(spec)]
        yield Launch(argv, {**env, "HOME": work, "TMPDIR": work}, work, (fd,))
    finally:
        os.close(fd)
        remove_tree(work)


def remove_tree(path: str) -> None:
    """rmtree, also through folders made closed (mkdir with mode 0; empty, as chmod is refused inside) that
    stop a parent without root. The snippet's processes are gone: none can swap a folder for a symlink."""

    def unlock(_func: object, target: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                os.chmod(target, 0o700)
                shutil.rmtree(target, ignore_errors=True)

    shutil.rmtree(path, onerror=unlock)
    shutil.rmtree(path, ignore_errors=True)


# --- run in the child, as the bootstrap: these use only the stdlib and each other ---------------------


def _checked(result: int, what: str) -> int:
    """A libc call's result, or its errno (ctypes keeps it per thread, for every use_errno library)."""
    if result < 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")
    return result


def _private_mounts(spec: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS; without CAP_SYS_ADMIN (containers) go on without it
        return

    def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        source_c, fstype_c, data_c = (text.encode() if text is not None else None for text in (source, fstype, data))
        _checked(libc.mount(source_c, target.encode(), fstype_c, ctypes.c_ulong(flags), data_c), target)

    mount(None, "/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE: nothing reaches the host
    for top, paths in spec["reveal"]:
        # OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE: detached copies, taken before the tmpfs hides them
        trees = [_checked(libc.syscall(ctypes.c_long(428), ctypes.c_long(-100), path.encode(),
                                    ctypes.c_long(1 | 0o2000000 | 0x8000)), path) for path in paths]
        mount("tmpfs", top, "tmpfs", 2 | 4, "mode=0711,size=64k")  # MS_NOSUID | MS_NODEV
        for path, tree in zip(paths, trees):
            if stat.S_ISDIR(os.fstat(tree).st_mode):
                os.makedirs(path, 0o711, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), 0o711, exist_ok=True)
                open(path, "wb").close()
            # move_mount(tree, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH)
            _checked(libc.syscall(ctypes.c_long(429), ctypes.c_long(tree), b"", ctypes.c_long(-100), path.encode(),
                               ctypes.c_long(4)), path)
            os.close(tree)
    uid, gid = spec["drop"]
    mount("tmpfs", spec["work"], "tmpfs", 2 | 4, f"size={spec['work_bytes']},mode=0700,uid={uid},gid={gid}")


def confine(spec: dict) -> None:
    """Apply `spec` to this (single-threaded) process; raises on any step it cannot take."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def prctl(option: int, arg: int) -> None:
        zero = ctypes.c_ulong(0)
        _checked(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), zero, zero, zero), f"prctl {option}")

    if spec["drop"]:
        _private_mounts(spec)
    os.chdir(spec["work"])  # after the mounts: the tmpfs, not the folder beneath it
    for name, soft, hard in spec["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if spec["drop"]:
        uid, gid = spec["drop"]
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # from uid 0 this also empties every capability set
    if os.getuid() == 0 or os.geteuid() == 0:
        raise PermissionError("refusing to run code as root")
    prctl(47, 4)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL: no inherited capabilities survive the exec
    prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL; set after the uid change, which clears it
    if os.getppid() != spec["parent"]:
        raise ProcessLookupError("the app exited before the sandbox was up")
    if not os.access(spec["argv"][0], os.X_OK):
        raise PermissionError(f"uid {os.getuid()} cannot run {spec['argv'][0]}: a folder on its way is closed")
    chunks = []
    while chunk := os.read(spec["code_fd"], 1 << 20):
        chunks.append(chunk)
    os.close(spec["code_fd"])
    with open(spec["script"], "wb") as script:
        script.write(b"".join(chunks))
    prctl(38, 1)  # PR_SET_NO_NEW_PRIVS: required by Landlock and seccomp without CAP_SYS_ADMIN

    attr = struct.pack("=QQQ", spec["fs"], spec["net"], spec["scopes"])
    size = 24 if spec["scopes"] else 16 if spec["net"] else 8  # the struct grew with the ABI
    ruleset = _checked(libc.syscall(ctypes.c_long(444), attr, ctypes.c_long(size), ctypes.c_long(0)), "ruleset")
    for path, access in spec["rules"]:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            if path == spec["work"]:
                raise
            continue  # /lib32 and the like exist on some systems only
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                access &= spec["file_rights"]
            rule = struct.pack("=Qi", access & spec["fs"], fd)  # landlock_path_beneath_attr, packed
            _checked(libc.syscall(ctypes.c_long(445), ctypes.c_long(ruleset), ctypes.c_long(1), rule,
                               ctypes.c_long(0)), path)
        finally:
            os.close(fd)
    _checked(libc.syscall(ctypes.c_long(446), ctypes.c_long(ruleset), ctypes.c_long(0)), "landlock_restrict_self")
    os.close(ruleset)

    install_seccomp(bytes.fromhex(spec["bpf"]))


def install_seccomp(program: bytes) -> None:
    """Load a seccomp filter into this thread; no_new_privs must be set already."""
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    zero = ctypes.c_ulong(0)
    _checked(libc.prctl(ctypes.c_int(22), ctypes.c_ulong(2), ctypes.byref(fprog), zero, zero), "seccomp")


def _bootstrap_main() -> None:
    try:
        spec = json.loads(sys.argv[1])
        confine(spec)
        os.execv(spec["argv"][0], spec["argv"])
    except BaseException as error:  # fail closed: the snippet never runs half-confined
        with contextlib.suppress(BaseException):
            sys.stderr.write(f"sandbox bootstrap: {error}\n")
            sys.stderr.flush()
        os._exit(125)


@functools.cache
def bootstrap() -> str:
    functions = (_checked, _private_mounts, confine, install_seccomp, _bootstrap_main)
    parts = [inspect.getsource(function) for function in functions]
    imports = "from __future__ import annotations\nimport contextlib, ctypes, json, os, resource, stat, struct, sys\n"
    return imports + "\n\n".join(parts) + "\n_bootstrap_main()\n"
