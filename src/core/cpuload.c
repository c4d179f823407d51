/*
 * cpuload.c: the cores other processes are using, from /proc/stat (see
 * cpuload.h).
 */
#include "core/cpuload.h"

#include "core/core.h"

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

/* The whole of a /proc file (its size is not known before), NUL-terminated,
   up to 4 MiB; NULL where it cannot be read. The caller frees it. */
static char *read_proc(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = ot_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1 || cap >= (4u << 20))
            break;
        char *bigger = ot_realloc(buf, cap * 2);
        if (!bigger) {
            ot_free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf) {
        /* a line cut at the size limit is left out */
        char *last = n ? memrchr(buf, '\n', n) : NULL;
        buf[last ? (size_t)(last - buf) + 1 : 0] = '\0';
    }
    return buf;
}

void ot_cpu_sample_now(ot_cpu_sample *s)
{
    memset(s, 0, sizeof *s);
    unsigned char mask[OT_CPULOAD_MAX_CPUS];
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
    char *text = read_proc("/proc/stat");
    if (!text)
        return;
    ot_cpu_sample_parse(text, n_mask ? mask : NULL, n_mask, s);
    ot_free(text);
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
