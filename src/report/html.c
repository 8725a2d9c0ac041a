/* The report page: one self-contained HTML file (figures as base64 PNG data URIs, no external
 * resources) plus every figure saved as PNG and SVG in a folder beside it. */
#define _POSIX_C_SOURCE 200809L

#include "report/report.h"
#include "util/atomic.h"
#include "util/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The page is built in memory, then written in one atomic step. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} page;

static void put_n(page *p, const char *s, size_t n)
{
    if (p->failed)
        return;
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 1 << 16;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *grown = realloc(p->s, cap);
        if (!grown) {
            p->failed = 1;
            return;
        }
        p->s = grown;
        p->cap = cap;
    }
    memcpy(p->s + p->len, s, n);
    p->len += n;
    p->s[p->len] = '\0';
}

static void put(page *p, const char *s) { put_n(p, s, strlen(s)); }

static void putf(page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(page *p, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf) { /* rare: long captions */
        char *big = malloc((size_t)n + 1);
        if (!big) {
            p->failed = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        put_n(p, big, (size_t)n);
        free(big);
    } else if (n > 0) {
        put_n(p, buf, (size_t)n);
    }
}

/* Text as HTML content or attribute value. */
static void put_text(page *p, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': put(p, "&amp;"); break;
        case '<': put(p, "&lt;"); break;
        case '>': put(p, "&gt;"); break;
        case '"': put(p, "&quot;"); break;
        default: put_n(p, s, 1);
        }
    }
}

/* RFC 4648 base64, for the data URIs; none of the project's libraries exports an encoder. */
static void put_base64(page *p, const unsigned char *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        out[0] = tab[v >> 18 & 63];
        out[1] = tab[v >> 12 & 63];
        out[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[3] = i + 2 < n ? tab[v & 63] : '=';
        put_n(p, out, 4);
    }
}

static void put_figure(page *p, const fnn_report_figure *f, const char *rel_dir)
{
    /* as wide as its image, so that the caption wraps under it and figures sit side by side */
    putf(p, "<figure id=\"%s\" style=\"max-width:%dpx\"><img alt=\"", f->name, f->fig.width + 2);
    put_text(p, f->title);
    putf(p, "\" width=\"%d\" height=\"%d\" src=\"data:image/png;base64,", f->fig.width,
         f->fig.height);
    put_base64(p, f->fig.png.data, f->fig.png.size);
    put(p, "\"><figcaption>");
    put_text(p, f->caption);
    put(p, " <span class=\"files\">(<a href=\"");
    put_text(p, rel_dir);
    putf(p, "/%s.png\">PNG</a>, <a href=\"", f->name);
    put_text(p, rel_dir);
    putf(p, "/%s.svg\">SVG</a>)</span></figcaption></figure>\n", f->name);
}

static const fnn_report_figure *find(const fnn_report_figures *f, const char *stem,
                                     const char *name)
{
    char full[128];
    snprintf(full, sizeof full, "%s_%s", stem, name);
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->items[i].name, full))
            return &f->items[i];
    return NULL;
}

static void classification_table(page *p, const fnn_report_model *r)
{
    const fnn_metrics *mt = &r->mt;
    put(p, "<table><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
           "<th>support</th></tr></thead><tbody>\n");
    for (int c = 0; c < r->k; c++) {
        put(p, "<tr><td>");
        put_text(p, r->names[c]);
        putf(p, "</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%lld</td></tr>\n",
             mt->precision[c], mt->recall[c], mt->f1[c], (long long)mt->support[c]);
    }
    putf(p, "<tr class=\"sum\"><td>accuracy</td><td></td><td></td><td>%.4f</td><td>%d</td></tr>\n"
            "<tr><td>macro avg</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>\n"
            "<tr><td>weighted avg</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>\n"
            "</tbody></table>\n",
         mt->accuracy, mt->n, mt->macro_precision, mt->macro_recall, mt->macro_f1, mt->n,
         mt->weighted_precision, mt->weighted_recall, mt->weighted_f1, mt->n);
}

static void robustness_table(page *p, const fnn_report_model *r)
{
    put(p, "<table><thead><tr><th>perturbation</th><th>level: test accuracy</th></tr></thead>"
           "<tbody>\n");
    for (int q = 0; q < FNN_PERTURB_COUNT; q++) {
        if (!r->nlevels[q])
            continue;
        putf(p, "<tr><td>%s</td><td>", fnn_perturbation_name((fnn_perturbation)q));
        for (int l = 0; l < r->nlevels[q]; l++)
            putf(p, "%s%g: %.4f", l ? " &middot; " : "", r->levels[q][l], r->robust[q][l]);
        put(p, "</td></tr>\n");
    }
    put(p, "</tbody></table>\n");
}

/* The page's sections: the figures (by name after the model's stem) and the table each shows. */
static const struct {
    const char *heading;
    const char *figures[3];
    void (*table)(page *p, const fnn_report_model *r);
} sections[] = {
    {"Training curves", {"loss", "accuracy"}, NULL},
    {"Confusion matrix", {"confusion", "confusion_normalised"}, NULL},
    {"Per-class precision, recall and F1", {"per_class"}, classification_table},
    {"Misclassifications", {"mistakes", "confused_pairs"}, NULL},
    {"Feature importance", {"saliency", "occlusion"}, NULL},
    {"Robustness", {"robustness"}, robustness_table},
    {"Calibration", {"reliability"}, NULL},
};

static void findings_list(page *p, const fnn_report_model *r)
{
    char *text = fnn_report_findings(r);
    if (!text) {
        p->failed = 1;
        return;
    }
    put(p, "<ul class=\"findings\">\n");
    for (char *line = text, *next; line && *line; line = next) {
        if ((next = strchr(line, '\n')))
            *next++ = '\0';
        /* "Heading: sentence" lines get their heading in bold */
        char *colon = strstr(line, ": ");
        put(p, "<li>");
        if (colon) {
            *colon = '\0';
            put(p, "<b>");
            put_text(p, line);
            put(p, ":</b> ");
            put_text(p, colon + 2);
        } else {
            put_text(p, line);
        }
        put(p, "</li>\n");
    }
    put(p, "</ul>\n");
    free(text);
}

static double last_or_nan(const double *v, int n) { return v && n ? v[n - 1] : NAN; }

static void comparison_table(page *p, const fnn_report_model *m, int n)
{
    put(p, "<table><thead><tr><th>model</th><th>architecture</th><th>parameters</th>"
           "<th>epochs</th><th>test accuracy</th><th>test loss</th><th>macro F1</th>"
           "<th>ECE</th><th>validation accuracy</th><th>train &minus; validation</th>"
           "</tr></thead><tbody>\n");
    for (int i = 0; i < n; i++) {
        double ta = last_or_nan(m[i].train_acc, m[i].epochs), va = last_or_nan(m[i].val_acc, m[i].epochs);
        putf(p, "<tr><td><a href=\"#model-%s\">%s</a></td><td><code>", m[i].stem, m[i].stem);
        put_text(p, m[i].arch);
        putf(p, "</code></td><td>%zu</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td>"
                "<td>%.4f</td>",
             m[i].nparams, m[i].epochs, m[i].mt.accuracy, m[i].mt.loss, m[i].mt.macro_f1,
             m[i].cal.nbins ? m[i].cal.ece : NAN);
        if (isnan(va))
            put(p, "<td>&ndash;</td><td>&ndash;</td></tr>\n");
        else
            putf(p, "<td>%.4f</td><td>%+.4f</td></tr>\n", va, ta - va);
    }
    put(p, "</tbody></table>\n");
}

static const char style[] =
    "body{font-family:'DejaVu Sans',sans-serif;max-width:1280px;margin:1em auto;padding:0 1em;"
    "color:#222}h1{margin-bottom:0}h2{border-bottom:2px solid #1f77b4;padding-top:.5em}"
    "figure{display:inline-block;vertical-align:top;margin:.5em;max-width:100%}"
    "figure img{max-width:100%;height:auto;border:1px solid #ddd}"
    "figcaption{font-size:.85em;color:#444}.files{color:#888}"
    "table{border-collapse:collapse;margin:.5em 0;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}tr.sum td{border-top:2px solid #888}"
    "code{font-size:.85em}ul.findings li{margin:.3em 0}nav a{margin-right:1em}";

/* Marks the body once every image has been checked, for tests in a headless browser. */
static const char check_script[] =
    "<script>\nwindow.addEventListener('load', function () {\n"
    "  var imgs = Array.prototype.slice.call(document.images);\n"
    "  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });\n"
    "  document.body.setAttribute('data-figures-loaded', String(imgs.length - bad.length));\n"
    "  document.body.setAttribute('data-figures-broken', String(bad.length));\n"
    "});\n</script>\n";

static void model_section(page *p, const fnn_report_model *r, const fnn_report_figures *figs,
                          const char *rel_dir)
{
    putf(p, "<section id=\"model-%s\">\n<h2>Model %s</h2>\n<p>File <code>", r->stem, r->stem);
    put_text(p, r->path);
    put(p, "</code>, architecture <code>");
    put_text(p, r->arch);
    putf(p, "</code>, %zu parameters, %d epochs of history. Test set: %d images.</p>\n",
         r->nparams, r->epochs, r->mt.n);
    put(p, "<h3>Findings</h3>\n");
    findings_list(p, r);
    for (size_t s = 0; s < sizeof sections / sizeof *sections; s++) {
        const fnn_report_figure *shown[3] = {0};
        int any = 0;
        for (int i = 0; i < 3 && sections[s].figures[i]; i++)
            any |= (shown[i] = find(figs, r->stem, sections[s].figures[i])) != NULL;
        if (!any && !sections[s].table)
            continue;
        putf(p, "<h3>%s</h3>\n", sections[s].heading);
        for (int i = 0; i < 3; i++)
            if (shown[i])
                put_figure(p, shown[i], rel_dir);
        if (sections[s].table)
            sections[s].table(p, r);
    }
    put(p, "</section>\n");
}

/* Writes f's figures into write_dir; their recorded paths name files_dir, where the caller puts
 * write_dir once the whole report is written. */
static fnn_status write_files(const char *files_dir, const char *write_dir, fnn_report_figures *f,
                              fnn_error *err)
{
    for (int i = 0; i < f->n; i++) {
        fnn_report_figure *x = &f->items[i];
        char png[sizeof x->png_path], svg[sizeof x->svg_path];
        int a = snprintf(x->png_path, sizeof x->png_path, "%s/%s.png", files_dir, x->name);
        int b = snprintf(x->svg_path, sizeof x->svg_path, "%s/%s.svg", files_dir, x->name);
        int c = snprintf(png, sizeof png, "%s/%s.png", write_dir, x->name);
        int d = snprintf(svg, sizeof svg, "%s/%s.svg", write_dir, x->name);
        if (a >= (int)sizeof x->png_path || b >= (int)sizeof x->svg_path ||
            c >= (int)sizeof png || d >= (int)sizeof svg)
            return fnn_fail(err, FNN_ERR_ARG, "report: figure path too long under %s", files_dir);
        fnn_status s = fnn_write_atomic(png, x->fig.png.data, x->fig.png.size, err);
        if (s == FNN_OK)
            s = fnn_write_atomic(svg, x->fig.svg.data, x->fig.svg.size, err);
        if (s != FNN_OK)
            return s;
    }
    return FNN_OK;
}

fnn_status fnn_report_write_html(const char *html_path, const char *files_dir,
                                 const char *write_dir, const fnn_report_model *models, int n,
                                 fnn_report_figures *per_model, fnn_report_figures *compare,
                                 fnn_error *err)
{
    struct stat st;
    if (stat(write_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fnn_fail(err, FNN_ERR_IO, "%s: not a folder to write the figures into", write_dir);
    fnn_status s = FNN_OK;
    for (int i = 0; i < n && s == FNN_OK; i++)
        s = write_files(files_dir, write_dir, &per_model[i], err);
    if (s == FNN_OK && compare)
        s = write_files(files_dir, write_dir, compare, err);
    if (s != FNN_OK)
        return s;

    const char *rel_dir = strrchr(files_dir, '/') ? strrchr(files_dir, '/') + 1 : files_dir;
    page p = {0};
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    put(&p, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    putf(&p, "<title>fnn report</title>\n<style>%s</style>\n</head>\n<body>\n<h1>fnn report</h1>\n",
         style);
    putf(&p, "<p>Written by fnn %s on %s for %d model%s, evaluated on %d test images. Every "
             "figure is also saved as PNG and SVG in <code>",
         FNN_VERSION, when, n, n == 1 ? "" : "s", n ? models[0].mt.n : 0);
    put_text(&p, rel_dir);
    put(&p, "/</code>.</p>\n<nav>");
    if (n > 1)
        put(&p, "<a href=\"#compare\">comparison</a>");
    for (int i = 0; i < n; i++)
        putf(&p, "<a href=\"#model-%s\">%s</a>", models[i].stem, models[i].stem);
    put(&p, "</nav>\n");
    if (n > 1) {
        put(&p, "<section id=\"compare\">\n<h2>Comparison</h2>\n");
        comparison_table(&p, models, n);
        for (int i = 0; compare && i < compare->n; i++)
            put_figure(&p, &compare->items[i], rel_dir);
        put(&p, "</section>\n");
    }
    for (int i = 0; i < n; i++)
        model_section(&p, &models[i], &per_model[i], rel_dir);
    put(&p, check_script);
    put(&p, "</body>\n</html>\n");
    if (p.failed)
        s = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory building the page", html_path);
    else
        s = fnn_write_atomic(html_path, p.s, p.len, err);
    free(p.s);
    return s;
}
