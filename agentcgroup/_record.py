"""What the value classes on the per-call path share, in place of ``dataclasses``.

``agentcg run`` is a process per tool call, and ``dataclasses`` costs it more than anything else it imports:
the module (with ``inspect``, ``ast``, ``dis``, ``tokenize``) and then code generated and compiled for every
class (docs/performance.md). A class here lists its fields in ``FIELDS`` and writes its ``__init__``; these
bases give the rest of what the dataclass gave: equality by value over the fields, a dataclass-like repr, a
dict of the fields, and for :class:`Frozen` immutability, hashing by value and :meth:`Frozen.replace`.
"""

from __future__ import annotations

import reprlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    _F = TypeVar("_F", bound="Frozen")


class Record:
    """Fields compared by value; mutable, hence unhashable (as a dataclass with ``eq=True``)."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    __hash__ = None  # type: ignore[assignment]

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{self.__class__.__qualname__}({inner})"

    def as_dict(self) -> dict[str, Any]:
        """The fields, shallow (the values themselves, not copies)."""
        return {name: getattr(self, name) for name in self.FIELDS}


class Frozen(Record):
    """Immutable once built (``__init__`` sets fields with :meth:`_set`), hashed by value."""

    __slots__ = ()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {self.__class__.__qualname__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {self.__class__.__qualname__} is immutable")

    def __hash__(self) -> int:  # type: ignore[override]  # Record: None (mutable); frozen: by value
        return hash(self._values())

    def replace(self: _F, **changes: Any) -> _F:
        """A copy with ``changes`` (checked again by ``__init__``), as ``dataclasses.replace``."""
        values = self.as_dict()
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{self.__class__.__qualname__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return self.__class__(**values)


class Identity:
    """Compared and hashed by identity (a dataclass with ``eq=False``), with a repr of its fields."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{self.__class__.__qualname__}({inner})"
