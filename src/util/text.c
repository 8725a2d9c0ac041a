/* Filtering text from files before it is shown, and the class names of a model file. */
#include "util/text.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of the UTF-8 sequence at s, negative when it encodes a character that must not be
 * shown, 0 when it is not UTF-8 (overlong forms, surrogates, code points past U+10FFFF, stray
 * bytes). Not shown: C0 controls and DEL (unless in keep), the C1 controls U+0080..U+009F
 * (U+009B is a terminal's CSI), and the bidirectional overrides and isolates (U+202A..U+202E,
 * U+2066..U+2069), which would reorder the rest of the line. */
static int char_length(const unsigned char *s, const char *keep)
{
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
          : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 1)
        return (c < 0x20 || c == 0x7F) && !(keep && strchr(keep, (int)c)) ? -1 : 1;
    if (n == 0)
        return 0;
    uint32_t cp = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if (cp <= 0x9F || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
        return -n;
    return n;
}

void fnn_text_printable(char *s, const char *keep)
{
    unsigned char *r = (unsigned char *)s, *w = r;
    while (*r) {
        int n = char_length(r, keep);
        if (n > 0) {
            memmove(w, r, (size_t)n);
            w += n;
        } else {
            *w++ = '?'; /* one for a whole hidden character, one for each stray byte */
        }
        r += n > 0 ? n : n < 0 ? -n : 1;
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
