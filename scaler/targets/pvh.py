"""The image a VM boots fastest: the kernel's own ELF, taken out of its bzImage, entered
through its PVH entry point.

QEMU boots a bzImage through firmware (SeaBIOS), the real-mode setup code and the kernel's
own decompressor, all emulated under TCG: measured here (Debian 6.1, xz-compressed, TCG on 2
cores), 6.1 s from QEMU's start to the guest's init against 3.4 s for the same kernel's
``vmlinux`` given to ``-kernel``, which QEMU loads straight into guest memory and enters at
the address of its ``XEN_ELFNOTE_PHYS32_ENTRY`` note (``CONFIG_PVH``, set by Debian's and
Ubuntu's kernels). Nothing else changes: the same kernel, command line, initramfs and devices.

:func:`boot_image` returns the ELF to boot, extracted once per kernel file (its payload,
located by the boot protocol's ``payload_offset``/``payload_length`` fields, decompressed:
xz, gzip or zstd) and kept in the scaler cache under ``kernels/``, written atomically; or
the bzImage itself with the reason, when the kernel has no PVH entry, its payload is
compressed another way, or the cache cannot be written. The reason goes into run.json with
the image (``vm.boot``), so a slow boot says why.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import lzma
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from scaler.engines.cache import cache_root
from scaler.errors import UsageError
from scaler.targets.guestkernel import zstd_decompress

PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18  # the PVH entry point QEMU looks for (include/xen/elfnote.h)
_MAGICS = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"))


@dataclass(frozen=True)
class BootImage:
    path: str  # what QEMU's -kernel gets
    method: str  # "pvh" (the ELF) or "bzimage"
    reason: str = ""  # why not pvh

    def to_dict(self) -> dict[str, str]:
        out = {"method": self.method, "image": self.path}
        if self.reason:
            out["reason"] = self.reason
        return out


def payload(image: bytes) -> tuple[bytes, str]:
    """The compressed kernel inside a bzImage and its format. ValueError saying why not."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        raise ValueError("not a bzImage (no setup header)")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        raise ValueError(f"boot protocol {version >> 8}.{version & 0xff} has no payload fields")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    data = image[start:start + length]
    if length == 0 or len(data) != length:
        raise ValueError("its payload lies outside the file")
    for magic, kind in _MAGICS:
        if data.startswith(magic):
            return data, kind
    raise ValueError(f"its payload is compressed neither with xz, gzip nor zstd "
                     f"(starts {data[:4].hex()})")


def decompress(data: bytes, kind: str) -> bytes:
    """The payload's bytes; the kernel's build appends its size (4 bytes) after the stream,
    which the decompressors here stop before."""
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        return zstd_decompress(data[:-4], "the kernel's zstd payload")
    except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise ValueError(f"its {kind} payload does not decompress: {exc}") from None
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def has_pvh_entry(elf: bytes) -> bool:
    """True when a 64-bit little-endian ELF has the Xen PVH entry note in a PT_NOTE segment."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for k in range(phnum):
        at = phoff + k * phentsize
        if at + 56 > len(elf):
            return False
        kind, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", elf, at)
        if kind == PT_NOTE and _notes_hold_pvh(elf[offset:offset + filesz]):
            return True
    return False


def _notes_hold_pvh(notes: bytes) -> bool:
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, at)
        name = notes[at + 12:at + 12 + namesz].rstrip(b"\0")
        if name == b"Xen" and kind == XEN_ELFNOTE_PHYS32_ENTRY:
            return True
        at += 12 + _aligned(namesz) + _aligned(descsz)
    return False


def _aligned(n: int) -> int:
    return (n + 3) & ~3


def boot_image(kernel_path: str, cache_dir: str | Path | None = None) -> BootImage:
    """The image to boot for ``kernel_path`` (see the module doc); never raises for a kernel
    that cannot boot through PVH: it is booted as it is, with the reason."""
    from scaler.results import write_text_atomically

    try:
        stat = os.stat(kernel_path)
    except OSError as exc:
        return BootImage(kernel_path, "bzimage", f"cannot read the kernel: {exc.strerror}")
    key = hashlib.sha256(f"{os.path.realpath(kernel_path)}\0{stat.st_size}\0"
                         f"{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir else cache_root(None) / "kernels"
    elf_path = folder / f"{os.path.basename(kernel_path)}-{key}.pvh"
    refused = folder / f"{os.path.basename(kernel_path)}-{key}.nopvh"
    if elf_path.is_file():
        return BootImage(str(elf_path), "pvh")
    if refused.is_file():
        return BootImage(kernel_path, "bzimage", _read(refused))
    try:
        image = Path(kernel_path).read_bytes()
        elf = decompress(*payload(image))
    except (OSError, ValueError) as exc:
        return _refuse(kernel_path, refused, str(exc))
    if not has_pvh_entry(elf):
        return _refuse(kernel_path, refused, "the kernel has no PVH entry note (CONFIG_PVH)")
    try:
        write_text_atomically(elf_path, elf)
    except OSError as exc:
        return BootImage(kernel_path, "bzimage", f"cannot write its ELF to {folder}: {exc}")
    return BootImage(str(elf_path), "pvh")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip() or "no PVH entry"
    except OSError:
        return "no PVH entry"


def _refuse(kernel_path: str, note: Path, reason: str) -> BootImage:
    """Boot the bzImage; remember why (so the next run does not decompress it again)."""
    from scaler.results import write_text_atomically

    with contextlib.suppress(OSError):
        write_text_atomically(note, reason + "\n")
    return BootImage(kernel_path, "bzimage", reason)

