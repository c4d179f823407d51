/* test_cpuload.c: the cores other processes use, from /proc/stat texts, and
   the thread count the CLI picks from them (src/core/cpuload.c). */
#include <math.h>
#include <string.h>

#include "core/cpuload.h"
#include "test.h"

/* Two CPUs; guest columns (9 and 10) are already in user and nice. */
static const char stat_a[] = "cpu  300 0 100 1600 0 0 0 0 50 0\n"
                             "cpu0 100 0 50 850 0 0 0 0 50 0\n"
                             "cpu1 200 0 50 750 0 0 0 0 0 0\n"
                             "intr 12345 0 0\n"
                             "ctxt 999\n";
/* 1 s later (100 jiffies a CPU): cpu0 fully busy, cpu1 30% busy, 10 of
   cpu1's idle jiffies waiting for I/O */
static const char stat_b[] = "cpu  430 0 100 1650 10 0 0 0 50 0\n"
                             "cpu0 200 0 50 850 0 0 0 0 90 0\n"
                             "cpu1 220 0 60 810 10 0 0 0 0 0\n"
                             "intr 22345 0 0\n";

TEST(cpuload_parse_sums_the_per_cpu_lines_of_the_mask)
{
    ot_cpu_sample s;
    ot_cpu_sample_parse(stat_a, NULL, 0, &s);
    CHECK(s.ok);
    CHECK_EQ_INT(s.n_cpus, 2);
    CHECK(s.busy == 400 && s.total == 2000);
    unsigned char only1[2] = { 0, 1 };
    ot_cpu_sample_parse(stat_a, only1, 2, &s);
    CHECK(s.ok);
    CHECK_EQ_INT(s.n_cpus, 1);
    CHECK(s.busy == 250 && s.total == 1000);
    unsigned char none[1] = { 0 };
    ot_cpu_sample_parse(stat_a, none, 1, &s);
    CHECK(!s.ok);
    ot_cpu_sample_parse("cpu  1 2 3 4\nintr 5\n", NULL, 0, &s);
    CHECK(!s.ok);
    ot_cpu_sample_parse("", NULL, 0, &s);
    CHECK(!s.ok);
}

TEST(cpuload_others_busy_leaves_out_the_process_own_time)
{
    ot_cpu_sample a, b;
    ot_cpu_sample_parse(stat_a, NULL, 0, &a);
    ot_cpu_sample_parse(stat_b, NULL, 0, &b);
    a.wall_s = 10.0;
    b.wall_s = 11.0;
    a.own_s = b.own_s = 0.0;
    /* cpu0 100 busy of 100, cpu1 30 busy of 100 (iowait is idle) */
    CHECK(fabs(ot_cpu_others_busy(&a, &b) - 1.3) < 1e-9);
    b.own_s = 0.3; /* the process itself ran 0.3 s of it */
    CHECK(fabs(ot_cpu_others_busy(&a, &b) - 1.0) < 1e-9);
    b.own_s = 5.0; /* never below 0 */
    CHECK(ot_cpu_others_busy(&a, &b) == 0.0);
    /* without a clock, the window comes from the jiffies (USER_HZ 100) */
    a.wall_s = b.wall_s = 0.0;
    a.own_s = b.own_s = 0.0;
    CHECK(fabs(ot_cpu_others_busy(&a, &b) - 1.3) < 1e-9);
    /* samples of different masks or a counter going back: nothing known */
    CHECK(ot_cpu_others_busy(&b, &a) == 0.0);
}

TEST(cpuload_free_threads_from_a_fake_load)
{
    ot_cpu_sample a, b;
    ot_cpu_sample_parse(stat_a, NULL, 0, &a);
    ot_cpu_sample_parse(stat_b, NULL, 0, &b);
    a.wall_s = 0.0, b.wall_s = 1.0, a.own_s = 0.0, b.own_s = 0.3;
    /* one core taken by another process: one thread */
    CHECK_EQ_INT(ot_cpu_free_threads(b.n_cpus, ot_cpu_others_busy(&a, &b)), 1);
    CHECK_EQ_INT(ot_cpu_free_threads(2, 0.0), 2);
    CHECK_EQ_INT(ot_cpu_free_threads(2, 0.49), 2);
    CHECK_EQ_INT(ot_cpu_free_threads(2, 0.5), 1);
    CHECK_EQ_INT(ot_cpu_free_threads(8, 2.6), 5);
    /* at least one thread, never more than the cores allowed */
    CHECK_EQ_INT(ot_cpu_free_threads(2, 7.0), 1);
    CHECK_EQ_INT(ot_cpu_free_threads(0, 0.0), 1);
    CHECK_EQ_INT(ot_cpu_free_threads(4, -1.0), 4);
}

TEST(cpuload_sample_now_reads_this_machine)
{
    ot_cpu_sample s;
    ot_cpu_sample_now(&s);
    if (!s.ok)
        return; /* no /proc here */
    CHECK(s.n_cpus >= 1 && s.busy <= s.total && s.wall_s > 0.0);
}
