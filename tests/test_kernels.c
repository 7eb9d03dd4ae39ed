/* test_kernels.c - the numerics layer: conversions, vec_dot, from_float and matmul of every kernel variant this CPU
** runs, against hand-derived values, GGML's definitions and double-precision products.
**
** Oracles: IEEE 754 bit patterns worked out by hand (fp16/bf16 incl. subnormals, inf, NaN, ties); Q8_0 blocks whose
** quantization is derived in the comments from GGML's formulas (quantize_row_q8_0_ref in ggml-quants.c and the x86
** quantize_row_q8_0 in ggml-cpu/arch/x86/quants.c); dot products and matrix products recomputed here in double.
** Tolerances, as kernels.h states them: integer-block types bit-identical to ref; float types within
** (n/4 + 32) * 2^-24 * sum|w x| of the exact dot of the same (rounded) operands.
*/
#include "harness.h"
#include "llamac.h"

#include "../src/kernels/kernels.h"

#include <stdint.h>

static const char *const variant_names[] = {"ref", "avx2", "avx512", "amx", "neon"};
enum { N_VARIANTS = 5 };
static bool quick;

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(void) { return (float)((double)(rng_u64() >> 11) * 0x1p-53 * 2.0 - 1.0); }
static float rng_normal(void) { return (rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform()) * 0.866f; }

static float f32_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t bits_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const lc_kernels *variant(int v) { return lc_kernels_by_name(variant_names[v]); }

/* Fills f32 data with a mix of magnitudes per block of 32 (so Q8_0 scales vary) and some exact zeros. */
static void fill_random(float *x, int n, float scale) {
    float block_scale = scale;
    for (int i = 0; i < n; i++) {
        if (i % 32 == 0) block_scale = scale * (0.05f + 2.0f * (rng_uniform() + 1.0f));
        x[i] = (rng_u64() % 53 == 0) ? 0.0f : rng_normal() * block_scale;
    }
}

/* Converts f32 data to a row of `type` (weights: Q8_0 through the reference quantizer, as llama-quantize does). */
static void to_type(int type, const float *x, void *y, int n) {
    switch (type) {
    case LC_TYPE_F32: memcpy(y, x, (size_t)n * 4); break;
    case LC_TYPE_F16: lc_fp32_to_fp16_row(x, y, n); break;
    case LC_TYPE_BF16: lc_fp32_to_bf16_row(x, y, n); break;
    case LC_TYPE_Q8_0: lc_quantize_row_q8_0_ref(x, y, n); break;
    }
}

static size_t row_bytes(int type, int n) {
    uint64_t rb = 0;
    return lc_type_row_bytes(type, (uint64_t)n, &rb) ? (size_t)rb : 0;
}

/* exact (double) dot of two rows given as f32 values, and sum |w x| */
static double dot_double(const float *a, const float *b, int n, double *abs_sum) {
    double s = 0, as = 0;
    for (int i = 0; i < n; i++) {
        s += (double)a[i] * (double)b[i];
        as += fabs((double)a[i] * (double)b[i]);
    }
    if (abs_sum) *abs_sum = as;
    return s;
}

static double float_bound(int n, double abs_sum) { return ((double)n / 4.0 + 32.0) * 0x1p-24 * abs_sum + 1e-30; }

/* ---- fp16 / bf16 ---- */

typedef struct {
    uint32_t f32;
    uint16_t half;
    const char *what;
} conv_case;

/* f32 -> fp16, round to nearest even. Hand-derived: fp16 has 10 fraction bits, exponent bias 15, subnormal unit
** 2^-24, largest finite 65504; a value rounds to inf from 65520 (halfway between 65504 and 2^16) up. */
static const conv_case fp16_cases[] = {
    {0x3f800000, 0x3c00, "1"},
    {0xc0000000, 0xc000, "-2"},
    {0x00000000, 0x0000, "+0"},
    {0x80000000, 0x8000, "-0"},
    {0x3eaaaaab, 0x3555, "1/3 (0x3555 = 0.333251953125, nearer than 0x3556)"},
    {0x477fe000, 0x7bff, "65504, largest finite"},
    {0x477fefff, 0x7bff, "just below 65520 rounds down"},
    {0x477ff000, 0x7c00, "65520: tie between 65504 (odd) and 65536 -> inf"},
    {0x7f7fffff, 0x7c00, "FLT_MAX overflows to inf"},
    {0x7f800000, 0x7c00, "+inf"},
    {0xff800000, 0xfc00, "-inf"},
    {0x7fc00000, 0x7e00, "quiet NaN"},
    {0x7f800001, 0x7e00, "signalling NaN (payload below the kept bits) comes back quiet"},
    {0xffc02000, 0xfe01, "negative NaN keeps its top payload bits"},
    {0x33800000, 0x0001, "2^-24, smallest subnormal"},
    {0x33000000, 0x0000, "2^-25: tie between 0 (even) and 2^-24 -> 0"},
    {0x33000001, 0x0001, "just above 2^-25 -> 2^-24"},
    {0x33c00000, 0x0002, "3 * 2^-25: tie between 1 and 2 units -> 2 (even)"},
    {0x34200000, 0x0002, "5 * 2^-25 = 2.5 units: tie -> 2 (even)"},
    {0x387fc000, 0x03ff, "1023 * 2^-24, largest subnormal"},
    {0x38800000, 0x0400, "2^-14, smallest normal"},
    {0x387fe000, 0x0400, "1023.5 units: tie -> 1024 = smallest normal (even)"},
    {0x3f801000, 0x3c00, "1 + 2^-11: tie between 0x3c00 and 0x3c01 -> 0x3c00 (even)"},
    {0x3f803000, 0x3c02, "1 + 3*2^-11: tie between 0x3c01 and 0x3c02 -> 0x3c02 (even)"},
    {0x3f801001, 0x3c01, "just above the tie rounds up"},
    {0x00000001, 0x0000, "f32 subnormal -> +0"},
    {0x80000001, 0x8000, "negative f32 subnormal -> -0"},
    {0xc7000000, 0xf800, "-32768"},
};

/* f32 -> bf16: the high 16 bits, round to nearest even; NaN quiet (bit 6 of the half set), as GGML_FP32_TO_BF16. */
static const conv_case bf16_cases[] = {
    {0x3f800000, 0x3f80, "1"},
    {0x3f808000, 0x3f80, "1 + 2^-8: tie -> 0x3f80 (even)"},
    {0x3f818000, 0x3f82, "1 + 3*2^-8: tie -> 0x3f82 (even)"},
    {0x3f808001, 0x3f81, "just above the tie rounds up"},
    {0x7f7fffff, 0x7f80, "FLT_MAX rounds up to inf"},
    {0x7f800000, 0x7f80, "+inf"},
    {0xff800000, 0xff80, "-inf"},
    {0x7f800001, 0x7fc0, "signalling NaN -> quiet"},
    {0xffc00001, 0xffc0, "negative quiet NaN"},
    {0x7f810000, 0x7fc1, "NaN payload in the kept bits survives"},
    {0x00000001, 0x0000, "smallest f32 subnormal -> +0"},
    {0x00008000, 0x0000, "f32 subnormal tie -> 0 (even)"},
    {0x00018000, 0x0002, "f32 subnormal tie -> 2 (even)"},
    {0x00010000, 0x0001, "bf16 subnormal kept"},
    {0x80000000, 0x8000, "-0"},
    {0xc2f70000, 0xc2f7, "-123.5 exact"},
};

static int check_conv_cases(const conv_case *cs, int nc, int type, char *msg, size_t cap) {
    /* each case is converted alone (scalar), then all of them as one long row through every variant's from_float
    ** (repeated so SIMD bodies and scalar tails both see every case) */
    enum { REP = 5 };
    float x[64 * REP];
    uint16_t got[64 * REP];
    const int n = nc * REP;
    for (int i = 0; i < nc; i++) {
        const float f = f32_bits(cs[i].f32);
        const uint16_t h = type == LC_TYPE_F16 ? lc_fp32_to_fp16(f) : lc_fp32_to_bf16(f);
        if (h != cs[i].half) {
            snprintf(msg, cap, "scalar: %08x (%s) -> %04x, want %04x", cs[i].f32, cs[i].what, h, cs[i].half);
            return 1;
        }
    }
    for (int i = 0; i < n; i++) x[i] = f32_bits(cs[i % nc].f32);
    for (int v = 0; v < N_VARIANTS; v++) {
        const lc_kernels *k = variant(v);
        if (!k) continue;
        for (int len = n - 7; len <= n; len++) {
            memset(got, 0xee, sizeof got);
            k->from_float[type](x, got, len);
            for (int i = 0; i < len; i++)
                if (got[i] != cs[i % nc].half) {
                    snprintf(msg, cap, "%s from_float, len %d, element %d: %08x (%s) -> %04x, want %04x", k->name, len,
                             i, cs[i % nc].f32, cs[i % nc].what, got[i], cs[i % nc].half);
                    return 1;
                }
        }
    }
    return 0;
}

TEST(fp16_rounding_known_bit_patterns) {
    char msg[512];
    if (check_conv_cases(fp16_cases, (int)(sizeof fp16_cases / sizeof *fp16_cases), LC_TYPE_F16, msg, sizeof msg))
        FAILF("%s", msg);
}

TEST(bf16_rounding_known_bit_patterns) {
    char msg[512];
    if (check_conv_cases(bf16_cases, (int)(sizeof bf16_cases / sizeof *bf16_cases), LC_TYPE_BF16, msg, sizeof msg))
        FAILF("%s", msg);
}

TEST(fp16_bf16_widening_known_values) {
    static const struct {
        uint16_t h;
        uint32_t f;
    } h2f[] = {
        {0x3c00, 0x3f800000}, {0x0001, 0x33800000}, {0x03ff, 0x387fc000}, {0x0400, 0x38800000},
        {0x7bff, 0x477fe000}, {0x7c00, 0x7f800000}, {0xfc00, 0xff800000}, {0x8000, 0x80000000},
        {0x3555, 0x3eaaa000}, {0x8001, 0xb3800000},
    };
    lc_kernels_get(); /* initialises the fp16 table */
    for (size_t i = 0; i < sizeof h2f / sizeof *h2f; i++) {
        CHECKF(bits_f32(lc_fp16_to_fp32(h2f[i].h)) == h2f[i].f, "fp16 %04x -> %08x", h2f[i].h,
               bits_f32(lc_fp16_to_fp32(h2f[i].h)));
        CHECKF(bits_f32(lc_fp16_lut(h2f[i].h)) == h2f[i].f, "table: fp16 %04x", h2f[i].h);
    }
    CHECK(isnan(lc_fp16_to_fp32(0x7e00)) && isnan(lc_fp16_to_fp32(0xfd01)));
    CHECK(bits_f32(lc_bf16_to_fp32(0xc2f7)) == 0xc2f70000 && bits_f32(lc_bf16_to_fp32(0x0001)) == 0x00010000);
    /* every fp16 survives fp16 -> f32 -> fp16 (NaNs as NaNs) */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = lc_fp16_to_fp32((lc_fp16)h);
        const lc_fp16 back = lc_fp32_to_fp16(f);
        if (isnan(f)) CHECKF((back & 0x7c00) == 0x7c00 && (back & 0x3ff), "NaN %04x -> %04x", h, back);
        else CHECKF(back == h, "fp16 %04x -> %g -> %04x", h, (double)f, back);
    }
}

/* ---- Q8_0 quantization ---- */

TEST(q8_0_quantization_hand_derived) {
    float x[64];
    block_q8_0 r[2], a[2];
    /* Block 0: amax 254, so d = 254/127 = 2 exactly (fp16 0x4000) and both 1/d and 127/254 are exactly 0.5. The odd
    ** values land on ties x/2 = k + 0.5: the reference rounds them away from zero (roundf), the x86 activation form
    ** to even (VROUNDPS nearest). */
    static const float v0[8] = {254, 5, -5, 1, -7, 3, 0, -254};
    static const int8_t ref0[8] = {127, 3, -3, 1, -4, 2, 0, -127};
    static const int8_t act0[8] = {127, 2, -2, 0, -4, 2, 0, -127};
    /* Block 1: amax 11. d = f32(11/127) = 0.0866141766 (fp16 0x2d8b = 0.08660888671875); 1/d rounds to 11.545454
    ** in f32 while 127/11 rounds to 11.545455 (the exact value is 11.5454545...). x = 5.5 lies on the exact tie
    ** 5.5 * 127/11 = 63.5: the reference gets 5.5 * 11.545454 = 63.4999962 -> 63, the activation form
    ** 5.5 * 11.545455 = 63.5000038 -> 64. x = 11 gives 127 in both; x = 1 gives 11.545.. -> 12. */
    static const float v1[6] = {11, 5.5f, -5.5f, 1, -11, 0.25f};
    static const int8_t ref1[6] = {127, 63, -63, 12, -127, 3};
    static const int8_t act1[6] = {127, 64, -64, 12, -127, 3};
    for (int j = 0; j < 32; j++) x[j] = j < 8 ? v0[j] : 0.0f;
    for (int j = 0; j < 32; j++) x[32 + j] = j < 6 ? v1[j] : 0.0f;
    lc_quantize_row_q8_0_ref(x, r, 64);
    lc__quantize_row_q8_0_act(x, a, 64);
    CHECK_EQ_INT(r[0].d, 0x4000);
    CHECK_EQ_INT(a[0].d, 0x4000);
    CHECK_EQ_INT(r[1].d, 0x2d8b);
    CHECK_EQ_INT(a[1].d, 0x2d8b);
    for (int j = 0; j < 32; j++) {
        CHECKF(r[0].qs[j] == (j < 8 ? ref0[j] : 0), "ref block 0 q[%d] = %d", j, r[0].qs[j]);
        CHECKF(a[0].qs[j] == (j < 8 ? act0[j] : 0), "act block 0 q[%d] = %d", j, a[0].qs[j]);
        CHECKF(r[1].qs[j] == (j < 6 ? ref1[j] : 0), "ref block 1 q[%d] = %d", j, r[1].qs[j]);
        CHECKF(a[1].qs[j] == (j < 6 ? act1[j] : 0), "act block 1 q[%d] = %d", j, a[1].qs[j]);
    }
    /* an all-zero block: d = 0 and all q = 0 (GGML guards the division) */
    memset(x, 0, sizeof x);
    lc_quantize_row_q8_0_ref(x, r, 32);
    lc__quantize_row_q8_0_act(x, a, 32);
    CHECK(r[0].d == 0 && a[0].d == 0);
    for (int j = 0; j < 32; j++) CHECK(r[0].qs[j] == 0 && a[0].qs[j] == 0);
    /* dequantize: q * fp16(d), GGML's dequantize_row_q8_0 */
    float y[32];
    r[0].d = 0x3800; /* 0.5 */
    for (int j = 0; j < 32; j++) r[0].qs[j] = (int8_t)(j * 8 - 128);
    lc_dequantize_row(LC_TYPE_Q8_0, r, y, 32);
    for (int j = 0; j < 32; j++) CHECK(y[j] == (float)(j * 8 - 128) * 0.5f);
}

/* GGML's definition: d = amax/127 stored as fp16, q = round(x/d), so every element comes back within half a step,
** plus what storing d as fp16 moves the 127 steps: |x - q*fp16(d)| <= d/2 + 127*|d - fp16(d)| (+ f32 rounding). */
TEST(q8_0_roundtrip_within_ggml_bound) {
    const int n = 32 * 256;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    block_q8_0 *q = malloc(sizeof(block_q8_0) * (n / 32));
    for (int form = 0; form < 2; form++) {
        for (int s = -3; s <= 3; s++) {
            fill_random(x, n, powf(10.0f, (float)s));
            if (form == 0) lc_quantize_row_q8_0_ref(x, q, n);
            else lc__quantize_row_q8_0_act(x, q, n);
            lc_dequantize_row(LC_TYPE_Q8_0, q, y, n);
            for (int b = 0; b < n / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
                const double d = (double)amax / 127.0, d16 = lc_fp16_to_fp32(q[b].d);
                const double bound = d / 2 + 127.0 * fabs(d - d16) + 1e-6 * amax;
                for (int j = 0; j < 32; j++) {
                    CHECKF(abs(q[b].qs[j]) <= 127, "q out of range");
                    CHECKF(fabs((double)x[b * 32 + j] - y[b * 32 + j]) <= bound,
                           "form %d scale 1e%d block %d elem %d: %g -> %g (bound %g)", form, s, b, j,
                           (double)x[b * 32 + j], (double)y[b * 32 + j], bound);
                }
            }
        }
    }
    free(x), free(y), free(q);
}

/* ---- every variant against ref ---- */

TEST(from_float_bit_identical_across_variants) {
    const int n = 32 * 67;
    float *x = malloc(sizeof(float) * n);
    uint8_t *want = malloc((size_t)n * 4 + 64), *got = malloc((size_t)n * 4 + 64);
    const lc_kernels *ref = lc_kernels_by_name("ref");
    CHECK(ref);
    for (int trial = 0; trial < 4; trial++) {
        fill_random(x, n, trial == 0 ? 1e-3f : trial == 1 ? 1.0f : 300.0f);
        if (trial == 3) /* exact Q8_0 ties: blocks with amax 254 (1/d = 0.5) and odd integers */
            for (int i = 0; i < n; i++) x[i] = (i % 32 == 0) ? 254.0f : (float)(2 * (int)(rng_u64() % 127) - 125);
        const int types[] = {LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0};
        for (int ti = 0; ti < 3; ti++) {
            const int t = types[ti];
            const size_t rb = row_bytes(t, n);
            ref->from_float[t](x, want, n);
            for (int v = 1; v < N_VARIANTS; v++) {
                const lc_kernels *k = variant(v);
                if (!k) continue;
                memset(got, 0x5a, rb);
                k->from_float[t](x, got, n);
                CHECKF(memcmp(want, got, rb) == 0, "%s from_float[%s] differs from ref (trial %d)", k->name,
                       lc_type_name(t), trial);
            }
        }
    }
    free(x), free(want), free(got);
}

static const int float_sizes[] = {0,  1,  3,  7,  8,   9,   15,  16,  17,  31,   32,
                                  33, 63, 64, 65, 100, 127, 128, 255, 256, 1000, 4101};
static const int q8_sizes[] = {32, 64, 96, 128, 160, 224, 256, 288, 1184, 2048, 4096};

TEST(vec_dot_variants_against_ref) {
    const int max_n = 4101 + 64;
    float *wf = malloc(sizeof(float) * max_n), *xf = malloc(sizeof(float) * max_n);
    float *wd = malloc(sizeof(float) * max_n), *xd = malloc(sizeof(float) * max_n);
    uint8_t *w = malloc((size_t)max_n * 4), *x = malloc((size_t)max_n * 4);
    const lc_kernels *ref = lc_kernels_by_name("ref");
    const int types[] = {LC_TYPE_F32, LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0};
    for (int ti = 0; ti < 4; ti++) {
        const int t = types[ti];
        const bool q8 = t == LC_TYPE_Q8_0;
        const int *sizes = q8 ? q8_sizes : float_sizes;
        const int n_sizes =
            q8 ? (int)(sizeof q8_sizes / sizeof *q8_sizes) : (int)(sizeof float_sizes / sizeof *float_sizes);
        for (int si = 0; si < n_sizes; si++) {
            const int n = sizes[si];
            for (int rep = 0; rep < 3; rep++) {
                fill_random(wf, n, 0.5f);
                fill_random(xf, n, rep == 2 ? 100.0f : 1.0f);
                to_type(t, wf, w, n);
                if (q8 && rep == 1) /* the extremes a file may hold, incl. -128 */
                    for (int b = 0; b < n / 32; b++) ((block_q8_0 *)w)[b].qs[(b * 7) % 32] = (b & 1) ? -128 : 127;
                ref->from_float[t](xf, x, n); /* activations as the matmul converts them */
                lc_dequantize_row(t, w, wd, n);
                lc_dequantize_row(t, x, xd, n);
                double abs_sum;
                const double exact = dot_double(wd, xd, n, &abs_sum);
                float s_ref;
                ref->vec_dot[t](n, &s_ref, w, x);
                /* ref against double: float types round each product to f32 and sum in double; Q8_0 adds nb
                ** rounded block products in f32 */
                const double ref_bound = q8 ? ((double)n / 32 + 2) * 0x1p-24 * abs_sum + 1e-30
                                            : 0x1p-24 * (abs_sum + fabs(exact)) + 1e-30;
                CHECKF(fabs(s_ref - exact) <= ref_bound, "ref %s n=%d: %.9g vs exact %.9g", lc_type_name(t), n,
                       (double)s_ref, exact);
                for (int v = 1; v < N_VARIANTS; v++) {
                    const lc_kernels *k = variant(v);
                    if (!k) continue;
                    float s = NAN;
                    k->vec_dot[t](n, &s, w, x);
                    if (q8)
                        CHECKF(bits_f32(s) == bits_f32(s_ref), "%s vec_dot Q8_0 n=%d: %.9g, ref %.9g", k->name, n,
                               (double)s, (double)s_ref);
                    else
                        CHECKF(fabs(s - exact) <= float_bound(n, abs_sum), "%s vec_dot %s n=%d: %.9g, exact %.9g",
                               k->name, lc_type_name(t), n, (double)s, exact);
                }
            }
        }
    }
    free(wf), free(xf), free(wd), free(xd), free(w), free(x);
}

/* y += a * x: every variant gives the bits of the plain loop (a multiply, then an add, per element). */
TEST(vec_mad_bit_identical_to_scalar_loop) {
    enum { N = 300 };
    float x[N], y0[N], want[N], got[N];
    uint8_t xt[N * 4];
    const int types[] = {LC_TYPE_F32, LC_TYPE_F16, LC_TYPE_BF16};
    lc_kernels_get();
    for (int ti = 0; ti < 3; ti++) {
        const int t = types[ti];
        for (int n = 0; n <= N; n += (n < 40 ? 1 : 37)) {
            fill_random(x, N, 1.0f);
            fill_random(y0, N, 3.0f);
            to_type(t, x, xt, N);
            const float a = rng_normal();
            float xv[N];
            lc_dequantize_row(t, xt, xv, N);
            for (int i = 0; i < N; i++) {
                const float p = a * xv[i];
                want[i] = i < n ? y0[i] + p : y0[i];
            }
            for (int v = 0; v < N_VARIANTS; v++) {
                const lc_kernels *k = variant(v);
                if (!k) continue;
                memcpy(got, y0, sizeof got);
                k->vec_mad[t](n, got, xt, a);
                CHECKF(memcmp(got, want, sizeof got) == 0, "%s vec_mad %s n=%d differs from the scalar loop", k->name,
                       lc_type_name(t), n);
            }
        }
    }
}

/* ---- matmul ---- */

/* Runs prepare + matmul the way the forward pass does, with the nth "threads" executed one after the other. */
static void run_matmul(const lc_kernels *k, int t, const void *W, size_t wrb, int n_out, int n_in, const float *X,
                       int ldx, int n_tok, void *xq, float *Y, int ldy, int nth) {
    const void *in = xq;
    if (t == LC_TYPE_F32 && ldx == n_in) in = X;
    for (int ith = 0; ith < nth; ith++) lc_matmul_prepare_using(k, t, X, ldx, n_in, n_tok, (void *)in, ith, nth);
    for (int ith = 0; ith < nth; ith++) lc_matmul_using(k, t, W, wrb, n_out, n_in, in, n_tok, Y, ldy, ith, nth);
}

static int check_matmul_case(const lc_kernels *k, int t, int n_out, int n_in, int n_tok, int nth, bool pad, char *msg,
                             size_t cap) {
    const int ldx = pad ? n_in + 5 : n_in, ldy = pad ? n_out + 3 : n_out;
    /* rows need not be packed nor SIMD-aligned, only aligned to their element (4 bytes for F32, 2 for the rest) */
    const size_t wrb = row_bytes(t, n_in) + (pad ? (t == LC_TYPE_F32 ? 12 : 6) : 0);
    float *Wf = malloc(sizeof(float) * (size_t)n_out * n_in), *X = malloc(sizeof(float) * (size_t)n_tok * ldx);
    float *Y = malloc(sizeof(float) * (size_t)n_tok * ldy), *wrow = malloc(sizeof(float) * n_in);
    float *xrow = malloc(sizeof(float) * n_in);
    uint8_t *W = malloc(wrb * n_out + 64), *xq = malloc(lc_matmul_xq_bytes(t, n_in, n_tok) + 64);
    int fail = 0;
    fill_random(Wf, n_out * n_in, 0.1f);
    fill_random(X, n_tok * ldx, 1.0f);
    for (int r = 0; r < n_out; r++) to_type(t, Wf + (size_t)r * n_in, W + (size_t)r * wrb, n_in);
    for (size_t i = 0; i < (size_t)n_tok * ldy; i++) Y[i] = NAN;
    run_matmul(k, t, W, wrb, n_out, n_in, X, ldx, n_tok, xq, Y, ldy, nth);
    const lc_kernels *ref = lc_kernels_by_name("ref");
    uint8_t *xrq = malloc(row_bytes(t, n_in) + 64);
    for (int tok = 0; tok < n_tok && !fail; tok++) {
        const float *xt = X + (size_t)tok * ldx;
        ref->from_float[t](xt, xrq, n_in); /* the activations as the vec-dot type, independently converted */
        lc_dequantize_row(t, xrq, xrow, n_in);
        for (int r = 0; r < ldy && !fail; r++) {
            const float y = Y[(size_t)tok * ldy + r];
            if (r >= n_out) { /* padding between output rows stays untouched */
                if (!isnan(y)) fail = snprintf(msg, cap, "wrote past n_out at token %d row %d", tok, r);
                continue;
            }
            lc_dequantize_row(t, W + (size_t)r * wrb, wrow, n_in);
            double abs_sum;
            const double exact = dot_double(wrow, xrow, n_in, &abs_sum);
            if (isnan(y)) {
                fail = snprintf(msg, cap, "output token %d row %d never written", tok, r);
            } else if (t == LC_TYPE_Q8_0) {
                float s_ref;
                ref->vec_dot[t](n_in, &s_ref, W + (size_t)r * wrb, xrq);
                if (bits_f32(y) != bits_f32(s_ref))
                    fail =
                        snprintf(msg, cap, "token %d row %d: %.9g, ref vec_dot %.9g", tok, r, (double)y, (double)s_ref);
                else if (fabs(y - exact) > ((double)n_in / 32 + 2) * 0x1p-24 * abs_sum + 1e-30)
                    fail = snprintf(msg, cap, "token %d row %d: %.9g vs exact %.9g", tok, r, (double)y, exact);
            } else if (fabs(y - exact) > float_bound(n_in, abs_sum)) {
                fail = snprintf(msg, cap, "token %d row %d: %.9g vs exact %.9g (bound %.3g)", tok, r, (double)y, exact,
                                float_bound(n_in, abs_sum));
            }
            if (fail) break;
            /* against the f32 activations before conversion: what rounding x to the vec-dot type may cost.
            ** F16: |x - fp16(x)| <= 2^-11 |x|; BF16: 2^-8 |x|; Q8_0 block b: d_b (1/2 + 127 * 2^-11) per element. */
            double exact32 = 0, slack = 0;
            float amax = 0;
            for (int i = 0; i < n_in; i++) {
                exact32 += (double)wrow[i] * xt[i];
                const double aw = fabs((double)wrow[i]);
                if (t == LC_TYPE_F16) slack += aw * fabs(xt[i]) * 0x1p-11;
                else if (t == LC_TYPE_BF16) slack += aw * fabs(xt[i]) * 0x1p-8;
                else if (t == LC_TYPE_Q8_0) {
                    if (i % 32 == 0) {
                        amax = 0;
                        for (int j = i; j < i + 32; j++) amax = fmaxf(amax, fabsf(xt[j]));
                    }
                    slack += aw * (amax / 127.0) * (0.5 + 127 * 0x1p-11);
                }
            }
            const double b32 = slack + 2 * float_bound(n_in, abs_sum) + 1e-6 * abs_sum;
            if (fabs(y - exact32) > b32)
                fail = snprintf(msg, cap, "token %d row %d: %.9g vs f32 product %.9g (bound %.3g)", tok, r, (double)y,
                                exact32, b32);
        }
    }
    free(Wf), free(X), free(Y), free(wrow), free(xrow), free(W), free(xq), free(xrq);
    return fail;
}

TEST(matmul_all_variants_against_double_product) {
    const int types[] = {LC_TYPE_F32, LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0};
    int n_toks[11];
    for (int i = 0; i < 9; i++) n_toks[i] = i + 1;
    n_toks[9] = 37;
    n_toks[10] = 16;
    char msg[512];
    int n_cases = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        const lc_kernels *k = variant(v);
        if (!k) continue;
        for (int ti = 0; ti < 4; ti++) {
            const int t = types[ti];
            const int n_ins[] = {t == LC_TYPE_Q8_0 ? 64 : 45, 96};
            for (int ii = 0; ii < 2; ii++)
                for (int ni = 0; ni < 11; ni++)
                    for (int nth = 1; nth <= 3; nth++) {
                        const int n_out = (ni + nth) % 2 ? 37 : 70;
                        const bool pad = (ni + ii) % 3 == 1;
                        n_cases++;
                        if (check_matmul_case(k, t, n_out, n_ins[ii], n_toks[ni], nth, pad, msg, sizeof msg))
                            FAILF("%s %s n_out %d n_in %d n_tok %d nth %d%s: %s", k->name, lc_type_name(t), n_out,
                                  n_ins[ii], n_toks[ni], nth, pad ? " (padded strides)" : "", msg);
                    }
            /* several W panels per thread (rows of 16 KiB: 32 rows per 512 KiB panel), several 4096-element chunks */
            if (!quick) {
                const int n_in = t == LC_TYPE_F32 ? 4096 : 8192;
                for (int nth = 1; nth <= 2; nth++)
                    if (check_matmul_case(k, t, 75, n_in, 11, nth, false, msg, sizeof msg))
                        FAILF("%s %s panels, nth %d: %s", k->name, lc_type_name(t), nth, msg);
            }
        }
    }
    printf("        (%d matmul cases per variant list)\n", n_cases);
}

/* The r8 layout (kernels.h) of W: lc_matmul_r8 over 3 threads gives Y (the rows' product of the batch) bit for bit,
** for the batch and for its last token alone (the GEMV); every row reads back as stored. Returns the first bad row
** or -1. */
static int check_r8(const lc_kernels *k, int t, const uint8_t *W, size_t wrb, int n_out, int n_in, const float *X,
                    int n_tok, void *xq, const float *Y, int *bad_tok, const char **what) {
    uint8_t *w8 = malloc(wrb * n_out);
    float *Y8 = malloc(sizeof(float) * n_tok * n_out), *a = malloc(sizeof(float) * n_in), *b = malloc(sizeof(float) * n_in);
    memcpy(w8, W, wrb * n_out);
    int bad = -1;
    *what = "lc__r8_pack";
    if (!lc__r8_pack(t, w8, wrb, n_out)) bad = 0;
    for (int pass = 0; pass < 2 && bad < 0; pass++) {
        const int nt = pass ? 1 : n_tok, t0 = pass ? n_tok - 1 : 0; /* pass 1: the last token alone */
        const float *x = X + (size_t)t0 * n_in;
        for (int ith = 0; ith < 3; ith++) lc_matmul_prepare_using(k, t, x, n_in, n_in, nt, xq, ith, 3);
        for (int ith = 0; ith < 3; ith++) lc_matmul_r8_using(k, t, w8, wrb, n_out, n_in, xq, nt, Y8, n_out, ith, 3);
        *what = pass ? "the r8 GEMV and the rows" : "the r8 GEMM and the rows";
        for (int i = 0; i < nt * n_out && bad < 0; i++)
            if (bits_f32(Y8[i]) != bits_f32(Y[(size_t)t0 * n_out + i])) bad = i % n_out, *bad_tok = t0 + i / n_out;
    }
    for (int r = 0; r < n_out && bad < 0; r++) {
        lc_dequantize_row(t, W + (size_t)r * wrb, a, n_in);
        lc__r8_dequantize(t, w8, wrb, n_out, r, 0, n_in, b);
        if (memcmp(a, b, sizeof(float) * n_in)) bad = r, *bad_tok = 0, *what = "lc__r8_dequantize and the stored row";
        /* a slice: across steps and phases of the float layout, whole blocks of the others */
        const int blk = (int)lc_type_traits_of(t)->blck_size, big = n_in >= 100 * blk;
        const int c0 = big ? (blk == 1 ? 37 : blk) : 0, cn = big ? (blk == 1 ? 61 : 2 * blk) : n_in;
        lc__r8_dequantize(t, w8, wrb, n_out, r, c0, cn, b);
        if (bad < 0 && memcmp(a + c0, b, sizeof(float) * cn))
            bad = r, *bad_tok = 0, *what = "lc__r8_dequantize of a slice and the stored row";
    }
    free(w8), free(Y8), free(a), free(b);
    return bad;
}

/* Batch invariance: a token's outputs do not depend on the batch. GEMM (n_tok > 1), GEMV (n_tok == 1) and vec_dot
** give bit-identical numbers for the same (row, token) within a variant, for every type (kernels.h: one summation
** order per variant), also across the 4096-element chunks the float kernels sum in. */
TEST(matmul_batch_invariant) {
    const int types[] = {LC_TYPE_F32, LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0};
    /* The VNNI Q8_0 GEMM's paths: 21 tokens, a 16-token group and 5 in 8-token lanes; 3 (4-token lanes), 7 and 6
    ** (8-token lanes), 12 (16-token lanes); 36: 16 + 16 + 4; 18: 16 and 2 row by row; rows of 133 and 65 blocks:
    ** more than the lanes pack at a time; 16416: more blocks than the row-by-row kernel prepares at a time. The float
    ** types also: 1003 and 4139 (8-element steps and single elements after the 32-element steps, in one chunk and
    ** after a whole one; 14 and 25 tokens: more than one group of tokens). */
    const int n_ins[] = {256, 256, 256, 4256, 4256, 2080, 16416, 16416, 1003, 4139};
    const int n_toks[] = {21, 3, 7, 6, 12, 36, 18, 2, 14, 25};
    const int n_cases = (int)(sizeof n_ins / sizeof n_ins[0]);
    const int n_out = 53;
    for (int v = 0; v < N_VARIANTS; v++) {
        const lc_kernels *k = variant(v);
        if (!k) continue;
        for (int ti = 0; ti < 4; ti++)
            for (int ii = 0; ii < (quick ? 3 : n_cases); ii++) {
                const int t = types[ti], n_in = n_ins[ii], n_tok = n_toks[ii];
                if (n_in % lc_type_traits_of(t)->blck_size) continue;
                const size_t wrb = row_bytes(t, n_in), xrb = row_bytes(t, n_in);
                float *Wf = malloc(sizeof(float) * n_out * n_in), *X = malloc(sizeof(float) * n_tok * n_in);
                float *Y = malloc(sizeof(float) * n_tok * n_out), *y1 = malloc(sizeof(float) * n_out);
                uint8_t *W = malloc(wrb * n_out), *xq = malloc(lc_matmul_xq_bytes(t, n_in, n_tok));
                uint8_t *xr = malloc(xrb);
                fill_random(Wf, n_out * n_in, 0.1f);
                fill_random(X, n_tok * n_in, 1.0f);
                for (int r = 0; r < n_out; r++) to_type(t, Wf + (size_t)r * n_in, W + (size_t)r * wrb, n_in);
                if (t == LC_TYPE_Q8_0) { /* the integer extremes: rows of -128 (no quantizer writes it, a file may)
                                        ** and of +127, a row alternating them, a token whose quants are all +127 */
                    for (int r = 0; r < 3; r++)
                        for (int b = 0; b < n_in / QK8_0; b++)
                            for (int i = 0; i < QK8_0; i++)
                                ((block_q8_0 *)(W + (size_t)r * wrb))[b].qs[i] =
                                    (int8_t)(r == 0 ? -128 : r == 1 ? 127 : i % 2 ? 127 : -128);
                    for (int i = 0; i < n_in; i++) X[i] = 0.75f;
                }
                run_matmul(k, t, W, wrb, n_out, n_in, X, n_in, n_tok, xq, Y, n_out, 2);
                int bad = -1, bad_tok = -1;
                const char *what = "";
                for (int tok = 0; tok < n_tok && bad < 0; tok++) {
                    run_matmul(k, t, W, wrb, n_out, n_in, X + (size_t)tok * n_in, n_in, 1, xq, y1, n_out, 1);
                    k->from_float[t](X + (size_t)tok * n_in, xr, n_in);
                    for (int r = 0; r < n_out && bad < 0; r++) {
                        float s;
                        k->vec_dot[t](n_in, &s, W + (size_t)r * wrb,
                                      t == LC_TYPE_F32 ? (const void *)(X + (size_t)tok * n_in) : xr);
                        const float a = Y[(size_t)tok * n_out + r], b = y1[r];
                        if (bits_f32(a) != bits_f32(b)) bad = r, bad_tok = tok, what = "prefill vs decode";
                        else if (bits_f32(b) != bits_f32(s)) bad = r, bad_tok = tok, what = "decode vs vec_dot";
                        else if (t == LC_TYPE_Q8_0) {
                            float s_ref;
                            lc__vec_dot_q8_0_ref(n_in, &s_ref, W + (size_t)r * wrb, xr);
                            if (bits_f32(s) != bits_f32(s_ref)) bad = r, bad_tok = tok, what = "vec_dot vs ref.c";
                        }
                    }
                }
                if (bad < 0 && k->gemm_r8[t] && lc__r8_packs(t, n_in)) /* W repacked (kernels.h): the same bits */
                    bad = check_r8(k, t, W, wrb, n_out, n_in, X, n_tok, xq, Y, &bad_tok, &what);
                free(Wf), free(X), free(Y), free(y1), free(W), free(xq), free(xr);
                CHECKF(bad < 0, "%s %s n_in %d, %d tokens: %s differ at token %d row %d", k->name, lc_type_name(t), n_in,
                       n_tok, what, bad_tok, bad);
            }
    }
}

/* The float r8 layout (kernels.h) over several groups of 32 rows split over 3 threads, a last partial group, whole
** pieces (LC_R8F_PIECE: 2048 for F16, 512 for BF16) and shorter ones (at the end of a row, and of a chunk: 3072),
** two 4096-element chunks (matmul_batch_invariant has five), the GEMV and token counts
** across the 3-token tiles and 12-token groups: Y bit for bit as the rows give it, every row read back whole and in
** a slice. Rows whose length is not a multiple of 32 are refused and stay as stored. */
TEST(matmul_r8_float_layout) {
    const int shapes[][3] = {{2048, 100, 8}, {544, 64, 1}, {96, 37, 2}, {4256, 96, 3},
                             {32, 33, 5},    {8192, 70, 13}, {1024, 160, 25}, {3072, 40, 9}};
    const int types[] = {LC_TYPE_F16, LC_TYPE_BF16};
    int n_cases = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        const lc_kernels *k = variant(v);
        if (!k) continue;
        for (int ti = 0; ti < 2; ti++) {
            const int t = types[ti];
            if (!k->gemm_r8[t]) continue;
            CHECK(lc__r8_packs(t, 4096) && !lc__r8_packs(t, 1003) && !lc__r8_packs(t, 48) && lc__r8_rows(t) == 32);
            for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
                const int n_in = shapes[si][0], n_out = shapes[si][1], n_tok = shapes[si][2];
                if (quick && n_in > 4096) continue;
                const size_t wrb = row_bytes(t, n_in);
                float *Wf = malloc(sizeof(float) * n_out * n_in), *X = malloc(sizeof(float) * n_tok * n_in);
                float *Y = malloc(sizeof(float) * n_tok * n_out);
                uint8_t *W = malloc(wrb * n_out), *xq = malloc(lc_matmul_xq_bytes(t, n_in, n_tok));
                fill_random(Wf, n_out * n_in, 0.1f);
                fill_random(X, n_tok * n_in, 1.0f);
                for (int r = 0; r < n_out; r++) to_type(t, Wf + (size_t)r * n_in, W + (size_t)r * wrb, n_in);
                run_matmul(k, t, W, wrb, n_out, n_in, X, n_in, n_tok, xq, Y, n_out, 2);
                int bad_tok = -1;
                const char *what = "";
                const int bad = check_r8(k, t, W, wrb, n_out, n_in, X, n_tok, xq, Y, &bad_tok, &what);
                CHECKF(bad < 0, "%s %s %d x %d, %d tokens: %s differ at token %d row %d", k->name, lc_type_name(t),
                       n_out, n_in, n_tok, what, bad_tok, bad);
                n_cases++;
                free(Wf), free(X), free(Y), free(W), free(xq);
            }
            uint8_t w[2 * 40 * 33];
            memset(w, 0x3c, sizeof w);
            CHECK(!lc__r8_pack(t, w, 2 * 40, 33)); /* 40 elements a row: not a multiple of 32 */
        }
    }
    printf("        (%d float r8 cases)\n", n_cases);
}

TEST(dispatch_picks_a_runnable_variant) {
    const lc_kernels *k = lc_kernels_get();
    CHECK(k && k->name);
    CHECK(strcmp(lc_cpu_variant(), k->name) == 0);
    CHECK(lc_kernels_by_name(k->name) == k || getenv("LLAMAC_CPU"));
    CHECK(lc_kernels_by_name("ref") != NULL);
    CHECK(lc_kernels_by_name("sse9") == NULL);
    CHECK(lc_kernels_by_name(NULL) == NULL);
    const lc_cpu_features *f = lc__cpu();
#if defined(__x86_64__)
    CHECK(lc_kernels_by_name("neon") == NULL);
    CHECK((lc_kernels_by_name("avx2") != NULL) == (f->avx2 && f->fma && f->f16c));
    if (!getenv("LLAMAC_CPU") && f->avx2 && f->fma && f->f16c) CHECK(strcmp(k->name, "ref") != 0);
#elif defined(__aarch64__)
    CHECK(lc_kernels_by_name("avx2") == NULL && lc_kernels_by_name("avx512") == NULL);
    CHECK(f->neon);
#endif
    for (int t = 0; t < LC_TYPE_COUNT; t++) {
        const int vdt = lc_vec_dot_type(t);
        const bool sup = lc_type_traits_of(t)->supported; /* every weight type the table says we compute with */
        CHECKF((vdt >= 0) == sup, "vec_dot_type(%d) = %d", t, vdt);
        if (vdt >= 0)
            for (int v = 0; v < N_VARIANTS; v++)
                if (variant(v)) CHECK(variant(v)->vec_dot[t] && variant(v)->from_float[vdt]);
    }
    /* the activation types GGML's CPU backend pairs with each weight type (ggml-cpu.c type_traits_cpu) */
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_Q4_0), LC_TYPE_Q8_0);
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_IQ4_NL), LC_TYPE_Q8_0);
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_Q4_1), LC_TYPE_Q8_1);
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_Q5_1), LC_TYPE_Q8_1);
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_Q2_K), LC_TYPE_Q8_K);
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_Q6_K), LC_TYPE_Q8_K);
    CHECK_EQ_INT(lc_vec_dot_type(LC_TYPE_IQ4_XS), LC_TYPE_Q8_K);
    printf("        (variant %s; available:", k->name);
    for (int v = 0; v < N_VARIANTS; v++)
        if (variant(v)) printf(" %s", variant_names[v]);
    printf(")\n");
}

int main(void) {
    quick = getenv("LLAMAC_QUICK") && *getenv("LLAMAC_QUICK") && strcmp(getenv("LLAMAC_QUICK"), "0") != 0;
    RUN(dispatch_picks_a_runnable_variant);
    RUN(fp16_rounding_known_bit_patterns);
    RUN(bf16_rounding_known_bit_patterns);
    RUN(fp16_bf16_widening_known_values);
    RUN(q8_0_quantization_hand_derived);
    RUN(q8_0_roundtrip_within_ggml_bound);
    RUN(from_float_bit_identical_across_variants);
    RUN(vec_dot_variants_against_ref);
    RUN(vec_mad_bit_identical_to_scalar_loop);
    RUN(matmul_all_variants_against_double_product);
    RUN(matmul_batch_invariant);
    RUN(matmul_r8_float_layout);
    return TEST_SUMMARY();
}
