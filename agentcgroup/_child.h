/*
 * What both ways of starting a tool call do in the child, between fork and exec (agentcgroup/_spawn.c: the vfork
 * spawner; agentcgroup/_stub.c: the pre-placed stub). Async-signal-safe system calls only: the vfork child shares
 * its parent's memory, and neither may take a lock.
 */
#ifndef AGENTCG_CHILD_H
#define AGENTCG_CHILD_H

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

enum { STAGE_PLACE = 1, STAGE_SETSID, STAGE_RLIMIT, STAGE_DUP, STAGE_CHDIR, STAGE_EXEC, STAGE_OOMADJ, STAGE_IDS };

#define NO_OOM_ADJ (-100000)

/* async-signal-safe: write a decimal to /proc/self/oom_score_adj */
static int set_oom_adj(int adj) {
    char buf[16];
    int n = 0, v = adj < 0 ? -adj : adj;
    char tmp[12];
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 11);
    int k = 0;
    if (adj < 0) buf[k++] = '-';
    while (n) buf[k++] = tmp[--n];
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, buf, (size_t)k);
    close(fd);
    return w == k ? 0 : -1;
}

/*
 * async-signal-safe: drop to uid/gid (no supplementary groups). Raw system calls, not glibc's setuid()/setgid():
 * those broadcast the change to every thread of a multi-threaded process (SIGSETXID, under a lock), and in the
 * vfork child the thread list they walk is the parent's (the daemon's loop, metrics and worker threads), in
 * memory the child shares: a lock held there deadlocks the child, and the marks they set land on the parent's
 * threads. The child is a process of one thread, so the raw call changes all of it (as CPython, which refuses
 * vfork when it must change ids, and posix_spawn implementations do).
 */
static int set_ids(int uid, int gid) {
    if (gid >= 0) {
        if (syscall(SYS_setgroups, 0, NULL) < 0 && errno != EPERM) return -1;
        if (syscall(SYS_setresgid, (gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) return -1;
    }
    if (uid >= 0 && syscall(SYS_setresuid, (uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) return -1;
    return 0;
}

struct rl { int resource; struct rlimit lim; };

/*
 * execve() each candidate path in turn, as execvp() walks PATH: a missing one (ENOENT, ENOTDIR) or one we may
 * not run (EACCES, remembered) moves on to the next. Runs after the user switch, so a daemon's tenant learns
 * only what it could learn itself. Returns the errno to report (only if no exec succeeded).
 */
static int exec_candidates(char *const *paths, int npaths, char *const *argv, char *const *envp) {
    int err = ENOENT, denied = 0;
    for (int i = 0; i < npaths; i++) {
        execve(paths[i], argv, envp);
        err = errno;
        if (err == EACCES) denied = 1;
        else if (err != ENOENT && err != ENOTDIR && err != ELOOP && err != ENAMETOOLONG) return err;
    }
    return denied ? EACCES : err;
}

#endif
