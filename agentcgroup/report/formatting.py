"""How report numbers are printed: percentages, decimal MB/GB (the traces' own units), seconds."""

from __future__ import annotations

NA = "n/a"


def pct(x: float | None, digits: int = 1) -> str:
    return NA if x is None else f"{100 * x:.{digits}f} %"


def size(b: float | None) -> str:
    if b is None:
        return NA
    if abs(b) >= 10**9:
        return f"{b / 1e9:.2f} GB"
    return f"{b / 1e6:.1f} MB"


def rate(bps: float | None) -> str:
    return NA if bps is None else f"{size(bps)}/s"


def secs(s: float | None) -> str:
    if s is None:
        return NA
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


def ratio(x: float | None) -> str:
    return NA if x is None else f"{x:.2f}x"


def num(x: float | int | None, digits: int = 2) -> str:
    if x is None:
        return NA
    return str(x) if isinstance(x, int) else f"{x:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (pipes in cells escaped)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(r) for r in rows)]
