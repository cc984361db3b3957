"""What kind of work a shell command is: tests, package installs, builds, git, Python, file exploration.

The first matching rule wins, in the order below (a command that installs and then runs tests counts as
tests), following the paper's Bash categories (analysis/analyze_new_insights.py in eunomia-bpf/agentcgroup)
with builds and a few more test runners and package managers added.
"""

from __future__ import annotations

import re

TEST = "test"
INSTALL = "install"
BUILD = "build"
GIT = "git"
PYTHON_SNIPPET = "python-snippet"
PYTHON_RUN = "python-run"
FILE_EXPLORATION = "file-exploration"
TEXT_PROCESSING = "text-processing"
OTHER = "other"

#: All categories, in the order rules are tried.
CATEGORIES = (TEST, INSTALL, BUILD, GIT, PYTHON_SNIPPET, PYTHON_RUN, FILE_EXPLORATION, TEXT_PROCESSING, OTHER)

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            TEST,
            r"\bpytest\b|\bpy\.test\b|\btox\b|\bnox\b|\bnose(tests)?\b|\bunittest\b|\bcargo\s+test\b"
            r"|\bgo\s+test\b|\b(npm|yarn|pnpm)\s+(run\s+)?test\b|\bjest\b|\bmocha\b|\bctest\b"
            r"|\bmake\s+(test|check)\b",
        ),
        (
            INSTALL,
            r"\b(pip3?|uv\s+pip)\s+install\b|\bconda\s+install\b|\bpoetry\s+(add|install)\b"
            r"|\bapt(-get)?\b|\byum\b|\bdnf\b|\bapk\s+add\b|\b(npm|yarn|pnpm)\s+(install|add|ci)\b"
            r"|\bcargo\s+install\b|\bgo\s+get\b",
        ),
        (
            BUILD,
            r"\bcargo\s+build\b|\bmake\b|\bcmake\b|\bninja\b|\bgo\s+build\b|\b(gcc|clang)\b|\bg\+\+(\s|$)"
            r"|\bmvn\b|\bgradle\b|\b(npm|yarn|pnpm)\s+run\s+build\b|\bsetup\.py\s+(build|develop)\b",
        ),
        (
            GIT,
            r"\bgit\s+(diff|log|status|show|add|commit|checkout|stash|branch|reset|grep|blame|apply|rev-parse)\b",
        ),
        (PYTHON_SNIPPET, r"\bpython[\d.]*\s+-c\b|\bpython[\d.]*\s+-\s*<<|\bpython[\d.]*\s*<<"),
        (PYTHON_RUN, r"\bpython[\d.]*\b"),
        (FILE_EXPLORATION, r"\bls\b|\bfind\b|\btree\b|\bwc\b|\bdu\b|\bdf\b|\bpwd\b|\bstat\b"),
        (TEXT_PROCESSING, r"\bcat\b|\bhead\b|\btail\b|\b[ef]?grep\b|\brg\b|\bsed\b|\bawk\b|\bdiff\b"),
    )
)


def classify(command: str | None) -> str:
    """Return the category of a shell command (``OTHER`` for anything unrecognised, empty or None)."""
    if not command:
        return OTHER
    text = command.strip().lower()
    for name, pattern in _RULES:
        if pattern.search(text):
            return name
    return OTHER
