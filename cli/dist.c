/* Distribution over MPI ranks (cli/dist.h): Open MPI when built with FNN_MPI and started by
 * mpirun, else the single-process case. Nothing else in fnn includes mpi.h. */
#define _GNU_SOURCE
#include "dist.h"
#include "cli.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/input.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef FNN_MPI
#include <mpi.h>
#endif

extern char **environ;

static int g_rank = 0, g_size = 1, g_joined = 0;
static char g_where[48] = "";
static double g_allreduce_s = 0.0;

/* A positive integer from the environment mpirun gives its ranks, or 0 when unset. */
static int env_count(const char *name)
{
    const char *v = getenv(name);
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    return v && *v && !*end && n > 0 && n <= INT_MAX ? (int)n : 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
const char *dist_where(void) { return g_where; }
double dist_allreduce_seconds(void) { return g_allreduce_s; }

int dist_local_size(void)
{
    int n = g_joined ? env_count("OMPI_COMM_WORLD_LOCAL_SIZE") : 0;
    return n > 0 ? n : 1;
}

#ifdef FNN_MPI
/* MPI's own words for an error code. */
static const char *mpi_text(int code, char *buf)
{
    int len = 0;
    if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS)
        snprintf(buf, MPI_MAX_ERROR_STRING, "MPI error %d", code);
    return buf;
}

/* The message of a failed call on the communicator: most often a peer that died. */
static fnn_status mpi_fail(fnn_error *err, const char *what, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    return fnn_fail(err, FNN_ERR_IO, "rank %d of %d: %s failed (%s): another rank has probably "
                    "died or become unreachable", g_rank, g_size, what, mpi_text(code, text));
}
#endif

int dist_init(const char *cmd)
{
    /* Open MPI's launcher sets these for every rank it starts (singleton runs have none). */
    int launched = env_count("OMPI_COMM_WORLD_SIZE");
    if (!launched)
        return EXIT_OK;
#ifdef FNN_MPI
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS)
        return cli_error(cmd, EXIT_RUNTIME, "MPI_Init failed (error %d)", rc);
    g_joined = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_size > 1) {
        snprintf(g_where, sizeof g_where, "rank %d of %d", g_rank, g_size);
        cli_where = g_where;
    }
    /* The gradient hook runs on whichever thread of the team reaches it, one at a time. */
    if (provided < MPI_THREAD_SERIALIZED)
        return cli_error(cmd, EXIT_RUNTIME, "this Open MPI gives threads level %d; fnn needs "
                         "MPI_THREAD_SERIALIZED (%d)", provided, MPI_THREAD_SERIALIZED);
    return EXIT_OK;
#else
    if (launched > 1)
        return cli_error(cmd, EXIT_USAGE, "started by mpirun as one of %d ranks, but this fnn was "
                         "built without MPI (FNN_MPI=OFF): install libopenmpi-dev and rebuild, or "
                         "run it without mpirun", launched);
    return EXIT_OK;
#endif
}

int dist_single(const char *cmd)
{
    int launched = env_count("OMPI_COMM_WORLD_SIZE");
    if (launched > 1)
        return cli_error(cmd, EXIT_USAGE, "started by mpirun as one of %d ranks: only fnn train "
                         "and fnn search run over several ranks; run fnn %s without mpirun",
                         launched, cmd);
    return EXIT_OK;
}

void dist_finalize(void)
{
#ifdef FNN_MPI
    if (g_joined)
        MPI_Finalize();
#endif
    g_joined = 0;
}

int dist_agree(const char *cmd, int rc)
{
#ifdef FNN_MPI
    if (g_size > 1) {
        int worst = rc, code = MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS) {
            fnn_error err = {0};
            mpi_fail(&err, "agreeing on the outcome with the other ranks", code);
            return cli_error(cmd, EXIT_RUNTIME, "%s", err.msg);
        }
        return worst;
    }
#else
    (void)cmd;
#endif
    return rc;
}

/* ---------------------------------------------------------------- the configuration check */

uint64_t dist_hash(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    w = (uint64_t)len << 56;
    for (size_t i = 0; i < len; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    return h;
}

uint64_t dist_hash_str(uint64_t h, const char *s)
{
    /* The NUL too: "ab","c" and "a","bc" differ. */
    return dist_hash(h, s, strlen(s) + 1);
}

fnn_status dist_hash_binary(uint64_t *out, fnn_error *err)
{
    FILE *f;
    if (fnn_input_open("/proc/self/exe", &f, NULL, err) != FNN_OK)
        return err->status;
    static unsigned char buf[1 << 16];
    uint64_t h = DIST_HASH_SEED;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        h = dist_hash(h, buf, got);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return fnn_fail(err, FNN_ERR_IO, "/proc/self/exe: cannot read this program's file");
    *out = h;
    return FNN_OK;
}

fnn_status dist_hash_data(const char *path, const char *split, uint64_t *out, fnn_error *err)
{
    char **paths = NULL;
    int n = 0;
    fnn_status s = fnn_data_files(path, split, NULL, &paths, &n, err);
    uint64_t h = dist_hash_str(DIST_HASH_SEED, split);
    static unsigned char buf[1 << 16];
    for (int i = 0; i < n; i++) {
        FILE *f = NULL;
        if (s == FNN_OK)
            s = fnn_input_open(paths[i], &f, NULL, err);
        size_t got, size = 0;
        while (s == FNN_OK && (got = fread(buf, 1, sizeof buf, f)) > 0) {
            h = dist_hash(h, buf, got);
            size += got;
        }
        if (f && ferror(f) && s == FNN_OK)
            s = fnn_fail(err, FNN_ERR_IO, "%s: read error", paths[i]);
        if (f)
            fclose(f);
        h = dist_hash(h, &size, sizeof size);
        free(paths[i]);
    }
    free(paths);
    *out = h;
    return s;
}

int dist_check_config(const char *cmd, const dist_part *parts, int nparts)
{
#ifdef FNN_MPI
    enum { MAX_PARTS = 8 };
    if (g_size == 1)
        return EXIT_OK;
    uint64_t mine[MAX_PARTS] = {0};
    for (int i = 0; i < nparts && i < MAX_PARTS; i++)
        mine[i] = parts[i].hash;
    uint64_t *all = malloc((size_t)g_size * sizeof mine);
    if (!all)
        return cli_error(cmd, EXIT_RUNTIME, "%s: out of memory", g_where);
    int code = MPI_Allgather(mine, MAX_PARTS, MPI_UINT64_T, all, MAX_PARTS, MPI_UINT64_T,
                             MPI_COMM_WORLD);
    if (code != MPI_SUCCESS) {
        free(all);
        fnn_error err = {0};
        mpi_fail(&err, "comparing the configuration with the other ranks", code);
        return cli_error(cmd, EXIT_RUNTIME, "%s", err.msg);
    }
    int rc = EXIT_OK;
    for (int i = 0; i < nparts && i < MAX_PARTS; i++) {
        char ranks[256] = "";
        size_t used = 0;
        for (int r = 1; r < g_size; r++)
            if (all[(size_t)r * MAX_PARTS + i] != all[i] && used < sizeof ranks - 16)
                used += (size_t)snprintf(ranks + used, sizeof ranks - used, "%s%d",
                                         used ? ", " : "", r);
        if (used) {
            rc = cli_error(cmd, EXIT_USAGE, "the ranks were not started alike: %s differs "
                           "between rank 0 and rank %s; every rank must run the same fnn with "
                           "the same options on the same data", parts[i].name, ranks);
        }
    }
    free(all);
    return rc;
#else
    (void)cmd;
    (void)parts;
    (void)nparts;
    return EXIT_OK;
#endif
}

/* ---------------------------------------------------------------- reductions and transfers */

fnn_status dist_allreduce_sum(float *buf, size_t n, fnn_error *err)
{
#ifdef FNN_MPI
    if (g_size == 1)
        return FNN_OK;
    double t0 = fnn_now_s();
    /* MPI counts are ints: a larger arena goes in pieces. */
    for (size_t at = 0; at < n;) {
        int count = n - at > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)(n - at);
        int code = MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM,
                                 MPI_COMM_WORLD);
        if (code != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Allreduce of the gradients", code);
        at += (size_t)count;
    }
    g_allreduce_s += fnn_now_s() - t0;
#else
    (void)buf;
    (void)n;
    (void)err;
#endif
    return FNN_OK;
}

fnn_status dist_gather_text(const char *text, char ***all, fnn_error *err)
{
    *all = NULL;
    char **out = g_rank == 0 ? calloc((size_t)g_size, sizeof *out) : NULL;
    if (g_rank == 0 && !out)
        return fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
    if (g_size == 1) {
        if (!(out[0] = strdup(text))) {
            free(out);
            return fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
        }
        *all = out;
        return FNN_OK;
    }
#ifdef FNN_MPI
    size_t len = strlen(text) + 1;
    if (len > INT_MAX)
        return fnn_fail(err, FNN_ERR_ARG, "rank %d of %d: %zu bytes of results are too many to "
                        "send", g_rank, g_size, len);
    int mylen = (int)len, *lens = NULL, *offs = NULL;
    char *joined = NULL;
    fnn_status s = FNN_OK;
    if (g_rank == 0 && (!(lens = calloc((size_t)g_size, sizeof *lens)) ||
                        !(offs = calloc((size_t)g_size, sizeof *offs))))
        s = fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
    /* Every rank takes part in the collectives even after a local failure, or the others
     * would wait for it; rank 0 then reports. */
    int code = MPI_Gather(&mylen, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (code != MPI_SUCCESS && s == FNN_OK)
        s = mpi_fail(err, "MPI_Gather of the results' sizes", code);
    size_t total = 0;
    for (int r = 0; g_rank == 0 && lens && r < g_size; r++) {
        offs[r] = (int)total;
        total += (size_t)lens[r];
    }
    if (g_rank == 0 && s == FNN_OK && total > INT_MAX)
        s = fnn_fail(err, FNN_ERR_ARG, "the ranks' results, %zu bytes, are too many to gather",
                     total);
    if (g_rank == 0 && s == FNN_OK && !(joined = malloc(total)))
        s = fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
    code = MPI_Gatherv(text, mylen, MPI_CHAR, joined, lens, offs, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (code != MPI_SUCCESS && s == FNN_OK)
        s = mpi_fail(err, "MPI_Gatherv of the results", code);
    for (int r = 0; g_rank == 0 && s == FNN_OK && r < g_size; r++)
        if (!(out[r] = strndup(joined + offs[r], (size_t)lens[r])))
            s = fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
    free(lens);
    free(offs);
    free(joined);
    if (s != FNN_OK) {
        for (int r = 0; out && r < g_size; r++)
            free(out[r]);
        free(out);
        return s;
    }
    *all = out;
    return FNN_OK;
#else
    return fnn_fail(err, FNN_ERR_ARG, "several ranks without MPI");
#endif
}

fnn_status dist_bcast_int(int *v, fnn_error *err)
{
#ifdef FNN_MPI
    if (g_size > 1) {
        int code = MPI_Bcast(v, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Bcast from rank 0", code);
    }
#else
    (void)v;
    (void)err;
#endif
    return FNN_OK;
}

fnn_status dist_send_to_root(int from, char **buf, size_t *len, fnn_error *err)
{
    if (from == 0 || (g_rank != 0 && g_rank != from))
        return FNN_OK;
#ifdef FNN_MPI
    uint64_t n = g_rank == from ? (uint64_t)*len : 0;
    int code;
    if (g_rank == from) {
        if (n > INT_MAX)
            return fnn_fail(err, FNN_ERR_ARG, "rank %d of %d: %llu bytes are too many to send",
                            g_rank, g_size, (unsigned long long)n);
        if ((code = MPI_Send(&n, 1, MPI_UINT64_T, 0, 1, MPI_COMM_WORLD)) != MPI_SUCCESS ||
            (code = MPI_Send(*buf, (int)n, MPI_BYTE, 0, 2, MPI_COMM_WORLD)) != MPI_SUCCESS)
            return mpi_fail(err, "sending to rank 0", code);
        return FNN_OK;
    }
    if ((code = MPI_Recv(&n, 1, MPI_UINT64_T, from, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) !=
        MPI_SUCCESS)
        return mpi_fail(err, "receiving from another rank", code);
    char *got = malloc(n ? (size_t)n : 1);
    if (!got)
        return fnn_fail(err, FNN_ERR_NOMEM, "out of memory");
    if ((code = MPI_Recv(got, (int)n, MPI_BYTE, from, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) !=
        MPI_SUCCESS) {
        free(got);
        return mpi_fail(err, "receiving from another rank", code);
    }
    *buf = got;
    *len = (size_t)n;
    return FNN_OK;
#else
    return fnn_fail(err, FNN_ERR_ARG, "several ranks without MPI");
#endif
}

char **dist_child_environ(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 1) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OMPI_", 5) && strncmp(environ[i], "PMIX_", 5))
            env[k++] = environ[i];
    env[k] = NULL;
    return env;
}
