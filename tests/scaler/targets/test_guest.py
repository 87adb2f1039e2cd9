"""The VM's boot pieces without booting: kernel discovery, module order, the initramfs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from scaler.errors import UsageError
from scaler.targets import guest, guestkernel
from tests.scaler.helpers import ROOT


def newest_or_skip() -> guestkernel.Kernel:
    try:
        return guestkernel.find_kernel(None)
    except UsageError as exc:
        pytest.skip(f"no usable host kernel: {exc}")


def test_kernel_version_is_read_from_the_image_header():
    kernel = newest_or_skip()
    assert kernel.version in os.path.basename(kernel.path)  # Debian names it vmlinuz-RELEASE
    assert os.path.isdir(kernel.modules_dir)


@pytest.mark.parametrize("content, message", [
    (b"\0" * 4096, "not an x86 Linux kernel image"),
    (b"", "not an x86 Linux kernel image"),
])
def test_a_file_that_is_no_kernel_is_a_usage_error(tmp_path, content, message):
    path = tmp_path / "vmlinuz"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        guestkernel.find_kernel(str(path))


def test_a_missing_kernel_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        guestkernel.find_kernel(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="no kernel matches"):
        guestkernel.newest_kernel(str(tmp_path / "vmlinuz-*"))


def test_newest_kernel_orders_by_version(tmp_path):
    for name in ("vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "vmlinuz-5.10.0-30-amd64"):
        (tmp_path / name).write_bytes(b"")
    assert guestkernel.newest_kernel(str(tmp_path / "vmlinuz-*")).endswith("6.1.0-10-amd64")


def test_modules_come_after_their_dependencies():
    kernel = newest_or_skip()
    order = [os.path.basename(p).split(".ko")[0]
             for p in guestkernel.module_files(kernel.modules_dir)]
    deps: dict[str, list[str]] = {}
    with open(os.path.join(kernel.modules_dir, "modules.dep")) as f:
        for line in f:
            name, _, rest = line.partition(":")
            deps[os.path.basename(name).split(".ko")[0]] = [
                os.path.basename(d).split(".ko")[0] for d in rest.split()]
    for k, module in enumerate(order):
        assert set(deps.get(module, [])) <= set(order[:k]), module
    assert {"virtio_pci", "virtio_console", "9pnet_virtio", "9p"} <= set(order) | builtin(kernel)


def builtin(kernel: guestkernel.Kernel) -> set[str]:
    with open(os.path.join(kernel.modules_dir, "modules.builtin")) as f:
        return {os.path.basename(p).split(".ko")[0] for p in f.read().split()}


@pytest.mark.skipif(shutil.which("cpio") is None, reason="no cpio to check the archive with")
def test_cpio_archive_unpacks_with_the_standard_tool(tmp_path):
    archive = guest.Cpio()
    archive.dir("bin")
    archive.file("bin/hello", b"#!/bin/sh\necho hi\n", executable=True)
    archive.symlink("bin/sh", "busybox")
    data = archive.finish()  # cpio -i reads the first of concatenated archives
    assert len(data) % 512 == 0
    (tmp_path / "a.cpio").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "-F", str(tmp_path / "a.cpio")], cwd=out,
                   check=True, timeout=30)
    assert (out / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.access(out / "bin/hello", os.X_OK)
    assert os.readlink(out / "bin/sh") == "busybox"


def test_the_job_file_quotes_every_argument(tmp_path):
    archive = guest.job_archive(["-i", "A=1", "/py", "--model", "it's $(rm -rf /).keras"],
                                "vm0", "/work dir")
    job = archive[archive.index(b"SCALER_HOSTNAME"):].split(b"\0", 1)[0].decode()
    script = job + '\nprintf "%s\\n" "$SCALER_HOSTNAME" "$SCALER_CWD" "$@"\n'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                         timeout=10).stdout.splitlines()
    assert out == ["vm0", "/work dir", "-i", "A=1", "/py", "--model", "it's $(rm -rf /).keras"]
    assert shlex.split(job.splitlines()[-1])[0] == "set"


# -- distribution kernels: compressed modules, missing modules, root-only images -------------

MODULES = {  # name -> (path in modules.dep, dependencies)
    "virtio_pci": ("kernel/drivers/virtio/virtio_pci.ko", ["virtio_ring", "virtio"]),
    "virtio_ring": ("kernel/drivers/virtio/virtio_ring.ko", []),
    "virtio": ("kernel/drivers/virtio/virtio.ko", []),
    "virtio_console": ("kernel/drivers/char/virtio_console.ko", ["virtio_ring", "virtio"]),
    "9pnet": ("kernel/net/9p/9pnet.ko", []),
    "9pnet_virtio": ("kernel/net/9p/9pnet_virtio.ko", ["9pnet", "virtio_ring", "virtio"]),
    "9p": ("kernel/fs/9p/9p.ko", ["9pnet"]),
}


def compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".xz":
        import lzma

        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)  # as kmod
    if suffix == ".gz":
        import gzip

        return gzip.compress(data)
    if suffix == ".zst":
        if shutil.which("zstd") is None:
            pytest.skip("no zstd program to make .ko.zst modules with (apt-get install zstd)")
        return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, capture_output=True,
                              check=True, timeout=60).stdout
    return data


def module_tree(root, suffix: str, leave_out: tuple[str, ...] = (),
                builtin: tuple[str, ...] = ()) -> tuple[guestkernel.Kernel, dict[str, bytes]]:
    """A /lib/modules/RELEASE folder of (not loadable) modules compressed like a distro's."""
    folder = root / "6.8.0-test"
    contents = {}
    dep_lines = []
    for name, (path, deps) in MODULES.items():
        if name in leave_out or name in builtin:
            continue
        data = b"\x7fELF module " + name.encode() * 200
        contents[name] = data
        target = folder / (path + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(compress(data, suffix))
        dep_lines.append(f"{path}{suffix}: " + " ".join(
            MODULES[d][0] + suffix for d in deps if d not in builtin))
    (folder / "modules.dep").write_text("\n".join(dep_lines) + "\n")
    (folder / "modules.builtin").write_text(
        "".join(f"kernel/{name}.ko\n" for name in builtin))
    return guestkernel.Kernel("/boot/vmlinuz-6.8.0-test", "6.8.0-test", str(folder)), contents


def unpack(archive: bytes, out) -> None:
    out.mkdir()
    path = out.parent / (out.name + ".cpio")
    path.write_bytes(archive)
    subprocess.run(["cpio", "-idm", "--quiet", "-F", str(path)], cwd=out, check=True,
                   timeout=30)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="no cpio to check the archive with")
@pytest.mark.parametrize("suffix", [".zst", ".xz", ".gz", ""])
def test_compressed_modules_are_unpacked_into_the_initramfs(tmp_path, suffix):
    try:
        guestkernel.find_busybox()
    except UsageError as exc:
        pytest.skip(str(exc))
    kernel, contents = module_tree(tmp_path, suffix)
    archive = guest.check_kernel(kernel)
    unpack(archive, tmp_path / "out")
    order = (tmp_path / "out/modules/order").read_text().split()
    assert set(order) == {f"{name}.ko" for name in contents}
    assert order.index("virtio.ko") < order.index("virtio_pci.ko")
    assert order.index("9pnet.ko") < order.index("9p.ko")
    for name, data in contents.items():  # raw ELF bytes, as busybox insmod needs them
        assert (tmp_path / f"out/modules/{name}.ko").read_bytes() == data


def test_built_in_drivers_need_no_module(tmp_path):
    kernel, contents = module_tree(tmp_path, "", builtin=("virtio", "virtio_ring", "virtio_pci"))
    names = {os.path.basename(p) for p in guestkernel.module_files(kernel.modules_dir)}
    assert names == {"virtio_console.ko", "9pnet.ko", "9pnet_virtio.ko", "9p.ko"}


def test_a_kernel_without_9p_names_what_is_missing(tmp_path):
    kernel, _ = module_tree(tmp_path, ".zst" if shutil.which("zstd") else "",
                            leave_out=("9p", "9pnet_virtio"))
    with pytest.raises(UsageError) as caught:
        guest.check_kernel(kernel)
    message = str(caught.value)
    assert "has neither a module nor built-in support for 9pnet_virtio, 9p" in message
    assert "linux-modules-extra-6.8.0-test" in message and "\n" not in message


def test_a_listed_module_file_that_is_gone(tmp_path):
    kernel, _ = module_tree(tmp_path, ".xz")
    os.unlink(os.path.join(kernel.modules_dir, MODULES["9p"][0] + ".xz"))
    with pytest.raises(UsageError, match=r"modules.dep lists kernel/fs/9p/9p.ko.xz but the "
                                         r"file is not there"):
        guestkernel.module_files(kernel.modules_dir)


def test_a_corrupt_compressed_module_is_a_usage_error(tmp_path):
    kernel, _ = module_tree(tmp_path, ".xz")
    Path(kernel.modules_dir, MODULES["9p"][0] + ".xz").write_bytes(b"not xz at all")
    with pytest.raises(UsageError, match=r"cannot read kernel module .*9p.ko.xz"):
        guest.check_kernel(kernel)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_a_root_only_kernel_image_says_how_to_fix_it():
    kernel = newest_or_skip()
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # /tmp: the user can reach it
        os.chmod(folder, 0o755)
        image = Path(folder, "vmlinuz-root-only")
        image.write_bytes(Path(kernel.path).read_bytes()[:0x10200])
        image.chmod(0o600)  # as Ubuntu installs /boot/vmlinuz-*
        code = ("import os; from scaler.targets import guestkernel; from scaler.errors import "
                "UsageError; os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
                f"try: guestkernel.kernel_version({str(image)!r})\n"
                "except UsageError as e: print(e)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "not readable by this user (Ubuntu installs kernels root-only, mode 0600)" in \
        done.stdout and "sudo install -m 0644" in done.stdout


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd program")
def test_zstd_frames_decompress():
    data = os.urandom(1000) * 50
    packed = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True,
                            timeout=30).stdout
    assert guestkernel.zstd_decompress(packed) == data
    with pytest.raises(UsageError, match="zstd -d failed"):
        guestkernel.zstd_decompress(b"garbage", "x.ko.zst")


def test_the_init_script_samples_guest_cpu_times():
    assert guest.STAT_MARK.strip() in guest.INIT_SCRIPT
    assert f"sleep {guest.STAT_INTERVAL_S}" in guest.INIT_SCRIPT and "head" in \
        guest.BUSYBOX_APPLETS
