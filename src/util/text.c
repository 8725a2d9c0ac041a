/* Filtering text from files before it is shown, and the class names of a model file. */
#include "util/text.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of the UTF-8 sequence at s if it encodes a character that may be shown, else 0:
 * overlong forms, surrogates and code points past U+10FFFF are not UTF-8, U+0080..U+009F are
 * the C1 controls (U+009B is a terminal's CSI), and the bidirectional overrides and isolates
 * (U+202A..U+202E, U+2066..U+2069) would reorder the rest of the line. */
static size_t shown_length(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
             : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n <= 1)
        return n;
    uint32_t cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp <= 0x9F ||
        (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return n;
}

void fnn_text_printable(char *s, const char *keep)
{
    unsigned char *r = (unsigned char *)s, *w = r;
    while (*r) {
        size_t n = shown_length(r);
        if (n == 1 && (*r < 0x20 || *r == 0x7F) && !(keep && strchr(keep, *r)))
            n = 0;
        if (n) {
            memmove(w, r, n);
            w += n;
            r += n;
        } else {
            *w++ = '?';
            r++;
        }
    }
    *w = '\0';
}

char **fnn_class_names(const char *json, int k)
{
    cJSON *list = json ? cJSON_Parse(json) : NULL;
    int whole = cJSON_IsArray(list) && cJSON_GetArraySize(list) == k;
    char **names = calloc(k > 0 ? (size_t)k : 1, sizeof *names);
    const cJSON *item = whole ? list->child : NULL;
    for (int i = 0; names && i < k; i++, item = item ? item->next : NULL) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        names[i] = strdup(cJSON_IsString(item) ? item->valuestring : idx);
        if (!names[i]) {
            fnn_class_names_free(names, i);
            names = NULL;
            break;
        }
        fnn_text_printable(names[i], NULL);
    }
    cJSON_Delete(list);
    return names;
}

void fnn_class_names_free(char **names, int k)
{
    for (int i = 0; names && i < k; i++)
        free(names[i]);
    free(names);
}
