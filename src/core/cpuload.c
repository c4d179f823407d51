/*
 * cpuload.c: the cores other processes are using, from /proc/stat (see
 * cpuload.h).
 */
#include "core/cpuload.h"

#include <ctype.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ot_cpu_sample_parse(const char *text, const unsigned char *mask, int n_mask,
                         ot_cpu_sample *s)
{
    s->busy = s->total = 0;
    s->n_cpus = 0;
    s->ok = false;
    const char *p = text;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        /* "cpuN ..." lines only: "cpu " is the sum of all of them */
        if (!strncmp(p, "cpu", 3) && isdigit((unsigned char)p[3])) {
            char *q;
            long cpu = strtol(p + 3, &q, 10);
            bool in = cpu >= 0 && (!mask || (cpu < n_mask && mask[cpu]));
            uint64_t f[10] = { 0 };
            int n = 0;
            while (in && n < 10 && q && (!eol || q < eol)) {
                char *e;
                unsigned long long v = strtoull(q, &e, 10);
                if (e == q)
                    break;
                f[n++] = v;
                q = e;
            }
            /* user nice system idle iowait irq softirq steal; guest and
               guest_nice are already counted in user and nice */
            if (in && n >= 4) {
                uint64_t all = 0;
                for (int k = 0; k < n && k < 8; k++)
                    all += f[k];
                s->total += all;
                s->busy += all - f[3] - (n > 4 ? f[4] : 0);
                s->n_cpus++;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    s->ok = s->n_cpus > 0;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ot_cpu_sample_now(ot_cpu_sample *s)
{
    memset(s, 0, sizeof *s);
    static unsigned char mask[OT_CPULOAD_MAX_CPUS];
    int n_mask = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < OT_CPULOAD_MAX_CPUS && c < CPU_SETSIZE; c++) {
            mask[c] = CPU_ISSET(c, &set) != 0;
            if (mask[c])
                n_mask = c + 1;
        }
    }
    s->wall_s = clock_s(CLOCK_MONOTONIC);
    s->own_s = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    /* the per-CPU lines come first; 64 KiB holds them for hundreds of CPUs */
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    ot_cpu_sample_parse(buf, n_mask ? mask : NULL, n_mask, s);
}

double ot_cpu_others_busy(const ot_cpu_sample *a, const ot_cpu_sample *b)
{
    if (!a->ok || !b->ok || b->total <= a->total || b->busy < a->busy)
        return 0.0;
    double jiffies = (double)(b->total - a->total);
    double cpus = (double)(b->n_cpus > 0 ? b->n_cpus : 1);
    /* the window in seconds: the clock, else the jiffies per CPU at USER_HZ 100 */
    double wall = b->wall_s - a->wall_s;
    if (wall <= 0.0)
        wall = jiffies / cpus / 100.0;
    double busy_s = (double)(b->busy - a->busy) / jiffies * cpus * wall;
    double own = b->own_s - a->own_s;
    double others = (busy_s - (own > 0.0 ? own : 0.0)) / wall;
    return others > 0.0 ? others : 0.0;
}

int ot_cpu_free_threads(int allowed, double busy)
{
    if (allowed < 1)
        return 1;
    int taken = (int)(busy + 0.5);
    int t = allowed - taken;
    return t < 1 ? 1 : t;
}
