"""Multistream: the largest batch whose latency (at the chosen statistic) stays under a bound.

Layouts: one instance over the whole machine (of ``--cores-per-instance`` cores when given),
then N instances of the placement for each N of ``--instances`` above 1 that fits the cores.
Batch sizes are searched by doubling from 1 and then bisecting between the last batch that
met the bound and the first that did not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaler.session import Session


async def run(s: Session) -> None:
    cores = len(s.topology.usable_cores)
    size = s.settings.cores_per_instance or 1
    layouts = sorted({1, *(n for n in s.settings.instances if 1 < n and n * size <= cores)})
    for n in layouts:
        await search_batch(s, s.settings.placements[0], n)
        if s.stopped:
            return


async def search_batch(s: Session, placement: str, n: int) -> None:
    bound, stat, cap = s.settings.latency_bound_ms, s.settings.stat.value, s.settings.max_batch
    layout = f"{placement} x{n}"
    good, bad = 0, None

    async def probe(batch: int) -> bool:
        rec = await s.group(placement, n, batch, label=f"{layout} batch {batch}",
                            layout=layout, probe=True)
        value = rec.get("latency_ms", {}).get(stat)
        return value is not None and value <= bound and rec["status"] == "complete"

    batch = 1
    while batch <= cap and not s.stopped:
        if await probe(batch):
            good, batch = batch, batch * 2
        else:
            bad = batch
            break
    while bad is not None and bad - good > 1 and not s.stopped:
        mid = (good + bad) // 2
        if await probe(mid):
            good = mid
        else:
            bad = mid
