"""systemd's D-Bus API, the few calls agentcgroup needs, through jeepney (pure Python, imported only here).

Like ``systemctl`` and ``systemd-run``, it talks to the manager directly on its private socket when it can
(``/run/systemd/private`` for root, ``$XDG_RUNTIME_DIR/systemd/private`` for a user's manager: no bus daemon in
between, no ``Hello``), and through the system or session bus otherwise.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import Unsupported

DEST = "org.freedesktop.systemd1"
PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
PROPS = "org.freedesktop.DBus.Properties"
#: a reply may take this long (systemd answers in well under a millisecond; an emulated guest is slower)
CALL_TIMEOUT_S = 30.0


class BusError(Unsupported):
    """systemd could not be reached, or refused a call (the message says which and why)."""


def runtime_dir() -> str:
    """The user's runtime directory: ``$XDG_RUNTIME_DIR``, or ``/run/user/<uid>`` (``su``/``runuser`` drop it)."""
    return os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"


def addresses(user: bool) -> list[tuple[str, bool]]:
    """Where to reach the manager, best first: ``(socket path, is a bus)``."""
    if user:
        rt = runtime_dir()
        out = [(f"{rt}/systemd/private", False)]
        env = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        if env.startswith("unix:path="):
            out.append((env[len("unix:path=") :].split(",")[0], True))
        out.append((f"{rt}/bus", True))
        return out
    env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
    bus = env[len("unix:path=") :].split(",")[0] if env.startswith("unix:path=") else "/run/dbus/system_bus_socket"
    return [("/run/systemd/private", False), (bus, True)]


class SystemdBus:
    """One connection to a systemd manager (the system's, or the calling user's)."""

    def __init__(self, user: bool) -> None:
        from jeepney.io.blocking import DBusConnection, prep_socket

        self.user = user
        self.scope = "user" if user else "system"
        errors = []
        for path, is_bus in addresses(user):
            if not os.path.exists(path):
                continue
            try:
                sock = prep_socket(path, timeout=CALL_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                errors.append(f"{path}: {exc}")
                continue
            self.conn = DBusConnection(sock) if is_bus else _direct(sock)  # a bus says Hello first
            self.address = path
            return
        where = ", ".join(p for p, _ in addresses(user))
        why = "; ".join(errors) or "none of them exists"
        hint = " (is the user's manager running? `loginctl enable-linger` starts it)" if user else ""
        raise BusError(f"cannot reach the {self.scope} systemd manager at {where}: {why}{hint}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SystemdBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, signature: str | None, *args: Any, path: str = PATH, iface: str = MANAGER) -> Any:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        msg = new_method_call(DBusAddress(path, bus_name=DEST, interface=iface), method, signature, args)
        try:
            return unwrap_msg(self.conn.send_and_get_reply(msg, timeout=CALL_TIMEOUT_S))
        except DBusErrorResponse as exc:
            detail = exc.data[0] if exc.data else exc.name
            raise BusError(f"systemd ({self.scope}) refused {method}: {detail}") from None
        except (OSError, TimeoutError) as exc:
            raise BusError(f"systemd ({self.scope}) did not answer {method}: {exc}") from None

    # --- the calls -----------------------------------------------------------------------------------------
    def start_scope(
        self, name: str, pids: list[int], *, slice_name: str | None, description: str, oom_policy: str = "continue"
    ) -> str:
        """A transient scope with delegation, holding ``pids``; returns the job's object path."""
        props: list[tuple[str, tuple[str, Any]]] = [
            ("Description", ("s", description)),
            ("PIDs", ("au", pids)),
            ("Delegate", ("b", True)),
            ("CollectMode", ("s", "inactive-or-failed")),
        ]
        if oom_policy:
            # a tool call's OOM kill is ours to report: the scope (and this process in it) lives on
            props.append(("OOMPolicy", ("s", oom_policy)))
        if slice_name:
            props.append(("Slice", ("s", slice_name)))
        return str(self.call("StartTransientUnit", "ssa(sv)a(sa(sv))", name, "fail", props, [])[0])

    def start_slice(self, name: str, *, description: str, memory_max: int | None, cpu_weight: int | None) -> bool:
        """A transient slice; False when it exists already (another handle of the same session made it)."""
        props: list[tuple[str, tuple[str, Any]]] = [("Description", ("s", description))]
        if memory_max is not None:
            props.append(("MemoryMax", ("t", memory_max)))
        if cpu_weight is not None:
            props.append(("CPUWeight", ("t", cpu_weight)))
        try:
            self.call("StartTransientUnit", "ssa(sv)a(sa(sv))", name, "fail", props, [])
        except BusError as exc:
            if "already exists" in str(exc) or "already loaded" in str(exc):
                return False
            raise
        return True

    def stop_unit(self, name: str) -> str:
        return str(self.call("StopUnit", "ss", name, "replace")[0])

    def unit_path(self, name: str) -> str | None:
        """The object path of a loaded unit, None if it is not loaded."""
        try:
            return str(self.call("GetUnit", "s", name)[0])
        except BusError as exc:
            if "not loaded" in str(exc) or "NoSuchUnit" in str(exc):
                return None
            raise

    def unit_property(self, name: str, iface: str, prop: str) -> Any:
        """A property of a loaded unit (None if the unit is not loaded)."""
        path = self.unit_path(name)
        if path is None:
            return None
        return self.call("Get", "ss", iface, prop, path=path, iface=PROPS)[0][1]

    def delegates(self, unit: str) -> bool:
        """Whether ``unit`` (a service or scope) has ``Delegate=yes``."""
        iface = "org.freedesktop.systemd1." + ("Service" if unit.endswith(".service") else "Scope")
        return bool(self.unit_property(unit, iface, "Delegate"))

    def version(self) -> str:
        return str(self.call("Get", "ss", MANAGER, "Version", iface=PROPS)[0][1])


def _direct(sock: Any) -> Any:
    """A connection straight to systemd's private socket: a peer, not a bus, so no ``Hello``."""
    from jeepney.io.blocking import DBusConnection, DBusConnectionBase
    from jeepney.io.common import MessageFilters

    class Direct(DBusConnection):  # type: ignore[misc]  # jeepney ships no type information
        def __init__(self, sock: Any) -> None:
            DBusConnectionBase.__init__(self, sock)
            self._filters = MessageFilters()

    return Direct(sock)


def connected(user: bool) -> SystemdBus:
    try:
        import jeepney  # noqa: F401
    except ImportError:
        raise BusError("the jeepney package is missing (pip install jeepney): cannot talk to systemd") from None
    return SystemdBus(user)


__all__ = ["BusError", "SystemdBus", "addresses", "connected", "runtime_dir"]
