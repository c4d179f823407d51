/*
 * profile.c: the --profile report of `run` and `finetune`: time per step
 * kind (Conv, Conv+Add+Relu, reorder, the backward ops, ...) and the most
 * expensive steps, from executors compiled with opts.profile, plus any extra
 * phases the caller measured itself (data loading).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "exec/exec.h"

typedef struct kind_row {
    const char *kind, *kernel;
    double seconds;
    uint64_t steps;
} kind_row;

typedef struct step_row {
    const char *graph, *node, *kind, *kernel;
    double seconds;
    uint64_t runs;
} step_row;

static int by_kind_time(const void *a, const void *b)
{
    double x = ((const kind_row *)a)->seconds, y = ((const kind_row *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int by_step_time(const void *a, const void *b)
{
    double x = ((const step_row *)a)->seconds, y = ((const step_row *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

void ot_cli_print_profile(FILE *f, const struct ot_exec *const *xs, const char *const *names,
                          int n_exec, const char *const *extra, const double *extra_s,
                          int n_extra)
{
    int total_steps = 0;
    for (int i = 0; i < n_exec; i++)
        if (xs[i])
            total_steps += ot_exec_n_steps(xs[i]);
    kind_row *kinds = calloc((size_t)total_steps + (size_t)n_extra + 1, sizeof *kinds);
    step_row *steps = calloc((size_t)total_steps + 1, sizeof *steps);
    if (!kinds || !steps) {
        free(kinds);
        free(steps);
        fprintf(f, "profile: out of memory\n");
        return;
    }
    int n_kinds = 0, n_steps = 0;
    double total = 0;
    for (int i = 0; i < n_exec; i++) {
        if (!xs[i])
            continue;
        for (int s = 0; s < ot_exec_n_steps(xs[i]); s++) {
            ot_exec_step_time t;
            ot_exec_step_profile(xs[i], s, &t);
            if (!t.kind)
                continue;
            total += t.seconds;
            steps[n_steps++] = (step_row){ names[i], t.node, t.kind, t.kernel, t.seconds, t.runs };
            int k = 0;
            while (k < n_kinds &&
                   (strcmp(kinds[k].kind, t.kind) != 0 || strcmp(kinds[k].kernel, t.kernel) != 0))
                k++;
            if (k == n_kinds)
                kinds[n_kinds++] = (kind_row){ t.kind, t.kernel, 0, 0 };
            kinds[k].seconds += t.seconds;
            kinds[k].steps++;
        }
    }
    for (int e = 0; e < n_extra; e++) {
        kinds[n_kinds++] = (kind_row){ extra[e], "-", extra_s[e], 0 };
        total += extra_s[e];
    }
    qsort(kinds, (size_t)n_kinds, sizeof *kinds, by_kind_time);
    qsort(steps, (size_t)n_steps, sizeof *steps, by_step_time);
    fprintf(f, "\nprofile: %.3f s in all\n%-24s %-7s %6s %10s %6s\n", total, "kind", "kernel",
            "steps", "seconds", "share");
    for (int k = 0; k < n_kinds; k++)
        fprintf(f, "%-24s %-7s %6llu %10.4f %5.1f%%\n", kinds[k].kind, kinds[k].kernel,
                (unsigned long long)kinds[k].steps, kinds[k].seconds,
                total > 0 ? 100.0 * kinds[k].seconds / total : 0.0);
    int top = n_steps < 15 ? n_steps : 15;
    fprintf(f, "\nslowest steps:\n%-8s %-16s %-7s %8s %10s  %s\n", "graph", "kind", "kernel",
            "runs", "seconds", "node");
    for (int s = 0; s < top; s++) {
        fprintf(f, "%-8s %-16s %-7s %8llu %10.4f  ", steps[s].graph, steps[s].kind,
                steps[s].kernel, (unsigned long long)steps[s].runs, steps[s].seconds);
        ot_cli_text_str(f, steps[s].node ? steps[s].node : "(reorder)");
        fprintf(f, "\n");
    }
    free(kinds);
    free(steps);
}
