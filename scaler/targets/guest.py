"""What a VM of the ``vm`` placement boots: a host kernel and a tiny initramfs of our own.

The guest runs the host's own root filesystem, shared read-only over virtio-9p, so the worker
is the very same ``python -m scaler.worker`` of the same environment (same absolute paths) and
nothing has to be installed into an image. Distribution kernels build virtio and 9p as
modules, so the initramfs holds busybox (``busybox-static``), those modules with their
dependencies (resolved from ``modules.dep``) and an ``/init`` script that mounts the host root,
finds the virtio-serial port that carries the protocol, runs the worker there and powers off.

Everything is written in Python (newc cpio, a few dozen lines) rather than with virtme-ng or
``cpio``: the VM must be started as our own child with our own QEMU options (QMP on a
pre-opened socket, pinned vCPUs, memory bound to NUMA nodes), which a launcher that execs
QEMU itself would get in the way of.
"""

from __future__ import annotations

import glob
import gzip
import io
import lzma
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scaler.errors import UsageError
from scaler.targets.vmplan import MOUNT_TAG, PORT_NAME  # noqa: F401  (the init script's names)

# Modules the guest needs, loaded with their dependencies unless built into the kernel.
GUEST_TMPDIR = "/run/tmp"  # writable scratch in the guest (a tmpfs); the rest is read-only
GUEST_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
BUSYBOX_APPLETS = ("sh", "mount", "insmod", "mkdir", "cat", "cut", "poweroff", "chroot",
                   "hostname", "echo", "ls", "sleep", "head")
INIT_MARK = "scaler-init:"  # prefix of every console line the init script prints
WORKER_EXITED = f"{INIT_MARK} worker exited with code"
STAT_MARK = f"{INIT_MARK} stat "  # the guest's /proc/stat cpu line, every STAT_INTERVAL_S
STAT_INTERVAL_S = 2

INIT_SCRIPT = r"""#!/bin/sh
# scaler VM init: mount the host root read-only over 9p, run one worker on the virtio-serial
# port named "scaler" (the protocol), its stderr on the console, then power off.
export PATH=/bin
fail() { echo "scaler-init: error: $*"; poweroff -f; sleep 5; }
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev \
  || fail "cannot mount /proc, /sys or /dev"
echo "scaler-init: kernel up after $(cut -d' ' -f1 /proc/uptime) s, loading modules"
for m in $(cat /modules/order); do
  insmod "/modules/$m" || fail "cannot load kernel module $m (modules of another kernel?)"
done
echo "scaler-init: mounting the host root over virtio-9p"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /newroot \
  || fail "cannot mount the host root filesystem over virtio-9p"
mount -t proc proc /newroot/proc && mount -t sysfs sysfs /newroot/sys \
  && mount -t devtmpfs devtmpfs /newroot/dev && mount -t tmpfs tmpfs /newroot/run \
  || fail "cannot mount /proc, /sys, /dev or /run"
# the host's /tmp stays visible (a checkout or venv may live there); scratch space is TMPDIR
mkdir -p -m 1777 /newroot/run/tmp /newroot/dev/shm && mount -t tmpfs tmpfs /newroot/dev/shm
port=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = scaler ] && port="/dev/${p##*/}"
done
[ -n "$port" ] || fail "no virtio-serial port named scaler"
. /scaler/job
hostname "$SCALER_HOSTNAME"
[ -d "/newroot$SCALER_CWD" ] || SCALER_CWD=/
# the guest's CPU times (steal) on the console while it runs; the host keeps them off the log
( while :; do echo "scaler-init: stat $(head -n 1 /proc/stat)"; sleep STAT_INTERVAL; done ) &
echo "scaler-init: starting the worker on $port"
# not exec'd, and from a subshell: the worker must not be a child of PID 1 (it takes a parent
# of PID 1 for an orphan and exits), and PID 1 must stay to power off when it ends
( chroot /newroot /usr/bin/env -C "$SCALER_CWD" "$@" 0<>"$port" 1>&0 2>/dev/console
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


def job_archive(argv: Sequence[str], hostname: str, cwd: str) -> bytes:
    """The per-VM part: ``/scaler/job``, sourced by init, sets the worker's argv.

    Appended to the shared archive (the kernel unpacks concatenated cpio archives in turn).
    Every value is quoted with ``shlex``: argv may hold user paths (``--model``).
    """
    lines = [f"SCALER_HOSTNAME={shlex.quote(hostname)}", f"SCALER_CWD={shlex.quote(cwd)}",
             "set -- " + shlex.join(argv), ""]
    archive = Cpio()
    archive.file("scaler/job", "\n".join(lines).encode())
    return archive.finish()
