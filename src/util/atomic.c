/* Atomic file replacement (temp file in the same directory, fsync, rename, fsync of the directory)
 * for model files and every report the CLI writes; a device or FIFO is written through instead. */
#define _XOPEN_SOURCE 700 /* realpath */

#include "util/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
    char *path;     /* the destination, as given (for messages) */
    char *target;   /* where the data goes: path with its symbolic links resolved */
    char *tmp_path; /* target + ".tmp.XXXXXX": same directory, so rename cannot cross
                     * filesystems; NULL when writing straight to a device or FIFO */
    int failed;     /* a write failed: the content is incomplete and must not be published */
};

/* The temporaries of the handles now open (their tmp_path), for fnn_atomic_end. */
static struct {
    pthread_mutex_t lock;
    char **path;
    size_t n, cap;
    int ended; /* fnn_atomic_end has run: no temporary is made any more */
} open_temps = {.lock = PTHREAD_MUTEX_INITIALIZER};

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
 * created with O_EXCL and mode 0666 (a directory with mode 0777), which the kernel reduces by the
 * umask as for any new file. Returns the open file (0 for a directory), or -1 with errno set. */
static int create_temp(char *tmp_path, size_t suffix_at, int directory)
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
        int fd = directory ? mkdir(tmp_path, 0777)
                           : open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno is EEXIST */
}

char *fnn_atomic_temp(const char *target, int directory, int *fd)
{
    static const char suffix[] = ".tmp.XXXXXX";
    size_t len = strlen(target);
    char *tmp = malloc(len + sizeof suffix);
    if (!tmp)
        return NULL;
    memcpy(tmp, target, len);
    memcpy(tmp + len, suffix, sizeof suffix);
    int got = create_temp(tmp, len + 5, directory);
    if (got < 0) {
        int e = errno;
        free(tmp);
        errno = e;
        return NULL;
    }
    if (fd)
        *fd = got;
    else if (!directory)
        close(got);
    return tmp;
}

fnn_status fnn_atomic_resolve(const char *path, char **target, struct stat *st, fnn_error *err)
{
    *target = NULL;
    struct stat lst;
    if (!path || !*path)
        return fnn_fail(err, FNN_ERR_ARG, "empty output path");
    if (lstat(path, &lst) != 0) {
        if (errno != ENOENT)
            return fnn_fail(err, FNN_ERR_IO, "%s: %s", path, strerror(errno));
        memset(st, 0, sizeof *st); /* st_mode 0: nothing there yet */
        *target = strdup(path);
    } else if (S_ISLNK(lst.st_mode)) {
        /* Written through: the link stays a link and its target gets the new content, as a
         * user who pointed "latest.safetensors" at a file expects. */
        if (stat(path, st) != 0)
            return fnn_fail(err, FNN_ERR_IO, "%s: a symbolic link to %s (%s); fnn writes "
                            "through links but not to a missing target", path,
                            errno == ENOENT ? "nothing" : "something unreadable",
                            strerror(errno));
        *target = realpath(path, NULL);
        if (!*target && S_ISREG(st->st_mode))
            return fnn_fail(err, FNN_ERR_IO, "%s: cannot resolve the symbolic link: %s", path,
                            strerror(errno));
        if (!*target) /* a device behind a link (/dev/stdout) is opened by its name */
            *target = strdup(path);
    } else {
        *st = lst;
        *target = strdup(path);
    }
    if (!*target)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path);
    const char *refused = S_ISDIR(st->st_mode)    ? "a directory"
                          : S_ISBLK(st->st_mode)  ? "a block device"
                          : S_ISSOCK(st->st_mode) ? "a socket"
                                                  : NULL;
    if (refused) {
        free(*target);
        *target = NULL;
        return fnn_fail(err, FNN_ERR_IO, "%s: is %s; expected a file (or a character device or "
                        "FIFO to write through)", path, refused);
    }
    return FNN_OK;
}

/* A character device or FIFO gets the bytes directly: it cannot be renamed over, and replacing
 * the node with a regular file would break it for everyone. A FIFO without a reader fails
 * (ENXIO) instead of blocking. */
static int open_through(const char *path)
{
    int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    return fd;
}

/* Room in open_temps for one more; -1 (errno ENOMEM) when there is none. */
static int room_for_one(void)
{
    if (open_temps.n < open_temps.cap)
        return 0;
    size_t cap = open_temps.cap ? 2 * open_temps.cap : 8;
    char **grown = realloc(open_temps.path, cap * sizeof *grown);
    if (!grown) {
        errno = ENOMEM;
        return -1;
    }
    open_temps.path = grown;
    open_temps.cap = cap;
    return 0;
}

/* fnn_atomic_temp for a handle, recorded in open_temps in the same turn of its lock, so that
 * fnn_atomic_end finds every temporary that exists. */
static char *open_temp(const char *target, int *fd)
{
    char *tmp = NULL;
    pthread_mutex_lock(&open_temps.lock);
    if (open_temps.ended)
        errno = ECANCELED;
    else if (room_for_one() == 0 && (tmp = fnn_atomic_temp(target, 0, fd)))
        open_temps.path[open_temps.n++] = tmp;
    pthread_mutex_unlock(&open_temps.lock);
    return tmp;
}

/* Forgets a handle's temporary, once it is renamed or removed. */
static void close_temp(const char *tmp)
{
    pthread_mutex_lock(&open_temps.lock);
    for (size_t i = 0; i < open_temps.n; i++)
        if (open_temps.path[i] == tmp) {
            open_temps.path[i] = open_temps.path[--open_temps.n];
            break;
        }
    pthread_mutex_unlock(&open_temps.lock);
}

void fnn_atomic_end(void)
{
    pthread_mutex_lock(&open_temps.lock);
    open_temps.ended = 1;
    /* A handle whose commit renamed its temporary a moment ago still lists the old name, which
     * names nothing now: unlink fails, harmlessly. */
    for (size_t i = 0; i < open_temps.n; i++)
        unlink(open_temps.path[i]);
    pthread_mutex_unlock(&open_temps.lock);
}

static void atomic_free(fnn_atomic_file *f)
{
    if (f->tmp_path)
        close_temp(f->tmp_path);
    free(f->path);
    free(f->target);
    free(f->tmp_path);
    free(f);
}

fnn_status fnn_atomic_open(const char *path, fnn_atomic_file **out, fnn_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return fnn_fail(err, FNN_ERR_ARG, "atomic write: empty path");
    fnn_atomic_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory opening for writing", path);
    }
    struct stat st;
    fnn_status s = fnn_atomic_resolve(path, &f->target, &st, err);
    if (s != FNN_OK) {
        atomic_free(f);
        return s;
    }
    int fd;
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
        if ((fd = open_through(f->target)) < 0) {
            int e = errno;
            fnn_fail(err, FNN_ERR_IO, "%s: cannot open for writing: %s", path,
                     e == ENXIO && S_ISFIFO(st.st_mode) ? "a FIFO that nothing reads"
                                                        : strerror(e));
            atomic_free(f);
            return FNN_ERR_IO;
        }
    } else if (!(f->tmp_path = open_temp(f->target, &fd))) {
        int e = errno;
        fnn_fail(err, e == ENOMEM ? FNN_ERR_NOMEM : FNN_ERR_IO,
                 "%s: cannot create temporary file %s.tmp.XXXXXX: %s", path, f->target,
                 strerror(e));
        atomic_free(f);
        return FNN_ERR_IO;
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        close(fd);
        if (f->tmp_path)
            unlink(f->tmp_path);
        fnn_fail(err, FNN_ERR_IO, "%s: cannot open %s: %s", path,
                 f->tmp_path ? f->tmp_path : "it", strerror(e));
        atomic_free(f);
        return FNN_ERR_IO;
    }
    *out = f;
    return FNN_OK;
}

/* The file the bytes go to, for messages. */
static const char *written(const fnn_atomic_file *f) { return f->tmp_path ? f->tmp_path : f->path; }

fnn_status fnn_atomic_write(fnn_atomic_file *f, const void *data, size_t size, fnn_error *err)
{
    if (f->failed)
        return fnn_fail(err, FNN_ERR_IO, "%s: write after an earlier write error", f->path);
    if (size > 0 && fwrite(data, 1, size, f->fp) != size) {
        f->failed = 1;
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot write %zu bytes to %s: %s", f->path, size,
                        written(f), strerror(errno));
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
        return fnn_fail(err, FNN_ERR_IO, "%s: cannot write to %s: %s", f->path, written(f),
                        strerror(errno));
    }
    return FNN_OK;
}

void fnn_atomic_abort(fnn_atomic_file *f)
{
    if (!f)
        return;
    /* Best effort: the file is being thrown away, and abort has no error to report. */
    fclose(f->fp);
    if (f->tmp_path)
        unlink(f->tmp_path);
    atomic_free(f);
}

/* Makes a completed rename durable. Filesystems that cannot sync a directory say EINVAL; the
 * rename has happened there all the same, so that is not an error. */
fnn_status fnn_sync_dir(const char *path, fnn_error *err)
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
                      written(f));
    } else if (fflush(f->fp) != 0) {
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot write to %s: %s", f->path, written(f),
                      strerror(errno));
    } else if (f->tmp_path && fsync(fileno(f->fp)) != 0) { /* devices need no sync (nor allow it) */
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot sync %s: %s", f->path, f->tmp_path,
                      strerror(errno));
    }
    /* fclose runs exactly once whatever happened above; a failure here (e.g. NFS reporting a
     * deferred write error) also means the data may be incomplete. */
    if (fclose(f->fp) != 0 && st == FNN_OK)
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot close %s: %s", f->path, written(f),
                      strerror(errno));
    if (!f->tmp_path) { /* written through: nothing to rename */
        atomic_free(f);
        return st;
    }
    if (st == FNN_OK && rename(f->tmp_path, f->target) != 0)
        st = fnn_fail(err, FNN_ERR_IO, "%s: cannot rename %s over it: %s", f->path, f->tmp_path,
                      strerror(errno));
    if (st != FNN_OK) {
        unlink(f->tmp_path); /* best effort: err already holds the failure that matters */
        atomic_free(f);
        return st;
    }
    st = fnn_sync_dir(f->target, err);
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
