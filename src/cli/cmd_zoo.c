/*
 * cmd_zoo.c: `onnxtrain zoo` lists the model builders; `onnxtrain zoo NAME
 * --classes N -o FILE` builds one (src/models/) and writes it as ONNX, so
 * that training can start from a known network without a download.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "models/models.h"

static const ot_cli_opt zoo_opts[] = {
    { "classes", 0, "N", "outputs of the head (default 1000)" },
    { "output", 'o', "FILE", "where to write the model" },
    { "image-size", 0, "S", "declare a static input side S (default: any size)" },
    { "seed", 0, "S", "seed of the initialisation (default 0)" },
    { NULL, 0, NULL, NULL },
};

static const ot_cli_cmd zoo_cmd = {
    .name = "zoo",
    .args = "[NAME]",
    .summary = "Lists the model builders, or builds one (torchvision's layout and\n"
               "initialisation, random weights) and writes it as ONNX.",
    .details = "Builders: resnet18, resnet34. The model has input 'input' [N,3,S,S] and\n"
               "output 'logits' [N,classes], opset 13, BatchNormalization kept.\n",
    .opts = zoo_opts,
    .n_pos_min = 0,
    .n_pos_max = 1,
};

int ot_cmd_zoo(int argc, char **argv)
{
    ot_cli_args a;
    int rc = ot_cli_parse(&zoo_cmd, argc, argv, &a);
    if (rc != OT_EXIT_OK)
        return rc;
    ot_graph *g = NULL;
    ot_err err;
    ot_err_init(&err);
    if (a.help) {
        ot_cli_print_usage(&zoo_cmd, stdout);
        goto out;
    }
    if (a.n_pos == 0) {
        printf("builders (onnxtrain zoo NAME --classes N -o FILE):\n");
        for (const char *const *n = ot_model_names(); *n; n++)
            printf("  %s\n", *n);
        rc = ot_cli_finish_stdout();
        goto out;
    }
    ot_model_spec spec = { .name = a.pos[0], .classes = 1000 };
    const char *v;
    char *end;
    if ((v = ot_cli_value(&zoo_cmd, &a, "classes"))) {
        spec.classes = strtoll(v, &end, 10);
        if (*end || spec.classes < 1 || spec.classes > (1 << 20)) {
            rc = ot_cli_usage_error(&zoo_cmd, "--classes must be a positive integer");
            goto out;
        }
    }
    if ((v = ot_cli_value(&zoo_cmd, &a, "image-size"))) {
        spec.image_size = strtoll(v, &end, 10);
        if (*end || spec.image_size < 2 || spec.image_size > 8192) {
            rc = ot_cli_usage_error(&zoo_cmd, "--image-size must be an integer from 2 to 8192");
            goto out;
        }
    }
    if ((v = ot_cli_value(&zoo_cmd, &a, "seed"))) {
        long long s = strtoll(v, &end, 10);
        if (*end || s < 0) {
            rc = ot_cli_usage_error(&zoo_cmd, "--seed must be a non-negative integer");
            goto out;
        }
        spec.seed = (uint64_t)s;
    }
    const char *path = ot_cli_value(&zoo_cmd, &a, "output");
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
    ot_graph_free(g);
    ot_cli_args_fini(&a);
    return rc;
}
