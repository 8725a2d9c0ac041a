/* Outputs never destroy what the user had (issue 15): an output that is an input or another
 * output, however spelled (./, .., hard and symbolic links), is refused before any work; a run's
 * files are put in place together only when it succeeds; devices, FIFOs and links are written
 * through; directories fnn did not create are never written into. Every case checks the exit
 * status, the message, and that every input is byte for byte what it was. */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE /* makedev */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fnn.h"
#include "util/outputs.h"

#define PATH_CAP 1024
/* No single run may take longer; a hung CLI (a FIFO nobody reads) fails instead of stalling. */
#define RUN_TIMEOUT_S 120

static char g_base[PATH_CAP];      /* $FNN_TMP/test_outputs.work: everything this program writes */
static char g_syn[PATH_CAP + 16];  /* a valid synthetic data directory */
static char g_model[PATH_CAP + 32]; /* a model trained on it */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* The quick training every case starts from; refused runs never get to it. */
#define TRAIN(...) FNN("train", "--data", g_syn, "--epochs", "1", "--threads", "2", "--quiet", \
                       __VA_ARGS__)
#define REPORT_FAST "--data", g_syn, "--limit", "50", "--saliency-images", "2", \
                    "--occlusion-images", "10", "--threads", "2"

/* ---------------------------------------------------------------- snapshots of inputs */

/* A file's bytes, to check later that nothing changed them. */
typedef struct {
    char path[PATH_CAP];
    char *data;
    size_t len;
} snapshot;

static snapshot snap(const char *path)
{
    snapshot s;
    pathf(s.path, "%s", path);
    s.data = read_all(path, &s.len);
    if (!s.data)
        fail_msg("cannot read %s", path);
    return s;
}

static void expect_unchanged(snapshot *s)
{
    struct stat st;
    if (lstat(s->path, &st) != 0 || !S_ISREG(st.st_mode))
        fail_msg("%s is no longer a regular file", s->path);
    size_t len;
    char *now = read_all(s->path, &len);
    if (!now || len != s->len || memcmp(now, s->data, len) != 0)
        fail_msg("%s changed", s->path);
    free(now);
    free(s->data);
    s->data = NULL;
}

/* The four files of the synthetic data set. */
static const char *const data_files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

static void snap_data(snapshot out[4])
{
    char p[PATH_CAP];
    for (int i = 0; i < 4; i++)
        out[i] = snap(pathf(p, "%s/%s", g_syn, data_files[i]));
}

static void expect_data_unchanged(snapshot s[4])
{
    for (int i = 0; i < 4; i++)
        expect_unchanged(&s[i]);
}

/* No temporary (NAME.tmp.XXXXXX) left in dir, and no entry but those listed (NULL-terminated;
 * NULL for "do not check the names"). */
static void expect_clean(const char *dir, const char *const *only)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strstr(e->d_name, ".tmp."))
            fail_msg("%s: temporary %s left behind", dir, e->d_name);
        int listed = !only;
        for (int i = 0; only && only[i]; i++)
            listed |= !strcmp(only[i], e->d_name);
        if (!listed)
            fail_msg("%s: unexpected %s", dir, e->d_name);
    }
    closedir(d);
}

static void expect_refused(const run_t *r, int code, const char *a, const char *b)
{
    expect_code(r, code);
    expect_contains(r->err, "stderr", a);
    if (b)
        expect_contains(r->err, "stderr", b);
    assert_string_equal(r->out, "");
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = read_all(from, &len);
    if (!data)
        fail_msg("cannot read %s", from);
    write_file(to, data, len);
    free(data);
}

/* A character device like /dev/null (1, 3) or /dev/full (1, 7) at path; 0 where this process
 * may not make device nodes. */
static int make_device(const char *path, unsigned minor)
{
    unlink(path);
    if (mknod(path, S_IFCHR | 0666, makedev(1, minor)) == 0)
        return 1;
    print_message("skipped: cannot make a device node at %s: %s\n", path, strerror(errno));
    return 0;
}

static void expect_type(const char *path, mode_t type)
{
    struct stat st;
    if (lstat(path, &st) != 0 || (st.st_mode & S_IFMT) != type)
        fail_msg("%s is no longer what it was (mode %o)", path, (unsigned)st.st_mode);
}

/* ================================================================ train */

/* --out, --history or --checkpoint naming one of the data files, spelled five ways. */
static void test_train_outputs_never_replace_data(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[5][PATH_CAP];
    fresh_dir(pathf(dir, "%s/data_clash", g_base));
    pathf(p[0], "%s/train-labels-idx1-ubyte", g_syn);
    pathf(p[1], "%s/../syn/./t10k-images-idx3-ubyte", g_syn);
    pathf(p[2], "%s/hard-link", dir);
    pathf(p[3], "%s/symlink", dir);
    pathf(p[4], "%s//t10k-labels-idx1-ubyte", g_syn);
    char target[PATH_CAP];
    if (link(pathf(target, "%s/train-images-idx3-ubyte", g_syn), p[2]) != 0 ||
        symlink(pathf(target, "%s/t10k-labels-idx1-ubyte", g_syn), p[3]) != 0)
        fail_msg("cannot make links in %s: %s", dir, strerror(errno));
    static const char *const opts[] = {"--out", "--history", "--checkpoint"};
    char other[PATH_CAP];
    pathf(other, "%s/m.safetensors", dir);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 3; k++) {
            snapshot before[4];
            snap_data(before);
            run_t r = k == 0 ? TRAIN("--out", p[i])
                             : TRAIN("--out", other, opts[k], p[i]);
            expect_refused(&r, 2, opts[k], "--data");
            expect_contains(r.err, "stderr", p[i]);
            expect_data_unchanged(before);
            expect_clean(g_syn, (const char *const[]){data_files[0], data_files[1],
                                                      data_files[2], data_files[3], NULL});
            expect_clean(dir, (const char *const[]){"hard-link", "symlink", NULL});
            run_free(&r);
        }
}

/* The copy of the data that a run does not read (the .gz beside the plain file it prefers) is
 * still the user's. */
static void test_train_outputs_never_replace_unread_data(void **state)
{
    (void)state;
    char data[PATH_CAP], p[PATH_CAP], gz[PATH_CAP], other[PATH_CAP];
    make_data_dir(pathf(data, "%s/both", g_base));
    copy_file(pathf(p, "%s/train-labels-idx1-ubyte", data),
              pathf(gz, "%s/train-labels-idx1-ubyte.gz", data));
    copy_file(pathf(p, "%s/t10k-images-idx3-ubyte", data),
              pathf(other, "%s/t10k-images.idx3-ubyte", data));
    const char *const outs[] = {gz, other};
    for (int i = 0; i < 2; i++) {
        snapshot before = snap(outs[i]);
        run_t r = FNN("train", "--data", data, "--epochs", "1", "--quiet", "--out", outs[i]);
        expect_refused(&r, 2, "--out", "--data");
        expect_unchanged(&before);
        run_free(&r);
    }
}

/* A name too long for its temporary fails before the run, not after it. */
static void test_name_too_long_fails_first(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP], name[251];
    fresh_dir(pathf(dir, "%s/long", g_base));
    memset(name, 'm', 250);
    name[250] = '\0';
    run_t r = TRAIN("--out", pathf(p, "%s/%s", dir, name));
    expect_refused(&r, 1, "--out", "the name is too long");
    run_free(&r);
    r = FNN("report", g_model, "--out", p, REPORT_FAST);
    expect_refused(&r, 1, "--out", "the name is too long");
    run_free(&r);
    expect_clean(dir, (const char *const[]){NULL});
}

/* Two outputs of one run that are one file: the old string comparison missed every one. */
static void test_train_outputs_never_clash(void **state)
{
    (void)state;
    char dir[PATH_CAP], m[PATH_CAP], m2[PATH_CAP], c[PATH_CAP], c2[PATH_CAP], h[PATH_CAP];
    fresh_dir(pathf(dir, "%s/out_clash", g_base));
    mkdir(pathf(c, "%s/sub", dir), 0777);
    pathf(m, "%s/m.st", dir);
    copy_file(g_model, m);
    pathf(m2, "%s/./m.st", dir);
    pathf(c, "%s/c.st", dir);
    pathf(c2, "%s/sub/../c.st", dir);
    pathf(h, "%s/h.csv", dir);
    if (link(m, h) != 0)
        fail_msg("link: %s", strerror(errno));

    const char *const cases[][4] = {
        {"--history", m2, "--out", m},  /* ./m.st and m.st */
        {"--history", h, "--out", m},   /* a hard link of the model */
        {"--checkpoint", c2, "--out", c}, /* sub/../c.st and c.st */
        {"--checkpoint", m2, "--history", m},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snapshot before = snap(m);
        run_t r = TRAIN(cases[i][0], cases[i][1], cases[i][2], cases[i][3]);
        expect_refused(&r, 2, "same file", cases[i][0]);
        expect_contains(r.err, "stderr", cases[i][2]);
        expect_unchanged(&before);
        expect_clean(dir, (const char *const[]){"m.st", "h.csv", "sub", NULL});
        run_free(&r);
    }
}

/* --init-from and --resume are inputs too; the checkpoint being resumed may be updated (that is
 * what --resume does by default) but not replaced by the model. */
static void test_train_outputs_never_replace_models_read(void **state)
{
    (void)state;
    char dir[PATH_CAP], m[PATH_CAP], c[PATH_CAP], c2[PATH_CAP], a[PATH_CAP], b[PATH_CAP];
    fresh_dir(pathf(dir, "%s/model_inputs", g_base));
    pathf(m, "%s/m.st", dir);
    copy_file(g_model, m);
    pathf(c, "%s/c.st", dir);
    pathf(c2, "%s/./c.st", dir);
    pathf(a, "%s/a.st", dir);
    pathf(b, "%s/b.st", dir);

    char m2[PATH_CAP];
    pathf(m2, "%s/../model_inputs/m.st", dir);
    snapshot before = snap(m);
    run_t r = TRAIN("--init-from", m, "--out", m2);
    expect_refused(&r, 2, "--init-from", "--out");
    expect_unchanged(&before);
    run_free(&r);

    r = TRAIN("--checkpoint", c, "--out", a);
    expect_code(&r, 0);
    run_free(&r);
    before = snap(c);
    r = FNN("train", "--resume", c, "--epochs", "2", "--quiet", "--out", c2);
    expect_refused(&r, 2, "same file", "--out");
    expect_unchanged(&before);
    run_free(&r);
    /* The checkpoint being resumed is the default --checkpoint: still allowed. */
    r = FNN("train", "--resume", c, "--epochs", "2", "--quiet", "--out", b);
    expect_code(&r, 0);
    assert_true(file_exists(b));
    run_free(&r);
    expect_clean(dir, (const char *const[]){"m.st", "c.st", "a.st", "a.st.history.csv", "b.st",
                                            "b.st.history.csv", NULL});
}

/* A device is written through and stays a device; /dev/full's ENOSPC is an error; a FIFO
 * without a reader is an error, not a hang; a directory is refused. Twins of /dev/null and
 * /dev/full in the test's directory stand in for the real ones, which a failing build would
 * replace. */
static void test_train_out_devices_and_fifos(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[PATH_CAP], sub[PATH_CAP];
    fresh_dir(pathf(dir, "%s/devices", g_base));
    if (make_device(pathf(p, "%s/null", dir), 3)) {
        run_t r = FNN("train", "--data", g_syn, "--epochs", "1", "--threads", "2", "--out", p);
        expect_code(&r, 0);
        expect_contains(r.out, "stdout", "no history file");
        expect_type(p, S_IFCHR);
        run_free(&r);
        expect_clean(dir, (const char *const[]){"null", NULL});
    }
    if (make_device(pathf(p, "%s/full", dir), 7)) {
        run_t r = TRAIN("--out", p);
        expect_refused(&r, 1, p, "No space left");
        expect_type(p, S_IFCHR);
        run_free(&r);
        expect_clean(dir, NULL);
    }
    if (mkfifo(pathf(p, "%s/fifo", dir), 0666) != 0)
        fail_msg("mkfifo: %s", strerror(errno));
    run_t r = TRAIN("--out", p);
    expect_refused(&r, 1, p, "FIFO that nothing reads");
    expect_type(p, S_IFIFO);
    run_free(&r);

    fresh_dir(pathf(sub, "%s/adir", dir));
    write_file(pathf(p, "%s/keep", sub), "mine\n", 5);
    snapshot keep = snap(p);
    r = TRAIN("--out", sub);
    expect_refused(&r, 1, sub, "is a directory");
    expect_unchanged(&keep);
    expect_clean(sub, (const char *const[]){"keep", NULL});
    expect_clean(dir, NULL);
    run_free(&r);
}

/* A symbolic link as --out: its target gets the model; the link stays a link. */
static void test_train_out_symlink_written_through(void **state)
{
    (void)state;
    char dir[PATH_CAP], real[PATH_CAP], lnk[PATH_CAP];
    fresh_dir(pathf(dir, "%s/symlink_out", g_base));
    pathf(real, "%s/real.st", dir);
    write_file(real, "old", 3);
    if (symlink("real.st", pathf(lnk, "%s/link.st", dir)) != 0)
        fail_msg("symlink: %s", strerror(errno));
    run_t r = TRAIN("--out", lnk);
    expect_code(&r, 0);
    expect_type(lnk, S_IFLNK);
    expect_type(real, S_IFREG);
    fnn_error err = {0};
    fnn_model *m = fnn_model_load(real, NULL, &err);
    if (!m)
        fail_msg("the link's target is not the model: %s", err.msg);
    fnn_model_free(m);
    run_free(&r);
    expect_clean(dir, (const char *const[]){"real.st", "link.st", "link.st.history.csv", NULL});
}

/* The history cannot be written: the run fails and the previous model stays. */
static void test_failed_history_keeps_model(void **state)
{
    (void)state;
    char dir[PATH_CAP], m[PATH_CAP], h[PATH_CAP];
    fresh_dir(pathf(dir, "%s/history_fails", g_base));
    pathf(m, "%s/m.st", dir);
    copy_file(g_model, m);

    fresh_dir(pathf(h, "%s/h.csv", dir)); /* a directory where the history would go */
    snapshot before = snap(m);
    run_t r = TRAIN("--out", m, "--history", h);
    expect_refused(&r, 1, "--history", h);
    expect_unchanged(&before);
    run_free(&r);
    rmdir(h);

    if (make_device(pathf(h, "%s/full", dir), 7)) {
        before = snap(m);
        r = TRAIN("--out", m, "--history", h);
        expect_refused(&r, 1, h, "No space left");
        expect_unchanged(&before);
        expect_type(h, S_IFCHR);
        run_free(&r);
    }
    expect_clean(dir, (const char *const[]){"m.st", "full", NULL});
}

/* ================================================================ search */

/* A directory the search did not create is never written into; one it created is continued. */
static void test_search_refuses_user_directory(void **state)
{
    (void)state;
    char dir[PATH_CAP], user[PATH_CAP], p[PATH_CAP], mine[PATH_CAP];
    fresh_dir(pathf(dir, "%s/search", g_base));
    fresh_dir(pathf(user, "%s/user", dir));
    write_file(pathf(p, "%s/results.csv", user), "my,results\n", 11);
    snapshot csv = snap(p);
    write_file(pathf(p, "%s/trial-001.json", user), "{}\n", 3);
    snapshot json = snap(p);
    run_t r = FNN("search", "--out", user, "--data", g_syn, "--epochs", "1", "--workers", "1",
                  "--grid", "lr=0.001", "--no-final-test");
    expect_refused(&r, 1, user, ".fnn-search");
    expect_unchanged(&csv);
    expect_unchanged(&json);
    expect_clean(user, (const char *const[]){"results.csv", "trial-001.json", NULL});
    run_free(&r);

    fresh_dir(user); /* even an empty one: fnn did not make it */
    r = FNN("search", "--out", user, "--data", g_syn, "--epochs", "1", "--workers", "1",
            "--grid", "lr=0.001", "--no-final-test");
    expect_refused(&r, 1, user, ".fnn-search");
    expect_clean(user, (const char *const[]){NULL});
    run_free(&r);

    pathf(mine, "%s/new", dir);
    for (int i = 0; i < 2; i++) {
        r = FNN("search", "--out", mine, "--data", g_syn, "--epochs", "1", "--workers", "1",
                "--grid", "lr=0.001", "--no-final-test");
        expect_code(&r, 0);
        if (i == 1)
            expect_contains(r.out, "stdout", "resuming: 1 of 1");
        run_free(&r);
    }
    assert_true(file_exists(pathf(p, "%s/.fnn-search", mine)));
}

/* ================================================================ report */

static void test_report_outputs_never_replace_inputs(void **state)
{
    (void)state;
    char dir[PATH_CAP], m[PATH_CAP], hard[PATH_CAP], soft[PATH_CAP], dotted[PATH_CAP],
        data[PATH_CAP];
    fresh_dir(pathf(dir, "%s/report_inputs", g_base));
    pathf(m, "%s/m.safetensors", dir);
    copy_file(g_model, m);
    pathf(hard, "%s/hard.html", dir);
    pathf(soft, "%s/soft.html", dir);
    pathf(dotted, "%s/../report_inputs/./m.safetensors", dir);
    if (link(m, hard) != 0 || symlink("m.safetensors", soft) != 0)
        fail_msg("cannot make links: %s", strerror(errno));
    const char *const outs[] = {m, dotted, hard, soft};
    for (int i = 0; i < 4; i++) {
        snapshot before = snap(m);
        run_t r = FNN("report", m, "--out", outs[i], REPORT_FAST);
        expect_refused(&r, 2, "--out", "the model");
        expect_unchanged(&before);
        expect_clean(dir, (const char *const[]){"m.safetensors", "hard.html", "soft.html", NULL});
        run_free(&r);
    }
    for (int i = 0; i < 2; i++) { /* the test labels it reads, the training labels it does not */
        snapshot before[4];
        snap_data(before);
        pathf(data, "%s/%s-labels-idx1-ubyte", g_syn, i ? "train" : "t10k");
        run_t r = FNN("report", m, "--out", data, REPORT_FAST);
        expect_refused(&r, 2, "--out", "--data");
        expect_data_unchanged(before);
        expect_clean(g_syn, (const char *const[]){data_files[0], data_files[1], data_files[2],
                                                  data_files[3], NULL});
        run_free(&r);
    }
}

/* The figures folder: refused when fnn did not make it; replaced as a whole (keeping what a user
 * added) when it did; never left behind by a report that fails. */
static void test_report_figures_folder(void **state)
{
    (void)state;
    char dir[PATH_CAP], page[PATH_CAP], files[PATH_CAP], p[PATH_CAP];
    fresh_dir(pathf(dir, "%s/report_files", g_base));
    pathf(page, "%s/page.html", dir);
    fresh_dir(pathf(files, "%s/page_files", dir));
    write_file(pathf(p, "%s/keep.txt", files), "mine\n", 5);
    snapshot keep = snap(p);
    run_t r = FNN("report", g_model, "--out", page, REPORT_FAST);
    expect_refused(&r, 1, files, ".fnn-report");
    expect_unchanged(&keep);
    expect_clean(files, (const char *const[]){"keep.txt", NULL});
    expect_clean(dir, (const char *const[]){"page_files", NULL});
    run_free(&r);

    pathf(page, "%s/ok.html", dir);
    pathf(files, "%s/ok_files", dir);
    r = FNN("report", g_model, "--out", page, REPORT_FAST);
    expect_code(&r, 0);
    run_free(&r);
    assert_true(file_exists(pathf(p, "%s/.fnn-report", files)));
    write_file(pathf(p, "%s/notes.txt", files), "mine\n", 5);
    keep = snap(p);
    r = FNN("report", g_model, "--out", page, REPORT_FAST);
    expect_code(&r, 0);
    run_free(&r);
    expect_unchanged(&keep);
    expect_clean(files, NULL);
    expect_clean(dir, (const char *const[]){"page_files", "ok.html", "ok_files", NULL});

    /* A page that cannot be written: nothing of the report is left. */
    if (mkfifo(pathf(page, "%s/fifo.html", dir), 0666) != 0)
        fail_msg("mkfifo: %s", strerror(errno));
    r = FNN("report", g_model, "--out", page, REPORT_FAST);
    expect_refused(&r, 1, page, "FIFO that nothing reads");
    expect_type(page, S_IFIFO);
    run_free(&r);
    if (make_device(pathf(page, "%s/full.html", dir), 7)) {
        r = FNN("report", g_model, "--out", page, REPORT_FAST);
        expect_refused(&r, 1, page, "No space left");
        expect_type(page, S_IFCHR);
        run_free(&r);
    }
    expect_clean(dir, (const char *const[]){"page_files", "ok.html", "ok_files", "fifo.html",
                                            "full.html", NULL});
}

/* ================================================================ explain */

/* --out-dir: a user's directory is refused; explain's own is replaced once every map is
 * written, keeping what a user added. */
static void test_explain_out_dir(void **state)
{
    (void)state;
    char dir[PATH_CAP], user[PATH_CAP], maps[PATH_CAP], p[PATH_CAP];
    fresh_dir(pathf(dir, "%s/explain", g_base));
    fresh_dir(pathf(user, "%s/user", dir));
    write_file(pathf(p, "%s/occlusion.csv", user), "mine\n", 5);
    snapshot mine = snap(p);
    run_t r = FNN("explain", g_model, "--data", g_syn, "--limit", "20", "--threads", "2",
                  "--out-dir", user);
    expect_refused(&r, 1, user, ".fnn-explain");
    expect_unchanged(&mine);
    expect_clean(user, (const char *const[]){"occlusion.csv", NULL});
    run_free(&r);

    pathf(maps, "%s/maps/", dir); /* the slash: its temporary must go beside it, not into it */
    for (int i = 0; i < 2; i++) {
        r = FNN("explain", g_model, "--data", g_syn, "--limit", "20", "--threads", "2",
                "--out-dir", maps);
        expect_code(&r, 0);
        run_free(&r);
        if (i == 0) {
            write_file(pathf(p, "%s/notes.txt", maps), "mine\n", 5);
            mine = snap(p);
        }
    }
    expect_unchanged(&mine);
    assert_true(file_exists(pathf(p, "%s/occlusion.pgm", maps)));
    assert_true(file_exists(pathf(p, "%s/.fnn-explain", maps)));
    expect_clean(maps, NULL);
    expect_clean(dir, (const char *const[]){"user", "maps", NULL});
}

/* ================================================================ the output set itself */

static void put_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void expect_text(const char *path, const char *text)
{
    char *now = read_all(path, NULL);
    if (!now || strcmp(now, text))
        fail_msg("%s holds \"%s\", expected \"%s\"", path, now ? now : "(nothing)", text);
    free(now);
}

/* Three staged files; the third's target turns into a directory before the commit, which then
 * fails there and puts back the two it had already moved. */
static void test_commit_is_all_or_nothing(void **state)
{
    (void)state;
    char dir[PATH_CAP], p[3][PATH_CAP];
    fresh_dir(pathf(dir, "%s/commit", g_base));
    for (int round = 0; round < 2; round++) {
        fnn_error err = {0};
        fnn_outputs *s = fnn_outputs_new();
        assert_non_null(s);
        for (int i = 0; i < 3; i++) {
            pathf(p[i], "%s/%c", dir, 'a' + i);
            assert_int_equal(fnn_outputs_file(s, "out", p[i], FNN_OUT_STAGED, &err), FNN_OK);
        }
        if (round == 0)
            put_text(p[0], "old a");
        assert_int_equal(fnn_outputs_stage(s, &err), FNN_OK);
        put_text(fnn_outputs_path(s, p[0]), "new a");
        put_text(fnn_outputs_path(s, p[1]), "new b");
        put_text(fnn_outputs_path(s, p[2]), "new c");
        if (round == 0) {
            mkdir(p[2], 0777);
            assert_int_equal(fnn_outputs_commit(s, &err), FNN_ERR_IO);
            expect_contains(err.msg, "the error", p[2]);
            fnn_outputs_free(s);
            expect_text(p[0], "old a");
            assert_false(file_exists(p[1]));
            expect_clean(dir, (const char *const[]){"a", "c", NULL});
            rmdir(p[2]);
        } else {
            assert_int_equal(fnn_outputs_commit(s, &err), FNN_OK);
            fnn_outputs_free(s);
            expect_text(p[0], "new a");
            expect_text(p[1], "new b");
            expect_text(p[2], "new c");
            expect_clean(dir, (const char *const[]){"a", "b", "c", NULL});
        }
    }
}

/* A discard (a signal's, from fnn's signal thread) ends the set: staging and commit refuse
 * from then on, and the old file stays. */
static void test_discard_ends_the_set(void **state)
{
    (void)state;
    char dir[PATH_CAP], a[PATH_CAP], b[PATH_CAP];
    fresh_dir(pathf(dir, "%s/discarded", g_base));
    pathf(a, "%s/a", dir);
    pathf(b, "%s/b", dir);
    put_text(a, "old a");
    for (int staged = 0; staged < 2; staged++) {
        fnn_error err = {0};
        fnn_outputs *s = fnn_outputs_new();
        assert_non_null(s);
        assert_int_equal(fnn_outputs_file(s, "out", a, FNN_OUT_STAGED, &err), FNN_OK);
        assert_int_equal(fnn_outputs_dir(s, "--out-dir", b, ".fnn-test", FNN_OUT_STAGED, &err),
                         FNN_OK);
        if (staged) {
            assert_int_equal(fnn_outputs_stage(s, &err), FNN_OK);
            put_text(fnn_outputs_path(s, a), "new a");
            fnn_outputs_discard(s);
            assert_int_equal(fnn_outputs_commit(s, &err), FNN_ERR_IO);
        } else {
            fnn_outputs_discard(s);
            assert_int_equal(fnn_outputs_stage(s, &err), FNN_ERR_IO);
        }
        expect_contains(err.msg, "the error", "discarded");
        fnn_outputs_free(s);
        expect_text(a, "old a");
        expect_clean(dir, (const char *const[]){"a", NULL});
    }
}

typedef struct {
    const char *dir;
    volatile int written; /* files written so far */
} writer;

/* Writes files into dir until it is gone (or a bound, so that a broken discard fails the test
 * rather than hangs it). */
static void *write_until_gone(void *arg)
{
    writer *w = arg;
    char f[PATH_CAP + 16];
    for (int i = 0; i < 1000000; i++) {
        FILE *fp = fopen(pathf(f, "%s/%d.pgm", w->dir, i), "w");
        if (!fp)
            break;
        fclose(fp);
        w->written = i + 1;
    }
    return NULL;
}

/* A signal's discard runs on fnn's signal thread while the command's threads go on writing into
 * the staged directory: files keep appearing between the emptying and the rmdir, and the
 * directory is emptied again until it is gone. */
static void test_discard_while_writing(void **state)
{
    (void)state;
    char dir[PATH_CAP], out[PATH_CAP];
    fresh_dir(pathf(dir, "%s/race", g_base));
    pathf(out, "%s/maps", dir);
    for (int round = 0; round < 20; round++) {
        fnn_error err = {0};
        fnn_outputs *s = fnn_outputs_new();
        assert_non_null(s);
        assert_int_equal(fnn_outputs_dir(s, "--out-dir", out, ".fnn-test", FNN_OUT_STAGED, &err),
                         FNN_OK);
        assert_int_equal(fnn_outputs_stage(s, &err), FNN_OK);
        writer w = {fnn_outputs_path(s, out), 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, write_until_gone, &w), 0);
        struct timespec nap = {0, 100000};
        while (w.written < 50)
            nanosleep(&nap, NULL);
        fnn_outputs_discard(s);
        pthread_join(t, NULL);
        if (w.written == 1000000)
            fail_msg("the discard never removed %s", fnn_outputs_path(s, out));
        assert_int_equal(fnn_outputs_commit(s, &err), FNN_ERR_IO);
        fnn_outputs_free(s);
        expect_clean(dir, (const char *const[]){NULL});
    }
}

/* ================================================================ setup */

static int group_setup(void **state)
{
    (void)state;
    if (work_dir(g_base, sizeof g_base, "test_outputs") != 0)
        return -1;
    snprintf(g_syn, sizeof g_syn, "%s/syn", g_base);
    snprintf(g_model, sizeof g_model, "%s/model.safetensors", g_base);
    make_data_dir(g_syn);
    run_t r = TRAIN("--out", g_model);
    int ok = r.code == 0;
    if (!ok)
        fprintf(stderr, "training the shared model failed:\n%s", r.err);
    run_free(&r);
    return ok ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_outputs_never_replace_data),
        cmocka_unit_test(test_train_outputs_never_replace_unread_data),
        cmocka_unit_test(test_name_too_long_fails_first),
        cmocka_unit_test(test_train_outputs_never_clash),
        cmocka_unit_test(test_train_outputs_never_replace_models_read),
        cmocka_unit_test(test_train_out_devices_and_fifos),
        cmocka_unit_test(test_train_out_symlink_written_through),
        cmocka_unit_test(test_failed_history_keeps_model),
        cmocka_unit_test(test_search_refuses_user_directory),
        cmocka_unit_test(test_report_outputs_never_replace_inputs),
        cmocka_unit_test(test_report_figures_folder),
        cmocka_unit_test(test_explain_out_dir),
        cmocka_unit_test(test_commit_is_all_or_nothing),
        cmocka_unit_test(test_discard_ends_the_set),
        cmocka_unit_test(test_discard_while_writing),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
