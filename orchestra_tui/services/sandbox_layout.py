"""What the bubblewrap sandbox sees, and the bwrap command line that builds it.

The sandbox is assembled from nothing: an empty root, the system directories read-only, a few files of
/etc, this Python installation read-only at a neutral path, a fresh /proc and /dev, and two small private
tmpfs folders (/tmp and the work folder). Nothing of the user's home or of the project is bound, so host
paths simply do not exist inside.

Privileges are dropped in one of two ways, because of how user namespaces map ids:
- as an ordinary user, bwrap creates a user namespace and maps uid 65534 inside to that user outside;
  NPROC is then counted in the new namespace, so the limit covers only the sandbox's processes;
- as root, a user namespace would map 65534 inside to uid 0 outside, and the kernel exempts uid 0 from
  RLIMIT_NPROC (and root owns most files). So as root no user namespace is made: the launcher starts as
  root with only CAP_SETUID/SETGID/SETPCAP, empties the capability bounding set and switches to the real
  host uid 65534 before running the snippet; every limit then binds.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

WORK_DIR = "/work"
SCRIPT_NAME = "snippet.py"
SANDBOX_PYTHON = "/opt/python"  # where the base installation appears when it lives outside /usr
SANDBOX_VENV = "/opt/venv"  # where a virtual environment's libraries appear
SYSTEM_DIRS = ("/usr",)
# Top-level names that merged-/usr systems make symlinks and older ones real directories.
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what the dynamic loader and Python need from /etc; no shadow, no resolver configuration.
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime")
RLIMIT_NAMES = {
    "cpu_s": "RLIMIT_CPU",
    "memory_mb": "RLIMIT_AS",
    "processes": "RLIMIT_NPROC",
    "file_mb": "RLIMIT_FSIZE",
    "open_files": "RLIMIT_NOFILE",
}

# Runs inside the sandbox as `python -I -S -B -c LAUNCHER SPEC... -- COMMAND...`. It fails closed: any
# error ends it with status 125 before the snippet runs. Kept free of imports beyond the stdlib core.
LAUNCHER = """
import os, resource, sys
def fail(message):
    sys.stderr.write("sandbox launcher: " + message + "\\n")
    os._exit(125)
try:
    args = sys.argv[1:]
    cut = args.index("--")
    drop = None
    for item in args[:cut]:
        key, value = item.split("=", 1)
        if key == "drop":
            drop = [int(part) for part in value.split(":")]
        else:
            soft, hard = (int(part) for part in value.split(":"))
            resource.setrlimit(getattr(resource, key), (soft, hard))
    if drop is not None:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for cap in range(last + 1):
            if prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                fail("cannot drop capability %d" % cap)
        os.setgroups([])
        os.setresgid(drop[1], drop[1], drop[1])
        os.setresuid(drop[0], drop[0], drop[0])
    if os.getuid() == 0 or os.geteuid() == 0:
        fail("refusing to run code as root")
    command = args[cut + 1:]
    os.execv(command[0], command)
except Exception as error:
    fail(repr(error))
"""


@dataclass
class PythonLayout:
    """How this interpreter appears inside the sandbox."""

    ro_binds: list[tuple[str, str]] = field(default_factory=list)  # (host, sandbox)
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (target, link in the sandbox)
    data_files: dict[str, str] = field(default_factory=dict)  # sandbox path -> text (read-only)
    launcher: str = "/usr/bin/python3"  # base interpreter, started without site for the launcher
    python: str = "/usr/bin/python3"  # interpreter that runs the snippet (the venv one, when there is one)
    env: dict[str, str] = field(default_factory=dict)
    path_dirs: tuple[str, ...] = ()


def _under_system_dirs(path: Path) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in SYSTEM_DIRS)


def python_layout() -> PythonLayout:
    """Map the running interpreter (and its venv, if any) into the sandbox read-only.

    The base installation keeps its path when it is under /usr (already bound); otherwise it appears at
    /opt/python, so a home folder's name does not leak and /root or /home need not exist inside. A venv
    is rebuilt at /opt/venv from its library folder plus a generated pyvenv.cfg, because the real one
    names host paths and its bin/ holds scripts with host shebangs.
    """
    base = Path(sys.base_prefix).resolve()
    base_exe = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    relocated = not _under_system_dirs(base)
    inside_base = Path(SANDBOX_PYTHON) if relocated else base
    launcher = str(inside_base / base_exe.relative_to(base))
    layout = PythonLayout(launcher=launcher, python=launcher, path_dirs=(str(inside_base / "bin"),))
    if relocated:
        layout.ro_binds.append((str(base), SANDBOX_PYTHON))
        # Builds with --enable-shared often carry an absolute RUNPATH to their own lib/; point the loader
        # at the relocated copy instead.
        layout.env["LD_LIBRARY_PATH"] = f"{SANDBOX_PYTHON}/lib"
    if Path(sys.prefix).resolve() != base:
        _add_venv(layout, Path(sys.prefix), inside_base)
    return layout


def _add_venv(layout: PythonLayout, venv: Path, inside_base: Path) -> None:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    # Where site looks for a venv's packages on POSIX, whatever the host layout.
    lib = Path(sysconfig.get_path("purelib")).resolve()
    layout.ro_binds.append((str(lib), f"{SANDBOX_VENV}/lib/{version}/site-packages"))
    for name in ("python3", "python", version):
        layout.symlinks.append((layout.launcher, f"{SANDBOX_VENV}/bin/{name}"))
    system_site = "false"
    try:
        for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "include-system-site-packages":
                system_site = value.strip()
    except OSError:
        pass
    layout.data_files[f"{SANDBOX_VENV}/pyvenv.cfg"] = (
        f"home = {inside_base}/bin\ninclude-system-site-packages = {system_site}\n"
    )
    layout.python = f"{SANDBOX_VENV}/bin/python3"
    layout.path_dirs = (f"{SANDBOX_VENV}/bin", *layout.path_dirs)


def identity_files(uid: int, gid: int) -> dict[str, str]:
    """A passwd and group naming only the sandbox user, so `getpass.getuser()` and friends work."""
    return {
        "/etc/passwd": f"nobody:x:{uid}:{gid}:nobody:{WORK_DIR}:/usr/sbin/nologin\n",
        "/etc/group": f"nogroup:x:{gid}:\n",
    }


def system_args() -> list[str]:
    args: list[str] = []
    for directory in SYSTEM_DIRS:
        args += ["--ro-bind", directory, directory]
    for name in SYSTEM_LINKS:
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    for name in ETC_FILES:
        args += ["--ro-bind-try", name, name]
    return args


def parent_dir_args(paths: list[str]) -> list[str]:
    """Create the ancestors of `paths` as 0755 directories: left to itself bwrap makes them 0700 and
    owned by root, which the unprivileged user could not traverse."""
    parents = {str(parent) for path in paths for parent in Path(path).parents if str(parent) != "/"}
    ordered = sorted(parents, key=lambda p: (p.count("/"), p))  # a folder before its subfolders
    return [arg for parent in ordered for arg in ("--perms", "0755", "--dir", parent)]


def namespace_args(as_root: bool, uid: int, gid: int) -> list[str]:
    # Every namespace but the user one is listed by hand: --unshare-all would make a user namespace
    # as root too (mapping 0 to 0), which defeats the drop to a real unprivileged uid.
    args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if as_root:
        args += ["--cap-drop", "ALL"]
        args += [arg for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP") for arg in ("--cap-add", cap)]
    else:
        args += ["--unshare-user", "--uid", str(uid), "--gid", str(gid), "--disable-userns"]
        args += ["--cap-drop", "ALL"]
    return args


def rlimit_args(limits: object) -> list[str]:
    """NAME=soft:hard items for the launcher; CPU gets one second of grace so SIGXCPU comes first."""
    items = []
    for attr, name in RLIMIT_NAMES.items():
        value = int(getattr(limits, attr))
        if attr.endswith("_mb"):
            value *= 1024 * 1024
        hard = value + 1 if attr == "cpu_s" else value
        items.append(f"{name}={value}:{hard}")
    items.append("RLIMIT_CORE=0:0")  # no core files in the work folder
    return items
