"""The pieces of the Landlock layer on their own: the seccomp program against this machine, the rules.

The escape tests in test_sandbox.py run the whole layer; here the filter's constants are checked
against the running platform (its ELF header, its kernel headers, and the kernel itself), and the
rules and the bootstrap's fail-closed start are checked directly.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from orchestra_tui.services import landlock as landlock_mod
from orchestra_tui.services.sandbox import LandlockRunner, SandboxLimits

MACHINE = landlock_mod.machine()
needs_filter = pytest.mark.skipif(MACHINE not in landlock_mod.AUDIT_ARCH,
                                  reason=f"no seccomp filter is built for {MACHINE}")
PROJECT = Path(__file__).resolve().parents[1]


def _landlock_missing() -> str | None:
    try:
        landlock_mod.abi_version()
    except OSError as error:
        return f"the kernel lacks Landlock ({error.strerror})"
    return None


needs_landlock = pytest.mark.skipif(_landlock_missing() is not None, reason=str(_landlock_missing()))


def instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return list(struct.iter_unpack("=HBBI", program))


def header_numbers(path: Path) -> dict[str, int]:
    """__NR_* values from a kernel uapi header, following asm-generic's __NR3264_* aliases."""
    raw = dict(re.findall(r"^#define\s+(__NR(?:3264)?_\w+)\s+(\w+)", path.read_text(), flags=re.M))
    numbers = {}
    for name, value in raw.items():
        value = raw.get(value, value)
        if name.startswith("__NR_") and value.isdigit():
            numbers[name[len("__NR_"):]] = int(value)
    return numbers


def find_header(arch: str) -> Path | None:
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{arch}-linux-gnu"
    candidates = {
        "x86_64": [f"/usr/include/{multiarch}/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"],
        "aarch64": ["/usr/include/asm-generic/unistd.h"],  # arm64 uses the generic table
    }[arch]
    return next((Path(path) for path in candidates if Path(path).exists()), None)


# --- the filter against this platform ------------------------------------------------------------------


@needs_filter
def test_the_audit_arch_is_the_one_of_this_interpreters_elf_header():
    with open(os.path.realpath(sys.executable), "rb") as elf:
        header = elf.read(20)
    assert header[:4] == b"\x7fELF"
    little = header[5] == 1
    (e_machine,) = struct.unpack("<H" if little else ">H", header[18:20])
    # include/uapi/linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    expected = e_machine | (0x80000000 if header[4] == 2 else 0) | (0x40000000 if little else 0)
    program = instructions(landlock_mod.seccomp_program())
    assert program[0] == (landlock_mod.BPF_LD_W_ABS, 0, 0, landlock_mod.ARCH_OFFSET)
    assert program[1] == (landlock_mod.BPF_JEQ_K, 1, 0, expected)  # a match skips the kill that follows
    assert program[2] == (landlock_mod.BPF_RET_K, 0, 0, landlock_mod.SECCOMP_RET_KILL_PROCESS)
    assert program[-1] == (landlock_mod.BPF_RET_K, 0, 0, landlock_mod.SECCOMP_RET_ALLOW)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_syscall_numbers_match_the_kernel_headers(arch):
    header = find_header(arch)
    if header is None:
        pytest.skip(f"no kernel headers for {arch} here (apt-get install linux-libc-dev)")
    known = header_numbers(header)
    newest = max(known.values())
    ours = landlock_mod.syscall_numbers(arch)
    for name, number in ours.items():
        if name in known:
            assert number == known[name], name
        else:  # newer than these headers: then it must come after every call they know
            assert number > newest, name
    index = ("x86_64", "aarch64").index(arch)
    missing = [name for name, numbers in landlock_mod.DENIED_SYSCALLS.items() if numbers[index] is None]
    assert [name for name in missing if name in known] == []  # absent there for real, not forgotten
    program = instructions(landlock_mod.seccomp_program(arch))
    compared = {k for code, _, _, k in program if code == landlock_mod.BPF_JEQ_K}
    assert set(ours.values()) <= compared  # every number named is checked by the program


# Each line: the call, and its outcome (ok or the errno name). Run once bare and once filtered.
PROBE_CALLS = r'''
import ctypes, errno, json, os, resource, socket, sys, tempfile, threading
from orchestra_tui.services import landlock
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nr = landlock.syscall_numbers()
if sys.argv[1] == "filtered":
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    landlock.install_seccomp(landlock.seccomp_program())
def outcome(rc):
    return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]
def raw(name, *args):
    return outcome(libc.syscall(ctypes.c_long(nr[name]), *[ctypes.c_long(arg) for arg in args]))
def python(action):
    try:
        action()
    except OSError as error:
        return errno.errorcode[error.errno]
    return "ok"
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
def thread():
    worker = threading.Thread(target=len, args=("",))
    worker.start()
    worker.join()
pair = (ctypes.c_int * 2)()
buffer = ctypes.create_string_buffer(b"x" * 16)
iovec = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 8)
path = tempfile.mkstemp()[1]
path_c = ctypes.create_string_buffer(path.encode())
results = {
    "socket_inet": raw("socket", socket.AF_INET, socket.SOCK_STREAM, 0),
    "socket_unix": raw("socket", socket.AF_UNIX, socket.SOCK_STREAM, 0),
    "socketpair_unix": python(socket.socketpair),
    "socketpair_inet": raw("socketpair", socket.AF_INET, socket.SOCK_STREAM, 0, ctypes.addressof(pair)),
    "ptrace": raw("ptrace", 2, os.getppid(), 0, 0),  # PTRACE_PEEKDATA of a process we do not trace
    "process_vm_readv": raw("process_vm_readv", os.getpid(), ctypes.addressof(iovec), 1,
                            ctypes.addressof(iovec), 1, 0),  # from itself, into itself
    "unshare": raw("unshare", 0),
    "clone3": raw("clone3", 0, 0),
    "chmod": python(lambda: os.chmod(path, 0o600)),
    "fchmodat2": raw("fchmodat2", -100, ctypes.addressof(path_c), 0o600, 0),
    "truncate": python(lambda: os.truncate(path, 0)),
    "utime": python(lambda: os.utime(path)),
    "fork": python(fork),
    "thread": python(thread),
    "getpid": "ok" if libc.getpid() == os.getpid() else "wrong",
    "prlimit_other": raw("prlimit64", os.getppid(), 4, 0, ctypes.addressof(buffer)),  # read RLIMIT_CORE
    "setrlimit_own": python(lambda: resource.setrlimit(resource.RLIMIT_CORE, resource.getrlimit(resource.RLIMIT_CORE))),
    "setpriority_pid": python(lambda: os.setpriority(os.PRIO_PROCESS, os.getpid(), os.getpriority(os.PRIO_PROCESS, 0))),
    "nice": python(lambda: os.nice(0)),
    "setsid": raw("setsid"),  # last: it is not undone
}
# A raw clone with CLONE_NEWUSER | SIGCHLD: the filter must read the flags; the child leaves at once.
rc = libc.syscall(ctypes.c_long(nr["clone"]), ctypes.c_long(0x10000000 | 17), *[ctypes.c_long(0)] * 4)
if rc == 0:
    os._exit(0)
results["clone_newuser"] = outcome(rc)
if rc > 0:
    os.waitpid(rc, 0)
os.unlink(path)
print(json.dumps(results))
'''


@needs_filter
def test_the_filter_refuses_what_it_names_and_lets_python_work():
    outcomes = {}
    for mode in ("bare", "filtered"):
        done = subprocess.run([sys.executable, "-c", PROBE_CALLS, mode], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        outcomes[mode] = json.loads(done.stdout)
    refused = {"socket_inet", "socket_unix", "socketpair_inet", "ptrace", "process_vm_readv", "unshare", "chmod",
               "fchmodat2", "truncate", "utime", "setsid", "clone_newuser", "prlimit_other", "setpriority_pid"}
    expected = {name: "EPERM" for name in refused}
    expected.update(clone3="ENOSYS", socketpair_unix="ok", fork="ok", thread="ok", getpid="ok", setrlimit_own="ok",
                    nice="ok")
    assert outcomes["filtered"] == expected
    # Bare, the same calls behave otherwise: so each number the filter refuses is that call's number.
    bare = outcomes["bare"]
    plain = ("socket_inet", "socket_unix", "process_vm_readv", "unshare", "chmod", "truncate", "utime", "setsid",
             "prlimit_other", "setpriority_pid")
    assert {name: bare[name] for name in plain} == dict.fromkeys(plain, "ok")
    unsupported = errno.errorcode[errno.EOPNOTSUPP]
    assert (bare["socketpair_inet"], bare["ptrace"], bare["clone3"]) == (unsupported, "ESRCH", "EINVAL")
    assert bare["fchmodat2"] in ("ok", "ENOSYS")  # ENOSYS before Linux 6.6, when the number was unused
    if os.geteuid() == 0:  # without root, user namespaces may well be switched off
        assert bare["clone_newuser"] == "ok"


KILLED = (
    "import ctypes, sys\n"
    "from orchestra_tui.services import landlock\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "assert libc.prctl(38, 1, 0, 0, 0) == 0\n"
    "landlock.install_seccomp(bytes.fromhex(sys.argv[1]))\n"
    "if len(sys.argv) > 2:\n"
    "    libc.syscall(ctypes.c_long(int(sys.argv[2])))\n"
    "print('alive')\n"
)


@needs_filter
def test_a_call_under_another_architecture_kills_the_process():
    other = next(arch for arch in landlock_mod.AUDIT_ARCH if arch != MACHINE)
    right = landlock_mod.seccomp_program().hex()
    wrong = landlock_mod.seccomp_program(audit_arch=landlock_mod.AUDIT_ARCH[other]).hex()
    runs = {"right": [right], "wrong": [wrong]}
    if MACHINE == "x86_64":  # an x32 call carries the x86_64 audit arch: only its number tells it apart
        runs["x32"] = [right, str(landlock_mod.X32_SYSCALL_BIT | 39)]  # x32 getpid
    codes = {name: subprocess.run([sys.executable, "-c", KILLED, *args], capture_output=True, text=True,
                                  timeout=60) for name, args in runs.items()}
    assert (codes["right"].returncode, codes["right"].stdout) == (0, "alive\n")
    for name in runs.keys() - {"right"}:
        assert (codes[name].returncode, codes[name].stdout) == (-signal.SIGSYS, ""), name


# --- the rules and the bootstrap -----------------------------------------------------------------------


def test_the_rules_grant_nothing_of_the_project_or_home_but_the_python_in_them():
    work = tempfile.mkdtemp()
    try:
        rules = landlock_mod.ruleset(work)
    finally:
        os.rmdir(work)
    python = set(landlock_mod.python_paths())
    for path, rights in rules:
        resolved = Path(os.path.realpath(path))
        for private in (PROJECT, Path.home().resolve()):
            assert resolved != private and resolved not in private.parents, path  # not it, nor a folder above it
            if private in resolved.parents:
                assert str(resolved) in python, path
        writable = rights & ~landlock_mod.READ_EXEC
        assert not writable or path in (work, "/dev/null"), path
    assert [path for path, _ in rules if path in ("/", "/proc", "/tmp", "/dev")] == []


def test_closed_folders_on_the_way_to_python_are_found(tmp_path):
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        if any(not os.stat(parent).st_mode & stat.S_IXOTH for parent in base.parents):
            pytest.skip("the temporary folder itself lies in a folder closed to others")
        closed = base / "closed"
        (closed / "py" / "lib").mkdir(parents=True)
        (base / "open" / "venv").mkdir(parents=True)
        closed.chmod(0o700)
        wanted = [str(closed / "py"), str(closed / "py" / "lib"), str(base / "open" / "venv")]
        assert landlock_mod.hidden_parents(wanted) == [(str(closed), [str(closed / "py")])]
    finally:
        landlock_mod.remove_tree(str(base))
    assert not base.exists()


@needs_landlock
async def test_the_bootstrap_fails_closed(monkeypatch):
    monkeypatch.setattr(landlock_mod, "seccomp_program", lambda: b"\x06\x00" * 3)  # not whole instructions
    result = await LandlockRunner(SandboxLimits()).run("print('ran')\n", timeout_s=60)
    assert (result.stdout, result.exit_code) == ("", 125)
    assert result.stderr == "sandbox bootstrap: [Errno 22] seccomp: Invalid argument\n"
