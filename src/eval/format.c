/* Metrics as text: scikit-learn's classification_report, character for character, and an
 * aligned confusion matrix. Both return a malloc'd string, or NULL on bad input or no memory. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string. After the first failed allocation every append is a no-op, so callers check
 * once, in sb_finish. */
typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} strbuf;

static FNN_PRINTF(2, 3) void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(sb->buf ? sb->buf + sb->len : NULL, sb->buf ? sb->cap - sb->len : 0,
                         fmt, ap);
    va_end(ap);
    if (need < 0) {
        sb->failed = 1;
        return;
    }
    if (sb->len + (size_t)need + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 1024;
        while (cap < sb->len + (size_t)need + 1)
            cap *= 2;
        char *grown = realloc(sb->buf, cap);
        if (!grown) {
            sb->failed = 1;
            return;
        }
        sb->buf = grown;
        sb->cap = cap;
        va_start(ap, fmt);
        vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
    }
    sb->len += (size_t)need;
}

static void sb_repeat(strbuf *sb, char c, int count)
{
    for (int i = 0; i < count; i++)
        sb_printf(sb, "%c", c);
}

static char *sb_finish(strbuf *sb)
{
    if (sb->failed || !sb->buf) {
        free(sb->buf);
        return NULL;
    }
    return sb->buf;
}

/* Width in characters of a UTF-8 string: Python's len(), which sklearn aligns by, counts code
 * points, while printf's field widths count bytes. */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* The name shown for class c: class_names[c], or the index as sklearn prints labels when
 * target_names is None. buf holds the index form. */
static const char *class_name(const char *const *class_names, int c, char buf[16])
{
    if (class_names && class_names[c])
        return class_names[c];
    snprintf(buf, 16, "%d", c);
    return buf;
}

static void sb_right(strbuf *sb, const char *s, int width)
{
    sb_repeat(sb, ' ', width - text_width(s));
    sb_printf(sb, "%s", s);
}

static void sb_left(strbuf *sb, const char *s, int width)
{
    sb_printf(sb, "%s", s);
    sb_repeat(sb, ' ', width - text_width(s));
}

static int has_arrays(const fnn_metrics *mt)
{
    return mt && mt->nclasses >= 1 && mt->confusion && mt->support && mt->precision &&
           mt->recall && mt->f1;
}

/* The layout of sklearn.metrics.classification_report (output_dict=False):
 *   width = max(len(name) for names, len("weighted avg"), digits)
 *   header "{:>{width}s} " + " {:>9}" * 4, then a blank line
 *   rows   "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}"
 *   a blank line, then accuracy (f1 and support only), macro avg, weighted avg.
 * A negative digits is rejected, as Python rejects a negative precision. */
char *fnn_format_report(const fnn_metrics *mt, const char *const *class_names, int digits)
{
    if (!has_arrays(mt) || digits < 0)
        return NULL;
    static const char *const headers[4] = {"precision", "recall", "f1-score", "support"};
    static const char last_heading[] = "weighted avg";
    char buf[16];

    int width = (int)strlen(last_heading);
    if (digits > width)
        width = digits;
    for (int c = 0; c < mt->nclasses; c++) {
        int w = text_width(class_name(class_names, c, buf));
        if (w > width)
            width = w;
    }

    strbuf sb = {0};
    sb_repeat(&sb, ' ', width);
    sb_printf(&sb, " ");
    for (int h = 0; h < 4; h++)
        sb_printf(&sb, " %9s", headers[h]);
    sb_printf(&sb, "\n\n");

    int64_t total = 0;
    for (int c = 0; c < mt->nclasses; c++) {
        sb_right(&sb, class_name(class_names, c, buf), width);
        sb_printf(&sb, "  %9.*f %9.*f %9.*f %9lld\n", digits, mt->precision[c], digits,
                  mt->recall[c], digits, mt->f1[c], (long long)mt->support[c]);
        total += mt->support[c];
    }
    sb_printf(&sb, "\n");

    sb_right(&sb, "accuracy", width);
    sb_printf(&sb, "  %9s %9s %9.*f %9lld\n", "", "", digits, mt->accuracy, (long long)total);
    sb_right(&sb, "macro avg", width);
    sb_printf(&sb, "  %9.*f %9.*f %9.*f %9lld\n", digits, mt->macro_precision, digits,
              mt->macro_recall, digits, mt->macro_f1, (long long)total);
    sb_right(&sb, last_heading, width);
    sb_printf(&sb, "  %9.*f %9.*f %9.*f %9lld\n", digits, mt->weighted_precision, digits,
              mt->weighted_recall, digits, mt->weighted_f1, (long long)total);
    return sb_finish(&sb);
}

static int count_width(long long v)
{
    return snprintf(NULL, 0, "%lld", v);
}

/* Rows are "name index |" followed by one count per predicted class. Columns are headed by the
 * class index rather than the name so that ten Fashion-MNIST classes fit in under 80 columns;
 * the index beside each row name is the legend. */
char *fnn_format_confusion(const fnn_metrics *mt, const char *const *class_names)
{
    if (!has_arrays(mt))
        return NULL;
    int k = mt->nclasses;
    char buf[16];

    int name_w = 0; // 0 when there are no names: the index alone labels the row
    if (class_names)
        for (int c = 0; c < k; c++) {
            int w = text_width(class_name(class_names, c, buf));
            if (w > name_w)
                name_w = w;
        }
    int index_w = count_width(k - 1);
    int cell_w = index_w;
    for (size_t i = 0; i < (size_t)k * (size_t)k; i++) {
        int w = count_width((long long)mt->confusion[i]);
        if (w > cell_w)
            cell_w = w;
    }
    int label_w = name_w ? name_w + 1 + index_w : index_w; // "name index" before " |"

    strbuf sb = {0};
    sb_printf(&sb, "rows: true class, columns: predicted class\n");
    sb_repeat(&sb, ' ', label_w);
    sb_printf(&sb, " |");
    for (int j = 0; j < k; j++)
        sb_printf(&sb, " %*d", cell_w + 1, j);
    sb_printf(&sb, "\n");
    sb_repeat(&sb, '-', label_w + 1);
    sb_printf(&sb, "+");
    sb_repeat(&sb, '-', k * (cell_w + 2));
    sb_printf(&sb, "\n");

    for (int c = 0; c < k; c++) {
        if (name_w) {
            sb_left(&sb, class_name(class_names, c, buf), name_w);
            sb_printf(&sb, " ");
        }
        sb_printf(&sb, "%*d |", index_w, c);
        for (int j = 0; j < k; j++)
            sb_printf(&sb, " %*lld", cell_w + 1, (long long)mt->confusion[(size_t)c * k + j]);
        sb_printf(&sb, "\n");
    }
    return sb_finish(&sb);
}
