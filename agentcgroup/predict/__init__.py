"""Learned intents (issue 16): what a tool call will use, predicted from what similar calls used before.

``predicted_intent(argv, cwd, session, history)`` is the seam for admission (docs/predict.md): a
:class:`Prediction` (memory to reserve, CPU, duration, a confidence and what it rests on) or None without
history. :func:`signature` is the command-line normalizer; :class:`History` the bounded in-memory index of
:class:`Observation` s; ``HistoryStore`` the persisted one (SQLite, imported on first use);
``agentcgroup.predict.evaluate`` the offline evaluation behind ``agentcg predict``.
"""

from __future__ import annotations

from typing import Any

from .history import History, Observation
from .rule import DEFAULT_RULE, Prediction, Rule, predicted_intent
from .signature import LEVELS, Signature, signature

__all__ = [
    "DEFAULT_RULE",
    "LEVELS",
    "History",
    "HistoryStore",
    "Observation",
    "Prediction",
    "Rule",
    "Signature",
    "predicted_intent",
    "signature",
]


def __getattr__(name: str) -> Any:
    if name == "HistoryStore":  # sqlite3 only for those who persist
        from .store import HistoryStore

        return HistoryStore
    raise AttributeError(name)
