"""A controller watches many cgroups at once, each with a few fds open: it lifts its own descriptor limit."""

from __future__ import annotations

import resource


def raise_fd_limit() -> None:
    """Each watched cgroup keeps a few fds open (control files, eventfds, pidfds): lift the soft limit to the
    hard one, as servers do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass
