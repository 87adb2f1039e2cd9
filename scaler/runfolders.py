"""Run folders on disk: the files a run folder holds, a fresh folder name claimed for this
process (two runs started in one second never share one), and the sweep of what dead writers
left (temporary saves, claims of processes gone)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import shutil
from pathlib import Path

from scaler.errors import ResultsWriteError, UsageError

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.npz"  # schema 1: every group's samples in one file
SAMPLES_DIR = "samples"  # schema 2: one file per group, written once
TMP_SUFFIX = ".tmp-"  # .NAME.tmp-PID: a folder or file being written (see save_run)
CLAIM_SUFFIX = ".claim"  # .NAME.claim: a run folder name taken (see new_run_path)
_STALE = re.compile(r"\..+\.(?:tmp|old)-(\d+)")


def check_output_dir(out: str | Path) -> Path:
    """The folder runs are written into: created if needed, refused if not writable."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {path} is not a writable folder")
    return path


def new_run_path(out: Path, scenario: str) -> Path:
    """A fresh run folder name under ``out``, claimed for this process.

    Two runs started in the same second into the same folder would otherwise pick one name
    and replace each other's saves. The name is claimed with a hidden ``.NAME.claim`` file
    created exclusively (holding this pid); ``save_run`` drops it once the folder exists,
    :func:`release_claims` drops the claims of a run that never saved, and
    :func:`sweep_stale` those of dead processes.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        path = out / (f"{scenario}-{stamp}" if n == 1 else f"{scenario}-{stamp}-{n}")
        n += 1
        if path.exists():
            continue
        try:
            fd = os.open(claim_path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsWriteError(f"cannot write in the results folder {out}: "
                                    f"{exc.strerror or exc}") from None
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            claim_path(path).unlink(missing_ok=True)
            raise ResultsWriteError(f"cannot write in the results folder {out}: "
                                    f"{exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if path.exists():  # made by a writer that does not claim (an older scaler)
            claim_path(path).unlink(missing_ok=True)
            continue
        return path


def claim_path(path: Path) -> Path:
    """The hidden file that claims a run folder's name for a process."""
    return path.with_name(f".{path.name}{CLAIM_SUFFIX}")


def release_claims(out: Path) -> None:
    """Drop this process's claims in ``out`` (names of runs that never saved a folder)."""
    with contextlib.suppress(OSError):
        for claim in out.glob(f".*{CLAIM_SUFFIX}"):
            if _pid_in(claim) == os.getpid():
                claim.unlink(missing_ok=True)


def _pid_in(claim: Path) -> int | None:
    try:
        return int(claim.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sweep_stale(out: Path, _depth: int = 3) -> list[Path]:
    """Remove what dead writers left in ``out``: temporary folders and files of a save
    (``.NAME.tmp-PID``, in ``out``, in its run and suite folders and their samples) and name
    claims whose process is gone. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(out.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith("."):
            if _depth > 0 and entry.is_dir() and not entry.is_symlink() and (
                    name == SAMPLES_DIR or (entry / RUN_FILE).is_file()
                    or name.startswith("suite-")):
                removed += sweep_stale(entry, _depth - 1)
            continue
        match = _STALE.fullmatch(name)
        if match:
            pid = int(match.group(1))
        elif name.endswith(CLAIM_SUFFIX):
            pid = _pid_in(entry) or 0
        else:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        if not entry.exists():
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
