/* SIGINT, SIGTERM and SIGHUP taken on a thread of their own (signals.h). */
#define _GNU_SOURCE
#include "signals.h"
#include "util/atomic.h"
#include "util/outputs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int taken[] = {SIGINT, SIGTERM, SIGHUP};
#define NTAKEN (sizeof taken / sizeof taken[0])

/* What the command asked for; read by the signal thread under the lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sigset_t waited;             /* the signals the thread takes: not ignored at the start */
static struct fnn_outputs *pending; /* discarded before a signal ends the process */
static struct {
    volatile sig_atomic_t *flag;    /* NULL: no stop asked for */
    int with_term;
    const char *say;
    void (*wake)(void);
} stop;
static char *last_words[NTAKEN];

static int index_of(int sig)
{
    for (size_t i = 0; i < NTAKEN; i++)
        if (taken[i] == sig)
            return (int)i;
    return -1;
}

static void say(const char *text)
{
    size_t len = text ? strlen(text) : 0, done = 0;
    while (done < len) {
        ssize_t n = write(STDERR_FILENO, text + done, len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
}

/* Ends the process by sig, as its default action would have, with the lock held for good: no
 * command changes what is discarded meanwhile, and cli_signals_hold keeps the command's threads
 * from reporting an error or exiting first. */
static void end_by(int sig)
{
    /* The files being written first, then the staged outputs: a staged file that a write's
     * rename puts in place before the first step is removed by the second. */
    fnn_atomic_end();
    fnn_outputs_discard(pending);
    int i = index_of(sig);
    if (i >= 0)
        say(last_words[i]);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    _exit(128 + sig); /* not reached: the default action of the three ends the process */
}

static void *take_signals(void *unused)
{
    (void)unused;
    /* Every other signal too, so that this thread never takes one meant for the others (the
     * SIGCHLD a job pool sleeps for, cli/jobs.c). */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        int sig;
        if (sigwait(&waited, &sig) != 0)
            continue;
        pthread_mutex_lock(&lock);
        if (stop.flag && (sig == SIGINT || (sig == SIGTERM && stop.with_term))) {
            *stop.flag = 1;
            say(stop.say);
            if (stop.wake)
                stop.wake();
            stop.flag = NULL; /* the next one ends the process */
            pthread_mutex_unlock(&lock);
            continue;
        }
        end_by(sig);
    }
    return NULL;
}

void cli_signals_start(void)
{
    sigemptyset(&waited);
    for (size_t i = 0; i < NTAKEN; i++) {
        struct sigaction now;
        if (sigaction(taken[i], NULL, &now) == 0 && now.sa_handler != SIG_IGN)
            sigaddset(&waited, taken[i]);
    }
    sigset_t old;
    if (pthread_sigmask(SIG_BLOCK, &waited, &old) != 0)
        return;
    pthread_attr_t at;
    pthread_t thread;
    int ok = pthread_attr_init(&at) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&thread, &at, take_signals, NULL) == 0;
        if (ok) /* by name in ps, top and /proc/PID/task/TID/comm */
            pthread_setname_np(thread, SIGNAL_THREAD_NAME);
        if (ok) /* returning from main, or exit, while a signal ends the process */
            atexit(cli_signals_hold);
        pthread_attr_destroy(&at);
    }
    if (!ok)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void cli_signals_hold(void)
{
    pthread_mutex_lock(&lock);
    pthread_mutex_unlock(&lock);
}

void cli_discard_on_signal(struct fnn_outputs *set)
{
    pthread_mutex_lock(&lock);
    pending = set;
    pthread_mutex_unlock(&lock);
}

void cli_signals_stop_on(volatile sig_atomic_t *flag, int with_term, const char *text,
                         void (*wake)(void))
{
    pthread_mutex_lock(&lock);
    stop.flag = flag;
    stop.with_term = with_term;
    stop.say = text;
    stop.wake = wake;
    pthread_mutex_unlock(&lock);
}

void cli_signals_stop_off(void)
{
    pthread_mutex_lock(&lock);
    stop.flag = NULL;
    pthread_mutex_unlock(&lock);
}

void cli_signals_last_words(int sig, const char *text)
{
    int i = index_of(sig);
    if (i < 0)
        return;
    char *copy = text ? strdup(text) : NULL;
    pthread_mutex_lock(&lock);
    free(last_words[i]);
    last_words[i] = copy;
    pthread_mutex_unlock(&lock);
}
