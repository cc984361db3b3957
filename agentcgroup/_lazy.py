"""Names of a package imported on first use (PEP 562): a process that needs only a part of agentcgroup (``agentcg
run`` through the daemon, a parser) does not pay for the controller and its backends."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)

if TYPE_CHECKING:
    import logging
    from typing import Any


def lazy_names(package: str, table: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a name to the submodule defining it; a name
    once imported is kept in ``namespace`` (the package's globals), so it is looked up only once."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__


_BELOW_WARNING = frozenset(("debug", "info"))


def _drop(*_args: Any, **_kw: Any) -> None:
    pass


class _LazyLogger:
    """Stands for ``logging.getLogger(name)``, importing :mod:`logging` at its first use."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            if attr in _BELOW_WARNING and "logging" not in sys.modules:
                # logging never imported, so never configured: its default level (WARNING) drops these
                return _drop
            import logging

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attr)


def lazy_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` for a module on the path of a process per call: :mod:`logging` (with
    ``traceback``, ``string``, ``weakref``) is imported when something is first logged at WARNING or above,
    or when anything is logged once it has been imported (and so perhaps configured). A plain call through
    ``agentcg run`` logs only INFO lines, which an unconfigured logging drops anyway."""
    return _LazyLogger(name)  # type: ignore[return-value]  # it stands for one
