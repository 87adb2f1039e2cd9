"""The kernel's ELF for a PVH boot (scaler/targets/pvh.py): hand-made bzImages whose payload
and notes the test writes byte by byte (the right answer is known without the code), and
this host's own kernel where /boot has one. Real VM boots through it: targets/test_vm.py."""

from __future__ import annotations

import glob
import gzip
import lzma
import os
import shutil
import struct
import subprocess

import pytest

from scaler.targets import pvh


def note(name: bytes, kind: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(name) + 1, len(desc), kind) + pad(name + b"\0") + pad(desc)


def elf(notes: bytes, elf_class: int = 2) -> bytes:
    """A 64-bit ELF header, one PT_NOTE program header, the notes."""
    ident = b"\x7fELF" + bytes([elf_class, 1, 1]) + b"\0" * 9
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, 64, 0, 0, 64, 56, 1,
                                 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", pvh.PT_NOTE, 4, 120, 0, 0, len(notes), len(notes), 4)
    return header + phdr + notes


PVH_ELF = elf(note(b"GNU", 3, b"\x01" * 20) + note(b"Xen", 18, struct.pack("<I", 0x1000)))
PLAIN_ELF = elf(note(b"GNU", 3, b"\x01" * 20) + note(b"Xen", 17, b"\0" * 8))


def bzimage(compressed: bytes, setup_sects: int = 2, version: int = 0x20F,
            size_tail: bool = True) -> bytes:
    """Boot sector + setup sectors with the header fields the payload is found by, then the
    protected-mode part: 0x40 bytes of decompressor stand-in, the payload, its size."""
    payload = compressed + (struct.pack("<I", 12345) if size_tail else b"")
    head = bytearray((setup_sects + 1) * 512)
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, version)
    struct.pack_into("<II", head, 0x248, 0x40, len(payload))
    return bytes(head) + b"\x90" * 0x40 + payload + b"\0" * 100


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("kind", ["xz", "gzip", "zstd"])
def test_a_bzimage_with_a_pvh_note_boots_its_elf(tmp_path, kind):
    if kind == "xz":
        payload = lzma.compress(PVH_ELF, format=lzma.FORMAT_XZ)
    elif kind == "gzip":
        payload = gzip.compress(PVH_ELF)
    else:
        if shutil.which("zstd") is None:
            pytest.skip("no zstd program (apt-get install zstd)")
        payload = subprocess.run(["zstd", "-q", "-c"], input=PVH_ELF, capture_output=True,
                                 check=True).stdout
    kernel = write(tmp_path, "vmlinuz-x", bzimage(payload))
    image = pvh.boot_image(kernel, tmp_path / "cache")
    assert image.method == "pvh" and image.reason == ""
    assert open(image.path, "rb").read() == PVH_ELF
    assert oct(os.stat(image.path).st_mode & 0o777) == "0o644"
    stamp = os.stat(image.path).st_mtime_ns
    assert pvh.boot_image(kernel, tmp_path / "cache") == image  # from the cache, not rewritten
    assert os.stat(image.path).st_mtime_ns == stamp
    assert image.to_dict() == {"method": "pvh", "image": image.path}


def test_a_changed_kernel_file_is_extracted_again(tmp_path):
    kernel = write(tmp_path, "vmlinuz-x", bzimage(gzip.compress(PVH_ELF)))
    first = pvh.boot_image(kernel, tmp_path / "cache")
    write(tmp_path, "vmlinuz-x", bzimage(gzip.compress(PVH_ELF + b"more")))
    second = pvh.boot_image(kernel, tmp_path / "cache")
    assert first.path != second.path and open(second.path, "rb").read().endswith(b"more")


def test_no_pvh_note_boots_the_bzimage_and_remembers_why(tmp_path):
    kernel = write(tmp_path, "vmlinuz-x", bzimage(lzma.compress(PLAIN_ELF)))
    image = pvh.boot_image(kernel, tmp_path / "cache")
    assert (image.path, image.method) == (kernel, "bzimage")
    assert "no PVH entry note" in image.reason
    (remembered,) = (tmp_path / "cache").glob("*.nopvh")
    assert "no PVH entry note" in remembered.read_text()
    assert pvh.boot_image(kernel, tmp_path / "cache") == image
    assert image.to_dict()["reason"] == image.reason


@pytest.mark.parametrize("data, reason", [
    (b"\x7fELF" + b"\0" * 1000, "not a bzImage"),
    (bzimage(gzip.compress(PVH_ELF), version=0x206), "boot protocol 2.6 has no payload"),
    (bzimage(gzip.compress(PVH_ELF))[:1650], "outside the file"),  # payload 1600..1687
    (bzimage(b"BZh91AY&SY" + b"\0" * 40), "neither with xz, gzip nor zstd (starts 425a6839)"),
    (bzimage(b"\xfd7zXZ\x00" + b"\x55" * 40), "xz payload does not decompress"),
], ids=["elf", "old-protocol", "cut", "bzip2", "bad-xz"])
def test_what_cannot_boot_through_pvh_boots_as_it_is_with_the_reason(tmp_path, data, reason):
    kernel = write(tmp_path, "vmlinuz-x", data)
    image = pvh.boot_image(kernel, tmp_path / "cache")
    assert (image.path, image.method) == (kernel, "bzimage")
    assert reason in image.reason


def test_a_cache_that_cannot_be_written_boots_the_bzimage(tmp_path):
    kernel = write(tmp_path, "vmlinuz-x", bzimage(gzip.compress(PVH_ELF)))
    blocker = write(tmp_path, "file", b"")  # a file where the cache folder would be
    image = pvh.boot_image(kernel, os.path.join(blocker, "kernels"))
    assert (image.path, image.method) == (kernel, "bzimage")
    assert image.reason.startswith("cannot write its ELF to ")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


def test_notes_are_read_by_name_and_type_and_only_from_64_bit_elfs():
    assert pvh.has_pvh_entry(PVH_ELF)
    assert not pvh.has_pvh_entry(PLAIN_ELF)
    assert not pvh.has_pvh_entry(elf(note(b"Xenx", 18, b"\0" * 4)))
    assert not pvh.has_pvh_entry(elf(note(b"Xen", 18, b"\0" * 4), elf_class=1))
    assert not pvh.has_pvh_entry(PVH_ELF[:100])  # its program header cut off
    assert not pvh.has_pvh_entry(b"")


def test_a_missing_kernel_file_says_so():
    image = pvh.boot_image("/nonexistent/vmlinuz")
    assert image.method == "bzimage" and "cannot read the kernel" in image.reason


HOST_KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))


@pytest.mark.skipif(not HOST_KERNELS, reason="no kernel in /boot")
def test_this_hosts_kernel(tmp_path):
    """Debian's and Ubuntu's amd64 kernels set CONFIG_PVH: their ELF has the entry note."""
    kernel = HOST_KERNELS[-1]
    config = kernel.replace("vmlinuz-", "config-")
    image = pvh.boot_image(kernel, tmp_path)
    if os.path.isfile(config) and "CONFIG_PVH=y" in open(config).read():
        assert image.method == "pvh", image.reason
        with open(image.path, "rb") as f:
            assert pvh.has_pvh_entry(f.read())
    else:
        assert image.method in ("pvh", "bzimage")
