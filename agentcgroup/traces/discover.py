"""Find traces under the paths a user gives: paper attempt directories and our recordings, recursively."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .model import Task
from .paper_format import FILES, is_attempt_dir, load_attempt
from .recording_reader import is_recording, read_recording

PAPER = "paper"
RECORDING = "recording"


@dataclass(frozen=True)
class Source:
    """One trace to load: an attempt directory (``PAPER``) or a recording file (``RECORDING``)."""

    path: Path
    kind: str

    def load(self) -> Task:
        """The trace; content that cannot be read as one raises ``ValueError`` naming the file (a parser's
        slip on a value of the wrong type or size included: a file is data, never a reason for a traceback)."""
        try:
            return load_attempt(self.path) if self.kind == PAPER else read_recording(self.path)
        except (OSError, ValueError):
            raise
        except (TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError) as exc:
            raise ValueError(f"{self.path}: cannot be read: {type(exc).__name__}: {exc}") from None


def _walk(root: Path) -> list[Source]:
    found: list[Source] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if any(f in filenames for f in FILES):
            found.append(Source(here, PAPER))
            dirnames.clear()
            continue
        for name in sorted(filenames):
            if name.endswith(".jsonl") and is_recording(here / name):
                found.append(Source(here / name, RECORDING))
    return found


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Source]:
    """Sources under ``paths``, in a stable order, without duplicates.

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a file that is
    neither a recording nor one of the paper's per-attempt files.
    """
    out: list[Source] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"no such file or directory: {p}")
        if p.is_dir():
            out.extend([Source(p, PAPER)] if is_attempt_dir(p) else _walk(p))
        elif p.name in FILES:
            out.append(Source(p.parent, PAPER))
        elif is_recording(p):
            out.append(Source(p, RECORDING))
        else:
            raise ValueError(f"{p}: neither an agentcg recording nor a file of the paper's format")
    seen: set[tuple[str, str]] = set()
    unique = []
    for s in out:
        key = (str(s.path.resolve()), s.kind)
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique
