/* types.h - the weight/tensor type table and the scalar reference conversions (the specification of each format).
**
** Block layouts are bit-exact with GGML/GGUF. The fast kernels in src/kernels must agree with these functions.
*/
#ifndef LC_TYPES_H
#define LC_TYPES_H

#include "../base/base.h"

typedef struct lc_type_traits {
    const char *name;   /* NULL: unknown id */
    uint32_t blck_size; /* elements per block (1 for F32/F16/BF16) */
    uint32_t type_size; /* bytes per block */
    bool supported;     /* this build can compute with it (dequantize + dot) */
} lc_type_traits;

/* Traits of a GGML type id; for an unknown id, a struct whose name is NULL. */
const lc_type_traits *lc_type_traits_of(int type);
/* Bytes of a row of n elements; false if n is not a multiple of the block size or on overflow. */
bool lc_type_row_bytes(int type, uint64_t n, uint64_t *out);

#define QK8_0 32
typedef struct {
    lc_fp16 d;        /* scale */
    int8_t qs[QK8_0]; /* quants */
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

/* Reference (scalar) conversions (convert.c); n is a multiple of the block size. Pure and thread-safe. */
/* Any supported type (F32, F16, BF16, Q8_0) -> f32, bit-identical to GGML's dequantize_row / to_float. */
void lc_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Weights, as GGML's quantize_row_q8_0_ref (what llama-quantize writes): d = amax/127, q = roundf(x * (1/d)),
** ties away from zero. */
void lc_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n);
/* Activations, as llama.cpp's CPU backend quantizes them before a Q8_0 dot on x86 (AVX/AVX2/AVX-512 builds, the
** path its prebuilt binaries run): d = amax/127 stored as fp16, q = round-half-even(x * (127/amax)). Differs from
** the _ref form on exact ties and where 127/amax != 1/(amax/127) in f32. The from_float of every kernel variant. */
void lc__quantize_row_q8_0_act(const float *x, block_q8_0 *y, int64_t n);
/* f32 -> fp16 / bf16, round to nearest even (NaN stays NaN), as F16C and GGML_FP32_TO_BF16 do. */
void lc_fp32_to_fp16_row(const float *x, lc_fp16 *y, int64_t n);
void lc_fp32_to_bf16_row(const float *x, lc_bf16 *y, int64_t n);

#endif /* LC_TYPES_H */
