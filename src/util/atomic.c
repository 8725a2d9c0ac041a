/* Atomic file replacement (temp file in the same directory, fsync, rename, fsync of the directory)
 * for model files and every report the CLI writes. */
#define _POSIX_C_SOURCE 200809L

#include "util/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fnn_atomic_file {
    FILE *fp;
    char *path;     /* the destination */
    char *tmp_path; /* path + ".tmp.XXXXXX": same directory, so rename cannot cross filesystems */
    int failed;     /* a write failed: the content is incomplete and must not be published */
};

/* A splitmix64 step: spreads clock, pid and attempt number over the whole name suffix. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* mkstemp would create the file with mode 0600, and reading the umask to widen it again means
 * calling umask() twice, which races with other threads. So the name is drawn here and the file
 * created with O_EXCL and mode 0666, which the kernel reduces by the umask as for any new file. */
static int create_temp(char *tmp_path, size_t suffix_at)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)tmp_path;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t r = mix64(seed + (uint64_t)attempt);
        for (int i = 0; i < 6; i++) {
            tmp_path[suffix_at + (size_t)i] = alphabet[r % 62];
            r /= 62;
        }
        int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno is EEXIST */
}

fnn_status fnn_atomic_open(const char *path, fnn_atomic_file **out, fnn_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return fnn_fail(err, FNN_ERR_ARG, "atomic write: empty path");
    fnn_atomic_file *f = calloc(1, sizeof *f);
    size_t len = strlen(path);
    static const char suffix[] = ".tmp.XXXXXX";
    if (f) {
        f->path = malloc(len + 1);
        f->tmp_path = malloc(len + sizeof suffix);
    }
    if (!f || !f->path || !f->tmp_path) {
        if (f) {
            free(f->path);
            free(f->tmp_path);
        }
        free(f);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory opening for writing", path);
    }
    memcpy(f->path, path, len + 1);
    memcpy(f->tmp_path, path, len);
    memcpy(f->tmp_path + len, suffix, sizeof suffix);

    int fd = create_temp(f->tmp_path, len + 5);
    if (fd < 0) {
        int e = errno;
        fnn_fail(err, FNN_ERR_IO, "%s: cannot create temporary file %s: %s", path, f->tmp_path,
                 strerror(e));
        free(f->path);
        free(f->tmp_path);
        free(f);
        return FNN_ERR_IO;
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        close(fd);
        unlink(f->tmp_path);
        fnn_fail(err, FNN_ERR_IO, "%s: cannot open temporary file %s: %s", path, f->tmp_path,
                 strerror(e));
        free(f->path);
        free(f->tmp_path);
        free(f);
        return FNN_ERR_IO;
    }
    *out = f;
    return FNN_OK;
}

fnn_status fnn_atomic_write(fnn_atomic_file *f, const void *data, size_t size, fnn_error *err)
{
    if (f->failed)
        return fnn_fail(err, FNN_ERR_IO, "%s: write after an earlier write error", f->path);
    if (size > 0 && fwrite(data, 1, size, f->fp) != size) {
        f->failed = 1;
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot write %zu bytes to %s: %s", f->path, size,
                        f->tmp_path, strerror(errno));
    }
    return FNN_OK;
}

fnn_status fnn_atomic_printf(fnn_atomic_file *f, fnn_error *err, const char *fmt, ...)
{
    if (f->failed)
        return fnn_fail(err, FNN_ERR_IO, "%s: write after an earlier write error", f->path);
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f->fp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        f->failed = 1;
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot write to %s: %s", f->path, f->tmp_path,
                        strerror(errno));
    }
    return FNN_OK;
}

static void atomic_free(fnn_atomic_file *f)
{
    free(f->path);
    free(f->tmp_path);
    free(f);
}

void fnn_atomic_abort(fnn_atomic_file *f)
{
    if (!f)
        return;
    /* Best effort: the file is being thrown away, and abort has no error to report. */
    fclose(f->fp);
    unlink(f->tmp_path);
    atomic_free(f);
}

/* Makes a completed rename durable. Filesystems that cannot sync a directory say EINVAL; the
 * rename has happened there all the same, so that is not an error. */
static fnn_status sync_dir(const char *path, fnn_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = malloc(2);
        if (dir)
            memcpy(dir, ".", 2);
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path); /* "/x" lives in "/" */
        dir = malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (!dir)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory syncing its directory", path);
    fnn_status st = FNN_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        st = fnn_fail(err, FNN_ERR_IO, "%s: written, but cannot open directory %s to sync it: %s",
                      path, dir, strerror(errno));
    } else {
        if (fsync(fd) != 0 && errno != EINVAL)
            st = fnn_fail(err, FNN_ERR_IO, "%s: written, but syncing directory %s failed: %s",
                          path, dir, strerror(errno));
        if (close(fd) != 0 && st == FNN_OK)
            st = fnn_fail(err, FNN_ERR_IO, "%s: written, but closing directory %s failed: %s",
                          path, dir, strerror(errno));
    }
    free(dir);
    return st;
}

fnn_status fnn_atomic_commit(fnn_atomic_file *f, fnn_error *err)
{
    fnn_status st = FNN_OK;
    if (f->failed || ferror(f->fp)) {
        st = fnn_fail(err, FNN_ERR_IO, "%s: not replaced: an earlier write to %s failed", f->path,
                      f->tmp_path);
    } else if (fflush(f->fp) != 0) {
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot flush %s: %s", f->path, f->tmp_path,
                      strerror(errno));
    } else if (fsync(fileno(f->fp)) != 0) {
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot sync %s: %s", f->path, f->tmp_path,
                      strerror(errno));
    }
    /* fclose runs exactly once whatever happened above; a failure here (e.g. NFS reporting a
     * deferred write error) also means the data may be incomplete. */
    if (fclose(f->fp) != 0 && st == FNN_OK)
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot close %s: %s", f->path, f->tmp_path,
                      strerror(errno));
    if (st == FNN_OK && rename(f->tmp_path, f->path) != 0)
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot rename %s over it: %s", f->path, f->tmp_path,
                      strerror(errno));
    if (st != FNN_OK) {
        unlink(f->tmp_path); /* best effort: err already holds the failure that matters */
        atomic_free(f);
        return st;
    }
    st = sync_dir(f->path, err);
    atomic_free(f);
    return st;
}

fnn_status fnn_write_atomic(const char *path, const void *data, size_t size, fnn_error *err)
{
    fnn_atomic_file *f;
    fnn_status st = fnn_atomic_open(path, &f, err);
    if (st != FNN_OK)
        return st;
    st = fnn_atomic_write(f, data, size, err);
    if (st != FNN_OK) {
        fnn_atomic_abort(f);
        return st;
    }
    return fnn_atomic_commit(f, err);
}
