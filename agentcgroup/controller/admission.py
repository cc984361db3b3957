"""The admission room: a call that declares its memory (an intent, or a hard limit) is admitted when it fits
the session's and the host's budgets, less what admitted calls declared but do not use yet; else it waits
(``admission_wait`` at most) or is refused with a reason the agent can read.

With ``predict`` on, a call that declares nothing reserves its *predicted* peak (:mod:`.predicted`) the same
way, with two differences, because a prediction is a guess and a declaration a promise: it is never refused
(a prediction larger than a budget reserves the budget's room), and it waits only while something that could
free memory runs, ``admission_wait`` at most, then starts anyway. Either way its outcome's feedback says what
was predicted and how long it waited.

Under a host budget, a predicted call also leaves **headroom for the sessions of higher priority**: the largest
peak predicted so far for one of their calls, less what they hold reserved now. Without it, a low-priority
call admitted into the last free memory makes the high-priority session's next call wait for it to end (the
queue orders who goes first, not who is already running). The other way round, what **lower-priority** calls
hold or reserved counts as room for a predicted call (the pressure policy makes them give way), and their end is
not waited for."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._lazy import lazy_logger
from ..feedback import command_text
from ..outcome import Outcome
from ..units import MAX_BYTES, format_size
from ..warm import new_call_id
from .callspec import CallSpec
from .config import PRIORITIES, ControllerConfig
from .intent import declared_memory
from .snapshot import Snapshot
from .state import CallState, SessionState

if TYPE_CHECKING:  # the predictor (and agentcgroup.predict) is imported only where predict=True
    from .predicted import ScopedPredictor

log = lazy_logger("agentcgroup")


def load_predictor(state_dir: str | os.PathLike[str] | None) -> ScopedPredictor:
    """The predictor for ``predict=True`` (one history per uid), imported only then: what ``agentcg run``
    imports stays small."""
    from .predicted import ScopedPredictor

    return ScopedPredictor(state_dir)


class Admission:
    def __init__(
        self,
        config: ControllerConfig,
        lock: threading.RLock,
        snapshot: Callable[[], Snapshot],
        calls: Callable[[], list[CallState]],
        backend: str,
        predictor: ScopedPredictor | None = None,
    ) -> None:
        self.config, self._snapshot, self._calls, self._backend = config, snapshot, calls, backend
        self._cv = threading.Condition(lock)
        self._reserved: dict[str, int] = {}  # call id (or pending token) -> declared bytes
        self._tokens = itertools.count()
        self.waiting = 0  # calls in the queue now (waiting for room)
        self.predictor = predictor
        self._notes: dict[str, str] = {}  # call id (or pending token) -> what admission tells the agent
        #: the queue: token -> (rank, arrival, does it fit now): room that frees goes to the highest priority
        #: waiting call that fits it, first come first served within a priority; a call that does not fit
        #: does not hold back a lower one that does
        self._queue: dict[str, tuple[int, int, Callable[[], bool]]] = {}
        #: id(session) -> (session, the largest peak predicted for one of its calls): the headroom kept for it
        #: by lower-priority sessions' predicted calls
        self._needs: dict[int, tuple[SessionState, int]] = {}

    def admit(self, s: SessionState, spec: CallSpec) -> tuple[float, str] | Outcome:
        """(seconds spent waiting in the queue, 0 when admitted at once; reservation token), or a refusal."""
        token = f"pending-{next(self._tokens)}"
        decl = declared_memory(spec.intent, spec.limits)
        if decl is None:
            if self.predictor is not None:
                return self._admit_predicted(s, spec, token)
            return 0.0, token
        cmd = command_text(list(spec.argv))
        for scope, budget in (("the session's budget", s.budget), ("the host budget", self.config.budget)):
            if budget is not None and budget < MAX_BYTES and decl > budget:
                return self._refusal(
                    s,
                    spec,
                    f"`{cmd}` declares {format_size(decl)} but {scope} is "
                    f"{format_size(budget)}; declare less or split the work",
                )
        t0 = time.monotonic()
        deadline = t0 + self.config.admission_wait
        with self._cv:
            queued = False
            try:
                while True:
                    free = self._free_for(s)
                    if decl <= free and not self._ahead(token):
                        self._reserved[token] = decl
                        return (time.monotonic() - t0 if queued else 0.0), token
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return self._refusal(
                            s,
                            spec,
                            f"`{cmd}` declares {format_size(decl)} but only {format_size(max(free, 0))} "
                            f"was free after waiting {self.config.admission_wait:g} s; retry later or declare less",
                        )
                    if not queued:
                        queued = True
                        self.waiting += 1
                        self._enqueue(token, s, spec, lambda: decl <= self._free_for(s))
                    self._cv.wait(min(left, 0.5))
            finally:
                if queued:
                    self.waiting -= 1
                    self._dequeue(token)

    def _admit_predicted(self, s: SessionState, spec: CallSpec, token: str) -> tuple[float, str]:
        assert self.predictor is not None
        pred = self.predictor.predict(spec, s.name, s.uid)
        if pred is None or pred.memory is None:
            return 0.0, token
        want = pred.memory
        t0 = time.monotonic()
        deadline = t0 + self.config.admission_wait
        queued = False
        with self._cv:
            self._note_need(s, want)
            while True:
                free = self._free_for(s, yielding=True) - self._headroom(s)
                waited = time.monotonic() - t0
                how = "it fit" if want <= free and not self._ahead(token) else None
                if how is None and not self._others_running(s):
                    how = "nothing running could free more"
                if how is None and waited >= self.config.admission_wait:
                    how = f"the wait ({self.config.admission_wait:g} s) ran out"
                if how is not None:
                    self._reserved[token] = want if want <= free else max(free, 0)
                    break
                if not queued:
                    queued = True
                    self.waiting += 1
                    self._enqueue(token, s, spec, lambda: want <= self._free_for(s, True) - self._headroom(s))
                self._cv.wait(min(deadline - time.monotonic(), 0.5))
            if queued:
                self.waiting -= 1
                self._dequeue(token)
        if queued:
            self._notes[token] = (
                f"queued {waited:.1f} s: its predicted peak {format_size(want)} ({pred.basis}) did not fit the "
                f"memory free in its budgets; started when {how}."
            )
            log.info("event=queue-predicted session=%s want=%d waited=%.3f", s.name, want, waited)
        return (waited if queued else 0.0), token

    def _note_need(self, s: SessionState, want: int) -> None:
        for key, (t, _) in list(self._needs.items()):
            if t.closing:
                del self._needs[key]
        prev = self._needs.get(id(s))
        self._needs[id(s)] = (s, max(want, prev[1] if prev is not None else 0))

    def _headroom(self, s: SessionState) -> int:
        """Memory a predicted call of ``s`` leaves free under the host budget for sessions of higher priority:
        each one's largest predicted call peak so far, less what its running calls hold reserved."""
        if self.config.budget is None:
            return 0
        held: dict[int, int] = {}
        for cs in self._calls():
            held[id(cs.session)] = held.get(id(cs.session), 0) + self._reserved.get(cs.id, 0)
        return sum(
            max(0, need - held.get(key, 0))
            for key, (t, need) in self._needs.items()
            if t.rank > s.rank and not t.closing
        )

    def _others_running(self, s: SessionState) -> bool:
        """Whether a running (or admitted) call could free memory for ``s``: one of its own, or with a host
        budget any of at least its priority (a lower-priority call's memory already counts as room for it:
        :meth:`_free_for` ``yielding``)."""
        host = self.config.budget is not None
        return any(cs.session is s or (host and cs.rank >= s.rank) for cs in self._calls()) or any(
            k.startswith("pending-") for k in self._reserved
        )

    def note(self, key: str) -> str | None:
        """What admission has to tell the call's agent (then forgotten)."""
        with self._cv:
            return self._notes.pop(key, None)

    def close(self) -> None:
        if self.predictor is not None:
            self.predictor.close()

    def learn(self, out: Outcome, uid: int = 0) -> None:
        """What the finished call used, for the next call of its kind of the same uid."""
        if self.predictor is not None and not out.refused:
            self.predictor.learn(out, uid)

    def _enqueue(self, token: str, s: SessionState, spec: CallSpec, fits: Callable[[], bool]) -> None:
        rank = PRIORITIES[spec.intent.priority][0] if spec.intent.priority is not None else s.rank
        self._queue[token] = (rank, next(self._tokens), fits)

    def _dequeue(self, token: str) -> None:
        self._queue.pop(token, None)
        self._cv.notify_all()  # the room it took (or did not) is for the next in line to judge

    def _ahead(self, token: str) -> bool:
        """Whether a waiting call before this one in the queue's order (higher priority, or the same and
        earlier) would fit now: it goes first. A call not yet queued is behind every queued one."""
        me = self._queue.get(token)
        for other, (rank, seq, fits) in list(self._queue.items()):
            if other == token:
                continue
            if me is not None and (rank < me[0] or (rank == me[0] and seq > me[1])):
                continue
            if fits():
                return True
        return False

    def _free_for(self, s: SessionState, yielding: bool = False) -> int:
        """What a new call may count on: each budget's room, less what admitted calls declared but have not
        used yet (their usage is already in the budget's). ``yielding``: under the host budget, the memory of
        running calls of lower priority than ``s``, and what they reserved, count as room too (they give way to it:
        the pressure policy holds them, and kills one as the last resort), so that a higher-priority call never
        queues behind them."""
        snap = self._snapshot()
        running = {cs.id: cs for cs in self._calls()}
        free = MAX_BYTES
        for scope, usage, budget, _ in snap.budgets():
            if scope not in ("", s.name):
                continue
            if yielding and scope == "":
                usage -= sum(snap.stats(cs).memory_current or 0 for cs in running.values() if cs.rank < s.rank)
            owed = 0
            for key, decl in self._reserved.items():
                cs = running.get(key)
                if scope and cs is not None and cs.session is not s:
                    continue
                if yielding and not scope and cs is not None and cs.rank < s.rank:
                    continue  # what a lower-priority call reserved gives way too
                used = (snap.stats(cs).memory_current or 0) if cs is not None else 0
                owed += max(0, decl - used)
            free = min(free, int(budget * self.config.pressure_on) - usage - owed)
        return free

    def claim(self, token: str, call_id: str) -> int:
        """The call started: its reservation now goes by its id. Returns the bytes reserved (0: none)."""
        with self._cv:
            if token in self._reserved:
                self._reserved[call_id] = self._reserved.pop(token)
            if token in self._notes:
                self._notes[call_id] = self._notes.pop(token)
            return self._reserved.get(call_id, 0)

    def release(self, key: str) -> None:
        with self._cv:
            self._reserved.pop(key, None)
            self._notes.pop(key, None)
            self._cv.notify_all()

    def _refusal(self, s: SessionState, spec: CallSpec, reason: str) -> Outcome:
        argv = list(spec.argv)
        out = Outcome(
            session=s.name,
            call_id=new_call_id(),
            command=command_text(argv),
            argv=argv,
            backend=self._backend,
            refused=True,
            feedback=f"not run: {reason}.",
            intent=spec.intent.to_dict(),
        )
        log.info("event=refuse session=%s reason=%r", s.name, reason)
        return out
