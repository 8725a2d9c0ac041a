/* The free-cores probe behind fnn train's default thread count: /proc/stat's busy columns, the
 * cores it counts (this process's affinity), and the arithmetic that leaves out this process's
 * own time and rounds the others' use to whole cores. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sched.h>

#include "fnn.h"
#include "util/cores.h"

/* user nice system idle iowait irq softirq steal guest guest_nice; a busy sum per line. */
static const char stat_text[] =
    "cpu  1000 1000 1000 1000 1000 1000 1000 1000 0 0\n"   /* the total: never counted */
    "cpu0 1 2 4 1000 2000 8 16 32 64 128\n"                 /* busy 1+2+4+8+16+32 = 63 */
    "cpu1 100 200 400 1000 2000 800 1600 3200 0 0\n"        /* busy 6300 */
    "cpu2 10000 0 0 0 0 0 0\n"                              /* no steal column: busy 10000 */
    "cpu3 5 5\n"                                            /* too short: skipped */
    " 9 9 9 9 9 9 9 9\n"                                    /* not cpu3's columns */
    "intr 7 7 7 7 7 7 7 7 7\n"
    "cpu4 1 1 1 1 1 1 1 1 0 0\n"                            /* busy 6 */
    "ctxt 12345\n";

static double busy_of(int first, int last)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = first; c <= last; c++)
        CPU_SET(c, &set);
    return fnn_proc_stat_busy_ticks(stat_text, &set);
}

static void test_busy_columns_of_the_allowed_cores(void **state)
{
    assert_true(busy_of(0, 0) == 63.0);  /* idle, iowait and guest left out */
    assert_true(busy_of(1, 1) == 6300.0);
    assert_true(busy_of(0, 1) == 6363.0);
    assert_true(busy_of(2, 2) == 10000.0);
    /* cpu3's short line is skipped without reading the next line's numbers; cpu4 still counts. */
    assert_true(busy_of(3, 3) == -1.0);
    assert_true(busy_of(3, 4) == 6.0);
    assert_true(busy_of(0, 4) == 16369.0);
    assert_true(busy_of(5, 9) == -1.0); /* no line for the allowed cores */
    cpu_set_t none;
    CPU_ZERO(&none);
    assert_true(fnn_proc_stat_busy_ticks("", &none) == -1.0);
}

static void test_others_rounded_to_whole_cores(void **state)
{
    double others;
    /* `yes` on one of two cores for a 0.1 s window, this process idle: one core left. */
    assert_int_equal(fnn_cores_free_of(2, 0.1, 0.0, 0.1, &others), 1);
    assert_true(others > 0.99 && others < 1.01);
    /* This process's own work is not another's: both cores busy with it, both free. */
    assert_int_equal(fnn_cores_free_of(2, 0.2, 0.2, 0.1, &others), 2);
    assert_true(others == 0.0);
    /* Rounded to the nearest core. */
    assert_int_equal(fnn_cores_free_of(4, 0.04, 0.0, 0.1, NULL), 4);
    assert_int_equal(fnn_cores_free_of(4, 0.06, 0.0, 0.1, NULL), 3);
    assert_int_equal(fnn_cores_free_of(4, 0.24, 0.0, 0.1, NULL), 2);
    /* Never below one, never above the cores; the ticks' rounding cannot make others negative. */
    assert_int_equal(fnn_cores_free_of(2, 0.5, 0.0, 0.1, NULL), 1);
    assert_int_equal(fnn_cores_free_of(2, 0.0, 0.05, 0.1, &others), 2);
    assert_true(others == 0.0);
    assert_int_equal(fnn_cores_free_of(2, 0.1, 0.0, 0.0, NULL), 2); /* no window */
}

/* The probe counts the cores this process may run on: pinned to one, it finds one, whatever
 * the machine runs. */
static void test_probe_follows_affinity(void **state)
{
    cpu_set_t saved, one;
    assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
    fnn_cores_probe p;
    fnn_cores_probe_start(&p);
    assert_int_equal(p.cores, CPU_COUNT(&saved));
    assert_true(p.readable); /* Linux with /proc: the tests' machine */
    int free_all = fnn_cores_probe_finish(&p, 0.02, NULL);
    assert_true(free_all >= 1 && free_all <= p.cores);

    int first = 0;
    while (!CPU_ISSET(first, &saved))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    fnn_cores_probe_start(&p);
    double others = -1.0;
    int got = fnn_cores_probe_finish(&p, 0.02, &others);
    assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
    assert_int_equal(p.cores, 1);
    assert_int_equal(got, 1);
    assert_true(others >= 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_columns_of_the_allowed_cores),
        cmocka_unit_test(test_others_rounded_to_whole_cores),
        cmocka_unit_test(test_probe_follows_affinity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
