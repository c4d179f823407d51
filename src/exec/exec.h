/*
 * exec.h: compiling a graph for execution and running it.
 *
 * ot_exec_compile specialises a graph to concrete input shapes (and to the
 * values of inputs that decide shapes, such as Reshape's shape when it is a
 * graph input), folds what is constant, asks the backend for a kernel per
 * node (an unsupported node is an error here, never mid-run), plans every
 * buffer by liveness into one arena, and creates the backend's primitives.
 * ot_exec_run then executes the kernels in order and allocates nothing.
 *
 * The graph must outlive the compiled executor; the executor never changes it.
 */
#ifndef OT_EXEC_H
#define OT_EXEC_H

#include "graph/graph.h"

typedef struct ot_exec ot_exec;

/* One graph input bound for compilation: its shape, and for inputs whose
   values decide shapes (or when `const_value` is set) its data. */
/* uint8 images that become a float input where the input lives: the data
   loader's evaluation transform (PIL's bilinear resize to the side S, the
   centre crop, ToTensor, Normalize: src/data/transform.c), for n images of
   c_in planes of h x w (planar, as ot_image), the input [n, C, S, S]. The
   tables are ot_data_resample_coefs' (top, left, kw, kh from its plan);
   they are copied when compiled. A backend that computes on the host (the
   CPU) calls `host` instead, which writes the n images' floats to `out`.
   With box_ints (the training transform, --augment) each image has its own
   box, flip and tables instead: what is handed in is the n images, then at
   the next multiple of 4 bytes n records of box_ints int32 (top, left, box
   height, box width, kw, kh, flip, 0, then ot_data_resample_coefs' tables
   of ot_data_box_resample_plan), and coef, top, left, kw, kh are unused. */
#define OT_EXEC_U8_BOX_HEAD 8
typedef struct ot_exec_u8 {
    int c_in, h, w;
    int top, left, kw, kh;
    const int32_t *coef;
    size_t n_coef;
    float mean[3], std[3];
    ot_status (*host)(void *user, const uint8_t *images, int n, float *out, ot_err *err);
    void *user;
    int box_ints;
} ot_exec_u8;

/* The bytes handed in for n images: the images, and with box_ints their
   boxes after them. */
size_t ot_exec_u8_bytes(const ot_exec_u8 *u, int n);
/* Where the boxes start in them. */
size_t ot_exec_u8_box_offset(const ot_exec_u8 *u, int n);

typedef struct ot_exec_input {
    int32_t value;      /* value id of the graph input                        */
    ot_tensor tensor;   /* dtype and dims; data used only when const_value    */
    bool const_value;   /* treat the data as a compile-time constant          */
} ot_exec_input;

/*
 * Devices. A device is named "cpu", "cuda" (the first GPU) or "cuda:N"; each
 * kind of device has a backend (its memory, kernels and rewrites), and a
 * build has the backends it was built with: the CPU's always, CUDA's when
 * built with the toolkit (docs/gpu.md).
 */
typedef enum {
    OT_DEVICE_CPU = 0,
    OT_DEVICE_CUDA,
} ot_device_kind;

typedef struct ot_device {
    ot_device_kind kind;
    int index; /* which device of its kind (cuda:N) */
} ot_device;

/* Parses a device name into *out. Errors: OT_ERR_ARG (not a device name:
   the message lists the known ones), OT_ERR_UNSUPPORTED (a known device this
   build has no backend for; *out is set). NULL or "" is the CPU. */
ot_status ot_device_parse(const char *name, ot_device *out, ot_err *err);

/* Checks that this build has a backend for the device and that the device
   is usable here (for CUDA: the libraries, the driver and the device).
   Errors: OT_ERR_UNSUPPORTED, one line naming the device and why. */
ot_status ot_device_check(const ot_device *dev, ot_err *err);

/* The devices of a kind this process can use: 1 for the CPU; for CUDA the
   GPUs it sees (CUDA_VISIBLE_DEVICES applied), 0 without a driver or a
   CUDA backend. Cannot fail. */
int ot_device_count(ot_device_kind kind);

/* The backends, one line each, "NAME: built in, usable (...)", "NAME: built
   in, not usable here: WHY" or "NAME: not built in" (for --version). */
void ot_device_backends(char *buf, size_t size);

/* "cpu", "cuda:0", ... into buf; returns buf. */
const char *ot_device_name(const ot_device *dev, char *buf, size_t size);

/* Checks that the device's backend computes in precision `p` (FP32 always;
   AUTO always, as it falls back to FP32). Errors: OT_ERR_UNSUPPORTED, one
   line naming the precision, the device and why. */
ot_status ot_precision_check(const ot_device *dev, ot_precision p, ot_err *err);

/* What an executor's convolutions and matrix products compute in: the
   requested precision, or what AUTO picked (never AUTO). */
ot_precision ot_exec_precision(const struct ot_exec *x);

/* How the CUDA backend picks convolution plans and keeps them, for the whole
   process (plans are cached per device for the process's life): autotune
   times the heuristics' top candidates and keeps the fastest; the plans'
   engine choices persist in cache_dir (NULL: $XDG_CACHE_HOME/onnxtrain, else
   ~/.cache/onnxtrain), unless no_disk. Read when an executor is compiled on
   a GPU; the CPU ignores it. The default: no autotune, the default folder. */
typedef struct ot_exec_plan_opts {
    bool autotune;
    const char *cache_dir;
    bool no_disk;
} ot_exec_plan_opts;

/* Sets the process's plan options (cache_dir is copied). Errors: OT_ERR_NOMEM. */
ot_status ot_exec_set_plan_opts(const ot_exec_plan_opts *o, ot_err *err);
/* The current ones (cache_dir valid until the next set). */
ot_exec_plan_opts ot_exec_get_plan_opts(void);

/* The line saying what the latest --precision auto of this process picked
   and why ("bf16 (convolutions 80.1 ms in fp32, 41.3 ms in bf16 on this CPU;
   measured now)"), for the workload with the most convolution time; false
   (and "fp32") when none was decided. */
bool ot_exec_auto_note(char *buf, size_t size);

/* What only the CPU backend reads. */
typedef struct ot_exec_cpu_opts {
    int threads;       /* 0: OMP_NUM_THREADS when set, else all cores         */
    bool no_fusion;    /* no shared BN folding or fusion (tests)              */
    bool plain_only;   /* use the plain C kernels for everything (tests)      */
    bool plain_state;  /* keep trained convolution weights and their moments
                          plain between runs, not in the convolutions' layout
                          (tests compare the two)                              */
    bool winograd;     /* a forward-only graph's 3x3 stride-1 convolutions
                          may run oneDNN's Winograd algorithm where it is the
                          faster (docs/executor.md, Winograd): other rounding
                          than the direct convolution. Inference commands set
                          it; ONNXTRAIN_WINOGRAD=0 in the environment turns
                          it off. Training never uses it.                      */
} ot_exec_cpu_opts;

typedef struct ot_exec_opts {
    ot_device device;  /* where to run; zeroed: the CPU                       */
    bool profile;      /* time every step (ot_exec_profile)                   */
    ot_precision precision; /* products' arithmetic (ot_precision_check)      */
    /* Use this executor's state buffers instead of making copies (executors
       of one training run compiled for different batch sizes share their
       parameters). It must outlive the new executor, run on the same device,
       and hold every state value the new graph has. */
    const struct ot_exec *share_state;
    /* The input handed in ahead of runs (ot_exec_prefetch), as its index in
       the binding order plus one (0: none): a backend that overlaps runs
       keeps a second buffer for it. With prefetch_u8 it takes uint8 images
       (ot_exec_prefetch_u8) and must be a float [n, C, S, S] input. */
    int prefetch_input;
    const ot_exec_u8 *prefetch_u8;
    ot_exec_cpu_opts cpu;
} ot_exec_opts;

/*
 * Compiles `g` for the given inputs (every graph input that is not an
 * initializer must be bound). `opts` may be NULL (the CPU, defaults). On
 * success *out owns the executor. Errors: OT_ERR_ARG (input missing or of the
 * wrong dtype/rank), OT_ERR_SHAPE, OT_ERR_UNSUPPORTED (a node the backend does
 * not run, named with its op; a device this build has no backend for),
 * OT_ERR_BACKEND, OT_ERR_NOMEM.
 */
ot_status ot_exec_compile(const ot_graph *g, const ot_exec_input *inputs, int n_inputs,
                          const ot_exec_opts *opts, ot_exec **out, ot_err *err);

/* Tells which inputs must be bound as constants: true when a graph input's
   value feeds a shape-deciding operand (Reshape shape, Pad pads, Clip bounds,
   Squeeze/Unsqueeze axes, ...). */
bool ot_exec_input_is_shape_operand(const ot_graph *g, int32_t value);

/*
 * Runs the executor on input data. `inputs` are in the order and shapes given
 * to ot_exec_compile (plain row-major). Outputs are readable through
 * ot_exec_output until the next run. Errors: OT_ERR_BACKEND, OT_ERR_ARG
 * (shape or dtype differs from the compiled one).
 */
ot_status ot_exec_run(ot_exec *x, const ot_tensor *inputs, int n_inputs, ot_err *err);

/*
 * Overlapped runs. ot_exec_launch starts a run as ot_exec_run does and may
 * return before it finishes (ot_exec_overlaps: the CUDA backend); every
 * other call on the executor (outputs, state, the next launch or run) waits
 * for it first, and ot_exec_wait waits for it and reports its error.
 * Meanwhile ot_exec_prefetch hands in input i of the next run (an input
 * named by opts.prefetch_input): its bytes are taken now, and their upload
 * overlaps the run in flight; the next run uses them instead of copying its
 * inputs[i], which must still be given (same shape; a backend that reads the
 * caller's memory, the CPU, reads inputs[i], so it must hold the same
 * bytes). On the CPU launch runs to the end and prefetch takes nothing.
 * Errors: as ot_exec_run; OT_ERR_ARG for an input not compiled for
 * prefetch or of another size.
 */
bool ot_exec_overlaps(const ot_exec *x);
ot_status ot_exec_launch(ot_exec *x, const ot_tensor *inputs, int n_inputs, ot_err *err);
ot_status ot_exec_wait(ot_exec *x, ot_err *err);
ot_status ot_exec_prefetch(ot_exec *x, int i, const ot_tensor *t, ot_err *err);
/* The same for the input of opts.prefetch_u8: `images` holds its n uint8
   images (n is the input's first dim). The CUDA backend uploads them and
   runs the transform on the device at the next run's start; a backend
   without it writes the floats with u8->host to `host_out` (the input's
   size) and hands that in, so pass `host_out` as inputs[i].data to the next
   run. Errors: OT_ERR_ARG (no prefetch_u8 for it), what `host` returns,
   OT_ERR_BACKEND. */
ot_status ot_exec_prefetch_u8(ot_exec *x, int i, const uint8_t *images, float *host_out,
                              ot_err *err);

/*
 * Records kept where an executor computes (the frozen-prefix cache of the
 * training loop on a device): n_records records of n_parts parts, part k
 * holding one row of part_bytes[k] bytes of an output or input of an
 * executor (a row: one image's slice of a tensor whose first dim is the
 * batch), as float32 or, where bf16[k] (float parts only), as bfloat16
 * (round to nearest even, half the bytes). In the backend's memory
 * (OT_STORE_DEVICE: a GPU's) or in pinned host memory the device copies
 * from directly (OT_STORE_PINNED); a backend that computes in host memory
 * keeps either in host memory. The store belongs to the executor it was
 * opened on: free it first. Executors of the same device may put and take.
 */
typedef enum { OT_STORE_DEVICE = 0, OT_STORE_PINNED } ot_store_place;
typedef struct ot_exec_store ot_exec_store;

/* Errors: OT_ERR_NOMEM (not that much memory of the kind: the caller may
   place the records elsewhere), OT_ERR_ARG (no parts, a bfloat16 part of odd
   row bytes, a size that overflows). */
ot_status ot_exec_store_open(ot_exec *x, ot_store_place place, const size_t *part_bytes,
                             const bool *bf16, int n_parts, int64_t n_records,
                             ot_exec_store **out, ot_err *err);
/* Rows [0, n) of output out_i of x's last run into part `part` of records
   idx[0 .. n); done when it returns. Errors: OT_ERR_ARG (the output's rows
   are not the part's size, or fewer than n; a record out of range),
   OT_ERR_BACKEND. */
ot_status ot_exec_store_put(ot_exec_store *s, ot_exec *x, int out_i, int part,
                            const int64_t *idx, int n, ot_err *err);
/* Part `part` of records idx[0 .. n) into rows [0, n) of input in_i of x's
   next run, handed in as ot_exec_prefetch does: the next launch takes them
   instead of copying its inputs[in_i] (in order after a run in flight, on
   the device). A backend that reads the caller's memory (the CPU) gets them
   in host_buf instead (the input's size): pass host_buf as inputs[in_i].data.
   Errors: as ot_exec_store_put. */
ot_status ot_exec_store_take(ot_exec_store *s, ot_exec *x, int in_i, int part,
                             const int64_t *idx, int n, void *host_buf, ot_err *err);
/* The records' bytes. */
uint64_t ot_exec_store_bytes(const ot_exec_store *s);
void ot_exec_store_free(ot_exec_store *s);

/* Free and total bytes of the memory the executor computes in, when that is
   a device's own (cudaMemGetInfo); false for a backend that computes in host
   memory. */
bool ot_exec_mem_info(const ot_exec *x, size_t *free_bytes, size_t *total_bytes);

/* Number of graph outputs and output i: a host tensor, plain row-major,
   owned by the executor, valid until the next run (a backend whose memory the
   host cannot address copies the output out on the first call after a run;
   NULL when that copy fails, logged). */
int ot_exec_n_outputs(const ot_exec *x);
const ot_tensor *ot_exec_output(const ot_exec *x, int i);
const char *ot_exec_output_name(const ot_exec *x, int i);

/*
 * The executor's state: a mutable copy of each value flagged OT_VAL_STATE
 * when compiled (trained parameters, BN running statistics), in the
 * backend's memory, initialised from the graph's bytes: plain row-major, or
 * in a layout the backend keeps between runs (the CPU backend's trained
 * convolution weights, their gradients' and moments' layout: docs/executor.md).
 * ot_exec_read_state copies one out to the host, ot_exec_write_state copies
 * host bytes in, both plain row-major whatever the layout inside; `bytes`
 * must be the value's size (ot_exec_state_bytes). Executors sharing state
 * (opts.share_state) see each other's writes and keep the same layouts.
 * Errors: OT_ERR_ARG (not a state value, or another size), OT_ERR_BACKEND.
 */
size_t ot_exec_state_bytes(const ot_exec *x, int32_t value); /* 0: not a state value */
ot_status ot_exec_read_state(const ot_exec *x, int32_t value, void *dst, size_t bytes,
                             ot_err *err);
ot_status ot_exec_write_state(ot_exec *x, int32_t value, const void *src, size_t bytes,
                              ot_err *err);

/* The backend's own buffer of state value `value` (device memory on CUDA,
   in the backend's layout), its bytes, and the queue the executor's runs are
   ordered on (the CUDA backend's stream; NULL where runs are synchronous:
   the CPU), after any run in flight: for collectives on the executor's
   memory (NCCL's broadcast of the initial state, src/train/trainer.c).
   Errors: OT_ERR_ARG (not a state value). */
ot_status ot_exec_state_mem(ot_exec *x, int32_t value, void **ptr, size_t *bytes, void **queue,
                            ot_err *err);

/* Bytes of the activation arena the planner laid out (for tests and --profile). */
size_t ot_exec_arena_bytes(const ot_exec *x);

/* One step's accumulated time when compiled with opts.profile: the node it
   runs (NULL for a reorder between layouts), a kind ("Conv", "reorder",
   "Conv+Relu"...), which kernel ("onednn" or "plain"), runs and seconds. */
typedef struct ot_exec_step_time {
    const char *node;
    const char *kind;
    const char *kernel;
    uint64_t runs;
    double seconds;
} ot_exec_step_time;

/* Number of steps, and step i's time (zeros when not profiling). */
int ot_exec_n_steps(const ot_exec *x);
void ot_exec_step_profile(const ot_exec *x, int i, ot_exec_step_time *out);

void ot_exec_free(ot_exec *x);

#endif
