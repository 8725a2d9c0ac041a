/* Child processes for fnn search, through posix_spawn: a pool with a Ctrl-C that stops every job,
 * and a one-shot run that captures output through a pipe. */
#define _GNU_SOURCE
#include "jobs.h"
#include "signals.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Set by the signal thread at a Ctrl-C or SIGTERM (signals.h). */
static volatile sig_atomic_t g_interrupted;

/* Only there so that the wait (ppoll) returns when a child exits, or when a stop wakes it. */
static void on_child(int sig) { (void)sig; }

/* Called on the signal thread after a stop: the loop sleeps until a SIGCHLD. */
static void wake_loop(void) { kill(getpid(), SIGCHLD); }

static int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

/* Starts j in a process group of its own, with default signal handling and nothing blocked. */
static int start(job *j)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGCHLD);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, j->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    posix_spawn_file_actions_addopen(&fa, 2, j->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    int rc = posix_spawn(&j->pid, j->argv[0], &fa, &at, j->argv, j->envp ? j->envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

int jobs_run(job *jobs, int n, int workers, job_done_fn on_done, void *user, char *msg,
             size_t msgsize)
{
    struct sigaction child = {.sa_handler = on_child}, old_chld;
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    /* Blocked except inside the wait, so that no SIGCHLD slips in between a check and the
     * wait. */
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    sigaction(SIGCHLD, &child, &old_chld);
    g_interrupted = 0;
    cli_signals_stop_on(&g_interrupted, 1, NULL, wake_loop);

    double *t0 = calloc((size_t)(n ? n : 1), sizeof *t0);
    int next = 0, running = 0, result = JOBS_DONE, killed = 0;
    if (!t0) {
        snprintf(msg, msgsize, "out of memory");
        result = JOBS_FAILED;
    }
    for (int i = 0; i < n; i++)
        jobs[i].pid = 0;
    for (;;) {
        if (g_interrupted && result == JOBS_DONE)
            result = JOBS_INTERRUPTED;
        while (result == JOBS_DONE && running < workers && next < n) {
            int rc = start(&jobs[next]);
            if (rc) {
                snprintf(msg, msgsize, "cannot run %s: %s", jobs[next].argv[0], strerror(rc));
                jobs[next].pid = 0;
                result = JOBS_FAILED;
                break;
            }
            t0[next++] = fnn_now_s();
            running++;
        }
        if (result != JOBS_DONE && !killed) {
            for (int i = 0; i < next; i++)
                if (jobs[i].pid > 0)
                    kill(-jobs[i].pid, SIGTERM);
            killed = 1;
        }
        if (!running)
            break;
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            /* As sigsuspend, but for 100 ms at most: a SIGCHLD that another thread of the
             * process took (an OpenMP worker of a data source's loader) costs no more. */
            struct timespec nap = {0, 100000000};
            ppoll(NULL, 0, &nap, &old_mask);
            continue;
        }
        for (int i = 0; i < next; i++) {
            job *j = &jobs[i];
            if (j->pid != pid)
                continue;
            j->pid = -1;
            j->code = exit_code(status);
            j->seconds = fnn_now_s() - t0[i];
            running--;
            /* After a stop, whatever ends was terminated or raced with the signal: its output is
             * not to be trusted. */
            if (result == JOBS_DONE && !g_interrupted && on_done && on_done(user, j))
                result = JOBS_STOPPED;
            break;
        }
    }
    free(t0);
    cli_signals_stop_off();
    sigaction(SIGCHLD, &old_chld, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    return result;
}
