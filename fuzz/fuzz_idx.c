/* libFuzzer harness for the IDX reader (fnn_idx_load): an image file and a label file, each
 * plain or gzipped. Input: flags (1 byte: bit 0 gzips the images, bit 1 the labels, in the
 * harness, so the fuzzer mutates the IDX bytes themselves), the image file's length (u16,
 * little-endian), the image file, the label file. Raw .gz bytes reach the reader too (it
 * detects compression by content). */
#include "fuzz_common.h"

#include <string.h>
#include <zlib.h>

#include "fnn.h"

/* data as a gzip stream in a malloc'd buffer, or NULL. */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    uint8_t *out = malloc(cap);
    if (out) {
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)size;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            free(out);
            out = NULL;
        }
    }
    *out_size = z.total_out;
    deflateEnd(&z);
    return out;
}

static const char *put(int slot, int compress, const uint8_t *data, size_t size)
{
    if (!compress)
        return fuzz_file(slot, data, size);
    size_t n = 0;
    uint8_t *gz = gzip(data, size, &n);
    FUZZ_CHECK(gz != NULL);
    const char *path = fuzz_file(slot, gz, n);
    free(gz);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int flags = data[0];
    size_t images_len = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (images_len > size)
        images_len = size;
    const char *images = put(0, flags & 1, data, images_len);
    const char *labels = put(1, flags & 2, data + images_len, size - images_len);

    fnn_dataset d;
    fnn_error err = {FNN_OK, ""};
    fnn_status st = fnn_idx_load(images, labels, &d, &err);
    if (st != FNN_OK) {
        FUZZ_CHECK(err.status == st && err.msg[0] != '\0');
        return 0;
    }
    /* What the rest of fnn relies on: a consistent, fully backed set. */
    FUZZ_CHECK(d.n > 0 && d.c == 1 && d.h > 0 && d.w > 0 && d.owns == 1);
    /* The classes are the labels seen: 1 + the largest (IDX files name none). */
    FUZZ_CHECK(d.nclasses >= 1 && d.nclasses <= FNN_MAX_CLASSES && d.class_names == NULL);
    /* Touching every pixel lets ASan check the buffer is as large as the header says. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < (size_t)d.n * (size_t)d.c * (size_t)d.h * (size_t)d.w; i++)
        sink ^= d.images[i];
    (void)sink;
    int largest = 0;
    for (int i = 0; i < d.n; i++) {
        FUZZ_CHECK(d.labels[i] < d.nclasses);
        largest = d.labels[i] > largest ? d.labels[i] : largest;
    }
    FUZZ_CHECK(d.nclasses == largest + 1);
    fnn_dataset_free(&d);
    return 0;
}
