"""The Markdown report (``report.md``) rendered from a :func:`characterize` result."""

from __future__ import annotations

from typing import Any

from .formatting import NA, num, pct, rate, ratio, secs, size, table
from .selection import MIN_DURATION_S, MIN_SAMPLES


def fmt_figure(key: str, value: Any) -> str:
    """Format a figure by what its key says it is."""
    if value is None:
        return NA
    if "share" in key:
        return pct(value)
    if key.endswith("_bytes"):
        return size(value)
    if key.endswith("_s"):
        return secs(value)
    if "ratio" in key or "peak_to_avg" in key:
        return ratio(value)
    return num(value)


def _tasks(r: dict[str, Any]) -> list[str]:
    th = r["thresholds"]
    paper_rule = th == {"min_duration_s": MIN_DURATION_S, "min_samples": MIN_SAMPLES}
    rule = "the paper's rule" if paper_rule else f"the paper uses {MIN_DURATION_S:g} s and {MIN_SAMPLES}"
    out = [
        "## Tasks",
        "",
        f"Found **{r['tasks_found']}** task attempts; kept **{r['tasks']}** valid ones (resource sampling "
        f"lasted >= {th['min_duration_s']:g} s with >= {th['min_samples']} samples; {rule}), "
        f"dropped **{r['tasks_dropped']}**. Every figure below is over the valid tasks only.",
        "",
    ]
    if r["dropped"]:
        out += [*table(["why dropped", "tasks"], [[k, str(v)] for k, v in r["drop_reasons"].items()]), ""]
        out += ["<details><summary>dropped tasks</summary>", ""]
        out += [f"- `{d['task']}`: {d['reason']}" for d in r["dropped"]] + ["", "</details>", ""]
    return out


def _time(r: dict[str, Any]) -> list[str]:
    t = r["time"]
    a, u = t["tool_share_active"], t["tool_share_active_union"]
    out = ["## Time: OS-level work vs the LLM", ""]
    if t["n"] == 0:
        return [*out, "Not computable: no valid task has tool calls with start and end times.", ""]
    return [
        *out,
        f"- **OS-level share of wall time** (container start-up + tool calls): **{pct(r['os_share'])}** "
        f"over {t['n_wall']} tasks; start-up {pct(r['startup_share'])}, tool calls "
        f"{pct(r['tool_share_of_wall'])}, the LLM (the rest) {pct(r['llm_share'])}. Counting overlapping "
        f"calls once: {pct(r['os_share_union'])}.",
        f"- **Tool share of active time** (the sampled window): mean **{pct(a['mean'])}**, median "
        f"{pct(a['median'])}, range {pct(a['min'])} - {pct(a['max'])} over {a['n']} tasks; counting "
        f"overlapping calls once: mean {pct(u['mean'])}.",
        "",
    ]


def _tools(r: dict[str, Any]) -> list[str]:
    rows = [
        [
            k,
            str(v["count"]),
            str(v["timed"]),
            secs(v["total_s"] if v["timed"] else None),
            secs(v["mean_s"]),
            secs(v["median_s"]),
            secs(v["p95_s"]),
            secs(v["max_s"]),
            pct(v["share_of_tool_time"]),
        ]
        for k, v in r["tools"].items()
    ]
    out = ["## Tool calls", ""]
    if not rows:
        return [*out, "No tool calls.", ""]
    sh = r["shell"]
    out += table(["tool", "calls", "with end", "total", "mean", "median", "p95", "max", "share of tool time"], rows)
    out += [
        "",
        f"Shell commands: {sh['count']} calls, {sh['n']} with a duration, mean **{secs(sh['mean'])}**, "
        f"median {secs(sh['median'])}.",
        "",
    ]
    cats = r["categories"]
    if cats:
        out += [
            "### Shell commands by kind",
            "",
            "Memory added = peak during the call minus the last sample before it (calls >= 0.1 s with a "
            "sample inside; a lower bound, peaks between samples are missed).",
            "",
        ]
        out += [
            *table(
                [
                    "kind",
                    "calls",
                    "time",
                    "share of shell time",
                    "mean",
                    "with memory",
                    "added: mean",
                    "p95",
                    "max",
                ],
                [
                    [
                        k,
                        str(v["count"]),
                        secs(v["total_s"]),
                        pct(v["share_of_shell_time"]),
                        secs(v["mean_s"]),
                        str(v["mem_observed"]),
                        size(v["mem_delta_mean_bytes"]),
                        size(v["mem_delta_p95_bytes"]),
                        size(v["mem_delta_max_bytes"]),
                    ]
                    for k, v in cats.items()
                ],
            ),
            "",
        ]
    return out


def _memory(r: dict[str, Any]) -> list[str]:
    m, b = r["memory"], r["bursts"]
    if not m:
        return []
    p = m["peak_to_avg"]
    out = [
        "## Memory",
        "",
        "Samples miss what happens between them: every peak and rate below is a lower bound.",
        "",
        f"- **Peak-to-average** per task: max **{ratio(p['max'])}** (`{m['peak_to_avg_max_task']}`), mean "
        f"{ratio(p['mean'])}, median {ratio(p['median'])}, p95 {ratio(p['p95'])}.",
        f"- Peaks: {size(m['peak_bytes']['min'])} - {size(m['peak_bytes']['max'])} "
        f"({ratio(m['peak_spread'])} apart); averages {size(m['avg_bytes']['min'])} - "
        f"{size(m['avg_bytes']['max'])}.",
        f"- **High-memory samples (> {size(b['threshold_bytes'])}) inside tool calls: "
        + (
            f"{pct(b['in_tool_share'])}** ({b['high_samples_in_tool']} of {b['high_samples']}, {b['tasks']} "
            f"tasks), while tool calls cover {pct(b['tool_sample_share'])} of the samples."
            if b["tasks"]
            else "not computable** (no valid task has tool calls with end times)."
        ),
        f"- Largest rise {rate(m['rise_max_bytes_per_s'])} (`{m['rise_max_task']}`), largest fall "
        f"{rate(m['fall_max_bytes_per_s'])} (`{m['fall_max_task']}`); p95 of |change| "
        f"{rate(m['rate_p95_bytes_per_s'])} (consecutive samples at most two intervals apart).",
        f"- CPU (differenced, cores): mean of task averages {num(m['cpu_avg_cores']['mean'])}, highest "
        f"interval {num(m['cpu_peak_cores_max'])}.",
        "",
        "Largest bursts:",
        "",
    ]
    out += table(
        ["task", "peak", "average", "peak/avg", "near peak (>= 80 %) for"],
        [
            [
                f"`{x['task']}`",
                size(x["peak_bytes"]),
                size(x["avg_bytes"]),
                ratio(x["peak_to_avg"]),
                secs(x["spike_s"]),
            ]
            for x in m["top_bursts"]
        ],
    )
    c = m["concurrency"]
    out += [
        "",
        "### How many sessions fit",
        "",
        f"On a host with {size(c['host_bytes'])}: **{c['by_peak']}** sessions if each is given the worst "
        f"peak, {c['by_mean_peak']} at the mean peak, **{c['by_avg']}** at the mean average "
        f"({ratio(c['avg_over_peak'])} more by average than by peak).",
        "",
    ]
    return out


def _retries(r: dict[str, Any]) -> list[str]:
    x = r["retries"]
    ours = (
        (
            f"- Same or similar shell command run again after it failed: {x['loops']} loops in "
            f"{x['tasks_with_loops']} of {x['tasks']} tasks ({pct(x['loop_task_share'])}), "
            f"{x['retries']} retries, longest {x['longest_loop']} calls, {secs(x['retry_s'])} spent in "
            "retries. (Failure is guessed from the result text in the paper's data.)"
        )
        if x["failures_known"]
        else ("- Same or similar command after a failure: not computable (no command text or outcome recorded).")
    )
    out = [
        "## Retry loops",
        "",
        ours,
        f"- The paper's measure (3+ consecutive shell calls): {x['paper_groups']} groups in "
        f"{x['tasks_with_paper_groups']} tasks ({pct(x['paper_group_task_share'])}), "
        f"{pct(x['paper_group_time_share'])} of wall time in tasks that have them.",
        "",
    ]
    if x["examples"]:
        out += [
            *table(
                ["task", "calls", "command"],
                [[f"`{e['task']}`", str(e["calls"]), f"`{e['command']}`"] for e in x["examples"]],
            ),
            "",
        ]
    return out


def _repeats(r: dict[str, Any]) -> list[str]:
    if not r["repeats"]:
        return []
    out = ["## Repeated attempts of the same task", ""]
    out += table(
        ["task", "attempts", "wall times", "wall max/min", "peaks", "peak max/min"],
        [
            [
                f"`{x['task']}`",
                str(x["attempts"]),
                ", ".join(secs(w) for w in x["wall_s"]),
                ratio(x["wall_ratio"]),
                ", ".join(size(p) for p in x["peak_bytes"]),
                ratio(x["peak_ratio"]),
            ]
            for x in r["repeats"]
        ],
    )
    return [*out, ""]


def _quirks(r: dict[str, Any]) -> list[str]:
    if not r["quirks"]:
        return []
    out = ["## Data quirks noticed (all tasks found)", ""]
    return out + table(["quirk", "tasks"], [[k, str(v)] for k, v in r["quirks"].items()]) + [""]


def _differences(r: dict[str, Any]) -> list[str]:
    p = r["paper"]
    out = ["## Differences from the paper", ""]
    if not p["rows"]:
        out += ["No figures of the paper to compare with for this input (choose a set with --paper).", ""]
    else:
        out += [f"Compared with the {p['label']}:", ""]
        out += [
            *table(
                ["figure", "this report", "paper"],
                [
                    [x["figure"], fmt_figure(x["figure"], x["ours"]), fmt_figure(x["figure"], x["paper"])]
                    for x in p["rows"]
                ],
            ),
            "",
        ]
        if any(x["figure"] == "test_mem_delta_p95_bytes" for x in p["rows"]):
            out += [
                "- Test runs' P95 memory spike: applying the paper's own method "
                "(analysis/analyze_new_insights.py) to the published Haiku files gives about 414 MB too, not "
                "the 518 MB the paper states; that sentence was presumably computed on other data.",
                "",
            ]
    out += [f"- {n}" for n in p["data_notes"]]
    out += [f"- {n}" for n in p["method_notes"]]
    return [*out, ""]


def _plots(plots: list[str], note: str | None) -> list[str]:
    out = ["## Plots", ""]
    if note:
        out += [note, ""]
    return out + [f"![{name}]({name})" for name in plots] + [""]


def render(result: dict[str, Any], sources: list[str], plots: list[str], plots_note: str | None = None) -> str:
    """The whole report as Markdown text."""
    lines = [
        "# Agent session characterization",
        "",
        "Sources: " + ", ".join(f"`{s}`" for s in sources),
        "",
        "Computed by `agentcg report` as in the AgentCgroup paper (arXiv 2602.09345). Shares are of "
        "per-task values averaged over tasks; sizes are decimal (1 MB = 10^6 bytes).",
        "",
    ]
    for part in (_tasks, _time, _tools, _memory, _retries, _repeats, _quirks, _differences):
        lines += part(result)
    lines += _plots(plots, plots_note)
    return "\n".join(lines).rstrip() + "\n"
