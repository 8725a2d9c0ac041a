/* Model files: a model's tensors plus what is needed to rebuild and use it (spec, input shape,
 * normalisation, class names, training history) as safetensors, on the public model API only. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fnn.h"
#include "io/normalization.h"
#include "io/safetensors.h"
#include "util/error.h"

/* The same bound fnn_model_create applies; checked here first so a bad file says "format". */
#define MAX_INPUT_DIM 4096

/* The CRC-32 (zlib's) of the tensor data, kept in the metadata as 8 lowercase hex digits: the
 * container's checks catch a cut or reshaped file, this catches bytes changed in place. */
#define CRC_KEY "fnn_crc32"

static uint32_t crc_update(uint32_t crc, const float *data, size_t n)
{
    return (uint32_t)crc32_z(crc, (const Bytef *)data, n * sizeof(float));
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* What is wrong with json as a list of nclasses class names, or NULL if nothing. */
static const char *class_names_problem(const char *json, int nclasses, char *buf, size_t bufsize)
{
    cJSON *root = cJSON_Parse(json);
    const char *problem = NULL;
    if (!root) {
        problem = "is not valid JSON";
    } else if (!cJSON_IsArray(root)) {
        problem = "is not a JSON list";
    } else if (cJSON_GetArraySize(root) != nclasses) {
        snprintf(buf, bufsize, "has %d names but the model has %d classes",
                 cJSON_GetArraySize(root), nclasses);
        problem = buf;
    } else {
        int i = 0;
        for (const cJSON *c = root->child; c && !problem; c = c->next, i++)
            if (!cJSON_IsString(c)) {
                snprintf(buf, bufsize, "entry %d is not a string", i);
                problem = buf;
            }
    }
    cJSON_Delete(root);
    return problem;
}

static int is_json_object(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    int ok = cJSON_IsObject(root);
    cJSON_Delete(root);
    return ok;
}

/* The Fashion-MNIST names for a 10-class model; for any other count the names would be wrong,
 * so the class indices stand in. Returns malloc'd JSON or NULL when out of memory. */
static char *default_class_names(int nclasses)
{
    cJSON *list = cJSON_CreateArray();
    const char *const *fashion = fnn_fashion_class_names();
    int ok = list != NULL;
    for (int i = 0; ok && i < nclasses; i++) {
        char index[16];
        snprintf(index, sizeof index, "%d", i);
        cJSON *s = cJSON_CreateString(nclasses == 10 ? fashion[i] : index);
        ok = s && cJSON_AddItemToArray(list, s);
    }
    char *json = ok ? cJSON_PrintUnformatted(list) : NULL;
    cJSON_Delete(list);
    return json;
}

fnn_status fnn_model_save(const fnn_model *m, const fnn_model_meta *meta, const char *path,
                          fnn_error *err)
{
    int nclasses = fnn_model_num_classes(m);
    const char *class_names = meta ? meta->class_names_json : NULL;
    const char *history = meta ? meta->history_json : NULL;
    char why[96];
    /* Refuse now what fnn_model_load would refuse later. */
    if (class_names) {
        const char *problem = class_names_problem(class_names, nclasses, why, sizeof why);
        if (problem)
            return fnn_fail(err, FNN_ERR_ARG, "%s: class names %s", path, problem);
    }
    if (history && !is_json_object(history))
        return fnn_fail(err, FNN_ERR_ARG, "%s: history is not a JSON object", path);

    int c, h, w;
    fnn_model_input_shape(m, &c, &h, &w);
    char input_shape[48];
    snprintf(input_shape, sizeof input_shape, "[%d, %d, %d]", c, h, w);

    int nt = fnn_model_num_tensors(m);
    fnn_tensor *mt = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *mt);
    fnn_st_tensor *st = calloc((size_t)(nt > 0 ? nt : 1), sizeof *st);
    char *defaults = class_names ? NULL : default_class_names(nclasses);
    char *norm = fnn_normalization_json(m);
    if (!mt || !st || (!class_names && !defaults) || !norm) {
        free(mt);
        free(st);
        free(defaults);
        free(norm);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory saving the model", path);
    }
    uint32_t crc = (uint32_t)crc32_z(0, Z_NULL, 0);
    for (int i = 0; i < nt; i++) {
        fnn_model_tensor(m, i, &mt[i]);
        /* fnn_st_write lays the tensors out back to back in this order. */
        crc = crc_update(crc, mt[i].data, mt[i].size);
        st[i].name = mt[i].name;
        st[i].rank = mt[i].rank;
        for (int d = 0; d < mt[i].rank; d++)
            st[i].shape[d] = (size_t)mt[i].shape[d];
        st[i].size = mt[i].size;
        st[i].data = mt[i].data;
    }
    char crc_text[16];
    snprintf(crc_text, sizeof crc_text, "%08x", (unsigned)crc);
    const char *keys[] = {"format",      "fnn_version",   "arch",        "input_shape",
                          "normalization", CRC_KEY, "class_names", "history"};
    const char *values[] = {"fnn",       FNN_VERSION,   fnn_model_spec(m),
                            input_shape, norm,      crc_text,
                            class_names ? class_names : defaults, history};
    int nmeta = history ? 8 : 7; /* "history" is last so it can be left off */
    fnn_status status = fnn_st_write(path, st, nt, keys, values, nmeta, err);
    free(mt);
    free(st);
    free(defaults);
    free(norm);
    return status;
}

/* Reads "[c, h, w]" into shape; 0 if it is anything else. */
static int parse_input_shape(const char *text, int shape[3])
{
    cJSON *root = cJSON_Parse(text);
    int ok = cJSON_IsArray(root) && cJSON_GetArraySize(root) == 3;
    for (int i = 0; ok && i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(root, i);
        ok = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= MAX_INPUT_DIM &&
             v->valuedouble == floor(v->valuedouble);
        if (ok)
            shape[i] = (int)v->valuedouble;
    }
    cJSON_Delete(root);
    return ok;
}

static void format_shape(char *buf, size_t n, int rank, const size_t *shape)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < rank && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%zu", d ? ", " : "", shape[d]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

/* Checks that the file holds exactly the model's tensors, then copies them in. */
static fnn_status load_tensors(const char *path, const fnn_st_file *st, fnn_model *m,
                               fnn_error *err)
{
    int nt = fnn_model_num_tensors(m);
    for (int i = 0; i < nt; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        const fnn_st_tensor *ft = fnn_st_find(st, t.name);
        if (!ft)
            return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\" of the model is missing", path,
                            t.name);
        size_t want[FNN_ST_MAX_RANK];
        for (int d = 0; d < t.rank; d++)
            want[d] = (size_t)t.shape[d];
        if (ft->rank != t.rank || memcmp(ft->shape, want, (size_t)t.rank * sizeof *want) != 0) {
            char have_s[160], want_s[160];
            format_shape(have_s, sizeof have_s, ft->rank, ft->shape);
            format_shape(want_s, sizeof want_s, t.rank, want);
            return fnn_fail(err, FNN_ERR_FORMAT,
                            "%s: tensor \"%s\" has shape %s but the model needs %s", path, t.name,
                            have_s, want_s);
        }
    }
    /* Every model tensor is present and names are unique, so any surplus is an extra. */
    if (st->ntensors != nt)
        for (int j = 0; j < st->ntensors; j++) {
            int known = 0;
            for (int i = 0; i < nt && !known; i++) {
                fnn_tensor t;
                fnn_model_tensor(m, i, &t);
                known = strcmp(t.name, st->tensors[j].name) == 0;
            }
            if (!known)
                return fnn_fail(err, FNN_ERR_FORMAT,
                                "%s: tensor \"%s\" is not part of the model \"%s\"", path,
                                st->tensors[j].name, fnn_model_spec(m));
        }
    for (int i = 0; i < nt; i++) {
        fnn_tensor t;
        fnn_model_tensor(m, i, &t);
        const fnn_st_tensor *ft = fnn_st_find(st, t.name);
        /* A NaN or Inf weight would make every prediction NaN without any other sign. */
        for (size_t k = 0; k < t.size; k++)
            if (!isfinite(ft->data[k]))
                return fnn_fail(err, FNN_ERR_FORMAT, "%s: tensor \"%s\": element %zu is %g", path,
                                t.name, k, (double)ft->data[k]);
        memcpy(t.data, ft->data, t.size * sizeof(float));
    }
    return FNN_OK;
}

/* Checks the data section against the metadata's checksum. Files without one (saved before fnn
 * wrote it) still load: the container's checks still hold them to their header. */
static fnn_status check_crc(const char *path, const fnn_st_file *st, fnn_error *err)
{
    const char *text = fnn_st_meta(st, CRC_KEY);
    if (!text)
        return FNN_OK;
    size_t len = strspn(text, "0123456789abcdef");
    if (len != 8 || text[8] != '\0')
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: metadata " CRC_KEY " \"%s\" is not 8 lowercase hex digits", path,
                        text);
    uint32_t want = (uint32_t)strtoul(text, NULL, 16);
    uint32_t have = (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), (const Bytef *)st->data,
                                      st->data_size);
    if (have != want)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: tensor data is corrupt: its CRC-32 is %08x but metadata " CRC_KEY
                        " says %s",
                        path, (unsigned)have, text);
    return FNN_OK;
}

/* Checks the metadata, builds the model and fills it; *out is set only on success. */
static fnn_status load_model(const char *path, const fnn_st_file *st, fnn_model **out,
                             fnn_error *err)
{
    const char *format = fnn_st_meta(st, "format");
    if (!format)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: metadata has no \"format\" field: not an fnn model file", path);
    if (strcmp(format, "fnn") != 0)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: metadata format is \"%s\", not \"fnn\"", path,
                        format);
    const char *arch = fnn_st_meta(st, "arch");
    if (!arch)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: metadata has no \"arch\" field", path);
    const char *shape_text = fnn_st_meta(st, "input_shape");
    if (!shape_text)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: metadata has no \"input_shape\" field", path);
    int shape[3];
    if (!parse_input_shape(shape_text, shape))
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: metadata input_shape \"%s\" is not a list of three integers in "
                        "[1, %d]",
                        path, shape_text, MAX_INPUT_DIM);
    const char *norm = fnn_st_meta(st, "normalization");
    float *mean = malloc((size_t)shape[0] * sizeof *mean);
    float *std = malloc((size_t)shape[0] * sizeof *std);
    int normalized = 0;
    fnn_status status = !mean || !std ? fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", path)
                        : norm ? fnn_normalization_parse(path, "metadata normalization", norm,
                                                         shape[0], mean, std, &normalized, err)
                               : FNN_OK;
    if (status != FNN_OK) {
        free(mean);
        free(std);
        return status;
    }
    const char *class_names = fnn_st_meta(st, "class_names");
    const char *history = fnn_st_meta(st, "history");
    fnn_error sub = {FNN_OK, ""};
    fnn_model *m = NULL;
    if (!class_names)
        status = fnn_fail(err, FNN_ERR_FORMAT, "%s: metadata has no \"class_names\" field",
                          path);
    else if (history && !is_json_object(history))
        status = fnn_fail(err, FNN_ERR_FORMAT, "%s: metadata history is not a JSON object", path);
    else if (!(m = fnn_model_create(arch, shape[0], shape[1], shape[2], &sub)))
        status = fnn_fail(err, sub.status == FNN_ERR_NOMEM ? FNN_ERR_NOMEM : FNN_ERR_FORMAT,
                          "%s: metadata arch \"%s\": %s", path, arch, sub.msg);
    else if (normalized)
        status = fnn_model_set_normalization(m, mean, std, err);
    free(mean);
    free(std);
    if (status != FNN_OK) {
        fnn_model_free(m);
        return status;
    }
    char why[96];
    const char *problem = class_names_problem(class_names, fnn_model_num_classes(m), why,
                                              sizeof why);
    status = problem ? fnn_fail(err, FNN_ERR_FORMAT, "%s: metadata class_names %s", path, problem)
                     : load_tensors(path, st, m, err);
    /* After the structural checks, whose messages say more than "corrupt" (a tensor of the
     * wrong shape, a NaN), and before the model is handed out. */
    if (status == FNN_OK)
        status = check_crc(path, st, err);
    if (status != FNN_OK) {
        fnn_model_free(m);
        return status;
    }
    *out = m;
    return FNN_OK;
}

fnn_model *fnn_model_load(const char *path, fnn_model_meta *meta, fnn_error *err)
{
    if (meta)
        memset(meta, 0, sizeof *meta);
    fnn_st_file st;
    if (fnn_st_read(path, &st, err) != FNN_OK)
        return NULL;
    fnn_model *m = NULL;
    fnn_status status = load_model(path, &st, &m, err);
    if (status == FNN_OK && meta) {
        const char *history = fnn_st_meta(&st, "history");
        meta->class_names_json = copy_string(fnn_st_meta(&st, "class_names"));
        meta->history_json = history ? copy_string(history) : NULL;
        if (!meta->class_names_json || (history && !meta->history_json)) {
            fnn_model_meta_free(meta);
            fnn_model_free(m);
            m = NULL;
            fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory copying the metadata", path);
        }
    }
    fnn_st_free(&st);
    return m;
}

void fnn_model_meta_free(fnn_model_meta *meta)
{
    if (!meta)
        return;
    free(meta->class_names_json);
    free(meta->history_json);
    meta->class_names_json = NULL;
    meta->history_json = NULL;
}
