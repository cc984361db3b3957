"""What every cgroupfs backend shares: one tree of cgroups mirrored across one or more hierarchies.

A cgroup exists in some *roles* (hierarchies): v2 has one (``unified``); hybrid/v1 has ``memory`` always, and
``cpu``, ``pids`` only when a limit needs them. A process is placed, in each role, in the deepest cgroup of its
path that exists in that role, so a tool call without a CPU limit still feels its session's CPU weight.

Subclasses say which roles a cgroup needs, how limits map to files, and how to read figures.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from typing import Any

from ..cgroupfs import Dir, check_name
from ..errors import CgroupError, InvalidName, NotFound
from ..limits import Limits
from ..parsers import parse_pids
from ..spawn import Process
from ..spawn import spawn as _spawn
from ._watch import TreeWatch
from .base import Cgroup, Manager


class _Dirs(dict[str, Dir]):
    """A cgroup's directory in each hierarchy (role). A role it is no longer in (the leaf is being removed, one
    rmdir a role, while another thread reads its figures) is :class:`NotFound`, as its files would be, and
    callers that take a gone cgroup's figures as empty do so; a bare ``KeyError`` escaped them."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __missing__(self, role: str) -> Dir:
        raise NotFound(f"cgroup {self.name} is no longer in the {role} hierarchy (removed)", self.name)


class TreeManager(TreeWatch, Manager):
    #: roles every cgroup is created in; subclasses fill it
    always_roles: tuple[str, ...] = ()
    #: the role whose tree lists children and processes
    main_role: str = ""
    has_root = True
    preplace = True

    def __init__(self, bases: dict[str, str], root_name: str) -> None:
        check_name(root_name, "root name")
        self.root_name = root_name
        self._bases = dict(bases)  # role -> directory our root goes beneath
        self._roots: dict[str, Dir] = {}
        self._cache: dict[tuple[str, ...], Cgroup] = {}
        self._lock = threading.RLock()

    # --- roles ---------------------------------------------------------------------------------------
    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._bases)

    def roles_for(self, limits: Limits) -> list[str]:
        """Roles a cgroup with these limits must exist in (beyond ``always_roles``)."""
        return []

    def full_roles(self) -> list[str]:
        """Every role a cgroup may ever need (limits included)."""
        return list(self._bases)

    def prepare_parent(self, role: str, parent: Dir, depth: int) -> None:
        """Called before a child is made in ``parent`` (v2 enables controllers here). ``depth`` 0 = base."""

    # --- roots -----------------------------------------------------------------------------------------
    def _root(self, role: str) -> Dir:
        d = self._roots.get(role)
        if d is not None and d.fd >= 0:
            return d
        base = Dir.open(self._bases[role])
        try:
            self.prepare_parent(role, base, 0)
            d = base.child(self.root_name, create=True)
        finally:
            base.close()
        self._roots[role] = d
        return d

    def root_cgroup(self) -> Cgroup:
        """A handle on the root itself (budget, figures). Not destroyable; :meth:`close` removes the root."""
        with self._lock:
            cg = self._cache.get(())
            if cg is None:
                dirs = _Dirs("/")
                dirs.update((role, self._root(role)) for role in self.always_roles)
                cg = Cgroup((), None, Limits(), {"dirs": dirs, "root": True})
                self._cache[()] = cg
            return cg

    def root_path(self, role: str) -> str:
        return f"{self._bases[role]}/{self.root_name}"

    def _dir_of(self, cg: Cgroup | None, role: str) -> Dir | None:
        if cg is None:
            return self._root(role)
        d: Dir | None = cg.backend_data["dirs"].get(role)
        return d

    # --- create / open ---------------------------------------------------------------------------------
    def create(
        self,
        path: Sequence[str],
        limits: Limits | None = None,
        *,
        exist_ok: bool = True,
        full: bool = False,
        shape: Limits | None = None,
    ) -> Cgroup:
        path = tuple(check_name(p) for p in path)
        if not path:
            raise NotFound("the root itself cannot be created as a cgroup handle", self.root_name)
        limits = limits or Limits()
        with self._lock:
            if path in self._cache:
                if not exist_ok:
                    raise FileExistsError(f"cgroup {'/'.join(path)} exists")
                cg = self._cache[path]
                if not limits.is_empty():
                    self.set_limits(cg, limits)
                return cg
            for _ in range(2):
                try:
                    return self._create(path, limits, exist_ok, full, shape)
                except NotFound:
                    # another process removed our (empty) root or a parent between our steps: redo them
                    self._forget_roots()
            return self._create(path, limits, exist_ok, full, shape)

    def _forget_roots(self) -> None:
        for d in self._roots.values():
            d.close()
        self._roots.clear()
        for cg in list(self._cache.values()):
            self._close_handle(cg)
        self._cache.clear()

    def _create(
        self, path: tuple[str, ...], limits: Limits, exist_ok: bool, full: bool = False, shape: Limits | None = None
    ) -> Cgroup:
        parent = self._get_or_create(path[:-1]) if len(path) > 1 else None
        extra = self.full_roles() if full else self.roles_for(limits if shape is None else shape.merged(limits))
        roles = list(dict.fromkeys([*self.always_roles, *extra]))
        roles = [r for r in roles if r in self._bases]
        name = path[-1]
        made: list[tuple[Dir, str]] = []
        dirs = _Dirs("/".join(path))
        cg = Cgroup(path, parent, Limits(), {"dirs": dirs})
        try:
            for role in roles:
                pdir = self._ensure_role(parent, role)
                self.prepare_parent(role, pdir, len(path))
                try:
                    dirs[role] = pdir.make_child(name)
                    made.append((pdir, name))
                except FileExistsError:
                    if not exist_ok:
                        raise
                    dirs[role] = pdir.child(name)
            if len(made) < len(roles) or not made:  # it existed: know every hierarchy it is in
                self._open_other_roles(cg)
            self.on_created(cg)
            if not limits.is_empty():
                self.set_limits(cg, limits)
        except BaseException:
            for d in dirs.values():
                d.close()
            for pdir, n in reversed(made):
                try:
                    pdir.remove_child(n, timeout=1.0)
                except CgroupError:
                    pass
            raise
        self._cache[path] = cg
        return cg

    def _open_other_roles(self, cg: Cgroup) -> None:
        dirs = cg.backend_data["dirs"]
        for role in self._bases:
            if role in dirs:
                continue
            pdir = self._dir_of(cg.parent, role)
            if pdir is None:
                continue
            try:
                dirs[role] = pdir.child(cg.path[-1])
            except NotFound:
                continue

    def on_created(self, cg: Cgroup) -> None:
        """Hook: a cgroup's dirs exist, before limits are set."""

    def on_removed(self, role: str, path: str) -> None:
        """Hook: the directory ``path`` (of ``role``) is being removed; forget what was known of it."""

    def _get_or_create(self, path: tuple[str, ...]) -> Cgroup:
        cg = self._cache.get(path)
        if cg is not None:
            return cg
        try:
            return self._open(path)
        except NotFound:
            return self._create(path, Limits(), exist_ok=True)

    def _ensure_role(self, cg: Cgroup | None, role: str) -> Dir:
        """The dir of ``cg`` in ``role``, creating it (and its ancestors) there if missing."""
        d = self._dir_of(cg, role)
        if d is not None:
            return d
        assert cg is not None
        pdir = self._ensure_role(cg.parent, role)
        self.prepare_parent(role, pdir, len(cg.path))
        d = pdir.child(cg.path[-1], create=True)
        cg.backend_data["dirs"][role] = d
        # processes already in cg (in its main role) follow it into the new hierarchy
        for pid in self.pids(cg):
            try:
                d.write("cgroup.procs", str(pid))
            except NotFound:
                pass
            except CgroupError as exc:
                if exc.errno != errno.ESRCH:  # ESRCH: it exited meanwhile
                    raise
        return d

    def open(self, path: Sequence[str]) -> Cgroup:
        path = tuple(check_name(p) for p in path)
        with self._lock:
            cg = self._cache.get(path)
            if cg is not None:
                return cg
            return self._open(path)

    def _open(self, path: tuple[str, ...]) -> Cgroup:
        parent = self.open(path[:-1]) if len(path) > 1 else None
        dirs = _Dirs("/".join(path))
        for role in self._bases:
            pdir = self._dir_of(parent, role)
            if pdir is None:
                continue
            try:
                dirs[role] = pdir.child(path[-1])
            except NotFound:
                continue
        if self.main_role not in dirs:
            for d in dirs.values():
                d.close()
            raise NotFound(f"no cgroup {'/'.join(path)} under {self.root_path(self.main_role)}", "/".join(path))
        cg = Cgroup(path, parent, Limits(), {"dirs": dirs})
        self._cache[path] = cg
        return cg

    def children(self, path: Sequence[str]) -> list[str]:
        path = tuple(path)
        d = self._root(self.main_role) if not path else self._dir_of(self.open(path), self.main_role)
        assert d is not None
        return d.children()

    # --- processes -------------------------------------------------------------------------------------
    def placement_dirs(self, cg: Cgroup) -> list[Dir]:
        """In each role, the deepest dir on ``cg``'s path that exists: where a new process goes."""
        out = []
        for role in self._bases:
            node: Cgroup | None = cg
            while node is not None and role not in node.backend_data["dirs"]:
                node = node.parent
            if node is not None:
                out.append(node.backend_data["dirs"][role])
        return out

    def open_placement(self, cg: Cgroup) -> list[int]:
        fds: list[int] = []
        try:
            for d in self.placement_dirs(cg):
                fds.append(d.open_file("cgroup.procs", os.O_WRONLY))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def spawn(self, cg: Cgroup, argv: Sequence[str], **kwargs: Any) -> Process:
        fds = self.open_placement(cg)
        try:
            return _spawn(argv, procs_fds=fds, **kwargs)
        finally:
            for fd in fds:
                os.close(fd)

    def attach(self, cg: Cgroup, pid: int) -> None:
        for d in self.placement_dirs(cg):
            d.write("cgroup.procs", str(int(pid)))

    def pids(self, cg: Cgroup) -> list[int]:
        """Processes in ``cg`` and every cgroup beneath it (main role)."""
        d = self._dir_of(cg, self.main_role)
        if d is None:
            return []
        return sorted(self._pids_under(d))

    def _pids_under(self, d: Dir) -> set[int]:
        try:
            found = set(parse_pids(d.read("cgroup.procs")))
            for name in d.children():
                child = d.child(name, listed=True)
                try:
                    found |= self._pids_under(child)
                finally:
                    child.close()
        except NotFound:
            return set()
        except CgroupError as exc:
            if exc.errno != errno.ENODEV:  # ENODEV: removed (by another process of ours) while we read it
                raise
            return set()
        return found

    # --- removal ---------------------------------------------------------------------------------------
    def destroy(self, cg: Cgroup, timeout: float = 5.0) -> None:
        """Kill what is in ``cg`` and beneath it, then remove it bottom-up. Children it did not make (a root
        tool may make one in its leaf, even named ``.hidden``) are inside our tree: emptied and removed too."""
        with self._lock:
            if cg.closed or self._remove_empty(cg):
                return
            if self.pids(cg):
                self.kill(cg, timeout=timeout)
            names: set[str] = set()
            for d in cg.backend_data["dirs"].values():
                try:
                    names.update(d.children())
                except NotFound:
                    pass
            for name in sorted(names):
                if _ours(name):
                    try:
                        child = self.open((*cg.path, name))
                    except NotFound:  # not in the main hierarchy (a tool made it elsewhere): removed below
                        continue
                    self.destroy(child, timeout=timeout)
            errors: list[CgroupError] = []
            for d in cg.backend_data["dirs"].values():  # what is left was made by a tool: emptied above
                try:
                    for name in d.children():
                        _remove_tree(d, name, timeout)
                except NotFound:
                    pass
                except CgroupError as exc:
                    errors.append(exc)
            for role, d in list(cg.backend_data["dirs"].items()):
                pdir = self._dir_of(cg.parent, role)
                self.on_removed(role, d.path)
                d.close()
                if pdir is None:
                    continue
                try:
                    pdir.remove_child(cg.path[-1], timeout=timeout)
                except CgroupError as exc:
                    errors.append(exc)
            self._close_handle(cg)
            self._cache.pop(cg.path, None)
            if errors:
                raise errors[0]

    def remove_if_empty(self, cg: Cgroup) -> bool:
        with self._lock:
            return cg.closed or self._remove_empty(cg)

    def _remove_empty(self, cg: Cgroup) -> bool:
        """The common case, a finished call's empty leaf: one ``rmdir`` a role, nothing read first (the kernel
        refuses, EBUSY, to remove a cgroup holding a process or a child). True if it is gone from every role;
        else the roles it went from are forgotten and :meth:`destroy` does the rest the careful way."""
        dirs = cg.backend_data["dirs"]
        if not cg.path or cg.backend_data.get("root"):
            return False
        # the main role first: a process left in the leaf is there, and then nothing is removed
        for role in sorted(dirs, key=lambda r: r != self.main_role):
            d, pdir = dirs[role], self._dir_of(cg.parent, role)
            if pdir is None:
                return False
            try:
                pdir.remove_child(cg.path[-1], timeout=0)
            except CgroupError:
                return False
            self.on_removed(role, d.path)
            d.close()
            del dirs[role]
        self._close_handle(cg)
        self._cache.pop(cg.path, None)
        return True

    def release(self, cg: Cgroup) -> None:
        with self._lock:
            n = len(cg.path)
            if not n or self._cache.get(cg.path) is not cg or any(len(p) > n and p[:n] == cg.path for p in self._cache):
                return
            del self._cache[cg.path]
            self._close_handle(cg)

    def _close_handle(self, cg: Cgroup) -> None:
        if not cg.backend_data.get("root"):  # the root's dirs belong to self._roots
            for d in cg.backend_data["dirs"].values():
                d.close()
        cg.closed = True

    def close(self) -> None:
        """Close every handle and remove our root where it is empty (others may still use it)."""
        with self._lock:
            for cg in list(self._cache.values()):
                self._close_handle(cg)
            self._cache.clear()
            for d in self._roots.values():
                d.close()
            self._roots.clear()
            for role, base in self._bases.items():
                try:
                    bdir = Dir.open(base)
                except CgroupError:
                    continue
                try:
                    bdir.remove_child(self.root_name, timeout=0)
                except CgroupError:
                    pass  # not empty: another session of ours is using it
                finally:
                    bdir.close()
                del role


def _ours(name: str) -> bool:
    """A name we could have made (anything else in our tree was made by a tool)."""
    try:
        check_name(name)
    except InvalidName:
        return False
    return True


def _remove_tree(parent: Dir, name: str, timeout: float) -> None:
    """Remove ``parent``'s child ``name`` and everything beneath it, deepest first (their processes are gone)."""
    d = parent.child(name, listed=True)
    try:
        for sub in d.children():
            _remove_tree(d, sub, timeout)
    finally:
        d.close()
    parent.remove_child(name, timeout=timeout, listed=True)
