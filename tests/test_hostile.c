/* Hostile inputs for every command, run as a user would run them (posix_spawn): FIFOs,
 * directories and devices where files belong, images shorter than their headers, models whose
 * outputs overflow, class names carrying escape sequences, malformed stored histories, long
 * model file names, models of many classes, bad option lists and checkpoints whose stored
 * options are invalid. Each must end with a clear message and its exit status: never a crash,
 * a hang, a number computed from garbage or an escape sequence on the terminal. */
#define _XOPEN_SOURCE 700

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
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnn.h"
#include "io/safetensors.h"
#include "util/text.h"

#define PATH_CAP 1024
/* A run that blocks (a FIFO opened for reading) is killed and fails the test after this. */
#define RUN_TIMEOUT_S 120

static char g_base[PATH_CAP / 2]; /* $FNN_TMP/test_hostile.work */
static char g_data[PATH_CAP];     /* synthetic IDX files, 28x28, labels 0..9 */
static char g_model[PATH_CAP];    /* a small sound model of 10 classes */
static char g_fifo[PATH_CAP];     /* a FIFO nobody writes to */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- helpers */

/* Saves spec (for 1x28x28 inputs) with every weight set to `weight` when it is not 0, and the
 * given metadata (either may be NULL). */
static void save_model(const char *path, const char *spec, float weight, const char *names_json,
                       const char *history_json)
{
    fnn_error err = {0};
    fnn_model *m = fnn_model_create(spec, 1, 28, 28, &err);
    if (!m)
        fail_msg("fnn_model_create(%s): %s", spec, err.msg);
    fnn_model_init(m, 7);
    for (int i = 0; weight != 0.0f && i < fnn_model_num_tensors(m); i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        for (size_t j = 0; j < t.size; j++)
            t.data[j] = weight;
    }
    fnn_model_meta meta = {(char *)names_json, (char *)history_json};
    if (fnn_model_save(m, &meta, path, &err) != FNN_OK)
        fail_msg("fnn_model_save(%s): %s", path, err.msg);
    fnn_model_free(m);
}

static void expect_not_contains(const char *text, const char *what, const char *part)
{
    if (strstr(text, part))
        fail_msg("%s contains \"%s\":\n%.4000s", what, part, text);
}

/* No byte of text is a control character other than newline and tab, nor starts a C1 control
 * or a bidirectional override in UTF-8. */
static void expect_printable(const char *text, const char *what)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7F ||
            (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) ||
            (p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0xAA && p[2] <= 0xAE) ||
            (p[0] == 0xE2 && p[1] == 0x81 && p[2] >= 0xA6 && p[2] <= 0xA9))
            fail_msg("%s holds control byte 0x%02x at offset %td:\n%.4000s", what, *p,
                     (const char *)p - text, text);
}

/* The run failed with `code`, saying `part`, and printed nothing on stdout. */
static void expect_failure(run_t *r, int code, const char *part)
{
    expect_code(r, code);
    expect_contains(r->err, "stderr", part);
    if (r->out[0])
        fail_msg("a failed run printed on stdout:\n%.2000s", r->out);
    run_free(r);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("FNN_TMP");
    snprintf(g_base, sizeof g_base, "%s/test_hostile.work", tmp && *tmp ? tmp : "/tmp");
    fresh_dir(g_base);
    pathf(g_data, "%s/data", g_base);
    make_data_dir(g_data);
    pathf(g_model, "%s/sound.safetensors", g_base);
    save_model(g_model, "flatten dense:16:relu dense:10:softmax", 0.0f, NULL, NULL);
    pathf(g_fifo, "%s/fifo", g_base);
    if (mkfifo(g_fifo, 0666) != 0)
        fail_msg("mkfifo %s: %s", g_fifo, strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------- not regular files */

/* Every file argument of every command, given a FIFO, a directory or a character device: each
 * run ends at once (a blocking open would hang until the harness kills it) with the file named
 * and "not a regular file". */
static void test_inputs_must_be_regular_files(void **state)
{
    (void)state;
    const char *bad[] = {g_fifo, g_base, "/dev/zero"};
    char data_dir[PATH_CAP], p[PATH_CAP];
    for (int b = 0; b < 3; b++) {
        const char *x = bad[b];
        run_t r = FNN("eval", x, "--data", g_data);
        expect_failure(&r, 1, "not a regular file");
        r = FNN("summary", x);
        expect_failure(&r, 1, "not a regular file");
        r = FNN("predict", x, g_model);
        expect_failure(&r, 1, "not a regular file");
        if (x != g_base) { /* a folder of images is predict's to read: below */
            r = FNN("predict", g_model, x);
            expect_failure(&r, 1, "not a regular file");
        }
        r = FNN("explain", x, "--data", g_data);
        expect_failure(&r, 1, "not a regular file");
        r = FNN("robustness", x, "--data", g_data);
        expect_failure(&r, 1, "not a regular file");
        r = FNN("report", x, "--data", g_data, "--out", pathf(p, "%s/r.html", g_base));
        expect_failure(&r, 1, "not a regular file");
        r = FNN("train", "--resume", x, "--epochs", "2", "--data", g_data);
        expect_failure(&r, 1, "not a regular file");
        r = FNN("train", "--data", g_data, "--epochs", "1", "--init-from", x, "--out",
                pathf(p, "%s/never.safetensors", g_base));
        expect_failure(&r, 1, "not a regular file");
        r = FNN("search", "--grid-file", x, "--out", pathf(p, "%s/search", g_base));
        expect_code(&r, 2);
        expect_contains(r.err, "stderr", "not a regular file");
        run_free(&r);
    }
    /* A folder given to predict whose image is a FIFO. */
    pathf(data_dir, "%s/fifo_images", g_base);
    fresh_dir(data_dir);
    assert_int_equal(mkfifo(pathf(p, "%s/a.png", data_dir), 0666), 0);
    run_t f = FNN("predict", g_model, data_dir);
    expect_failure(&f, 1, "not a regular file");
    /* A data directory whose test images are a FIFO. */
    pathf(data_dir, "%s/fifo_data", g_base);
    make_data_dir(data_dir);
    pathf(p, "%s/t10k-images-idx3-ubyte", data_dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(mkfifo(p, 0666), 0);
    const char *cmds[] = {"eval", "explain", "robustness"};
    for (int c = 0; c < 3; c++) {
        run_t r = FNN(cmds[c], g_model, "--data", data_dir);
        expect_failure(&r, 1, "not a regular file");
    }
    run_t r = FNN("train", "--data", data_dir, "--epochs", "1", "--out",
                  pathf(p, "%s/never.safetensors", g_base));
    expect_failure(&r, 1, "not a regular file");
}

/* A property of every model-file argument: a damaged copy of a sound file (empty, cut at
 * several places, a broken header, noise) fails with exit 1 and a message naming it, in every
 * command that reads one (as a model, a checkpoint or initial weights), whatever the damage. */
static void test_damaged_model_files_fail_cleanly(void **state)
{
    (void)state;
    size_t len = 0;
    char *whole = read_all(g_model, &len);
    assert_non_null(whole);
    char damaged[PATH_CAP], html[PATH_CAP];
    pathf(damaged, "%s/damaged.safetensors", g_base);
    pathf(html, "%s/damaged.html", g_base);
    uint32_t s = 99;
    for (int v = 0; v < 8; v++) {
        char *bytes = malloc(len);
        assert_non_null(bytes);
        memcpy(bytes, whole, len);
        size_t n = len;
        switch (v) {
        case 0: n = 0; break;
        case 1: n = 7; break;
        case 2: n = 100; break;
        case 3: n = len / 2; break;
        case 4: n = len - 1; break;
        case 5: bytes[8] = '['; break;  /* the header's JSON opening */
        case 6: bytes[6] = 0x7F; break; /* a header length past any file */
        default:
            for (size_t i = 8; i < len; i++) {
                s = s * 1664525u + 1013904223u;
                bytes[i] = (char)(s >> 24);
            }
        }
        write_file(damaged, bytes, n);
        free(bytes);
        const char *const runs[][12] = {
            {"eval", damaged, "--data", g_data, NULL},
            {"summary", damaged, NULL},
            {"predict", damaged, g_model, NULL},
            {"explain", damaged, "--data", g_data, NULL},
            {"robustness", damaged, "--data", g_data, NULL},
            {"report", damaged, "--data", g_data, "--out", html, NULL},
            {"train", "--resume", damaged, "--epochs", "2", NULL},
            {"train", "--data", g_data, "--epochs", "1", "--init-from", damaged, "--out", html,
             NULL},
        };
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            run_t out = run_argv(runs[r]);
            expect_failure(&out, 1, damaged);
        }
    }
    free(whole);
}

/* ---------------------------------------------------------------- images */

/* Binary PGM and PPM headers for 28x28 followed by fewer bytes, a BMP cut inside its pixels:
 * refused, naming the file, instead of classifying memory stb_image never wrote. */
static void test_truncated_images_are_refused(void **state)
{
    (void)state;
    char p[PATH_CAP];
    uint8_t buf[4096] = {0};
    const char *heads[] = {"P5\n28 28\n255\n", "P6\n28 28\n255\n", "P5\n# a comment\n28 28 255 "};
    size_t keep[] = {100, 28 * 28, 28 * 28 - 1};
    for (int i = 0; i < 3; i++) {
        size_t h = strlen(heads[i]);
        memcpy(buf, heads[i], h);
        memset(buf + h, 200, keep[i]);
        pathf(p, "%s/short%d.%s", g_base, i, heads[i][1] == '6' ? "ppm" : "pgm");
        write_file(p, buf, h + keep[i]);
        run_t r = FNN("predict", g_model, p);
        expect_failure(&r, 1, p);
        r = FNN("predict", g_model, p);
        expect_failure(&r, 1, "truncated");
    }
    /* The same header with every byte present still classifies. */
    size_t h = strlen(heads[0]);
    memcpy(buf, heads[0], h);
    memset(buf + h, 200, 28 * 28);
    pathf(p, "%s/whole.pgm", g_base);
    write_file(p, buf, h + 28 * 28);
    run_t r = FNN("predict", g_model, p);
    expect_code(&r, 0);
    run_free(&r);

    /* A 28x28 24-bit BMP: 54-byte header, rows of 84 bytes; cut after 10 rows. */
    uint8_t bmp[54] = {'B', 'M'};
    uint32_t le[][2] = {{2, 54 + 84 * 28}, {10, 54}, {14, 40}, {18, 28}, {22, 28}, {34, 84 * 28}};
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++)
        for (int b = 0; b < 4; b++)
            bmp[le[i][0] + b] = (uint8_t)(le[i][1] >> (8 * b));
    bmp[26] = 1;  /* planes */
    bmp[28] = 24; /* bits per pixel */
    memcpy(buf, bmp, 54);
    memset(buf + 54, 90, 84 * 28);
    pathf(p, "%s/whole.bmp", g_base);
    write_file(p, buf, 54 + 84 * 28);
    r = FNN("predict", g_model, p);
    expect_code(&r, 0);
    run_free(&r);
    pathf(p, "%s/short.bmp", g_base);
    write_file(p, buf, 54 + 84 * 10);
    r = FNN("predict", g_model, p);
    expect_failure(&r, 1, "truncated");
}

/* ---------------------------------------------------------------- outputs that overflow */

/* Finite weights so large that the outputs overflow: every command that turns outputs into
 * numbers refuses with exit 1 instead of printing NaN or a meaningless accuracy. */
static void test_nonfinite_outputs_fail_every_command(void **state)
{
    (void)state;
    char model[PATH_CAP], img[PATH_CAP], html[PATH_CAP];
    pathf(model, "%s/overflow.safetensors", g_base);
    save_model(model, "flatten dense:16:relu dense:10:softmax", 1e30f, NULL, NULL);
    uint8_t pgm[15 + 28 * 28];
    memcpy(pgm, "P5\n28 28\n255\n", 13);
    memset(pgm + 13, 255, 28 * 28);
    pathf(img, "%s/white.pgm", g_base);
    write_file(img, pgm, 13 + 28 * 28);
    pathf(html, "%s/overflow.html", g_base);

    run_t r = FNN("eval", model, "--data", g_data);
    expect_failure(&r, 1, "not finite");
    r = FNN("predict", model, img);
    expect_failure(&r, 1, "not finite");
    r = FNN("explain", model, "--data", g_data);
    expect_failure(&r, 1, "not finite");
    r = FNN("explain", model, "--data", g_data, "--no-occlusion");
    expect_failure(&r, 1, "not finite");
    r = FNN("explain", model, "--data", g_data, "--method", "smoothgrad", "--json");
    expect_failure(&r, 1, "not finite");
    r = FNN("robustness", model, "--data", g_data);
    expect_failure(&r, 1, "not finite");
    r = FNN("robustness", model, "--data", g_data, "--perturbation", "shift", "--json");
    expect_failure(&r, 1, "not finite");
    r = FNN("report", model, "--data", g_data, "--out", html);
    expect_failure(&r, 1, "not finite");
}

/* ---------------------------------------------------------------- names from files */

/* Class names holding ESC, CSI (C1, as UTF-8 and as a raw byte), BEL and DEL reach no output:
 * each command's text shows them as '?', its JSON escapes nothing that a terminal would run,
 * and the report's page holds none of them. */
static void test_class_names_are_filtered(void **state)
{
    (void)state;
    char model[PATH_CAP], html[PATH_CAP], pgm_path[PATH_CAP];
    pathf(model, "%s/escapes.safetensors", g_base);
    cJSON *names = cJSON_CreateArray();
    const char *evil[10] = {"\x1b]2;owned\x07", "\x1b[31mred", "\xc2\x9b" "31mc1", "\x9b" "1m",
                            "del\x7f", "tab\tnl\nx", "ok", "caf\xc3\xa9", "\xe2\x80\xae rtl",
                            "\xf0\x9f\x91\x95"};
    for (int i = 0; i < 10; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(evil[i]));
    char *json = cJSON_PrintUnformatted(names);
    cJSON_Delete(names);
    save_model(model, "flatten dense:16:relu dense:10:softmax", 0.0f, json, NULL);
    free(json);
    uint8_t pgm[13 + 28 * 28];
    memcpy(pgm, "P5\n28 28\n255\n", 13);
    for (int i = 0; i < 28 * 28; i++)
        pgm[13 + i] = (uint8_t)(i * 7);
    pathf(pgm_path, "%s/pattern.pgm", g_base);
    write_file(pgm_path, pgm, sizeof pgm);

    run_t r = FNN("predict", model, pgm_path, "--top", "10");
    expect_code(&r, 0);
    expect_printable(r.out, "predict's stdout");
    expect_contains(r.out, "predict's stdout", "caf\xc3\xa9");
    run_free(&r);
    r = FNN("eval", model, "--data", g_data);
    expect_code(&r, 0);
    expect_printable(r.out, "eval's stdout");
    expect_contains(r.out, "eval's stdout", "?[31mred");
    run_free(&r);
    r = FNN("eval", model, "--data", g_data, "--json");
    expect_code(&r, 0);
    expect_not_contains(r.out, "eval --json", "\\u001b");
    expect_not_contains(r.out, "eval --json", "\\u009b");
    run_free(&r);
    r = FNN("explain", model, "--data", g_data, "--no-occlusion");
    expect_code(&r, 0);
    expect_printable(r.out, "explain's stdout");
    run_free(&r);
    pathf(html, "%s/escapes.html", g_base);
    r = FNN("report", model, "--data", g_data, "--out", html, "--saliency-images", "2",
            "--occlusion-images", "5");
    expect_code(&r, 0);
    run_free(&r);
    char *page = read_all(html, NULL);
    assert_non_null(page);
    expect_printable(page, "the report's page");
    free(page);
}

/* The filter itself: one '?' per hidden character or stray byte, everything else kept. */
static void test_text_printable(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"plain", NULL, "plain"},
        {"\x1b[2J\x07", NULL, "?[2J?"},
        {"a\tb\nc", "\n", "a?b\nc"},
        {"\xc2\x9b" "1m \xc2\xa0nbsp", NULL, "?1m \xc2\xa0nbsp"},
        {"\x9b\xff\xc0\xaf", NULL, "????"},                  /* stray bytes, an overlong '/' */
        {"\xed\xa0\x80 \xf4\x90\x80\x80", NULL, "??? ????"}, /* a surrogate, past U+10FFFF */
        {"\xe2\x80\xae" "abc\xe2\x81\xa9", NULL, "?abc?"},
        {"caf\xc3\xa9 \xf0\x9f\x91\x95 \xe2\x80\x94", NULL,
         "caf\xc3\xa9 \xf0\x9f\x91\x95 \xe2\x80\x94"},
        {"cut \xe2\x80", NULL, "cut ??"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i][0]);
        fnn_text_printable(buf, cases[i][1]);
        if (strcmp(buf, cases[i][2]))
            fail_msg("case %zu: got \"%s\", expected \"%s\"", i, buf, cases[i][2]);
    }
}

/* ---------------------------------------------------------------- stored histories */

/* An epoch number that is no integer count (1e300, 2.5, 0, a string) or a metric that is not a
 * number: the report fails naming the model file, the key and the item. */
static void test_bad_histories_are_refused(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"1e300", "1", "\"epoch\" item 0"},
        {"2.5", "1", "\"epoch\" item 0"},
        {"0", "1", "\"epoch\" item 0"},
        {"\"1\"", "1", "\"epoch\" item 0"},
        {"1", "\"x\"", "\"val_loss\" item 0"},
        {"1", "true", "\"val_loss\" item 0"},
    };
    char model[PATH_CAP], html[PATH_CAP], hist[512];
    pathf(html, "%s/history.html", g_base);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(hist, sizeof hist,
                 "{\"epoch\": [%s], \"train_loss\": [1], \"train_accuracy\": [0.5], "
                 "\"val_loss\": [%s], \"val_accuracy\": [null]}", cases[c][0], cases[c][1]);
        pathf(model, "%s/history%zu.safetensors", g_base, c);
        save_model(model, "flatten dense:10:softmax", 0.0f, NULL, hist);
        run_t r = FNN("report", model, "--data", g_data, "--out", html);
        expect_code(&r, 1);
        expect_contains(r.err, "stderr", model);
        expect_contains(r.err, "stderr", cases[c][2]);
        run_free(&r);
    }
}

/* Finite values a chart's ticks cannot step through (1e17 and the next double: a tick step
 * below their resolution) are drawn; stepping ticks by addition looped forever. */
static void test_extreme_history_values_are_drawn(void **state)
{
    (void)state;
    char model[PATH_CAP], html[PATH_CAP];
    pathf(model, "%s/extreme_history.safetensors", g_base);
    pathf(html, "%s/extreme_history.html", g_base);
    save_model(model, "flatten dense:10:softmax", 0.0f, NULL,
               "{\"epoch\": [1, 2], \"train_loss\": [1e17, 100000000000000016], "
               "\"train_accuracy\": [0.5, 0.5], \"val_loss\": [1e300, 1e300], "
               "\"val_accuracy\": [null, 0.5]}");
    run_t r = FNN("report", model, "--data", g_data, "--out", html, "--saliency-images", "1",
                  "--occlusion-images", "2");
    expect_code(&r, 0);
    run_free(&r);
}

/* 200,000 epochs: read in one pass (item by item lookups made this quadratic, minutes long). */
static void test_long_history_is_read(void **state)
{
    (void)state;
    const int n = 200000;
    const char *keys[] = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"};
    cJSON *h = cJSON_CreateObject();
    for (int k = 0; k < 5; k++) {
        cJSON *a = cJSON_AddArrayToObject(h, keys[k]);
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(k == 0 ? i + 1 : 1.0 / (i + 2)));
    }
    char *json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    char model[PATH_CAP], html[PATH_CAP];
    pathf(model, "%s/long_history.safetensors", g_base);
    pathf(html, "%s/long_history.html", g_base);
    save_model(model, "flatten dense:10:softmax", 0.0f, NULL, json);
    free(json);
    run_t r = FNN("report", model, "--data", g_data, "--out", html, "--saliency-images", "1",
                  "--occlusion-images", "2");
    expect_code(&r, 0);
    run_free(&r);
}

/* ---------------------------------------------------------------- report figures */

/* Checks that every figure the page refers to ("<dir>/<name>.png") exists and that no two
 * figures share a name; returns how many it found. */
static int check_page_figures(const char *html, const char *files_dir)
{
    char *page = read_all(html, NULL);
    assert_non_null(page);
    const char *base = strrchr(files_dir, '/') + 1;
    char needle[PATH_CAP], seen[256][128];
    int n = 0;
    pathf(needle, "%s/", base);
    for (const char *p = strstr(page, needle); p; p = strstr(p + 1, needle)) {
        const char *name = p + strlen(needle), *end = strstr(name, ".png\"");
        if (!end || end - name >= 128 || memchr(name, '"', (size_t)(end - name)))
            continue;
        char file[PATH_CAP];
        snprintf(seen[n], sizeof seen[n], "%.*s", (int)(end - name), name);
        if (!file_exists(pathf(file, "%s/%s.png", files_dir, seen[n])))
            fail_msg("the page shows %s, which does not exist", file);
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= !strcmp(seen[i], seen[n]);
        n += !dup && n < 255;
    }
    free(page);
    return n;
}

/* Model file names of 70 characters, two of which share their first 60: every figure of the
 * page exists under its own name, each model has as many as a short-named one. */
static void test_long_model_names_keep_every_figure(void **state)
{
    (void)state;
    char a[PATH_CAP], b[PATH_CAP], shortname[PATH_CAP], html[PATH_CAP], dir[PATH_CAP];
    const char *stem = "a_model_file_whose_name_runs_on_and_on_for_seventy_chars_";
    pathf(a, "%s/%s0123456789012.safetensors", g_base, stem);
    pathf(b, "%s/%s0123456789999.safetensors", g_base, stem);
    pathf(shortname, "%s/s.safetensors", g_base);
    save_model(a, "flatten dense:10:softmax", 0.0f, NULL, NULL);
    save_model(b, "flatten dense:10:softmax", 0.0f, NULL, NULL);
    save_model(shortname, "flatten dense:10:softmax", 0.0f, NULL, NULL);
    pathf(html, "%s/short.html", g_base);
    pathf(dir, "%s/short_files", g_base);
    run_t r = FNN("report", shortname, "--data", g_data, "--out", html, "--saliency-images", "2",
                  "--occlusion-images", "5");
    expect_code(&r, 0);
    run_free(&r);
    int one = check_page_figures(html, dir);
    assert_true(one > 5);

    pathf(html, "%s/long.html", g_base);
    pathf(dir, "%s/long_files", g_base);
    r = FNN("report", a, "--data", g_data, "--out", html, "--saliency-images", "2",
            "--occlusion-images", "5");
    expect_code(&r, 0);
    run_free(&r);
    assert_int_equal(check_page_figures(html, dir), one);

    pathf(html, "%s/two.html", g_base);
    pathf(dir, "%s/two_files", g_base);
    r = FNN("report", a, b, "--data", g_data, "--out", html, "--saliency-images", "2",
            "--occlusion-images", "5", "--json");
    expect_code(&r, 0);
    cJSON *doc = parse_json(r.out);
    int total = (int)get_number(doc, "figures");
    cJSON_Delete(doc);
    run_free(&r);
    /* both models' own figures, and the comparison's */
    int shown = check_page_figures(html, dir);
    assert_true(shown >= 2 * one);
    assert_int_equal(shown, total);
}

/* 62 (EMNIST) and 200 classes: the report draws every chart, scaled to the classes. */
static void test_many_classes_report(void **state)
{
    (void)state;
    const int ks[] = {62, 200};
    for (int i = 0; i < 2; i++) {
        char model[PATH_CAP], html[PATH_CAP], dir[PATH_CAP], spec[64];
        snprintf(spec, sizeof spec, "flatten dense:%d:softmax", ks[i]);
        pathf(model, "%s/classes%d.safetensors", g_base, ks[i]);
        pathf(html, "%s/classes%d.html", g_base, ks[i]);
        pathf(dir, "%s/classes%d_files", g_base, ks[i]);
        save_model(model, spec, 0.0f, NULL, NULL);
        run_t r = FNN("report", model, "--data", g_data, "--out", html, "--saliency-images", "1",
                      "--occlusion-images", "2", "--json");
        expect_code(&r, 0);
        cJSON *doc = parse_json(r.out);
        int total = (int)get_number(doc, "figures");
        cJSON_Delete(doc);
        run_free(&r);
        assert_true(total > 5);
        assert_int_equal(check_page_figures(html, dir), total);
    }
}

/* ---------------------------------------------------------------- options */

/* An empty --perturbation list, or one with an empty name, is a usage error (it crashed). */
static void test_empty_perturbation_lists(void **state)
{
    (void)state;
    const char *lists[] = {"", ",", "noise,", ",noise", "noise,,shift", "bogus"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        run_t r = FNN("robustness", g_model, "--data", g_data, "--perturbation", lists[i]);
        expect_failure(&r, 2, "--perturbation");
    }
    run_t r = FNN("robustness", g_model, "--data", g_data, "--perturbation", "noise,shift",
                  "--json");
    expect_code(&r, 0);
    run_free(&r);
}

/* Replaces the checkpoint's stored command-line options ("user" metadata) with user_json. */
static void rewrite_user(const char *path, const char *user_json)
{
    fnn_st_file f;
    fnn_error err = {0};
    if (fnn_st_read(path, &f, &err) != FNN_OK)
        fail_msg("fnn_st_read: %s", err.msg);
    const char **values = malloc((size_t)f.nmeta * sizeof *values);
    assert_non_null(values);
    for (int i = 0; i < f.nmeta; i++)
        values[i] = strcmp(f.meta_keys[i], "user") ? f.meta_values[i] : user_json;
    if (fnn_st_write(path, f.tensors, f.ntensors, (const char *const *)f.meta_keys, values,
                     f.nmeta, &err) != FNN_OK)
        fail_msg("fnn_st_write: %s", err.msg);
    free(values);
    fnn_st_free(&f);
}

/* Options stored in a checkpoint that no command line could give (a class listed twice, one
 * class, early stopping without a validation set): resuming fails with exit 1 naming the
 * checkpoint, not with a usage error. Asking for no more epochs than it holds stays one. */
static void test_invalid_stored_options_name_the_checkpoint(void **state)
{
    (void)state;
    char ck[PATH_CAP], out[PATH_CAP], user[3 * PATH_CAP];
    pathf(ck, "%s/opts.ckpt", g_base);
    pathf(out, "%s/opts.safetensors", g_base);
    const char *classes[] = {"[3, 3]", "[3]", "[]"};
    const char *val_split[] = {"0.2", "0.2", "0"};
    for (int i = 0; i < 3; i++) {
        run_t r = FNN("train", "--data", g_data, "--epochs", "1", "--checkpoint", ck, "--out",
                      out, "--quiet", "--no-test", "--early-stopping", "2");
        expect_code(&r, 0);
        run_free(&r);
        if (i == 0) { /* the sound checkpoint: the command line's mistake is a usage error */
            r = FNN("train", "--resume", ck, "--epochs", "1");
            expect_code(&r, 2);
            expect_contains(r.err, "stderr", "has 1 epoch done;");
            run_free(&r);
        }
        snprintf(user, sizeof user,
                 "{\"data\": \"%s\", \"limit\": 0, \"test_limit\": 0, \"val_split\": %s, "
                 "\"no_test\": true, \"classes\": %s, \"per_class\": 0, \"out\": \"%s\"}",
                 g_data, val_split[i], classes[i], out);
        rewrite_user(ck, user);
        r = FNN("train", "--resume", ck, "--epochs", "2");
        expect_code(&r, 1);
        expect_contains(r.err, "stderr", ck);
        expect_contains(r.err, "stderr", "stored");
        run_free(&r);
    }
}

/* Ctrl-C without --checkpoint: the message says nothing was saved and offers no --resume
 * command (it ended in a stray "--epochs N"). */
/* Whether every thread of process pid blocks sig but its signal thread (cli/signals.h, named
 * "fnn signals"), which waits for the signals in sigwait, which unblocks them while it waits:
 * NULL if so, with at least two such threads and that one; else what is wrong, in why.
 * (/proc/PID/task/TID/status, SigBlk: a mask in hex, bit sig - 1.) */
static const char *blocked_but_in_signal_thread(pid_t pid, int sig, char *why, size_t size)
{
    char dir[PATH_CAP];
    pathf(dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, size, "%s: %s", dir, strerror(errno));
        return why;
    }
    int others = 0, signal_threads = 0;
    const char *bad = NULL;
    for (struct dirent *e; !bad && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_CAP];
        char *name = read_all(pathf(path, "%s/%s/comm", dir, e->d_name), NULL);
        char *text = read_all(pathf(path, "%s/%s/status", dir, e->d_name), NULL);
        const char *line = text ? strstr(text, "\nSigBlk:") : NULL;
        if (name && line) { /* else the thread ended meanwhile */
            name[strcspn(name, "\n")] = '\0';
            unsigned long long mask = strtoull(line + 8, NULL, 16);
            if (!strcmp(name, "fnn signals")) {
                signal_threads++;
            } else if (!(mask >> (sig - 1) & 1)) {
                snprintf(why, size, "thread %s (%.40s) does not block signal %d (SigBlk %llx): a "
                         "handler could run on it inside a oneDNN kernel, whose stack pointer is "
                         "in the heap", e->d_name, name, sig, mask);
                bad = why;
            } else {
                others++;
            }
        }
        free(name);
        free(text);
    }
    closedir(d);
    if (!bad && (signal_threads != 1 || others < 2)) {
        snprintf(why, size, "%d signal threads and %d others, expected 1 and at least 2 (the "
                 "main thread and the team's second)", signal_threads, others);
        bad = why;
    }
    return bad;
}

static void test_interrupt_without_checkpoint(void **state)
{
    (void)state;
    char out[PATH_CAP], hist[PATH_CAP];
    pathf(out, "%s/int.safetensors", g_base);
    pathf(hist, "%s/int.history.csv", g_base);
    unsigned id;
    pid_t pid = spawn_fnn((const char *const[]){"train", "--data", g_data, "--epochs", "100000",
                                                "--threads", "2", "--out", out, NULL},
                          &id);
    /* The handler is in place once training prints its first epoch. */
    char so[PATH_CAP];
    pathf(so, "%s/run%u.stdout", g_base, id);
    struct timespec nap = {0, 5000000};
    for (int i = 0; i < 12000; i++) {
        char *text = read_all(so, NULL);
        int started = text && strstr(text, "Epoch 2/");
        free(text);
        if (started)
            break;
        nanosleep(&nap, NULL);
    }
    /* No thread takes the signal in a handler, which oneDNN's products cannot survive (oneDNN
     * issue #4845): every one blocks it but fnn's signal thread, which waits for it. */
    char why[PATH_CAP + 512];
    if (blocked_but_in_signal_thread(pid, SIGINT, why, sizeof why)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("fnn train: %s", why);
    }
    assert_int_equal(kill(pid, SIGINT), 0);
    run_t r = finish_run(pid, id, "fnn", "train", RUN_TIMEOUT_S);
    expect_code(&r, 130);
    expect_contains(r.err, "stderr", "stopping after this step");
    expect_contains(r.err, "stderr", "interrupted at epoch");
    expect_contains(r.err, "stderr", "nothing was saved");
    expect_not_contains(r.err, "stderr", "--epochs");
    expect_not_contains(r.err, "stderr", "--resume");
    run_free(&r);
    assert_false(file_exists(out));
}

/* Entries of dir, less "." and "..". */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

/* The entries of dir whose names hold ".tmp.": temporaries. */
static int temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* Runs fnn with argv, watching for the moment (polled every 0.1 ms) at which a signal is to
 * come; stops it there (SIGSTOP), and when the moment still holds, sends SIGTERM and lets it
 * go on. Returns 1 with *status once it has ended so; 0 when it ended before the moment, or
 * the moment had passed by the stop (it is killed then), for the caller to try again. */
static int terminate_at(const char *const *argv, int (*moment)(const char *const *paths),
                        const char *const *paths, int *status)
{
    unsigned id;
    pid_t pid = spawn_fnn(argv, &id);
    struct timespec nap = {0, 100000};
    int ended = 0, caught = 0;
    for (long i = 0; i < 600000 && !moment(paths); i++) { /* at most a minute */
        if ((ended = waitpid(pid, status, WNOHANG) == pid))
            break;
        nanosleep(&nap, NULL);
    }
    if (!ended) {
        kill(pid, SIGSTOP);
        caught = moment(paths);
        kill(pid, caught ? SIGTERM : SIGKILL);
        kill(pid, SIGCONT);
        waitpid(pid, status, 0);
    }
    char path[PATH_CAP];
    unlink(pathf(path, "%s/run%u.stdout", g_base, id));
    unlink(pathf(path, "%s/run%u.stderr", g_base, id));
    return caught;
}

/* paths: the parent of --out-dir, then --out-dir. Its temporary is there, not yet renamed. */
static int maps_staged(const char *const *paths)
{
    return entries(paths[0]) == 1 && !file_exists(paths[1]);
}

/* SIGTERM while explain's maps are staged (a temporary directory beside --out-dir, renamed into
 * place at the end): the signal thread removes the temporary and the process ends by the
 * signal, leaving nothing behind. */
static void test_signal_removes_staged_outputs(void **state)
{
    (void)state;
    char parent[PATH_CAP], out_dir[PATH_CAP];
    pathf(parent, "%s/signal", g_base);
    pathf(out_dir, "%s/maps", parent);
    for (int attempt = 0; attempt < 50; attempt++) {
        fresh_dir(parent);
        int status;
        if (!terminate_at((const char *const[]){"explain", g_model, "--data", g_data,
                                                "--out-dir", out_dir, NULL},
                          maps_staged, (const char *const[]){parent, out_dir}, &status))
            continue;
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM)
            fail_msg("fnn explain did not end by SIGTERM (status %#x)", (unsigned)status);
        if (entries(parent))
            fail_msg("SIGTERM left %d entries in %s: the staged maps were not removed",
                     entries(parent), parent);
        return;
    }
    fail_msg("fnn explain was never caught with its maps staged in 50 runs");
}

/* paths: the run's directory. A file is being written there. */
static int writing(const char *const *paths) { return temporaries(paths[0]) == 1; }

/* SIGTERM while train writes its checkpoint (a temporary beside it, renamed over it once
 * written): the signal thread removes the temporary (fnn_atomic_end) and the process ends by
 * the signal, leaving the checkpoint of the epoch before. The model is large (tens of MB with
 * Adam's moments) so that a write lasts long enough to be caught. */
static void test_signal_removes_file_being_written(void **state)
{
    (void)state;
    char dir[PATH_CAP], ck[PATH_CAP], out[PATH_CAP];
    pathf(dir, "%s/writing", g_base);
    pathf(ck, "%s/ck.ckpt", dir);
    pathf(out, "%s/m.safetensors", dir);
    for (int attempt = 0; attempt < 20; attempt++) {
        fresh_dir(dir);
        int status;
        if (!terminate_at((const char *const[]){"train", "--data", g_data, "--epochs", "1000",
                                                "--arch",
                                                "flatten dense:2048:relu dense:10:softmax",
                                                "--threads", "1", "--checkpoint", ck, "--out",
                                                out, NULL},
                          writing, (const char *const[]){dir}, &status))
            continue;
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM)
            fail_msg("fnn train did not end by SIGTERM (status %#x)", (unsigned)status);
        if (temporaries(dir))
            fail_msg("SIGTERM left %d temporaries in %s: the file being written was not removed",
                     temporaries(dir), dir);
        return;
    }
    fail_msg("fnn train was never caught writing its checkpoint in 20 runs");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inputs_must_be_regular_files),
        cmocka_unit_test(test_damaged_model_files_fail_cleanly),
        cmocka_unit_test(test_truncated_images_are_refused),
        cmocka_unit_test(test_nonfinite_outputs_fail_every_command),
        cmocka_unit_test(test_text_printable),
        cmocka_unit_test(test_class_names_are_filtered),
        cmocka_unit_test(test_bad_histories_are_refused),
        cmocka_unit_test(test_extreme_history_values_are_drawn),
        cmocka_unit_test(test_long_history_is_read),
        cmocka_unit_test(test_long_model_names_keep_every_figure),
        cmocka_unit_test(test_many_classes_report),
        cmocka_unit_test(test_empty_perturbation_lists),
        cmocka_unit_test(test_invalid_stored_options_name_the_checkpoint),
        cmocka_unit_test(test_interrupt_without_checkpoint),
        cmocka_unit_test(test_signal_removes_staged_outputs),
        cmocka_unit_test(test_signal_removes_file_being_written),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
