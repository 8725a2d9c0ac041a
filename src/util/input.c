/* Input files are checked before a blocking open: open(2) on a FIFO without a writer waits
 * forever, so the file is opened with O_NONBLOCK, checked with fstat, and only a regular file
 * is switched back to blocking reads. */
#define _POSIX_C_SOURCE 200809L

#include "util/input.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Fails with errno's message, leaving errno as it was for the caller. */
static fnn_status fail_errno(fnn_error *err, const char *path, const char *what, int e)
{
    fnn_fail(err, e == ENOMEM ? FNN_ERR_NOMEM : FNN_ERR_IO, "%s: %s: %s", path, what, strerror(e));
    errno = e;
    return e == ENOMEM ? FNN_ERR_NOMEM : FNN_ERR_IO;
}

fnn_status fnn_input_fd(const char *path, int *fd, struct stat *st, fnn_error *err)
{
    *fd = -1;
    int d = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (d < 0)
        return fail_errno(err, path, "cannot open", errno);
    struct stat sb;
    if (fstat(d, &sb) != 0) {
        int e = errno;
        close(d);
        return fail_errno(err, path, "cannot stat", e);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(d);
        errno = 0;
        return fnn_fail(err, FNN_ERR_IO, "%s: not a regular file", path);
    }
    int flags = fcntl(d, F_GETFL);
    if (flags < 0 || fcntl(d, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(d);
        return fail_errno(err, path, "cannot set blocking reads", e);
    }
    if (st)
        *st = sb;
    *fd = d;
    return FNN_OK;
}

fnn_status fnn_input_open(const char *path, FILE **f, struct stat *st, fnn_error *err)
{
    int fd;
    *f = NULL;
    fnn_status s = fnn_input_fd(path, &fd, st, err);
    if (s != FNN_OK)
        return s;
    if (!(*f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return fail_errno(err, path, "cannot open", e);
    }
    return FNN_OK;
}
