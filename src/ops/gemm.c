/*
 * gemm.c: Gemm and MatMul, ONNX opsets 1-21.
 *
 * Gemm: Y = alpha * A' * B' + beta * C with A' = transA ? A^T : A (rank 2),
 * C broadcast one way to (M, N); C is optional from opset 11. The legacy
 * `broadcast` attribute (opsets < 7) is accepted: numpy broadcasting of C
 * covers what it allowed.
 * MatMul: numpy matmul semantics, 1-D operands promoted and the added dim
 * removed again, batch dims broadcast.
 *
 * References: https://onnx.ai/onnx/operators/onnx__Gemm.html,
 * https://onnx.ai/onnx/operators/onnx__MatMul.html
 */
#include "ops/grad_util.h"
#include "ops/op_util.h"

static const ot_attr_spec gemm_attrs[] = {
    { "alpha", OT_ATTR_FLOAT, "1.0", NULL, 0, 0, false },
    { "beta", OT_ATTR_FLOAT, "1.0", NULL, 0, 0, false },
    { "broadcast", OT_ATTR_INT, "0", ot_op_check_bool, 1, 6, false },
    { "transA", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { "transB", OT_ATTR_INT, "0", ot_op_check_bool, 0, 0, false },
    { 0 },
};

static const ot_attr_spec no_attrs[] = { { 0 } };

static bool gemm_dtype_ok(ot_dtype t)
{
    return ot_op_is_float(t) || t == OT_DTYPE_INT32 || t == OT_DTYPE_INT64 ||
           t == OT_DTYPE_UINT32 || t == OT_DTYPE_UINT64;
}

static ot_status gemm_validate(ot_graph *g, ot_node *n, ot_err *err)
{
    if (n->opset < 11 && (n->n_in < 3 || n->in[2] < 0))
        return ot_op_err(err, OT_ERR_MODEL, g, n, "input C is required before opset 11");
    return OT_OK;
}

/* a: (M, K) or (K, M)  b: (K, N) or (N, K)  c: broadcastable to (M, N)  ->  y: (M, N) */
static ot_status gemm_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *a = ot_op_in(g, n, 0), *b = ot_op_in(g, n, 1), *c = ot_op_in(g, n, 2);
    ot_value *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(a) || !ot_op_known(b))
        return OT_OK;
    const ot_value *ab[2] = { a, b };
    for (int i = 0; i < 2; i++) {
        if (!gemm_dtype_ok(ab[i]->dtype))
            return ot_op_err(err, OT_ERR_MODEL, g, n, "input %d '%s' is %s, expected a float "
                             "or 32/64-bit integer type", i, ab[i]->name,
                             ot_dtype_name(ab[i]->dtype));
        if (ab[i]->ndim != 2)
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "input %c '%s' has rank %d, expected 2",
                             "AB"[i], ab[i]->name, ab[i]->ndim);
    }
    if (a->dtype != b->dtype)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "A is %s but B is %s", ot_dtype_name(a->dtype),
                         ot_dtype_name(b->dtype));
    int ta = ot_node_attr_int(n, "transA", 0) != 0, tb = ot_node_attr_int(n, "transB", 0) != 0;
    int64_t M = a->dims[ta], Ka = a->dims[1 - ta], Kb = b->dims[tb], N = b->dims[1 - tb];
    if (Ka >= 0 && Kb >= 0 && Ka != Kb)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "A '%s' has K=%lld (transA=%d) but B '%s' has K=%lld (transB=%d)",
                         a->name, (long long)Ka, ta, b->name, (long long)Kb, tb);
    ot_op_dims yd = { .ndim = 2 };
    yd.dims[0] = M;
    yd.names[0] = M < 0 ? a->dim_names[ta] : NULL;
    yd.dims[1] = N;
    yd.names[1] = N < 0 ? b->dim_names[1 - tb] : NULL;
    if (ot_op_known(c)) {
        ot_op_dims cd, bd;
        ot_op_dims_of(c, &cd);
        if (c->ndim > 2)
            return ot_op_err(err, OT_ERR_SHAPE, g, n, "C '%s' has rank %d, expected at most 2",
                             c->name, c->ndim);
        OT_TRY(ot_op_broadcast(g, n, &yd, &cd, &bd, err));
        for (int i = 0; i < 2; i++) /* one-way: C may not grow Y */
            if (yd.dims[i] >= 0 && bd.dims[i] != yd.dims[i])
                return ot_op_err(err, OT_ERR_SHAPE, g, n,
                                 "C '%s' does not broadcast to (M, N) = (%lld, %lld)", c->name,
                                 (long long)M, (long long)N);
    }
    ot_op_set(y, a->dtype, &yd);
done:
    return st;
}

/* a: (..., M, K) or (K)  b: (..., K, N) or (K)  ->  y: (broadcast..., M, N), 1-D dims dropped */
static ot_status matmul_infer(ot_graph *g, ot_node *n, ot_err *err)
{
    ot_status st = OT_OK;
    ot_value *a = ot_op_in(g, n, 0), *b = ot_op_in(g, n, 1), *y = ot_op_out(g, n, 0);
    if (!y || !ot_op_known(a) || !ot_op_known(b))
        return OT_OK;
    if (!gemm_dtype_ok(a->dtype))
        return ot_op_err(err, OT_ERR_MODEL, g, n,
                         "input A '%s' is %s, expected a float or 32/64-bit integer type",
                         a->name, ot_dtype_name(a->dtype));
    if (a->dtype != b->dtype)
        return ot_op_err(err, OT_ERR_MODEL, g, n, "A is %s but B is %s", ot_dtype_name(a->dtype),
                         ot_dtype_name(b->dtype));
    if (a->ndim < 1 || b->ndim < 1)
        return ot_op_err(err, OT_ERR_SHAPE, g, n, "inputs must have rank >= 1 (A %d, B %d)",
                         a->ndim, b->ndim);
    ot_op_dims ad, bd;
    ot_op_dims_of(a, &ad);
    ot_op_dims_of(b, &bd);
    bool a_vec = ad.ndim == 1, b_vec = bd.ndim == 1;
    if (a_vec) { /* (K) -> (1, K) */
        ad.ndim = 2;
        ad.dims[1] = ad.dims[0];
        ad.names[1] = ad.names[0];
        ad.dims[0] = 1;
        ad.names[0] = NULL;
    }
    if (b_vec) { /* (K) -> (K, 1) */
        bd.ndim = 2;
        bd.dims[1] = 1;
        bd.names[1] = NULL;
    }
    int64_t Ka = ad.dims[ad.ndim - 1], Kb = bd.dims[bd.ndim - 2];
    if (Ka >= 0 && Kb >= 0 && Ka != Kb)
        return ot_op_err(err, OT_ERR_SHAPE, g, n,
                         "A '%s' has K=%lld in its last dim, B '%s' has K=%lld", a->name,
                         (long long)Ka, b->name, (long long)Kb);
    ot_op_dims abatch = ad, bbatch = bd, yd;
    abatch.ndim -= 2;
    bbatch.ndim -= 2;
    OT_TRY(ot_op_broadcast(g, n, &abatch, &bbatch, &yd, err));
    if (!a_vec) {
        if (yd.ndim >= OT_MAX_DIMS)
            return OT_OK; /* too many dims: output unknown */
        yd.dims[yd.ndim] = ad.dims[ad.ndim - 2];
        yd.names[yd.ndim] = ad.names[ad.ndim - 2];
        yd.ndim++;
    }
    if (!b_vec) {
        if (yd.ndim >= OT_MAX_DIMS)
            return OT_OK;
        yd.dims[yd.ndim] = bd.dims[bd.ndim - 1];
        yd.names[yd.ndim] = bd.names[bd.ndim - 1];
        yd.ndim++;
    }
    ot_op_set(y, a->dtype, &yd);
done:
    return st;
}

const ot_op_desc ot_op_gemm = {
    .id = OT_OP_GEMM,
    .domain = "",
    .type = "Gemm",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = gemm_attrs,
    .infer = gemm_infer,
    .validate = gemm_validate,
    .grad = ot_op_grad_gemm,
};

const ot_op_desc ot_op_matmul = {
    .id = OT_OP_MATMUL,
    .domain = "",
    .type = "MatMul",
    .opset_min = 1,
    .opset_max = 21,
    .n_in_min = 2,
    .n_in_max = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .attrs = no_attrs,
    .infer = matmul_infer,
    .grad = ot_op_grad_matmul,
};
