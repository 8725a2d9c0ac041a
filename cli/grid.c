/* Search grids: parsing "key = v1, v2" lines from --grid arguments and grid files, counting and
 * enumerating configurations, and filling {name} placeholders. Never prints or exits. */
#include "grid.h"
#include "util/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest token quoted in a message; longer ones are cut with "...". */
#define QUOTE_MAX 60

static const char *quote(const char *s, size_t len, char *buf, size_t size)
{
    if (len <= QUOTE_MAX && len < size)
        snprintf(buf, size, "%.*s", (int)len, s);
    else
        snprintf(buf, size, "%.*s...", QUOTE_MAX, s);
    return buf;
}

static void trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s))
        (*s)++, (*len)--;
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int valid_name(const char *s, size_t len)
{
    if (!len || !isalpha((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
    return 1;
}

static const grid_key *find_n(const grid *g, const char *name, size_t len)
{
    for (int i = 0; i < g->nkeys; i++)
        if (strlen(g->keys[i].name) == len && !memcmp(g->keys[i].name, name, len))
            return &g->keys[i];
    return NULL;
}

const grid_key *grid_find(const grid *g, const char *name)
{
    return find_n(g, name, strlen(name));
}

static void key_free(grid_key *k)
{
    for (int i = 0; i < k->nvalues; i++)
        free(k->values[i]);
    free(k->values);
    free(k->name);
}

/* Parses "key = v1, v2, ..." (len bytes, no newline) into a new key of g. */
static fnn_status parse_line(grid *g, const char *line, size_t len, const char *origin,
                             fnn_error *err)
{
    char q[QUOTE_MAX + 8], q2[QUOTE_MAX + 8];
    trim(&line, &len);
    const char *eq = memchr(line, '=', len);
    if (!eq)
        return fnn_fail(err, FNN_ERR_FORMAT, "%s: expected 'key = value, value, ...', got '%s'",
                        origin, quote(line, len, q, sizeof q));
    const char *name = line;
    size_t nlen = (size_t)(eq - line);
    trim(&name, &nlen);
    if (!valid_name(name, nlen))
        return fnn_fail(err, FNN_ERR_FORMAT,
                        "%s: key '%s': expected a name of letters, digits, '-' and '_' starting "
                        "with a letter (an fnn train option without its dashes)",
                        origin, quote(name, nlen, q, sizeof q));
    char *key = strndup(name, nlen);
    if (!key)
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", origin);
    const grid_key *prev = grid_find(g, key);
    if (prev) {
        fnn_status s = fnn_fail(err, FNN_ERR_FORMAT, "%s: key '%s' is given twice (first in %s)",
                                origin, key, prev->origin);
        free(key);
        return s;
    }
    grid_key k = {.name = key};
    snprintf(k.origin, sizeof k.origin, "%s", origin);
    const char *p = eq + 1, *end = line + len;
    for (int i = 1;; i++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *v = p;
        size_t vlen = (size_t)((comma ? comma : end) - p);
        trim(&v, &vlen);
        fnn_status s = FNN_OK;
        if (!vlen)
            s = fnn_fail(err, FNN_ERR_FORMAT, "%s: key '%s': value %d is empty", origin, key, i);
        for (size_t j = 0; j < vlen && s == FNN_OK; j++)
            if (iscntrl((unsigned char)v[j]))
                s = fnn_fail(err, FNN_ERR_FORMAT,
                             "%s: key '%s': value %d '%s' holds control character 0x%02x", origin,
                             key, i, quote(v, vlen, q, sizeof q), (unsigned char)v[j]);
        for (int j = 0; j < k.nvalues && s == FNN_OK; j++)
            if (strlen(k.values[j]) == vlen && !memcmp(k.values[j], v, vlen))
                s = fnn_fail(err, FNN_ERR_FORMAT, "%s: key '%s': value '%s' is given twice",
                             origin, key, quote(v, vlen, q2, sizeof q2));
        char **grown = NULL;
        if (s == FNN_OK && !(grown = realloc(k.values, (size_t)(k.nvalues + 1) * sizeof *grown)))
            s = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", origin);
        if (grown)
            k.values = grown;
        if (s == FNN_OK && !(k.values[k.nvalues] = strndup(v, vlen)))
            s = fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", origin);
        if (s != FNN_OK) {
            key_free(&k);
            return s;
        }
        k.nvalues++;
        if (!comma)
            break;
        p = comma + 1;
    }
    grid_key *keys = realloc(g->keys, (size_t)(g->nkeys + 1) * sizeof *keys);
    if (!keys) {
        key_free(&k);
        return fnn_fail(err, FNN_ERR_NOMEM, "%s: out of memory", origin);
    }
    g->keys = keys;
    g->keys[g->nkeys++] = k;
    return FNN_OK;
}

fnn_status grid_add(grid *g, const char *text, const char *origin, fnn_error *err)
{
    return parse_line(g, text, strlen(text), origin, err);
}

fnn_status grid_parse(grid *g, const char *buf, size_t len, const char *file, fnn_error *err)
{
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *p = buf; p < nul; p++)
            line += *p == '\n';
        return fnn_fail(err, FNN_ERR_FORMAT, "%s line %d: NUL byte (not a text file?)", file,
                        line);
    }
    const char *p = buf, *end = buf + len;
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        const char *hash = memchr(p, '#', (size_t)(stop - p));
        const char *text = p;
        size_t tlen = (size_t)((hash ? hash : stop) - p);
        trim(&text, &tlen);
        if (tlen) {
            char origin[256];
            snprintf(origin, sizeof origin, "%.200s line %d", file, line);
            fnn_status s = parse_line(g, text, tlen, origin, err);
            if (s != FNN_OK)
                return s;
        }
        p = nl ? nl + 1 : end;
    }
    return FNN_OK;
}

void grid_free(grid *g)
{
    for (int i = 0; i < g->nkeys; i++)
        key_free(&g->keys[i]);
    free(g->keys);
    g->keys = NULL;
    g->nkeys = 0;
}

uint64_t grid_size(const grid *g, uint64_t limit)
{
    uint64_t n = 1;
    for (int i = 0; i < g->nkeys; i++) {
        if ((uint64_t)g->keys[i].nvalues > limit / n)
            return 0;
        n *= (uint64_t)g->keys[i].nvalues;
    }
    return n;
}

void grid_config(const grid *g, uint64_t index, int *choice)
{
    for (int i = g->nkeys - 1; i >= 0; i--) {
        choice[i] = (int)(index % (uint64_t)g->keys[i].nvalues);
        index /= (uint64_t)g->keys[i].nvalues;
    }
}

char *grid_fill(const grid *g, const int *choice, const char *text, const char *self_key,
                fnn_error *err)
{
    size_t cap = strlen(text) + 1, n = 0;
    char *out = malloc(cap);
    for (const char *p = text; out && *p;) {
        const char *piece = p;
        size_t plen = 1;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close) {
                fnn_fail(err, FNN_ERR_ARG, "'%s': '{' without a closing '}'", text);
                free(out);
                return NULL;
            }
            size_t nlen = (size_t)(close - p - 1);
            const grid_key *k = find_n(g, p + 1, nlen);
            if (!k || !strcmp(k->name, self_key)) {
                char q[QUOTE_MAX + 8];
                fnn_fail(err, FNN_ERR_ARG, "'%s': placeholder {%s} names %s", text,
                         quote(p + 1, nlen, q, sizeof q),
                         k ? "the key it belongs to" : "no grid key");
                free(out);
                return NULL;
            }
            piece = k->values[choice[k - g->keys]];
            plen = strlen(piece);
            p = close + 1;
        } else {
            p++;
        }
        if (n + plen + 1 > cap) {
            char *grown = realloc(out, cap = 2 * (n + plen + 1));
            if (!grown)
                free(out);
            out = grown;
            if (!out)
                break;
        }
        memcpy(out + n, piece, plen);
        n += plen;
    }
    if (!out) {
        fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    out[n] = '\0';
    return out;
}
