/* libFuzzer harness for the architecture spec parser (fnn_model_create). Input: three bytes
 * giving the input shape (c, h, w), each 1 to 32, then the spec text. A spec that builds must
 * print a canonical spec that builds the same model again (same spec, layers and sizes). */
#include "fuzz_common.h"

#include <string.h>

#include "fnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int c = data[0] % 32 + 1, h = data[1] % 32 + 1, w = data[2] % 32 + 1;
    char *spec = malloc(size - 3 + 1);
    if (!spec)
        return 0;
    memcpy(spec, data + 3, size - 3);
    spec[size - 3] = '\0';

    fnn_error err = {FNN_OK, ""};
    fnn_model *m = fnn_model_create(spec, c, h, w, &err);
    free(spec);
    if (!m) {
        FUZZ_CHECK(err.status != FNN_OK && err.msg[0] != '\0');
        return 0;
    }
    fnn_model_init(m, 1);
    fnn_error err2 = {FNN_OK, ""};
    fnn_model *again = fnn_model_create(fnn_model_spec(m), c, h, w, &err2);
    /* Only memory may fail the second time: the same allocations were just made once. */
    FUZZ_CHECK(again || err2.status == FNN_ERR_NOMEM);
    if (again) {
        FUZZ_CHECK(strcmp(fnn_model_spec(m), fnn_model_spec(again)) == 0);
        FUZZ_CHECK(fnn_model_num_layers(m) == fnn_model_num_layers(again));
        FUZZ_CHECK(fnn_model_num_params(m) == fnn_model_num_params(again));
        FUZZ_CHECK(fnn_model_num_tensors(m) == fnn_model_num_tensors(again));
        FUZZ_CHECK(fnn_model_num_classes(m) == fnn_model_num_classes(again));
        for (int i = 0; i < fnn_model_num_layers(m); i++) {
            fnn_layer_info a, b;
            fnn_model_layer_info(m, i, &a);
            fnn_model_layer_info(again, i, &b);
            FUZZ_CHECK(strcmp(a.type, b.type) == 0 && a.nparams == b.nparams);
            FUZZ_CHECK(a.out_c == b.out_c && a.out_h == b.out_h && a.out_w == b.out_w);
        }
        size_t total = 0;
        for (int i = 0; i < fnn_model_num_tensors(m); i++) {
            fnn_tensor t;
            fnn_model_tensor(m, i, &t);
            total += t.size;
        }
        FUZZ_CHECK(total == fnn_model_num_params(m));
        fnn_model_free(again);
    }
    fnn_model_free(m);
    return 0;
}
