/* The "normalization" entry of model files and checkpoints: the pixel scale 1/255 and, when
 * the model has them, its per-channel mean and std, as one JSON object. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/normalization.h"
#include "util/error.h"

/* Batches are built as pixels / 255; the file says so for readers in other languages. The
 * number is the shortest text that reads back as exactly 1.0 / 255. A model that normalises
 * its input adds "mean" and "std" lists, one number per channel, applied after the scale:
 * (pixel * scale - mean) / std. */
static const char NORMALIZATION[] = "{\"scale\": 0.00392156862745098}";

/* Each float is written with 9 significant digits, which read back as the same float. */
char *fnn_normalization_json(const fnn_model *m)
{
    int c, h, w;
    fnn_model_input_shape(m, &c, &h, &w);
    float *mean = malloc((size_t)c * sizeof *mean), *std = malloc((size_t)c * sizeof *std);
    size_t cap = sizeof NORMALIZATION + 64 + 2 * (size_t)c * 20, len;
    char *text = mean && std ? malloc(cap) : NULL;
    if (text && !fnn_model_normalization(m, mean, std)) {
        memcpy(text, NORMALIZATION, sizeof NORMALIZATION);
    } else if (text) {
        /* NORMALIZATION without its closing brace, then the two lists. */
        len = sizeof NORMALIZATION - 2;
        memcpy(text, NORMALIZATION, len);
        for (int list = 0; list < 2; list++) {
            const float *v = list ? std : mean;
            len += (size_t)snprintf(text + len, cap - len, ", \"%s\": [", list ? "std" : "mean");
            for (int ch = 0; ch < c; ch++)
                len += (size_t)snprintf(text + len, cap - len, "%s%.9g", ch ? ", " : "",
                                        (double)v[ch]);
            len += (size_t)snprintf(text + len, cap - len, "]");
        }
        snprintf(text + len, cap - len, "}");
    }
    free(mean);
    free(std);
    return text;
}

/* Reads list `field` of the normalization object into v (c) as floats; the error names the
 * file and the field. */
static fnn_status read_channel_list(const char *path, const char *what, const cJSON *list,
                                    const char *field, int c, float *v, fnn_error *err)
{
    if (!cJSON_IsArray(list))
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: %s \"%s\" is not a list of numbers", path,
                        what, field);
    if (cJSON_GetArraySize(list) != c)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: %s \"%s\" has %d values but the model's input has %d channels",
                        path, what, field, cJSON_GetArraySize(list), c);
    int i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        int is_std = strcmp(field, "std") == 0;
        /* In float range before the conversion, which is undefined outside it. */
        if (!cJSON_IsNumber(e) || !(fabs(e->valuedouble) <= FLT_MAX) ||
            (is_std && !((float)e->valuedouble > 0.0f)))
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: %s \"%s\": entry %d is not a finite number%s", path, what,
                            field, i, is_std ? " above 0" : "");
        v[i] = (float)e->valuedouble;
    }
    return FNN_OK;
}

/* {"scale": 1/255}, the only scaling fnn applies, with optional per-channel "mean" and "std"
 * lists (both or neither). */
fnn_status fnn_normalization_parse(const char *path, const char *what, const char *text, int c,
                                   float *mean, float *std, int *set, fnn_error *err)
{
    *set = 0;
    cJSON *root = cJSON_Parse(text);
    const cJSON *scale = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "scale")
                                              : NULL;
    const cJSON *mu = cJSON_GetObjectItemCaseSensitive(root, "mean");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(root, "std");
    int fields = 1 + (mu != NULL) + (sd != NULL);
    fnn_status s = FNN_OK;
    if (!cJSON_IsNumber(scale) || cJSON_GetArraySize(root) != fields ||
        fabs(scale->valuedouble * 255.0 - 1.0) >= 1e-12)
        s = fnn_fail(err, FNN_ERR_FORMAT,
                     "%s: %s \"%s\" is not the {\"scale\": 1/255} fnn applies, with optional "
                     "\"mean\" and \"std\" lists",
                     path, what, text);
    else if (!mu != !sd)
        s = fnn_fail(err, FNN_ERR_FORMAT, "%s: %s has \"%s\" without \"%s\"", path, what,
                     mu ? "mean" : "std", mu ? "std" : "mean");
    else if (mu && (s = read_channel_list(path, what, mu, "mean", c, mean, err)) == FNN_OK &&
             (s = read_channel_list(path, what, sd, "std", c, std, err)) == FNN_OK)
        *set = 1;
    cJSON_Delete(root);
    return s;
}

