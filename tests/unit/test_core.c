/* test_core.c: errors, arenas, checked arithmetic, dtypes, half floats and launch detection. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "dist/dist.h"
#include "test.h"

TEST(core_err_prefix_keeps_code_and_one_line)
{
    ot_err err;
    ot_err_init(&err);
    CHECK_EQ_INT(ot_err_set(&err, OT_ERR_MODEL, "node 'a'\n(Conv): bad"), OT_ERR_MODEL);
    ot_err_prefix(&err, "%s", "m.onnx");
    CHECK_EQ_INT(err.code, OT_ERR_MODEL);
    CHECK_STR(err.msg, "m.onnx: node 'a' (Conv): bad");
}

TEST(core_err_prefix_truncates_long_messages)
{
    ot_err err;
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ot_err_set(&err, OT_ERR_IO, "%s", big);
    ot_err_prefix(&err, "%s", big);
    CHECK(strlen(err.msg) == OT_ERR_MSG_MAX - 1);
}

TEST(core_size_mul_detects_overflow)
{
    size_t r;
    CHECK(ot_size_mul(1u << 20, 1u << 20, &r) && r == (size_t)1 << 40);
    CHECK(!ot_size_mul(SIZE_MAX / 2 + 1, 2, &r));
    CHECK(ot_size_mul(0, SIZE_MAX, &r) && r == 0);
    CHECK(!ot_size_add(SIZE_MAX, 1, &r));
}

TEST(core_arena_alignment_and_big_blocks)
{
    ot_arena a;
    ot_arena_init(&a, 1024);
    void *p = ot_arena_alloc(&a, 3);
    void *q = ot_arena_alloc(&a, 100);
    void *big = ot_arena_alloc(&a, 10000);
    void *r = ot_arena_alloc(&a, 5);
    CHECK(p && q && big && r);
    CHECK(((uintptr_t)q & 63) == 0);
    CHECK(((uintptr_t)big & 63) == 0);
    CHECK(((uintptr_t)r & 15) == 0);
    memset(big, 1, 10000);
    CHECK_STR(ot_arena_strdup(&a, "abc"), "abc");
    ot_arena_fini(&a);
}

TEST(core_dtype_sizes_match_onnx)
{
    CHECK_EQ_INT(ot_dtype_size(OT_DTYPE_FLOAT), 4);
    CHECK_EQ_INT(ot_dtype_size(OT_DTYPE_BFLOAT16), 2);
    CHECK_EQ_INT(ot_dtype_size(OT_DTYPE_COMPLEX128), 16);
    CHECK_EQ_INT(ot_dtype_size(OT_DTYPE_STRING), 0);
    CHECK_EQ_INT(ot_dtype_size(99), 0);
    CHECK_EQ_INT(ot_dtype_size(-1), 0);
    CHECK_STR(ot_dtype_name(OT_DTYPE_INT64), "int64");
}

TEST(core_half_round_trip)
{
    /* every finite half converts to float and back unchanged */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads are not preserved bit for bit */
        uint16_t back = ot_f32_to_f16(ot_f16_to_f32((uint16_t)h));
        if (back != h) {
            ot_test_fail(__FILE__, __LINE__, "half 0x%04x -> %g -> 0x%04x", h,
                         (double)ot_f16_to_f32((uint16_t)h), back);
            return;
        }
    }
    CHECK(ot_f16_to_f32(0x3c00) == 1.0f);
    CHECK(ot_f16_to_f32(0xc000) == -2.0f);
    CHECK(ot_f32_to_f16(65520.0f) == 0x7c00); /* rounds to +inf */
    CHECK(ot_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie to even */
    CHECK(isnan(ot_f16_to_f32(ot_f32_to_f16(NAN))));
}

TEST(core_bfloat16_rounding)
{
    CHECK(ot_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(ot_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(ot_f32_to_bf16(1.00390625f) == 0x3f80); /* tie to even, down */
    CHECK(ot_f32_to_bf16(1.01171875f) == 0x3f82); /* tie to even, up */
    CHECK(isnan(ot_bf16_to_f32(ot_f32_to_bf16(NAN))));
}

TEST(core_alloc_fail_injection)
{
    ot_alloc_fail_after(0);
    void *p = ot_malloc(16);
    ot_alloc_fail_after(-1);
    CHECK(p == NULL);
    p = ot_malloc(16);
    CHECK(p != NULL);
    ot_free(p);
}

/* The local rank a launcher announces (src/dist/dist.c) from faked
   environments, and the GPU `--device cuda` means for it: OpenMPI's
   variable first, MPICH's, Slurm's only inside a step (SLURM_PROCID), none
   without a launch of several processes; the local rank modulo the GPUs a
   process sees, itself where their number is unknown. */
TEST(dist_local_rank_device)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                        "MPI_LOCALRANKID", "SLURM_LOCALID", "SLURM_PROCID",
                                        "SLURM_STEP_NUM_TASKS", "PMIX_SIZE", "PMI_SIZE" };
    enum { NV = sizeof vars / sizeof vars[0] };
    char *saved[NV];
    for (int i = 0; i < NV; i++) {
        const char *v = getenv(vars[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(vars[i]);
    }
    const char *var = "x";
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1); /* no launch of several: none */
    CHECK_EQ_INT(ot_dist_local_rank(&var), -1);
    CHECK(var == NULL);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    CHECK_EQ_INT(ot_dist_local_rank(&var), 1);
    CHECK_STR(var, "OMPI_COMM_WORLD_LOCAL_RANK");
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "one", 1); /* not a number: the next */
    setenv("MPI_LOCALRANKID", "3", 1);
    CHECK_EQ_INT(ot_dist_local_rank(&var), 3);
    CHECK_STR(var, "MPI_LOCALRANKID");
    unsetenv("MPI_LOCALRANKID");
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    setenv("SLURM_LOCALID", "1", 1);
    CHECK_EQ_INT(ot_dist_local_rank(&var), -1); /* no SLURM_PROCID: not a task */
    setenv("SLURM_PROCID", "1", 1);
    CHECK_EQ_INT(ot_dist_local_rank(&var), 1);
    CHECK_STR(var, "SLURM_LOCALID");
    /* the GPU: its own, shared in turn, the one a rank sees alone */
    CHECK_EQ_INT(ot_dist_local_device(3, 4), 3);
    CHECK_EQ_INT(ot_dist_local_device(5, 4), 1);
    CHECK_EQ_INT(ot_dist_local_device(1, 1), 0);
    CHECK_EQ_INT(ot_dist_local_device(2, 0), 2);
    CHECK_EQ_INT(ot_dist_local_device(-1, 2), 0);
    for (int i = 0; i < NV; i++) {
        if (saved[i])
            setenv(vars[i], saved[i], 1);
        else
            unsetenv(vars[i]);
        free(saved[i]);
    }
}

/* Launch detection (src/dist/dist.c) from faked environments: OpenMPI's
   mpirun, PMIx, and Slurm's srun, whose SLURM_STEP_NUM_TASKS counts only
   with a SLURM_PROCID (inside a step srun started; sbatch and salloc set
   SLURM_NTASKS alone). */
TEST(dist_detect_launchers)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE",
                                        "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_NTASKS" };
    char *saved[6];
    for (int i = 0; i < 6; i++) {
        const char *v = getenv(vars[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(vars[i]);
    }
    const char *var = "x";
    CHECK_EQ_INT(ot_dist_detect(&var), 1);
    CHECK(var == NULL);
    setenv("SLURM_NTASKS", "4", 1); /* an allocation, no step: one process */
    CHECK_EQ_INT(ot_dist_detect(&var), 1);
    setenv("SLURM_STEP_NUM_TASKS", "4", 1); /* no SLURM_PROCID: not an srun task */
    CHECK_EQ_INT(ot_dist_detect(&var), 1);
    setenv("SLURM_PROCID", "2", 1);
    CHECK_EQ_INT(ot_dist_detect(&var), 4);
    CHECK_STR(var, "SLURM_STEP_NUM_TASKS");
    setenv("SLURM_STEP_NUM_TASKS", "four", 1); /* not a count */
    CHECK_EQ_INT(ot_dist_detect(&var), 1);
    setenv("PMIX_SIZE", "3", 1);
    CHECK_EQ_INT(ot_dist_detect(&var), 3);
    CHECK_STR(var, "PMIX_SIZE");
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1); /* mpirun's own variable first */
    CHECK_EQ_INT(ot_dist_detect(&var), 2);
    CHECK_STR(var, "OMPI_COMM_WORLD_SIZE");
    setenv("OMPI_COMM_WORLD_SIZE", "0", 1);
    CHECK_EQ_INT(ot_dist_detect(&var), 3);
    for (int i = 0; i < 6; i++) {
        if (saved[i])
            setenv(vars[i], saved[i], 1);
        else
            unsetenv(vars[i]);
        free(saved[i]);
    }
}
