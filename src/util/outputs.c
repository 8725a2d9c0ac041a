/* A run's inputs and outputs: identity checks by device and inode, staged temporaries, and one
 * commit that puts every output in place or none. */
#define _GNU_SOURCE /* renameat2, getdents64 */

#include "util/outputs.h"
#include "util/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What a path names: an existing file (dev, ino), or a file still to be created, known by its
 * directory's (dev, ino) and its name there. Two spellings of one file ("./m", "d/../m", a hard
 * link, a symbolic link) have the same identity. */
typedef struct {
    dev_t dev;
    ino_t ino;
    char *name; /* NULL: (dev, ino) is the file itself */
} ident;

typedef struct {
    char *what, *path;       /* as the user gave them, for messages */
    char *target;            /* path with its symbolic links resolved */
    char *tmp;               /* staged: the temporary written in the run; NULL when through */
    char *old;               /* after commit moved it aside: where the previous version is */
    char *marker;            /* directories: the marker file's name */
    ident id;
    int input, dir, through;
    fnn_output_kind kind;
    int moved;               /* commit: 1 put in place over nothing, 2 swapped with the old */
} entry;

struct fnn_outputs {
    entry *e; /* (n) inputs and outputs in registration order */
    int n, cap;
    /* Outputs among them: an input registered before any output has nothing to clash with,
     * which spares a data set of 70,000 image files a quadratic number of comparisons. */
    int outputs;
    /* Staging, commit and discard, one at a time: a command's signal thread discards while its
     * other threads run, and must find each temporary either not yet made or named in full. */
    pthread_mutex_t lock;
    int discarded; /* nothing is staged or committed after a discard */
};

fnn_outputs *fnn_outputs_new(void)
{
    fnn_outputs *s = calloc(1, sizeof(fnn_outputs));
    if (s && pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* The directory part and last component of path ("a/b/" -> "a", "b"; "b" -> ".", "b"). */
static int split(const char *path, char **dir, char **name)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t cut = len;
    while (cut > 0 && path[cut - 1] != '/')
        cut--;
    *name = strndup(path + cut, len - cut);
    size_t dlen = cut;
    while (dlen > 1 && path[dlen - 1] == '/')
        dlen--;
    *dir = cut == 0 ? strdup(".") : strndup(path, dlen);
    if (!*dir || !*name) {
        free(*dir);
        free(*name);
        return -1;
    }
    return 0;
}

/* The identity of path; for a missing file, that of its directory plus its name. Fails (errno)
 * when path's directory does not exist either. */
static int identify(const char *path, ident *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) == 0) {
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        return 0;
    }
    if (errno != ENOENT)
        return -1;
    char *dir, *name;
    if (split(path, &dir, &name) != 0)
        return -1;
    int rc = stat(dir, &st);
    free(dir);
    if (rc != 0) {
        free(name);
        return -1;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->name = name;
    return 0;
}

static int same(const ident *a, const ident *b)
{
    return a->dev == b->dev && a->ino == b->ino &&
           (a->name && b->name ? !strcmp(a->name, b->name) : !a->name && !b->name);
}

/* The directory that holds path exists and is writable: checked before the run, not after. */
static fnn_status check_dir_of(const char *what, const char *path, fnn_error *err)
{
    char *dir, *name;
    if (split(path, &dir, &name) != 0)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s %s: out of memory", what, path);
    struct stat st;
    fnn_status s = FNN_OK;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        s = fnn_fail(err, FNN_ERR_IO, "%s %s: its directory %s does not exist", what, path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        s = fnn_fail(err, FNN_ERR_IO, "%s %s: its directory %s is not writable", what, path, dir);
    else if (strlen(name) + sizeof ".tmp.XXXXXX" - 1 > NAME_MAX) /* found now, not after the run */
        s = fnn_fail(err, FNN_ERR_IO, "%s %s: the name is too long (the temporary written beside "
                     "it adds %zu characters to its %zu, and a name has at most %d)", what, path,
                     sizeof ".tmp.XXXXXX" - 1, strlen(name), NAME_MAX);
    free(dir);
    free(name);
    return s;
}

static entry *add(fnn_outputs *s, const char *what, const char *path, fnn_error *err)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        entry *e = realloc(s->e, (size_t)cap * sizeof *e);
        if (!e) {
            fnn_fail(err, FNN_ERR_NOMEM, "%s %s: out of memory", what, path);
            return NULL;
        }
        s->e = e;
        s->cap = cap;
    }
    entry *e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->what = strdup(what);
    e->path = strdup(path);
    if (!e->what || !e->path) {
        free(e->what);
        free(e->path);
        fnn_fail(err, FNN_ERR_NOMEM, "%s %s: out of memory", what, path);
        return NULL;
    }
    s->n++;
    return e;
}

static void entry_free(entry *e)
{
    free(e->what);
    free(e->path);
    free(e->target);
    free(e->tmp);
    free(e->old);
    free(e->marker);
    free(e->id.name);
}

/* Drops the entry just added (its registration failed). */
static void drop_last(fnn_outputs *s)
{
    entry_free(&s->e[--s->n]);
}

/* Refuses e when it is the same file as an entry registered before it (for an input, only
 * outputs matter; for an output, everything). */
static fnn_status check_clash(const fnn_outputs *s, const entry *e, fnn_error *err)
{
    for (int i = 0; i < s->n - 1; i++) {
        const entry *o = &s->e[i];
        /* Writing a device twice (--out /dev/null --history /dev/null) destroys nothing. */
        if ((e->input && o->input) || (e->through && o->through) || !same(&o->id, &e->id))
            continue;
        const entry *out = e->input ? o : e, *other = e->input ? e : o;
        if (other->input)
            return fnn_fail(err, FNN_ERR_ARG, "%s %s is the same file as %s %s: an output must "
                            "not replace an input", out->what, out->path, other->what,
                            other->path);
        return fnn_fail(err, FNN_ERR_ARG, "%s %s and %s %s are the same file: each output needs "
                        "a file of its own", other->what, other->path, out->what, out->path);
    }
    return FNN_OK;
}

fnn_status fnn_outputs_input(fnn_outputs *s, const char *what, const char *path, fnn_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return FNN_OK;
    entry *e = add(s, what, path, err);
    if (!e)
        return FNN_ERR_NOMEM;
    e->input = 1;
    e->id = (ident){st.st_dev, st.st_ino, NULL};
    fnn_status r = s->outputs ? check_clash(s, e, err) : FNN_OK;
    if (r != FNN_OK)
        drop_last(s);
    return r;
}

fnn_status fnn_outputs_file(fnn_outputs *s, const char *what, const char *path,
                            fnn_output_kind kind, fnn_error *err)
{
    entry *e = add(s, what, path, err);
    if (!e)
        return FNN_ERR_NOMEM;
    e->kind = kind;
    struct stat st = {0};
    fnn_error why = {0};
    fnn_status r = fnn_atomic_resolve(path, &e->target, &st, &why);
    if (r != FNN_OK)
        r = fnn_fail(err, r, "%s %s", what, why.msg);
    e->through = S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode);
    if (r == FNN_OK && !e->through)
        r = check_dir_of(what, e->target, err);
    if (r == FNN_OK && identify(e->target, &e->id) != 0)
        r = fnn_fail(err, FNN_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    if (r == FNN_OK)
        r = check_clash(s, e, err);
    if (r != FNN_OK)
        drop_last(s);
    else
        s->outputs++;
    return r;
}

/* Writes the marker file into dir. */
static fnn_status put_marker(const char *what, const char *dir, const char *marker,
                             fnn_error *err)
{
    size_t len = strlen(dir) + strlen(marker) + 2;
    char *p = malloc(len);
    if (!p)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s %s: out of memory", what, dir);
    snprintf(p, len, "%s/%s", dir, marker);
    static const char text[] = "This directory was created by fnn, which writes only into "
                               "directories that hold this file.\n";
    fnn_status r = fnn_write_atomic(p, text, sizeof text - 1, err);
    free(p);
    return r;
}

static int has_marker(const char *dir, const char *marker)
{
    struct stat st;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = fstatat(fd, marker, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    close(fd);
    return ok;
}

fnn_status fnn_outputs_dir(fnn_outputs *s, const char *what, const char *path, const char *marker,
                           fnn_output_kind kind, fnn_error *err)
{
    entry *e = add(s, what, path, err);
    if (!e)
        return FNN_ERR_NOMEM;
    e->kind = kind;
    e->dir = 1;
    fnn_status r = FNN_OK;
    struct stat st;
    if (!(e->marker = strdup(marker)))
        r = fnn_fail(err, FNN_ERR_NOMEM, "%s %s: out of memory", what, path);
    else if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            r = fnn_fail(err, FNN_ERR_IO, "%s %s: exists and is not a directory", what, path);
        else if (!has_marker(path, marker))
            r = fnn_fail(err, FNN_ERR_IO, "%s %s: the directory exists and fnn did not create it "
                         "(it has no %s file); fnn writes only into directories it created: "
                         "give another path, or move the directory away", what, path, marker);
        else if (!(e->target = realpath(path, NULL)))
            r = fnn_fail(err, FNN_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    } else if (errno != ENOENT) {
        r = fnn_fail(err, FNN_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    } else {
        struct stat lst;
        if (lstat(path, &lst) == 0) /* a link to nothing */
            r = fnn_fail(err, FNN_ERR_IO, "%s %s: a symbolic link to nothing", what, path);
        else if (!(e->target = strdup(path)))
            r = fnn_fail(err, FNN_ERR_NOMEM, "%s %s: out of memory", what, path);
        /* "maps/": its temporary goes beside it, as "maps.tmp.XXXXXX", not into it */
        for (size_t n = e->target ? strlen(e->target) : 0; n > 1 && e->target[n - 1] == '/';)
            e->target[--n] = '\0';
    }
    if (r == FNN_OK)
        r = check_dir_of(what, e->target, err);
    if (r == FNN_OK && identify(e->target, &e->id) != 0)
        r = fnn_fail(err, FNN_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    if (r == FNN_OK)
        r = check_clash(s, e, err);
    if (r == FNN_OK && kind == FNN_OUT_LIVE && e->id.name) { /* missing: created now */
        if (mkdir(e->target, 0777) != 0)
            r = fnn_fail(err, FNN_ERR_IO, "%s %s: cannot create it: %s", what, path,
                         strerror(errno));
        else if ((r = put_marker(what, e->target, marker, err)) != FNN_OK)
            rmdir(e->target);
    }
    if (r != FNN_OK)
        drop_last(s);
    else
        s->outputs++;
    return r;
}

static fnn_status stage_locked(fnn_outputs *s, fnn_error *err)
{
    if (s->discarded)
        return fnn_fail(err, FNN_ERR_IO, "the outputs were discarded: the run was stopped");
    for (int i = 0; i < s->n; i++) {
        entry *e = &s->e[i];
        if (e->input || e->kind != FNN_OUT_STAGED || e->through || e->tmp)
            continue;
        if (!(e->tmp = fnn_atomic_temp(e->target, e->dir, NULL)))
            return fnn_fail(err, FNN_ERR_IO, "%s %s: cannot create a temporary %s beside it: %s",
                            e->what, e->path, e->dir ? "directory" : "file", strerror(errno));
        if (e->dir) {
            fnn_status r = put_marker(e->what, e->tmp, e->marker, err);
            if (r != FNN_OK)
                return r;
        }
    }
    return FNN_OK;
}

fnn_status fnn_outputs_stage(fnn_outputs *s, fnn_error *err)
{
    pthread_mutex_lock(&s->lock);
    fnn_status r = stage_locked(s, err);
    pthread_mutex_unlock(&s->lock);
    return r;
}

const char *fnn_outputs_path(const fnn_outputs *s, const char *path)
{
    for (int i = 0; i < s->n; i++)
        if (!s->e[i].input && !strcmp(s->e[i].path, path))
            return s->e[i].tmp ? s->e[i].tmp : s->e[i].path;
    return NULL;
}

int fnn_same_file(const char *a, const char *b)
{
    ident x = {0}, y = {0};
    int r = identify(a, &x) == 0 && identify(b, &y) == 0 && same(&x, &y);
    free(x.name);
    free(y.name);
    return r;
}

int fnn_outputs_through(const fnn_outputs *s, const char *path)
{
    for (int i = 0; i < s->n; i++)
        if (!s->e[i].input && !strcmp(s->e[i].path, path))
            return s->e[i].through;
    return 0;
}

/* Empties and removes a directory of files; subdirectories are left, and so is the directory
 * then. A file created in it meanwhile makes it be emptied again. */
static void remove_flat_dir(const char *dir)
{
    for (int pass = 0; pass < 100; pass++) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return;
        char buf[4096];
        long n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
            for (long at = 0; at < n;) {
                struct dirent64 *d = (struct dirent64 *)(buf + at);
                if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
                    unlinkat(fd, d->d_name, 0);
                at += d->d_reclen;
            }
        }
        close(fd);
        if (rmdir(dir) == 0 || errno != ENOTEMPTY)
            return;
    }
}

/* A signal's discard runs on fnn's signal thread while the run's threads may still be writing
 * into a staged directory, until the process ends: the directory is renamed first, so that
 * files they create by its name fail from then on instead of refilling it while it is emptied.
 * A staged file needs no such step when fnn_atomic_end ran first, as it does on fnn's signal
 * thread: files are written through atomic handles, and after it none opens, and none whose
 * temporary it removed can rename that into the staged file's place. */
static void discard_locked(fnn_outputs *s)
{
    s->discarded = 1;
    for (int i = 0; i < s->n; i++) {
        entry *e = &s->e[i];
        if (!e->tmp || e->moved)
            continue;
        if (!e->dir) {
            unlink(e->tmp);
            continue;
        }
        char gone[PATH_MAX];
        int n = snprintf(gone, sizeof gone, "%s.gone", e->tmp);
        if (n > 0 && (size_t)n < sizeof gone &&
            renameat2(AT_FDCWD, e->tmp, AT_FDCWD, gone, RENAME_NOREPLACE) == 0)
            remove_flat_dir(gone);
        else
            remove_flat_dir(e->tmp);
    }
}

void fnn_outputs_discard(fnn_outputs *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    discard_locked(s);
    pthread_mutex_unlock(&s->lock);
}

void fnn_outputs_free(fnn_outputs *s)
{
    if (!s)
        return;
    fnn_outputs_discard(s);
    for (int i = 0; i < s->n; i++)
        entry_free(&s->e[i]);
    pthread_mutex_destroy(&s->lock);
    free(s->e);
    free(s);
}

/* Puts e's temporary at its target. With something there, the two are swapped (the old one is
 * then at e->tmp) where the filesystem can; elsewhere the old one is renamed aside first. */
static fnn_status move_in(entry *e, fnn_error *err)
{
    struct stat st;
    if (lstat(e->target, &st) != 0) {
        if (rename(e->tmp, e->target) != 0)
            return fnn_fail(err, FNN_ERR_IO, "%s %s: cannot rename %s to it: %s", e->what,
                            e->path, e->tmp, strerror(errno));
        e->moved = 1;
        return FNN_OK;
    }
    if (!S_ISDIR(st.st_mode) != !e->dir) /* changed since it was registered */
        return fnn_fail(err, FNN_ERR_IO, "%s %s: %s since the run began", e->what, e->path,
                        e->dir ? "is no longer a directory" : "has become a directory");
    if (renameat2(AT_FDCWD, e->tmp, AT_FDCWD, e->target, RENAME_EXCHANGE) == 0) {
        e->old = e->tmp;
        e->tmp = NULL;
        e->moved = 2;
        return FNN_OK;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return fnn_fail(err, FNN_ERR_IO, "%s %s: cannot swap %s with it: %s", e->what, e->path,
                        e->tmp, strerror(errno));
    /* No exchange here: the old one goes to a name of its own, then the new one in. */
    char *aside = fnn_atomic_temp(e->target, e->dir, NULL);
    if (!aside)
        return fnn_fail(err, FNN_ERR_IO, "%s %s: cannot create a temporary beside it: %s",
                        e->what, e->path, strerror(errno));
    if (rename(e->target, aside) != 0) {
        int er = errno;
        e->dir ? rmdir(aside) : unlink(aside);
        free(aside);
        return fnn_fail(err, FNN_ERR_IO, "%s %s: cannot move it aside: %s", e->what, e->path,
                        strerror(er));
    }
    if (rename(e->tmp, e->target) != 0) {
        int er = errno;
        rename(aside, e->target); /* best effort: err reports the failure that matters */
        free(aside);
        return fnn_fail(err, FNN_ERR_IO, "%s %s: cannot rename %s to it: %s", e->what, e->path,
                        e->tmp, strerror(er));
    }
    free(e->tmp);
    e->tmp = NULL;
    e->old = aside;
    e->moved = 2;
    return FNN_OK;
}

/* Undoes move_in (best effort: commit is already failing). */
static void move_back(entry *e)
{
    if (e->moved == 1) {
        /* e->tmp still holds the name it had: the new file goes back there and is removed */
        if (rename(e->target, e->tmp) == 0)
            e->moved = 0;
    } else if (e->moved == 2) {
        if (renameat2(AT_FDCWD, e->old, AT_FDCWD, e->target, RENAME_EXCHANGE) == 0) {
            e->tmp = e->old; /* holds the new version now, removed with the temporaries */
            e->old = NULL;
            e->moved = 0;
            return;
        }
        /* The aside case: the old one renamed back over the new one. */
        if (e->dir)
            remove_flat_dir(e->target);
        if (rename(e->old, e->target) == 0) {
            free(e->old);
            e->old = NULL;
            e->moved = 0;
        }
    }
}

/* After a staged directory replaced an old one: entries of the old that the new one lacks
 * (files a user put there, figures of an earlier page) move into the new one, the rest go. */
static void merge_old_dir(const entry *e)
{
    DIR *d = opendir(e->old);
    if (!d)
        return;
    int from = dirfd(d), to = open(e->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    struct stat st;
    while (to >= 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(to, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            renameat(from, de->d_name, to, de->d_name);
        else
            unlinkat(from, de->d_name, 0); /* fails, and stays, for a directory */
    }
    if (to >= 0)
        close(to);
    closedir(d);
    rmdir(e->old); /* stays, under its temporary name, if anything could not be moved */
}

static fnn_status commit_locked(fnn_outputs *s, fnn_error *err)
{
    if (s->discarded)
        return fnn_fail(err, FNN_ERR_IO, "the outputs were discarded: the run was stopped");
    fnn_status r = FNN_OK;
    int i;
    for (i = 0; i < s->n && r == FNN_OK; i++)
        if (s->e[i].tmp && s->e[i].kind == FNN_OUT_STAGED)
            r = move_in(&s->e[i], err);
    if (r != FNN_OK) {
        for (int j = i - 2; j >= 0; j--)
            move_back(&s->e[j]);
        discard_locked(s);
        return r;
    }
    for (i = 0; i < s->n; i++) {
        entry *e = &s->e[i];
        if (!e->moved)
            continue;
        if (e->old && e->dir)
            merge_old_dir(e);
        else if (e->old)
            unlink(e->old);
        fnn_error sync_err = {0};
        if (fnn_sync_dir(e->target, &sync_err) != FNN_OK && r == FNN_OK) {
            *err = sync_err;
            r = sync_err.status;
        }
    }
    return r;
}

fnn_status fnn_outputs_commit(fnn_outputs *s, fnn_error *err)
{
    pthread_mutex_lock(&s->lock);
    fnn_status r = commit_locked(s, err);
    pthread_mutex_unlock(&s->lock);
    return r;
}
