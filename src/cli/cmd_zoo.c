/*
 * cmd_zoo.c: `onnxtrain zoo` lists the model builders and the pretrained
 * models of the ONNX model zoo that models/zoo_manifest.json records (which
 * `make fetch-model NAME=...` downloads; this program never does);
 * `onnxtrain zoo NAME --classes N -o FILE` builds one (src/models/) and
 * writes it as ONNX, so that training can start from a known network
 * without a download.
 *
 * The manifest is looked for at $ONNXTRAIN_ZOO_MANIFEST, else next to the
 * build (<dir of the executable>/../models/zoo_manifest.json, which is the
 * source tree's for build/onnxtrain), else where `make install` puts it
 * (<dir of the executable>/../share/onnxtrain/zoo_manifest.json, that is
 * $(PREFIX)/share/onnxtrain for $(PREFIX)/bin/onnxtrain), else two levels up
 * (<dir of the executable>/../../models/, for build/asan/onnxtrain and the
 * like). A file named by the variable must be readable; without the variable
 * and without a manifest in those places the listing has only the builders.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/json.h"
#include "models/models.h"

typedef struct zoo_args {
    int64_t classes, image_size;
    uint64_t seed;
    const char *output;
    bool json;
} zoo_args;

enum { ZOO_CLASSES, ZOO_OUTPUT, ZOO_IMAGE_SIZE, ZOO_SEED, ZOO_JSON, ZOO_N_OPTS };

static const ot_cli_opt zoo_opts[ZOO_N_OPTS + 1] = {
    [ZOO_CLASSES] = OT_CLI_INT_OPT(zoo_args, classes, "classes", 0, "N", 1, OT_CLI_CLASSES_MAX,
                                   "outputs of the head (default 1000)"),
    [ZOO_OUTPUT] = OT_CLI_PATH_OPT(zoo_args, output, "output", 'o', "FILE",
                                   "where to write the model"),
    [ZOO_IMAGE_SIZE] = OT_CLI_INT_OPT(zoo_args, image_size, "image-size", 0, "S", 2, 8192,
                                      "declare a static input side S (default: any size)"),
    [ZOO_SEED] = OT_CLI_INT_OPT(zoo_args, seed, "seed", 0, "S", 0, OT_CLI_SEED_MAX,
                                "seed of the initialisation (default 0)"),
    [ZOO_JSON] = OT_CLI_FLAG_OPT(zoo_args, json, "json", 0,
                                 "list as one JSON object (builders and manifest entries)"),
};

static const ot_cli_cmd zoo_cmd = {
    .name = "zoo",
    .args = "[NAME]",
    .summary = "Lists the model builders and the ONNX model zoo's pretrained classifiers,\n"
               "or builds one (torchvision's layout and initialisation, random weights)\n"
               "and writes it as ONNX.",
    .details = "Builders: resnet18, resnet34. The model has input 'input' [N,3,S,S] and\n"
               "output 'logits' [N,classes], opset 13, BatchNormalization kept.\n"
               "\n"
               "The pretrained models listed come from models/zoo_manifest.json (found at\n"
               "$ONNXTRAIN_ZOO_MANIFEST, <bin>/../models/ or <bin>/../share/onnxtrain/);\n"
               "download one with `make fetch-model NAME=<name>` (SHA-256 checked).\n"
               "--json prints {builders, manifest, models}: models as the manifest gives them.\n",
    .opts = zoo_opts,
    .n_pos_min = 0,
    .n_pos_max = 1,
};


/* ------------------------------------------------------------ manifest */

#define MANIFEST_ENV "ONNXTRAIN_ZOO_MANIFEST"

/* The folder of the running executable, without the trailing slash; false
   when /proc/self/exe cannot be read. */
static bool exe_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1)
        return false;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return true;
}

/* Finds and parses the manifest. *doc = NULL and path = "" when there is
   none (and no variable names one). Returns OT_EXIT_OK, or OT_EXIT_ERROR
   after printing why when `report`. */
static int load_manifest(json_t **doc, char *path, size_t path_size, bool report)
{
    *doc = NULL;
    path[0] = '\0';
    const char *env = getenv(MANIFEST_ENV);
    if (env && *env) {
        if ((size_t)snprintf(path, path_size, "%s", env) >= path_size)
            return report ? ot_cli_error("%s: path too long", MANIFEST_ENV) : OT_EXIT_ERROR;
    } else {
        char dir[PATH_MAX];
        if (!exe_dir(dir, sizeof dir))
            return OT_EXIT_OK;
        static const char *const rel[] = { "/../models/zoo_manifest.json",
                                           "/../share/onnxtrain/zoo_manifest.json",
                                           "/../../models/zoo_manifest.json" };
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            char found[PATH_MAX];
            if ((size_t)snprintf(path, path_size, "%s%s", dir, rel[i]) < path_size &&
                realpath(path, found) && strlen(found) < path_size) {
                strcpy(path, found);
                break;
            }
            path[0] = '\0';
        }
        if (!path[0])
            return OT_EXIT_OK;
    }
    ot_err err;
    ot_err_init(&err);
    if (ot_json_load_file(path, doc, &err) != OT_OK)
        return report ? ot_cli_error("zoo manifest: %s", err.msg) : OT_EXIT_ERROR;
    /* the shape the listing relies on */
    const json_t *models = json_object_get(*doc, "models");
    const char *why = NULL;
    size_t bad = 0;
    if (!json_is_array(models)) {
        why = "no \"models\" array at the top level";
    } else {
        for (size_t i = 0; i < json_array_size(models) && !why; i++) {
            const json_t *m = json_array_get(models, i);
            int64_t opset;
            bad = i;
            if (!json_is_object(m))
                why = "is not an object";
            else if (!json_is_string(json_object_get(m, "name")))
                why = "has no string \"name\"";
            else if (!ot_json_get_int(json_object_get(m, "opset"), &opset))
                why = "has no integer \"opset\"";
        }
    }
    if (why) {
        if (report && json_is_array(models))
            ot_cli_error("zoo manifest: %s: models[%zu] %s", path, bad, why);
        else if (report)
            ot_cli_error("zoo manifest: %s: %s", path, why);
        json_decref(*doc);
        *doc = NULL;
        return OT_EXIT_ERROR;
    }
    return OT_EXIT_OK;
}

/* "[N,3,224,224]" for a shape array, "?" for anything else. */
static void print_shape(const json_t *shape)
{
    if (!json_is_array(shape)) {
        fputs("?", stdout);
        return;
    }
    fputc('[', stdout);
    for (size_t i = 0; i < json_array_size(shape); i++) {
        const json_t *d = json_array_get(shape, i);
        int64_t n;
        if (i)
            fputc(',', stdout);
        if (ot_json_get_int(d, &n))
            printf("%lld", (long long)n);
        else if (json_is_string(d))
            ot_cli_text_str(stdout, json_string_value(d));
        else
            fputc('?', stdout);
    }
    fputc(']', stdout);
}

static void pad(size_t width, size_t to)
{
    for (; width < to; width++)
        fputc(' ', stdout);
}

static void print_list_text(const json_t *doc, const char *path)
{
    printf("builders (onnxtrain zoo NAME --classes N -o FILE):\n");
    for (const char *const *n = ot_model_names(); *n; n++)
        printf("  %s\n", *n);
    printf("\n");
    if (!doc) {
        printf("pretrained models: no zoo manifest found (set %s, or see\n"
               "models/zoo_manifest.json in the source tree)\n", MANIFEST_ENV);
        return;
    }
    const json_t *models = json_object_get(doc, "models");
    printf("pretrained models of the ONNX model zoo (%s;\n"
           "download with `make fetch-model NAME=<name>`):\n", path);
    size_t w = 4;
    for (size_t i = 0; i < json_array_size(models); i++) {
        size_t n = ot_cli_text_width(
            json_string_value(json_object_get(json_array_get(models, i), "name")));
        if (n > w)
            w = n;
    }
    printf("  NAME");
    pad(4, w);
    printf("  OPSET  INPUT\n");
    for (size_t i = 0; i < json_array_size(models); i++) {
        const json_t *m = json_array_get(models, i);
        const char *name = json_string_value(json_object_get(m, "name"));
        int64_t opset = 0;
        ot_json_get_int(json_object_get(m, "opset"), &opset);
        printf("  ");
        ot_cli_text_str(stdout, name);
        pad(ot_cli_text_width(name), w);
        printf("  %5lld  ", (long long)opset);
        const json_t *in = json_object_get(m, "input");
        const char *in_name = json_string_value(json_object_get(in, "name"));
        if (in_name) {
            ot_cli_text_str(stdout, in_name);
            fputc(' ', stdout);
        }
        print_shape(json_object_get(in, "shape"));
        const char *layout = json_string_value(json_object_get(m, "layout"));
        if (layout && strcmp(layout, "NCHW") != 0) {
            fputc(' ', stdout);
            ot_cli_text_str(stdout, layout);
        }
        fputc('\n', stdout);
    }
}

static int print_list_json(json_t *doc, const char *path)
{
    json_t *builders = json_array();
    for (const char *const *n = ot_model_names(); *n; n++)
        builders = ot_json_push(builders, ot_json_text(*n));
    json_t *top = ot_json_set(json_object(), "builders", builders);
    top = ot_json_set(top, "manifest", ot_json_text(doc ? path : NULL));
    /* the entries as the manifest gives them (read as valid UTF-8) */
    json_t *models = json_object_get(doc, "models");
    top = ot_json_set(top, "models", models ? json_incref(models) : json_array());
    return ot_cli_print_json(top);
}

/* True when `name` is one of the builders. */
static bool is_builder(const char *name)
{
    for (const char *const *n = ot_model_names(); *n; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------- command */

int ot_cmd_zoo(int argc, char **argv)
{
    ot_cli_args a;
    zoo_args o = { .classes = 1000 };
    int rc = ot_cli_parse_into(&zoo_cmd, argc, argv, &a, &o);
    if (rc != OT_EXIT_OK)
        return rc;
    ot_graph *g = NULL;
    json_t *manifest = NULL;
    char manifest_path[PATH_MAX + 64];
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(&zoo_cmd, stdout);
        goto out;
    }
    bool json = o.json;
    if (a.n_pos == 0) {
        rc = load_manifest(&manifest, manifest_path, sizeof manifest_path, true);
        if (rc != OT_EXIT_OK)
            goto out;
        if (json && (rc = print_list_json(manifest, manifest_path)) != OT_EXIT_OK)
            goto out;
        if (!json)
            print_list_text(manifest, manifest_path);
        rc = ot_cli_finish_stdout();
        goto out;
    }
    if (json) {
        rc = ot_cli_usage_error(&zoo_cmd, "--json lists; it takes no NAME");
        goto out;
    }
    if (!is_builder(a.pos[0])) {
        /* a name of the manifest gets a pointer to the download */
        const json_t *models = NULL;
        if (load_manifest(&manifest, manifest_path, sizeof manifest_path, false) == OT_EXIT_OK)
            models = json_object_get(manifest, "models");
        for (size_t i = 0; i < json_array_size(models); i++) {
            const char *name = json_string_value(json_object_get(json_array_get(models, i),
                                                                 "name"));
            if (name && strcmp(name, a.pos[0]) == 0) {
                rc = ot_cli_error("'%s' is a pretrained model of the ONNX model zoo, not a "
                                  "builder: download it with `make fetch-model NAME=%s`",
                                  a.pos[0], a.pos[0]);
                goto out;
            }
        }
    }
    ot_model_spec spec = { .name = a.pos[0], .classes = o.classes, .image_size = o.image_size,
                           .seed = o.seed };
    const char *path = o.output;
    if (!path) {
        rc = ot_cli_usage_error(&zoo_cmd, "missing -o FILE");
        goto out;
    }
    if (ot_model_build(&spec, &g, &err) != OT_OK || ot_model_export(g, path, NULL, &err) != OT_OK) {
        rc = ot_cli_error("%s", err.msg);
        goto out;
    }
    rc = ot_cli_finish_stdout();
out:
    json_decref(manifest);
    ot_graph_free(g);
    ot_cli_args_fini(&a);
    return rc;
}
