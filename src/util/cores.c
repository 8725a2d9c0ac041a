/* How many of this process's cores other processes leave free (include/fnn.h,
 * fnn_cores_probe): fnn train's default team size. */
#define _GNU_SOURCE
#include "util/clock.h"
#include "util/cores.h"
#include "fnn.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double fnn_proc_stat_busy_ticks(const char *text, const cpu_set_t *allowed)
{
    double busy = 0.0;
    int found = 0;
    for (const char *line = text, *next; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        /* "cpu " is the machine's total; "cpuN " one core. */
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9')
            continue;
        char *end;
        unsigned long cpu = strtoul(line + 3, &end, 10);
        if (*end != ' ' || cpu >= CPU_SETSIZE || !CPU_ISSET((int)cpu, allowed))
            continue;
        /* user nice system idle iowait irq softirq steal: the busy ones are 0-2 and 5-7. */
        double field[8];
        int n = 0;
        for (const char *q = end; n < 8; n++) {
            errno = 0;
            field[n] = (double)strtoull(q, &end, 10);
            if (end == q || end > next || errno) /* a short line: not the next one's numbers */
                break;
            q = end;
        }
        if (n < 7) /* kernels before 2.6.11 have no steal column */
            continue;
        busy += field[0] + field[1] + field[2] + field[5] + field[6] + (n > 7 ? field[7] : 0.0);
        found = 1;
    }
    return found ? busy : -1.0;
}

int fnn_cores_free_of(int cores, double busy_s, double own_s, double wall_s, double *others_busy)
{
    double others = wall_s > 0.0 ? (busy_s - own_s) / wall_s : 0.0;
    if (others < 0.0) /* the ticks' rounding, on an idle machine */
        others = 0.0;
    if (others_busy)
        *others_busy = others;
    double free_cores = floor((double)cores - others + 0.5);
    return free_cores < 1.0 ? 1 : free_cores > cores ? cores : (int)free_cores;
}

/* /proc/stat's busy seconds on the allowed cores; -1 when it cannot be read. The file has a
 * line of about 90 bytes per core: STAT_CAP is room for about 700 cores, and a longer file is
 * cut after its last whole line, the cores past the cut not counting. */
#define STAT_CAP 65536

static double read_busy_s(const cpu_set_t *allowed)
{
    char *text = malloc(STAT_CAP);
    int fd = text ? open("/proc/stat", O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        free(text);
        return -1.0;
    }
    size_t len = 0;
    ssize_t got;
    while (len < STAT_CAP - 1 &&
           ((got = read(fd, text + len, STAT_CAP - 1 - len)) > 0 || (got < 0 && errno == EINTR)))
        len += got > 0 ? (size_t)got : 0;
    close(fd);
    text[len] = '\0';
    if (len == STAT_CAP - 1) {
        char *last = strrchr(text, '\n');
        *(last ? last + 1 : text) = '\0';
    }
    double ticks = fnn_proc_stat_busy_ticks(text, allowed);
    free(text);
    long hz = sysconf(_SC_CLK_TCK);
    return ticks < 0.0 || hz <= 0 ? -1.0 : ticks / (double)hz;
}

void fnn_cores_probe_start(fnn_cores_probe *p)
{
    cpu_set_t allowed;
    memset(p, 0, sizeof *p);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->cores = n > 0 ? (int)n : 1;
        return;
    }
    p->cores = CPU_COUNT(&allowed);
    p->wall_s = fnn_now_s();
    p->own_s = fnn_clock_s(CLOCK_PROCESS_CPUTIME_ID);
    p->busy_s = read_busy_s(&allowed);
    p->readable = p->busy_s >= 0.0;
}

int fnn_cores_probe_finish(const fnn_cores_probe *p, double min_seconds, double *others_busy)
{
    cpu_set_t allowed;
    if (others_busy)
        *others_busy = 0.0;
    if (!p->readable || sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return p->cores > 0 ? p->cores : 1;
    double left = min_seconds - (fnn_now_s() - p->wall_s);
    if (left > 0.0) {
        struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    double wall = fnn_now_s(), own = fnn_clock_s(CLOCK_PROCESS_CPUTIME_ID);
    double busy = read_busy_s(&allowed);
    if (busy < 0.0)
        return p->cores;
    return fnn_cores_free_of(p->cores, busy - p->busy_s, own - p->own_s, wall - p->wall_s,
                             others_busy);
}
