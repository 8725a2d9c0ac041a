/* Tests of `fnn report`: every chart kind decodes as a PNG and parses as an SVG of the stated
 * size, the findings follow the numbers they are given, and the CLI's page embeds every figure,
 * saves each beside it, and opens in headless Chromium with every image loaded. */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo/cairo.h>
#include <cjson/cJSON.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fnn.h"
#include "report/report.h"

#define REAL_DATA FNN_DEFAULT_DATA_DIR
#define PATH_CAP 1024
#define RUN_TIMEOUT_S 300
#define CHROMIUM "/usr/bin/chromium"
#define XMLLINT "/usr/bin/xmllint"

static const char *const fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static char g_base[PATH_CAP]; /* $FNN_TMP/test_report.work: everything this program writes */

#define CLI_RUN_DIR g_base
#include "cli_harness.h"

/* ---------------------------------------------------------------- PNG and SVG checks */

typedef struct {
    const unsigned char *data;
    size_t len, at;
} mem_reader;

static cairo_status_t read_mem(void *closure, unsigned char *out, unsigned int len)
{
    mem_reader *m = closure;
    if (m->at + len > m->len)
        return CAIRO_STATUS_READ_ERROR;
    memcpy(out, m->data + m->at, len);
    m->at += len;
    return CAIRO_STATUS_SUCCESS;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int width, height;
    int colours;      /* distinct RGB values */
    uint32_t *pixels; /* (height, width) 0xRRGGBB */
} png_info;

/* Decodes a PNG (a file when path is set, else memory); fails the test if cairo cannot. */
static png_info decode_png(const char *path, const unsigned char *data, size_t len)
{
    cairo_surface_t *s;
    mem_reader m = {data, len, 0};
    s = path ? cairo_image_surface_create_from_png(path)
             : cairo_image_surface_create_from_png_stream(read_mem, &m);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
        fail_msg("%s is not a readable PNG: %s", path ? path : "figure",
                 cairo_status_to_string(cairo_surface_status(s)));
    png_info p = {cairo_image_surface_get_width(s), cairo_image_surface_get_height(s), 0, NULL};
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *px = cairo_image_surface_get_data(s);
    size_t n = (size_t)p.width * p.height;
    p.pixels = malloc(n * sizeof *p.pixels);
    uint32_t *sorted = malloc(n * sizeof *sorted);
    assert_true(p.pixels && sorted);
    for (int y = 0; y < p.height; y++)
        for (int x = 0; x < p.width; x++) {
            uint32_t v;
            memcpy(&v, px + (size_t)y * stride + (size_t)x * 4, 4);
            p.pixels[(size_t)y * p.width + x] = sorted[(size_t)y * p.width + x] = v & 0xffffff;
        }
    qsort(sorted, n, sizeof *sorted, cmp_u32);
    for (size_t i = 0; i < n; i++)
        p.colours += i == 0 || sorted[i] != sorted[i - 1];
    free(sorted);
    cairo_surface_destroy(s);
    return p;
}

/* Whether some pixel lies within `tol` of rgb in every channel. */
static int has_colour(const png_info *p, uint32_t rgb, int tol)
{
    for (size_t i = 0; i < (size_t)p->width * p->height; i++) {
        uint32_t v = p->pixels[i];
        if (abs((int)(v >> 16) - (int)(rgb >> 16)) <= tol &&
            abs((int)((v >> 8) & 255) - (int)((rgb >> 8) & 255)) <= tol &&
            abs((int)(v & 255) - (int)(rgb & 255)) <= tol)
            return 1;
    }
    return 0;
}

/* The value of attribute `name` in the tag starting at tag (up to its '>'), as a number. */
static double attr_number(const char *tag, const char *name)
{
    const char *end = strchr(tag, '>');
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *at = strstr(tag, key);
    if (!at || (end && at > end))
        fail_msg("<svg> has no %s attribute: %.300s", name, tag);
    return strtod(at + strlen(key), NULL);
}

/* A small XML check: after the prolog, exactly one root element, <svg>, whose tags nest
 * properly; returns the root's width and height attributes. */
static void parse_svg(const char *text, double *width, double *height)
{
    const char *stack[256];
    size_t lens[256];
    int depth = 0, roots = 0;
    const char *root = NULL;
    for (const char *p = text; (p = strchr(p, '<'));) {
        if (!strncmp(p, "<?", 2) || !strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, p[1] == '?' ? "?>" : "-->");
            if (!e)
                fail_msg("SVG: unterminated %.4s", p);
            p = e + 2;
            continue;
        }
        if (!strncmp(p, "<!", 2)) {
            p = strchr(p, '>');
            assert_non_null(p);
            continue;
        }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " \t\r\n/>");
        if (!len)
            fail_msg("SVG: a tag without a name at offset %td", p - text);
        /* the end of the tag, skipping '>' inside quoted attribute values */
        const char *e = name + len;
        char quote = 0;
        for (; *e && (quote || *e != '>'); e++)
            if (*e == '"' || *e == '\'')
                quote = quote == *e ? 0 : (quote ? quote : *e);
        if (!*e)
            fail_msg("SVG: unterminated tag <%.*s", (int)len, name);
        int self = e[-1] == '/';
        if (closing) {
            if (!depth || lens[depth - 1] != len || strncmp(stack[depth - 1], name, len))
                fail_msg("SVG: </%.*s> does not close the open element", (int)len, name);
            depth--;
        } else {
            if (!depth) {
                roots++;
                root = p;
            }
            if (!self) {
                assert_true(depth < 256);
                stack[depth] = name;
                lens[depth++] = len;
            }
        }
        p = e + 1;
    }
    if (depth)
        fail_msg("SVG: %d elements left open", depth);
    if (roots != 1 || !root || strncmp(root, "<svg", 4) || (root[4] != ' ' && root[4] != '\n'))
        fail_msg("SVG: expected one <svg> root element, found %d roots (%.40s)", roots,
                 root ? root : "");
    *width = attr_number(root, "width");
    *height = attr_number(root, "height");
}

static void check_figure(const fnn_figure *f, int width, int height)
{
    assert_int_equal(f->width, width);
    assert_int_equal(f->height, height);
    png_info p = decode_png(NULL, f->png.data, f->png.size);
    assert_int_equal(p.width, width);
    assert_int_equal(p.height, height);
    if (p.colours < 3)
        fail_msg("the PNG has %d colour(s): nothing drawn", p.colours);
    free(p.pixels);
    char *svg = malloc(f->svg.size + 1);
    assert_non_null(svg);
    memcpy(svg, f->svg.data, f->svg.size);
    svg[f->svg.size] = '\0';
    double w, h;
    parse_svg(svg, &w, &h);
    assert_int_equal((int)w, width);
    assert_int_equal((int)h, height);
    free(svg);
}

/* ================================================================ charts */

static void test_line_chart(void **state)
{
    (void)state;
    double x[5] = {1, 2, 3, 4, 5}, a[5] = {0.9, 0.6, 0.5, 0.45, 0.4}, b[5] = {1, 0.8, NAN, 0.7, 0.75};
    fnn_series s[2] = {{"training", x, a, 5, 0, 0, 1}, {"validation", x, b, 5, 3, 1, 0}};
    fnn_line_chart c = {.width = 500, .height = 320, .title = "loss", .xlabel = "epoch",
                        .ylabel = "loss", .series = s, .nseries = 2};
    fnn_figure f;
    fnn_error err = {0};
    assert_int_equal(fnn_chart_line(&c, &f, &err), FNN_OK);
    check_figure(&f, 500, 320);
    /* both series are drawn in their palette colours (tab10 blue and red) */
    png_info p = decode_png(NULL, f.png.data, f.png.size);
    assert_true(has_colour(&p, 0x1f77b4, 8));
    assert_true(has_colour(&p, 0xd62728, 8));
    assert_false(has_colour(&p, 0x2ca02c, 8)); /* green is nobody's colour here */
    free(p.pixels);
    fnn_figure_free(&f);

    c.width = 0;
    assert_int_equal(fnn_chart_line(&c, &f, &err), FNN_ERR_ARG);
    expect_contains(err.msg, "error", "0x320");
}

static void test_heatmap_and_bars(void **state)
{
    (void)state;
    const char *names[3] = {"a", "b", "c"};
    double v[9] = {1, 0, 0, 0.5, 0.5, 0, 0, 0.1, 0.9};
    int64_t counts[9] = {10, 0, 0, 5, 5, 0, 0, 1, 9};
    fnn_heatmap h = {600, 500, "confusion", "predicted", "true", 3, 3, v, 0, 1, counts, 1,
                     names, names};
    fnn_figure f;
    fnn_error err = {0};
    assert_int_equal(fnn_chart_heatmap(&h, &f, &err), FNN_OK);
    check_figure(&f, 600, 500);
    fnn_figure_free(&f);

    const char *groups[2] = {"precision", "recall"};
    double bars[6] = {0.9, 0.5, 0.7, 0.8, 0.6, 0.95};
    fnn_bar_chart b = {420, 300, "per class", "score", 3, 2, names, groups, bars, 0, 1};
    assert_int_equal(fnn_chart_bars(&b, &f, &err), FNN_OK);
    check_figure(&f, 420, 300);
    png_info p = decode_png(NULL, f.png.data, f.png.size);
    assert_true(has_colour(&p, 0x1f77b4, 4) && has_colour(&p, 0xff7f0e, 4));
    free(p.pixels);
    fnn_figure_free(&f);
}

static void test_gallery(void **state)
{
    (void)state;
    float img[2][8 * 8] = {{0}};
    for (int i = 2; i < 6; i++)
        for (int j = 2; j < 6; j++)
            img[0][i * 8 + j] = 1.0f; /* a white square on black */
    for (int i = 0; i < 64; i++)
        img[1][i] = (float)i;
    fnn_tile t[3] = {{.pixels = img[0], .caption = "square\np = 1", .cmap = FNN_CMAP_GREY,
                      .vmax = 1},
                     {.pixels = img[1], .caption = "ramp", .cmap = FNN_CMAP_HEAT},
                     {.cmap = FNN_CMAP_GREY, .vmax = 1}};
    const char *rows[2] = {"first row", "second"};
    fnn_gallery g = {"tiles", 8, 8, 5, 2, 3, t, rows, 2};
    fnn_figure f;
    fnn_error err = {0};
    assert_int_equal(fnn_chart_gallery(&g, &f, &err), FNN_OK);
    assert_true(f.width > 2 * 8 * 5 && f.height > 2 * 8 * 5);
    check_figure(&f, f.width, f.height);
    png_info p = decode_png(NULL, f.png.data, f.png.size);
    /* the square's white and black, and the heat map's bright end */
    assert_true(has_colour(&p, 0x000000, 0) && has_colour(&p, 0xffffff, 0));
    assert_true(has_colour(&p, 0xfcffa4, 6));
    free(p.pixels);
    fnn_figure_free(&f);
    g.cols = 0;
    assert_int_equal(fnn_chart_gallery(&g, &f, &err), FNN_ERR_ARG);
}

/* Colour tiles: three planes make a colour picture; an overlay covers it where it is high and
 * leaves it as it is where it is at its lowest. */
static void test_gallery_colour(void **state)
{
    (void)state;
    enum { S = 8, HW = S * S };
    float rgb[3 * HW] = {0}, map[HW] = {0};
    for (int p = 0; p < HW; p++) {
        int left = p % S < S / 2, top = p / S < S / 2;
        rgb[p] = top && left ? 1.0f : 0.0f;           /* red at the top left */
        rgb[HW + p] = top && !left ? 1.0f : 0.0f;     /* green at the top right */
        rgb[2 * HW + p] = !top ? 1.0f : 0.0f;         /* blue below */
        map[p] = p == 0 ? 1.0f : 0.0f;                /* a peak over the red corner */
    }
    fnn_tile t[2] = {{.pixels = rgb, .caption = "colour", .cmap = FNN_CMAP_RGB, .vmax = 1},
                     {.pixels = rgb, .caption = "overlay", .cmap = FNN_CMAP_RGB, .vmax = 1,
                      .overlay = map}};
    fnn_gallery g = {"colour tiles", S, S, 5, 2, 2, t, NULL, 1};
    fnn_figure f;
    fnn_error err = {0};
    assert_int_equal(fnn_chart_gallery(&g, &f, &err), FNN_OK);
    check_figure(&f, f.width, f.height);
    png_info p = decode_png(NULL, f.png.data, f.png.size);
    assert_true(has_colour(&p, 0xff0000, 0) && has_colour(&p, 0x00ff00, 0) &&
                has_colour(&p, 0x0000ff, 0));
    /* The overlay's peak: 80% of the heat map's brightest colour (0xfcffa4) over red. */
    assert_true(has_colour(&p, 0xfdcc83, 2));
    free(p.pixels);
    fnn_figure_free(&f);
}

/* The galleries of a colour model's report show its images in colour, of any size: a test set
 * of red, green and blue images (12 rows, 10 columns), and a model too untrained to tell them
 * apart, so that every gallery has tiles. */
static void test_report_colour_galleries(void **state)
{
    (void)state;
    enum { H = 12, W = 10, N = 60, K = 3 };
    static const uint8_t colours[K][3] = {{220, 20, 20}, {20, 220, 20}, {20, 20, 220}};
    fnn_dataset test = {.n = N, .c = 3, .h = H, .w = W, .nclasses = K, .owns = 1};
    test.images = malloc((size_t)N * 3 * H * W);
    test.labels = malloc(N);
    assert_true(test.images && test.labels);
    for (int i = 0; i < N; i++) {
        test.labels[i] = (uint8_t)(i % K);
        for (int ch = 0; ch < 3; ch++)
            memset(test.images + ((size_t)i * 3 + ch) * H * W, colours[i % K][ch], H * W);
    }
    fnn_error err = {0};
    fnn_model *m = fnn_model_create("conv2d:2:3:relu flatten dense:3:softmax", 3, H, W, &err);
    assert_non_null(m);
    fnn_model_init(m, 7);
    char path[PATH_CAP];
    fnn_model_meta meta = {.class_names_json = "[\"red\", \"green\", \"blue\"]"};
    assert_int_equal(fnn_model_save(m, &meta, pathf(path, "%s/colour.safetensors", g_base),
                                    &err), FNN_OK);
    fnn_model_free(m);
    fnn_report_options o = {.threads = 1, .saliency_images = 5, .occlusion_images = 20,
                            .patch = 4, .stride = 2, .seed = 1};
    fnn_report_model r;
    if (fnn_report_collect(path, &test, &o, &r, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(r.c, 3);
    assert_string_equal(r.names[1], "green");
    /* The mean image of class 1 is the green of its images, plane by plane. */
    assert_float_equal(r.mean_image[(3 + 0) * H * W], 20 / 255.0, 1e-6);
    assert_float_equal(r.mean_image[(3 + 1) * H * W], 220 / 255.0, 1e-6);
    fnn_report_figures figs = {0};
    if (fnn_report_model_figures(&r, &figs, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    int galleries = 0;
    for (int i = 0; i < figs.n; i++) {
        const fnn_report_figure *f = &figs.items[i];
        if (strcmp(f->kind, "gallery"))
            continue;
        galleries++;
        check_figure(&f->fig, f->fig.width, f->fig.height);
        png_info p = decode_png(NULL, f->fig.png.data, f->fig.png.size);
        int red = has_colour(&p, 0xdc1414, 2), green = has_colour(&p, 0x14dc14, 2),
            blue = has_colour(&p, 0x1414dc, 2);
        /* The saliency gallery's mean images show all three classes' colours, the mistakes
         * those of the classes mistaken; the occlusion figure's mean of them all is grey. */
        int shown = strstr(f->name, "saliency") ? red && green && blue
                    : strstr(f->name, "occlusion") ? 1
                                                   : red || green || blue;
        if (!shown)
            fail_msg("%s: the images are not in their colours (red %d, green %d, blue %d)",
                     f->name, red, green, blue);
        free(p.pixels);
    }
    assert_true(galleries >= 3); /* mistakes, saliency, occlusion (and maybe the pairs) */
    fnn_report_figures_free(&figs);
    fnn_report_model_free(&r);
    fnn_dataset_free(&test);
}

/* --tta flip: the report's probabilities, predictions, metrics and calibration are those of
 * fnn_evaluate_with on the image and its mirror; none gives fnn_evaluate's. */
static void test_report_tta(void **state)
{
    enum { H = 6, W = 7, N = 50, K = 3 };
    fnn_dataset test = {.n = N, .c = 1, .h = H, .w = W, .nclasses = K, .owns = 1};
    test.images = malloc((size_t)N * H * W);
    test.labels = malloc(N);
    assert_true(test.images && test.labels);
    uint32_t seed = 5;
    for (int i = 0; i < N; i++) {
        test.labels[i] = (uint8_t)(i % K);
        for (int p = 0; p < H * W; p++) {
            seed = seed * 1664525u + 1013904223u;
            test.images[i * H * W + p] = (uint8_t)(seed >> 24);
        }
    }
    fnn_error err = {0};
    fnn_model *m = fnn_model_create("flatten dense:3:softmax", 1, H, W, &err);
    assert_non_null(m);
    fnn_model_init(m, 3);
    char path[PATH_CAP];
    assert_int_equal(fnn_model_save(m, NULL, pathf(path, "%s/tta.safetensors", g_base), &err),
                     FNN_OK);
    float want[2][N * K];
    int pred[N];
    for (int t = 0; t < 2; t++) {
        fnn_eval_options eo = {.threads = 1, .tta = (fnn_tta)t};
        fnn_metrics mt = {0};
        assert_int_equal(fnn_evaluate_with(m, &test, &eo, pred, want[t], &mt, &err), FNN_OK);
        fnn_report_options o = {.threads = 1, .tta = (fnn_tta)t, .saliency_images = 1,
                                .occlusion_images = 2, .patch = 2, .stride = 2, .seed = 1};
        fnn_report_model r;
        if (fnn_report_collect(path, &test, &o, &r, &err) != FNN_OK)
            fail_msg("%s", err.msg);
        assert_memory_equal(r.probs, want[t], sizeof want[t]);
        assert_memory_equal(r.pred, pred, sizeof pred);
        assert_true(r.mt.loss == mt.loss && r.mt.accuracy == mt.accuracy);
        fnn_calibration cal;
        assert_int_equal(fnn_calibration_compute(test.labels, want[t], N, K, r.cal.nbins, &cal,
                                                 &err), FNN_OK);
        assert_true(cal.ece == r.cal.ece);
        fnn_calibration_free(&cal);
        fnn_metrics_free(&mt);
        fnn_report_model_free(&r);
    }
    assert_memory_not_equal(want[0], want[1], sizeof want[0]);
    fnn_model_free(m);
    fnn_dataset_free(&test);
}

/* ================================================================ findings */

typedef struct {
    fnn_report_model r;
    int64_t confusion[100], support[10];
    double precision[10], recall[10], f1[10];
    double epoch[4], train_loss[4], train_acc[4], val_loss[4], val_acc[4];
    double levels[FNN_PERTURB_COUNT][3], acc[FNN_PERTURB_COUNT][3];
    double cal_conf[2], cal_acc[2];
    int64_t cal_count[2];
} synthetic;

/* A model on made-up numbers: 100 images per class, all right except in class `worst`, which
 * loses 40 to class `into`, and class 2, which loses 10 to class 4. Overfits when `overfit`. */
static void make_synthetic(synthetic *s, int worst, int into, int overfit)
{
    memset(s, 0, sizeof *s);
    fnn_report_model *r = &s->r;
    r->k = 10;
    r->names = (char **)fashion;
    r->arch = "flatten dense:128:relu dense:10:softmax";
    r->mt.nclasses = 10;
    r->mt.n = 1000;
    r->mt.confusion = s->confusion;
    r->mt.support = s->support;
    r->mt.precision = s->precision;
    r->mt.recall = s->recall;
    r->mt.f1 = s->f1;
    for (int i = 0; i < 10; i++) {
        s->support[i] = 100;
        s->confusion[i * 10 + i] = 100;
    }
    s->confusion[worst * 10 + worst] = 60;
    s->confusion[worst * 10 + into] = 40;
    if (worst != 2) {
        s->confusion[2 * 10 + 2] = 90;
        s->confusion[2 * 10 + 4] = 10;
    }
    int64_t right = 0;
    for (int c = 0; c < 10; c++) {
        int64_t col = 0;
        for (int i = 0; i < 10; i++)
            col += s->confusion[i * 10 + c];
        s->precision[c] = col ? (double)s->confusion[c * 11] / col : 0;
        s->recall[c] = s->confusion[c * 11] / 100.0;
        s->f1[c] = 2 * s->precision[c] * s->recall[c] / (s->precision[c] + s->recall[c]);
        right += s->confusion[c * 11];
    }
    r->mt.accuracy = right / 1000.0;
    r->mt.loss = 0.4;
    r->mt.macro_f1 = 0.9;
    r->epochs = 4;
    r->epoch = s->epoch, r->train_loss = s->train_loss, r->train_acc = s->train_acc;
    r->val_loss = s->val_loss, r->val_acc = s->val_acc;
    for (int e = 0; e < 4; e++) {
        s->epoch[e] = e + 1;
        s->train_acc[e] = overfit ? 0.9 + 0.03 * e : 0.80 + 0.01 * e;
        s->val_acc[e] = overfit ? 0.88 : 0.82 + 0.01 * e;
        s->train_loss[e] = 0.5 - 0.1 * e;
        s->val_loss[e] = overfit ? 0.35 + 0.05 * e : 0.5 - 0.03 * e;
    }
    for (int p = 0; p < FNN_PERTURB_COUNT; p++) {
        r->nlevels[p] = 3;
        r->levels[p] = s->levels[p];
        r->robust[p] = s->acc[p];
        for (int l = 0; l < 3; l++) {
            s->levels[p][l] = l;
            s->acc[p][l] = r->mt.accuracy - 0.02 * l;
        }
    }
    s->acc[FNN_PERTURB_ROTATE][2] = 0.31; /* the weakest axis */
    r->cal = (fnn_calibration){2, s->cal_conf, s->cal_acc, s->cal_count, 0.12};
    r->mean_confidence = r->mt.accuracy + 0.1;
}

/* Images larger than a gallery's tiles are scaled down to them: ten classes of 168x168 colour
 * images make a saliency gallery of 84-pixel tiles, not one 1,700 pixels wide. */
static void test_report_large_images_scaled_down(void **state)
{
    (void)state;
    enum { S = 168, HW = S * S };
    synthetic s;
    make_synthetic(&s, 3, 5, 0);
    fnn_report_model *r = &s.r;
    r->stem = "big";
    r->c = 3;
    r->h = r->w = S;
    float *mean = calloc((size_t)10 * 3 * HW, sizeof *mean), *occ = calloc(HW, sizeof *occ);
    float *maps = calloc((size_t)3 * 10 * HW, sizeof *maps);
    assert_true(mean && occ && maps);
    for (size_t i = 0; i < (size_t)10 * 3 * HW; i++)
        mean[i] = (float)(i % 7) / 7;
    for (size_t i = 0; i < (size_t)3 * 10 * HW; i++)
        maps[i] = (float)(i % 11);
    r->mean_image = mean;
    r->occlusion = occ;
    for (int m = 0; m < 3; m++)
        r->saliency[m] = maps + (size_t)m * 10 * HW;
    fnn_report_figures figs = {0};
    fnn_error err = {0};
    if (fnn_report_model_figures(r, &figs, &err) != FNN_OK)
        fail_msg("%s", err.msg);
    int found = 0;
    for (int i = 0; i < figs.n; i++) {
        const fnn_figure *f = &figs.items[i].fig;
        if (strcmp(figs.items[i].name, "big_saliency"))
            continue;
        found = 1;
        check_figure(f, f->width, f->height);
        if (f->width >= 10 * S)
            fail_msg("the saliency gallery is %d pixels wide: its tiles were not scaled down",
                     f->width);
    }
    assert_true(found);
    fnn_report_figures_free(&figs);
    free(mean);
    free(occ);
    free(maps);
}

static void test_findings_follow_numbers(void **state)
{
    (void)state;
    synthetic s;
    make_synthetic(&s, 6, 0, 1);
    char *text = fnn_report_findings(&s.r);
    assert_non_null(text);
    expect_contains(text, "findings", "worst is Shirt");
    expect_contains(text, "findings", "Shirt predicted as T-shirt/top (40 images");
    expect_contains(text, "findings", "over-fitting");
    expect_contains(text, "findings", "weakest axis is rotate");
    expect_contains(text, "findings", "over-confident");
    expect_contains(text, "findings", "mostly mixed up with T-shirt/top");
    assert_null(strstr(text, "under-fitting"));
    free(text);

    /* other numbers, other findings */
    make_synthetic(&s, 2, 4, 0);
    s.acc[FNN_PERTURB_ROTATE][2] = s.acc[FNN_PERTURB_ROTATE][1];
    s.acc[FNN_PERTURB_NOISE][2] = 0.2;
    s.r.cal.ece = 0.01;
    s.r.mean_confidence = s.r.mt.accuracy - 0.05;
    text = fnn_report_findings(&s.r);
    assert_non_null(text);
    expect_contains(text, "findings", "worst is Pullover");
    expect_contains(text, "findings", "Pullover predicted as Coat (40 images");
    expect_contains(text, "findings", "under-fitting");
    expect_contains(text, "findings", "weakest axis is noise");
    expect_contains(text, "findings", "well calibrated");
    expect_contains(text, "findings", "under-confident");
    assert_null(strstr(text, "Shirt"));
    assert_null(strstr(text, "over-fitting"));
    free(text);

    /* a flat validation curve is neither; two epochs cannot tell */
    for (int e = 0; e < 4; e++)
        s.val_acc[e] = 0.85, s.train_acc[e] = 0.84, s.val_loss[e] = 0.4 - 0.01 * e;
    text = fnn_report_findings(&s.r);
    expect_contains(text, "findings", "Neither over- nor under-fitting");
    free(text);
    s.r.epochs = 2;
    text = fnn_report_findings(&s.r);
    expect_contains(text, "findings", "2 epochs cannot show");
    free(text);
}

static void test_top_confusions_order(void **state)
{
    (void)state;
    synthetic s;
    make_synthetic(&s, 6, 0, 0);
    s.confusion[7 * 10 + 5] = 25;
    fnn_confusion_pair p[3];
    int n = fnn_report_top_confusions(&s.r.mt, p, 3);
    assert_int_equal(n, 3);
    assert_true(p[0].truth == 6 && p[0].pred == 0 && p[0].count == 40);
    assert_true(p[1].truth == 7 && p[1].pred == 5 && p[1].count == 25);
    assert_true(p[2].truth == 2 && p[2].pred == 4 && p[2].count == 10);
    assert_int_equal(fnn_report_top_confusions(&s.r.mt, p, 1), 1);
    assert_int_equal(p[0].count, 40);
}

/* ================================================================ the CLI */

/* Synthetic 28x28 images whose class is a bright row band, plus noise: learnable in an epoch.
 * Every 13th image carries another class's label, so that the model makes mistakes to show. */
static void write_split(const char *dir, const char *which, uint32_t n)
{
    char p[PATH_CAP];
    uint8_t *px = malloc((size_t)n * 784), *lb = malloc(n);
    assert_true(px && lb);
    uint32_t s = 12345u + n;
    for (uint32_t i = 0; i < n; i++) {
        int band = (int)(i % 10);
        lb[i] = (uint8_t)(i % 13 ? band : (band + 3) % 10);
        for (int j = 0; j < 784; j++) {
            s = s * 1664525u + 1013904223u;
            px[(size_t)i * 784 + j] = (uint8_t)((j / 28 / 3 == band ? 170 : 0) + (s >> 26));
        }
    }
    uint32_t dims[3] = {n, 28, 28};
    write_idx(pathf(p, "%s/%s-images-idx3-ubyte", dir, which), MAGIC_IMAGES, dims, 3, px,
              (size_t)n * 784, 0);
    write_idx(pathf(p, "%s/%s-labels-idx1-ubyte", dir, which), MAGIC_LABELS, &n, 1, lb, n, 0);
    free(px);
    free(lb);
}

static int real_data_present(void)
{
    struct stat st;
    return stat(REAL_DATA, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Two small models and reports about them, made once and shared by the CLI tests: on a slice of
 * the real data when it is installed, else on synthetic data. */
static struct {
    int done;
    char data[PATH_CAP], mlp[PATH_CAP], small[PATH_CAP];
    char html[PATH_CAP], html2[PATH_CAP];
    cJSON *one, *two; /* --json of the one-model and the two-model report */
} g;

static void make_model(const char *path, const char *arch)
{
    run_t r = FNN("train", "--data", g.data, "--limit", "2000", "--epochs", "2", "--threads", "2",
                  "--arch", arch, "--quiet", "--out", path);
    expect_code(&r, 0);
    run_free(&r);
}

static void setup_reports(void)
{
    if (g.done)
        return;
    if (real_data_present()) {
        pathf(g.data, "%s", REAL_DATA);
    } else {
        print_message("note: %s is absent; using synthetic data\n", REAL_DATA);
        pathf(g.data, "%s/syn", g_base);
        fresh_dir(g.data);
        write_split(g.data, "train", 1000);
        write_split(g.data, "t10k", 300);
    }
    pathf(g.mlp, "%s/study.safetensors", g_base);
    pathf(g.small, "%s/small.safetensors", g_base);
    make_model(g.mlp, "mlp");
    make_model(g.small, "flatten dense:16:relu dense:10:softmax");
    pathf(g.html, "%s/one/report.html", g_base);
    pathf(g.html2, "%s/two/report.html", g_base);
    char dir[PATH_CAP];
    fresh_dir(pathf(dir, "%s/one", g_base));
    fresh_dir(pathf(dir, "%s/two", g_base));
    run_t r = FNN("report", g.mlp, "--out", g.html, "--data", g.data, "--limit", "600",
                  "--saliency-images", "10", "--occlusion-images", "100", "--threads", "2",
                  "--json");
    expect_code(&r, 0);
    g.one = parse_json(r.out);
    run_free(&r);
    r = FNN("report", g.mlp, g.small, "--out", g.html2, "--data", g.data, "--limit", "300",
            "--saliency-images", "5", "--occlusion-images", "50", "--threads", "2", "--json");
    expect_code(&r, 0);
    g.two = parse_json(r.out);
    run_free(&r);
    g.done = 1;
}

/* Every figure listed in the JSON: PNG and SVG files of the size it states. */
static int check_listed_figures(const cJSON *list)
{
    int n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, list)
    {
        int w = (int)get(f, "width")->valuedouble, h = (int)get(f, "height")->valuedouble;
        const char *png = get(f, "png")->valuestring, *svg = get(f, "svg")->valuestring;
        png_info p = decode_png(png, NULL, 0);
        if (p.width != w || p.height != h)
            fail_msg("%s is %dx%d, the JSON says %dx%d", png, p.width, p.height, w, h);
        if (p.colours < 3)
            fail_msg("%s has %d colour(s): nothing drawn", png, p.colours);
        free(p.pixels);
        char *text = read_all(svg, NULL);
        if (!text)
            fail_msg("cannot read %s", svg);
        double sw, sh;
        parse_svg(text, &sw, &sh);
        if ((int)sw != w || (int)sh != h)
            fail_msg("%s is %gx%g, the JSON says %dx%d", svg, sw, sh, w, h);
        free(text);
        if (file_exists(XMLLINT)) {
            char *argv[] = {XMLLINT, "--noout", (char *)svg, NULL};
            run_t r = run_prog(XMLLINT, argv, 60);
            if (r.code)
                fail_msg("xmllint rejects %s:\n%.2000s", svg, r.err);
            run_free(&r);
        }
        n++;
    }
    return n;
}

static void test_report_figures_are_valid(void **state)
{
    (void)state;
    setup_reports();
    const cJSON *m = get(g.one, "models")->child;
    assert_non_null(m);
    int n = check_listed_figures(get(m, "figures"));
    /* curves (2), confusion (2), per-class bars, mistakes, pairs, saliency, occlusion,
     * robustness, reliability */
    assert_int_equal(n, 11);
    assert_int_equal((int)get(g.one, "figures")->valuedouble, n);
    const char *kinds[] = {"line", "heatmap", "bars", "gallery"};
    for (int k = 0; k < 4; k++) {
        int found = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, get(m, "figures")) found += !strcmp(get(f, "kind")->valuestring, kinds[k]);
        if (!found)
            fail_msg("no %s figure", kinds[k]);
    }
    int two = 0;
    cJSON_ArrayForEach(m, get(g.two, "models")) two += check_listed_figures(get(m, "figures"));
    assert_int_equal(two, 22);
    assert_true(check_listed_figures(get(g.two, "comparison_figures")) >= 4);
}

static int b64(int c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = c ? strchr(tab, c) : NULL;
    return at ? (int)(at - tab) : -1;
}

/* The page embeds each figure's PNG, byte for byte, and refers to nothing outside itself. */
static void test_report_page_embeds_figures(void **state)
{
    (void)state;
    setup_reports();
    char *html = read_all(g.html, NULL);
    assert_non_null(html);
    expect_contains(html, "page", "<!DOCTYPE html>");
    assert_null(strstr(html, "src=\"http"));
    assert_null(strstr(html, "<link"));
    const cJSON *f;
    int n = 0;
    cJSON_ArrayForEach(f, get(get(g.one, "models")->child, "figures"))
    {
        char anchor[256];
        snprintf(anchor, sizeof anchor, "<figure id=\"%s\"", get(f, "name")->valuestring);
        const char *at = strstr(html, anchor);
        if (!at)
            fail_msg("the page has no figure %s", get(f, "name")->valuestring);
        at = strstr(at, "src=\"data:image/png;base64,");
        assert_non_null(at);
        at += strlen("src=\"data:image/png;base64,");
        size_t len;
        char *png = read_all(get(f, "png")->valuestring, &len);
        assert_non_null(png);
        /* decode the data URI and compare with the saved file */
        size_t got = 0;
        unsigned acc = 0;
        int bits = 0;
        for (; *at != '"'; at++) {
            if (*at == '=')
                continue;
            int v = b64(*at);
            if (v < 0)
                fail_msg("bad base64 character '%c' in %s", *at, get(f, "name")->valuestring);
            acc = acc << 6 | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                if (got >= len || (unsigned char)png[got] != ((acc >> bits) & 255))
                    fail_msg("embedded %s differs from the saved PNG at byte %zu",
                             get(f, "name")->valuestring, got);
                got++;
            }
        }
        assert_int_equal(got, len);
        free(png);
        n++;
    }
    int imgs = 0;
    for (const char *p = html; (p = strstr(p, "<img")); p++)
        imgs++;
    assert_int_equal(imgs, n);
    expect_contains(html, "page", "<table>");
    free(html);

    char *two = read_all(g.html2, NULL);
    assert_non_null(two);
    expect_contains(two, "two-model page", "id=\"compare\"");
    expect_contains(two, "two-model page", "href=\"#model-study\"");
    expect_contains(two, "two-model page", "href=\"#model-small\"");
    free(two);
}

/* The findings name the classes the JSON's own numbers make best and worst. */
static void test_report_findings_match_json(void **state)
{
    (void)state;
    setup_reports();
    const cJSON *m = get(g.one, "models")->child, *c;
    const char *best = NULL, *worst = NULL;
    double bf = -1, wf = 2;
    cJSON_ArrayForEach(c, get(get(m, "test"), "classes"))
    {
        double f1 = get(c, "f1")->valuedouble;
        if (f1 > bf)
            bf = f1, best = get(c, "label")->valuestring;
        if (f1 < wf)
            wf = f1, worst = get(c, "label")->valuestring;
    }
    assert_true(best && worst);
    char *all = cJSON_PrintUnformatted(get(m, "findings"));
    char want[160];
    snprintf(want, sizeof want, "best is %s (F1 %.3f", best, bf);
    expect_contains(all, "findings", want);
    snprintf(want, sizeof want, "worst is %s (F1 %.3f", worst, wf);
    expect_contains(all, "findings", want);
    snprintf(want, sizeof want, "test accuracy %.1f%%",
             100 * get(get(m, "test"), "accuracy")->valuedouble);
    expect_contains(all, "findings", want);
    snprintf(want, sizeof want, "expected calibration error %.3f",
             get(get(m, "calibration"), "ece")->valuedouble);
    expect_contains(all, "findings", want);
    free(all);
}

static void test_report_errors(void **state)
{
    (void)state;
    setup_reports();
    char dir[PATH_CAP], out[PATH_CAP], missing[PATH_CAP], files[PATH_CAP];
    fresh_dir(pathf(dir, "%s/errors", g_base));
    pathf(out, "%s/r.html", dir);
    pathf(files, "%s/r_files", dir);
    pathf(missing, "%s/no_such.safetensors", dir);

    run_t r = FNN("report", g.mlp, missing, "--out", out, "--data", g.data, "--limit", "50",
                  "--saliency-images", "2", "--occlusion-images", "10");
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", missing);
    assert_false(file_exists(out));
    assert_false(file_exists(files));
    run_free(&r);

    r = FNN("report", "--out", out);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "MODEL");
    run_free(&r);

    r = FNN("report", g.mlp, "--limit", "0", "--out", out);
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--limit");
    run_free(&r);

    r = FNN("report", g.mlp, "--bogus");
    expect_code(&r, 2);
    expect_contains(r.err, "stderr", "--bogus");
    run_free(&r);

    pathf(out, "%s/no/such/dir/r.html", dir);
    r = FNN("report", g.mlp, "--out", out, "--data", g.data);
    expect_code(&r, 1);
    expect_contains(r.err, "stderr", out);
    run_free(&r);

    r = FNN("report", "--help");
    expect_code(&r, 0);
    expect_contains(r.out, "help", "--json");
    expect_contains(r.out, "help", "--threads");
    run_free(&r);
}

/* The page in headless Chromium: no console message, every image decoded (the page's own
 * script counts them on load), and a screenshot with plenty of colours. */
static void test_report_in_chromium(void **state)
{
    (void)state;
    if (!file_exists(CHROMIUM)) {
        print_message("skipped: %s is absent (Debian package chromium)\n", CHROMIUM);
        skip();
    }
    setup_reports();
    char profile[PATH_CAP], url[PATH_CAP + 8], shot[PATH_CAP], shot_arg[PATH_CAP + 16],
        profile_arg[PATH_CAP + 20];
    fresh_dir(pathf(profile, "%s/chromium-profile", g_base));
    pathf(profile_arg, "--user-data-dir=%s", profile);
    pathf(url, "file://%s", g.html2);
    pathf(shot, "%s/screenshot.png", g_base);
    pathf(shot_arg, "--screenshot=%s", shot);
    char *dump[] = {CHROMIUM,        "--headless",          "--no-sandbox", "--disable-gpu",
                    profile_arg,     "--enable-logging=stderr", "--v=0",   "--dump-dom",
                    url,             NULL};
    run_t r = run_prog(CHROMIUM, dump, RUN_TIMEOUT_S);
    expect_code(&r, 0);
    int figures = (int)get(g.two, "figures")->valuedouble;
    char want[64];
    snprintf(want, sizeof want, "data-figures-loaded=\"%d\"", figures);
    expect_contains(r.out, "the DOM after load", want);
    expect_contains(r.out, "the DOM after load", "data-figures-broken=\"0\"");
    if (strstr(r.err, "CONSOLE"))
        fail_msg("the page logged to the console:\n%.3000s", strstr(r.err, "CONSOLE"));
    run_free(&r);

    unlink(shot);
    char *cap[] = {CHROMIUM,    "--headless", "--no-sandbox", "--disable-gpu", profile_arg,
                   "--hide-scrollbars", "--window-size=1200,3000", shot_arg, url, NULL};
    r = run_prog(CHROMIUM, cap, RUN_TIMEOUT_S);
    expect_code(&r, 0);
    run_free(&r);
    png_info p = decode_png(shot, NULL, 0);
    assert_int_equal(p.width, 1200);
    assert_int_equal(p.height, 3000);
    if (p.colours < 200)
        fail_msg("the screenshot has only %d colours: the page looks blank", p.colours);
    free(p.pixels);
}

static int group_setup(void **state)
{
    (void)state;
    if (work_dir(g_base, sizeof g_base, "test_report") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cJSON_Delete(g.one);
    cJSON_Delete(g.two);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_chart),
        cmocka_unit_test(test_heatmap_and_bars),
        cmocka_unit_test(test_gallery),
        cmocka_unit_test(test_gallery_colour),
        cmocka_unit_test(test_report_colour_galleries),
        cmocka_unit_test(test_report_tta),
        cmocka_unit_test(test_report_large_images_scaled_down),
        cmocka_unit_test(test_findings_follow_numbers),
        cmocka_unit_test(test_top_confusions_order),
        cmocka_unit_test(test_report_figures_are_valid),
        cmocka_unit_test(test_report_page_embeds_figures),
        cmocka_unit_test(test_report_findings_match_json),
        cmocka_unit_test(test_report_errors),
        cmocka_unit_test(test_report_in_chromium),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
