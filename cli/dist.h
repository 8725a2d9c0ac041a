/* Distribution over processes for `mpirun -np N fnn train` and `fnn search` (issue 19): the one
 * place that knows MPI. Without MPI (built with FNN_MPI=OFF, or not started by mpirun) every
 * function is the single-process case: rank 0 of 1, reductions that change nothing. */
#ifndef FNN_CLI_DIST_H
#define FNN_CLI_DIST_H

#include "fnn.h"

#include <stddef.h>
#include <stdint.h>

/* Joins the job mpirun started, when it started this process: EXIT_OK, or the exit status of the
 * error printed (a build without MPI started as one of several ranks, MPI_Init failing). Errors
 * on the communicator are returned to the caller (MPI_ERRORS_RETURN) rather than aborting the
 * job, so that fnn says what failed and where. */
int dist_init(const char *cmd);
/* For the commands that run as one process: EXIT_USAGE, after saying so, when mpirun started
 * several copies of it. */
int dist_single(const char *cmd);
/* Leaves the job; nothing when dist_init did not join one. */
void dist_finalize(void);

int dist_rank(void); /* 0 when alone */
int dist_size(void); /* 1 when alone */
/* The ranks that mpirun started on this host (OMPI_COMM_WORLD_LOCAL_SIZE), 1 when alone: they
 * share its cores. */
int dist_local_size(void);

/* "rank 1 of 4" for messages, "" when alone. */
const char *dist_where(void);

/* The largest of every rank's rc: each rank passes its own outcome and all stop together when
 * one of them failed (each has printed its own message). Also the place where a rank learns
 * that a peer died: a failed reduction prints so and returns EXIT_RUNTIME. */
int dist_agree(const char *cmd, int rc);

/* 64-bit digest of bytes, chained through h (start with DIST_HASH_SEED). Not cryptographic: it
 * catches ranks that were given different things by mistake. */
#define DIST_HASH_SEED 0x6A09E667F3BCC908ull
uint64_t dist_hash(uint64_t h, const void *data, size_t len);
uint64_t dist_hash_str(uint64_t h, const char *s);
/* The digest of this process's executable file (/proc/self/exe): ranks must run one build. */
fnn_status dist_hash_binary(uint64_t *out, fnn_error *err);

/* The digest of the bytes and sizes of every file that the split of the data at path reads
 * (fnn_data_files), in their order: ranks on other hosts must hold the same data, wherever and
 * whenever it was copied there. */
fnn_status dist_hash_data(const char *path, const char *split, uint64_t *out, fnn_error *err);

/* One part of the configuration that every rank must share: what it is called in messages
 * ("the fnn executable", "the options", "the data at /path") and its digest. */
typedef struct {
    const char *name;
    uint64_t hash;
} dist_part;

/* Compares every rank's parts with rank 0's, before any work. EXIT_OK when all agree; otherwise
 * every rank prints which parts differ on which ranks and gets EXIT_USAGE. nparts must be the
 * same on every rank (at most 8). */
int dist_check_config(const char *cmd, const dist_part *parts, int nparts);

/* buf (n floats) becomes the sum over ranks, in place (MPI_Allreduce, MPI_SUM). On failure err
 * names the rank. A sum, not a mean: each shard's loss is divided by the whole batch already
 * (fnn_train_config.shard_count), so the sum is the gradient of the batch. */
fnn_status dist_allreduce_sum(float *buf, size_t n, fnn_error *err);
/* Seconds this process has spent inside dist_allreduce_* so far. */
double dist_allreduce_seconds(void);

/* Every rank's text (NUL-terminated) to rank 0: there *all receives dist_size() malloc'd strings
 * (free each, then the array); elsewhere *all is NULL. Collective. */
fnn_status dist_gather_text(const char *text, char ***all, fnn_error *err);
/* v from rank 0 to every rank. Collective. */
fnn_status dist_bcast_int(int *v, fnn_error *err);
/* len bytes from rank `from` to rank 0: on rank 0 *buf receives a malloc'd copy (or the
 * sender's own buffer when from is 0), on `from` buf is sent; other ranks do nothing. */
fnn_status dist_send_to_root(int from, char **buf, size_t *len, fnn_error *err);

/* The environment for child processes: this process's, without the variables mpirun set for
 * it (OMPI_*, PMIX_*), so that a child fnn is a process of its own and not another copy of this
 * rank. A NULL-terminated array of pointers into environ, malloc'd; NULL when out of memory. */
char **dist_child_environ(void);

#endif
