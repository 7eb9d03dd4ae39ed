/* test_qkernels.c - the SIMD kernels of the 4/5-bit, K-quant and IQ4 types (src/kernels/qdot_impl.h per ISA) against
** their scalar references (src/quant/q_*_ref.c, themselves checked against llama.cpp in test_quants.c).
**
** For every kernel variant this machine runs (ref, avx2, avx512 with VNNI, neon; the ARM64 build runs under qemu)
** and every type: the dot product is bit-identical to the reference on rows made by the reference quantizers, on
** raw random bytes (every bit pattern of the quants and scales, finite fp16 scales) and on extreme rows; the matrix
** product (lc_matmul_using, which unpacks a weight row once for all tokens of a tile) is bit-identical to the dot
** product for every (row, token) over odd shapes, so results never depend on the batch.
*/
#include "harness.h"
#include "llamac.h"

#include "../src/base/base.h"
#include "../src/kernels/kernels.h"
#include "../src/quant/quants.h"

#include <math.h>
#include <stdint.h>

static const int k_types[] = {LC_TYPE_Q4_0, LC_TYPE_Q4_1, LC_TYPE_Q5_0, LC_TYPE_Q5_1, LC_TYPE_IQ4_NL, LC_TYPE_Q2_K,
                              LC_TYPE_Q3_K, LC_TYPE_Q4_K, LC_TYPE_Q5_K, LC_TYPE_Q6_K, LC_TYPE_IQ4_XS};
#define N_TYPES (int)(sizeof k_types / sizeof *k_types)
static const char *const k_variants[] = {"ref", "avx2", "avx512", "amx", "neon"};

static bool quick(void) {
    const char *q = getenv("LLAMAC_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float frand(void) { return (float)((rnd() & 0xFFFFFF) / 16777216.0 * 2.0 - 1.0); }

static size_t row_bytes(int type, int n) {
    uint64_t b = 0;
    lc_type_row_bytes(type, (uint64_t)n, &b);
    return (size_t)b;
}

/* Random finite fp16 of moderate magnitude (so products stay finite), sign random. */
static uint16_t rnd_fp16(void) {
    const float v = (float)(0.001 + (rnd() % 10000) / 10000.0 * 0.05) * ((rnd() & 1) ? -1.f : 1.f);
    return lc_fp32_to_fp16(v);
}

/* Overwrites the fp16 scale fields of a block of type t with finite values (raw random bytes could hold NaN/Inf,
** whose sums are NaN in every variant but not comparable bit for bit). */
static void fix_scales(int t, uint8_t *blk) {
    uint16_t a = rnd_fp16(), b = rnd_fp16();
    switch (t) {
    case LC_TYPE_Q4_0: case LC_TYPE_Q5_0: case LC_TYPE_IQ4_NL: case LC_TYPE_IQ4_XS: memcpy(blk, &a, 2); break;
    case LC_TYPE_Q4_1: case LC_TYPE_Q5_1: case LC_TYPE_Q4_K: case LC_TYPE_Q5_K:
        memcpy(blk, &a, 2);
        memcpy(blk + 2, &b, 2);
        break;
    case LC_TYPE_Q2_K: memcpy(blk + 80, &a, 2); memcpy(blk + 82, &b, 2); break;
    case LC_TYPE_Q3_K: memcpy(blk + 108, &a, 2); break;
    case LC_TYPE_Q6_K: memcpy(blk + 208, &a, 2); break;
    default: break;
    }
}

/* Rows of weights: kind 0 quantized from Gaussian-ish floats, 1 raw random bytes, 2 extremes (all quants at their
** largest code with the largest scales). */
static void make_weights(int t, int kind, int n, int rows, uint8_t *w) {
    const lc_quant_ref *q = lc__quant_ref(t);
    const size_t rb = row_bytes(t, n), bs = row_bytes(t, t >= LC_TYPE_Q2_K && t != LC_TYPE_IQ4_NL ? 256 : 32);
    float *f = malloc(sizeof *f * (size_t)n);
    for (int r = 0; r < rows; r++) {
        uint8_t *row = w + (size_t)r * rb;
        if (kind == 0) {
            for (int i = 0; i < n; i++) f[i] = (frand() + frand() + frand()) * (i % 97 == 0 ? 5.f : 1.f);
            q->quantize(f, row, n);
        } else {
            for (size_t i = 0; i < rb; i++) row[i] = kind == 1 ? (uint8_t)rnd() : 0xFF;
            for (size_t b = 0; b < rb / bs; b++) fix_scales(t, row + b * bs);
        }
    }
    free(f);
}

static void make_acts(int vt, int kind, int n, int nt, uint8_t *x, float *xf) {
    const size_t rb = row_bytes(vt, n);
    for (int t = 0; t < nt; t++) {
        float *f = xf + (size_t)t * n;
        for (int i = 0; i < n; i++)
            f[i] = kind == 2   ? (i % 2 ? -1.f : 1.f) * 3.f
                   : kind == 3 ? 3.f  /* every quant +127 */
                   : kind == 4 ? -3.f /* every quant -127 */
                               : frand() * (i % 13 == 0 ? 4.f : 1.f);
        if (vt == LC_TYPE_Q8_0)
            lc__quantize_row_q8_0_act(f, (block_q8_0 *)(x + (size_t)t * rb), n);
        else
            lc__quant_ref(vt)->quantize(f, x + (size_t)t * rb, n);
    }
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

TEST(vec_dot_bit_identical_to_reference) {
    int n_var = 0;
    const int sizes[] = {256, 512, 4096};
    for (size_t v = 1; v < sizeof k_variants / sizeof *k_variants; v++) {
        const lc_kernels *k = lc_kernels_by_name(k_variants[v]);
        if (!k) continue;
        n_var++;
        for (int ti = 0; ti < N_TYPES; ti++) {
            const int t = k_types[ti], vt = lc_vec_dot_type(t);
            CHECKF(k->vec_dot[t], "%s has no vec_dot for %s", k->name, lc_type_name(t));
            const lc_quant_ref *q = lc__quant_ref(t);
            for (int si = 0; si < (quick() ? 2 : 3); si++)
                for (int kind = 0; kind < 3; kind++) {
                    const int n = sizes[si], rows = quick() ? 4 : 16;
                    uint8_t *w = malloc(row_bytes(t, n) * (size_t)rows), *x = malloc(row_bytes(vt, n));
                    float *xf = malloc(sizeof *xf * (size_t)n);
                    make_weights(t, kind, n, rows, w);
                    make_acts(vt, kind, n, 1, x, xf);
                    for (int r = 0; r < rows; r++) {
                        float a = 0, b = 0;
                        q->vec_dot(n, &a, w + (size_t)r * row_bytes(t, n), x);
                        k->vec_dot[t](n, &b, w + (size_t)r * row_bytes(t, n), x);
                        if (!same_bits(a, b)) {
                            free(w), free(x), free(xf);
                            FAILF("%s %s n %d kind %d row %d: %.9g vs reference %.9g", k->name, lc_type_name(t), n,
                                  kind, r, b, a);
                        }
                    }
                    free(w), free(x), free(xf);
                }
        }
    }
    if (!n_var) SKIP("no SIMD variant runs on this machine");
}

/* The same W repacked into the r8 layout (kernels.h) and multiplied by lc_matmul_r8_using, split over 3 threads
** (so a thread's range may end in the partial group): Y bit for bit; and every row read back by
** lc__r8_dequantize, whole and as a slice of blocks, equals the row dequantized as stored. */
static void check_r8(const lc_kernels *k, int t, const uint8_t *w, size_t wrb, int no, int n, const void *xq, int nt,
                     const float *Y, const char **bad, int *bt, int *br) {
    uint8_t *w8 = malloc(wrb * (size_t)no);
    float *Y8 = malloc(sizeof *Y8 * (size_t)no * nt), *a = malloc(sizeof *a * (size_t)n), *b = malloc(sizeof *b * (size_t)n);
    memcpy(w8, w, wrb * (size_t)no);
    if (!lc__r8_pack(t, w8, wrb, no)) *bad = "lc__r8_pack";
    for (int ith = 0; ith < 3 && !*bad; ith++) lc_matmul_r8_using(k, t, w8, wrb, no, n, xq, nt, Y8, no, ith, 3);
    for (int i = 0; i < no * nt && !*bad; i++)
        if (!same_bits(Y[i], Y8[i])) *bad = "lc_matmul_r8 on the repacked rows", *bt = i / no, *br = i % no;
    const int blk = (int)lc_type_traits_of(t)->blck_size, c0 = n >= 3 * blk ? blk : 0, cn = n >= 3 * blk ? blk * 2 : n;
    for (int r = 0; r < no && !*bad; r++) {
        lc_dequantize_row(t, w + (size_t)r * wrb, a, n);
        lc__r8_dequantize(t, w8, wrb, no, r, 0, n, b);
        if (memcmp(a, b, sizeof *a * (size_t)n)) *bad = "lc__r8_dequantize (whole row)", *br = r;
        lc__r8_dequantize(t, w8, wrb, no, r, c0, cn, b);
        if (memcmp(a + c0, b, sizeof *a * (size_t)cn)) *bad = "lc__r8_dequantize (a slice)", *br = r;
    }
    free(w8), free(Y8), free(a), free(b);
}

/* lc_matmul_using over odd shapes: every Y element bit-identical to the variant's vec_dot (and to the reference).
** The shapes cover the SIMD kernels' row groups of 8 (full, partial, several staged at a time), token pairs with
** an odd one left, row slices of the GEMM (several, with a remainder) and the GEMV's block chunks (n > 16384);
** weights quantized, raw random and extreme (largest codes), against random activations and all +127 or all -127
** (the 16-bit partial sums at their largest); and the AMX GEMM's K chunks, token tails and weight packings. */
TEST(matmul_bit_identical_to_vec_dot) {
    const int shapes[][5] = {/* n_in, n_out, n_tok, weight kind, activation kind */
                             {256, 5, 1, 0, 0},    {512, 7, 2, 1, 0},    {768, 3, 3, 0, 0},   {256, 17, 5, 1, 0},
                             {2048, 19, 1, 0, 0},  {512, 8, 1, 2, 3},    {512, 16, 3, 2, 4},  {1024, 9, 8, 0, 0},
                             {512, 33, 17, 1, 0},  {2560, 41, 3, 1, 0},  {512, 24, 1, 2, 4},  {512, 9, 2, 2, 3},
                             {1024, 67, 4, 0, 0},  {16640, 9, 1, 1, 0},  {4352, 13, 2, 2, 3},
                             /* the AMX tiles: more blocks than a K chunk (32), 16 + 4 tokens, extreme values;
                             ** more tokens than share one weight packing (256), rows 16 + 3 */
                             {2304, 48, 20, 2, 4}, {1280, 32, 37, 2, 3}, {256, 19, 261, 1, 0}};
    for (size_t v = 0; v < sizeof k_variants / sizeof *k_variants; v++) {
        const lc_kernels *k = lc_kernels_by_name(k_variants[v]);
        if (!k) continue;
        for (int ti = 0; ti < N_TYPES; ti++) {
            const int t = k_types[ti], vt = lc_vec_dot_type(t);
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                if (quick() && s > 8) break;
                const int n = shapes[s][0], no = shapes[s][1], nt = shapes[s][2];
                const size_t wrb = row_bytes(t, n), xrb = row_bytes(vt, n);
                uint8_t *w = malloc(wrb * (size_t)no), *xq = malloc(lc_matmul_xq_bytes(t, n, nt)),
                        *x1 = malloc(xrb * (size_t)nt);
                float *X = malloc(sizeof *X * (size_t)n * nt), *Y = malloc(sizeof *Y * (size_t)no * nt);
                make_weights(t, shapes[s][3], n, no, w);
                make_acts(vt, shapes[s][4], n, nt, x1, X);
                lc_matmul_prepare_using(k, t, X, n, n, nt, xq, 0, 1);
                lc_matmul_using(k, t, w, wrb, no, n, xq, nt, Y, no, 0, 1);
                const char *bad = NULL;
                int br = 0, bt = 0;
                float got = 0, want = 0, ref = 0;
                for (int tok = 0; tok < nt && !bad; tok++)
                    for (int r = 0; r < no && !bad; r++) {
                        got = Y[(size_t)tok * no + r];
                        k->vec_dot[t](n, &want, w + (size_t)r * wrb, xq + (size_t)tok * xrb);
                        lc__quant_ref(t)->vec_dot(n, &ref, w + (size_t)r * wrb, xq + (size_t)tok * xrb);
                        if (!same_bits(got, want)) bad = "its vec_dot";
                        else if (!same_bits(got, ref)) bad = "the reference";
                        br = r, bt = tok;
                    }
                if (!bad && k->gemm_r8[t]) check_r8(k, t, w, wrb, no, n, xq, nt, Y, &bad, &bt, &br);
                free(w), free(xq), free(x1), free(X), free(Y);
                CHECKF(!bad, "%s %s n %d x %d rows x %d tokens: Y[%d][%d] = %.9g differs from %s (%.9g / ref %.9g)",
                       k->name, lc_type_name(t), n, no, nt, bt, br, got, bad, want, ref);
            }
        }
    }
}

/* Activation conversion of each variant equals the reference quantizer byte for byte. */
TEST(from_float_bit_identical) {
    const int vts[] = {LC_TYPE_Q8_0, LC_TYPE_Q8_1, LC_TYPE_Q8_K};
    for (size_t v = 0; v < sizeof k_variants / sizeof *k_variants; v++) {
        const lc_kernels *k = lc_kernels_by_name(k_variants[v]);
        if (!k) continue;
        for (int i = 0; i < 3; i++) {
            const int vt = vts[i], n = 1024;
            if (!k->from_float[vt]) FAILF("%s has no from_float for %s", k->name, lc_type_name(vt));
            float *f = malloc(sizeof *f * n);
            uint8_t *a = calloc(1, row_bytes(vt, n)), *b = calloc(1, row_bytes(vt, n));
            for (int rep = 0; rep < 6; rep++) {
                /* rep 3: ties of magnitude (the first element of largest magnitude decides the sign); 4: zeros; 5:
                ** (Q8_K, whose SIMD quantizer handles them like the reference) a NaN and an infinity */
                if (rep == 5 && vt != LC_TYPE_Q8_K) break;
                for (int j = 0; j < n; j++)
                    f[j] = rep == 3 ? (float)(j % 7) - 3.f : rep == 4 ? 0.f : frand() * (j % 5 ? 1.f : 9.f);
                if (rep == 5) f[3] = NAN, f[300] = INFINITY;
                if (vt == LC_TYPE_Q8_0)
                    lc__quantize_row_q8_0_act(f, (block_q8_0 *)a, n);
                else
                    lc__quant_ref(vt)->quantize(f, a, n);
                k->from_float[vt](f, b, n);
                if (memcmp(a, b, row_bytes(vt, n))) {
                    free(f), free(a), free(b);
                    FAILF("%s from_float %s differs from the reference (rep %d)", k->name, lc_type_name(vt), rep);
                }
            }
            free(f), free(a), free(b);
        }
    }
}

int main(void) {
    printf("test_qkernels%s: kernel variant in use: %s\n", quick() ? " (quick)" : "", lc_cpu_variant());
    RUN(vec_dot_bit_identical_to_reference);
    RUN(matmul_bit_identical_to_vec_dot);
    RUN(from_float_bit_identical);
    return TEST_SUMMARY();
}
