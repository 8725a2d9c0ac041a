/* libFuzzer harness for the CSV data source (needs: src/data/csv.c): the input is the file,
 * read as Kaggle's layout (header, then label,pixel1,...,pixelN). A load either fails with a
 * message or gives a set whose every label is below its class count. */
#include "fuzz_common.h"

#include <string.h>

#include "fnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    fnn_data_options o = {.format = FNN_FORMAT_CSV};
    fnn_dataset d;
    fnn_error err = {0};
    if (fnn_data_load(path, "train", &o, &d, &err) != FNN_OK) {
        FUZZ_CHECK(err.msg[0] != 0);
        FUZZ_CHECK(d.images == NULL);
        return 0;
    }
    FUZZ_CHECK(d.n > 0 && d.c == 1 && (size_t)d.h * d.w > 0);
    for (int i = 0; i < d.n; i++)
        FUZZ_CHECK(d.labels[i] < d.nclasses);
    fnn_dataset_free(&d);
    return 0;
}
