"""Pure parsers of kernel text. No I/O here: every function takes a string.

Unknown keys are kept, never fatal: kernels add fields over time.
"""

from __future__ import annotations

from ._record import Frozen
from .units import MAX_BYTES, parse_kernel_size


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def parse_flat_keyed(text: str) -> dict[str, int | float | str]:
    """``key value`` lines (memory.events, cpu.stat, memory.stat, v1 memory.oom_control, pids.events)."""
    out: dict[str, int | float | str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = _number(parts[1].strip())
        elif len(parts) == 1:
            out[parts[0]] = ""
    return out


def parse_usage_usec(cpu_stat: str) -> int:
    """``usage_usec`` of a cgroup v2 ``cpu.stat`` (0 if absent) without parsing its other lines: what a metrics
    scrape reads of every session."""
    for line in cpu_stat.splitlines():
        if line.startswith("usage_usec "):
            return int(line[11:])
    return 0


def parse_nested_keyed(text: str) -> dict[str, dict[str, int | float | str]]:
    """``name k=v k=v`` lines (io.stat, memory.numa_stat, PSI). The first word names the row."""
    out: dict[str, dict[str, int | float | str]] = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        row: dict[str, int | float | str] = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            row[key] = _number(value) if sep else ""
        out[words[0]] = row
    return out


class Pressure(Frozen):
    """One PSI line: share of time stalled (percent) over 10/60/300 s, and the total stall in µs."""

    FIELDS = ("avg10", "avg60", "avg300", "total_us")
    avg10: float
    avg60: float
    avg300: float
    total_us: int

    def __init__(self, avg10: float, avg60: float, avg300: float, total_us: int) -> None:
        self._set("avg10", avg10)
        self._set("avg60", avg60)
        self._set("avg300", avg300)
        self._set("total_us", total_us)


def parse_psi(text: str) -> dict[str, Pressure]:
    """``some avg10=0.00 avg60=0.00 avg300=0.00 total=0`` (and ``full ...``) into ``{"some": Pressure}``."""
    out: dict[str, Pressure] = {}
    for line in text.splitlines():  # read for every session at every metrics scrape: no int-then-float guessing
        name, _, rest = line.strip().partition(" ")
        row = {}
        for word in rest.split():
            key, sep, value = word.partition("=")
            if sep:
                row[key] = value
        try:
            out[name] = Pressure(float(row["avg10"]), float(row["avg60"]), float(row["avg300"]), int(row["total"]))
        except (KeyError, ValueError):
            continue
    return out


def parse_psi_avg10(text: str) -> dict[str, float]:
    """Only the ``avg10`` of each PSI line (``{"some": 0.0, "full": 0.0}``): what a metrics scrape reads of
    every session, at a fraction of :func:`parse_psi`'s cost. A line without a readable avg10 is left out."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        words = line.split()
        for word in words[1:]:
            if word.startswith("avg10="):
                try:
                    out[words[0]] = float(word[6:])
                except ValueError:
                    pass
                break
    return out


def parse_max(text: str) -> int:
    """A single value that may be ``max`` (memory.max, pids.max, v1 limits): ``MAX_BYTES`` for unlimited."""
    return parse_kernel_size(text)


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """cpu.max ``$QUOTA $PERIOD`` in µs; quota ``None`` for ``max``."""
    words = text.split()
    quota = None if words[0] == "max" else int(words[0])
    period = int(words[1]) if len(words) > 1 else 100_000
    return quota, period


class ProcCgroup(Frozen):
    """One line of /proc/<pid>/cgroup."""

    FIELDS = ("hierarchy_id", "controllers", "path")
    hierarchy_id: int
    controllers: tuple[str, ...]
    path: str

    def __init__(self, hierarchy_id: int, controllers: tuple[str, ...], path: str) -> None:
        self._set("hierarchy_id", hierarchy_id)
        self._set("controllers", controllers)
        self._set("path", path)


def parse_proc_cgroup(text: str) -> list[ProcCgroup]:
    """``4:memory:/a/b`` lines; ``0::/x`` is the cgroup2 entry (no controllers); ``name=systemd`` kept."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        hid, controllers, path = line.split(":", 2)
        ctrl = tuple(c for c in controllers.split(",") if c)
        out.append(ProcCgroup(int(hid), ctrl, path))
    return out


def proc_cgroup_path(text: str, controller: str | None) -> str | None:
    """The path of one hierarchy in ``/proc/<pid>/cgroup`` text: the cgroup2 one (``0::/x``) if ``controller`` is
    None, else the v1 one that has ``controller``; None if there is none. On every call's path (is the command
    still in its leaf?): no object a line, as :func:`parse_proc_cgroup` makes (a sixth of the cost)."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if (parts[0] == "0") if controller is None else (controller in parts[1].split(",")):
            return parts[2]
    return None


class Mount(Frozen):
    """The fields of one /proc/self/mountinfo line that matter to cgroups."""

    FIELDS = ("mount_id", "parent_id", "root", "mountpoint", "fstype", "source", "super_options")
    mount_id: int
    parent_id: int
    root: str
    mountpoint: str
    fstype: str
    source: str
    super_options: tuple[str, ...]

    def __init__(
        self,
        mount_id: int,
        parent_id: int,
        root: str,
        mountpoint: str,
        fstype: str,
        source: str,
        super_options: tuple[str, ...],
    ) -> None:
        self._set("mount_id", mount_id)
        self._set("parent_id", parent_id)
        self._set("root", root)
        self._set("mountpoint", mountpoint)
        self._set("fstype", fstype)
        self._set("source", source)
        self._set("super_options", super_options)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo (see proc(5)); the optional fields end at a lone ``-``."""
    mounts = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 10 or "-" not in words[6:]:
            continue
        sep = words.index("-", 6)
        fstype, source = words[sep + 1], words[sep + 2]
        super_opts = tuple(words[sep + 3].split(",")) if len(words) > sep + 3 else ()
        mounts.append(
            Mount(
                int(words[0]),
                int(words[1]),
                _unescape(words[3]),
                _unescape(words[4]),
                fstype,
                source,
                super_opts,
            )
        )
    return mounts


def v1_controllers(mount: Mount) -> tuple[str, ...]:
    """The controllers a v1 cgroup mount carries, from its super options (``rw,cpu,cpuacct`` -> cpu, cpuacct)."""
    skip = {"rw", "ro", "relatime", "noexec", "nosuid", "nodev", "noatime", "clone_children", "xattr"}
    return tuple(o for o in mount.super_options if o not in skip and "=" not in o and not o.startswith("release_agent"))


def parse_list(text: str) -> list[str]:
    """Whitespace-separated words (cgroup.controllers, cgroup.subtree_control)."""
    return text.split()


def parse_pids(text: str) -> list[int]:
    """cgroup.procs / tasks: one pid a line."""
    return [int(w) for w in text.split()]


__all__ = [
    "MAX_BYTES",
    "Mount",
    "Pressure",
    "ProcCgroup",
    "parse_cpu_max",
    "parse_flat_keyed",
    "parse_list",
    "parse_max",
    "parse_mountinfo",
    "parse_nested_keyed",
    "parse_pids",
    "parse_proc_cgroup",
    "parse_psi",
    "proc_cgroup_path",
    "v1_controllers",
]
