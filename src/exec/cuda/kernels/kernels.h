/*
 * kernels.h: the launchers of the CUDA backend's own kernels (the .cu files beside it),
 * in plain C, for src/exec/cuda/cuda_kernels.c, which unwraps a node's
 * attributes on the host and calls them.
 *
 * A launcher enqueues its kernels on `stream` (a cudaStream_t) and returns
 * the runtime's status (0: cudaSuccess) without synchronising. Pointers are
 * device memory unless a parameter says otherwise; the structures travel by
 * value as kernel arguments. Tensors are float32 unless a parameter names
 * another type.
 */
#ifndef OT_EXEC_CUDA_KERNELS_KERNELS_H
#define OT_EXEC_CUDA_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OTK_MAX_DIMS 8

/* ONNX dtype codes (as ot_dtype) */
enum {
    OTK_DT_FLOAT = 1, OTK_DT_UINT8 = 2, OTK_DT_INT8 = 3, OTK_DT_UINT16 = 4, OTK_DT_INT16 = 5,
    OTK_DT_INT32 = 6, OTK_DT_INT64 = 7, OTK_DT_BOOL = 9, OTK_DT_DOUBLE = 11, OTK_DT_UINT32 = 12
};

/* unary ops (UnaryGrad's `op` uses the math ones) */
enum {
    OTK_RELU, OTK_LEAKYRELU, OTK_SIGMOID, OTK_CLIP, OTK_SQRT, OTK_RECIPROCAL, OTK_EXP, OTK_LOG,
    OTK_TANH, OTK_ERF, OTK_HARDSIGMOID, OTK_HARDSWISH, OTK_ELU, OTK_SELU, OTK_SOFTPLUS, OTK_GELU,
    OTK_GELU_TANH, OTK_POW_SCALAR, OTK_UNARY_NONE
};

/* the pair gradients: dY and the forward value -> dX */
enum { OTK_G_RELU, OTK_G_LEAKY, OTK_G_SIGMOID, OTK_G_CLIP, OTK_G_DROPOUT };

/* binary ops, and the element types otk_binary takes */
enum { OTK_ADD, OTK_SUB, OTK_MUL, OTK_DIV, OTK_MAX, OTK_MIN, OTK_POW, OTK_PRELU, OTK_COPY };
enum { OTK_T_F32, OTK_T_I32, OTK_T_I64, OTK_T_I16, OTK_T_I8 };

/* reductions */
enum { OTK_RED_SUM, OTK_RED_MEAN, OTK_RED_MAX, OTK_RED_L2 };

/* normalisations */
enum { OTK_NORM_LAYER, OTK_NORM_INSTANCE, OTK_NORM_GROUP };

enum { OTK_PAD_CONSTANT, OTK_PAD_REFLECT, OTK_PAD_EDGE, OTK_PAD_WRAP };

/* A walk over y's dims (row-major, y contiguous) with each operand's element
   strides (0 on a broadcast dim). */
typedef struct otk_bcast {
    int nd;
    int64_t dims[OTK_MAX_DIMS];
    int64_t sa[OTK_MAX_DIMS], sb[OTK_MAX_DIMS];
} otk_bcast;

/* Up to 8 operands broadcast to one shape (ExtremumGrad's inputs). */
typedef struct otk_multi {
    int nd, n;
    int64_t dims[OTK_MAX_DIMS];
    const void *p[OTK_MAX_DIMS];
    int64_t s[OTK_MAX_DIMS][OTK_MAX_DIMS];
} otk_multi;

/* A window's geometry (as ot_ref_geom: spatial dims padded to 3). */
typedef struct otk_geom {
    int64_t N, C;
    int64_t in[3], k[3], o[3];
    int64_t s[3], d[3];
    int64_t pb[3], pe[3];
    int nhwc; /* pools: X and Y channels-last ([N, spatial..., C]) */
} otk_geom;

/* A reduction: kept dims and reduced dims with X's strides, and X's dims
   with a mask of the kept ones (for the backward walk). */
typedef struct otk_red {
    int nk, nr, nd;
    int64_t kd[OTK_MAX_DIMS], ks[OTK_MAX_DIMS];
    int64_t rd[OTK_MAX_DIMS], rs[OTK_MAX_DIMS];
    int64_t dims[OTK_MAX_DIMS];
    unsigned char kept[OTK_MAX_DIMS];
    int64_t n_out, n_red;
} otk_red;

/* rows of M elements, and the parameter layout (ref_normalize.c's norm_geom) */
typedef struct otk_norm {
    int kind, per_channel;
    int64_t rows, M, C, G, S;
} otk_norm;

/* dst[dbase + sum c_k ds_k] = src[sbase + sum c_k ss_k] over dims */
typedef struct otk_copy {
    int nd;
    int64_t dims[OTK_MAX_DIMS];
    int64_t ss[OTK_MAX_DIMS], ds[OTK_MAX_DIMS];
    int64_t sbase, dbase;
} otk_copy;

typedef struct otk_padding {
    int nd, mode;
    int64_t xdims[OTK_MAX_DIMS], ydims[OTK_MAX_DIMS], begin[OTK_MAX_DIMS], xs[OTK_MAX_DIMS];
} otk_padding;

/* Up to three operands broadcast to y's dims (right-aligned, element
   strides, 0 on a broadcast dim). */
typedef struct otk_bc3 {
    int nd;
    int64_t dims[OTK_MAX_DIMS];
    int64_t s[3][OTK_MAX_DIMS];
} otk_bc3;

/* ScatterND's plan: tuples of k indices into the leading dims, each naming
   a slice of `slice` elements; `count` tuples */
typedef struct otk_nd {
    int64_t k, slice, count;
    int64_t dims[OTK_MAX_DIMS];
} otk_nd;

enum { OTK_EQUAL, OTK_GREATER, OTK_LESS, OTK_AND, OTK_NOT };
enum { OTK_SCATTER_NONE, OTK_SCATTER_ADD, OTK_SCATTER_MUL, OTK_SCATTER_MAX, OTK_SCATTER_MIN };

typedef struct otk_dims {
    int64_t n;
    int64_t v[OTK_MAX_DIMS];
} otk_dims;

/* eltwise.cu */
int otk_unary_f32(void *stream, int op, double alpha, double beta, double gamma, const float *lo,
                  const float *hi, const float *x, float *y, int64_t n);
int otk_unary_int(void *stream, int op, int is64, const void *lo, const void *hi, const void *x,
                  void *y, int64_t n);
int otk_unary_grad_f32(void *stream, int op, double alpha, double beta, double gamma,
                       const float *dy, const float *x, float *dx, int64_t n);
int otk_pair_grad_f32(void *stream, int kind, double alpha, const float *lo_p, const float *hi_p,
                      double lo, double hi, double scale, const float *dy, const void *v,
                      int v_is_bool, float *dx, int64_t n);
int otk_binary(void *stream, int op, int kind, const otk_bcast *it, const void *a, const void *b,
               void *y, int64_t n);
int otk_div_f32(void *stream, float *y, double k, int64_t n); /* y /= k */
int otk_fill_f32(void *stream, float *y, float v, int64_t n);
int otk_prelu_grad_f32(void *stream, const otk_bcast *it, const float *dy, const float *x,
                       const float *slope, float *dx, float *ds, int64_t n);
int otk_extremum_grad_f32(void *stream, const otk_multi *m, int k, const float *dy,
                          const float *y, float *dx, int64_t n);
int otk_cast(void *stream, int from, int to, int ints, const void *x, void *y, int64_t n);
int otk_quantize(void *stream, int xt, int st, int zt, int yt, const void *x, const void *s,
                 const void *zp, void *y, double lo, double hi, int64_t n_ch, int64_t inner,
                 int64_t n);
int otk_dequantize(void *stream, int xt, int st, int zt, int yt, const void *x, const void *s,
                   const void *zp, void *y, int64_t n_ch, int64_t inner, int64_t n);
int otk_fq_dyn_scale(void *stream, const float *x, float *scale, int64_t n_ch, int64_t inner,
                     int64_t outer, double qmax);
int otk_fake_quant(void *stream, const float *x, const float *scale, int per_ch, const float *dy,
                   float *y, double qmin, double qmax, int64_t n_ch, int64_t inner, int64_t n);
int otk_dropout_train(void *stream, const float *x, const int64_t *seed, double ratio,
                      uint64_t salt, float *y, uint8_t *mask, int64_t n);

/* pool.cu */
int otk_maxpool_f32(void *stream, const otk_geom *q, const float *x, float *y, int64_t *idx,
                    int col_major);
int otk_avgpool_f32(void *stream, const otk_geom *q, int include_pad, const float *x, float *y);
int otk_maxpool_grad_f32(void *stream, const otk_geom *q, const float *dy, const float *x,
                         float *dx);
int otk_avgpool_grad_f32(void *stream, const otk_geom *q, int include_pad, const float *dy,
                         float *dx);
/* NC = N * C planes of sp positions; nhwc: X (dX) channels-last */
int otk_global_pool_f32(void *stream, int is_max, const float *x, float *y, int64_t NC,
                        int64_t sp, int64_t C, int nhwc);
int otk_global_pool_grad_f32(void *stream, int is_max, const float *dy, const float *x, float *dx,
                             int64_t NC, int64_t sp, int64_t C, int nhwc);

/* norm.cu (scratch: otk_bn_scratch_bytes for BatchNorm, 2 doubles a row
   for NormGrad; BatchNorm's nhwc: X, Y, dY, dX channels-last) */
int64_t otk_bn_parts(int64_t M);
size_t otk_bn_scratch_bytes(int64_t C, int64_t M);
int otk_bn_train_f32(void *stream, const float *x, const float *scale, const float *bias,
                     const float *rmean, const float *rvar, float *y, float *o_rmean,
                     float *o_rvar, float *o_mean, float *o_istd, double eps, double momentum,
                     int64_t N, int64_t C, int64_t sp, int nhwc, void *scratch);
int otk_bn_infer_f32(void *stream, int training, const float *x, const float *scale,
                     const float *bias, const float *mean, const float *var, float *y,
                     float *o_rmean, float *o_rvar, double eps, double momentum, int64_t N,
                     int64_t C, int64_t sp, int nhwc, void *scratch);
int otk_bn_grad_f32(void *stream, const float *dy, const float *x, const float *scale,
                    const float *mean, const float *s4, int training, double eps, float *dx,
                    float *dscale, float *db, int64_t N, int64_t C, int64_t sp, int nhwc,
                    void *scratch);
/* synchronised BatchNorm: `reduce` enqueues on `stream` the sum over the
   ranks of n doubles at p (0: done, else the kernel returns -1 at once);
   M_all: every rank's elements per channel; w: this rank's share */
typedef int (*otk_reduce_fn)(void *ctx, double *p, int64_t n, void *stream);
int otk_bn_train_sync_f32(void *stream, const float *x, const float *scale, const float *bias,
                          const float *rmean, const float *rvar, float *y, float *o_rmean,
                          float *o_rvar, float *o_mean, float *o_istd, double eps,
                          double momentum, int64_t N, int64_t C, int64_t sp, int nhwc,
                          double M_all,
                          otk_reduce_fn reduce, void *ctx, void *scratch);
int otk_bn_grad_sync_f32(void *stream, const float *dy, const float *x, const float *scale,
                         const float *mean, const float *s4, double eps, double w, float *dx,
                         float *dscale, float *db, int64_t N, int64_t C, int64_t sp, int nhwc,
                         otk_reduce_fn reduce, void *ctx, void *scratch);
int otk_normalize_f32(void *stream, const otk_norm *q, double eps, const float *x,
                      const float *scale, const float *bias, float *y, float *mean,
                      float *inv_std);
int otk_norm_grad_f32(void *stream, const otk_norm *q, double eps, int64_t np, const float *dy,
                      const float *x, const float *scale, float *dx, float *ds, float *db,
                      void *scratch);
/* LRN (dy NULL) or LRNGrad (y is dX) */
int otk_lrn_f32(void *stream, const float *dy, const float *x, float *y, double alpha,
                double beta, double bias, int64_t size, int64_t N, int64_t C, int64_t sp);

/* loss.cu (scratch: a double per row) */
int otk_softmax_f32(void *stream, int is_log, const float *x, float *y, int64_t outer, int64_t L,
                    int64_t inner);
int otk_softmax_grad_f32(void *stream, int is_log, const float *dy, const float *y, float *dx,
                         int64_t outer, int64_t L, int64_t inner);
int otk_xent_f32(void *stream, const float *x, const void *lab, int lab64, double eps,
                 float *loss, int64_t N, int64_t C, void *scratch);
int otk_xent_grad_f32(void *stream, const float *dl, const float *x, const void *lab, int lab64,
                      double eps, float *dx, int64_t N, int64_t C, void *scratch);

/* reduce.cu */
int64_t otk_red_parts(int64_t n_out, int64_t n_red);
size_t otk_red_scratch_bytes(int64_t n_out, int64_t n_red);
int otk_reduce_f32(void *stream, const otk_red *w, int kind, const float *x, float *y,
                   void *scratch);
int otk_reduce_grad_f32(void *stream, const otk_red *w, int kind, const float *dy, const float *x,
                        const float *y, float *dx, void *scratch);
int64_t otk_sumsq_parts(int64_t n);
int otk_grad_sum_squares_f32(void *stream, const float *g, int64_t n, const double *acc,
                             double *out, void *scratch);

/* optim.cu (p, b, m, v updated in place) */
int otk_sgd_f32(void *stream, float *p, const float *g, float *b, const double *lr,
                const int64_t *step, const float *coef, double wd, double momentum,
                double dampening, int nesterov, int64_t n);
int otk_adam_f32(void *stream, float *p, const float *g, float *m, float *v, const double *lr,
                 const int64_t *step, const float *coef, int adamw, double wd, double beta1,
                 double beta2, double eps, int64_t n);
int otk_clip_coef_f32(void *stream, const double *sum, const float *scale, float max_norm,
                      float *coef, float *norm);

/* data.cu (es: element size in bytes; src of otk_memcpy_h2d is host memory) */
int otk_copy_plan(void *stream, const otk_copy *p, int es, const void *src, void *dst);
int otk_memcpy_d2d(void *stream, void *dst, const void *src, size_t bytes);
int otk_memcpy_h2d(void *stream, void *dst, const void *src, size_t bytes);
int otk_memset(void *stream, void *dst, int v, size_t bytes);
int otk_gather(void *stream, int es, const void *x, const void *idx, int idx64, void *y,
               int64_t outer, int64_t n_idx, int64_t dax, int64_t inner);
int otk_pad(void *stream, const otk_padding *q, int es, const void *x, const void *fill_p,
            uint64_t fill_bits, void *y);
int otk_shape(void *stream, const otk_dims *d, int64_t *y);

/* logic.cu (dtype: an OTK_DT_ code; es: element size in bytes) */
int otk_compare(void *stream, int op, int dtype, const otk_bc3 *it, const void *a, const void *b,
                uint8_t *y, int64_t n);
int otk_where(void *stream, int es, const otk_bc3 *it, const uint8_t *c, const void *a,
              const void *b, void *y, int64_t n);
int otk_mod(void *stream, int dtype, int fmod_c, const otk_bc3 *it, const void *a, const void *b,
            void *y, int64_t n);
/* it->dims: y's dims, it->s[0]: x's dims */
int otk_tile(void *stream, int es, const otk_bc3 *it, const void *x, void *y, int64_t n);
int otk_fill_bits(void *stream, int es, uint64_t bits, void *y, int64_t n);
int otk_range(void *stream, int dtype, const void *start, const void *delta, void *y, int64_t n);
int otk_scatter_nd(void *stream, const otk_nd *q, int mode, int dtype, int es,
                   const int64_t *idx, const void *u, void *y);
int otk_scatter_nd_grad(void *stream, const otk_nd *q, int es, const int64_t *idx, const void *dy,
                        void *dd, void *du);
int otk_gather_grad_f32(void *stream, const float *dy, const void *idx, int idx64, float *dx,
                        int64_t outer, int64_t n_idx, int64_t dax, int64_t inner);

/* einsum.cu: y[o] = sum over the summed labels of the product of the inputs'
   elements; x[k]'s element stride per output dim (os, dims od) and per
   summed label (ss, sizes sd), 0 on a broadcast dim. */
#define OTK_EIN_MAX_IN 4
#define OTK_EIN_MAX_SUM OTK_MAX_DIMS
typedef struct otk_einsum {
    int n_in, no, ns;
    int64_t n_out, n_red;
    int64_t od[OTK_MAX_DIMS], sd[OTK_EIN_MAX_SUM];
    int64_t os[OTK_EIN_MAX_IN][OTK_MAX_DIMS], ss[OTK_EIN_MAX_IN][OTK_EIN_MAX_SUM];
    const float *x[OTK_EIN_MAX_IN];
} otk_einsum;
int otk_einsum_f32(void *stream, const otk_einsum *e, float *y);

/* prep.cu: n images of c_in planar uint8 planes h x w -> n x c_out x S x S
   float32, the data loader's evaluation transform (src/data/transform.c)
   with the tables of ot_data_resample_coefs in coef (host order: kx, bx,
   ky, by; kw or kh 0 where that pass copies the crop window at left or
   top); a gray image (c_in 1) feeds every output channel; flip mirrors the
   columns. tmp: n * c_in * h * S bytes. */
typedef struct otk_prep {
    int n, c_in, c_out, h, w, S, top, left, kw, kh, flip;
    float mean[3], std[3];
    int box_stride; /* otk_prepare_u8_boxes: int32 per image in `boxes`   */
} otk_prep;
int otk_prepare_u8(void *stream, const otk_prep *q, const uint8_t *img, const int32_t *coef,
                   uint8_t *tmp, float *out);
/* The training transform (--augment: src/data/augment.c) with a box per
   image: image b resized from its box to S x S and mirrored as `boxes`
   says, b * q->box_stride int32 from its start: OTK_BOX_HEAD values (top,
   left, box height, box width, kw, kh, flip, 0), then the tables of
   ot_data_resample_coefs for the box (ot_data_box_resample_plan: kx, bx,
   ky, by; kw or kh 0 where the box's side is S already). q's top, left, kw,
   kh and flip are not read; tmp as otk_prepare_u8's. */
#define OTK_BOX_HEAD 8
int otk_prepare_u8_boxes(void *stream, const otk_prep *q, const uint8_t *img,
                         const int32_t *boxes, uint8_t *tmp, float *out);

/* layout.cu: x [N, C, S] to y [N, S, C] (to_nhwc), or back; es: element
   size in bytes */
int otk_nhwc_transpose(void *stream, int es, const void *x, void *y, int64_t N, int64_t C,
                       int64_t S, int to_nhwc);

/* precision.cu: n elements float32 -> bfloat16 (bf16) or float16, rounded
   to nearest even (narrow), or back (exact); 16-bit values as uint16_t. */
int otk_cast_half(void *stream, const void *x, void *y, int64_t n, int narrow, int bf16);

#ifdef __cplusplus
}
#endif

#endif
