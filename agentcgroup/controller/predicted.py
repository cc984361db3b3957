"""Admission by prediction (issue 16, docs/predict.md "Admission"): what a call that declares nothing is
expected to use at its peak, from what similar calls used before, and learning from every call that ends.

On only with ``ControllerConfig.predict``. The history is in memory, loaded at start from the state
directory's history store (``<state_dir>/history.sqlite3``, with the rule's margins calibrated on it) and
appended to as calls end, so a daemon's next run starts where this one stopped. Every
:data:`~agentcgroup.predict.calibrate.RECALIBRATE_EVERY` calls learned, the margins are recalibrated on the
latest observations, in a thread of its own (it takes a fraction of a second per thousand calls, which the
event loop must not wait for). A prediction is a
*reservation* (admission holds it against the session's and the host's budgets), never a limit: the leaf's
``memory.high`` and ``memory.max`` stay what the call declared.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..outcome import Outcome
from ..predict.calibrate import MAX_CALLS, RECALIBRATE_EVERY
from ..predict.history import History, Observation
from ..predict.rule import DEFAULT_RULE, Prediction, Rule, predicted_intent
from ..predict.sources import from_outcome
from ..threadnice import at_base

if TYPE_CHECKING:
    from ..predict.store import HistoryStore
    from .callspec import CallSpec

log = logging.getLogger("agentcgroup")


class Predictor:
    """``predict(spec, session)``: the call's :class:`Prediction` or None; ``learn(outcome)``: remember it."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, rule: Rule = DEFAULT_RULE) -> None:
        self._lock = threading.Lock()
        self._store: HistoryStore | None = None
        self.rule = rule
        self.history = History()
        self._base_rule = rule
        self._recent: deque[Observation] = deque(maxlen=MAX_CALLS)  # what calibration replays
        self._since = 0  # observations learned since the last calibration
        self._calibrating: threading.Thread | None = None
        if state_dir is not None:
            from ..predict.store import HistoryStore

            try:
                self._store = HistoryStore(state_dir)
                past = self._store.load()
            except Exception as exc:  # a torn store costs the history, never the controller
                log.warning("event=history-unreadable dir=%s error=%r", state_dir, str(exc))
                past = []
            for o in past:
                self.history.add(o)
            self._recent.extend(past)
            if past and rule.calibration is None:
                self.rule = rule.calibrated(past)
        self._aliases: dict[tuple[str, ...], str] = {}

    def seed(self, observations: Iterable[Observation]) -> None:
        """Start from these observations too (e.g. other sessions' traces), recalibrating on them."""
        obs = list(observations)
        with self._lock:
            for o in obs:
                self.history.add(o)
            self._recent.extend(obs)
            if obs and self._base_rule.calibration is None:
                self.rule = self._base_rule.calibrated(self._recent)
            self._since = 0

    def alias(self, argv: Sequence[str], command: str) -> None:
        """The call run as ``argv`` stands for ``command`` (a replay's worker for the traced command): it is
        predicted, and learned, as that command."""
        with self._lock:
            self._aliases[tuple(argv)] = command

    def predict(self, spec: CallSpec, session: str) -> Prediction | None:
        with self._lock:
            command: str | list[str] = self._aliases.get(tuple(spec.argv)) or list(spec.argv)
            return predicted_intent(command, None, session, self.history, self.rule)

    def predict_command(self, command: str, session: str) -> Prediction | None:
        """What ``command`` would be predicted now in ``session`` (a bench records it beside the outcome)."""
        with self._lock:
            return predicted_intent(command, None, session, self.history, self.rule)

    def learn(self, out: Outcome) -> None:
        """The finished call's use, for the next call of its kind (a miss corrects the history)."""
        obs = from_outcome(out.to_dict(), time.time())
        if obs is None:
            return
        with self._lock:
            command = self._aliases.pop(tuple(out.argv), None)
        if command is not None:
            obs = replace(obs, command=command)
        with self._lock:
            self.history.add(obs)
            self._recent.append(obs)
            self._since += 1
            due = self._since >= RECALIBRATE_EVERY and self._base_rule.calibration is None
            if due and (self._calibrating is None or not self._calibrating.is_alive()):
                self._since = 0
                self._calibrating = threading.Thread(
                    target=self._recalibrate, args=(list(self._recent),), name="agentcg-calibrate", daemon=True
                )
                self._calibrating.start()
        if self._store is not None:
            try:
                self._store.add(obs)
            except Exception as exc:
                log.warning("event=history-not-saved call=%s error=%r", out.call_id, str(exc))

    def _recalibrate(self, observations: list[Observation]) -> None:
        at_base()  # started from the controller's loop, which may run at a raised priority
        try:
            rule = self._base_rule.calibrated(observations)
        except Exception:  # a bad observation costs a calibration, never the controller
            log.exception("event=calibration-failed")
            return
        with self._lock:
            self.rule = rule

    def wait_calibrated(self, timeout: float | None = None) -> None:
        """Wait for a recalibration under way (tests)."""
        t = self._calibrating
        if t is not None:
            t.join(timeout)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


#: uids whose history a daemon keeps open at once (least recently used closed first)
MAX_SCOPES = 256


class ScopedPredictor:
    """One :class:`Predictor` per uid: a call is predicted only from calls its own uid ran, so one tenant's
    commands never size (or reveal themselves through) another tenant's admission. Root's history is the state
    directory's own store (``<state_dir>/history.sqlite3``, as for an embedded controller); uid N's is
    ``<state_dir>/history/uid-N/history.sqlite3``, in directories mode 0700 owned by the daemon."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, rule: Rule = DEFAULT_RULE) -> None:
        self._dir = None if state_dir is None else os.fspath(state_dir)
        self._rule = rule
        self._lock = threading.Lock()
        self._scopes: dict[int, Predictor] = {}  # insertion order = least recently used first

    def scope(self, uid: int = 0) -> Predictor:
        with self._lock:
            p = self._scopes.pop(uid, None)
            if p is None:
                p = Predictor(self._path(uid), self._rule)
            self._scopes[uid] = p
            while len(self._scopes) > MAX_SCOPES:
                oldest = next(iter(self._scopes))
                if oldest == 0:  # root's stays open
                    self._scopes[0] = self._scopes.pop(0)
                    oldest = next(iter(self._scopes))
                self._scopes.pop(oldest).close()
            return p

    def _path(self, uid: int) -> str | None:
        if self._dir is None or uid == 0:
            return self._dir
        path = os.path.join(self._dir, "history", f"uid-{int(uid)}")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(os.path.join(self._dir, "history"), 0o700)
        except OSError as exc:  # no store costs this uid's persistence, never its calls
            log.warning("event=history-dir-unusable uid=%d dir=%s error=%r", uid, path, str(exc))
            return None
        return path

    def predict(self, spec: CallSpec, session: str, uid: int = 0) -> Prediction | None:
        return self.scope(uid).predict(spec, session)

    def learn(self, out: Outcome, uid: int = 0) -> None:
        self.scope(uid).learn(out)

    def predict_command(self, command: str, session: str, uid: int = 0) -> Prediction | None:
        return self.scope(uid).predict_command(command, session)

    def seed(self, observations: Iterable[Observation], uid: int = 0) -> None:
        self.scope(uid).seed(observations)

    def alias(self, argv: Sequence[str], command: str, uid: int = 0) -> None:
        self.scope(uid).alias(argv, command)

    def wait_calibrated(self, timeout: float | None = None) -> None:
        with self._lock:
            scopes = list(self._scopes.values())
        for p in scopes:
            p.wait_calibrated(timeout)

    def close(self) -> None:
        with self._lock:
            scopes, self._scopes = list(self._scopes.values()), {}
        for p in scopes:
            p.close()
