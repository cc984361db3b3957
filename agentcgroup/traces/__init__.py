"""Agent session traces: our recording format, the AgentCgroup paper's published format, one model.

Stdlib only. ``discover(paths)`` finds traces; ``Source.load()`` turns each into a :class:`Task`.
"""

from .categories import CATEGORIES, classify
from .discover import Source, discover
from .model import PAPER_FORMAT, RECORDING_FORMAT, Samples, Task, ToolCall
from .paper_format import is_attempt_dir, load_attempt
from .recording import DEFAULT_INTERVAL_S, FORMAT, VERSION, RecordingWriter, host_info
from .recording_reader import RecordingError, is_recording, read_recording

__all__ = [
    "CATEGORIES",
    "DEFAULT_INTERVAL_S",
    "FORMAT",
    "PAPER_FORMAT",
    "RECORDING_FORMAT",
    "VERSION",
    "RecordingError",
    "RecordingWriter",
    "Samples",
    "Source",
    "Task",
    "ToolCall",
    "classify",
    "discover",
    "host_info",
    "is_attempt_dir",
    "is_recording",
    "load_attempt",
    "read_recording",
]
