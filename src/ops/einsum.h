/*
 * einsum.h: Einsum equations, parsed once for shape inference and the
 * gradient rule (src/ops/einsum.c) and for the plain kernel
 * (src/exec/cpu/ref_math.c).
 *
 * Labels are the letters a-z, A-Z (ids 0-51) and the dims an ellipsis
 * stands for (ids 52 and up, the broadcast of every term's ellipsis dims,
 * right-aligned as numpy broadcasts).
 */
#ifndef OT_OPS_EINSUM_H
#define OT_OPS_EINSUM_H

#include "ops/ops.h"

#define OT_EINSUM_MAX_IN 8
#define OT_EINSUM_LETTERS 52
#define OT_EINSUM_MAX_LABELS (OT_EINSUM_LETTERS + OT_MAX_DIMS)

typedef struct ot_einsum {
    int n_in;
    int n_ell;                                  /* dims the ellipsis stands for   */
    int in_rank[OT_EINSUM_MAX_IN];
    int8_t in_lab[OT_EINSUM_MAX_IN][OT_MAX_DIMS]; /* label id of each input dim     */
    int out_rank;
    int8_t out_lab[OT_MAX_DIMS];
    bool used[OT_EINSUM_MAX_LABELS];            /* labels that occur              */
} ot_einsum;

/* Parses `eq` for n_in inputs of the given ranks (spaces ignored; no "->":
   the output is the ellipsis dims, then the letters that occur once, in
   alphabetical order). False with *why set on a malformed equation or one
   that does not fit the ranks. */
bool ot_einsum_parse(const char *eq, int n_in, const int *ranks, ot_einsum *e, const char **why);

/* The size of every label from the inputs' dims (OT_DIM_DYNAMIC: unknown,
   taken from another occurrence); an ellipsis dim of size 1 broadcasts.
   False when two occurrences of a label disagree. */
bool ot_einsum_sizes(const ot_einsum *e, const int64_t *const *in_dims, int64_t *size,
                     const char **why);

#endif
