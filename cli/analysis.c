/* A progress bar for the steps that take more than a moment: loading data, predict, explain and
 * robustness; and the data options of the commands that run a saved model over a data set. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_begin(cli_progress *p, const char *what, long total)
{
    p->what = what;
    p->total = total > 0 ? total : 1;
    p->start = now_s();
    p->tty = isatty(STDERR_FILENO);
    p->shown = 0;
}

void progress_update(cli_progress *p, long done)
{
    double elapsed = now_s() - p->start;
    /* Quick runs stay silent: the bar appears once the work has taken half a second. */
    if (!p->tty || elapsed < 0.5)
        return;
    int width = 30, filled = (int)(width * done / p->total);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '=' : (i == filled ? '>' : '.');
    bar[width] = '\0';
    double eta = done ? elapsed * (p->total - done) / done : 0.0;
    fprintf(stderr, "\r%s [%s] %ld/%ld  ETA %.0fs ", p->what, bar, done, p->total, eta);
    fflush(stderr);
    p->shown = 1;
}

void progress_end(cli_progress *p)
{
    if (p->shown)
        fputs("\r\033[K", stderr);
    p->shown = 0;
}

void cli_data_for_model(cli_data_opts *d, const fnn_model *m)
{
    int c, h, w;
    fnn_model_input_shape(m, &c, &h, &w);
    if (!d->height) {
        d->height = h;
        d->width = w;
    }
    if (!d->channels)
        d->channels = c;
}
