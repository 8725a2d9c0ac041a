/* Error messages for library calls. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>

fnn_status fnn_fail(fnn_error *err, fnn_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = s;
    }
    return s;
}

const char *fnn_status_name(fnn_status s)
{
    switch (s) {
    case FNN_OK: return "ok";
    case FNN_ERR_IO: return "i/o error";
    case FNN_ERR_FORMAT: return "format error";
    case FNN_ERR_ARG: return "invalid argument";
    case FNN_ERR_NOMEM: return "out of memory";
    case FNN_ERR_NUMERIC: return "numerical failure";
    case FNN_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}
