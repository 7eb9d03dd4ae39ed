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

/* Reference (scalar) conversions; n is a multiple of the block size. */
void lc_dequantize_row(int type, const void *src, float *dst, int64_t n); /* any supported type -> f32 */
void lc_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n);  /* as GGML's quantize_row_q8_0_ref */
void lc_fp32_to_fp16_row(const float *x, lc_fp16 *y, int64_t n);
void lc_fp32_to_bf16_row(const float *x, lc_bf16 *y, int64_t n);

#endif /* LC_TYPES_H */
