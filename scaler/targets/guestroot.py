"""What the worker in a VM of the ``vm`` placement may see: the guest's root file system.

The guest runs the worker of the host's own Python environment at the same absolute paths,
so nothing has to be installed into an image, but it sees only what that worker needs
(:func:`guest_root`): the folders of the environment (the venv and the base interpreter's
files it links to), the project, the folders of the shared libraries the interpreter loads,
the model cache and a model path the run names, each shared read-only over its own virtio-9p
device and mounted at its host path. The rest of the guest's root is built in the initramfs
(``guest.job_archive``): the interpreter binary and the loader's cache copied in, the symbolic
links on the way to them (``/lib64 -> usr/lib64`` and the like). The host's ``/etc``,
``/home``, ``/root``, ``/var`` and everything else stay out.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaler.errors import UsageError

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
