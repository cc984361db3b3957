"""Per-program rules: what of a simple command's words says how much it will use.

``step(words)`` turns the words of one simple command into a :class:`Step`: the program (its name, without
the path, version suffix or the wrappers around it: ``env``, ``timeout``, ``nice``, ``uv run``, ``npx``,
``python -m``...), its subcommand, the flags that change its size (``-n 4`` for pytest-xdist, ``-j8`` for make,
``--release``, ``-race``) and whether it is narrowed to some targets (``pytest tests/foo`` against ``pytest``).
Everything else (paths, test names, package names, messages) is dropped: ``pytest -x tests/foo`` and ``pytest
tests/bar`` are the same step. A ``bash -c SCRIPT`` step is not a step: :func:`inner_script` hands its script
back to be split again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..traces.categories import CATEGORIES, classify
from .vocabulary import (
    _ALIASES,
    _FILE_TOOLS,
    _MODULE_ALIASES,
    _NO_SUBCOMMAND,
    _PYTHON_PROGRAMS,
    _SHELLS,
    _SUBCOMMANDS,
    _TEST_RUNNERS,
    _TEXT_TOOLS,
    TRIVIAL,
)

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_VERSIONED = re.compile(r"^(python|pypy|pip|pytest|ruby|perl|node|php|gcc|g\+\+|clang|clang\+\+)[0-9][0-9.]*$")
#: most to least likely to be the heaviest step of a chain (the one a call's size is keyed by)
RANK = ("test", "build", "install", "python-run", "python-snippet", "other", "git", "file-exploration",
        "text-processing")  # fmt: skip
assert set(RANK) == set(CATEGORIES)


@dataclass(frozen=True)
class Step:
    """One program run by a call, reduced to what matters for its size."""

    program: str
    sub: str = ""
    flags: tuple[str, ...] = ()
    narrowed: bool = False  # a test runner or build given some targets (not the whole suite)

    @property
    def command(self) -> str:
        """Program and subcommand: ``pip install``, ``git log``, ``pytest``."""
        return f"{self.program} {self.sub}" if self.sub else self.program

    @property
    def text(self) -> str:
        """The whole step: ``pytest -n 4 <some>``, ``make -j8 all``, ``pip install -e``."""
        parts = [self.command, *self.flags]
        if self.narrowed:
            parts.append("<some>")
        return " ".join(parts)

    @property
    def category(self) -> str:
        if self.program in _FILE_TOOLS:
            return "file-exploration"
        if self.program in _TEXT_TOOLS:
            return "text-processing"
        return classify(self.text)

    @property
    def rank(self) -> int:
        return RANK.index(self.category)

    @property
    def trivial(self) -> bool:
        return self.program in TRIVIAL


def program_name(word: str) -> str:
    """``/usr/bin/python3.11`` -> ``python``; ``./node_modules/.bin/jest`` -> ``jest``; ``pip3`` -> ``pip``."""
    name = word if word in ("./gradlew",) else os.path.basename(word.rstrip("/")) or word
    m = _VERSIONED.match(name)
    if m:
        name = m.group(1)
    return _ALIASES.get(name, name)


def _jobs(value: str) -> str:
    """A job/worker count, bucketed to a power of two (``auto`` and unlimited kept as words)."""
    if not value or not value.isdigit():
        return value or "max"
    n = int(value)
    return str(1 << (n.bit_length() - 1)) if n > 0 else "0"


def _positionals(words: Sequence[str], takes_value: frozenset[str] = frozenset()) -> list[str]:
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w == "--":
            continue
        elif w.startswith("-") and w != "-":
            skip = w in takes_value
        else:
            out.append(w)
    return out


def _bare_word(w: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_:.-]{0,40}", w)) and not w.endswith((".py", ".sh", ".txt"))


# -- wrappers: programs that run another program -------------------------------------------------------
def _after_options(words: Sequence[str], takes_value: frozenset[str], positional_args: int = 0) -> list[str]:
    """The words after a wrapper's options (and its ``positional_args`` own positional words)."""
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        if w == "--":
            i += 1
            break
        if w.startswith("-") and len(w) > 1:
            i += 2 if w in takes_value else 1
            continue
        break
    return list(words[i + positional_args :])


_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    # program: (options that take a value, positional words of its own before the command)
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), 1),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "--class", "--classdata"}), 0),
    "nohup": (frozenset(), 0),
    "time": (frozenset({"-f", "-o", "--format", "--output"}), 0),
    "command": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "builtin": (frozenset(), 0),
    "sudo": (frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "--user", "--group"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "xvfb-run": (frozenset({"-n", "-s", "-f", "-e", "--server-num", "--server-args"}), 0),
    "chrt": (frozenset(), 1),
    "taskset": (frozenset(), 1),
    "unbuffer": (frozenset(), 0),
    "catchsegv": (frozenset(), 0),
    "ccache": (frozenset(), 0),
    "xargs": (frozenset({"-n", "-I", "-P", "-L", "-d", "-s", "-a", "-E", "--max-args", "--max-procs"}), 0),
    "npx": (frozenset({"-p", "--package", "-c", "--call"}), 0),
    "bunx": (frozenset({"-p", "--package"}), 0),
    "pnpx": (frozenset(), 0),
    "uvx": (frozenset({"--from", "--with", "-p", "--python"}), 0),
    "pipx": (frozenset(), 0),
    "strace": (frozenset({"-o", "-e", "-p", "-s"}), 0),
    "valgrind": (frozenset(), 0),
    "flock": (frozenset({"-w", "-E", "--timeout"}), 1),
    "watch": (frozenset({"-n", "--interval"}), 0),
}
#: ``X run CMD``: the command runs in X's environment (``uv run pytest``, ``poetry run python -m build``)
_RUNNERS = {
    "uv": frozenset({"--with", "-p", "--python", "--package", "--extra", "--group", "--env-file", "--directory",
                     "--project", "--index", "--from"}),
    "poetry": frozenset({"-C", "--directory", "-P", "--project"}),
    "pipenv": frozenset(),
    "pdm": frozenset({"-p", "--project"}),
    "hatch": frozenset({"-e", "--env"}),
    "rye": frozenset(),
    "conda": frozenset({"-n", "--name", "-p", "--prefix", "--cwd"}),
    "pixi": frozenset({"-e", "--environment", "--manifest-path"}),
    "bundle": frozenset(),
    "docker-compose": frozenset(),
}  # fmt: skip
_EXECUTORS = {("pnpm", "exec"), ("pnpm", "dlx"), ("yarn", "dlx"), ("npm", "exec"), ("bun", "x"), ("uv", "tool")}


def unwrap(words: Sequence[str]) -> list[str]:
    """The words of the program that actually runs, past env assignments and wrappers (``env A=1 timeout 60
    nice uv run pytest -x`` -> ``pytest -x``)."""
    w = list(words)
    for _ in range(16):  # wrappers nest; a bound stops a pathological line
        while w and _ASSIGNMENT.match(w[0]):
            w = w[1:]
        if not w:
            return w
        name = program_name(w[0])
        if name == "env":
            rest = _after_options(w[1:], frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}))
            if len(rest) == 1 and " " in rest[0] and any(x in ("-S", "--split-string") for x in w[1:]):
                rest = rest[0].split()
            w = rest
            continue
        if name in _WRAPPERS:
            takes, own = _WRAPPERS[name]
            w = _after_options(w[1:], takes, own)
            if name in ("npx", "bunx", "pnpx", "uvx") and w:
                w = [re.sub(r"(?<=.)@[^/]*$", "", w[0]), *w[1:]]  # npx jest@29 -> jest
            continue
        if name in _RUNNERS and len(w) > 1:
            rest = _after_options(w[1:], _RUNNERS[name])
            if rest and rest[0] == "run" and len(rest) > 1:
                w = _after_options(rest[1:], _RUNNERS[name])
                continue
        if len(w) > 2 and (name, w[1]) in _EXECUTORS:
            w = _after_options(w[2:], frozenset({"--from", "--with"}))
            if w and w[0] == "run":  # uv tool run X
                w = w[1:]
            continue
        if name == "coverage" and len(w) > 2 and w[1] == "run":
            takes = frozenset({"--rcfile", "--source", "--include", "--omit", "--data-file", "--concurrency"})
            rest, i = list(w[2:]), 0
            while i < len(rest) and rest[i].startswith("-") and rest[i] != "-m":
                i += 2 if rest[i] in takes else 1
            w = ["python", *rest[i:]]
            continue
        return w
    return w


def inner_script(words: Sequence[str]) -> str | None:
    """The script of ``bash -c SCRIPT`` / ``sh -lc SCRIPT`` (after unwrapping), else None."""
    w = unwrap(words)
    if not w or program_name(w[0]) not in _SHELLS:
        return None
    for i, x in enumerate(w[1:], 1):
        if x.startswith("-") and not x.startswith("--") and "c" in x[1:]:
            return w[i + 1] if i + 1 < len(w) else ""
        if not x.startswith("-"):
            return None
    return None


# -- the rules -----------------------------------------------------------------------------------------
def step(words: Sequence[str]) -> Step | None:
    """The :class:`Step` of one simple command, or None when it runs nothing (only assignments)."""
    w = unwrap(words)
    if not w:
        return None
    name = program_name(w[0])
    args = w[1:]
    if name in ("python", "pypy"):
        return _python(args)
    if name in _SHELLS:  # ``bash script.sh`` is the script; ``bash -c`` was split before
        pos = _positionals(args, frozenset({"-o", "-O", "--rcfile", "--init-file"}))
        return Step(program_name(pos[0])) if pos else Step(name, "-")
    return _program(name, args)


def _python(args: Sequence[str]) -> Step:
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
        elif a == "-m" or (a.startswith("-m") and len(a) > 2):
            mod = a[2:] or (args[i + 1] if i + 1 < len(args) else "")
            rest = args[i + 1 :] if a != "-m" else args[i + 2 :]
            if mod in _PYTHON_PROGRAMS:
                return _program(_MODULE_ALIASES.get(mod, mod), rest)
            return Step("python", f"-m {mod}")
        elif a == "-c" or (a.startswith("-c") and len(a) > 2):
            return Step("python", "-c")
        elif a == "-":
            return Step("python", "-")
        elif a.startswith("-"):
            i += 1
        else:
            return Step("python", os.path.basename(a))
    return Step("python", "-")  # a here-document, a pipe or the REPL: a script on stdin


def _program(name: str, args: Sequence[str]) -> Step:
    if name in TRIVIAL:
        return Step(name)
    rule = _RULES.get(name)
    if rule is not None:
        return rule(name, args)
    if name in _TEST_RUNNERS:
        return _test_runner(name, args)
    if name in _SUBCOMMANDS or (name not in _NO_SUBCOMMAND and "/" not in name):
        pos = _positionals(args)
        if pos and _bare_word(pos[0]) and (name in _SUBCOMMANDS or not pos[0][0].isupper()):
            return Step(name, pos[0])
    return Step(name)


def _test_runner(name: str, args: Sequence[str]) -> Step:
    flags: list[str] = []
    narrowed = False
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a in ("-n", "--numprocesses"):
            flags.append(f"-n {_jobs(nxt)}")
            i += 2
            continue
        if a.startswith("--numprocesses="):
            flags.append(f"-n {_jobs(a.split('=', 1)[1])}")
        elif re.fullmatch(r"-n\d+", a):
            flags.append(f"-n {_jobs(a[2:])}")
        elif a.startswith("--cov"):
            flags.append("--cov")
        elif a in ("-k", "-m", "--deselect", "--lf", "--last-failed", "--ff") or a.startswith(("-k", "--lf")):
            narrowed = narrowed or a.startswith("-k") or a in ("--lf", "--last-failed", "--deselect")
            if a in ("-k", "-m", "--deselect"):
                i += 1
        elif a in ("-p", "-c", "-o", "--rootdir", "--tb", "--durations", "-W", "--maxfail", "--junitxml",
                   "--basetemp", "--log-level", "--timeout", "--confcutdir", "--ignore", "--override-ini"):  # fmt: skip
            i += 1
        elif not a.startswith("-"):
            narrowed = True
        i += 1
    return Step(name, "", tuple(sorted(set(flags))), narrowed)


def _make(name: str, args: Sequence[str]) -> Step:
    flags, targets = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-j", "--jobs"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            flags.append(f"-j{_jobs(nxt) if nxt.isdigit() else 'max'}")
            i += 2 if nxt.isdigit() else 1
            continue
        if re.fullmatch(r"-j\d+", a) or a.startswith("--jobs="):
            flags.append(f"-j{_jobs(re.sub(r'^(-j|--jobs=)', '', a))}")
        elif a in ("-C", "-f", "--directory", "--file", "-I", "-o", "-W"):
            i += 1
        elif not a.startswith("-") and "=" not in a:
            targets.append(a)
        i += 1
    return Step(name, " ".join(targets[:3]), tuple(flags))


_CARGO_VALUES = frozenset({"-p", "--package", "-j", "--jobs", "--target", "--features", "-F", "--bin", "--example",
                           "--test", "--bench", "--manifest-path", "-Z"})  # fmt: skip


def _cargo(name: str, args: Sequence[str]) -> Step:
    pos = _positionals(args, _CARGO_VALUES)
    sub = pos[0] if pos else ""
    sub = {"b": "build", "t": "test", "r": "run", "c": "check"}.get(sub, sub)
    flags = [f for f in ("--release", "--workspace", "--all-features") if f in args]
    if "--all" in args:
        flags.append("--workspace")
    for i, a in enumerate(args):
        if a in ("-j", "--jobs") and i + 1 < len(args):
            flags.append(f"-j{_jobs(args[i + 1])}")
    narrowed = sub in ("test", "bench") and (len(pos) > 1 or any(a in ("-p", "--package", "--test") for a in args))
    return Step(name, sub, tuple(sorted(set(flags))), narrowed)


def _go(name: str, args: Sequence[str]) -> Step:
    pos = _positionals(args, frozenset({"-run", "-bench", "-p", "-o", "-tags", "-timeout", "-count", "-parallel",
                                        "-coverprofile", "-ldflags", "-gcflags"}))  # fmt: skip
    sub = pos[0] if pos else ""
    flags = [f for f in ("-race", "-cover") if f in args]
    for i, a in enumerate(args):
        if a == "-p" and i + 1 < len(args):
            flags.append(f"-p {_jobs(args[i + 1])}")
    targets = pos[1:]
    narrowed = sub in ("test", "build", "vet") and (
        "-run" in args or (bool(targets) and not any(t.endswith("...") for t in targets))
    )
    return Step(name, sub, tuple(sorted(flags)), narrowed)


_PIP_VALUES = frozenset({"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
                         "--extra-index-url", "-t", "--target", "--python", "-f"})  # fmt: skip


def _pip(name: str, args: Sequence[str]) -> Step:
    pos = _positionals(args, _PIP_VALUES)
    sub = pos[0] if pos else ""
    if sub != "install":
        return Step("pip", sub)
    flags = set()
    if any(a in ("-e", "--editable") or a.startswith("--editable=") for a in args):
        flags.add("-e")
    if any(a in ("-r", "--requirement") or a.startswith(("-r", "--requirement=")) for a in args):
        flags.add("-r")
    if any(p == "." or p.startswith(("./", "../", "/", ".[")) for p in pos[1:]):
        flags.add(".")
    return Step("pip", "install", tuple(sorted(flags)))


def _node_pm(name: str, args: Sequence[str]) -> Step:
    pos = _positionals(args, frozenset({"--prefix", "-w", "--workspace", "--filter", "-C", "--cwd"}))
    if not pos:
        return Step(name, "install" if name in ("yarn", "pnpm", "bun") else "")
    sub = {"i": "install", "add": "install", "ci": "install", "t": "test", "run-script": "run"}.get(pos[0], pos[0])
    if sub == "run" and len(pos) > 1:
        return Step(name, f"run {pos[1]}")
    return Step(name, sub)


def _uv(name: str, args: Sequence[str]) -> Step:
    if args and args[0] == "pip":
        return _pip("pip", args[1:])
    pos = _positionals(args, frozenset({"-p", "--python", "--directory", "--project"}))
    return Step("uv", pos[0] if pos else "")


def _tox(name: str, args: Sequence[str]) -> Step:
    flags = []
    for i, a in enumerate(args):
        if a in ("-e", "--env") and i + 1 < len(args):
            flags.append(f"-e {args[i + 1]}")
        elif a.startswith("-e") and len(a) > 2:
            flags.append(f"-e {a[2:]}")
        elif a in ("-p", "--parallel"):
            flags.append("-p")
    return Step(name, "", tuple(flags))


def _git(name: str, args: Sequence[str]) -> Step:
    pos = _positionals(args, frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"}))
    return Step("git", pos[0] if pos else "")


def _docker(name: str, args: Sequence[str]) -> Step:
    pos = _positionals(args, frozenset({"-H", "--host", "--context", "--config", "-l", "--log-level"}))
    sub = pos[0] if pos else ""
    if sub in ("compose", "buildx", "image", "container") and len(pos) > 1:
        sub = f"{sub} {pos[1]}"
    return Step("docker", sub)


_RULES = {
    "make": _make,
    "cargo": _cargo,
    "go": _go,
    "pip": _pip,
    "npm": _node_pm,
    "yarn": _node_pm,
    "pnpm": _node_pm,
    "bun": _node_pm,
    "uv": _uv,
    "tox": _tox,
    "nox": _tox,
    "git": _git,
    "docker": _docker,
}
