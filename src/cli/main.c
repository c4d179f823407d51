/*
 * main.c: the onnxtrain command. Global options, dispatch to the
 * subcommands, `onnxtrain help [CMD]`, and the helpers of cli.h (option
 * parser, error lines, log routing to stderr, safe printing).
 *
 * This is the only place that ends the process: commands return an exit
 * status (0 ok, 1 error, 2 usage) and main() returns it. Library messages
 * (ot_log) go to stderr as `onnxtrain: warning: ...`; warnings show by
 * default, -v adds info and -vv debug.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/dist.h"
#include "cli/cli.h"
#include "cli/json.h"
#include "exec/exec.h"
#include "core/cpuload.h"
#include "core/file.h"
#include "passes/freeze.h"

/* ------------------------------------------------------------ commands */

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    { "inspect", "print a summary of an ONNX model (ops, shapes, parameters, head)",
      ot_cmd_inspect },
    { "convert", "re-export an ONNX model: opset, BN folding, simplification, batch, data",
      ot_cmd_convert },
    { "run", "run a model once on the CPU: input tensor files in, outputs printed or written",
      ot_cmd_run },
    { "test-data", "run ONNX test folders (model.onnx, test_data_set_*) and compare outputs",
      ot_cmd_test_data },
    { "finetune", "adapt a pretrained classifier to new data and export it as ONNX",
      ot_cmd_finetune },
    { "eval", "score a classifier on a data set: accuracy, loss, confusion matrix", ot_cmd_eval },
    { "export", "turn a training checkpoint into the plain inference model", ot_cmd_export },
    { "predict", "classify image files: top classes and their probabilities", ot_cmd_predict },
    { "zoo", "list the builders and the ONNX model zoo manifest, or build a ResNet-18/34",
      ot_cmd_zoo },
    { "verify", "run a model in onnxtrain, onnxruntime and OpenCV, compare, lint for others",
      ot_cmd_verify },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_main_usage(FILE *f)
{
    fprintf(f, "usage: onnxtrain [-v|-vv] COMMAND [ARGS...]\n"
               "       onnxtrain help [COMMAND]\n"
               "       onnxtrain --version\n"
               "\n"
               "Imports, inspects, converts and trains ONNX models.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "help", "show the usage of onnxtrain or of a command");
    fprintf(f, "\n"
               "global options:\n"
               "  -v, --verbose   show info messages; -vv also shows debug messages\n"
               "  --version       print the version and exit\n"
               "  -h, --help      print this help and exit\n"
               "\n"
               "Options and arguments may come in any order. Run 'onnxtrain help COMMAND'\n"
               "or 'onnxtrain COMMAND --help' for a command's options.\n"
               "Exit status: 0 success, 1 error, 2 usage error.\n");
}

/* ------------------------------------------------------------- logging */

/* The log level is part of the log router's state, set once per option. */
static ot_log_level log_level = OT_LOG_WARN;

static void log_to_stderr(ot_log_level level, const char *msg, void *user)
{
    (void)user;
    static const char *const names[] = { "error", "warning", "info", "debug" };
    const char *name = (unsigned)level < 4 ? names[level] : "debug";
    fflush(stdout);
    fprintf(stderr, "onnxtrain: %s: ", name);
    if (ot_dist_current())
        fprintf(stderr, "rank %d: ", ot_dist_rank());
    ot_cli_text_str(stderr, msg);
    fputc('\n', stderr);
}

void ot_cli_errors_only(void)
{
    log_level = OT_LOG_ERROR;
    ot_log_set(log_to_stderr, NULL, log_level);
}

void ot_cli_verbose(void)
{
    if (log_level < OT_LOG_DEBUG)
        log_level = (ot_log_level)(log_level + 1);
    ot_log_set(log_to_stderr, NULL, log_level);
}

/* ---------------------------------------------------------- safe output */

/* Length of the valid UTF-8 sequence at the NUL-terminated s, or 0 when the
   bytes there are not one. The NUL fails the continuation-byte test, so no
   byte past it is read. */
static size_t utf8_len(const unsigned char *s)
{
    return ot_utf8_seq(s, s + 4);
}

void ot_cli_text_str(FILE *f, const char *s)
{
    if (!s)
        return;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t len = (*p < 0x20 || *p == 0x7f) ? 0 : utf8_len(p);
        if (len == 0) {
            fprintf(f, "\\x%02x", (unsigned)*p++);
        } else {
            fwrite(p, 1, len, f);
            p += len;
        }
    }
}

size_t ot_cli_text_width(const char *s)
{
    size_t w = 0;
    if (!s)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t len = (*p < 0x20 || *p == 0x7f) ? 0 : utf8_len(p);
        w += len ? 1 : 4;
        p += len ? len : 1;
    }
    return w;
}

void ot_cli_group_digits(uint64_t n, char *buf, size_t size)
{
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    char tmp[48];
    size_t j = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            tmp[j++] = ',';
        tmp[j++] = digits[i];
    }
    tmp[j] = '\0';
    snprintf(buf, size, "%s", tmp);
}

void ot_cli_human_bytes(uint64_t n, char *buf, size_t size)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    if (n < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)n);
        return;
    }
    double x = (double)n / 1024.0;
    size_t u = 0;
    while (x >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        x /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.1f %s", x, units[u]);
}

int ot_cli_finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return ot_cli_error("cannot write to standard output");
    return OT_EXIT_OK;
}

int ot_cli_print_json(json_t *root)
{
    bool ok = root && ot_json_write(stdout, root);
    json_decref(root);
    return ok ? OT_EXIT_OK : ot_cli_error("out of memory");
}

/* ----------------------------------------------------------- error lines */

static void vreport(const char *cmd, const char *hint, const char *fmt, va_list ap)
    OT_PRINTF(3, 0);

static void vreport(const char *cmd, const char *hint, const char *fmt, va_list ap)
{
    char msg[OT_ERR_MSG_MAX + 256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fflush(stdout);
    /* the line is composed first and written in one call: under a launcher
       the ranks' lines share one stream and must not interleave */
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    FILE *out = f ? f : stderr;
    fputs("onnxtrain: error: ", out);
    if (ot_dist_current())
        fprintf(out, "rank %d: ", ot_dist_rank());
    if (cmd)
        fprintf(out, "%s: ", cmd);
    ot_cli_text_str(out, msg);
    if (hint)
        fprintf(out, " (see '%s')", hint);
    fputc('\n', out);
    if (f && fclose(f) == 0 && line) {
        fflush(stderr);
        if (write(STDERR_FILENO, line, len) < 0)
            line[0] = '\0'; /* nowhere left to say it */
    }
    free(line);
}

int ot_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(NULL, NULL, fmt, ap);
    va_end(ap);
    return OT_EXIT_ERROR;
}

int ot_cli_distinct(const char *out, const char *out_what, const char *other,
                    const char *other_what)
{
    /* a device such as /dev/null is written directly and may take several
       outputs; as an input it is refused by the reader */
    if (!out || !other || ot_file_is_special(out) ||
        (strcmp(out, other) != 0 && !ot_file_same(out, other)))
        return OT_EXIT_OK;
    return ot_cli_error("%s: the %s would replace the %s %s (the same file); write to another "
                        "file",
                        out, out_what, other_what, other);
}

int ot_cli_usage_error(const ot_cli_cmd *cmd, const char *fmt, ...)
{
    char hint[64];
    snprintf(hint, sizeof hint, "onnxtrain %s --help", cmd->name);
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd->name, hint, fmt, ap);
    va_end(ap);
    return OT_EXIT_USAGE;
}

int ot_cli_device(const ot_cli_cmd *cmd, const char *name, ot_device *out)
{
    ot_err err;
    ot_err_init(&err);
    ot_status st = ot_device_parse(name, out, &err);
    if (st == OT_ERR_ARG)
        return ot_cli_usage_error(cmd, "--device: %s", err.msg);
    if (st != OT_OK)
        return ot_cli_error("%s", err.msg);
    return OT_EXIT_OK;
}

const ot_cli_choice ot_cli_precision_choices[] = {
    { "fp32", OT_PRECISION_FP32, false }, { "tf32", OT_PRECISION_TF32, false },
    { "bf16", OT_PRECISION_BF16, false }, { "fp16", OT_PRECISION_FP16, false },
    { "auto", OT_PRECISION_AUTO, false }, { "float32", OT_PRECISION_FP32, true },
    { "bfloat16", OT_PRECISION_BF16, true }, { "float16", OT_PRECISION_FP16, true },
    { NULL, 0, false },
};

int ot_cli_precision(const ot_device *dev, ot_precision p)
{
    ot_err err;
    ot_err_init(&err);
    if (ot_precision_check(dev, p, &err) != OT_OK)
        return ot_cli_error("%s", err.msg);
    return OT_EXIT_OK;
}

int ot_cli_plans(const ot_cli_plan_args *a)
{
    ot_err err;
    ot_err_init(&err);
    ot_exec_plan_opts o = { .autotune = a->autotune, .cache_dir = a->plan_cache };
    if (ot_exec_set_plan_opts(&o, &err) != OT_OK)
        return ot_cli_error("%s", err.msg);
    return OT_EXIT_OK;
}

void ot_cli_precision_said(FILE *f, ot_precision p)
{
    if (p != OT_PRECISION_AUTO)
        return;
    char line[1024];
    ot_exec_auto_note(line, sizeof line);
    fflush(stdout);
    fprintf(f, "precision auto: ");
    ot_cli_text_str(f, line);
    fputc('\n', f);
}

static int main_usage_error(const char *fmt, ...) OT_PRINTF(1, 2);

static int main_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(NULL, "onnxtrain help", fmt, ap);
    va_end(ap);
    return OT_EXIT_USAGE;
}

/* -------------------------------------------------------------- parsing */

/* Copies the n-th word (0-based) of a usage argument list ("IN OUT") into buf,
   without brackets; "argument" when there is no such word. */
static void pos_name(const char *args, int n, char *buf, size_t size)
{
    const char *p = args ? args : "";
    for (int i = 0;; i++) {
        while (*p == ' ' || *p == '[' || *p == ']')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " []");
        if (i == n) {
            snprintf(buf, size, "%.*s", (int)len, p);
            return;
        }
        p += len;
    }
    snprintf(buf, size, "argument");
}

/* Codes getopt_long returns for the long options: row i is LONG_BASE + i,
   above every char, so that optopt tells a long option from a short one. */
enum { LONG_BASE = 256, CODE_HELP = LONG_BASE + OT_CLI_MAX_OPTS, CODE_VERBOSE };

static int n_rows(const ot_cli_cmd *cmd)
{
    int n = 0;
    while (cmd->opts && cmd->opts[n].name) {
        n++;
        OT_ASSERT(n <= OT_CLI_MAX_OPTS);
    }
    return n;
}

static int find_short(const ot_cli_cmd *cmd, int n, int c)
{
    for (int i = 0; i < n; i++)
        if (cmd->opts[i].short_name == c)
            return i;
    return -1;
}

/* The option word getopt_long just took (argv[optind - 1], or the one before
   when the value was the next word) has the whole long name: getopt_long also
   takes unambiguous prefixes, which a later option could make ambiguous. */
static bool whole_name(char **argv, const char *name)
{
    const char *word = (optarg && optarg == argv[optind - 1]) ? argv[optind - 2]
                                                               : argv[optind - 1];
    size_t len = strcspn(word + 2, "=");
    return strlen(name) == len;
}

/* The word of an unknown long option, without its "=value". */
static int unknown_long(const ot_cli_cmd *cmd, const char *word)
{
    return ot_cli_usage_error(cmd, "unknown option '--%.*s'", (int)strcspn(word + 2, "="),
                              word + 2);
}

/* Checks the value of row i and stores it in its field of dest. */
static int store(const ot_cli_cmd *cmd, int i, const char *s, int list_n,
                 const char *const *list, void *dest)
{
    const ot_cli_opt *o = &cmd->opts[i];
    if (o->dest == OT_CLI_D_NONE)
        return OT_EXIT_OK;
    OT_ASSERT(dest != NULL);
    char *at = (char *)dest + o->off;
    switch (o->type) {
    case OT_CLI_FLAG: {
        OT_ASSERT(o->dest == OT_CLI_D_BOOL || o->dest == OT_CLI_D_INT);
        bool t = true;
        int one = 1;
        if (o->dest == OT_CLI_D_BOOL)
            memcpy(at, &t, sizeof t);
        else
            memcpy(at, &one, sizeof one);
        return OT_EXIT_OK;
    }
    case OT_CLI_INT: {
        int64_t v;
        if (!ot_cli_parse_int(s, o->imin, o->imax, &v))
            return ot_cli_usage_error(cmd, "bad value '%s' for --%s (expected an integer from "
                                           "%lld to %lld)",
                                      s, o->name, (long long)o->imin, (long long)o->imax);
        if (o->dest == OT_CLI_D_INT) {
            OT_ASSERT(o->imin >= INT_MIN && o->imax <= INT_MAX);
            int x = (int)v;
            memcpy(at, &x, sizeof x);
        } else if (o->dest == OT_CLI_D_U64) {
            OT_ASSERT(o->imin >= 0);
            uint64_t x = (uint64_t)v;
            memcpy(at, &x, sizeof x);
        } else {
            OT_ASSERT(o->dest == OT_CLI_D_I64);
            memcpy(at, &v, sizeof v);
        }
        return OT_EXIT_OK;
    }
    case OT_CLI_REAL: {
        double v;
        if (!ot_cli_parse_real(s, o->rmin, o->rmax, &v))
            return ot_cli_usage_error(cmd, "bad value '%s' for --%s (expected a decimal number "
                                           "from %g to %g)",
                                      s, o->name, o->rmin, o->rmax);
        if (o->dest == OT_CLI_D_FLOAT) {
            float x = (float)v;
            memcpy(at, &x, sizeof x);
        } else {
            OT_ASSERT(o->dest == OT_CLI_D_DOUBLE);
            memcpy(at, &v, sizeof v);
        }
        return OT_EXIT_OK;
    }
    case OT_CLI_SIZE: {
        OT_ASSERT(o->dest == OT_CLI_D_U64);
        uint64_t v;
        if (!ot_cli_parse_size(s, &v) || v < o->umin || v > o->umax)
            return ot_cli_usage_error(cmd, "bad value '%s' for --%s (expected bytes from %llu "
                                           "to %llu, suffix K, M, G or T, e.g. 512M or 4G)",
                                      s, o->name, (unsigned long long)o->umin,
                                      (unsigned long long)o->umax);
        memcpy(at, &v, sizeof v);
        return OT_EXIT_OK;
    }
    case OT_CLI_ENUM: {
        OT_ASSERT((o->dest == OT_CLI_D_INT || o->dest == OT_CLI_D_UINT) && o->choices);
        const ot_cli_choice *c = o->choices;
        for (; c->name; c++)
            if (strcmp(c->name, s) == 0) {
                /* an enum without negative values is stored as unsigned int */
                OT_ASSERT(o->dest == OT_CLI_D_INT || c->value >= 0);
                unsigned u = (unsigned)c->value;
                if (o->dest == OT_CLI_D_INT)
                    memcpy(at, &c->value, sizeof c->value);
                else
                    memcpy(at, &u, sizeof u);
                return OT_EXIT_OK;
            }
        /* "a, b or c": the choices that are not aliases */
        char names[256];
        size_t len = 0;
        int n = 0, shown = 0;
        for (c = o->choices; c->name; c++)
            n += !c->alias;
        names[0] = '\0';
        for (c = o->choices; c->name && len < sizeof names; c++) {
            if (c->alias)
                continue;
            const char *sep = shown == 0 ? "" : shown == n - 1 ? " or " : ", ";
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", sep, c->name);
            shown++;
        }
        return ot_cli_usage_error(cmd, "bad value '%s' for --%s (expected %s)", s, o->name,
                                  names);
    }
    case OT_CLI_PATH:
    case OT_CLI_STRING:
        OT_ASSERT(o->dest == OT_CLI_D_STR);
        memcpy(at, &s, sizeof s);
        return OT_EXIT_OK;
    case OT_CLI_LIST: {
        OT_ASSERT(o->dest == OT_CLI_D_LIST);
        ot_cli_list l = { list, list_n };
        memcpy(at, &l, sizeof l);
        return OT_EXIT_OK;
    }
    case OT_CLI_BATCH: {
        OT_ASSERT(o->dest == OT_CLI_D_I64);
        int64_t v;
        if (!ot_cli_parse_batch(s, &v))
            return ot_cli_usage_error(cmd, "bad value '%s' for --%s (expected a positive integer "
                                           "or 'dynamic')",
                                      s, o->name);
        memcpy(at, &v, sizeof v);
        return OT_EXIT_OK;
    }
    case OT_CLI_TEXT:
        break;
    }
    OT_ASSERT(!"an option row with a field has a type that takes one");
    return OT_EXIT_USAGE;
}

int ot_cli_parse_into(const ot_cli_cmd *cmd, int argc, char **argv, ot_cli_args *args,
                      void *dest)
{
    memset(args, 0, sizeof *args);
    int n = n_rows(cmd);
    size_t words = (size_t)(argc > 0 ? argc : 1);
    args->pos = malloc(sizeof *args->pos * words);
    args->lists = malloc(sizeof *args->lists * words);
    struct option *longs = malloc(sizeof *longs * (size_t)(n + 3));
    char *shorts = malloc((size_t)n * 2 + 8);
    /* the values of list options as given, and their rows */
    const char **list_val = malloc(sizeof *list_val * words);
    int *list_row = malloc(sizeof *list_row * words);
    char **av = malloc(sizeof *av * (words + 2));
    int rc = OT_EXIT_OK;
    if (!args->pos || !args->lists || !longs || !shorts || !list_val || !list_row || !av) {
        rc = ot_cli_error("out of memory");
        goto done;
    }

    /* "-": positionals come back in order as code 1 (no permuting, whatever
       POSIXLY_CORRECT says); ":": a missing value is reported as ':'. */
    size_t ns = 0;
    shorts[ns++] = '-';
    shorts[ns++] = ':';
    int nl = 0;
    for (int i = 0; i < n; i++) {
        const ot_cli_opt *o = &cmd->opts[i];
        longs[nl++] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL,
                                       LONG_BASE + i };
        if (o->short_name) {
            shorts[ns++] = o->short_name;
            if (o->arg)
                shorts[ns++] = ':';
        }
    }
    if (find_short(cmd, n, 'h') < 0)
        shorts[ns++] = 'h';
    if (find_short(cmd, n, 'v') < 0)
        shorts[ns++] = 'v';
    shorts[ns] = '\0';
    longs[nl++] = (struct option){ "help", no_argument, NULL, CODE_HELP };
    longs[nl++] = (struct option){ "verbose", no_argument, NULL, CODE_VERBOSE };
    longs[nl] = (struct option){ NULL, 0, NULL, 0 };

    /* getopt_long counts argv[0] as the program name */
    char prog[] = "onnxtrain";
    av[0] = prog;
    for (int k = 0; k < argc; k++)
        av[k + 1] = argv[k];
    av[argc + 1] = NULL;
    int ac = argc + 1;

    int opterr_was = opterr;
    opterr = 0;
    optind = 0; /* a full restart of glibc's scanner */
    int c, n_lists = 0;
    while (rc == OT_EXIT_OK && (c = getopt_long(ac, av, shorts, longs, NULL)) != -1) {
        if (c == 1) {
            args->pos[args->n_pos++] = optarg;
            continue;
        }
        if (c == '?') {
            if (optopt >= LONG_BASE)
                rc = ot_cli_usage_error(cmd, "option '--%s' takes no value",
                                        optopt >= CODE_HELP
                                            ? (optopt == CODE_HELP ? "help" : "verbose")
                                            : cmd->opts[optopt - LONG_BASE].name);
            else if (optopt == 0)
                rc = unknown_long(cmd, av[optind - 1]);
            else
                rc = ot_cli_usage_error(cmd, "unknown option '-%c'", optopt);
            continue;
        }
        if (c == ':') {
            const ot_cli_opt *o;
            char shown[80];
            if (optopt >= LONG_BASE) {
                o = &cmd->opts[optopt - LONG_BASE];
                if (strlen(o->name) != strcspn(av[optind - 1] + 2, "=")) {
                    rc = unknown_long(cmd, av[optind - 1]);
                    continue;
                }
                snprintf(shown, sizeof shown, "--%s", o->name);
            } else {
                o = &cmd->opts[find_short(cmd, n, optopt)];
                snprintf(shown, sizeof shown, "-%c", optopt);
            }
            rc = ot_cli_usage_error(cmd, "option '%s' needs a value (%s)", shown, o->arg);
            continue;
        }
        int i;
        char shown[80];
        if (c >= LONG_BASE) {
            const char *name = c == CODE_HELP      ? "help"
                               : c == CODE_VERBOSE ? "verbose"
                                                   : cmd->opts[c - LONG_BASE].name;
            if (!whole_name(av, name)) {
                rc = unknown_long(cmd, (optarg && optarg == av[optind - 1]) ? av[optind - 2]
                                                                             : av[optind - 1]);
                continue;
            }
            if (c == CODE_HELP) {
                args->help = true;
                continue;
            }
            if (c == CODE_VERBOSE) {
                ot_cli_verbose();
                continue;
            }
            i = c - LONG_BASE;
            snprintf(shown, sizeof shown, "--%s", name);
        } else {
            i = find_short(cmd, n, c);
            if (i < 0 && c == 'h') {
                args->help = true;
                continue;
            }
            if (i < 0 && c == 'v') {
                ot_cli_verbose();
                continue;
            }
            OT_ASSERT(i >= 0);
            snprintf(shown, sizeof shown, "-%c", c);
        }
        const ot_cli_opt *o = &cmd->opts[i];
        /* No option means anything by an empty value: an empty path would
           fail only after the work is done, an empty number is no number. */
        if (o->arg && !*optarg) {
            rc = ot_cli_usage_error(cmd, "option '%s' needs a non-empty value (%s)", shown,
                                    o->arg);
            continue;
        }
        args->count[i]++;
        if (o->arg)
            args->value[i] = optarg;
        if (o->type == OT_CLI_LIST) {
            list_val[n_lists] = optarg;
            list_row[n_lists++] = i;
        }
    }
    for (; rc == OT_EXIT_OK && optind < ac; optind++) /* the words after "--" */
        args->pos[args->n_pos++] = av[optind];
    opterr = opterr_was;

    if (rc == OT_EXIT_OK && !args->help) {
        /* the values, in table order; each list's values side by side in
           args->lists, in the order given */
        int filled = 0;
        for (int i = 0; i < n && rc == OT_EXIT_OK; i++) {
            if (!args->count[i])
                continue;
            const char **list = args->lists + filled;
            if (cmd->opts[i].type == OT_CLI_LIST)
                for (int k = 0; k < n_lists; k++)
                    if (list_row[k] == i)
                        args->lists[filled++] = list_val[k];
            rc = store(cmd, i, args->value[i], args->count[i], list, dest);
        }
    }
    if (rc == OT_EXIT_OK && !args->help) {
        if (args->n_pos < cmd->n_pos_min) {
            char name[64];
            pos_name(cmd->args, args->n_pos, name, sizeof name);
            rc = ot_cli_usage_error(cmd, "missing %s", name);
        } else if (args->n_pos > cmd->n_pos_max) {
            rc = ot_cli_usage_error(cmd, "unexpected argument '%s'", args->pos[cmd->n_pos_max]);
        }
    }
done:
    free(longs);
    free(shorts);
    free(list_val);
    free(list_row);
    free(av);
    if (rc != OT_EXIT_OK)
        ot_cli_args_fini(args);
    return rc;
}

void ot_cli_args_fini(ot_cli_args *args)
{
    free(args->pos);
    free(args->lists);
    args->pos = NULL;
    args->lists = NULL;
    args->n_pos = 0;
}

void ot_cli_print_usage(const ot_cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: onnxtrain %s [options] %s\n\n%s\n", cmd->name, cmd->args ? cmd->args : "",
            cmd->summary);
    fprintf(f, "\noptions:\n");
    for (int i = 0; cmd->opts && cmd->opts[i].name && i < OT_CLI_MAX_OPTS; i++) {
        const ot_cli_opt *o = &cmd->opts[i];
        char left[80];
        int n = 0;
        if (o->short_name)
            n = snprintf(left, sizeof left, "-%c, ", o->short_name);
        snprintf(left + n, sizeof left - (size_t)n, "--%s%s%s", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        if (strlen(left) > 26)
            fprintf(f, "  %s\n  %-26s %s\n", left, "", o->help);
        else
            fprintf(f, "  %-26s %s\n", left, o->help);
    }
    fprintf(f, "  %-26s %s\n", "-v, --verbose", "show info messages (-vv: debug too)");
    fprintf(f, "  %-26s %s\n", "-h, --help", "print this help and exit");
    if (cmd->details)
        fprintf(f, "\n%s", cmd->details);
}

bool ot_cli_parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    int shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    case 't': case 'T': shift = 40; s++; break;
    default: break;
    }
    if (shift && (*s == 'i' || *s == 'I') && (s[1] == 'b' || s[1] == 'B'))
        s += 2;
    else if (*s == 'b' || *s == 'B')
        s++;
    if (*s)
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

bool ot_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s)
        return false;
    bool neg = *s == '-';
    if (neg)
        s++;
    if (*s < '0' || *s > '9')
        return false;
    /* Accumulate the magnitude as unsigned: INT64_MIN's does not fit int64. */
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    int64_t x = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

/* True when s is a decimal number as ot_cli_parse_real describes. */
static bool is_decimal(const char *s)
{
    if (*s == '-')
        s++;
    size_t whole = strspn(s, "0123456789");
    s += whole;
    size_t frac = 0;
    if (*s == '.') {
        s++;
        frac = strspn(s, "0123456789");
        s += frac;
    }
    if (whole + frac == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        size_t exp = strspn(s, "0123456789");
        if (exp == 0)
            return false;
        s += exp;
    }
    return *s == '\0';
}

bool ot_cli_parse_real(const char *s, double lo, double hi, double *out)
{
    if (!s || !is_decimal(s))
        return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return false;
    if (!(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

const ot_cli_choice ot_cli_mode_choices[] = {
    { "feature-extract", OT_FREEZE_FEATURE_EXTRACT, false },
    { "fine-tune", OT_FREEZE_FINE_TUNE, false },
    { "full", OT_FREEZE_FULL, false },
    { NULL, 0, false },
};

const ot_cli_choice ot_cli_bn_choices[] = {
    { "policy", 0, false },
    { "train", 1, false },
    { NULL, 0, false },
};

/* ----------------------------------------------------------------- main */

static int run_help(int argc, char **argv)
{
    if (argc == 0) {
        print_main_usage(stdout);
        return OT_EXIT_OK;
    }
    if (argc > 1)
        return main_usage_error("help: unexpected argument '%s'", argv[1]);
    if (strcmp(argv[0], "help") == 0) {
        print_main_usage(stdout);
        return OT_EXIT_OK;
    }
    const command *c = find_command(argv[0]);
    if (!c)
        return main_usage_error("help: unknown command '%s'", argv[0]);
    char help_opt[] = "--help";
    char *help_argv[] = { help_opt, NULL };
    return c->run(1, help_argv);
}

/* ------------------------------------------------------------- signals */

/* SIGINT, SIGTERM or SIGHUP while a command writes: the temporary files of
   its outputs are removed, then the signal takes its default action, so the
   exit status is the conventional one (130, 143, 129 in a shell) and the
   targets are as they were. finetune routes SIGINT and SIGTERM to its own
   handler while it trains (cmd_finetune.c). */
static void on_stop_signal(int sig)
{
    ot_atomic_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_stop_signals(void)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN)
            continue; /* nohup and the like: an ignored signal stays ignored */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ------------------------------------------------------------- threads */

/* GNU OpenMP reads its wait policy from the environment once, when the
   library is loaded, before main() (and before any constructor of this
   executable, since shared libraries are initialised first). Its default
   spins about 300,000 times at every barrier and between parallel regions
   before it sleeps, so a thread waiting for a team mate whose core another
   process holds keeps its own core busy for milliseconds. A command that
   computes therefore runs itself again, once, with a short spin
   (GOMP_SPINCOUNT) when the user has set neither OMP_WAIT_POLICY nor
   GOMP_SPINCOUNT; the variable stays in its environment (and its
   children's). Where the exec fails the command carries on unchanged. */
#define OT_CLI_SPINCOUNT "10000"

static void short_spin_reexec(char **argv, const char *name)
{
    static const char *const computing[] = { "run", "test-data", "finetune", "eval",
                                             "predict", "verify", "convert" };
    bool computes = false;
    for (size_t i = 0; i < sizeof computing / sizeof computing[0]; i++)
        computes |= !strcmp(name, computing[i]);
    if (!computes || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("GOMP_SPINCOUNT", OT_CLI_SPINCOUNT, 1) != 0)
        return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT");
}

/* /proc/stat at the start of the command, for ot_cli_threads */
static ot_cpu_sample start_load;

int ot_cli_threads(int given, FILE *f)
{
    if (given > 0)
        return given;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env)
        return 0;
    ot_cpu_sample now;
    ot_cpu_sample_now(&now);
    double wait = 0.1 - (now.wall_s - start_load.wall_s);
    if (wait > 0.0) {
        struct timespec ts = { 0, (long)(wait * 1e9) };
        nanosleep(&ts, NULL);
        ot_cpu_sample_now(&now);
    }
    if (!start_load.ok || !now.ok)
        return 0;
    double busy = ot_cpu_others_busy(&start_load, &now);
    int threads = ot_cpu_free_threads(now.n_cpus, busy);
    const char *spin = getenv("GOMP_SPINCOUNT"), *policy = getenv("OMP_WAIT_POLICY");
    char line[256];
    snprintf(line, sizeof line,
             "threads: %d (%d core%s, %.1f busy with other processes; %s%s)", threads,
             now.n_cpus, now.n_cpus == 1 ? "" : "s", busy,
             policy ? "OMP_WAIT_POLICY=" : spin ? "GOMP_SPINCOUNT=" : "OpenMP's default wait",
             policy ? policy : spin ? spin : "");
    if (f) {
        ot_cli_text_str(f, line);
        fputc('\n', f);
    } else {
        ot_log(OT_LOG_INFO, "%s", line);
    }
    return threads;
}

int main(int argc, char **argv)
{
    ot_log_set(log_to_stderr, NULL, log_level);

    int k = 1;
    for (; k < argc && argv[k][0] == '-' && argv[k][1] != '\0'; k++) {
        const char *a = argv[k];
        if (strcmp(a, "--") == 0) {
            k++;
            break;
        }
        if (strcmp(a, "--version") == 0) {
            if (k + 1 < argc)
                return main_usage_error("--version: unexpected argument '%s'", argv[k + 1]);
            char backends[2 * OT_ERR_MSG_MAX];
            ot_device_backends(backends, sizeof backends);
            printf("onnxtrain %s\nbackends:\n", ot_version());
            for (const char *line = backends; *line;) {
                const char *end = strchr(line, '\n');
                int len = end ? (int)(end - line) : (int)strlen(line);
                printf("  %.*s\n", len, line);
                line += len + (end != NULL);
            }
            return ot_cli_finish_stdout();
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (k + 1 < argc)
                return main_usage_error("%s: unexpected argument '%s' (for a command's help: "
                                        "onnxtrain help COMMAND)", a, argv[k + 1]);
            print_main_usage(stdout);
            return ot_cli_finish_stdout();
        }
        if (strcmp(a, "--verbose") == 0) {
            ot_cli_verbose();
            continue;
        }
        if (a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
            for (const char *c = a + 1; *c; c++)
                ot_cli_verbose();
            continue;
        }
        return main_usage_error("unknown option '%s'", a);
    }
    if (k >= argc)
        return main_usage_error("missing command");

    const char *name = argv[k];
    /* before the handlers: exec restores the default actions */
    short_spin_reexec(argv, name);
    catch_stop_signals();
    ot_cpu_sample_now(&start_load);
    int rc;
    if (strcmp(name, "help") == 0) {
        rc = run_help(argc - k - 1, argv + k + 1);
    } else {
        const command *c = find_command(name);
        if (!c)
            return main_usage_error("unknown command '%s'", name);
        rc = c->run(argc - k - 1, argv + k + 1);
    }
    int out_rc = ot_cli_finish_stdout();
    return rc != OT_EXIT_OK ? rc : out_rc;
}
