/*
 * agentcgroup._spawn: start a process that is already inside its cgroups when it execs.
 *
 * vfork() a child that, before execve(), writes "0" to each given cgroup.procs fd (moving itself into
 * the cgroup in every hierarchy), optionally calls setsid() and setrlimit(), sets up fds 0-2, chdir()s,
 * resets signal dispositions and execs. Memory allocated after exec is charged to the new cgroup, and
 * the process cannot fork anywhere else first. Errors in the child travel back over a CLOEXEC pipe as
 * (stage, errno). Only async-signal-safe system calls run in the child; everything is prepared before.
 *
 * The parent blocks all signals around vfork() (so no Python handler runs in the child, which shares its
 * memory), like CPython's _posixsubprocess does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#include "_child.h"


struct child_args {
    char *const *paths; /* candidates, tried in order (one, or PATH's entries when the child resolves) */
    int npaths;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int fds[3];
    const int *procs;
    Py_ssize_t nprocs;
    const struct rl *rlimits;
    Py_ssize_t nrlimits;
    const int *keep;
    Py_ssize_t nkeep;
    int setsid;
    int uid, gid, oom_adj;
    int errpipe;
    sigset_t *oldmask;
};

static void report(int errpipe, int stage, int err) {
    int msg[2] = {stage, err};
    ssize_t r = write(errpipe, msg, sizeof msg);
    (void)r;
    _exit(127);
}

static void child(const struct child_args *a) {
    for (Py_ssize_t i = 0; i < a->nprocs; i++) {
        if (write(a->procs[i], "0", 1) != 1) report(a->errpipe, STAGE_PLACE, errno);
    }
    if (a->oom_adj != NO_OOM_ADJ && set_oom_adj(a->oom_adj) < 0) report(a->errpipe, STAGE_OOMADJ, errno);
    if (a->setsid && setsid() < 0) report(a->errpipe, STAGE_SETSID, errno);
    for (Py_ssize_t i = 0; i < a->nrlimits; i++) {
        if (setrlimit(a->rlimits[i].resource, &a->rlimits[i].lim) < 0) report(a->errpipe, STAGE_RLIMIT, errno);
    }
    if ((a->uid >= 0 || a->gid >= 0) && set_ids(a->uid, a->gid) < 0) report(a->errpipe, STAGE_IDS, errno);
    for (int n = 0; n < 3; n++) {
        int fd = a->fds[n];
        if (fd < 0) continue;
        if (fd == n) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
        } else if (dup2(fd, n) < 0) {
            report(a->errpipe, STAGE_DUP, errno);
        }
    }
    /* everything from 3 up closes on exec, except the fds the caller keeps */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        long maxfd = sysconf(_SC_OPEN_MAX);
        if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
        for (int fd = 3; fd < maxfd; fd++) {
            if (fd != a->errpipe) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    for (Py_ssize_t i = 0; i < a->nkeep; i++) {
        int flags = fcntl(a->keep[i], F_GETFD);
        if (flags >= 0) fcntl(a->keep[i], F_SETFD, flags & ~FD_CLOEXEC);
    }
    if (a->cwd && chdir(a->cwd) < 0) report(a->errpipe, STAGE_CHDIR, errno);
    /* default dispositions for everything Python (or anyone) set; restore the caller's signal mask */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) {
            /* SIGPIPE and SIGXFSZ ignored by Python go back to default, as subprocess does */
            if (sa.sa_handler == SIG_IGN && sig != SIGPIPE && sig != SIGXFSZ) continue;
            sa.sa_handler = SIG_DFL;
            sa.sa_flags = 0;
            sigemptyset(&sa.sa_mask);
            sigaction(sig, &sa, NULL);
        }
    }
    sigprocmask(SIG_SETMASK, a->oldmask, NULL);
    report(a->errpipe, STAGE_EXEC, exec_candidates(a->paths, a->npaths, a->argv, a->envp));
}

/* Convert a sequence of bytes into a NULL-terminated char* array that borrows from the bytes objects. */
static char **to_cvec(PyObject *seq, PyObject **keep) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of bytes");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    char **vec = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (!vec) { Py_DECREF(fast); PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "argv and env items must be bytes");
            PyMem_Free(vec); Py_DECREF(fast); return NULL;
        }
        if ((Py_ssize_t)strlen(PyBytes_AS_STRING(item)) != PyBytes_GET_SIZE(item)) {
            PyErr_SetString(PyExc_ValueError, "embedded NUL byte in argv or env");
            PyMem_Free(vec); Py_DECREF(fast); return NULL;
        }
        vec[i] = PyBytes_AS_STRING(item);
    }
    *keep = fast;
    return vec;
}

static int to_ints(PyObject *seq, int **out, Py_ssize_t *n) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of ints");
    if (!fast) return -1;
    *n = PySequence_Fast_GET_SIZE(fast);
    *out = PyMem_Calloc((size_t)*n + 1, sizeof(int));
    if (!*out) { Py_DECREF(fast); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < *n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(fast); PyMem_Free(*out); return -1; }
        (*out)[i] = (int)v;
    }
    Py_DECREF(fast);
    return 0;
}

static int to_rlimits(PyObject *seq, struct rl **out, Py_ssize_t *n) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of (resource, soft, hard)");
    if (!fast) return -1;
    *n = PySequence_Fast_GET_SIZE(fast);
    *out = PyMem_Calloc((size_t)*n + 1, sizeof(struct rl));
    if (!*out) { Py_DECREF(fast); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < *n; i++) {
        int res; long long soft, hard;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "iLL", &res, &soft, &hard)) {
            Py_DECREF(fast); PyMem_Free(*out); return -1;
        }
        (*out)[i].resource = res;
        (*out)[i].lim.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
        (*out)[i].lim.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
    }
    Py_DECREF(fast);
    return 0;
}

static const char *stage_name(int stage) {
    switch (stage) {
    case STAGE_PLACE: return "placing the process in its cgroup";
    case STAGE_SETSID: return "setsid";
    case STAGE_RLIMIT: return "setrlimit";
    case STAGE_DUP: return "setting up stdin/stdout/stderr";
    case STAGE_CHDIR: return "changing directory";
    case STAGE_OOMADJ: return "setting oom_score_adj";
    case STAGE_IDS: return "switching user";
    default: return "exec";
    }
}

/*
 * spawn(path: bytes | list[bytes], argv: list[bytes], env: list[bytes], cwd: bytes|None, stdin: int, stdout: int,
 *       stderr: int, procs_fds: list[int], setsid: bool, rlimits: list[(int, int, int)], keep_fds: list[int],
 *       uid: int = -1, gid: int = -1, oom_score_adj: int = NO_OOM_ADJ)
 *   -> pid
 * A list of paths is tried in order in the child (after the user switch), as execvp() walks PATH.
 * Raises OSError(errno, "<stage>: <strerror>") if the child failed before exec (the child is reaped).
 */
static PyObject *spawn(PyObject *self, PyObject *args) {
    PyObject *path_o;
    PyObject *argv_o, *env_o, *cwd_o, *procs_o, *rl_o, *keep_o;
    int fd0, fd1, fd2, do_setsid, uid = -1, gid = -1, oom_adj = NO_OOM_ADJ;
    if (!PyArg_ParseTuple(args, "OOOOiiiOpOO|iii", &path_o, &argv_o, &env_o, &cwd_o, &fd0, &fd1, &fd2, &procs_o,
                          &do_setsid, &rl_o, &keep_o, &uid, &gid, &oom_adj))
        return NULL;

    PyObject *argv_keep = NULL, *env_keep = NULL, *paths_keep = NULL, *path_list = NULL;
    char **argv = NULL, **envp = NULL, **paths = NULL;
    int *procs = NULL, *keep = NULL;
    struct rl *rlimits = NULL;
    Py_ssize_t nprocs = 0, nrl = 0, nkeep = 0;
    PyObject *result = NULL;
    int pipefd[2] = {-1, -1};

    if (PyBytes_Check(path_o)) {
        if (!(path_list = PyList_New(1))) goto done;
        Py_INCREF(path_o);
        PyList_SET_ITEM(path_list, 0, path_o);
    } else {
        Py_INCREF(path_o);
        path_list = path_o;
    }
    if (!(paths = to_cvec(path_list, &paths_keep))) goto done;
    if (PySequence_Fast_GET_SIZE(paths_keep) < 1) {
        PyErr_SetString(PyExc_ValueError, "no path to execute");
        goto done;
    }
    if (!(argv = to_cvec(argv_o, &argv_keep))) goto done;
    if (!(envp = to_cvec(env_o, &env_keep))) goto done;
    if (to_ints(procs_o, &procs, &nprocs) < 0) goto done;
    if (to_ints(keep_o, &keep, &nkeep) < 0) goto done;
    if (to_rlimits(rl_o, &rlimits, &nrl) < 0) goto done;
    if (cwd_o != Py_None && !PyBytes_Check(cwd_o)) {
        PyErr_SetString(PyExc_TypeError, "cwd must be bytes or None");
        goto done;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) { PyErr_SetFromErrno(PyExc_OSError); goto done; }

    sigset_t all, old;
    sigfillset(&all);
    struct child_args a = {
        .paths = paths, .npaths = (int)PySequence_Fast_GET_SIZE(paths_keep), .argv = argv, .envp = envp,
        .cwd = cwd_o == Py_None ? NULL : PyBytes_AS_STRING(cwd_o),
        .fds = {fd0, fd1, fd2}, .procs = procs, .nprocs = nprocs, .rlimits = rlimits, .nrlimits = nrl,
        .keep = keep, .nkeep = nkeep, .setsid = do_setsid, .uid = uid, .gid = gid, .oom_adj = oom_adj,
        .errpipe = pipefd[1], .oldmask = &old,
    };
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The GIL is let go while this thread waits for the child to exec, as CPython's _posixsubprocess does
     * (gh-104372): placement (a v1 migration can wait for an RCU grace period, ~10 ms) and exec take long, and
     * a daemon's other threads would wait on us. Safe: the child touches no Python object (everything it
     * reads is in `a`, kept alive by this thread, which is suspended until the child execs or exits), calls
     * only async-signal-safe functions, and has every signal blocked until just before exec. */
    PyThreadState *ts = PyEval_SaveThread();
    pid_t pid = vfork();
    if (pid == 0) {
        child(&a);
        _exit(127); /* not reached */
    }
    int saved = errno;
    PyEval_RestoreThread(ts);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);
    pipefd[1] = -1;
    if (pid < 0) { errno = saved; PyErr_SetFromErrno(PyExc_OSError); goto done; }

    int msg[2];
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    do { got = read(pipefd[0], msg, sizeof msg); } while (got < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    if (got == (ssize_t)sizeof msg) {
        int status;
        Py_BEGIN_ALLOW_THREADS
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        Py_END_ALLOW_THREADS
        PyObject *exc_args = Py_BuildValue("(is)", msg[1], stage_name(msg[0]));
        if (exc_args) {
            PyObject *exc = PyObject_Call(PyExc_OSError, exc_args, NULL);
            if (exc) {
                PyObject *stage = PyLong_FromLong(msg[0]);
                if (stage) { PyObject_SetAttrString(exc, "spawn_stage", stage); Py_DECREF(stage); }
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                Py_DECREF(exc);
            }
            Py_DECREF(exc_args);
        }
        goto done;
    }
    result = PyLong_FromLong(pid);

done:
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    PyMem_Free(paths);
    PyMem_Free(argv);
    PyMem_Free(envp);
    PyMem_Free(procs);
    PyMem_Free(keep);
    PyMem_Free(rlimits);
    Py_XDECREF(paths_keep);
    Py_XDECREF(path_list);
    Py_XDECREF(argv_keep);
    Py_XDECREF(env_keep);
    return result;
}


/* close_fds(fds): close each, errors ignored, with the interpreter released for the whole batch (closing a
 * socket that still queues passed descriptors releases each of them: tens of us that other threads may use). */
static PyObject *close_fds(PyObject *self, PyObject *arg) {
    int *fds;
    Py_ssize_t n;
    if (to_ints(arg, &fds, &n) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) close(fds[i]);
    Py_END_ALLOW_THREADS
    PyMem_Free(fds);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"spawn", spawn, METH_VARARGS, "vfork, place into cgroups, exec; returns the pid"},
    {"close_fds", close_fds, METH_O, "close each fd of a list (errors ignored), the GIL released throughout"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spawn", NULL, -1, methods};

PyMODINIT_FUNC PyInit__spawn(void) { return PyModule_Create(&module); }
