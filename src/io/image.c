/* Image files: decoded by stb_image and resized by area averaging with stb_image_resize, for
 * model input (grey or colour, scaled to [0, 1] like the training batches) and for the image
 * folder data source. */
#define _POSIX_C_SOURCE 200809L

#include "io/image.h"
#include "util/error.h"
#include "util/input.h"
#include "util/text.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_resize.h>

/* Larger files and images are refused before decoding. */
#define MAX_FILE_BYTES (64 << 20)
#define MAX_PIXELS (1 << 26)

/* The formats fnn documents, by their signatures: stb_image would also try GIF, PSD, TGA, HDR
 * and PIC, which nobody means to feed a clothing classifier. */
static int known_format(const unsigned char *b, size_t len)
{
    if (len < 4)
        return 0;
    return !memcmp(b, "\x89PNG", 4) || (b[0] == 0xFF && b[1] == 0xD8) ||
           (b[0] == 'B' && b[1] == 'M') || (b[0] == 'P' && (b[1] == '5' || b[1] == '6'));
}

/* Whitespace and '#' comments between the fields of a PNM header, as stb_image skips them. */
static size_t pnm_skip(const unsigned char *b, size_t len, size_t i)
{
    while (i < len) {
        if (b[i] == '#') {
            while (i < len && b[i] != '\n' && b[i] != '\r')
                i++;
        } else if (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r')) {
            i++;
        } else {
            break;
        }
    }
    return i;
}

/* A decimal field of a PNM header, saturated so that an absurd one cannot overflow. */
static size_t pnm_number(const unsigned char *b, size_t len, size_t i, uint64_t *v)
{
    *v = 0;
    for (; i < len && b[i] >= '0' && b[i] <= '9'; i++)
        *v = *v > 100000000 ? *v : *v * 10 + (uint64_t)(b[i] - '0');
    return i;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* stb_image takes a binary PNM's or an uncompressed BMP's pixel data as its header describes it
 * and decodes a short file from memory it never wrote, or from zeros: a file must hold every
 * byte its header promises. Other formats fail inside stb when cut short. */
static fnn_status check_promised_size(const char *path, const unsigned char *b, size_t len,
                                      fnn_error *err)
{
    uint64_t need = 0, at = 0;
    if (b[0] == 'P') { /* P5 grey or P6 colour, already recognised */
        uint64_t w, h, maxv;
        size_t i = pnm_skip(b, len, 2);
        i = pnm_skip(b, len, pnm_number(b, len, i, &w));
        i = pnm_skip(b, len, pnm_number(b, len, i, &h));
        i = pnm_number(b, len, i, &maxv);
        at = i + 1; /* one whitespace byte ends the header */
        need = w * h * (b[1] == '6' ? 3 : 1) * (maxv > 255 ? 2 : 1);
    } else if (b[0] == 'B' && len >= 34) {
        uint32_t offset = le32(b + 10), dib = le32(b + 14);
        if (dib == 12 || dib < 40)
            return FNN_OK; /* OS/2 headers: stb checks these itself */
        int64_t w = (int32_t)le32(b + 18), h = (int32_t)le32(b + 22);
        uint32_t bpp = (uint32_t)b[28] | (uint32_t)b[29] << 8, compression = le32(b + 30);
        if ((compression != 0 && compression != 3) || bpp > 32)
            return FNN_OK; /* run-length data has no fixed size; stb refuses odd depths */
        w = w < 0 ? -w : w;
        h = h < 0 ? -h : h;
        at = offset;
        need = (uint64_t)((w * bpp + 31) / 32 * 4) * (uint64_t)h;
    } else {
        return FNN_OK;
    }
    if (at > len || need > len - at)
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: truncated: the header promises %llu bytes of pixels from offset %llu "
                        "but the file is %zu bytes long", path, (unsigned long long)need,
                        (unsigned long long)at, len);
    return FNN_OK;
}

/* The offset of the first marker at or after i outside entropy-coded data: 0xFF followed by
 * neither a stuffed zero, a restart marker nor another fill byte; len when there is none. */
static size_t jpeg_next_marker(const unsigned char *b, size_t len, size_t i)
{
    for (; i + 1 < len; i++)
        if (b[i] == 0xFF && b[i + 1] != 0x00 && b[i + 1] != 0xFF &&
            !(b[i + 1] >= 0xD0 && b[i + 1] <= 0xD7))
            return i;
    return len;
}

/* A JPEG scan may name Huffman tables that no DHT segment before it defines. stb_image
 * (libstb 0.0~git20220908) then decodes with tables left in uninitialised memory and reads
 * outside them (fuzz_image found it; upstream's later check is nothings/stb#1289), so every
 * table a scan will use must have been defined: both of each component's in a sequential
 * scan; in a progressive one, the DC table in a first DC scan and the AC table in an AC scan,
 * as stb reads them. Malformed segments are left for stb to refuse. */
static fnn_status check_jpeg_tables(const char *path, const unsigned char *b, size_t len,
                                    fnn_error *err)
{
    int defined[2][4] = {{0}}, progressive = 0; /* [class: DC, AC][table] */
    for (size_t i = jpeg_next_marker(b, len, 2); i + 4 <= len; i = jpeg_next_marker(b, len, i)) {
        unsigned m = b[i + 1];
        if (m == 0xD9)
            break; /* end of image */
        if (m == 0x01 || m == 0xD8) {
            i += 2; /* markers without a segment */
            continue;
        }
        size_t seg = (size_t)b[i + 2] << 8 | b[i + 3], end = i + 2 + seg;
        if (seg < 2 || end > len)
            return FNN_OK;
        if (m == 0xC2)
            progressive = 1;
        for (size_t j = i + 4; m == 0xC4 && j + 17 <= end;) { /* DHT: one or more tables */
            unsigned tc = b[j] >> 4, th = b[j] & 15, codes = 0;
            for (int k = 1; k <= 16; k++)
                codes += b[j + k];
            if (tc < 2 && th < 4)
                defined[tc][th] = 1;
            j += 17 + codes;
        }
        if (m == 0xDA && seg >= 3) { /* SOS: n components, their tables, then Ss Se Ah/Al */
            size_t n = b[i + 4], params = i + 5 + 2 * n;
            if (params + 3 > end)
                return FNN_OK;
            unsigned ss = b[params], ah = b[params + 2] >> 4;
            int dc = !progressive || (ss == 0 && ah == 0), ac = !progressive || ss > 0;
            for (size_t k = 0; k < n; k++) {
                unsigned td = b[i + 6 + 2 * k] >> 4, ta = b[i + 6 + 2 * k] & 15;
                if ((dc && td < 4 && !defined[0][td]) || (ac && ta < 4 && !defined[1][ta]))
                    return fnn_fail(err, FNN_ERR_FORMAT,
                                    "%s: corrupt JPEG: scan component %zu uses Huffman table "
                                    "%s %u, which no DHT segment before it defines", path, k + 1,
                                    dc && td < 4 && !defined[0][td] ? "DC" : "AC",
                                    dc && td < 4 && !defined[0][td] ? td : ta);
            }
        }
        i = end; /* after a scan's header, its entropy-coded data up to the next marker */
    }
    return FNN_OK;
}

/* The whole file through its descriptor: no stdio stream, whose buffer and extra calls cost
 * as much as decoding a 28x28 PNG when a folder of 70,000 of them is read. */
static fnn_status read_file(const char *path, unsigned char **out, size_t *len, fnn_error *err)
{
    struct stat st;
    int fd;
    fnn_status s = fnn_input_fd(path, &fd, &st, err);
    if (s != FNN_OK)
        return s;
    if (st.st_size > MAX_FILE_BYTES) {
        close(fd);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: larger than %d MiB", path, MAX_FILE_BYTES >> 20);
    }
    size_t size = (size_t)st.st_size, n = 0;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for reading the file", path);
    }
    while (n < size) {
        ssize_t got = read(fd, buf + n, size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (n != size) {
        free(buf);
        return fnn_fail(err, FNN_ERR_IO, "%s: read error after %zu of %zu bytes", path, n, size);
    }
    *out = buf;
    *len = n;
    return FNN_OK;
}

fnn_status fnn_image_decode(const char *path, int c, uint8_t **out, int *ih, int *iw,
                            int *stored, fnn_error *err)
{
    size_t len = 0;
    unsigned char *bytes = NULL;
    fnn_status s = read_file(path, &bytes, &len, err);
    if (s != FNN_OK)
        return s;
    int channels;
    /* Checked before decoding: stb trusts a header's size, and its 16-bit PNM path reads past
     * its buffer (libstb 0.0~git20220908). */
    if (!known_format(bytes, len) || !stbi_info_from_memory(bytes, (int)len, iw, ih, &channels)) {
        free(bytes);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: not a readable PNG, JPEG, PGM or BMP image", path);
    }
    if (*iw < 1 || *ih < 1 || (int64_t)*iw * *ih > MAX_PIXELS) {
        free(bytes);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: the header declares %dx%d pixels, outside 1x1 to %d",
                        path, *iw, *ih, MAX_PIXELS);
    }
    if ((s = check_promised_size(path, bytes, len, err)) != FNN_OK ||
        (bytes[0] == 0xFF && (s = check_jpeg_tables(path, bytes, len, err)) != FNN_OK)) {
        free(bytes);
        return s;
    }
    if (stbi_is_16_bit_from_memory(bytes, (int)len)) {
        free(bytes);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: 16-bit images are not supported; save it with "
                        "8 bits per channel", path);
    }
    if (stored)
        *stored = channels >= 3 ? 3 : 1;
    stbi_uc *pix = stbi_load_from_memory(bytes, (int)len, iw, ih, &channels, c + 1);
    free(bytes);
    if (!pix) {
        /* stb's reason may quote bytes of the file (a PNG chunk type): made printable. */
        const char *why = stbi_failure_reason();
        char reason[64];
        snprintf(reason, sizeof reason, "%s", why && *why ? why : "no reason given");
        fnn_text_printable(reason, NULL);
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: not a readable PNG, JPEG, PGM or BMP image (%s)",
                        path, reason);
    }
    *out = pix; /* stb_image allocates with malloc */
    return FNN_OK;
}

fnn_status fnn_image_resize(const float *in, int c, int ih, int iw, float *out, int h, int w,
                            const char *path, fnn_error *err)
{
    for (int k = 0; k < c; k++)
        if (!stbir_resize_float_generic(in + (size_t)k * ih * iw, iw, ih, 0,
                                        out + (size_t)k * h * w, w, h, 0, 1,
                                        STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                        STBIR_FILTER_BOX, STBIR_COLORSPACE_LINEAR, NULL))
            return fnn_fail(err, FNN_ERR_NOMEM, "%s: resizing %dx%d to %dx%d failed", path, iw,
                            ih, w, h);
    return FNN_OK;
}

fnn_status fnn_image_load(const char *path, int c, int h, int w, int invert, float *x,
                          fnn_error *err)
{
    if (c != 1 && c != 3)
        return fnn_fail(err, FNN_ERR_ARG, "%s: %d channels requested, expected 1 or 3", path, c);
    if (h < 1 || w < 1)
        return fnn_fail(err, FNN_ERR_ARG, "%s: target size %dx%d is not positive", path, h, w);
    uint8_t *pix; // (ih, iw, c + 1)
    int ih, iw;
    fnn_status s = fnn_image_decode(path, c, &pix, &ih, &iw, NULL, err);
    if (s != FNN_OK)
        return s;
    size_t area = (size_t)iw * ih;
    float *planes = malloc(area * c * sizeof *planes); // (c, ih, iw)
    if (!planes) {
        free(pix);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, iw, ih);
    }
    /* Transparent pixels become the background: black once any inversion is done, as the
     * Fashion-MNIST images have it. */
    float background = invert ? 1.0f : 0.0f;
    for (size_t i = 0; i < area; i++) {
        float a = pix[(c + 1) * i + c] / 255.0f;
        for (int k = 0; k < c; k++)
            planes[k * area + i] = a * (pix[(c + 1) * i + k] / 255.0f) + (1.0f - a) * background;
    }
    free(pix);
    s = fnn_image_resize(planes, c, ih, iw, x, h, w, path, err);
    free(planes);
    if (s != FNN_OK)
        return s;
    for (size_t i = 0; i < (size_t)c * h * w; i++) {
        float v = x[i] < 0.0f ? 0.0f : x[i] > 1.0f ? 1.0f : x[i];
        x[i] = invert ? 1.0f - v : v;
    }
    return FNN_OK;
}
