/*
 * agentcg-stub: a tiny pre-placed exec stub (built at install next to the _spawn extension).
 *
 * Moving a task between cgroups (any write to cgroup.procs) takes the global cgroup_threadgroup_rwsem for
 * writing; after ~10 ms without migrations that costs a full RCU grace period (6-16 ms measured on a 2-CPU
 * VM). agentcgroup starts this stub ahead of time; the stub moves *itself* into a spare leaf (paying the
 * grace period off the caller's path) and, when a tool call comes, execs the command from there. Being a
 * small program, its exec is cheap (a fork of the Python process would have to tear down a copy of the
 * interpreter's address space first).
 *
 * Usage: agentcg-stub FD   (FD: a Unix stream socket to the parent)
 *
 *   'P' + fds(cgroup.procs...)      write "0" to each (move itself there); reply int32 errno
 *   'X' + fds(stdio...) + payload   set up and execve(); on failure reply int32 stage, int32 errno, _exit
 *                                   (flags >> 8: how many candidate paths lead the strings, tried in order
 *                                   after the user switch as execvp() walks PATH; 0 means one)
 *   EOF                             _exit(0)
 *
 * Frames: struct frame header (fds attached to it), then `len` payload bytes. The socket is CLOEXEC, so a
 * successful exec shows as EOF to the parent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "_child.h"

#define STUB_MAXFDS 64
#define SMALL_PAYLOAD (256 * 1024)

static const int IGNORED[] = {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGHUP, SIGPIPE};
static char small_payload[SMALL_PAYLOAD];
static char *small_vec[8192];

struct frame { uint32_t op; uint32_t nfds; uint32_t len; uint32_t pad; };

static int recv_all(int sock, char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(sock, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static void send_ints(int sock, int a, int b, int n) {
    int msg[2] = {a, b};
    ssize_t r = write(sock, msg, sizeof(int) * (size_t)n);
    (void)r;
}

static int32_t rd_i32(const char **p) { int32_t v; memcpy(&v, *p, 4); *p += 4; return v; }
static int64_t rd_i64(const char **p) { int64_t v; memcpy(&v, *p, 8); *p += 8; return v; }

static void stub_exec(int sock, const char *payload, uint32_t len, int *fds, uint32_t nfds) {
    const char *p = payload, *end = payload + len;
    int32_t flags = rd_i32(&p), mask = rd_i32(&p), nrl = rd_i32(&p);
    int32_t uid = rd_i32(&p), gid = rd_i32(&p), oom_adj = rd_i32(&p);
    struct rl rls[16];
    if (nrl < 0 || nrl > 16) nrl = 0;
    for (int i = 0; i < nrl; i++) {
        rls[i].resource = rd_i32(&p);
        int64_t soft = rd_i64(&p), hard = rd_i64(&p);
        rls[i].lim.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
        rls[i].lim.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
    }
    int32_t argc = rd_i32(&p), envc = rd_i32(&p);
    if (argc < 1 || envc < 0 || p > end) send_ints(sock, STAGE_EXEC, EINVAL, 2), _exit(127);
    size_t nvec = (size_t)argc + (size_t)envc + 2;
    char **vec = small_vec;
    if (nvec > sizeof small_vec / sizeof small_vec[0]) {
        vec = mmap(NULL, sizeof(char *) * nvec, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (vec == MAP_FAILED) send_ints(sock, STAGE_EXEC, ENOMEM, 2), _exit(127);
    }
    int32_t npaths = (flags >> 8) & 0xffff;
    if (npaths < 1) npaths = 1;
    char *paths[256];
    if (npaths > 256) send_ints(sock, STAGE_EXEC, E2BIG, 2), _exit(127);
    for (int i = 0; i < npaths; i++) {
        if (p >= end) send_ints(sock, STAGE_EXEC, EINVAL, 2), _exit(127);
        paths[i] = (char *)p; p += strlen(p) + 1;
    }
    const char *cwd = NULL;
    if (flags & 2) { cwd = p; p += strlen(p) + 1; }
    char **argv = vec, **envp = vec + argc + 1;
    for (int i = 0; i < argc; i++) { argv[i] = (char *)p; p += strlen(p) + 1; }
    argv[argc] = NULL;
    for (int i = 0; i < envc; i++) { envp[i] = (char *)p; p += strlen(p) + 1; }
    envp[envc] = NULL;
    if (p > end) send_ints(sock, STAGE_EXEC, EINVAL, 2), _exit(127);

    if (oom_adj != NO_OOM_ADJ && set_oom_adj(oom_adj) < 0) send_ints(sock, STAGE_OOMADJ, errno, 2), _exit(127);
    if ((flags & 1) && setsid() < 0) send_ints(sock, STAGE_SETSID, errno, 2), _exit(127);
    for (int i = 0; i < nrl; i++)
        if (setrlimit(rls[i].resource, &rls[i].lim) < 0) send_ints(sock, STAGE_RLIMIT, errno, 2), _exit(127);
    if ((uid >= 0 || gid >= 0) && set_ids(uid, gid) < 0) send_ints(sock, STAGE_IDS, errno, 2), _exit(127);
    /* stdio: lift received fds out of 0-2 first, so dup2 in order cannot clobber a later source */
    for (uint32_t i = 0; i < nfds; i++) {
        if (fds[i] < 3) {
            int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (hi < 0) send_ints(sock, STAGE_DUP, errno, 2), _exit(127);
            fds[i] = hi;
        }
    }
    uint32_t k = 0;
    for (int n = 0; n < 3; n++) {
        if (!(mask & (1 << n))) continue;
        if (k >= nfds || dup2(fds[k], n) < 0) send_ints(sock, STAGE_DUP, errno, 2), _exit(127);
        k++;
    }
    for (uint32_t i = 0; i < nfds; i++) if (fds[i] > 2) close(fds[i]);
    if (cwd && chdir(cwd) < 0) send_ints(sock, STAGE_CHDIR, errno, 2), _exit(127);
    /* exec resets handlers itself; only what the stub ignores while idle must go back to default */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof IGNORED / sizeof IGNORED[0]; i++) sigaction(IGNORED[i], &sa, NULL);
    send_ints(sock, STAGE_EXEC, exec_candidates(paths, npaths, argv, envp), 2);
    _exit(127);
}

static void stub_main(int sock) {
    fcntl(sock, F_SETFD, FD_CLOEXEC);
    /* a fresh program: every disposition is the default, except what the stub ignores while idle (a ^C at
     * the terminal is for the command it will become, not for it); block nothing */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    for (size_t i = 0; i < sizeof IGNORED / sizeof IGNORED[0]; i++) sigaction(IGNORED[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (;;) {
        struct frame hdr;
        int fds[STUB_MAXFDS];
        union { char buf[CMSG_SPACE(sizeof(int) * STUB_MAXFDS)]; struct cmsghdr align; } cbuf;
        struct iovec iov = {&hdr, sizeof hdr};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.buf;
        msg.msg_controllen = sizeof cbuf.buf;
        ssize_t r;
        do { r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (r < 0 && errno == EINTR);
        if (r <= 0) _exit(0);
        if ((size_t)r < sizeof hdr && recv_all(sock, (char *)&hdr + r, sizeof hdr - (size_t)r) < 0) _exit(0);
        uint32_t nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                uint32_t n = (uint32_t)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (uint32_t i = 0; i < n && nfds < STUB_MAXFDS; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            }
        }
        char *payload = NULL;
        if (hdr.len) {
            payload = small_payload;
            if (hdr.len > SMALL_PAYLOAD) {
                payload = mmap(NULL, hdr.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (payload == MAP_FAILED) _exit(0);
            }
            if (recv_all(sock, payload, hdr.len) < 0) _exit(0);
        }
        if (hdr.op == 'P') {
            int err = 0;
            for (uint32_t i = 0; i < nfds; i++) {
                if (!err && write(fds[i], "0", 1) != 1) err = errno;
                close(fds[i]);
            }
            send_ints(sock, err, 0, 1);
        } else if (hdr.op == 'X') {
            stub_exec(sock, payload ? payload : "", hdr.len, fds, nfds);
        } else {
            _exit(0);
        }
        if (payload && payload != small_payload) munmap(payload, hdr.len);
    }
}


int main(int argc, char **argv) {
    if (argc != 2) {
        static const char usage[] = "usage: agentcg-stub FD (started by agentcgroup, not by hand)\n";
        ssize_t r = write(2, usage, sizeof usage - 1);
        (void)r;
        return 2;
    }
    stub_main(atoi(argv[1]));
    return 0;
}
