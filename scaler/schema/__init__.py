"""The typed run record: ``run.json`` as frozen dataclasses, checked where it is read and
where it is written.

``Run`` (the document), ``Group`` (one measured or simulated group, closed loop or served),
``Instance`` (a group's ``per_instance`` entry), ``Layout`` (a group's plan keys), ``Point``
(a figure across repeats), ``Effective`` and ``Requested``. Each has ``from_dict(d, where)``,
which checks types, ranges and finite figures and raises :class:`FieldError` naming the
field (``points[0].throughput_ips should be a finite number >= 0, not Infinity``), and
``to_dict()``, which gives back exactly the JSON it was read from (unknown keys kept, key
order too). Writers build their records through ``Group.written`` (``scaler.records``,
``scaler.simulate.sweep``); ``scaler.results.load_run`` returns a run whose ``record`` is
the typed ``Run``. The rules are the only ones: ``scaler.validate_run`` applies them.
"""

from __future__ import annotations

from scaler.schema.checks import FieldError
from scaler.schema.part import Part
from scaler.schema.parts import Effective, Group, Instance, Layout, Point, Requested
from scaler.schema.run import Run

__all__ = ["Effective", "FieldError", "Group", "Instance", "Layout", "Part", "Point",
           "Requested", "Run"]
