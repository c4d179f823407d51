/*
 * test_meta.c: the class names in onnxtrain.classes (src/train/meta.c): the
 * JSON array the writer makes reads back the same for names with quotes,
 * backslashes, newlines, control characters and non-ASCII; escapes and the
 * newline-joined form of earlier versions read; malformed arrays, invalid
 * UTF-8, \u0000, unpaired surrogates and duplicates refused.
 */
#include "test.h"

#include "graph/graph.h"
#include "train/meta.h"

/* Sets onnxtrain.classes to `value` verbatim. */
static void set_classes(ot_graph *g, const char *value)
{
    ot_kv *kv = ot_arena_alloc(&g->arena, sizeof *kv);
    kv->key = "onnxtrain.classes";
    kv->value = ot_arena_strdup(&g->arena, value);
    g->metadata = kv;
    g->n_metadata = 1;
}

/* Reads the names of `value`; returns the status, names in *out. */
static ot_status read_value(const char *value, char ***out, int *n, ot_err *err)
{
    ot_graph *g = ot_graph_new();
    set_classes(g, value);
    ot_status st = ot_train_meta_classes(g, out, n, err);
    ot_graph_free(g);
    return st;
}

TEST(meta_classes_round_trip)
{
    const char *names[] = { "plain", "a\nb", "quote \" and \\ backslash", "tab\there\r",
                            "\x01\x1f\x7f", "caf\xc3\xa9", "\xf0\x9f\x98\x80", "" };
    int n = (int)(sizeof names / sizeof names[0]);
    ot_graph *g = ot_graph_new();
    ot_err err;
    ot_err_init(&err);
    CHECK_EQ_INT(ot_train_meta_set_classes(g, names, n, &err), OT_OK);
    const char *v = ot_graph_meta(g, "onnxtrain.classes");
    CHECK(v && v[0] == '[' && !strchr(v, '\n'));
    char **back = NULL;
    int nb = 0;
    ot_status st = ot_train_meta_classes(g, &back, &nb, &err);
    ot_graph_free(g);
    CHECK_EQ_INT(st, OT_OK);
    CHECK_EQ_INT(nb, n);
    for (int i = 0; i < n; i++)
        CHECK_STR(back[i], names[i]);
    ot_free(back);
}

TEST(meta_classes_escapes_and_legacy)
{
    ot_err err;
    ot_err_init(&err);
    char **names = NULL;
    int n = 0;
    CHECK_EQ_INT(read_value(" [ \"\\u00e9\\ud83d\\ude00\" , \"\\/\\b\\f\" ] ", &names, &n, &err),
                 OT_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_STR(names[0], "\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_STR(names[1], "/\b\f");
    ot_free(names);
    CHECK_EQ_INT(read_value("cat\ndog\nbird", &names, &n, &err), OT_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_STR(names[2], "bird");
    ot_free(names);
    /* no key: no names, not an error */
    ot_graph *g = ot_graph_new();
    CHECK_EQ_INT(ot_train_meta_classes(g, &names, &n, &err), OT_OK);
    ot_graph_free(g);
    CHECK(names == NULL && n == 0);
}

TEST(meta_classes_refused)
{
    const char *bad[] = {
        "[\"a\", \"b\"",       /* truncated                 */
        "[\"a\",]",            /* trailing comma            */
        "[\"a\"] x",           /* text after the array      */
        "[1, 2]",              /* not strings               */
        "[]",                  /* no class                  */
        "[\"a\\u0000b\"]",     /* NUL                       */
        "[\"\\ud800\"]",       /* unpaired surrogate        */
        "[\"\\x\"]",           /* bad escape                */
        "[\"a\nb\"]",          /* raw control character     */
        "[\"\xff\"]",          /* invalid UTF-8             */
        "x\n\xc3\x28",         /* invalid UTF-8, legacy     */
        "[\"a\",\"b\",\"a\"]", /* duplicate                 */
        "a\nb\na",             /* duplicate, legacy         */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ot_err err;
        ot_err_init(&err);
        char **names = (char **)1;
        int n = -1;
        ot_status st = read_value(bad[i], &names, &n, &err);
        if (st != OT_ERR_MODEL || names || n || !strstr(err.msg, "onnxtrain.classes")) {
            ot_test_fail(__FILE__, __LINE__, "case %zu: status %d, n %d, message '%s'", i,
                         (int)st, n, err.msg);
            return;
        }
    }
}

TEST(meta_classes_writer_refuses)
{
    ot_graph *g = ot_graph_new();
    ot_err err;
    ot_err_init(&err);
    const char *dup[] = { "x", "y", "x" };
    const char *utf[] = { "ok", "bad\xc0\x80" };
    ot_status a = ot_train_meta_set_classes(g, dup, 3, &err);
    bool named = strstr(err.msg, "duplicate class name 'x' (classes 0 and 2)") != NULL;
    ot_status b = ot_train_meta_set_classes(g, utf, 2, &err);
    bool nothing = ot_graph_meta(g, "onnxtrain.classes") == NULL;
    ot_graph_free(g);
    CHECK_EQ_INT(a, OT_ERR_ARG);
    CHECK(named);
    CHECK_EQ_INT(b, OT_ERR_ARG);
    CHECK(nothing);
}
