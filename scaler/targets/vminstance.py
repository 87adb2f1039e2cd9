"""One VM of the ``vm`` target as started: its plan, what was verified (vCPU pinning, QEMU's
threads, memory policy), what its guest reported (ISA, steal), and the record of it in
run.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaler.errors import ScalerError
from scaler.hostfacts import CpuTimes
from scaler.targets import guest
from scaler.targets.guestroot import GuestRoot
from scaler.targets.relay import RelayedProcess
from scaler.targets.vmplan import VmPlan


class VmError(ScalerError):
    """A VM could not be set up as asked (pinning refused, QMP broken)."""


@dataclass
class VmInstance:
    """One VM as started: its plan, what was verified, and what its guest reported."""

    index: int
    partition: dict[str, Any]
    plan: VmPlan
    qmp_path: str
    process: RelayedProcess | None = None
    qemu_pid: int | None = None
    vcpus: list[dict[str, Any]] = field(default_factory=list)
    qemu_threads: int = 0
    threads_on_partition: bool | None = None
    memory_policy: str = ""
    memory_bound: bool = False
    memory_reason: str = ""
    guest_root: GuestRoot | None = None
    failure: str | None = None
    guest_isa: list[str] | None = None
    isa_missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stat_first: CpuTimes | None = None
    stat_last: CpuTimes | None = None
    stat_mark: CpuTimes | None = None  # the latest at the previous info(): one group's share

    def info(self) -> dict[str, Any]:
        proc = self.process
        ready = proc.first_message_at if proc else None
        steal: dict[str, Any] = {"sampled_every_s": guest.STAT_INTERVAL_S}
        if self.stat_first and self.stat_last:
            steal["share_since_boot"] = _rounded(self.stat_last.steal_share_since(
                self.stat_first))
            steal["share_since_last_record"] = _rounded(self.stat_last.steal_share_since(
                self.stat_mark or self.stat_first))
            self.stat_mark = self.stat_last
        return {
            "qemu_pid": self.qemu_pid, "memory_mb": self.plan.memory_mb,
            "memory_policy": self.memory_policy, "memory_bound": self.memory_bound,
            "memory_reason": self.memory_reason, "vcpus": self.vcpus,
            "qemu_threads": self.qemu_threads,
            "qemu_threads_on_partition": self.threads_on_partition,
            "boot_to_ready_s": round(ready - proc.started, 3) if proc and ready else None,
            "plan": self.plan.to_dict(), "guest_isa": self.guest_isa,
            "isa_missing": self.isa_missing, "warnings": self.warnings,
            "guest_steal": steal, "failure": self.failure,
            "guest_root": self.guest_root.to_dict() if self.guest_root else None,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
