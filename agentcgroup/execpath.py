"""Where a command's ``argv[0]`` is, as a shell finds it: checked before anything is created (``agentcg run``
says 127 or 126 at once), and the paths the spawned child tries after it switched user. Small on purpose: the
daemon's thin client checks a command line without importing the spawner."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence

from .errors import InvalidValue


def resolve(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> str:
    """The executable ``argv[0]`` names, searched on PATH like a shell; raises ``FileNotFoundError``."""
    if not argv:
        raise InvalidValue("command", list(argv), "must not be empty")
    name = argv[0]
    if "/" in name:
        path = name if os.path.isabs(name) or cwd is None else os.path.join(cwd, name)
        mode = _mode(path)
        if mode is None:
            raise FileNotFoundError(2, f"command not found: {name}", name)
        if stat.S_ISDIR(mode) or not os.access(path, os.X_OK):
            raise PermissionError(13, f"not an executable file: {name}", name)
        return path
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = _which(name, search)
    if found is None:
        raise FileNotFoundError(2, f"command not found: {name}", name)
    return found


def _which(name: str, search: str) -> str | None:
    """``shutil.which(name, path=search)`` on POSIX, without importing shutil (and with it bz2 and lzma)."""
    if not search:
        return None
    seen: set[str] = set()
    for d in search.split(os.pathsep):
        if d in seen:
            continue
        seen.add(d)
        path = os.path.join(d, name)
        mode = _mode(path)
        if mode is not None and not stat.S_ISDIR(mode) and os.access(path, os.X_OK):
            return path
    return None


def _mode(path: str) -> int | None:
    """``st_mode`` of ``path`` (symlinks followed), None where ``os.path.exists`` says False: one ``stat`` where
    ``exists`` and ``isdir`` made two, on every call's path."""
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):
        return None


def exec_paths(argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """Where ``argv[0]`` may be, in the order ``execvp`` tries them, without looking: the child tries them after
    it switched user, so whoever asked learns only what that user could (a root daemon resolving a tenant's
    command would tell it which paths exist inside root-only directories)."""
    if not argv:
        raise InvalidValue("command", list(argv), "must not be empty")
    name = argv[0]
    if not name:
        raise FileNotFoundError(2, "command not found: ''", name)
    if "/" in name:
        return [name]  # relative to the cwd the child changes to
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    return [os.path.join(d or ".", name) for d in search.split(os.pathsep)][:256]
