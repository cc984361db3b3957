# The C spawner (_spawn.c), built at install when a compiler is present: its functions, for type checkers.

def spawn(
    path: bytes,
    argv: list[bytes],
    env: list[bytes],
    cwd: bytes | None,
    stdin: int,
    stdout: int,
    stderr: int,
    procs_fds: list[int],
    setsid: bool,
    rlimits: list[tuple[int, int, int]],
    keep_fds: list[int],
    uid: int = ...,
    gid: int = ...,
    oom_score_adj: int = ...,
    /,
) -> int: ...
def close_fds(fds: list[int], /) -> None: ...
