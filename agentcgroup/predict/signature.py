"""The signature of a tool call: what of its command line says how much memory, CPU and time it will take.

``signature("cd /testbed && PYTHONPATH=. python3 -m pytest -x tests/foo.py 2>&1 | tail -5")`` gives keys from
the most specific to the coarsest, the predictor's back-off order (:data:`LEVELS`):

=========== =============================================== =========================================
level       what it keeps                                   example
=========== =============================================== =========================================
literal     the command as typed (blanks collapsed)          ``cd /testbed && ... | tail -5``
sig.@cwd    the signature, in the directory it runs in       ``/testbed pytest <some>``
            (when known)
signature   every step that runs something: program,         ``pytest <some>``
            subcommand, the flags that change its size,
            narrowed to some targets or not
command     the heaviest step's program and subcommand       ``pytest``
program     the heaviest step's program                      ``pytest``
=========== =============================================== =========================================

A chain's heaviest step is chosen by kind, in a fixed order (:data:`~.programs.RANK`: tests, builds, installs,
scripts, other programs, git, file tools, text tools): ``pip install -e . && python -m pytest`` is keyed as a
pytest run. Steps that only change the shell (``cd``, ``source venv/bin/activate``, ``export``, ``echo``) are
dropped when anything else runs, and so are text filters fed by a pipe (``| tail -5``, ``| grep FAILED``).
``bash -c '...'``, ``sh -lc``, env-var prefixes and wrappers (``timeout``, ``nice``, ``env``, ``uv run``,
``poetry run``, ``npx``, ``python -m``) are seen through.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .programs import Step, inner_script, program_name, step, unwrap
from .shellwords import split_commands

#: key levels, most specific first: the predictor's back-off order (``signature@cwd`` only when the directory
#: the call runs in is known)
LEVELS = ("literal", "signature@cwd", "signature", "command", "program")
#: how deep ``bash -c "bash -c '...'"`` is followed
_MAX_DEPTH = 4


@dataclass(frozen=True)
class Signature:
    """What a call's command line says about it; ``history_keys()`` are its history keys, most specific first."""

    literal: str
    steps: tuple[Step, ...]
    concurrent: tuple[bool, ...]  # per step: runs beside the step before it (a pipe), not after it
    main: Step | None  # the heaviest step (None: the command runs nothing we can name)
    cwd: str | None = None  # where the heaviest step runs, when known

    @property
    def text(self) -> str:
        """The ``signature`` level: every step, with ``|`` between concurrent ones and ``&&`` otherwise."""
        out = []
        for i, (s, conc) in enumerate(zip(self.steps, self.concurrent, strict=True)):
            if i:
                out.append("|" if conc else "&&")
            out.append(s.text)
        return " ".join(out)

    @property
    def command(self) -> str:
        return self.main.command if self.main else ""

    @property
    def program(self) -> str:
        return self.main.program if self.main else ""

    @property
    def category(self) -> str:
        return self.main.category if self.main else "other"

    def history_keys(self) -> list[tuple[str, str]]:
        """``[(level, key), ...]`` in :data:`LEVELS` order; the literal is a digest (commands can be long)."""
        if self.main is None:
            return []
        digest = hashlib.blake2b(self.literal.encode("utf-8", "replace"), digest_size=12).hexdigest()
        keys = [("literal", digest), ("signature", self.text), ("command", self.command), ("program", self.program)]
        if self.cwd:  # the same work in the same directory: another session on the same repository
            keys.insert(1, ("signature@cwd", f"{self.cwd} {self.text}"))
        return keys


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _cd(words: Sequence[str], cwd: str | None) -> str | None:
    target = words[1] if len(words) > 1 and not words[1].startswith("-") else None
    if target is None or "$" in target or target.startswith("~"):
        return None if target else cwd
    if target.startswith("/"):
        return posixpath.normpath(target)
    return posixpath.normpath(posixpath.join(cwd, target)) if cwd else None


def _steps(script: str, cwd: str | None, depth: int, out: list[tuple[Step, bool, str | None]]) -> str | None:
    for cmd in split_commands(script):
        words = cmd.words
        inner = inner_script(words) if depth < _MAX_DEPTH else None
        if inner is not None:
            cwd = _steps(inner, cwd, depth + 1, out)
            continue
        w = unwrap(words)
        if w and program_name(w[0]) in ("cd", "pushd"):
            cwd = _cd(w, cwd)
        s = step(words)
        if s is not None:
            out.append((s, cmd.concurrent, cwd))
    return cwd


def signature(command: str | Sequence[str], cwd: str | None = None) -> Signature:
    """The signature of a command line (a shell string) or of an argv (a list: ``["bash", "-c", "..."]`` is
    read as its script). Never raises: odd text gives a signature of what could be read."""
    if isinstance(command, str):
        script = command
    else:
        argv = [str(a) for a in command]
        inner = inner_script(argv)
        script = inner if inner is not None else shlex.join(argv)
    found: list[tuple[Step, bool, str | None]] = []
    _steps(script, cwd, 0, found)
    useful = [f for f in found if not f[0].trivial] or found
    main = min(useful, key=lambda f: f[0].rank) if useful else None
    if main is not None:  # ``pytest | tail -5``: a text filter at the end of a pipe takes next to nothing
        useful = [f for f in useful if f is main or not (f[1] and f[0].category == "text-processing")]
    return Signature(
        literal=_collapse(script),
        steps=tuple(f[0] for f in useful),
        concurrent=tuple(f[1] if i else False for i, f in enumerate(useful)),
        main=main[0] if main else None,
        cwd=main[2] if main else cwd,
    )
