"""The frame every typed part of a run document shares: checked on load, given back as the
exact JSON it was read from.

A part declares its fields (``FIELDS``: key -> rule, one attribute of the same name each),
those that must be there (``REQUIRED``) or, when there, not null (``NOT_NULL``), those
holding a latency summary (``LATENCY``), a nested part or a list of them (``PARTS``,
``LISTS``) and parts that read keys of the same object (``FLAT``: a group's layout keys).
``from_dict(d, where)`` checks every field and raises
:class:`~scaler.schema.checks.FieldError` naming the first that breaks its rule;
``to_dict()`` gives back the object it was read from, key for key and in the same order:
keys no part types are kept as they were (``extra``: what a newer scaler or a placement of
its own wrote), and a key absent stays absent where a null stays null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from scaler.schema.checks import (
    Check,
    FieldError,
    check_fields,
    check_latency,
    check_not_null,
    path,
)

P = TypeVar("P", bound="Part")


@dataclass(frozen=True, kw_only=True)
class Part:
    keys: tuple[str, ...] = field(default=(), repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    FIELDS: ClassVar[dict[str, Check]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    NOT_NULL: ClassVar[tuple[str, ...]] = ()  # may be absent, never null
    WRITTEN: ClassVar[tuple[str, ...]] = ()  # what every writer of this part records
    LATENCY: ClassVar[tuple[str, ...]] = ()
    PARTS: ClassVar[dict[str, type[Part]]] = {}
    LISTS: ClassVar[dict[str, type[Part]]] = {}
    FLAT: ClassVar[dict[str, type[Part]]] = {}

    @classmethod
    def typed(cls) -> set[str]:
        """The keys this part (with its flat parts) reads into attributes."""
        out = set(cls.FIELDS) | set(cls.PARTS) | set(cls.LISTS)
        for part in cls.FLAT.values():
            out |= part.typed()
        return out

    @classmethod
    def from_dict(cls: type[P], d: Any, where: str = "",
                  required: tuple[str, ...] | None = None, flat: bool = False) -> P:
        """The part read from ``d`` (found at ``where`` in the document), every field
        checked; ``flat``: only this part's own keys of an object another part reads."""
        if not isinstance(d, dict):
            raise FieldError(where, d, "an object")
        for key in cls.REQUIRED if required is None else required:
            if d.get(key) is None:
                rule = cls.FIELDS.get(key)
                raise FieldError(path(where, key), None,
                                 (rule(None) if rule else "an object") or "a value")
        check_not_null(d, cls.NOT_NULL, cls.FIELDS, where)
        check_fields(d, cls.FIELDS, where)
        for key in cls.LATENCY:
            check_latency(d.get(key), path(where, key))
        values: dict[str, Any] = {key: d[key] for key in cls.FIELDS if key in d}
        for key, part in cls.PARTS.items():
            if d.get(key) is not None:
                values[key] = part.from_dict(d[key], path(where, key))
        for key, part in cls.LISTS.items():
            if d.get(key) is not None:
                values[key] = tuple(part.from_dict(v, path(path(where, key), k))
                                    for k, v in enumerate(d[key]))
        for attr, part in cls.FLAT.items():
            values[attr] = part.from_dict(d, where, flat=True)
        typed = cls.typed()
        if flat:
            return cls(keys=tuple(k for k in d if k in typed), **values)
        return cls(keys=tuple(d), extra={k: v for k, v in d.items() if k not in typed},
                   **values)

    @classmethod
    def written(cls, d: dict[str, Any], where: str) -> dict[str, Any]:
        """A record a writer built, checked as a reader will check it and holding every field
        its writers always record (a FieldError, with its traceback, where it is written);
        returns it as it will be saved."""
        return cls.from_dict(d, where, required=cls.REQUIRED + cls.WRITTEN).to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this part was read from."""
        own: dict[str, Any] = {}
        for attr in self.FLAT:
            own.update(getattr(self, attr).to_dict())
        out: dict[str, Any] = {}
        for key in self.keys:
            if key in self.extra:
                out[key] = self.extra[key]
            elif key in own:
                out[key] = own[key]
            else:
                value = getattr(self, key)
                if isinstance(value, Part):
                    value = value.to_dict()
                elif key in self.LISTS and value is not None:
                    value = [v.to_dict() for v in value]
                out[key] = value
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """A field by its key, typed or kept (``extra``), as a reader of the dict would."""
        if key in self.extra:
            return self.extra[key]
        if key in self.typed() and key in self.keys:
            for attr, part in self.FLAT.items():
                if key in part.typed():
                    return getattr(getattr(self, attr), key)
            return getattr(self, key)
        return default
