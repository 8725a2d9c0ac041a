/* The safetensors container (u64 header length, JSON header, raw little-endian data), F32 only.
 * Model-agnostic: src/io/model_file.c gives the tensors and metadata their meaning. */
#ifndef FNN_IO_SAFETENSORS_H
#define FNN_IO_SAFETENSORS_H

#include <stddef.h>

#include "fnn.h"

#define FNN_ST_MAX_RANK 8
/* Larger headers are refused before anything is allocated for them. */
#define FNN_ST_MAX_HEADER ((size_t)100 * 1000 * 1000)

typedef struct {
    const char *name;
    int rank;                       /* 0 (a scalar) to FNN_ST_MAX_RANK */
    size_t shape[FNN_ST_MAX_RANK];  /* (rank) */
    size_t size;                    /* product of shape: the number of floats */
    const float *data;              /* (size) */
} fnn_st_tensor;

/* A file read by fnn_st_read. Everything points into memory it owns. */
typedef struct {
    int ntensors;
    fnn_st_tensor *tensors; /* (ntensors) in header order */
    int nmeta;
    const char **meta_keys;   /* (nmeta) */
    const char **meta_values; /* (nmeta) */
    float *data;         /* the data section, (data_size / 4); tensors point into it */
    size_t data_size;    /* bytes */
    char *strings;       /* names, keys and values, NUL-separated */
} fnn_st_file;

/* Reads and fully validates path (see safetensors.c for the rules). On failure out is left
 * empty, so fnn_st_free is safe either way. */
fnn_status fnn_st_read(const char *path, fnn_st_file *out, fnn_error *err);
void fnn_st_free(fnn_st_file *st);

/* The tensor or metadata value with that name, or NULL. */
const fnn_st_tensor *fnn_st_find(const fnn_st_file *st, const char *name);
const char *fnn_st_meta(const fnn_st_file *st, const char *key);

/* Writes tensors (their size must equal the product of their shape) contiguously in the order
 * given, with string metadata, atomically. Names must be unique, non-empty and not
 * "__metadata__"; metadata keys unique. */
fnn_status fnn_st_write(const char *path, const fnn_st_tensor *tensors, int ntensors,
                        const char *const *meta_keys, const char *const *meta_values, int nmeta,
                        fnn_error *err);

#endif
