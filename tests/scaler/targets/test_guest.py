"""The VM's boot pieces without booting: kernel discovery, module order, the cpio writer."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from scaler.errors import UsageError
from scaler.targets import guest


def newest_or_skip() -> guest.Kernel:
    try:
        return guest.find_kernel(None)
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
        guest.find_kernel(str(path))


def test_a_missing_kernel_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        guest.find_kernel(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="no kernel matches"):
        guest.newest_kernel(str(tmp_path / "vmlinuz-*"))


def test_newest_kernel_orders_by_version(tmp_path):
    for name in ("vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "vmlinuz-5.10.0-30-amd64"):
        (tmp_path / name).write_bytes(b"")
    assert guest.newest_kernel(str(tmp_path / "vmlinuz-*")).endswith("6.1.0-10-amd64")


def test_modules_come_after_their_dependencies():
    kernel = newest_or_skip()
    order = [os.path.basename(p).split(".ko")[0] for p in guest.module_files(kernel.modules_dir)]
    deps: dict[str, list[str]] = {}
    with open(os.path.join(kernel.modules_dir, "modules.dep")) as f:
        for line in f:
            name, _, rest = line.partition(":")
            deps[os.path.basename(name).split(".ko")[0]] = [
                os.path.basename(d).split(".ko")[0] for d in rest.split()]
    for k, module in enumerate(order):
        assert set(deps.get(module, [])) <= set(order[:k]), module
    assert {"virtio_pci", "virtio_console", "9pnet_virtio", "9p"} <= set(order) | builtin(kernel)


def builtin(kernel: guest.Kernel) -> set[str]:
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
