/*
 * dtype.c: element types (numbered as ONNX's TensorProto.DataType) and the
 * half-precision conversions.
 */
#include <string.h>

#include "core.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[OT_DTYPE_COUNT_] = {
    [OT_DTYPE_UNDEFINED] = { "undefined", 0 }, [OT_DTYPE_FLOAT] = { "float", 4 },
    [OT_DTYPE_UINT8] = { "uint8", 1 },         [OT_DTYPE_INT8] = { "int8", 1 },
    [OT_DTYPE_UINT16] = { "uint16", 2 },       [OT_DTYPE_INT16] = { "int16", 2 },
    [OT_DTYPE_INT32] = { "int32", 4 },         [OT_DTYPE_INT64] = { "int64", 8 },
    [OT_DTYPE_STRING] = { "string", 0 },       [OT_DTYPE_BOOL] = { "bool", 1 },
    [OT_DTYPE_FLOAT16] = { "float16", 2 },     [OT_DTYPE_DOUBLE] = { "double", 8 },
    [OT_DTYPE_UINT32] = { "uint32", 4 },       [OT_DTYPE_UINT64] = { "uint64", 8 },
    [OT_DTYPE_COMPLEX64] = { "complex64", 8 }, [OT_DTYPE_COMPLEX128] = { "complex128", 16 },
    [OT_DTYPE_BFLOAT16] = { "bfloat16", 2 },
};

size_t ot_dtype_size(int dtype)
{
    if (dtype < 0 || dtype >= OT_DTYPE_COUNT_)
        return 0;
    return dtypes[dtype].size;
}

const char *ot_dtype_name(int dtype)
{
    if (dtype < 0 || dtype >= OT_DTYPE_COUNT_)
        return "?";
    return dtypes[dtype].name;
}

bool ot_dtype_is_numeric(int dtype) { return ot_dtype_size(dtype) != 0; }

float ot_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ot_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) /* Inf or NaN (keep NaN quiet) */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = exp - 127 + 15;
    if (e >= 0x1f)
        return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, which is still correct */
    return (uint16_t)half;
}

float ot_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ot_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

int64_t ot_tensor_numel(const ot_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dims[i];
    return n;
}

double ot_tensor_get_f64(const ot_tensor *t, int64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * ot_dtype_size(t->dtype);
    switch (t->dtype) {
    case OT_DTYPE_FLOAT: { float v; memcpy(&v, p, 4); return v; }
    case OT_DTYPE_DOUBLE: { double v; memcpy(&v, p, 8); return v; }
    case OT_DTYPE_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return ot_f16_to_f32(v); }
    case OT_DTYPE_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return ot_bf16_to_f32(v); }
    case OT_DTYPE_UINT8: return *p;
    case OT_DTYPE_BOOL: return *p != 0;
    case OT_DTYPE_INT8: return (int8_t)*p;
    case OT_DTYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case OT_DTYPE_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case OT_DTYPE_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case OT_DTYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case OT_DTYPE_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case OT_DTYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    default: return 0;
    }
}

int64_t ot_tensor_get_i64(const ot_tensor *t, int64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * ot_dtype_size(t->dtype);
    switch (t->dtype) {
    case OT_DTYPE_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case OT_DTYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case OT_DTYPE_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    default: {
        double d = ot_tensor_get_f64(t, i);
        if (d != d)
            return 0;
        if (d >= 9.2e18)
            return INT64_MAX;
        if (d <= -9.2e18)
            return INT64_MIN;
        return (int64_t)d;
    }
    }
}
