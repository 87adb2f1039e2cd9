"""What a VM of the ``vm`` placement boots: a host kernel and a tiny initramfs of our own.

The guest runs the worker of the host's own Python environment at the same absolute paths,
so nothing has to be installed into an image, but it sees only what that worker needs
(:func:`guest_root`): the folders of the environment (the venv and the base interpreter's
files it links to), the project, the folders of the shared libraries the interpreter loads,
the model cache and a model path the run names, each shared read-only over its own virtio-9p
device and mounted at its host path. The rest of the guest's root is built in the initramfs:
the interpreter binary and the loader's cache copied in, the symbolic links on the way to
them (``/lib64 -> usr/lib64`` and the like), and empty ``/tmp``, ``/run`` and working folder.
The host's ``/etc``, ``/home``, ``/root``, ``/var`` and everything else stay out.

Distribution kernels build virtio and 9p as modules, so the initramfs holds busybox
(``busybox-static``), those modules with their dependencies (resolved from ``modules.dep``)
and an ``/init`` script that mounts the shares, finds the virtio-serial port that carries
the protocol, runs the worker there (chrooted into the guest root) and powers off.

Everything is written in Python (newc cpio, a few dozen lines) rather than with virtme-ng or
``cpio``: the VM must be started as our own child with our own QEMU options (QMP on a
pre-opened socket, pinned vCPUs, memory bound to NUMA nodes), which a launcher that execs
QEMU itself would get in the way of.
"""

from __future__ import annotations

import functools
import glob
import gzip
import io
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.errors import UsageError
from scaler.targets.vmplan import PORT_NAME, SHARE_TAG  # noqa: F401  (the init script's names)

# Modules the guest needs, loaded with their dependencies unless built into the kernel.
GUEST_TMPDIR = "/run/tmp"  # writable scratch in the guest (a tmpfs); the rest is read-only
GUEST_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
BUSYBOX_APPLETS = ("sh", "mount", "insmod", "mkdir", "cat", "cut", "poweroff", "chroot",
                   "hostname", "echo", "ls", "sleep", "head", "ln", "chmod", "env")
INIT_MARK = "scaler-init:"  # prefix of every console line the init script prints
WORKER_EXITED = f"{INIT_MARK} worker exited with code"
STAT_MARK = f"{INIT_MARK} stat "  # the guest's /proc/stat cpu line, every STAT_INTERVAL_S
STAT_INTERVAL_S = 2

INIT_SCRIPT = r"""#!/bin/sh
# scaler VM init: build the guest root from the read-only 9p shares of the host folders the
# worker needs, run one worker there on the virtio-serial port named "scaler" (the protocol),
# its stderr on the console, then power off.
export PATH=/bin
fail() { echo "scaler-init: error: $*"; poweroff -f; sleep 5; }
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev \
  || fail "cannot mount /proc, /sys or /dev"
echo "scaler-init: kernel up after $(cut -d' ' -f1 /proc/uptime) s, loading modules"
for m in $(cat /modules/order); do
  insmod "/modules/$m" || fail "cannot load kernel module $m (modules of another kernel?)"
done
# the guest root: /newroot of this initramfs (skeleton from /scaler/job), shares mounted last
R=/newroot
mkdir -p $R/proc $R/sys $R/dev $R/run/tmp $R/run/scaler $R/tmp && chmod 1777 $R/tmp $R/run/tmp
mount -t proc proc $R/proc && mount -t sysfs sysfs $R/sys && mount -t devtmpfs devtmpfs $R/dev \
  && mkdir -p $R/dev/shm && mount -t tmpfs tmpfs $R/dev/shm \
  || fail "cannot mount /proc, /sys, /dev or /dev/shm in the guest root"
share() {
  mkdir -p "$R$2" && mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 \
    "$1" "$R$2" || fail "cannot mount host folder $2 over virtio-9p"
}
echo "scaler-init: mounting the host folders the worker needs over virtio-9p"
. /scaler/shares
ln /bin/busybox $R/run/scaler/busybox || fail "cannot put busybox in the guest root"
port=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = scaler ] && port="/dev/${p##*/}"
done
[ -n "$port" ] || fail "no virtio-serial port named scaler"
. /scaler/job
hostname "$SCALER_HOSTNAME"
mkdir -p "$R$SCALER_CWD"
# the guest's CPU times (steal) on the console while it runs; the host keeps them off the log
( while :; do echo "scaler-init: stat $(head -n 1 /proc/stat)"; sleep STAT_INTERVAL; done ) &
echo "scaler-init: starting the worker on $port"
# not exec'd, and from a subshell: the worker must not be a child of PID 1 (it takes a parent
# of PID 1 for an orphan and exits), and PID 1 must stay to power off when it ends
B=/run/scaler/busybox
( chroot $R $B sh -c 'cd "$1" || cd /; shift; exec '$B' env "$@"' sh "$SCALER_CWD" "$@" \
    0<>"$port" 1>&0 2>/dev/console
  echo "scaler-init: worker exited with code $?" )
poweroff -f
sleep 5
""".replace("STAT_INTERVAL", str(STAT_INTERVAL_S))


@dataclass(frozen=True)
class Kernel:
    path: str
    version: str
    modules_dir: str


def newest_kernel(pattern: str = "/boot/vmlinuz-*") -> str:
    """The newest kernel image on the host (by version order of the file names)."""
    found = sorted(glob.glob(pattern), key=_version_key)
    if not found:
        raise UsageError(f"no kernel matches {pattern}: install one (apt-get install "
                         "linux-image-amd64 on Debian, linux-image-generic on Ubuntu) or "
                         "give --vm-kernel")
    return found[-1]


def _version_key(path: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+_]", path)]


def kernel_version(path: str) -> str:
    """The release string of an x86 bzImage, read from its setup header.

    The header holds, at 0x20E, a pointer (less 0x200) to a string starting with the release
    (``6.1.0-56-amd64 (debian-kernel@...)``). Reading it works for any kernel file the user
    gives, whatever it is named.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(0x10200)  # the version pointer is 16 bits, past 0x200
    except PermissionError:
        raise UsageError(
            f"--vm-kernel {path}: not readable by this user (Ubuntu installs kernels "
            "root-only, mode 0600): run as root, or copy it and give the copy: "
            f"sudo install -m 0644 {path} ~/vmlinuz && --vm-kernel ~/vmlinuz") from None
    except OSError as exc:
        raise UsageError(f"--vm-kernel {path}: {exc.strerror or exc}") from None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise UsageError(f"--vm-kernel {path}: not an x86 Linux kernel image (no bzImage header)")
    offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    if offset >= len(head):
        raise UsageError(f"--vm-kernel {path}: kernel version string not found")
    text = head[offset:offset + 256].split(b"\0", 1)[0]
    release = text.split(b" ", 1)[0].decode(errors="replace")
    if not re.fullmatch(r"[\w.+~-]{1,64}", release):
        raise UsageError(f"--vm-kernel {path}: no kernel version string in its header")
    return release


def find_kernel(path: str | None, modules_root: str = "/lib/modules") -> Kernel:
    """The kernel to boot (``--vm-kernel`` or the newest in /boot) and its modules folder."""
    path = path or newest_kernel()
    if not os.path.isfile(path):
        raise UsageError(f"--vm-kernel {path}: no such file")
    version = kernel_version(path)
    modules_dir = os.path.join(modules_root, version)
    if not os.path.isdir(modules_dir):
        raise UsageError(f"--vm-kernel {path} is release {version} but {modules_dir} does not "
                         "exist: the guest needs that kernel's virtio and 9p modules")
    return Kernel(path, version, modules_dir)


def check_kernel(kernel: Kernel) -> bytes:
    """Everything the guest needs from ``kernel`` and this host, read now: the module
    index, each module (decompressed), busybox. Returns the shared initramfs; UsageError
    naming what is missing. Run before any group so a bad kernel fails the run at once."""
    return base_initramfs(kernel)


def module_files(modules_dir: str, wanted: Iterable[str] = GUEST_MODULES) -> list[str]:
    """Module files (relative to ``modules_dir``) to load, dependencies first.

    ``modules.dep`` lists every module's dependencies; a wanted module not listed there must
    be built in (``modules.builtin``), else the kernel cannot serve as a guest.
    """
    deps: dict[str, list[str]] = {}
    try:
        with open(os.path.join(modules_dir, "modules.dep")) as f:
            for line in f:
                name, _, rest = line.partition(":")
                deps[name.strip()] = rest.split()
        builtin_text = Path(modules_dir, "modules.builtin").read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the module index in {modules_dir}: {exc}") from None
    by_name = {_module_name(p): p for p in deps}
    builtin = {_module_name(p) for p in builtin_text.split()}
    order: list[str] = []

    def add(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            add(dep)
        order.append(path)

    missing = []
    for name in wanted:
        key = name.replace("-", "_")
        if key in by_name:
            add(by_name[key])
        elif key not in builtin:
            missing.append(name)
    if missing:
        raise UsageError(
            f"the kernel of {modules_dir} has neither a module nor built-in support for "
            f"{', '.join(missing)}: the guest needs virtio-pci, virtio-console and 9p over "
            "virtio (install that kernel's extra modules, e.g. Ubuntu's "
            f"linux-modules-extra-{os.path.basename(modules_dir)}, or give another --vm-kernel)")
    absent = [p for p in order if not os.path.isfile(os.path.join(modules_dir, p))]
    if absent:
        raise UsageError(f"{modules_dir}/modules.dep lists {absent[0]} but the file is not "
                         "there: reinstall that kernel's modules or give another --vm-kernel")
    return order


def _module_name(path: str) -> str:
    return os.path.basename(path).split(".ko", 1)[0].replace("-", "_")


def _module_bytes(path: str) -> bytes:
    """A module file, decompressed when the distribution ships it compressed (Debian: xz
    or none, Ubuntu 23.10+: zstd): busybox insmod hands the kernel raw ELF bytes."""
    try:
        data = Path(path).read_bytes()
        if path.endswith(".xz"):
            return lzma.decompress(data)
        if path.endswith(".gz"):
            return gzip.decompress(data)
        if path.endswith(".zst"):
            return zstd_decompress(data, path)
    except (OSError, lzma.LZMAError, gzip.BadGzipFile, EOFError) as exc:
        raise UsageError(f"cannot read kernel module {path}: {exc}") from None
    return data


def zstd_decompress(data: bytes, name: str = "data") -> bytes:
    """zstd frames decompressed by Python's own module where there is one (3.14:
    ``compression.zstd``; the ``zstandard`` package) or else by the ``zstd`` program."""
    try:
        from compression import zstd  # type: ignore[import-not-found]

        return zstd.decompress(data)  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)  # type: ignore
    except ImportError:
        pass
    tool = shutil.which("zstd")
    if tool is None:
        raise UsageError(f"{name} is zstd-compressed and neither Python nor the zstd program "
                         "can decompress it: apt-get install zstd")
    done = subprocess.run([tool, "-d", "-c", "-q"], input=data, capture_output=True,
                          timeout=60)
    if done.returncode != 0:
        raise UsageError(f"{name}: zstd -d failed: "
                         f"{done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout


def find_busybox() -> str:
    for path in BUSYBOX_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise UsageError("busybox not found: the VM's initramfs needs a static busybox "
                     "(apt-get install busybox-static)")


class Cpio:
    """A newc (``070701``) cpio archive, the format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 0

    def add(self, name: str, mode: int, data: bytes = b"") -> None:
        self.ino += 1
        self._entry(self.ino, name, mode, data)

    def dir(self, name: str) -> None:
        self.add(name, 0o040755)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self.add(name, 0o100755 if executable else 0o100644, data)

    def symlink(self, name: str, target: str) -> None:
        self.add(name, 0o120777, target.encode())

    def _entry(self, ino: int, name: str, mode: int, data: bytes) -> None:
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = b"070701" + "".join(f"{v:08X}" for v in fields).encode() + encoded
        self.buf.write(header + b"\0" * (-len(header) % 4))
        self.buf.write(data + b"\0" * (-len(data) % 4))

    def finish(self) -> bytes:
        self._entry(0, "TRAILER!!!", 0, b"")
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def base_initramfs(kernel: Kernel) -> bytes:
    """busybox, the guest modules of ``kernel`` and the init script (shared by all VMs)."""
    modules = module_files(kernel.modules_dir)
    archive = Cpio()
    for d in ("bin", "proc", "sys", "dev", "newroot", "modules", "scaler"):
        archive.dir(d)
    archive.file("bin/busybox", Path(find_busybox()).read_bytes(), executable=True)
    for applet in BUSYBOX_APPLETS:
        archive.symlink(f"bin/{applet}", "busybox")
    names = []
    for rel in modules:
        name = _module_name(rel) + ".ko"
        archive.file(f"modules/{name}", _module_bytes(os.path.join(kernel.modules_dir, rel)))
        names.append(name)
    archive.file("modules/order", ("\n".join(names) + "\n").encode())
    archive.file("init", INIT_SCRIPT.encode(), executable=True)
    return archive.finish()


def job_archive(argv: Sequence[str], hostname: str, cwd: str,
                root: GuestRoot | None = None) -> bytes:
    """The per-VM part: ``/scaler/job``, sourced by init, sets the worker's argv;
    ``/scaler/shares`` mounts the host folders of ``root`` (share k is 9p tag ``scalerK``,
    as in the QEMU command line), and ``/newroot`` holds the rest of the guest root.

    Appended to the shared archive (the kernel unpacks concatenated cpio archives in turn).
    Every value is quoted with ``shlex``: argv may hold user paths (``--model``).
    """
    lines = [f"SCALER_HOSTNAME={shlex.quote(hostname)}", f"SCALER_CWD={shlex.quote(cwd)}",
             "set -- " + shlex.join(argv), ""]
    archive = Cpio()
    archive.file("scaler/job", "\n".join(lines).encode())
    root = root or GuestRoot((), (), ())
    shares = [f"share {SHARE_TAG}{k} {shlex.quote(path)}" for k, path in enumerate(root.shares)]
    archive.file("scaler/shares", ("\n".join(shares) + "\n").encode())
    made = {""}

    def parents(path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for k in range(1, len(parts) + 1):
            folder = "/".join(parts[:k])
            if folder not in made:
                archive.dir(f"newroot/{folder}")
                made.add(folder)

    for link, target in root.links:
        parents(link)
        archive.symlink(f"newroot{link}", target)
    for path, source in root.files:
        parents(path)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {source} for the VM: {exc.strerror or exc}") from None
        archive.file(f"newroot{path}", data, executable=os.access(source, os.X_OK))
    return archive.finish()


# -- the guest root: what the worker may see ------------------------------------------------

PSEUDO_FS = ("/proc", "/sys", "/dev")  # the guest mounts its own
MAX_SHARES = 16  # virtio-9p devices per VM (each takes a PCI slot)
LD_CACHE = "/etc/ld.so.cache"
LD_CONF = "/etc/ld.so.conf"


@dataclass(frozen=True)
class GuestRoot:
    """The guest's root file system: host folders shared read-only at their own paths
    (``shares``, real paths, none inside another), symbolic links as the host has them on
    the way to what is needed (``links``: path, target), and host files copied into the
    initramfs (``files``: path, host file)."""

    shares: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, list[Any]]:
        return {"shares": list(self.shares), "links": [list(x) for x in self.links],
                "files": [path for path, _ in self.files]}


def guest_root(python: str, paths: Iterable[str] = (), cwd: str | None = None) -> GuestRoot:
    """What a worker run by ``python`` (absolute) needs to see in the guest: its environment
    (:func:`python_folders`), the project, the shared-library folders, each existing path of
    ``paths`` (a model file or folder, the model cache; relative ones to ``cwd``), and the
    links and files on the way to the interpreter, its loader and those paths."""
    cwd = cwd or os.getcwd()
    wanted = [os.path.join(cwd, p) for p in paths if p]
    wanted = [p for p in wanted if os.path.exists(p)]
    folders = [*python_folders(python), project_folder(), *library_folders()]
    for path in wanted:
        real = os.path.realpath(path)
        folders.append(real if os.path.isdir(real) else os.path.dirname(real))
    shares = _outermost(folders)
    links: dict[str, str] = {}
    files: dict[str, str] = {}
    binary = os.path.realpath(python)
    needed = [python, *_elf_interpreter(binary), *_ld_dirs(), *wanted]
    if os.path.isfile(LD_CACHE):
        files[LD_CACHE] = LD_CACHE
    for path in needed:
        end = _walk(path, shares, links)
        if end is not None and os.path.isfile(end) and not _inside(end, shares):
            files[end] = end  # the interpreter binary, the loader: copied, not shared
    return GuestRoot(tuple(shares), tuple(sorted(links.items())), tuple(sorted(files.items())))


@functools.lru_cache(maxsize=8)
def python_folders(python: str) -> tuple[str, ...]:
    """The folders ``python`` imports from as the guest starts it (no PYTHON* variables):
    its prefix (the venv) and every ``sys.path`` entry, stdlib and site-packages included."""
    try:
        done = subprocess.run(
            [python, "-I", "-c", "import json, sys; print(json.dumps([sys.prefix, "
             "sys.base_prefix, *sys.path]))"], capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
        entries = json.loads(done.stdout.splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        raise UsageError(f"cannot ask {python} for its module folders") from None
    folders = []
    for entry in entries[:1] + entries[2:]:  # base_prefix only through the paths it holds
        if not entry or not os.path.isabs(entry):
            continue
        real = os.path.realpath(entry)
        if os.path.isdir(real):
            folders.append(real)
        elif os.path.isfile(real):  # a zip on sys.path
            folders.append(os.path.dirname(real))
    return tuple(folders)


def project_folder() -> str:
    """The folder holding the ``scaler`` and ``affinity`` packages this process runs."""
    import scaler

    return os.path.dirname(os.path.dirname(os.path.realpath(scaler.__file__)))


def library_folders() -> list[str]:
    """Folders of the shared libraries this process has loaded (libc, libpython, the loader,
    locale data) and of the dynamic loader's configured search path: a worker loads its
    native libraries (libstdc++ for TensorFlow) from the same folders."""
    folders = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    path = parts[5].rstrip("\n")
                    if not path.endswith(" (deleted)") and os.path.isfile(path):
                        folders.append(os.path.dirname(os.path.realpath(path)))
    except OSError:
        pass
    folders += [os.path.realpath(d) for d in _ld_dirs() if os.path.isdir(d)]
    return [f for f in folders if f != os.path.dirname(os.path.realpath(sys.executable))]


def _ld_dirs(conf: str = LD_CONF) -> list[str]:
    """The folders ``/etc/ld.so.conf`` names (following its ``include`` globs)."""
    out: list[str] = []

    def read(path: str, depth: int) -> None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include") and depth < 4:
                for found in sorted(glob.glob(line.split(None, 1)[1].strip())):
                    read(found, depth + 1)
            elif line.startswith("/"):
                out.append(line)

    read(conf, 0)
    return out


def _elf_interpreter(path: str) -> list[str]:
    """The program interpreter (``/lib64/ld-linux-x86-64.so.2``) of a 64-bit ELF file."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return []
            order = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[0x20:0x28], order)
            size, count = (int.from_bytes(head[0x36:0x38], order),
                           int.from_bytes(head[0x38:0x3A], order))
            for k in range(min(count, 64)):
                f.seek(phoff + k * size)
                header = f.read(56)
                if int.from_bytes(header[0:4], order) == 3:  # PT_INTERP
                    f.seek(int.from_bytes(header[8:16], order))
                    text = f.read(min(int.from_bytes(header[32:40], order), 4096))
                    return [text.split(b"\0", 1)[0].decode(errors="replace")]
    except OSError:
        pass
    return []


def _outermost(folders: Iterable[str]) -> list[str]:
    """Real, existing folders without those inside another; at most MAX_SHARES (the
    nearest pairs merged into their common parent beyond that)."""
    found = sorted({f for f in folders if os.path.isdir(f) and not _inside(f, PSEUDO_FS)})
    out: list[str] = []
    for folder in found:
        if not _inside(folder, out):
            out.append(folder)
    while len(out) > MAX_SHARES:
        pairs = [(len(os.path.commonpath([a, b])), a, b) for a, b in zip(out, out[1:])]
        _, a, b = max(pairs)
        out = _outermost([*(f for f in out if f not in (a, b)), os.path.commonpath([a, b])])
    return out


def _inside(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _walk(path: str, shares: Sequence[str], links: dict[str, str]) -> str | None:
    """Resolve ``path`` component by component as the guest will, recording each symbolic
    link that lies outside the shares (the guest root must hold it); the real end."""
    todo = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while todo:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        step = os.path.join(current, name)
        if os.path.islink(step):
            hops += 1
            if hops > 40:
                return None
            target = os.readlink(step)
            if not _inside(current, shares):
                links[step] = target
            todo = [p for p in target.split("/") if p] + todo
            current = "/" if target.startswith("/") else current
            continue
        if not os.path.exists(step):
            return None
        current = step
    return current
