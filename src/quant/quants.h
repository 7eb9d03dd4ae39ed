/* quants.h - the block formats of GGUF's 4/5-bit, K-quant and IQ4 types, and their scalar reference code: quantize
** (the specification of what `llamac quantize` writes), dequantize, and the integer-form dot products the fast kernels
** are checked against.
**
** Layouts are bit-exact with ggml/src/ggml-common.h of llama.cpp (fp16 fields little-endian, no padding); the
** quantizers reproduce llama-quantize without an importance matrix byte for byte (tests/test_quants.c), so every
** float operation in them keeps the order llama.cpp's C code evaluates it in. All functions are pure, allocation-free
** and thread-safe; n (elements) is a multiple of the type's block size, and rows are plain arrays of blocks.
*/
#ifndef LC_QUANTS_H
#define LC_QUANTS_H

#include "types.h"

#define QK_K 256 /* elements per super-block of the K-quants, Q8_K and IQ4_XS */
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_1 32
#define QK4_NL 32

/* ---- 32-element blocks ---- */

/* x[i] = d * (q[i] - 8); element j of the first half in the low nibble of qs[j], of the second half in the high. */
typedef struct {
    lc_fp16 d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

/* x[i] = d * q[i] + m; nibbles as Q4_0. */
typedef struct {
    lc_fp16 d, m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

/* x[i] = d * (q[i] - 16); low 4 bits as Q4_0, bit 4 of element i is bit i of the little-endian u32 qh. */
typedef struct {
    lc_fp16 d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

/* x[i] = d * q[i] + m; bits as Q5_0. */
typedef struct {
    lc_fp16 d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

/* Activations for Q4_1/Q5_1: x[i] = d * qs[i], and s = fp16(d * sum(qs)) so the weight's m term costs one multiply. */
typedef struct {
    lc_fp16 d, s;
    int8_t qs[QK8_1];
} block_q8_1;
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

/* Non-linear 4-bit: x[i] = d * lc__iq4nl_values[q[i]]; nibbles as Q4_0. */
typedef struct {
    lc_fp16 d;
    uint8_t qs[QK4_NL / 2];
} block_iq4_nl;
_Static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

/* ---- 256-element super-blocks ---- */

/* 16 groups of 16: x = d*(sc&15)*q - dmin*(sc>>4), q in 0..3. qs[32*h + l] holds, in bits 2k..2k+1, element
** 128*h + 32*k + l. */
typedef struct {
    uint8_t scales[QK_K / 16]; /* low nibble: scale, high nibble: min, of group g */
    uint8_t qs[QK_K / 4];
    lc_fp16 d, dmin;
} block_q2_K;
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");

/* 16 groups of 16: x = d*(s-32)*(q-4), q in 0..7: low 2 bits as Q2_K, bit 2 of element i is bit i/32 of
** hmask[i%32]. The 6-bit scales s: group g<8 low nibble in scales[g], g>=8 in the high nibble of scales[g-8]; bits
** 4..5 of group g in bits 2*(g/4).. of scales[8 + g%4]. */
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    lc_fp16 d;
} block_q3_K;
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");

/* 8 groups of 32: x = d*sc*q - dmin*m with 6-bit sc, m (lc__k4_scale_min). qs[32*p + l]: low nibble element
** 64*p + l, high nibble element 64*p + 32 + l. */
typedef struct {
    lc_fp16 d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
} block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

/* As Q4_K with 5-bit q: bit 4 of element 64*p + l is bit 2p of qh[l], of element 64*p + 32 + l bit 2p+1. */
typedef struct {
    lc_fp16 d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

/* 16 groups of 16: x = d * scales[g] * (q - 32), q in 0..63. Per half h (128 elements), element 128h + 32k + l has
** its low nibble in ql[64h + 32*(k&1) + l] (low nibble for k<2, high for k>=2) and its top 2 bits in bits 2k.. of
** qh[32h + l]. */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    lc_fp16 d;
} block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

/* Activations for the K-quants and IQ4_XS: x = d * qs, bsums[g] = sum of qs of group g of 16. */
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* 8 groups of 32: x = d * (s - 32) * lc__iq4nl_values[q]; 6-bit s of group g: low nibble in scales_l[g/2] (low
** half for even g), high 2 bits in bits 2g.. of scales_h. qs as 8 IQ4_NL blocks. */
typedef struct {
    lc_fp16 d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} block_iq4_xs;
_Static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

/* The 16 levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl). */
extern const int8_t lc__iq4nl_values[16];

/* Scale and min (6 bits each) of group j (0..7) of a Q4_K/Q5_K scales[12] array. */
static inline void lc__k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Signed 6-bit scale (-32..31) of group j (0..15) of a Q3_K scales[12] array. */
static inline int lc__q3k_scale(int j, const uint8_t *q) {
    int lo = j < 8 ? q[j] & 0xF : q[j - 8] >> 4;
    int hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- reference conversions (n elements, a multiple of the block size) ---- */

/* Quantizers: what llama-quantize writes for the type when no importance matrix is given (ggml_quantize_chunk with
** imatrix NULL). For IQ4_NL that is ggml's quantize_iq4_nl (scale search over 15 candidates), which differs from
** ggml's quantize_row_iq4_nl_ref (no search). */
void lc__quantize_row_q4_0_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q4_1_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q5_0_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q5_1_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q2_K_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q3_K_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q4_K_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q5_K_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q6_K_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_iq4_nl_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_iq4_xs_ref(const float *x, void *y, int64_t n);

/* Activation quantizers, as llama.cpp's CPU backend converts f32 activations before a dot product.
** Q8_1: d = amax/127, q = round-half-even(x * (127/amax)), s = fp16(d * sum q) - the x86 AVX/AVX2 form (the scalar
** quantize_row_q8_1_ref rounds half away from zero and ARM multiplies by 1/d; they differ from this only on ties).
** Q8_K: ggml's quantize_row_q8_K_ref, which every x86 build uses: d = 1/(-127/max) with max the signed value of
** largest magnitude, q = min(127, round-half-even(x * -127/max)). */
void lc__quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void lc__quantize_row_q8_K_ref(const float *x, void *y, int64_t n);

/* Dequantizers: the same float operations as ggml's dequantize_row_*, so results are bit-identical. */
void lc__dequantize_row_q4_0(const void *x, float *y, int64_t n);
void lc__dequantize_row_q4_1(const void *x, float *y, int64_t n);
void lc__dequantize_row_q5_0(const void *x, float *y, int64_t n);
void lc__dequantize_row_q5_1(const void *x, float *y, int64_t n);
void lc__dequantize_row_q8_1(const void *x, float *y, int64_t n);
void lc__dequantize_row_q2_K(const void *x, float *y, int64_t n);
void lc__dequantize_row_q3_K(const void *x, float *y, int64_t n);
void lc__dequantize_row_q4_K(const void *x, float *y, int64_t n);
void lc__dequantize_row_q5_K(const void *x, float *y, int64_t n);
void lc__dequantize_row_q6_K(const void *x, float *y, int64_t n);
void lc__dequantize_row_q8_K(const void *x, float *y, int64_t n);
void lc__dequantize_row_iq4_nl(const void *x, float *y, int64_t n);
void lc__dequantize_row_iq4_xs(const void *x, float *y, int64_t n);

/* ---- reference dot products ----
** *s = dot(w, x) over n elements: w a row of the weight type, x a row of its vec-dot type (Q8_0 for Q4_0, Q5_0,
** IQ4_NL; Q8_1 for Q4_1, Q5_1; Q8_K for Q2_K..Q6_K and IQ4_XS), in the integer form of ggml: per block an exact
** int32 sum of products of the quants (min terms through Q8_1's s or Q8_K's bsums), then scaled by the block's
** float factors and accumulated in float, block after block. SIMD kernels must give the same integer sums; their
** float accumulation may differ in order. */
void lc__vec_dot_q4_0_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q4_1_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q5_0_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q5_1_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q2_K_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q3_K_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q4_K_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q5_K_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q6_K_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_iq4_nl_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_iq4_xs_ref(int n, float *s, const void *w, const void *x);

/* ---- by type id ---- */
typedef struct lc_quant_ref {
    void (*quantize)(const float *x, void *y, int64_t n);          /* weights: llama-quantize; Q8_1/Q8_K: activations */
    void (*dequantize)(const void *x, float *y, int64_t n);
    void (*vec_dot)(int n, float *s, const void *w, const void *x); /* NULL for Q8_1 and Q8_K */
    int vec_dot_type;                                               /* -1 for Q8_1 and Q8_K */
} lc_quant_ref;

/* The reference functions of one of this module's types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_1, Q2_K..Q8_K, IQ4_NL,
** IQ4_XS), or NULL for any other id. */
const lc_quant_ref *lc__quant_ref(int type);
/* dst[0..n) = src dequantized; false (nothing written) if type is not one of this module's. */
bool lc__quant_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* dst = src[0..n) quantized as llama-quantize does without imatrix; false if type is not one of this module's. */
bool lc__quant_quantize_row(int type, const float *src, void *dst, int64_t n);

/* ---- shared by the q*_ref.c files ---- */

/* round(f) with ties to even, for |f| < 2^22, in float arithmetic: adding 1.5*2^23 leaves the rounded integer in the
** low mantissa bits. This is GGML's nearest_int, including what it returns out of range (never UB), which the
** quantizers need to reproduce llama.cpp exactly. */
static inline int lc__nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

#endif /* LC_QUANTS_H */
