/* The team barrier (util/team.c): no thread passes before the whole team arrives, none is lost
 * asleep, and a thread that waits long for a late one sleeps instead of holding its core: on a
 * machine where something else runs, the late thread may be waiting for that core. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "util/team.h"

#include <stdlib.h>
#include <time.h>

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rounds of every thread bumping its own counter, then checking all of them, between barriers:
 * a thread that got past a barrier early would see another's counter a round behind. Spin
 * budgets of none, short and default make some waits end spinning and others asleep. */
static void test_barrier_orders_rounds(void **state)
{
    (void)state;
    const char *budgets[] = {"0", "2000", NULL};
    for (int b = 0; b < 3; b++) {
        if (budgets[b])
            setenv("FNN_SPIN_NS", budgets[b], 1);
        else
            unsetenv("FNN_SPIN_NS");
        for (int nt = 2; nt <= 4; nt++) {
            enum { ROUNDS = 3000 };
            int count[4] = {0}, bad = 0;
            fnn_barrier team;
#pragma omp parallel num_threads(nt) reduction(+ : bad)
            {
                fnn_team_begin(&team);
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                for (int r = 1; r <= ROUNDS; r++) {
                    __atomic_store_n(&count[t], r, __ATOMIC_RELAXED);
                    if (r % 997 == t) { /* now and then, a thread arrives late */
                        struct timespec pause = {0, 200000};
                        nanosleep(&pause, NULL);
                    }
                    fnn_team_sync(&team);
                    for (int j = 0; j < n; j++)
                        bad += __atomic_load_n(&count[j], __ATOMIC_RELAXED) != r;
                    fnn_team_sync(&team);
                }
                fnn_team_end(&team);
            }
            assert_int_equal(bad, 0);
        }
    }
    unsetenv("FNN_SPIN_NS");
}

/* Thread 1 arrives 300 ms after thread 0. Thread 0 must sleep through nearly all of that: a
 * barrier that spins or yields the whole time uses about 300 ms of its CPU (under load, its
 * share of them), one that sleeps after a bounded spin well under 30 ms. */
static void test_barrier_sleeps_through_a_long_wait(void **state)
{
    (void)state;
    unsetenv("FNN_SPIN_NS");
    fnn_barrier team;
    double used = -1.0;
#pragma omp parallel num_threads(2)
    {
        fnn_team_begin(&team);
        if (omp_get_num_threads() == 2) {
            if (omp_get_thread_num() == 1) {
                struct timespec late = {0, 300000000};
                nanosleep(&late, NULL);
                fnn_team_sync(&team);
            } else {
                double t0 = thread_cpu_s();
                fnn_team_sync(&team);
                used = thread_cpu_s() - t0;
            }
        }
        fnn_team_end(&team);
    }
    assert_true(used >= 0.0); /* the region had its two threads */
    assert_true(used < 0.03);
}

/* Three long waits in a row, with the spin capped at 200 ms: the first spins out the cap and
 * sleeps, and each wait that ends asleep quarters the thread's next spin, so the third costs
 * well under half the first's CPU time. A fixed budget spends the cap every time: on a busy
 * machine that holds a core that a woken partner waits for. */
static void test_spin_shrinks_after_sleeping(void **state)
{
    (void)state;
    setenv("FNN_SPIN_NS", "200000000", 1);
    fnn_barrier team;
    double used[3] = {-1.0, -1.0, -1.0};
#pragma omp parallel num_threads(2)
    {
        fnn_team_begin(&team);
        if (omp_get_num_threads() == 2)
            for (int r = 0; r < 3; r++) {
                if (omp_get_thread_num() == 1) {
                    struct timespec late = {0, 300000000};
                    nanosleep(&late, NULL);
                    fnn_team_sync(&team);
                } else {
                    double t0 = thread_cpu_s();
                    fnn_team_sync(&team);
                    used[r] = thread_cpu_s() - t0;
                }
            }
        fnn_team_end(&team);
    }
    unsetenv("FNN_SPIN_NS");
    assert_true(used[2] >= 0.0); /* the region had its two threads */
    assert_true(used[2] < 0.5 * used[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_barrier_orders_rounds),
        cmocka_unit_test(test_barrier_sleeps_through_a_long_wait),
        cmocka_unit_test(test_spin_shrinks_after_sleeping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
