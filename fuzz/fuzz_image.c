/* libFuzzer harness for image input (needs: src/io/image.c): fnn_image_load, decoding and
 * resizing with stb. Input: one byte choosing the target size and inversion, then the file. */
#include "fuzz_common.h"

#include "fnn.h"

/* The stb code fnn links (Debian's libstb) is compiled here from the same headers, so ASan and
 * the fuzzer's coverage see inside the decoders; the linker takes these definitions before the
 * shared library's. UBSan is left off for this file only (build.sh reads the next line):
 * stb relies on undefined behaviour that is harmless in practice (a 257-entry table indexed
 * at 257 in the JPEG decoder, a zero offset added to NULL in the PNG one: reported), and
 * fnn's own image code in the library is still built with it.
 * harness-cflags: -fno-sanitize=undefined */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int side = data[0] & 0x40 ? 28 : (data[0] & 0x1f) + 1, invert = data[0] >> 7;
    const char *path = fuzz_file(0, data + 1, size - 1);
    float x[32 * 32]; // (side, side), side up to 32
    fnn_error err = {FNN_OK, ""};
    if (fnn_image_load(path, 1, side, side, invert, x, &err) != FNN_OK) {
        FUZZ_CHECK(err.status != FNN_OK && err.msg[0] != '\0');
        return 0;
    }
    /* The model's input contract: pixels in [0, 1], never NaN. */
    for (int i = 0; i < side * side; i++)
        FUZZ_CHECK(x[i] >= 0.0f && x[i] <= 1.0f);
    return 0;
}
