/*
 * cpuload.h: how many of this process's cores other processes are using
 * right now, from two samples of /proc/stat, and the thread count that
 * leaves those cores to them.
 *
 * Nothing here changes the process: no environment variable, no OpenMP
 * setting. The caller decides what to do with the count (the CLI passes it
 * as --threads would; see docs/library.md, Threads).
 */
#ifndef OT_CPULOAD_H
#define OT_CPULOAD_H

#include <stdbool.h>
#include <stdint.h>

/* Cores this process may run on (its affinity mask) that a sample covers. */
#define OT_CPULOAD_MAX_CPUS 1024

typedef struct ot_cpu_sample {
    uint64_t busy;  /* jiffies (USER_HZ) not idle or iowait, summed over the mask's CPUs */
    uint64_t total; /* all jiffies, summed over the mask's CPUs */
    double wall_s;  /* CLOCK_MONOTONIC */
    double own_s;   /* this process's CPU time (all its threads) */
    int n_cpus;     /* CPUs of the mask found in the text */
    bool ok;
} ot_cpu_sample;

/* Sums the per-CPU lines ("cpuN user nice system idle iowait irq softirq
   steal ...") of a /proc/stat text over the CPUs set in `mask` (a byte per
   CPU, n_mask bytes; NULL: every CPU). Fills busy, total and n_cpus; ok is
   false when no line of the mask was found. wall_s and own_s are left. */
void ot_cpu_sample_parse(const char *text, const unsigned char *mask, int n_mask,
                         ot_cpu_sample *s);

/* Reads /proc/stat over this process's affinity mask, with the clock and
   the process's CPU time. ok is false where /proc/stat cannot be read. */
void ot_cpu_sample_now(ot_cpu_sample *s);

/* The cores other processes used between two samples: the mask's busy time
   less this process's own CPU time, over the wall time between them (from
   the jiffies when the wall time is not known). Negative results are 0. */
double ot_cpu_others_busy(const ot_cpu_sample *a, const ot_cpu_sample *b);

/* Threads for `allowed` cores of which others keep `busy` busy: a core
   counts as taken from 0.5 of it up, at least 1 thread, never more than
   allowed. */
int ot_cpu_free_threads(int allowed, double busy);

#endif
