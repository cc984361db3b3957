"""What the daemon does for a uid that is not root: its own namespace of session names, its own environment.

A tenant's session ``build`` is the controller's session ``u1001:build``: another uid's ``build`` is another
session, so no uid can see, open or squat another's names, before or after a restart (the owner is kept in the
state dir). Root addresses every session by its full name. The tenant is shown its own names back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from ..cgroupfs import check_name
from ..errors import InvalidValue

ROOT = 0
NAME_MAX = 128
_OWNED = re.compile(r"^u(\d+):")
#: what a call gets when its client sent no PATH (as login(1) sets it)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: how long a uid's passwd entry is trusted for its calls' environment
USER_ENV_TTL_S = 60.0
_USER_ENV: dict[int, tuple[float, dict[str, str]]] = {}


def internal_name(uid: int, name: str) -> str:
    """The controller's name of ``uid``'s session ``name`` (validated; errors name the tenant's value)."""
    check_name(name, "session")
    if uid == ROOT:
        return name
    prefix = f"u{uid}:"
    if len(prefix) + len(name) > NAME_MAX:
        raise InvalidValue("session", name, f"too long: at most {NAME_MAX - len(prefix)} characters")
    return prefix + name


def external_name(uid: int, name: str) -> str:
    """The name ``uid`` knows a session by."""
    prefix = f"u{uid}:"
    return name[len(prefix) :] if uid != ROOT and name.startswith(prefix) else name


def owner_named(name: str) -> int | None:
    """The uid a full session name belongs to (``u1001:x`` -> 1001), for root opening it on a tenant's behalf."""
    m = _OWNED.match(name)
    return int(m.group(1)) if m else None


def hide_prefix(uid: int, text: str) -> str:
    """A message about ``uid``'s own sessions, in its own names."""
    return text if uid == ROOT else text.replace(f"u{uid}:", "")


def call_env(uid: int, sent: Mapping[str, str] | None) -> dict[str, str]:
    """A call's environment: exactly what its client sent, plus PATH, HOME, USER, LOGNAME and SHELL of ``uid``
    (from its passwd entry) where the client sent none. Never anything of the daemon's own environment."""
    env = dict(sent or {})
    for key, value in _user_env(uid).items():
        env.setdefault(key, value)
    return env


def _user_env(uid: int) -> dict[str, str]:
    """PATH, HOME, USER, LOGNAME and SHELL of ``uid``; its passwd entry read at most once a minute (as the
    policy's caps are), not on every call."""
    now = time.monotonic()
    hit = _USER_ENV.get(uid)
    if hit is not None and now - hit[0] < USER_ENV_TTL_S:
        return hit[1]
    import pwd

    try:
        pw = pwd.getpwuid(uid)
        user: dict[str, str] = {
            "HOME": pw.pw_dir or "/",
            "USER": pw.pw_name,
            "LOGNAME": pw.pw_name,
            "SHELL": pw.pw_shell or "/bin/sh",
        }
    except KeyError:  # a uid without a passwd entry
        user = {"HOME": "/", "SHELL": "/bin/sh"}
    user["PATH"] = DEFAULT_PATH
    if len(_USER_ENV) > 4096:
        _USER_ENV.clear()
    _USER_ENV[uid] = (now, user)
    return user
