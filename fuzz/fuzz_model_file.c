/* libFuzzer harness for model files (fnn_model_load: the safetensors container, then fnn's
 * metadata, architecture and tensors). Input: the file's bytes. A model that loads must be
 * usable: it predicts one image without a memory error. */
#include "fuzz_common.h"

#include <math.h>

#include "fnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    fnn_model_meta meta;
    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_load(path, &meta, &err);
    if (!m) {
        FUZZ_CHECK(err.status != FNN_OK && err.msg[0] != '\0');
        FUZZ_CHECK(meta.class_names_json == NULL && meta.history_json == NULL);
        return 0;
    }
    FUZZ_CHECK(meta.class_names_json != NULL);
    int c, h, w;
    fnn_model_input_shape(m, &c, &h, &w);
    int k = fnn_model_num_classes(m);
    size_t in = (size_t)c * (size_t)h * (size_t)w;
    float *x = calloc(in, sizeof *x);
    float *p = malloc((size_t)k * sizeof *p);
    if (x && p) {
        for (size_t i = 0; i < in; i++)
            x[i] = (float)(i % 7) / 7.0f;
        fnn_error perr = {FNN_OK, ""};
        if (fnn_model_predict(m, x, 1, p, 1, &perr) == FNN_OK) {
            for (int j = 0; j < k; j++)
                FUZZ_CHECK(p[j] >= 0.0f && p[j] <= 1.0f);
        } else {
            /* Finite but huge weights overflow the logits: a numeric error, not NaN. */
            FUZZ_CHECK(perr.status == FNN_ERR_NOMEM || perr.status == FNN_ERR_NUMERIC);
        }
    }
    free(x);
    free(p);
    fnn_model_meta_free(&meta);
    fnn_model_free(m);
    return 0;
}
