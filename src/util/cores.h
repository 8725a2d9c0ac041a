/* The free-cores probe's parsing of /proc/stat, apart from the file so that tests can feed it
 * text of their own. */
#ifndef FNN_UTIL_CORES_H
#define FNN_UTIL_CORES_H

#include <sched.h> /* cpu_set_t: define _GNU_SOURCE before any include */

/* The busy clock ticks in /proc/stat's text, summed over the "cpuN" lines whose N is in
 * `allowed`: user, nice, system, irq, softirq and steal (idle and iowait are not busy; guest
 * time is already inside user). -1 when no such line parses. */
double fnn_proc_stat_busy_ticks(const char *text, const cpu_set_t *allowed);

/* The probe's arithmetic: the cores less the others' average use (busy seconds less this
 * process's, over the window), rounded, kept within 1..cores. *others_busy gets that use. */
int fnn_cores_free_of(int cores, double busy_s, double own_s, double wall_s, double *others_busy);

#endif
