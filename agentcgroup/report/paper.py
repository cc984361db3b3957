"""The AgentCgroup paper's own figures (arXiv 2602.09345, docs/characterization_en.md and
analysis/haiku_figures/report.md in its repository), and how our computation differs from its scripts."""

from __future__ import annotations

import re
from typing import Any

from ..traces.model import PAPER_FORMAT, Task

HAIKU = "haiku"
BATCH18 = "batch18"

REFERENCES: dict[str, dict[str, Any]] = {
    HAIKU: {
        "label": "paper, Haiku set (33 valid of 58 tasks)",
        "figures": {
            "tasks": 33,
            "os_share": 0.736,  # 47.7 % container start-up + 25.9 % tool execution
            "startup_share": 0.477,
            "tool_share_of_wall": 0.259,
            "tool_share_mean": 0.425,
            "tool_share_median": 0.347,
            "bash_mean_s": 3.76,
            "bash_calls": 410,
            "peak_to_avg_max": 6.63,
            "burst_in_tool_share": 0.985,
            "tool_sample_share": 0.506,
            "paper_group_task_share": 0.85,
            "paper_group_time_share": 0.074,
            "sessions_by_peak": 62,  # 128 GB by peak; the product brief's figure
            "test_mem_delta_p95_bytes": 518e6,  # P95 memory spike of test runs
        },
    },
    BATCH18: {
        "label": "paper, 18 representative tasks (23 attempts)",
        "figures": {
            "peak_to_avg_max": 15.4,  # Medical_Bio_Hard: 4060 MB peak on a 264 MB average
            "peak_max_bytes": 4.06e9,
            "repeat_wall_ratio.DevOps_Build_Hard": 1.8,  # 402 s, 222 s, 259 s
        },
    },
}

_SWE_TASK = re.compile(r"^[\w.-]+__[\w.-]+-\d+$")
_CATEGORY_TASK = re.compile(
    r"^(CLI_Tools|DevOps_Build|ML_Scientific|Medical_Bio|SQL_Data|Web_Network)_(Easy|Medium|Hard)$"
)

#: Where and why our computation differs from the paper's scripts, whatever the input.
METHOD_NOTES = (
    "Active time: the paper takes it from trace.jsonl (first to last record), which is not published; "
    "we use the sampled window. Sampling starts with the container, a few seconds before the agent's first "
    "trace record, so our active time is slightly longer: start-up share and tool share of active time "
    "come out a little lower (about 0.5 points on the Haiku set).",
    "Tool time is the plain sum of call durations, as the paper computes it: sub-agent calls overlapping "
    "their Task call are counted twice, so a task's tool share can exceed 100 %. The union of the "
    "intervals is reported next to it.",
    "CPU: the paper's scripts read podman's cpu_percent as a per-second value; it is an average since the "
    "container started. We difference it (percent x elapsed), so our CPU figures are per-interval cores and "
    "are not comparable with the paper's CPU peak-to-average ratios.",
    "Memory units are read as decimal (kB/MB/GB = 10^3/10^6/10^9), as the sampler's own summaries are; "
    "some of the paper's scripts read GB as 1024 MB, which inflates peaks above 1 GB by 2.4 %.",
    "Samples taken after the container exited ('0B / 0B') are dropped; the paper's summary counts them in "
    "sample_count and duration (it leaves them out of the memory statistics). The validity decision is "
    "the same on the published sets.",
    "Sessions per host: we divide the host size (decimal GB) by the worst peak and round down (61 on the "
    "Haiku set); the product brief's 62 is the same quotient rounded to nearest.",
)


def choose_reference(tasks: list[Task], wanted: str = "auto") -> str | None:
    """Which paper figures to compare with: the named set, none, or (auto) by the tasks' format and names:
    the 18 category tasks -> batch18, SWE-rebench instances in the paper's format -> haiku, else none."""
    if wanted != "auto":
        return None if wanted == "none" else wanted
    if not tasks or any(t.fmt != PAPER_FORMAT for t in tasks):
        return None
    if all(_CATEGORY_TASK.match(t.name) for t in tasks):
        return BATCH18
    if all(_SWE_TASK.match(t.name) for t in tasks):
        return HAIKU
    return None


def compare(result: dict[str, Any], reference: str | None) -> dict[str, Any]:
    """Rows ``{figure, ours, paper}`` for every figure of the reference set that we computed."""
    if reference is None:
        return {"reference": None, "rows": []}
    ref = REFERENCES[reference]
    rows = [{"figure": k, "ours": _lookup(result, k), "paper": v} for k, v in ref["figures"].items()]
    return {"reference": reference, "label": ref["label"], "rows": rows}


def _lookup(result: dict[str, Any], key: str) -> Any:
    """``result[key]``, or for a dotted key the nested value (None when missing)."""
    if key in result:
        return result[key]
    value: Any = result
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
