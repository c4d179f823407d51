/*
 * cli.h: what the onnxtrain subcommands share: the option parser, error and
 * usage reporting, size parsing and safe printing of names from model files.
 * The helpers live in main.c; each subcommand is one cmd_<name>.c whose entry
 * point main.c dispatches to.
 *
 * Each command describes its options in one table of typed rows (ot_cli_opt:
 * long and short name, type, range, the field of the command's options
 * struct that takes the value, help line); ot_cli_parse_into reads argv with
 * getopt_long against it, checks and stores every value, and reports every
 * usage error; the usage text is printed from the same table.
 *
 * Conventions every command follows:
 *   - options and positional arguments in any order; `--opt=value` and
 *     `--opt value`; `--` ends the options; `-vv` is `-v -v`; long names
 *     are taken whole (no abbreviations);
 *   - `-h`/`--help` prints the command's usage to stdout, exit 0;
 *   - `-v` (info) and `-vv` (debug) raise the log level; warnings always show;
 *   - errors: one line `onnxtrain: error: <message>` on stderr, exit 1;
 *     usage errors: one line naming the command and `--help`, exit 2.
 *
 * Only src/cli calls exit(), and only main() does: commands return their
 * exit status.
 */
#ifndef OT_CLI_H
#define OT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/core.h"

/* Exit statuses. */
enum { OT_EXIT_OK = 0, OT_EXIT_ERROR = 1, OT_EXIT_USAGE = 2 };

/* What an option's value is, and how the parser checks and stores it. */
typedef enum ot_cli_type {
    OT_CLI_TEXT = 0, /* any non-empty text, kept in args->value only (no field)    */
    OT_CLI_FLAG,     /* no value: the bool (or int) field becomes true (1)         */
    OT_CLI_INT,      /* decimal integer in imin .. imax: int, int64_t or uint64_t   */
    OT_CLI_REAL,     /* decimal number in rmin .. rmax: double or float             */
    OT_CLI_SIZE,     /* bytes, suffix K, M, G or T, in umin .. umax: uint64_t       */
    OT_CLI_ENUM,     /* one of `choices`: the int (or enum) field takes its value   */
    OT_CLI_PATH,     /* a file or folder name: const char * into argv               */
    OT_CLI_STRING,   /* other text: const char * into argv                          */
    OT_CLI_LIST,     /* repeatable text: every value, in order, in an ot_cli_list   */
    OT_CLI_BATCH,    /* a batch size N >= 1 or "dynamic" (OT_DIM_DYNAMIC): int64_t  */
} ot_cli_type;

/* The C type of a destination field, found by OT_CLI_AT. */
typedef enum ot_cli_dest {
    OT_CLI_D_NONE = 0, /* no field: read args->count[] and args->value[]           */
    OT_CLI_D_BOOL,
    OT_CLI_D_INT,
    OT_CLI_D_UINT,     /* unsigned int, and an enum type without negative values */
    OT_CLI_D_I64,
    OT_CLI_D_U64,
    OT_CLI_D_DOUBLE,
    OT_CLI_D_FLOAT,
    OT_CLI_D_STR,
    OT_CLI_D_LIST,
} ot_cli_dest;

/* The values of a repeatable option (OT_CLI_LIST), in the order given.
   Points into argv and into memory owned by the ot_cli_args. */
typedef struct ot_cli_list {
    const char *const *v;
    int n;
} ot_cli_list;

/* One accepted value of an OT_CLI_ENUM option. An alias is accepted but not
   listed in the error message. */
typedef struct ot_cli_choice {
    const char *name;
    int value;
    bool alias;
} ot_cli_choice;

/* The destination of an option: field `f` of the options struct T. The field
   type is checked at compile time: a type the parser cannot store matches no
   association of the _Generic and does not compile. */
#define OT_CLI_AT(T, f)                                                                        \
    .off = offsetof(T, f),                                                                     \
    .dest = _Generic(((T *)0)->f, bool: OT_CLI_D_BOOL, int: OT_CLI_D_INT,                      \
                     unsigned int: OT_CLI_D_UINT, int64_t: OT_CLI_D_I64,                       \
                     uint64_t: OT_CLI_D_U64, double: OT_CLI_D_DOUBLE,                          \
                     float: OT_CLI_D_FLOAT, const char *: OT_CLI_D_STR,                        \
                     ot_cli_list: OT_CLI_D_LIST)

/* Rows of a command's option table. A table is indexed by the command's enum
   of option ids ([RUN_BATCH] = OT_CLI_INT_OPT(...)), so that code names an
   option by its id or by its field, never by its text. */
#define OT_CLI_FLAG_OPT(T, f, long_, short_, help_)                                           \
    { .name = long_, .short_name = short_, .help = help_, .type = OT_CLI_FLAG, OT_CLI_AT(T, f) }
#define OT_CLI_INT_OPT(T, f, long_, short_, arg_, lo, hi, help_)                              \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_INT,     \
      .imin = lo, .imax = hi, OT_CLI_AT(T, f) }
#define OT_CLI_REAL_OPT(T, f, long_, short_, arg_, lo, hi, help_)                             \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_REAL,    \
      .rmin = lo, .rmax = hi, OT_CLI_AT(T, f) }
#define OT_CLI_SIZE_OPT(T, f, long_, short_, arg_, lo, hi, help_)                             \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_SIZE,    \
      .umin = lo, .umax = hi, OT_CLI_AT(T, f) }
#define OT_CLI_ENUM_OPT(T, f, long_, short_, arg_, choices_, help_)                           \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_ENUM,    \
      .choices = choices_, OT_CLI_AT(T, f) }
#define OT_CLI_PATH_OPT(T, f, long_, short_, arg_, help_)                                     \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_PATH,    \
      OT_CLI_AT(T, f) }
#define OT_CLI_STRING_OPT(T, f, long_, short_, arg_, help_)                                   \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_STRING,  \
      OT_CLI_AT(T, f) }
#define OT_CLI_LIST_OPT(T, f, long_, short_, arg_, help_)                                     \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_LIST,    \
      OT_CLI_AT(T, f) }

#define OT_CLI_BATCH_OPT(T, f, long_, short_, arg_, help_)                                    \
    { .name = long_, .short_name = short_, .arg = arg_, .help = help_, .type = OT_CLI_BATCH,   \
      OT_CLI_AT(T, f) }

/* --device NAME on the commands that compute (run, test-data, predict,
   finetune, eval): the row, and the check of its value. */
#define OT_CLI_DEVICE_HELP "where to compute: cpu (default), cuda or cuda:N (a GPU: onnxtrain --version says whether one is usable)"
#define OT_CLI_DEVICE_OPT(T, f)                                                                \
    OT_CLI_STRING_OPT(T, f, "device", 0, "NAME", OT_CLI_DEVICE_HELP)

/* --precision fp32|tf32|bf16|fp16|auto on the same commands: the row (an
   ot_precision field) and the check against the device (ot_cli_precision). */
extern const ot_cli_choice ot_cli_precision_choices[];
#define OT_CLI_PRECISION_HELP                                                                  \
    "arithmetic of convolutions and matrix products: fp32 (default), bf16 (mixed precision, "  \
    "fp32 master weights), tf32 or fp16 (GPU only), auto (the faster, measured once per "      \
    "machine and shape)"
#define OT_CLI_PRECISION_OPT(T, f)                                                             \
    OT_CLI_ENUM_OPT(T, f, "precision", 0, "P", ot_cli_precision_choices, OT_CLI_PRECISION_HELP)

/* The deployment conversions (converters/converters.h) that convert,
   finetune and export share: the ids go into the command's option enum
   (OT_CLI_CONVERT_IDS(CONVERT)), the rows into its table
   (OT_CLI_CONVERT_ROWS(CONVERT, convert_args, conv)), where `conv` is an
   ot_convert_opts field of the command's options struct. */
#define OT_CLI_CONVERT_IDS(P)                                                                  \
    P##_OPSET, P##_CLEAN_INPUTS, P##_FOLD_BN, P##_SIMPLIFY, P##_FP16, P##_KEEP_IO_TYPES,          \
        P##_NO_KEEP_IO_TYPES, P##_INT8, P##_CALIB_DATA, P##_CALIB_IMAGES, P##_CALIB_METHOD
#define OT_CLI_CONVERT_ROWS(P, T, f)                                                           \
    [P##_OPSET] = OT_CLI_INT_OPT(T, f.opset, "opset", 0, "N", 7, 21,                           \
                                 "convert the model to ONNX opset N (7 to 21)"),               \
    [P##_CLEAN_INPUTS] = OT_CLI_FLAG_OPT(T, f.clean_inputs, "clean-inputs", 0,                 \
                                         "stop listing initializers as graph inputs"),         \
    [P##_FOLD_BN] = OT_CLI_FLAG_OPT(T, f.fold_bn, "fold-bn", 0,                                \
                                    "fold BatchNormalization into the Conv or Gemm it follows"),   \
    [P##_SIMPLIFY] = OT_CLI_FLAG_OPT(T, f.simplify, "simplify", 0,                             \
                                     "fold constants, drop no-op and dead nodes"),             \
    [P##_FP16] = OT_CLI_FLAG_OPT(T, f.fp16, "fp16", 0,                                         \
                                 "float16 weights and compute, sensitive ops kept float32"),   \
    [P##_KEEP_IO_TYPES] = OT_CLI_FLAG_OPT(T, f.keep_io_types, "keep-io-types", 0,              \
                                          "--fp16: float32 inputs and outputs (the default)"), \
    [P##_NO_KEEP_IO_TYPES] = OT_CLI_FLAG_OPT(T, f.no_keep_io_types, "no-keep-io-types", 0,     \
                                             "--fp16: float16 inputs and outputs too"),        \
    [P##_INT8] = OT_CLI_FLAG_OPT(T, f.int8, "int8", 0,                                         \
                                 "int8 QDQ: per-channel weights, calibrated activations"),     \
    [P##_CALIB_DATA] = OT_CLI_PATH_OPT(T, f.calib_data, "calib-data", 0, "DIR",                \
                                       "images to calibrate on (--int8; --fp16: keep float32 " \
                                       "what overflows float16)"),                             \
    [P##_CALIB_IMAGES] = OT_CLI_INT_OPT(T, f.calib_images, "calib-images", 0, "N", 1,          \
                                        INT64_MAX, "calibrate on at most N images (default "   \
                                        "1024)"),                                              \
    [P##_CALIB_METHOD] = OT_CLI_ENUM_OPT(T, f.calib_method, "calib-method", 0,                 \
                                         "minmax|percentile|entropy", ot_cli_calib_methods,    \
                                         "how ranges are chosen (default minmax)")

/* Runs the conversions `o` asks for on g (the model read from `path`);
   prints a failure. Returns an exit status. */
struct ot_convert_opts;
int ot_cli_convert(struct ot_graph *g, const char *path, const struct ot_convert_opts *o);

/* The precision conversions of `o` (--fp16, --int8) with their calibration
   and report (src/cli/quantize.c); ot_cli_convert calls it after the other
   converters. Returns an exit status. */
int ot_cli_quantize(struct ot_graph *g, const char *path, const struct ot_convert_opts *o);
/* The choices of --calib-method. */
extern const ot_cli_choice ot_cli_calib_methods[];

/* The ranges and rows the commands share. */
#define OT_CLI_THREADS_MAX 4096   /* --threads: 1 .. 4096                    */
#define OT_CLI_SEED_MAX INT64_MAX /* --seed: 0 .. 2^63 - 1                   */
#define OT_CLI_MAX_TENSOR_SIZE_OPT(T, f)                                                       \
    OT_CLI_SIZE_OPT(T, f, "max-tensor-size", 0, "BYTES", 1, UINT64_MAX,                        \
                    "refuse larger tensors (suffix K, M, G; default 16G)")

/* One option a command accepts. `-h/--help` and `-v/--verbose` are added by
   the parser to every command and need no row. Rows are written with the
   OT_CLI_*_OPT macros; a row without a field (a plain initializer) is only
   counted, and its last value kept. */
typedef struct ot_cli_opt {
    const char *name;     /* long name without the dashes: "json"             */
    char short_name;      /* 'o', or 0 for none                               */
    const char *arg;      /* placeholder of the value ("BYTES"); NULL: a flag */
    const char *help;     /* one line for the usage text                      */
    ot_cli_type type;
    ot_cli_dest dest;     /* the field's C type; OT_CLI_D_NONE: no field      */
    size_t off;           /* the field's offset in the options struct         */
    int64_t imin, imax;   /* OT_CLI_INT                                       */
    uint64_t umin, umax;  /* OT_CLI_SIZE                                      */
    double rmin, rmax;    /* OT_CLI_REAL                                      */
    const ot_cli_choice *choices; /* OT_CLI_ENUM, ended by a NULL name        */
} ot_cli_opt;

#define OT_CLI_MAX_OPTS 96

/* A command's description, for its usage text and the parser. */
typedef struct ot_cli_cmd {
    const char *name;          /* "inspect"                                    */
    const char *args;          /* positionals in the usage line: "MODEL"       */
    const char *summary;       /* one line for `onnxtrain help`                */
    const char *details;       /* more text after the options, or NULL         */
    const ot_cli_opt *opts;    /* terminated by a row with name NULL           */
    int n_pos_min, n_pos_max;  /* positional count range                       */
} ot_cli_cmd;

/* What the parser found. Values point into argv. */
typedef struct ot_cli_args {
    int count[OT_CLI_MAX_OPTS];         /* times each option of cmd->opts was given */
    const char *value[OT_CLI_MAX_OPTS]; /* its last value (options with an arg)     */
    const char **lists;                 /* OT_CLI_LIST values (malloc'ed)           */
    const char **pos;                   /* positional arguments (malloc'ed)         */
    int n_pos;
    bool help;                          /* -h/--help was given                      */
} ot_cli_args;

/*
 * Parses argv[0..argc) (the words after the command name) against `cmd` with
 * getopt_long, then checks each option that was given and stores it in its
 * field of `dest`, the command's options struct, which holds the defaults
 * before the call (NULL when no row has a field). The row index is the
 * option's id in args->count and args->value.
 *
 * Unknown options, a missing or empty value, a value given to a flag, a bad
 * or out-of-range value, and a wrong count of positionals are usage errors:
 * printed here as one line
 *   onnxtrain: error: CMD: <what> (see 'onnxtrain CMD --help')
 * and returned as OT_EXIT_USAGE; OT_EXIT_OK otherwise. A bad value reads
 *   bad value 'TEXT' for --NAME (expected an integer from LO to HI)
 * (a decimal number, bytes, or the list of choices for the other types).
 * Long names are taken whole, never abbreviated. When --help was given,
 * values and positional counts are not checked. -v/--verbose raise the log
 * level as they are seen. Free with ot_cli_args_fini (list fields point into
 * args).
 */
int ot_cli_parse_into(const ot_cli_cmd *cmd, int argc, char **argv, ot_cli_args *args,
                      void *dest);
void ot_cli_args_fini(ot_cli_args *args);

/* Prints the command's usage text to `f`. */
void ot_cli_print_usage(const ot_cli_cmd *cmd, FILE *f);

/* Prints `onnxtrain: error: <message>` to stderr; returns OT_EXIT_ERROR. */
int ot_cli_error(const char *fmt, ...) OT_PRINTF(1, 2);

/* Refuses an output that is the same file as an input or as another output
   (the same path, or the same file through a hard or symbolic link), which
   the write would replace: prints "OUT: the OUT_WHAT would replace the
   OTHER_WHAT OTHER (the same file); write to another file" and returns
   OT_EXIT_ERROR. OT_EXIT_OK otherwise, or when either path is NULL. */
int ot_cli_distinct(const char *out, const char *out_what, const char *other,
                    const char *other_what);

/* Prints `onnxtrain: error: CMD: <message> (see 'onnxtrain CMD --help')`;
   returns OT_EXIT_USAGE. */
int ot_cli_usage_error(const ot_cli_cmd *cmd, const char *fmt, ...) OT_PRINTF(2, 3);

/* Parses a --device value (NULL: the CPU) into *out. Returns OT_EXIT_OK, or
   reports and returns OT_EXIT_USAGE for a name that is not a device and
   OT_EXIT_ERROR for a device this build cannot use. */
struct ot_device;
int ot_cli_device(const ot_cli_cmd *cmd, const char *name, struct ot_device *out);

/* Checks --precision against the device (after ot_cli_device): reports a
   precision the device does not compute in, one line, and returns
   OT_EXIT_ERROR; else OT_EXIT_OK. */
int ot_cli_precision(const struct ot_device *dev, ot_precision p);

/* --autotune and --plan-cache DIR beside --device: how a GPU picks and keeps
   its convolution plans. The ids go into the command's option enum
   (OT_CLI_PLAN_IDS(RUN)), the rows into its table (OT_CLI_PLAN_ROWS(RUN,
   run_args, plans)), where `plans` is an ot_cli_plan_args field;
   ot_cli_plans applies them to the process (ot_exec_set_plan_opts). */
typedef struct ot_cli_plan_args {
    bool autotune;
    const char *plan_cache;
} ot_cli_plan_args;
#define OT_CLI_PLAN_IDS(P) P##_AUTOTUNE, P##_PLAN_CACHE
#define OT_CLI_PLAN_ROWS(P, T, f)                                                              \
    [P##_AUTOTUNE] = OT_CLI_FLAG_OPT(T, f.autotune, "autotune", 0,                             \
                                     "on a GPU, time the best convolution engines and keep "   \
                                     "the fastest"),                                           \
    [P##_PLAN_CACHE] = OT_CLI_STRING_OPT(T, f.plan_cache, "plan-cache", 0, "DIR",              \
                                         "on a GPU, the folder where convolution plans are "   \
                                         "kept (default $XDG_CACHE_HOME/onnxtrain)")
int ot_cli_plans(const ot_cli_plan_args *a);

/* With --precision auto, says in one line on `f` what it picked and why. */
void ot_cli_precision_said(FILE *f, ot_precision p);

/* The thread count for a command that computes on the CPU: `given`
   (--threads) when it is positive; 0 (the library's default: OMP_NUM_THREADS)
   when OMP_NUM_THREADS is set; else the cores of the affinity mask that
   other processes are not using, from /proc/stat between the process's
   start and now (at least 0.1 s apart), saying so in one line on `f`
   (NULL: an info message). 0 where /proc/stat cannot be read. */
int ot_cli_threads(int given, FILE *f);

/* Raises the log level by one step (warn -> info -> debug). */
void ot_cli_verbose(void);
/* Library messages: errors only (the ranks of a distributed run but 0). */
void ot_cli_errors_only(void);

/* Parses a byte count: digits with an optional suffix K, M, G or T (powers of
   1024, case-insensitive, optionally followed by "B" or "iB"). False when the
   text is not such a number or the value overflows. */
bool ot_cli_parse_size(const char *s, uint64_t *out);

/*
 * One parser per kind of value, shared by every command, so that the same
 * text is accepted everywhere and every error states the accepted range.
 * Numbers are decimal only: no hex, no "inf" or "nan", no leading '+' or
 * white space, no trailing characters; a value that overflows is refused,
 * never wrapped or clamped.
 *   ot_cli_parse_int:  [-]digits, within lo .. hi.
 *   ot_cli_parse_real: [-]digits[.digits][e[+|-]digits] (or .digits), finite,
 *                      not rounded to zero or infinity, within lo .. hi.
 * False when the text is not such a value.
 */
bool ot_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);
bool ot_cli_parse_real(const char *s, double lo, double hi, double *out);

/* Writes `s` for a human reader: valid UTF-8 as is, control characters and
   invalid bytes as \xNN, so that a name from a file cannot break the layout
   or drive the terminal. */
void ot_cli_text_str(FILE *f, const char *s);

/* Display width of what ot_cli_text_str writes (code points, escapes as 4). */
size_t ot_cli_text_width(const char *s);

/* Formats n with thousands separators ("11,689,512"). */
void ot_cli_group_digits(uint64_t n, char *buf, size_t size);

/* Formats a byte count for people: "512 B", "44.6 MiB". */
void ot_cli_human_bytes(uint64_t n, char *buf, size_t size);

/* Flushes stdout; reports a write error (full disk, closed pipe) as an error.
   Returns OT_EXIT_OK or OT_EXIT_ERROR. */
int ot_cli_finish_stdout(void);

/* Subcommand entry points: argv holds the words after the command name. */
int ot_cmd_inspect(int argc, char **argv);
int ot_cmd_convert(int argc, char **argv);
int ot_cmd_run(int argc, char **argv);
int ot_cmd_test_data(int argc, char **argv);
int ot_cmd_finetune(int argc, char **argv);

/* The options that shape a training plan, shared by finetune and
   `inspect --training` (the same names, values and help in both). */
typedef struct ot_cli_plan {
    int mode;                 /* ot_freeze_mode: --mode                        */
    int bn_train;             /* --bn: 0 policy, 1 train                       */
    int classes;              /* --classes: a new head of N classes; 0 keeps it */
    const char *train;        /* --train PAT,...                               */
    const char *freeze;       /* --freeze PAT,...                              */
    const char *freeze_until; /* --freeze-until NAME                           */
} ot_cli_plan;

/* The values of --mode and --bn. */
extern const ot_cli_choice ot_cli_mode_choices[];
extern const ot_cli_choice ot_cli_bn_choices[];
#define OT_CLI_CLASSES_MAX (1 << 20)

/* `inspect --training`: applies the freeze and head options in `p` to g and
   prints the training plan, as text or one JSON object. Returns an exit
   status. */
struct ot_graph;
int ot_cli_inspect_training(struct ot_graph *g, const char *path, const ot_cli_cmd *cmd,
                            const ot_cli_plan *p, bool json);
int ot_cmd_eval(int argc, char **argv);
int ot_cmd_export(int argc, char **argv);
int ot_cmd_predict(int argc, char **argv);
int ot_cmd_zoo(int argc, char **argv);
int ot_cmd_verify(int argc, char **argv);

/* --batch N|dynamic (convert, finetune): parses the value (OT_DIM_DYNAMIC for
   "dynamic"), and rewrites dim 0 of a graph's inputs, outputs and value_info
   as docs/cli.md says. apply returns an exit status and prints errors; it
   refuses a size that makes a declared tensor larger than max_bytes (0: the
   default limit, 16 GiB), naming the accepted range. */
struct ot_graph;
bool ot_cli_parse_batch(const char *s, int64_t *dim);

/* Prints the --profile report to f: time per step kind over the executors
   (compiled with opts.profile; NULL entries are skipped), the slowest steps,
   and extra phases measured by the caller (e.g. "data loading"). */
struct ot_exec;
void ot_cli_print_profile(FILE *f, const struct ot_exec *const *xs, const char *const *names,
                          int n_exec, const char *const *extra, const double *extra_s,
                          int n_extra);
int ot_cli_apply_batch(struct ot_graph *g, const char *path, int64_t dim, uint64_t max_bytes);

/* The batch dim of a trained model as written (finetune -o, its checkpoints,
   export): *dim is the --batch value (a size, or OT_DIM_DYNAMIC), applied
   as convert does. Without it (NULL) the batch
   becomes dynamic ('N') when some image input declares a fixed one (a
   PyTorch export traced at batch 2 would otherwise refuse batch 1 in a
   runtime); a model whose inputs are all dynamic already, or that has an
   input without a batch dim, is left as it is. Returns an exit status. */
int ot_cli_export_batch(struct ot_graph *g, const char *path, const int64_t *dim);

/* Reads the value `list` of --data-classes ("5-9", "0,2,4-6") into
   classes[OT_DATA_MAX_CLASSES] (*n 0 when list is NULL). Returns an exit
   status (a usage error for a malformed list). */
int ot_cli_read_data_classes(const ot_cli_cmd *cmd, const char *list, int *classes, int *n);

#endif
