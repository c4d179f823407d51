/*
 * test_report.c: the training log and plot (src/train/report.c): the CSV's
 * exact text, a row replacing the same epoch's, the adapter from a progress
 * report, atomic writes (no temporary file left, errors that name the path),
 * and an SVG that is well-formed XML (a small tag balancer: every start tag
 * closed in order, one root), has the curves it should, and is the same
 * bytes for the same rows.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test.h"
#include "train/report.h"

/* The file's text (malloc'ed), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* Entries of `dir` whose name contains ".tmp.". */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* A fresh folder under the test tmpdir. */
static void make_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", ot_test_tmpdir(), name);
    mkdir(buf, 0755);
}

static const ot_train_log_row ROWS[] = {
    { 1, 2.302585093, 0.125, NAN, NAN, 0.001, 1234.56, 1.5 },
    { 2, 1.5, 0.5, 1.75, 0.4375, 0.0005, 2000.04, 0.25 },
    { 3, 0.987654321, 0.6666666667, 1.25, 0.5, 1e-05, 0, 12.3456 },
};
#define N_ROWS 3

static const char CSV_HEADER[] = "epoch,loss,accuracy,val_loss,val_accuracy,lr,images_per_s,"
                                 "seconds\n";

TEST(report_csv_exact)
{
    char dir[512], path[600];
    ot_err err;
    ot_err_init(&err);
    make_dir(dir, sizeof dir, "csv");
    snprintf(path, sizeof path, "%s/log.csv", dir);
    CHECK_OK(ot_train_log_write_csv(path, ROWS, N_ROWS, &err), &err);
    char *s = slurp(path);
    char want[1024];
    snprintf(want, sizeof want,
             "%s"
             "1,2.30259,0.125,,,0.001,1234.6,1.500\n"
             "2,1.5,0.5,1.75,0.4375,0.0005,2000.0,0.250\n"
             "3,0.987654,0.666667,1.25,0.5,1e-05,0.0,12.346\n",
             CSV_HEADER);
    CHECK_STR(s, want);
    free(s);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    /* no rows: the header alone; non-finite training values are spelt out */
    CHECK_OK(ot_train_log_write_csv(path, NULL, 0, &err), &err);
    s = slurp(path);
    CHECK_STR(s, CSV_HEADER);
    free(s);
    ot_train_log_row odd = { 7, -NAN, INFINITY, -INFINITY, NAN, 0.1, 1, 2 };
    CHECK_OK(ot_train_log_write_csv(path, &odd, 1, &err), &err);
    s = slurp(path);
    snprintf(want, sizeof want, "%s7,nan,inf,-inf,,0.1,1.0,2.000\n", CSV_HEADER);
    CHECK_STR(s, want);
    free(s);
    /* unknown timing (an epoch a resumed run restored): empty, like absent validation */
    ot_train_log_row restored = { 2, 0.5, 0.25, NAN, NAN, 0.1, NAN, NAN };
    CHECK_OK(ot_train_log_write_csv(path, &restored, 1, &err), &err);
    s = slurp(path);
    snprintf(want, sizeof want, "%s2,0.5,0.25,,,0.1,,\n", CSV_HEADER);
    CHECK_STR(s, want);
    free(s);
}

TEST(report_log_rows_and_replace)
{
    char dir[512], path[600];
    ot_err err;
    ot_err_init(&err);
    make_dir(dir, sizeof dir, "log");
    snprintf(path, sizeof path, "%s/train.csv", dir);
    ot_train_log *log = NULL;
    CHECK_OK(ot_train_log_new(path, &log, &err), &err);
    /* nothing written yet, and the write probe left nothing behind */
    FILE *f = fopen(path, "r");
    CHECK(f == NULL);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    ot_train_epoch e = { .epoch = 1, .epochs = 2, .step = 4, .steps = 4, .loss = 2.5,
                         .accuracy = 0.25, .lr = 0.01, .images_per_s = 100, .seconds = 3 };
    ot_status st = ot_train_log_epoch(log, &e, NAN, NAN, &err);
    if (st != OT_OK)
        ot_train_log_free(log);
    CHECK_OK(st, &err);
    char *s = slurp(path);
    char want[1024];
    snprintf(want, sizeof want, "%s1,2.5,0.25,,,0.01,100.0,3.000\n", CSV_HEADER);
    int same = s && !strcmp(s, want);
    free(s);
    if (!same)
        ot_train_log_free(log);
    CHECK(same);

    /* the same epoch again, now with validation numbers: replaces the row */
    st = ot_train_log_epoch(log, &e, 2.75, 0.2, &err);
    e.epoch = 2;
    e.loss = 1.25;
    e.accuracy = 0.5;
    if (st == OT_OK)
        st = ot_train_log_epoch(log, &e, 1.5, 0.4, &err);
    int n = 0;
    const ot_train_log_row *rows = ot_train_log_rows(log, &n);
    int rows_ok = n == 2 && rows[0].epoch == 1 && rows[0].val_loss == 2.75 && rows[1].epoch == 2;
    ot_train_log_free(log);
    CHECK_OK(st, &err);
    CHECK(rows_ok);
    s = slurp(path);
    snprintf(want, sizeof want,
             "%s1,2.5,0.25,2.75,0.2,0.01,100.0,3.000\n2,1.25,0.5,1.5,0.4,0.01,100.0,3.000\n",
             CSV_HEADER);
    CHECK_STR(s, want);
    free(s);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    /* in memory only */
    CHECK_OK(ot_train_log_new(NULL, &log, &err), &err);
    st = ot_train_log_epoch(log, &e, NAN, NAN, &err);
    rows = ot_train_log_rows(log, &n);
    rows_ok = n == 1 && isnan(rows[0].val_accuracy);
    ot_train_log_free(log);
    CHECK_OK(st, &err);
    CHECK(rows_ok);
}

TEST(report_errors_name_the_path)
{
    char dir[512], path[600];
    ot_err err;
    ot_err_init(&err);
    make_dir(dir, sizeof dir, "errors");
    snprintf(path, sizeof path, "%s/no/such/dir/log.csv", dir);
    ot_train_log *log = NULL;
    CHECK_EQ_INT(ot_train_log_new(path, &log, &err), OT_ERR_IO);
    CHECK(log == NULL);
    CHECK(strstr(err.msg, path) != NULL);
    ot_err_init(&err);
    CHECK_EQ_INT(ot_train_log_write_csv(path, ROWS, N_ROWS, &err), OT_ERR_IO);
    CHECK(strstr(err.msg, path) != NULL);
    ot_err_init(&err);
    CHECK_EQ_INT(ot_train_plot_svg(path, ROWS, N_ROWS, &err), OT_ERR_IO);
    CHECK(strstr(err.msg, path) != NULL);

    /* a folder in the way: the temporary file is made, the rename fails, and
       the temporary file is removed */
    snprintf(path, sizeof path, "%s/occupied", dir);
    mkdir(path, 0755);
    ot_err_init(&err);
    CHECK_EQ_INT(ot_train_log_write_csv(path, ROWS, N_ROWS, &err), OT_ERR_IO);
    CHECK(strstr(err.msg, path) != NULL);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    ot_err_init(&err);
    snprintf(path, sizeof path, "%s/empty.svg", dir);
    CHECK_EQ_INT(ot_train_plot_svg(path, ROWS, 0, &err), OT_ERR_ARG);
    FILE *f = fopen(path, "r");
    CHECK(f == NULL);
}

/* A minimal XML well-formedness check for what report.c writes: an optional
   <?xml ...?> declaration, then exactly one root element; every start tag
   closed in order; attribute values quoted; no stray '<' or '&' in text.
   Returns NULL when well-formed, else a description. */
static const char *xml_problem(const char *s, char *why, size_t size)
{
    enum { MAX_DEPTH = 64 };
    char stack[MAX_DEPTH][32];
    int depth = 0, roots = 0;
    const char *p = s;
    if (!strncmp(p, "<?xml", 5)) {
        p = strstr(p, "?>");
        if (!p)
            return "unterminated declaration";
        p += 2;
    }
    while (*p) {
        if (*p == '&') {
            /* only the predefined entities */
            if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
                strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6))
                return "bare '&'";
            p++;
            continue;
        }
        if (*p != '<') {
            if (depth == 0 && *p != '\n' && *p != ' ')
                return "text outside the root";
            p++;
            continue;
        }
        bool closing = p[1] == '/';
        const char *name = p + (closing ? 2 : 1);
        size_t len = strcspn(name, " \t\n/>");
        if (len == 0 || len >= sizeof stack[0])
            return "bad tag name";
        /* find the end of the tag, skipping quoted attribute values */
        const char *q = name + len;
        while (*q && *q != '>') {
            if (*q == '"') {
                const char *end = strchr(q + 1, '"');
                if (!end || memchr(q + 1, '<', (size_t)(end - q - 1)))
                    return "bad attribute value";
                q = end + 1;
            } else if (*q == '=' && q[1] != '"') {
                return "unquoted attribute value";
            } else {
                q++;
            }
        }
        if (!*q)
            return "unterminated tag";
        bool self_closing = q[-1] == '/';
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != len ||
                strncmp(stack[depth - 1], name, len)) {
                snprintf(why, size, "</%.*s> does not close <%s>", (int)len, name,
                         depth ? stack[depth - 1] : "(nothing)");
                return why;
            }
            depth--;
        } else {
            if (depth == 0)
                roots++;
            if (!self_closing) {
                if (depth == MAX_DEPTH)
                    return "too deep";
                memcpy(stack[depth], name, len);
                stack[depth][len] = '\0';
                depth++;
            }
        }
        p = q + 1;
    }
    if (depth != 0) {
        snprintf(why, size, "<%s> is not closed", stack[depth - 1]);
        return why;
    }
    return roots == 1 ? NULL : "not exactly one root element";
}

static int count_of(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

TEST(report_svg_well_formed)
{
    char dir[512], path[600], why[128];
    ot_err err;
    ot_err_init(&err);
    make_dir(dir, sizeof dir, "svg");
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    CHECK_OK(ot_train_plot_svg(path, ROWS, N_ROWS, &err), &err);
    char *s = slurp(path);
    CHECK(s != NULL);
    const char *problem = xml_problem(s, why, sizeof why);
    if (problem) {
        ot_test_fail(__FILE__, __LINE__, "not well-formed: %s", problem);
        free(s);
        return;
    }
    int ok = strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\"") &&
             count_of(s, "<polyline") == 4 && strstr(s, "id=\"loss-train\"") &&
             strstr(s, "id=\"loss-val\"") && strstr(s, "id=\"accuracy-train\"") &&
             strstr(s, "id=\"accuracy-val\"") && strstr(s, ">epoch</text>") &&
             strstr(s, ">validation</text>") && !strstr(s, "href") && !strstr(s, "<script") &&
             !strstr(s, "nan") && !strstr(s, "inf");
    /* the validation curves skip epoch 1, which has none: 2 points each */
    const char *val = strstr(s, "id=\"accuracy-val\"");
    const char *pts = val ? strstr(val, "points=\"") : NULL;
    int val_points = 0;
    if (pts)
        for (const char *c = pts + 8; *c && *c != '"'; c++)
            val_points += *c == ',';
    if (!ok || val_points != 2) {
        ot_test_fail(__FILE__, __LINE__, "missing parts or %d validation points:\n%s",
                     val_points, s);
        free(s);
        return;
    }
    /* the same rows give the same bytes */
    CHECK_OK(ot_train_plot_svg(path, ROWS, N_ROWS, &err), &err);
    char *again = slurp(path);
    int same = again && !strcmp(s, again);
    free(s);
    free(again);
    CHECK(same);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    /* one epoch, no validation: training curves only, still well-formed */
    CHECK_OK(ot_train_plot_svg(path, ROWS, 1, &err), &err);
    s = slurp(path);
    CHECK(s != NULL);
    problem = xml_problem(s, why, sizeof why);
    ok = !problem && count_of(s, "<polyline") == 2 && !strstr(s, "-val\"") &&
         strstr(s, "id=\"loss-train\"");
    free(s);
    CHECK(ok);

    /* the checker itself catches what it should */
    CHECK(xml_problem("<a><b></a></b>", why, sizeof why) != NULL);
    CHECK(xml_problem("<a x=1/>", why, sizeof why) != NULL);
    CHECK(xml_problem("<a/><b/>", why, sizeof why) != NULL);
    CHECK(xml_problem("<a>&</a>", why, sizeof why) != NULL);
    CHECK(xml_problem("<a><b x=\"1\"/>t</a>", why, sizeof why) == NULL);
}
