/* Child processes for fnn search: a pool that runs up to N commands at once with their output
 * sent to files, and stops them all on Ctrl-C. */
#ifndef FNN_CLI_JOBS_H
#define FNN_CLI_JOBS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char **argv;          /* NULL-terminated; argv[0] is the program's path */
    const char *out_path; /* receives stdout (created or truncated) */
    const char *err_path; /* receives stderr */
    char **envp;          /* the job's environment; NULL: this process's */
    /* Set by jobs_run: */
    pid_t pid;
    int code;             /* exit status, -1 when a signal ended it */
    double seconds;       /* wall-clock time from start to exit */
} job;

enum { JOBS_DONE = 0, JOBS_STOPPED, JOBS_INTERRUPTED, JOBS_FAILED };

/* Called in the parent as each job ends, in order of ending (may be NULL). A non-zero return
 * stops the pool:
 * nothing new starts and the running jobs are terminated. */
typedef int (*job_done_fn)(void *user, job *j);

/* Runs jobs[0..n) in order, at most `workers` at a time, each in its own process group so that a
 * Ctrl-C at the terminal reaches only this process, which then terminates the jobs (SIGTERM),
 * waits for them and returns JOBS_INTERRUPTED without calling on_done for them. Returns
 * JOBS_DONE, JOBS_STOPPED (on_done asked), JOBS_INTERRUPTED, or JOBS_FAILED when a job could not
 * be started (msg says why; running jobs are terminated first). */
int jobs_run(job *jobs, int n, int workers, job_done_fn on_done, void *user, char *msg,
             size_t msgsize);

#endif
