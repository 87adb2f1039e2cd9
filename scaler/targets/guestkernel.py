"""The kernel a VM of the ``vm`` placement boots, and what its initramfs takes from the host:
the image's release (read from its bzImage header), the virtio and 9p modules in load order
(``modules.dep``; decompressed, distributions ship them xz- or zstd-compressed) and a static
busybox. Every lack is a UsageError saying what to install or give."""

from __future__ import annotations

import glob
import gzip
import lzma
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scaler.errors import UsageError

# modules the guest needs, loaded with their dependencies unless built into the kernel
GUEST_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


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
    by_name = {module_name(p): p for p in deps}
    builtin = {module_name(p) for p in builtin_text.split()}
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


def module_name(path: str) -> str:
    return os.path.basename(path).split(".ko", 1)[0].replace("-", "_")


def module_bytes(path: str) -> bytes:
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
