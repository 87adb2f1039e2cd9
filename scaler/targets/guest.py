"""What a VM of the ``vm`` placement boots: a host kernel and a tiny initramfs of our own.

Distribution kernels build virtio and 9p as modules, so the initramfs holds busybox
(``busybox-static``), those modules with their dependencies (``guestkernel``) and an ``/init``
script that mounts the host folders the worker may see (``guestroot``) over virtio-9p, finds
the virtio-serial port that carries the protocol, runs the worker there (chrooted into the
guest root) and powers off. One archive is shared by every VM (:func:`base_initramfs`); each
VM appends its own (:func:`job_archive`: the worker's argv, its shares, the rest of its root).

Everything is written in Python (newc cpio, a few dozen lines) rather than with virtme-ng or
``cpio``: the VM must be started as our own child with our own QEMU options (QMP on a
pre-opened socket, pinned vCPUs, memory bound to NUMA nodes), which a launcher that execs
QEMU itself would get in the way of.
"""

from __future__ import annotations

import io
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from scaler.errors import UsageError
from scaler.targets.guestkernel import Kernel, find_busybox, module_bytes, module_files, module_name
from scaler.targets.guestroot import GuestRoot
from scaler.targets.vmplan import PORT_NAME, SHARE_TAG  # noqa: F401  (the init script's names)

GUEST_TMPDIR = "/run/tmp"  # writable scratch in the guest (a tmpfs); the rest is read-only
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


def check_kernel(kernel: Kernel) -> bytes:
    """Everything the guest needs from ``kernel`` and this host, read now: the module
    index, each module (decompressed), busybox. Returns the shared initramfs; UsageError
    naming what is missing. Run before any group so a bad kernel fails the run at once."""
    return base_initramfs(kernel)


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
        name = module_name(rel) + ".ko"
        archive.file(f"modules/{name}", module_bytes(os.path.join(kernel.modules_dir, rel)))
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
