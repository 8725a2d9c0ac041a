/* A progress bar for the steps that take more than a moment: loading data, predict, explain and
 * robustness; and the data read as a saved model takes it, for explain, robustness and report. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "cli.h"
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void progress_begin(cli_progress *p, const char *what, long total)
{
    p->what = what;
    p->total = total > 0 ? total : 1;
    p->start = fnn_now_s();
    p->tty = isatty(STDERR_FILENO);
    p->shown = 0;
}

void progress_update(cli_progress *p, long done)
{
    double elapsed = fnn_now_s() - p->start;
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

/* cli_load with its error message kept in *msg (malloc'd) instead of printed. */
static int load_quietly(const char *cmd, const cli_data_opts *d, const char *split, long limit,
                        fnn_dataset *out, cli_data_read *how, char **msg)
{
    size_t len = 0;
    FILE *saved = cli_error_stream, *buf = open_memstream(msg, &len);
    if (!buf)
        return cli_load(cmd, d, split, limit, out, how);
    cli_error_stream = buf;
    int rc = cli_load(cmd, d, split, limit, out, how);
    cli_error_stream = saved;
    fclose(buf);
    return rc;
}

int cli_load_for_model(const char *cmd, const cli_data_opts *d, const char *split, long limit,
                       const fnn_model *m, const char *const *names, fnn_dataset *out,
                       cli_data_read *read)
{
    int c, h, w, rc;
    fnn_model_input_shape(m, &c, &h, &w);
    cli_data_opts fitted = *d;
    if (!fitted.height) {
        fitted.height = h;
        fitted.width = w;
    }
    if (!fitted.channels)
        fitted.channels = c;
    char *first = NULL, *second = NULL;
    cli_data_read how;
    rc = load_quietly(cmd, &fitted, split, limit, out, &how, &first);
    /* Data that cannot be read in the model's shape (an IDX or CIFAR-10 set of another size,
     * which only a folder's images are resized from) is read as it is, so that the check below
     * names both shapes; if it cannot be read either, the first reason is the one given. */
    if (rc != EXIT_OK && (fitted.height != d->height || fitted.channels != d->channels)) {
        fnn_dataset_free(out);
        if (load_quietly(cmd, d, split, limit, out, &how, &second) == EXIT_OK)
            rc = EXIT_OK;
    }
    if (rc != EXIT_OK && first)
        fputs(first, cli_error_stream ? cli_error_stream : stderr);
    free(first);
    free(second);
    if (rc != EXIT_OK)
        return rc;
    if (read)
        *read = how;
    return cli_check_fits(cmd, m, names, out, split, how.path);
}
