/* The report's charts, drawn once per cairo surface: an image surface for the PNG and an SVG
 * surface for the vector copy, so that both files show the same drawing. */
#include "report/chart.h"
#include "util/error.h"

#include <cairo/cairo-svg.h>
#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT "DejaVu Sans"

typedef void (*draw_fn)(cairo_t *cr, const void *spec, int width, int height);

void fnn_figure_free(fnn_figure *fig)
{
    free(fig->png.data);
    free(fig->svg.data);
    memset(fig, 0, sizeof *fig);
}

static cairo_status_t append(void *closure, const unsigned char *data, unsigned int len)
{
    fnn_bytes *b = closure;
    if (b->size + len > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->size + len)
            cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown)
            return CAIRO_STATUS_NO_MEMORY;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->size, data, len);
    b->size += len;
    return CAIRO_STATUS_SUCCESS;
}

/* Draws on a white page; returns the first error of the context or the surface. */
static cairo_status_t draw_page(cairo_surface_t *s, draw_fn draw, const void *spec, int width,
                                int height)
{
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    draw(cr, spec, width, height);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    return st != CAIRO_STATUS_SUCCESS ? st : cairo_surface_status(s);
}

static fnn_status render(fnn_figure *out, int width, int height, draw_fn draw, const void *spec,
                         const char *what, fnn_error *err)
{
    memset(out, 0, sizeof *out);
    if (width < 16 || height < 16 || width > 8192 || height > 8192)
        return fnn_fail(err, FNN_ERR_ARG, "%s chart: size %dx%d is outside 16..8192", what, width,
                        height);
    out->width = width;
    out->height = height;
    /* no alpha channel: the page is opaque, and the PNG smaller */
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_status_t st = draw_page(img, draw, spec, width, height);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png_stream(img, append, &out->png);
    cairo_surface_destroy(img);
    if (st == CAIRO_STATUS_SUCCESS) {
        cairo_surface_t *svg = cairo_svg_surface_create_for_stream(append, &out->svg, width, height);
        cairo_svg_surface_set_document_unit(svg, CAIRO_SVG_UNIT_PX);
        st = draw_page(svg, draw, spec, width, height);
        cairo_surface_finish(svg);
        if (st == CAIRO_STATUS_SUCCESS)
            st = cairo_surface_status(svg);
        cairo_surface_destroy(svg);
    }
    if (st != CAIRO_STATUS_SUCCESS) {
        fnn_figure_free(out);
        return fnn_fail(err, st == CAIRO_STATUS_NO_MEMORY ? FNN_ERR_NOMEM : FNN_ERR_IO,
                        "%s chart: cairo failed: %s", what, cairo_status_to_string(st));
    }
    return FNN_OK;
}

/* ---------------------------------------------------------------- colours and text */

typedef struct { double r, g, b; } rgb;

/* matplotlib's tab10, so the curves look like the study's figures. */
static rgb palette(int i)
{
    static const unsigned hex[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    unsigned h = i < 0 ? 0x888888 : hex[i % 10];
    return (rgb){(h >> 16) / 255.0, ((h >> 8) & 255) / 255.0, (h & 255) / 255.0};
}

/* Piecewise-linear colour map through evenly spaced stops, t in [0, 1]. */
static rgb ramp(const unsigned *stops, int n, double t)
{
    t = isnan(t) ? 0 : t < 0 ? 0 : t > 1 ? 1 : t;
    double pos = t * (n - 1);
    int i = (int)pos < n - 1 ? (int)pos : n - 2;
    double f = pos - i;
    rgb a = {(stops[i] >> 16) / 255.0, ((stops[i] >> 8) & 255) / 255.0, (stops[i] & 255) / 255.0};
    rgb b = {(stops[i + 1] >> 16) / 255.0, ((stops[i + 1] >> 8) & 255) / 255.0,
             (stops[i + 1] & 255) / 255.0};
    return (rgb){a.r + f * (b.r - a.r), a.g + f * (b.g - a.g), a.b + f * (b.b - a.b)};
}

/* Perceptually ordered maps: viridis-like for matrices (light = high), inferno-like for maps. */
static rgb cmap_matrix(double t)
{
    static const unsigned s[] = {0xf7fbff, 0xc6dbef, 0x6baed6, 0x2171b5, 0x08306b};
    return ramp(s, 5, t);
}

static rgb cmap_heat(double t)
{
    static const unsigned s[] = {0x000004, 0x420a68, 0x932667, 0xdd513a, 0xfca50a, 0xfcffa4};
    return ramp(s, 6, t);
}

static void set_rgb(cairo_t *cr, rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

enum { ALIGN_LEFT, ALIGN_CENTER, ALIGN_RIGHT };

/* Draws text with its baseline-centre at y's middle, aligned on x; rotated by angle. */
static void text_at(cairo_t *cr, double x, double y, const char *s, double size, int align,
                    double angle)
{
    if (!s)
        return;
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    double dx = align == ALIGN_LEFT ? 0 : align == ALIGN_CENTER ? -e.x_advance / 2 : -e.x_advance;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, dx, size * 0.35);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static double text_width(cairo_t *cr, const char *s, double size)
{
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

static void title_at(cairo_t *cr, const char *title, int width)
{
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    text_at(cr, width / 2.0, 16, title, 14, ALIGN_CENTER, 0);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
}

/* ---------------------------------------------------------------- axes */

/* "Nice" tick spacing: 1, 2 or 5 times a power of ten, about `want` ticks over [lo, hi]. */
static double tick_step(double lo, double hi, int want)
{
    double raw = (hi - lo) / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return mag * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

/* The ticks first, first + step, ... up to hi, counted rather than stepped to: at values past
 * 2^53 times the step (a stored loss of 1e17), v += step leaves v unchanged and a stepping loop
 * never ends. At most MAX_TICKS; 0 for a step that is not a positive number. */
#define MAX_TICKS 64
static int tick_count(double lo, double hi, double step, double *first)
{
    if (!(step > 0) || !isfinite(step) || !isfinite(lo) || !isfinite(hi))
        return 0;
    *first = ceil(lo / step) * step;
    double n = floor((hi - *first) / step + 1e-6) + 1;
    return !(n >= 1) ? 0 : n > MAX_TICKS ? MAX_TICKS : (int)n;
}

typedef struct {
    double x0, y0, x1, y1;    /* plot area in device units, y0 at the top */
    double xlo, xhi, ylo, yhi;
} axes;

static double ax_x(const axes *a, double x) { return a->x0 + (x - a->xlo) / (a->xhi - a->xlo) * (a->x1 - a->x0); }
static double ax_y(const axes *a, double y) { return a->y1 - (y - a->ylo) / (a->yhi - a->ylo) * (a->y1 - a->y0); }

static void fit_range(double *lo, double *hi)
{
    if (!(*lo < *hi)) { /* empty or flat data: a unit range around it */
        double c = isfinite(*lo) ? *lo : 0;
        *lo = c - 0.5;
        *hi = c + 0.5;
        return;
    }
    double pad = (*hi - *lo) * 0.05;
    *lo -= pad;
    *hi += pad;
}

/* Frame, grid, ticks and axis labels. xticks: 1 for integer x ticks, 0 for any, -1 for none. */
static void draw_axes(cairo_t *cr, const axes *a, const char *xlabel, const char *ylabel,
                      int xticks)
{
    char buf[32];
    cairo_set_line_width(cr, 1);
    double ys = tick_step(a->ylo, a->yhi, 6), first = 0;
    int nt = tick_count(a->ylo, a->yhi, ys, &first);
    for (int t = 0; t < nt; t++) {
        double v = first + t * ys, y = ax_y(a, v);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, a->x0, y);
        cairo_line_to(cr, a->x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(buf, sizeof buf, "%g", fabs(v) < ys * 1e-6 ? 0.0 : v);
        text_at(cr, a->x0 - 6, y, buf, 10, ALIGN_RIGHT, 0);
    }
    if (xticks >= 0) {
        double xs = tick_step(a->xlo, a->xhi, 7);
        if (xticks && xs < 1)
            xs = 1; /* integer axes (epochs) */
        nt = tick_count(a->xlo, a->xhi, xs, &first);
        for (int t = 0; t < nt; t++) {
            double v = first + t * xs;
            snprintf(buf, sizeof buf, "%g", fabs(v) < xs * 1e-6 ? 0.0 : v);
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            text_at(cr, ax_x(a, v), a->y1 + 12, buf, 10, ALIGN_CENTER, 0);
        }
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, a->x0, a->y0, a->x1 - a->x0, a->y1 - a->y0);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, (a->x0 + a->x1) / 2, a->y1 + 30, xlabel, 11, ALIGN_CENTER, 0);
    text_at(cr, a->x0 - 46, (a->y0 + a->y1) / 2, ylabel, 11, ALIGN_CENTER, -M_PI / 2);
}

/* A legend box in the plot's top or bottom right corner: a line sample and a label per entry
 * (entries without a label are left out). */
static void draw_legend(cairo_t *cr, const axes *a, const char *const *labels, const rgb *colors,
                        const int *dashed, int n, int bottom)
{
    double w = 0, row = 16;
    int shown = 0;
    for (int i = 0; i < n; i++)
        if (labels[i]) {
            double tw = text_width(cr, labels[i], 10);
            w = tw > w ? tw : w;
            shown++;
        }
    if (!shown)
        return;
    double bw = w + 42, bh = shown * row + 8;
    double x = a->x1 - bw - 8, y = bottom ? a->y1 - bh - 8 : a->y0 + 8;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, x, y, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (!labels[i])
            continue;
        double ly = y + 4 + row * (r++ + 0.5);
        set_rgb(cr, colors[i]);
        cairo_set_line_width(cr, 2);
        double d[] = {5, 3};
        cairo_set_dash(cr, d, dashed[i] ? 2 : 0, 0);
        cairo_move_to(cr, x + 6, ly);
        cairo_line_to(cr, x + 30, ly);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, x + 36, ly, labels[i], 10, ALIGN_LEFT, 0);
    }
}

/* ---------------------------------------------------------------- line chart */

static void draw_line(cairo_t *cr, const void *spec, int width, int height)
{
    const fnn_line_chart *c = spec;
    axes a = {64, 30, width - 16, height - 46, c->xmin, c->xmax, c->ymin, c->ymax};
    if (!(c->xmin < c->xmax) || !(c->ymin < c->ymax)) {
        double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
        for (int s = 0; s < c->nseries; s++)
            for (int i = 0; i < c->series[s].n; i++) {
                double x = c->series[s].x[i], y = c->series[s].y[i];
                if (!isfinite(x) || !isfinite(y))
                    continue;
                xlo = x < xlo ? x : xlo;
                xhi = x > xhi ? x : xhi;
                ylo = y < ylo ? y : ylo;
                yhi = y > yhi ? y : yhi;
            }
        if (!(c->xmin < c->xmax)) {
            fit_range(&xlo, &xhi);
            a.xlo = xlo, a.xhi = xhi;
        }
        if (!(c->ymin < c->ymax)) {
            fit_range(&ylo, &yhi);
            a.ylo = ylo, a.yhi = yhi;
        }
    }
    title_at(cr, c->title, width);
    int integer_x = 1;
    for (int s = 0; s < c->nseries; s++)
        for (int i = 0; i < c->series[s].n; i++)
            integer_x &= c->series[s].x[i] == floor(c->series[s].x[i]);
    draw_axes(cr, &a, c->xlabel, c->ylabel, integer_x);
    cairo_save(cr);
    cairo_rectangle(cr, a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
    cairo_clip(cr);
    for (int s = 0; s < c->nseries; s++) {
        const fnn_series *se = &c->series[s];
        set_rgb(cr, palette(se->color));
        cairo_set_line_width(cr, 2);
        double d[] = {6, 4};
        cairo_set_dash(cr, d, se->dashed ? 2 : 0, 0);
        int pen = 0;
        for (int i = 0; i < se->n; i++) {
            if (!isfinite(se->y[i]) || !isfinite(se->x[i])) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, ax_x(&a, se->x[i]), ax_y(&a, se->y[i]));
            else
                cairo_move_to(cr, ax_x(&a, se->x[i]), ax_y(&a, se->y[i]));
            pen = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (se->markers)
            for (int i = 0; i < se->n; i++)
                if (isfinite(se->y[i]) && isfinite(se->x[i])) {
                    cairo_arc(cr, ax_x(&a, se->x[i]), ax_y(&a, se->y[i]), 3.5, 0, 2 * M_PI);
                    cairo_fill(cr);
                }
    }
    cairo_restore(cr);
    const char *labels[64];
    rgb colors[64];
    int dashed[64], n = c->nseries < 64 ? c->nseries : 64;
    double last = 0, first = 0;
    for (int s = 0; s < n; s++) {
        labels[s] = c->series[s].label;
        colors[s] = palette(c->series[s].color);
        dashed[s] = c->series[s].dashed;
        /* curves ending high leave the bottom corner free */
        const double *y = c->series[s].y;
        int lo = 0, hi = c->series[s].n - 1;
        while (lo <= hi && !isfinite(y[lo]))
            lo++;
        while (hi >= lo && !isfinite(y[hi]))
            hi--;
        if (lo <= hi) {
            first += y[lo];
            last += y[hi];
        }
    }
    draw_legend(cr, &a, labels, colors, dashed, n, last > first);
}

fnn_status fnn_chart_line(const fnn_line_chart *c, fnn_figure *out, fnn_error *err)
{
    return render(out, c->width, c->height, draw_line, c, "line", err);
}

/* ---------------------------------------------------------------- heatmap */

static void draw_heatmap(cairo_t *cr, const void *spec, int width, int height)
{
    const fnn_heatmap *c = spec;
    double names_w = 0;
    for (int i = 0; i < c->rows; i++) {
        double tw = c->row_names ? text_width(cr, c->row_names[i], 11) : 20;
        names_w = tw > names_w ? tw : names_w;
    }
    double colnames_h = 0;
    for (int j = 0; j < c->cols; j++) {
        double tw = c->col_names ? text_width(cr, c->col_names[j], 11) : 20;
        colnames_h = tw > colnames_h ? tw : colnames_h;
    }
    double x0 = 36 + names_w + 8, y0 = 30, bar_w = 70;
    double cw = (width - x0 - bar_w - 10) / c->cols, ch = (height - y0 - colnames_h - 40) / c->rows;
    double cell = cw < ch ? cw : ch;
    title_at(cr, c->title, width);
    double range = c->vmax - c->vmin;
    for (int i = 0; i < c->rows; i++)
        for (int j = 0; j < c->cols; j++) {
            double v = c->values[(size_t)i * c->cols + j], t = range > 0 ? (v - c->vmin) / range : 0;
            rgb col = cmap_matrix(t);
            set_rgb(cr, col);
            double x = x0 + j * cell, y = y0 + i * cell;
            cairo_rectangle(cr, x, y, cell, cell);
            cairo_fill(cr);
            double lum = 0.299 * col.r + 0.587 * col.g + 0.114 * col.b;
            cairo_set_source_rgb(cr, lum < 0.5 ? 1 : 0, lum < 0.5 ? 1 : 0, lum < 0.5 ? 1 : 0);
            char top[32], bottom[32];
            double fs = cell / 4.2 < 11 ? cell / 4.2 : 11;
            if (fs < 5) /* unreadable: cells this small (many classes) show their colour only */
                continue;
            if (c->counts)
                snprintf(bottom, sizeof bottom, "%lld", (long long)c->counts[(size_t)i * c->cols + j]);
            if (c->show_values) {
                snprintf(top, sizeof top, "%.2f", v);
                text_at(cr, x + cell / 2, y + cell * (c->counts ? 0.36 : 0.5), top, fs,
                        ALIGN_CENTER, 0);
                if (c->counts)
                    text_at(cr, x + cell / 2, y + cell * 0.68, bottom, fs * 0.85, ALIGN_CENTER, 0);
            } else if (c->counts) {
                text_at(cr, x + cell / 2, y + cell / 2, bottom, fs, ALIGN_CENTER, 0);
            }
        }
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int i = 0; i < c->rows; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        text_at(cr, x0 - 6, y0 + (i + 0.5) * cell, c->row_names ? c->row_names[i] : idx, 11,
                ALIGN_RIGHT, 0);
    }
    for (int j = 0; j < c->cols; j++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", j);
        text_at(cr, x0 + (j + 0.5) * cell, y0 + c->rows * cell + 6,
                c->col_names ? c->col_names[j] : idx, 11, ALIGN_RIGHT, -M_PI / 2);
    }
    text_at(cr, x0 + c->cols * cell / 2, y0 + c->rows * cell + colnames_h + 24, c->xlabel, 12,
            ALIGN_CENTER, 0);
    text_at(cr, 14, y0 + c->rows * cell / 2, c->ylabel, 12, ALIGN_CENTER, -M_PI / 2);
    /* the colour bar, so the scale is read, not guessed */
    double bx = x0 + c->cols * cell + 16, bh = c->rows * cell;
    for (int p = 0; p < (int)bh; p++) {
        set_rgb(cr, cmap_matrix(1.0 - p / bh));
        cairo_rectangle(cr, bx, y0 + p, 16, 1.5);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, bx, y0, 16, bh);
    cairo_stroke(cr);
    char lab[32];
    for (int q = 0; q <= 4; q++) {
        double v = c->vmin + range * q / 4;
        snprintf(lab, sizeof lab, range >= 10 ? "%.0f" : "%.2f", v);
        text_at(cr, bx + 20, y0 + bh - bh * q / 4, lab, 10, ALIGN_LEFT, 0);
    }
}

fnn_status fnn_chart_heatmap(const fnn_heatmap *c, fnn_figure *out, fnn_error *err)
{
    if (c->rows <= 0 || c->cols <= 0)
        return fnn_fail(err, FNN_ERR_ARG, "heatmap chart: %dx%d cells", c->rows, c->cols);
    return render(out, c->width, c->height, draw_heatmap, c, "heatmap", err);
}

/* ---------------------------------------------------------------- grouped bars */

static void draw_bars(cairo_t *cr, const void *spec, int width, int height)
{
    const fnn_bar_chart *c = spec;
    double names_h = 0;
    for (int j = 0; j < c->ncat; j++) {
        double tw = text_width(cr, c->categories[j], 10);
        names_h = tw > names_h ? tw : names_h;
    }
    axes a = {64, 50, width - 16, height - names_h - 20, -0.5, c->ncat - 0.5, c->ymin, c->ymax};
    title_at(cr, c->title, width);
    draw_axes(cr, &a, NULL, c->ylabel, -1);
    double slot = (a.x1 - a.x0) / c->ncat, bw = slot * 0.8 / c->ngroups;
    for (int g = 0; g < c->ngroups; g++) {
        set_rgb(cr, palette(g));
        for (int j = 0; j < c->ncat; j++) {
            double v = c->values[(size_t)g * c->ncat + j];
            if (!isfinite(v))
                continue;
            v = v < c->ymin ? c->ymin : v > c->ymax ? c->ymax : v;
            double x = a.x0 + slot * j + slot * 0.1 + bw * g;
            cairo_rectangle(cr, x, ax_y(&a, v), bw - 1, ax_y(&a, c->ymin) - ax_y(&a, v));
            cairo_fill(cr);
        }
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int j = 0; j < c->ncat; j++)
        text_at(cr, a.x0 + slot * (j + 0.5), a.y1 + 6, c->categories[j], 10, ALIGN_RIGHT,
                -M_PI / 4);
    /* the legend in a row above the plot, where no bar can hide under it */
    double x = a.x0;
    for (int g = 0; g < c->ngroups; g++) {
        set_rgb(cr, palette(g));
        cairo_rectangle(cr, x, 32, 12, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, x + 16, 37, c->groups[g], 10, ALIGN_LEFT, 0);
        x += 16 + text_width(cr, c->groups[g], 10) + 18;
    }
}

fnn_status fnn_chart_bars(const fnn_bar_chart *c, fnn_figure *out, fnn_error *err)
{
    if (c->ncat <= 0 || c->ngroups <= 0 || !(c->ymin < c->ymax))
        return fnn_fail(err, FNN_ERR_ARG, "bar chart: %d categories, %d groups, range [%g, %g]",
                        c->ncat, c->ngroups, c->ymin, c->ymax);
    return render(out, c->width, c->height, draw_bars, c, "bar", err);
}

/* ---------------------------------------------------------------- image gallery */

typedef struct {
    double label_w, tile_w, tile_h; /* tile_h includes the captions */
    double hpad, vpad;              /* space between tiles */
} gallery_layout;

static gallery_layout gallery_size(const fnn_gallery *c, int *width, int *height)
{
    int rows = (c->ntiles + c->cols - 1) / c->cols;
    size_t longest = 0;
    for (int r = 0; c->row_labels && r < rows; r++)
        longest = strlen(c->row_labels[r]) > longest ? strlen(c->row_labels[r]) : longest;
    /* DejaVu Sans at 11 px averages under 7 px a character; captions need about 120 px */
    double tile_w = (double)c->w * c->zoom;
    gallery_layout l = {c->row_labels ? 7.0 * longest + 16 : 0, tile_w,
                        (double)c->h * c->zoom + 14.0 * c->caption_lines,
                        tile_w < 110 ? 120 - tile_w : 10, 12};
    *width = (int)(l.label_w + c->cols * (l.tile_w + l.hpad) + 10);
    *height = (int)(34 + rows * (l.tile_h + l.vpad));
    return l;
}

/* An overlay's largest opacity: at its peak the picture under it still shows a little. */
#define OVERLAY_OPACITY 0.8

/* The smallest and largest of v (n > 0); a flat range becomes [lo, lo + 1]. */
static void value_range(const float *v, size_t n, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
    if (!(*lo < *hi))
        *hi = *lo + 1;
}

static void draw_gallery(cairo_t *cr, const void *spec, int width, int height)
{
    const fnn_gallery *c = spec;
    int gw, gh;
    gallery_layout l = gallery_size(c, &gw, &gh);
    title_at(cr, c->title, width);
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, c->w, c->h);
    for (int t = 0; t < c->ntiles; t++) {
        const fnn_tile *tile = &c->tiles[t];
        int row = t / c->cols, column = t % c->cols;
        double x = l.label_w + l.hpad / 2 + column * (l.tile_w + l.hpad);
        double y = 30 + row * (l.tile_h + l.vpad);
        if (c->row_labels && column == 0) {
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, 6, y + c->h * c->zoom / 2.0, c->row_labels[row], 11, ALIGN_LEFT, 0);
        }
        if (!tile->pixels) /* an empty place in the grid */
            continue;
        int planes = tile->cmap == FNN_CMAP_RGB ? 3 : 1;
        size_t hw = (size_t)c->h * c->w;
        double lo = tile->vmin, hi = tile->vmax;
        if (!(lo < hi))
            value_range(tile->pixels, planes * hw, &lo, &hi);
        double olo = 0, ohi = 1;
        if (tile->overlay)
            value_range(tile->overlay, hw, &olo, &ohi);
        cairo_surface_flush(img);
        unsigned char *data = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        for (int i = 0; i < c->h; i++)
            for (int j = 0; j < c->w; j++) {
                size_t at = (size_t)i * c->w + j;
                double v = (tile->pixels[at] - lo) / (hi - lo);
                rgb col = tile->cmap == FNN_CMAP_HEAT ? cmap_heat(v)
                                                      : (rgb){v < 0 ? 0 : v > 1 ? 1 : v, 0, 0};
                if (tile->cmap == FNN_CMAP_GREY)
                    col.g = col.b = col.r;
                if (tile->cmap == FNN_CMAP_RGB) {
                    double g = (tile->pixels[hw + at] - lo) / (hi - lo);
                    double b = (tile->pixels[2 * hw + at] - lo) / (hi - lo);
                    col.g = g < 0 ? 0 : g > 1 ? 1 : g;
                    col.b = b < 0 ? 0 : b > 1 ? 1 : b;
                }
                if (tile->overlay) {
                    double o = (tile->overlay[at] - olo) / (ohi - olo);
                    o = o < 0 ? 0 : o > 1 ? 1 : o;
                    rgb heat = cmap_heat(o);
                    double a = OVERLAY_OPACITY * o;
                    col = (rgb){col.r + a * (heat.r - col.r), col.g + a * (heat.g - col.g),
                                col.b + a * (heat.b - col.b)};
                }
                uint32_t px = (uint32_t)(col.r * 255 + 0.5) << 16 |
                              (uint32_t)(col.g * 255 + 0.5) << 8 | (uint32_t)(col.b * 255 + 0.5);
                memcpy(data + (size_t)i * stride + (size_t)j * 4, &px, 4);
            }
        cairo_surface_mark_dirty(img);
        cairo_save(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, c->zoom, c->zoom);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr),
                                 c->zoom < 1 ? CAIRO_FILTER_GOOD : CAIRO_FILTER_NEAREST);
        cairo_paint(cr);
        cairo_restore(cr);
        if (tile->caption) {
            cairo_set_source_rgb(cr, 0, 0, 0);
            const char *s = tile->caption;
            char line[128];
            for (int ln = 0; *s && ln < c->caption_lines; ln++) {
                size_t len = strcspn(s, "\n");
                snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), s);
                text_at(cr, x + l.tile_w / 2, y + c->h * c->zoom + 9 + 14 * ln, line, 10,
                        ALIGN_CENTER, 0);
                s += len + (s[len] == '\n');
            }
        }
    }
    cairo_surface_destroy(img);
}

fnn_status fnn_chart_gallery(const fnn_gallery *c, fnn_figure *out, fnn_error *err)
{
    if (c->ntiles <= 0 || c->cols <= 0 || c->h <= 0 || c->w <= 0 || !(c->zoom > 0))
        return fnn_fail(err, FNN_ERR_ARG, "gallery chart: %d tiles in %d columns of %dx%d x%g",
                        c->ntiles, c->cols, c->h, c->w, c->zoom);
    int width, height;
    gallery_size(c, &width, &height);
    return render(out, width, height, draw_gallery, c, "gallery", err);
}
