"""Layout names: a placement with the ISA cap its workers run under (``--isa``).

A layout is named by its placement, with the cap after ``@`` when the run sweeps caps or
asks for one other than ``native`` (``pinned@avx512_core_vnni``). The name travels where the
placement's does (series, labels, multistream and server layouts), and ``Session`` splits it
back into the placement and the cap.
"""

from __future__ import annotations

from scaler.engines.isa_caps import NATIVE, resolve
from scaler.errors import UsageError

SEP = "@"


def with_cap(placement: str, cap: str, caps: tuple[str, ...]) -> str:
    """``placement`` alone for a run of native kernels only, else ``placement@cap``."""
    return placement if caps == (NATIVE,) else f"{placement}{SEP}{cap}"


def split_cap(name: str) -> tuple[str, str]:
    """A layout name's placement and ISA cap."""
    placement, _, cap = name.partition(SEP)
    return placement, cap or NATIVE


def parse_isa(text: str) -> tuple[str, ...]:
    """``native`` or ``avx512_core,cascadelake``: oneDNN's names (aliases resolved), each
    once, in the order given (UsageError otherwise)."""
    caps = tuple(resolve(part) for part in text.split(","))
    if len(set(caps)) != len(caps):
        raise UsageError(f"--isa {text!r} names a cap twice (aliases included)")
    return caps
