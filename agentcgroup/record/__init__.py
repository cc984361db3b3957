"""Recording: a session's per-tool-call resource timeline, sampled into an ``agentcg-recording`` file.

::

    from agentcgroup import Session
    from agentcgroup.record import Recorder
    from agentcgroup.traces import RecordingWriter

    with Session("s1") as s, RecordingWriter("s1.jsonl", s.name) as w:
        with Recorder.for_session(s, w):
            s.run(["pytest", "-x"])

``agentcg record -- CMD`` does this around any agent command (see docs/replay.md).
"""

from .calls import RecordedCall, outcome_record
from .leaves import Leaf, classify
from .sampler import Recorder

__all__ = ["Leaf", "RecordedCall", "Recorder", "classify", "outcome_record"]
