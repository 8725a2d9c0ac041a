/* How fnn takes SIGINT, SIGTERM and SIGHUP: on one thread of its own, never in a handler.
 * oneDNN's matrix-product kernels run with the stack pointer inside a heap buffer (oneDNN issue
 * #4845, fixed upstream in March 2026; Debian 12 ships 2.6): a handler running on a thread inside
 * one writes its frame over the heap, and a handler that returns (Ctrl-C stopping training after
 * the step) leaves the heap corrupt. So cli_signals_start, first thing in main, blocks the three
 * signals before any other thread exists, every thread inherits that, and one thread waits for
 * them with sigwait and acts as the command asked: by default it removes the command's staged
 * outputs and ends the process by the signal, as if nothing had caught it. A signal that was
 * ignored when fnn started (nohup, a background job of a script) stays ignored. */
#ifndef FNN_CLI_SIGNALS_H
#define FNN_CLI_SIGNALS_H

#include <signal.h>

struct fnn_outputs;

/* The signal thread's name: the one thread that waits for the signals (sigwait unblocks them
 * on it while it waits) and never computes. */
#define SIGNAL_THREAD_NAME "fnn signals"

/* Blocks the signals and starts the thread that takes them. Called before anything starts a
 * thread (OpenMP, Open MPI); a process whose thread cannot start keeps the default actions. */
void cli_signals_start(void);

/* Returns at once, unless a signal is ending the process: then never (the process ends by the
 * signal meanwhile). Called before an error is reported, and at exit, so that what the signal's
 * ending does under a running command (its temporaries removed while it writes into them) is
 * neither reported as an error of the command nor turned into an exit status. */
void cli_signals_hold(void);

/* While set is not NULL, a signal that ends the process first removes its staged temporaries. */
void cli_discard_on_signal(struct fnn_outputs *set);

/* Until cli_signals_stop_off: the first SIGINT (and SIGTERM too when with_term) sets *flag,
 * writes say (when not NULL) to stderr and calls wake (when not NULL) on the signal thread,
 * instead of ending the process; the next one ends it. */
void cli_signals_stop_on(volatile sig_atomic_t *flag, int with_term, const char *say,
                         void (*wake)(void));
void cli_signals_stop_off(void);

/* Written to stderr when sig ends the process (NULL: nothing); the text is copied. */
void cli_signals_last_words(int sig, const char *text);

#endif
