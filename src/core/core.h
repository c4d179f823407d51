/*
 * core.h: what every module of onnxtrain stands on: errors, logging,
 * allocation (arenas and a counting malloc), dtypes and checked arithmetic.
 *
 * Nothing here knows about ONNX files, graphs or backends.
 */
#ifndef OT_CORE_H
#define OT_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnxtrain.h"

/* ------------------------------------------------------------------ errors */

#if defined(__GNUC__)
#define OT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define OT_NORETURN __attribute__((noreturn))
#else
#define OT_PRINTF(a, b)
#define OT_NORETURN
#endif

/* Clears an error to OT_OK with an empty message. */
void ot_err_init(ot_err *err);

/* Sets code and message; returns code so that `return ot_err_set(...)` works. */
ot_status ot_err_set(ot_err *err, ot_status code, const char *fmt, ...) OT_PRINTF(3, 4);

/* Prepends "context: " to the message, keeping the code. NULL err does nothing. */
void ot_err_prefix(ot_err *err, const char *fmt, ...) OT_PRINTF(2, 3);

/* Propagates a failing status: the enclosing function must have `ot_status st`
   and a `done:` label. */
#define OT_TRY(expr)                                                                            \
    do {                                                                                        \
        st = (expr);                                                                            \
        if (st != OT_OK)                                                                        \
            goto done;                                                                          \
    } while (0)

/* Records an error and jumps to `done`. */
#define OT_FAIL(err, code, ...)                                                                 \
    do {                                                                                        \
        st = ot_err_set((err), (code), __VA_ARGS__);                                            \
        goto done;                                                                              \
    } while (0)

/* Checks our own invariants, never data from outside. Stays on in release builds. */
#define OT_ASSERT(cond)                                                                         \
    do {                                                                                        \
        if (!(cond))                                                                            \
            ot_assert_fail(__FILE__, __LINE__, #cond);                                          \
    } while (0)

OT_NORETURN void ot_assert_fail(const char *file, int line, const char *cond);

/* ----------------------------------------------------------------- logging */

typedef enum { OT_LOG_ERROR = 0, OT_LOG_WARN, OT_LOG_INFO, OT_LOG_DEBUG } ot_log_level;

typedef void (*ot_log_fn)(ot_log_level level, const char *msg, void *user);

/* Routes library messages. The library never prints; the CLI installs a callback
   that writes to stderr. Messages above `max_level` are dropped. */
void ot_log_set(ot_log_fn fn, void *user, ot_log_level max_level);
void ot_log(ot_log_level level, const char *fmt, ...) OT_PRINTF(2, 3);
bool ot_log_enabled(ot_log_level level);

/* -------------------------------------------------------------- allocation */

/* malloc/calloc/realloc/free wrappers. Debug builds count live allocations and
   can be told to fail the n-th one, so that OOM paths get tested. */
void *ot_malloc(size_t n);
void *ot_calloc(size_t count, size_t size);
void *ot_realloc(void *p, size_t n);
void ot_free(void *p);
char *ot_strdup(const char *s);
uint64_t ot_alloc_count(void);      /* allocations made so far (every build)        */
void ot_alloc_fail_after(int64_t n); /* fail the allocation after n more; -1: never */

/* Overflow-checked size arithmetic: false when the result does not fit. */
bool ot_size_mul(size_t a, size_t b, size_t *out);
bool ot_size_add(size_t a, size_t b, size_t *out);

/* UTF-8 (src/core/utf8.c). ot_utf8_seq: length of the valid sequence at p
   (before end), or 0 when the bytes there are not valid UTF-8 (overlong,
   surrogate, above U+10FFFF, truncated). ot_utf8_valid: all n bytes of s are. */
size_t ot_utf8_seq(const unsigned char *p, const unsigned char *end);
bool ot_utf8_valid(const char *s, size_t n);

/* Names (src/core/names.c): status `code`, the message starting with `what`,
   when a name is not valid UTF-8 or two names are the same (both indices
   given). n log n. */
ot_status ot_names_check(const char *const *names, int n, ot_status code, const char *what,
                         ot_err *err);

/* An arena: many small allocations, released together. Blocks are 64-byte
   aligned. Large requests get their own block. */
typedef struct ot_arena_block ot_arena_block;
typedef struct ot_arena {
    ot_arena_block *head;
    size_t block_size;
    size_t used_bytes; /* for reporting */
} ot_arena;

void ot_arena_init(ot_arena *a, size_t block_size);
void ot_arena_fini(ot_arena *a);
/* Returns zeroed memory, 16-byte aligned (64 for requests of 64 bytes or more);
   NULL when out of memory. */
void *ot_arena_alloc(ot_arena *a, size_t n);
char *ot_arena_strdup(ot_arena *a, const char *s);
char *ot_arena_strndup(ot_arena *a, const char *s, size_t n);
void *ot_arena_memdup(ot_arena *a, const void *p, size_t n);

/* ------------------------------------------------------------------ dtypes */

/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum {
    OT_DTYPE_UNDEFINED = 0,
    OT_DTYPE_FLOAT = 1,
    OT_DTYPE_UINT8 = 2,
    OT_DTYPE_INT8 = 3,
    OT_DTYPE_UINT16 = 4,
    OT_DTYPE_INT16 = 5,
    OT_DTYPE_INT32 = 6,
    OT_DTYPE_INT64 = 7,
    OT_DTYPE_STRING = 8,
    OT_DTYPE_BOOL = 9,
    OT_DTYPE_FLOAT16 = 10,
    OT_DTYPE_DOUBLE = 11,
    OT_DTYPE_UINT32 = 12,
    OT_DTYPE_UINT64 = 13,
    OT_DTYPE_COMPLEX64 = 14,
    OT_DTYPE_COMPLEX128 = 15,
    OT_DTYPE_BFLOAT16 = 16,
    OT_DTYPE_COUNT_
} ot_dtype;

/* Bytes per element; 0 for UNDEFINED, STRING and unknown codes. */
size_t ot_dtype_size(int dtype);
/* Lower-case name as ONNX prints it ("float", "int64", "bfloat16"); "?" if unknown. */
const char *ot_dtype_name(int dtype);
/* True for the dtypes whose tensors onnxtrain stores as plain bytes. */
bool ot_dtype_is_numeric(int dtype);

/* Half-precision conversions (IEEE binary16 and bfloat16). */
float ot_f16_to_f32(uint16_t h);
uint16_t ot_f32_to_f16(float f);
float ot_bf16_to_f32(uint16_t h);
uint16_t ot_f32_to_bf16(float f);

/* ----------------------------------------------------------------- limits */

#define OT_MAX_DIMS 8
#define OT_DEFAULT_MAX_TENSOR_BYTES (16ull << 30)

/* ----------------------------------------------------------------- tensors */

/* A dense tensor in host memory: little-endian elements, row-major.
   Who owns `data` is said wherever a tensor is handed out. */
typedef struct ot_tensor {
    ot_dtype dtype;
    int ndim;                  /* 0 for a scalar                           */
    int64_t dims[OT_MAX_DIMS]; /* all >= 0                                 */
    void *data;                /* NULL when numel is 0                     */
    size_t bytes;              /* numel * ot_dtype_size(dtype)             */
} ot_tensor;

/* Number of elements; 1 for a scalar. The caller has checked for overflow. */
int64_t ot_tensor_numel(const ot_tensor *t);

/* Reads element i of a numeric tensor as int64 or double (floats truncate in
   the int64 version). Index must be < numel. */
int64_t ot_tensor_get_i64(const ot_tensor *t, int64_t i);
double ot_tensor_get_f64(const ot_tensor *t, int64_t i);

#endif
