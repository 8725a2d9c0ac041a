/* Image transforms against hand-computed small cases, and batch augmentation: labels and shapes
 * kept, the same seed giving the same batch, another seed another, pixels actually changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"
#include "data/batch.h"
#include "data/transform.h"

/* A 3x4 image with distinct values: v(y, x) = 1 + 4y + x. */
static void ramp(float *img)
{
    for (int i = 0; i < 12; i++)
        img[i] = (float)(i + 1);
}

static void test_shift_by_one(void **state)
{
    float src[12], dst[12];
    ramp(src);
    /* Right by 1, down by 1: row 0 and column 0 become zero, the rest move. */
    fnn_img_shift(src, dst, 3, 4, 1, 1);
    const float want[12] = {0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7};
    for (int i = 0; i < 12; i++)
        assert_float_equal(dst[i], want[i], 0.0f);
    /* Left by 2, up by 1. */
    fnn_img_shift(src, dst, 3, 4, -2, -1);
    const float want2[12] = {7, 8, 0, 0, 11, 12, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        assert_float_equal(dst[i], want2[i], 0.0f);
    /* Further than the image: all zero. */
    fnn_img_shift(src, dst, 3, 4, 5, 0);
    for (int i = 0; i < 12; i++)
        assert_float_equal(dst[i], 0.0f, 0.0f);
}

static void test_hflip(void **state)
{
    float src[12], dst[12];
    ramp(src);
    fnn_img_hflip(src, dst, 3, 4);
    const float want[12] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9};
    for (int i = 0; i < 12; i++)
        assert_float_equal(dst[i], want[i], 0.0f);
}

static void test_rotate_quarter_turns(void **state)
{
    /* 3x3 about the centre pixel. Counter-clockwise by 90 degrees with row 0 on top:
     * the top row (1 2 3) becomes the left column read upwards. */
    float src[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, dst[9];
    fnn_img_rotate(src, dst, 3, 3, 90.0f);
    const float ccw[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};
    for (int i = 0; i < 9; i++)
        assert_float_equal(dst[i], ccw[i], 1e-5f);
    fnn_img_rotate(src, dst, 3, 3, -90.0f);
    const float cw[9] = {7, 4, 1, 8, 5, 2, 9, 6, 3};
    for (int i = 0; i < 9; i++)
        assert_float_equal(dst[i], cw[i], 1e-5f);
    fnn_img_rotate(src, dst, 3, 3, 180.0f);
    for (int i = 0; i < 9; i++)
        assert_float_equal(dst[i], src[8 - i], 1e-5f);
    fnn_img_rotate(src, dst, 3, 3, 0.0f);
    for (int i = 0; i < 9; i++)
        assert_float_equal(dst[i], src[i], 0.0f);
}

static void test_rotate_bilinear(void **state)
{
    /* A 2x2 image by 45 degrees: the centre is (0.5, 0.5) and each output pixel, at distance
     * sqrt(0.5) from it, samples a point on an axis through the centre, halfway between two
     * source pixels and 0.207 outside the image on the other axis. Pixel (0, 0) samples
     * (y, x) = (0.5 - 0.7071, 0.5) with a 45-degree counter-clockwise turn: rows -0.207 and
     * 0.793 of columns 0 and 1, weighted 0.5 each across, and 0.207 / 0.793 down. */
    float src[4] = {1, 2, 3, 4}, dst[4];
    fnn_img_rotate(src, dst, 2, 2, 45.0f);
    double r = sqrt(0.5), fy = 0.5 - r - floor(0.5 - r); /* weight of the lower row */
    double want00 = (1 - fy) * 0.0 + fy * (0.5 * 1 + 0.5 * 2);
    assert_float_equal(dst[0], (float)want00, 1e-5f);
}

static void test_erase_clips(void **state)
{
    float img[12];
    ramp(img);
    fnn_img_erase(img, 3, 4, 1, 2, 5, 5, -1.0f); /* runs off the bottom right */
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            assert_float_equal(img[y * 4 + x], y >= 1 && x >= 2 ? -1.0f : (float)(1 + 4 * y + x),
                               0.0f);
}

/* A synthetic set of n random 28x28 images. */
static fnn_dataset make_set(int n)
{
    fnn_dataset d = {.n = n, .c = 1, .h = 28, .w = 28, .nclasses = 10, .owns = 1};
    d.images = malloc((size_t)n * 784);
    d.labels = malloc((size_t)n);
    uint32_t s = 12345;
    for (size_t i = 0; i < (size_t)n * 784; i++) {
        s = s * 1664525u + 1013904223u;
        d.images[i] = (uint8_t)(s >> 24);
    }
    for (int i = 0; i < n; i++)
        d.labels[i] = (uint8_t)(i % 10);
    return d;
}

static float *augmented(const fnn_dataset *d, const fnn_augment_config *c, uint64_t seed,
                        uint64_t step, uint8_t *labels)
{
    float *x = malloc((size_t)d->n * 784 * sizeof *x), scratch[784];
    fnn_batch_fill(d, NULL, 0, d->n, x, labels);
    fnn_augment_batch(c, seed, step, 0, x, d->n, 1, 28, 28, scratch);
    return x;
}

/* Colour: image r of a 3-channel batch has, in each plane, what the grey path makes of that
 * plane alone with the same seed and step (one draw per image, shared by its planes). */
static void test_augment_channels(void **state)
{
    enum { N = 24, C = 3, HW = 784 };
    fnn_dataset rgb = {.n = N, .c = C, .h = 28, .w = 28, .nclasses = 10, .owns = 1};
    rgb.images = malloc((size_t)N * C * HW);
    rgb.labels = calloc(N, 1);
    uint32_t s = 777;
    for (size_t i = 0; i < (size_t)N * C * HW; i++) {
        s = s * 1664525u + 1013904223u;
        rgb.images[i] = (uint8_t)(s >> 24);
    }
    fnn_augment_config c = {.shift = 3, .flip = 1, .rotate = 15.0f, .erase = 0.7f};
    float *x = malloc((size_t)N * C * HW * sizeof *x), scratch[HW];
    fnn_batch_fill(&rgb, NULL, 0, N, x, NULL);
    fnn_augment_batch(&c, 5, 2, 0, x, N, C, 28, 28, scratch);
    int differ = 0;
    for (int ch = 0; ch < C; ch++) {
        fnn_dataset grey = make_set(N);
        for (int r = 0; r < N; r++)
            memcpy(grey.images + (size_t)r * HW, rgb.images + ((size_t)r * C + ch) * HW, HW);
        float *g = augmented(&grey, &c, 5, 2, NULL);
        for (int r = 0; r < N; r++) {
            assert_memory_equal(x + ((size_t)r * C + ch) * HW, g + (size_t)r * HW,
                                HW * sizeof *x);
            /* The planes differ, so the check above is not one plane compared with itself. */
            differ += ch > 0 && memcmp(x + ((size_t)r * C + ch) * HW,
                                       x + (size_t)r * C * HW, HW * sizeof *x) != 0;
        }
        free(g);
        fnn_dataset_free(&grey);
    }
    assert_int_equal(differ, 2 * N);
    free(x);
    fnn_dataset_free(&rgb);
}

static void test_augment_batch(void **state)
{
    fnn_dataset d = make_set(16);
    fnn_augment_config c = {.shift = 3, .flip = 1, .rotate = 15.0f, .erase = 0.5f};
    assert_true(fnn_augment_active(&c));
    fnn_augment_config off = {0};
    assert_false(fnn_augment_active(&off));
    uint8_t la[16], lb[16];
    float *plain = augmented(&d, &off, 1, 0, la);
    float *a = augmented(&d, &c, 1, 0, la);
    float *b = augmented(&d, &c, 1, 0, lb);
    float *other_seed = augmented(&d, &c, 2, 0, lb);
    float *other_step = augmented(&d, &c, 1, 1, lb);
    /* Labels untouched, in order. */
    for (int i = 0; i < 16; i++)
        assert_int_equal(la[i], d.labels[i]);
    assert_memory_equal(la, lb, 16);
    /* Off leaves the batch exactly as filled. */
    for (size_t i = 0; i < 16 * 784; i++)
        assert_float_equal(plain[i], d.images[i] / 255.0f, 0.0f);
    /* Same seed and step: the same batch, bit for bit. */
    assert_memory_equal(a, b, 16 * 784 * sizeof *a);
    assert_memory_not_equal(a, other_seed, 16 * 784 * sizeof *a);
    assert_memory_not_equal(a, other_step, 16 * 784 * sizeof *a);
    /* Every image changed, and values stay in the pixel range. */
    for (int r = 0; r < 16; r++) {
        int changed = 0;
        for (int i = 0; i < 784; i++) {
            float v = a[r * 784 + i];
            assert_true(v >= 0.0f && v <= 1.0f);
            changed += v != plain[r * 784 + i];
        }
        assert_true(changed > 0);
    }
    free(plain);
    free(a);
    free(b);
    free(other_seed);
    free(other_step);
    fnn_dataset_free(&d);
}

/* Each transform on alone, checked against its own definition on the images it drew. */
static void test_augment_flip_only(void **state)
{
    fnn_dataset d = make_set(64);
    fnn_augment_config c = {.flip = 1};
    uint8_t labels[64];
    float *plain = augmented(&d, &(fnn_augment_config){0}, 7, 3, labels);
    float *a = augmented(&d, &c, 7, 3, labels);
    int flipped = 0;
    for (int r = 0; r < 64; r++) {
        float mirror[784];
        fnn_img_hflip(plain + r * 784, mirror, 28, 28);
        int same = !memcmp(a + r * 784, plain + r * 784, 784 * sizeof *a);
        int is_mirror = !memcmp(a + r * 784, mirror, 784 * sizeof *a);
        assert_true(same || is_mirror);
        flipped += is_mirror;
    }
    /* About half; 64 fair coins land outside 16..48 with probability below 1e-4. */
    assert_in_range(flipped, 16, 48);
    free(plain);
    free(a);
    fnn_dataset_free(&d);
}

static void test_augment_shift_only(void **state)
{
    fnn_dataset d = make_set(32);
    fnn_augment_config c = {.shift = 2};
    uint8_t labels[32];
    float *plain = augmented(&d, &(fnn_augment_config){0}, 9, 0, labels);
    float *a = augmented(&d, &c, 9, 0, labels);
    for (int r = 0; r < 32; r++) {
        int found = 0;
        for (int dy = -2; dy <= 2 && !found; dy++)
            for (int dx = -2; dx <= 2 && !found; dx++) {
                float s[784];
                fnn_img_shift(plain + r * 784, s, 28, 28, dx, dy);
                found = !memcmp(s, a + r * 784, sizeof s);
            }
        assert_true(found);
    }
    free(plain);
    free(a);
    fnn_dataset_free(&d);
}

/* Every offset in [-k, k] is drawn, in x and in y and as pairs, and nothing outside it: 2k + 1
 * values each way, not 2k. Searched over [-k-1, k+1], so a draw past k is found too. */
static void test_augment_shift_reaches_every_offset(void **state)
{
    enum { K = 3, N = 64, STEPS = 4, SIDE = 2 * K + 1 };
    fnn_dataset d = make_set(N);
    fnn_augment_config c = {.shift = K};
    uint8_t labels[N];
    int seen[SIDE][SIDE] = {{0}};
    float *plain = augmented(&d, &(fnn_augment_config){0}, 11, 0, labels);
    for (int step = 0; step < STEPS; step++) {
        float *a = augmented(&d, &c, 11, (uint64_t)step, labels);
        for (int r = 0; r < N; r++) {
            int found = 0;
            for (int dy = -K - 1; dy <= K + 1 && !found; dy++)
                for (int dx = -K - 1; dx <= K + 1 && !found; dx++) {
                    float s[784];
                    fnn_img_shift(plain + r * 784, s, 28, 28, dx, dy);
                    if (memcmp(s, a + r * 784, sizeof s))
                        continue;
                    found = 1;
                    if (dx < -K || dx > K || dy < -K || dy > K)
                        fail_msg("image %d of step %d shifted by (%d, %d), past %d", r, step, dx,
                                 dy, K);
                    seen[dy + K][dx + K]++;
                }
            if (!found)
                fail_msg("image %d of step %d is no shift of its source", r, step);
        }
        free(a);
    }
    /* 256 draws over 49 pairs: this seed's draws cover them all (fixed, not by chance). */
    for (int dy = -K; dy <= K; dy++)
        for (int dx = -K; dx <= K; dx++)
            if (!seen[dy + K][dx + K])
                fail_msg("no image was shifted by (%d, %d)", dx, dy);
    free(plain);
    fnn_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shift_by_one),
        cmocka_unit_test(test_hflip),
        cmocka_unit_test(test_rotate_quarter_turns),
        cmocka_unit_test(test_rotate_bilinear),
        cmocka_unit_test(test_erase_clips),
        cmocka_unit_test(test_augment_batch),
        cmocka_unit_test(test_augment_channels),
        cmocka_unit_test(test_augment_flip_only),
        cmocka_unit_test(test_augment_shift_only),
        cmocka_unit_test(test_augment_shift_reaches_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
