/* Charts for the report, drawn with cairo: one generic function per kind (line chart, heatmap,
 * grouped bars, image gallery), each rendered twice, as PNG and as SVG, into memory. */
#ifndef FNN_REPORT_CHART_H
#define FNN_REPORT_CHART_H

#include <stddef.h>
#include <stdint.h>

#include "fnn.h"

/* A growable byte buffer. */
typedef struct {
    unsigned char *data;
    size_t size, cap;
} fnn_bytes;

/* A rendered figure: the same drawing as PNG and as SVG, both width x height (pixels; the SVG
 * states them in px). */
typedef struct {
    int width, height;
    fnn_bytes png, svg;
} fnn_figure;

void fnn_figure_free(fnn_figure *fig);

/* One line of a line chart. */
typedef struct {
    const char *label;     /* legend entry; NULL for none */
    const double *x, *y;   /* (n); a NaN y leaves a gap */
    int n;
    int color;             /* palette index; -1 for grey */
    int dashed;
    int markers;           /* a dot at every point */
} fnn_series;

typedef struct {
    int width, height;
    const char *title, *xlabel, *ylabel;
    const fnn_series *series;
    int nseries;
    double xmin, xmax;     /* fixed axis ranges when min < max; else fitted to the data */
    double ymin, ymax;
} fnn_line_chart;

/* A matrix drawn as coloured cells on a fixed scale, with text in every cell. */
typedef struct {
    int width, height;
    const char *title, *xlabel, *ylabel;
    int rows, cols;
    const double *values;  /* (rows, cols): the colour */
    double vmin, vmax;     /* the colour scale, drawn as a bar beside the matrix */
    const int64_t *counts; /* (rows, cols) printed in the cells when not NULL */
    int show_values;       /* print values (2 decimals) as well, above the counts */
    const char *const *row_names, *const *col_names;
} fnn_heatmap;

/* Bars for ncat categories, one bar per group side by side. */
typedef struct {
    int width, height;
    const char *title, *ylabel;
    int ncat, ngroups;
    const char *const *categories; /* (ncat) */
    const char *const *groups;     /* (ngroups) legend */
    const double *values;          /* (ngroups, ncat) */
    double ymin, ymax;
} fnn_bar_chart;

/* How a tile's values become colours. FNN_CMAP_RGB reads three planes (red, green, blue), each
 * value scaled as grey's. */
typedef enum { FNN_CMAP_GREY = 0, FNN_CMAP_HEAT, FNN_CMAP_RGB } fnn_colormap;

/* One picture of a gallery. */
typedef struct {
    const float *pixels;   /* (h, w); (3, h, w) with FNN_CMAP_RGB */
    const char *caption;   /* lines separated by '\n'; may be NULL */
    fnn_colormap cmap;     /* grey: 0 black, vmax white; heat: dark to bright; rgb: colour */
    double vmin, vmax;     /* the colour scale; vmin >= vmax: the tile's own range */
    /* (h, w) or NULL: a map laid over the picture in heat colours on its own range, opaque in
     * proportion to its value, so that the picture shows through where the map is low (a
     * saliency map over a colour image, whose own colours a heat map alone would hide). */
    const float *overlay;
} fnn_tile;

/* Tiles in a grid, each image scaled `zoom` times (a whole factor keeps its pixels square and
 * sharp; below 1 it is averaged down), with an optional label left of each row. */
typedef struct {
    const char *title;
    int h, w;
    double zoom;
    int cols, ntiles;
    const fnn_tile *tiles;       /* (ntiles), row by row; a tile without pixels stays empty */
    const char *const *row_labels; /* (ceil(ntiles / cols)) or NULL */
    int caption_lines;           /* room under each tile */
} fnn_gallery;

fnn_status fnn_chart_line(const fnn_line_chart *c, fnn_figure *out, fnn_error *err);
fnn_status fnn_chart_heatmap(const fnn_heatmap *c, fnn_figure *out, fnn_error *err);
fnn_status fnn_chart_bars(const fnn_bar_chart *c, fnn_figure *out, fnn_error *err);
/* The gallery's size follows from its grid: out->width and out->height say what it became. */
fnn_status fnn_chart_gallery(const fnn_gallery *c, fnn_figure *out, fnn_error *err);

#endif
