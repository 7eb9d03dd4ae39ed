/* test_quants.c - the reference block formats of quants.h against references nobody here wrote.
**
** 1. llama.cpp's files: every tensor of ../shared/data/quant/quant-*.gguf in one of our types is re-quantized from the
**    F32 base model with our quantizer and compared block by block (expected: every block bit-identical); the RMSE of
**    our dequantized weights vs the F32 originals is printed next to llama.cpp's.
** 2. llama.cpp itself (libggml-base.so / libggml-cpu-haswell.so of the oracle, via dlopen; skipped when absent):
**    quantize_* on random rows of awkward distributions (ties, zero groups, tiny and one-signed values) byte for
**    byte; dequantize_row_* bit for bit; the CPU backend's Q8_1/Q8_K activation quantizers byte for byte; its dot
**    products within the float bound below.
** 3. Dequantization of llama.cpp's blocks (and of random blocks) vs a double-precision decoding written here from
**    the layout description in ggml-common.h, and dot products vs dequantize-then-dot in double:
**    |dot - exact| <= (n_blocks + 8) * 2^-24 * sum_i |x_i| (|w_i| + mb_i) where mb_i bounds the min term of i's
**    block (0 for symmetric types); for Q8_1 activations the fp16 rounding of s is added exactly.
*/
#include "../src/gguf/gguf.h"
#include "../src/quant/quants.h"
#include "harness.h"

#include <dlfcn.h>
#include <stdint.h>

typedef struct type_case {
    int type;
    const char *name;
    int blck, bytes;
} type_case;

static const type_case types[] = {
    {LC_TYPE_Q4_0, "Q4_0", 32, 18},   {LC_TYPE_Q4_1, "Q4_1", 32, 20},     {LC_TYPE_Q5_0, "Q5_0", 32, 22},
    {LC_TYPE_Q5_1, "Q5_1", 32, 24},   {LC_TYPE_Q2_K, "Q2_K", 256, 84},    {LC_TYPE_Q3_K, "Q3_K", 256, 110},
    {LC_TYPE_Q4_K, "Q4_K", 256, 144}, {LC_TYPE_Q5_K, "Q5_K", 256, 176},   {LC_TYPE_Q6_K, "Q6_K", 256, 210},
    {LC_TYPE_IQ4_NL, "IQ4_NL", 32, 18}, {LC_TYPE_IQ4_XS, "IQ4_XS", 256, 136},
};
#define N_TYPES ((int)(sizeof types / sizeof *types))

static bool quick(void) {
    const char *q = getenv("LLAMAC_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

/* ---- deterministic random numbers ---- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (double)(rng_u64() >> 11) * 0x1p-53; }
static float rng_gauss(void) {
    double u = rng_unif(), v = rng_unif();
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

/* Rows of awkward data for the quantizers. kind: 0 N(0,1), 1 N(0,0.02), 2 N(0,1) + 1% outliers x30, 3 U[0,1),
** 4 -U[0,1), 5 N(0,1) with random zeroed groups of 16/32 and whole zero blocks, 6 values k/4 for k in -8..8 (exact
** ties everywhere), 7 magnitudes from 1e-20 to 1e2 per group, 8 one value repeated per group, 9 N(0,1) * 1e-6,
** 10 half-integers k + 1/2 with 127 (or -127) leading each group of 32: scales of exactly 1, so the 8-bit
** activation quantizers meet ties at every odd and even integer. */
#define N_KINDS 11
static void fill_kind(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = rng_gauss(); break;
        case 1: x[i] = 0.02f * rng_gauss(); break;
        case 2: x[i] = rng_gauss() * (rng_unif() < 0.01 ? 30.f : 1.f); break;
        case 3: x[i] = (float)rng_unif(); break;
        case 4: x[i] = -(float)rng_unif(); break;
        case 5: x[i] = rng_gauss(); break;
        case 6: x[i] = (float)((int)(rng_u64() % 17) - 8) / 4.f; break;
        case 7: x[i] = rng_gauss(); break;
        case 8: x[i] = 0; break;
        case 9: x[i] = 1e-6f * rng_gauss(); break;
        default: x[i] = i % 32 ? (float)((int)(rng_u64() % 41) - 20) + 0.5f : (rng_u64() & 1 ? 127.f : -127.f); break;
        }
    }
    if (kind == 5) {
        for (int64_t g = 0; g < n / 16; g++)
            if (rng_unif() < 0.2) memset(x + 16 * g, 0, 16 * sizeof *x);
        for (int64_t b = 0; b < n / 256; b++)
            if (rng_unif() < 0.2) memset(x + 256 * b, 0, 256 * sizeof *x);
    } else if (kind == 7) {
        for (int64_t g = 0; g < n / 16; g++) {
            float s = (float)pow(10.0, -20.0 + 22.0 * rng_unif());
            for (int i = 0; i < 16; i++) x[16 * g + i] *= s;
        }
    } else if (kind == 8) {
        for (int64_t g = 0; g < n / 16; g++) {
            float v = rng_gauss();
            for (int i = 0; i < 16; i++) x[16 * g + i] = v;
        }
    }
}

/* ---- double-precision decoding of element i of one block, from the layout description (ggml-common.h) ----
** Returns the value; *minpart gets the magnitude of the block's min term (0 for symmetric formats). */
static double h2d(const uint8_t *p) { return (double)lc_fp16_to_fp32((lc_fp16)(p[0] | p[1] << 8)); }

static const int iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The nibble of element i in a 32-element block stored as 16 bytes (i < 16: low nibbles, else high). */
static int nib32(const uint8_t *qs, int i) { return i < 16 ? qs[i] & 15 : qs[i - 16] >> 4; }

static double decode_elem(int type, const uint8_t *blk, int i, double *minpart) {
    *minpart = 0;
    switch (type) {
    case LC_TYPE_Q4_0: return h2d(blk) * (nib32(blk + 2, i) - 8);
    case LC_TYPE_Q4_1: *minpart = fabs(h2d(blk + 2)); return h2d(blk) * nib32(blk + 4, i) + h2d(blk + 2);
    case LC_TYPE_Q5_0: {
        int hb = (blk[2 + i / 8] >> (i % 8)) & 1;
        return h2d(blk) * ((nib32(blk + 6, i) + 16 * hb) - 16);
    }
    case LC_TYPE_Q5_1: {
        int hb = (blk[4 + i / 8] >> (i % 8)) & 1;
        *minpart = fabs(h2d(blk + 2));
        return h2d(blk) * (nib32(blk + 8, i) + 16 * hb) + h2d(blk + 2);
    }
    case LC_TYPE_IQ4_NL: return h2d(blk) * iq4_levels[nib32(blk + 2, i)];
    case LC_TYPE_Q2_K: { /* scales[16] qs[64] d dmin */
        int sc = blk[i / 16], half = i / 128, r = i % 128, shift = 2 * (r / 32);
        int q = (blk[16 + 32 * half + r % 32] >> shift) & 3;
        double d = h2d(blk + 80), dmin = h2d(blk + 82);
        *minpart = fabs(dmin) * 15;
        return d * (sc & 15) * q - dmin * (sc >> 4);
    }
    case LC_TYPE_Q3_K: { /* hmask[32] qs[64] scales[12] d */
        int g = i / 16, half = i / 128, r = i % 128;
        const uint8_t *s = blk + 96;
        int s6 = (g < 8 ? s[g] & 15 : s[g - 8] >> 4) | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
        int q = (blk[32 + 32 * half + r % 32] >> (2 * (r / 32))) & 3;
        int hi = (blk[i % 32] >> (i / 32)) & 1;
        return h2d(blk + 108) * (s6 - 32) * (q + 4 * hi - 4);
    }
    case LC_TYPE_Q4_K:
    case LC_TYPE_Q5_K: { /* d dmin scales[12] (qh[32]) qs[128] */
        int g = i / 32;
        const uint8_t *s = blk + 4;
        int sc = g < 4 ? s[g] & 63 : (s[g + 4] & 15) | ((s[g - 4] >> 6) << 4);
        int m = g < 4 ? s[g + 4] & 63 : (s[g + 4] >> 4) | ((s[g] >> 6) << 4);
        const uint8_t *qs = blk + (type == LC_TYPE_Q4_K ? 16 : 48);
        int q = (i % 64) < 32 ? qs[32 * (i / 64) + i % 32] & 15 : qs[32 * (i / 64) + i % 32] >> 4;
        if (type == LC_TYPE_Q5_K) q += 16 * ((blk[16 + i % 32] >> (i / 32)) & 1);
        double d = h2d(blk), dmin = h2d(blk + 2);
        *minpart = fabs(dmin) * 63;
        return d * sc * q - dmin * m;
    }
    case LC_TYPE_Q6_K: { /* ql[128] qh[64] scales[16] d */
        int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
        uint8_t lb = blk[64 * half + 32 * (quarter % 2) + l];
        int lo = quarter < 2 ? lb & 15 : lb >> 4;
        int hi = (blk[128 + 32 * half + l] >> (2 * quarter)) & 3;
        return h2d(blk + 208) * (int8_t)blk[192 + i / 16] * ((lo | hi << 4) - 32);
    }
    case LC_TYPE_IQ4_XS: { /* d scales_h(u16) scales_l[4] qs[128] */
        int g = i / 32, sh = blk[2] | blk[3] << 8;
        int s6 = ((blk[4 + g / 2] >> (4 * (g % 2))) & 15) | (((sh >> (2 * g)) & 3) << 4);
        return h2d(blk) * (s6 - 32) * iq4_levels[nib32(blk + 8 + 16 * g, i % 32)];
    }
    }
    return NAN;
}

static const type_case *case_of(int type) {
    for (int t = 0; t < N_TYPES; t++)
        if (types[t].type == type) return &types[t];
    return NULL;
}

/* ../shared/data/quant when it holds the base model, else NULL (the tests that need it skip). */
static const char *quant_data_dir(void) {
    static char buf[4096];
    const char *dir = th_shared_dir();
    if (!dir) return NULL;
    snprintf(buf, sizeof buf, "%.3000s/quant/base-F32.gguf", dir);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    snprintf(buf, sizeof buf, "%.3000s", dir);
    return buf;
}
#define NEED_QUANT_DATA(dir)                                                                                       \
    const char *dir = quant_data_dir();                                                                            \
    if (!dir) SKIP("../shared/data/quant/base-F32.gguf not found (set LLAMAC_SHARED_DATA)")

/* ---- 0. layouts ---- */
TEST(layouts_match_ggml) {
    /* offsets of the fields (ggml-common.h; fp16 fields where GGUF puts them) */
    CHECK_EQ_INT(offsetof(block_q2_K, d), 80);
    CHECK_EQ_INT(offsetof(block_q2_K, dmin), 82);
    CHECK_EQ_INT(offsetof(block_q3_K, scales), 96);
    CHECK_EQ_INT(offsetof(block_q3_K, d), 108);
    CHECK_EQ_INT(offsetof(block_q4_K, scales), 4);
    CHECK_EQ_INT(offsetof(block_q4_K, qs), 16);
    CHECK_EQ_INT(offsetof(block_q5_K, qh), 16);
    CHECK_EQ_INT(offsetof(block_q5_K, qs), 48);
    CHECK_EQ_INT(offsetof(block_q6_K, qh), 128);
    CHECK_EQ_INT(offsetof(block_q6_K, scales), 192);
    CHECK_EQ_INT(offsetof(block_q6_K, d), 208);
    CHECK_EQ_INT(offsetof(block_q8_K, bsums), 260);
    CHECK_EQ_INT(offsetof(block_iq4_xs, scales_l), 4);
    CHECK_EQ_INT(offsetof(block_iq4_xs, qs), 8);
    CHECK_EQ_INT(offsetof(block_q5_0, qs), 6);
    CHECK_EQ_INT(offsetof(block_q5_1, qs), 8);
    CHECK_EQ_INT(offsetof(block_q8_1, qs), 4);
    for (int t = 0; t < N_TYPES; t++) {
        const lc_type_traits *tr = lc_type_traits_of(types[t].type);
        CHECK_EQ_INT(tr->blck_size, types[t].blck);
        CHECK_EQ_INT(tr->type_size, types[t].bytes);
        CHECK(lc__quant_ref(types[t].type) != NULL);
    }
    CHECK(lc__quant_ref(LC_TYPE_Q8_0) == NULL && lc__quant_ref(LC_TYPE_F32) == NULL && lc__quant_ref(-1) == NULL);
    float f[32];
    CHECK(!lc__quant_dequantize_row(LC_TYPE_F16, f, f, 32));
    /* vec-dot types as ggml-cpu.c's type_traits_cpu */
    CHECK_EQ_INT(lc__quant_ref(LC_TYPE_Q4_0)->vec_dot_type, LC_TYPE_Q8_0);
    CHECK_EQ_INT(lc__quant_ref(LC_TYPE_Q4_1)->vec_dot_type, LC_TYPE_Q8_1);
    CHECK_EQ_INT(lc__quant_ref(LC_TYPE_Q5_1)->vec_dot_type, LC_TYPE_Q8_1);
    CHECK_EQ_INT(lc__quant_ref(LC_TYPE_IQ4_NL)->vec_dot_type, LC_TYPE_Q8_0);
    CHECK_EQ_INT(lc__quant_ref(LC_TYPE_IQ4_XS)->vec_dot_type, LC_TYPE_Q8_K);
    CHECK_EQ_INT(lc__quant_ref(LC_TYPE_Q3_K)->vec_dot_type, LC_TYPE_Q8_K);
}

/* ---- 1. llama.cpp's files ---- */
typedef struct type_stats {
    uint64_t blocks, identical, n;
    double se_ours, se_llama, se_ours_vs_llama;
} type_stats;

static const char *quant_files[] = {"Q4_0",   "Q4_1",   "Q5_0",   "Q5_1",   "Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L",
                                    "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",   "IQ4_NL", "IQ4_XS"};

TEST(requantize_llamacpp_files) {
    NEED_QUANT_DATA(dir);
    char path[4096];
    snprintf(path, sizeof path, "%.3000s/quant/base-F32.gguf", dir);
    gguf_file *base = NULL;
    CHECKF(gguf_open(path, &base) == 0, "%.800s: %s", path, lc_last_error());
    type_stats st[N_TYPES];
    memset(st, 0, sizeof st);
    /* (tensor, type) pairs already compared: the same tensor at the same type recurs in several files */
    char seen[512][80];
    int n_seen = 0, n_files = 0;
    for (size_t fi = 0; fi < sizeof quant_files / sizeof *quant_files; fi++) {
        snprintf(path, sizeof path, "%.3000s/quant/quant-%s.gguf", dir, quant_files[fi]);
        gguf_file *q = NULL;
        CHECKF(gguf_open(path, &q) == 0, "%.800s: %s", path, lc_last_error());
        n_files++;
        for (uint64_t ti = 0; ti < q->n_tensors; ti++) {
            const gguf_tensor *tq = &q->tensors[ti];
            const type_case *tc = case_of((int)tq->type);
            if (!tc) continue;
            char key[80];
            snprintf(key, sizeof key, "%s/%d", tq->name, tc->type);
            bool dup = false;
            for (int s = 0; s < n_seen && !dup; s++) dup = strcmp(seen[s], key) == 0;
            if (dup) continue;
            if (n_seen < 512) snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
            const gguf_tensor *tb = gguf_find_tensor(base, tq->name);
            CHECKF(tb && tb->type == LC_TYPE_F32, "%s missing or not F32 in the base", tq->name);
            CHECK(memcmp(tb->ne, tq->ne, sizeof tb->ne) == 0);
            const int64_t n_per_row = (int64_t)tq->ne[0], n_rows = (int64_t)(tq->ne[1] * tq->ne[2] * tq->ne[3]);
            const size_t row_bytes = (size_t)(n_per_row / tc->blck * tc->bytes);
            CHECK_EQ_INT(row_bytes * (size_t)n_rows, tq->size);
            uint8_t *ours = malloc(row_bytes);
            float *dq_ours = malloc((size_t)n_per_row * sizeof(float)), *dq_ll = malloc((size_t)n_per_row * sizeof(float));
            type_stats *s = &st[tc - types];
            for (int64_t r = 0; r < n_rows; r++) {
                const float *x = (const float *)tb->data + r * n_per_row;
                const uint8_t *ll = (const uint8_t *)tq->data + (size_t)r * row_bytes;
                CHECK(lc__quant_quantize_row(tc->type, x, ours, n_per_row));
                for (int64_t b = 0; b < n_per_row / tc->blck; b++) {
                    s->blocks++;
                    s->identical += memcmp(ours + b * tc->bytes, ll + b * tc->bytes, (size_t)tc->bytes) == 0;
                }
                lc__quant_dequantize_row(tc->type, ours, dq_ours, n_per_row);
                lc__quant_dequantize_row(tc->type, ll, dq_ll, n_per_row);
                for (int64_t i = 0; i < n_per_row; i++) {
                    s->se_ours += ((double)dq_ours[i] - x[i]) * ((double)dq_ours[i] - x[i]);
                    s->se_llama += ((double)dq_ll[i] - x[i]) * ((double)dq_ll[i] - x[i]);
                    s->se_ours_vs_llama += ((double)dq_ours[i] - dq_ll[i]) * ((double)dq_ours[i] - dq_ll[i]);
                }
                s->n += (uint64_t)n_per_row;
            }
            free(ours);
            free(dq_ours);
            free(dq_ll);
        }
        gguf_close(q);
    }
    gguf_close(base);
    printf("        type     blocks  bit-identical   RMSE ours     RMSE llama.cpp  (vs base-F32, %d files)\n", n_files);
    for (int t = 0; t < N_TYPES; t++) {
        const type_stats *s = &st[t];
        if (!s->blocks) continue;
        printf("        %-7s %7llu  %7llu (%5.1f%%)  %.6e  %.6e\n", types[t].name, (unsigned long long)s->blocks,
               (unsigned long long)s->identical, 100.0 * (double)s->identical / (double)s->blocks,
               sqrt(s->se_ours / (double)s->n), sqrt(s->se_llama / (double)s->n));
    }
    for (int t = 0; t < N_TYPES; t++) {
        const type_stats *s = &st[t];
        CHECKF(s->blocks > 0, "no %s tensor found in the quant files", types[t].name);
        CHECKF(s->identical == s->blocks, "%s: %llu of %llu blocks differ from llama.cpp's", types[t].name,
               (unsigned long long)(s->blocks - s->identical), (unsigned long long)s->blocks);
        CHECKF(s->se_ours <= s->se_llama * (1 + 1e-9), "%s: RMSE worse than llama.cpp's", types[t].name);
    }
}

/* Dequantization of llama.cpp's own blocks vs the double decoding: every element within 3 float roundings. */
static bool check_dequant_block(int type, const uint8_t *blk, int blck, const float *got, char *why, size_t cap) {
    for (int i = 0; i < blck; i++) {
        double mp, want = decode_elem(type, blk, i, &mp);
        double mag = fabs(want) + 2 * mp;
        if (!(fabs(got[i] - want) <= 3 * 0x1p-24 * mag)) {
            snprintf(why, cap, "element %d: %.9g vs %.9g", i, got[i], want);
            return false;
        }
    }
    return true;
}

TEST(dequantize_llamacpp_blocks) {
    NEED_QUANT_DATA(dir);
    int checked[N_TYPES] = {0};
    char path[4096], why[256];
    for (size_t fi = 0; fi < sizeof quant_files / sizeof *quant_files; fi++) {
        snprintf(path, sizeof path, "%.3000s/quant/quant-%s.gguf", dir, quant_files[fi]);
        gguf_file *q = NULL;
        CHECKF(gguf_open(path, &q) == 0, "%.800s: %s", path, lc_last_error());
        for (uint64_t ti = 0; ti < q->n_tensors; ti++) {
            const gguf_tensor *tq = &q->tensors[ti];
            const type_case *tc = case_of((int)tq->type);
            if (!tc) continue;
            const int64_t nb = (int64_t)(tq->size / (uint64_t)tc->bytes);
            float y[256];
            for (int64_t b = 0; b < nb; b += quick() ? 37 : 1) {
                const uint8_t *blk = (const uint8_t *)tq->data + b * tc->bytes;
                lc__quant_dequantize_row(tc->type, blk, y, tc->blck);
                if (!check_dequant_block(tc->type, blk, tc->blck, y, why, sizeof why)) {
                    char msg[512];
                    snprintf(msg, sizeof msg, "%s %.60s block %lld: %s", quant_files[fi], tq->name, (long long)b, why);
                    gguf_close(q);
                    FAILF("%s", msg);
                }
                checked[tc - types]++;
            }
        }
        gguf_close(q);
    }
    for (int t = 0; t < N_TYPES; t++) CHECKF(checked[t] > 0, "no %s blocks checked", types[t].name);
}

/* Random bytes are valid blocks once the fp16 scales are finite: decode them too (every bit pattern of the quants). */
static void randomize_block(int type, uint8_t *blk, int bytes) {
    for (int i = 0; i < bytes; i++) blk[i] = (uint8_t)rng_u64();
    int off[2] = {-1, -1};
    switch (type) {
    case LC_TYPE_Q4_0: case LC_TYPE_Q5_0: case LC_TYPE_IQ4_NL: case LC_TYPE_IQ4_XS: off[0] = 0; break;
    case LC_TYPE_Q4_1: case LC_TYPE_Q5_1: case LC_TYPE_Q4_K: case LC_TYPE_Q5_K: off[0] = 0, off[1] = 2; break;
    case LC_TYPE_Q2_K: off[0] = 80, off[1] = 82; break;
    case LC_TYPE_Q3_K: off[0] = 108; break;
    case LC_TYPE_Q6_K: off[0] = 208; break;
    }
    for (int k = 0; k < 2; k++)
        if (off[k] >= 0) {
            lc_fp16 h = lc_fp32_to_fp16((float)(rng_gauss() * 0.01));
            blk[off[k]] = (uint8_t)h;
            blk[off[k] + 1] = (uint8_t)(h >> 8);
        }
}

TEST(dequantize_random_blocks) {
    char why[256];
    for (int t = 0; t < N_TYPES; t++) {
        uint8_t blk[256];
        float y[256];
        for (int rep = 0; rep < (quick() ? 50 : 2000); rep++) {
            randomize_block(types[t].type, blk, types[t].bytes);
            lc__quant_dequantize_row(types[t].type, blk, y, types[t].blck);
            CHECKF(check_dequant_block(types[t].type, blk, types[t].blck, y, why, sizeof why), "%s: %s",
                   types[t].name, why);
        }
    }
}

/* Broken weights (inf, NaN, beyond fp16) must not crash or hang the quantizers (the sanitizer build checks for
** undefined behaviour); finite rows next to them must be unaffected. */
TEST(nonfinite_input_is_contained) {
    float x[512], y[512];
    uint8_t q[512 * 2], q_ref[512 * 2];
    const float bad[4] = {INFINITY, -INFINITY, NAN, 1e30f};
    for (int t = 0; t < N_TYPES; t++) {
        const lc_quant_ref *r = lc__quant_ref(types[t].type);
        for (int k = 0; k < 4; k++) {
            fill_kind(x, 512, 0);
            r->quantize(x + 256, q_ref, 256);
            x[17] = bad[k];
            r->quantize(x, q, 512);
            r->dequantize(q, y, 512);
            const size_t half = (size_t)(256 / types[t].blck * types[t].bytes);
            CHECKF(memcmp(q + half, q_ref, half) == 0, "%s: a non-finite value leaked into the next block", types[t].name);
        }
    }
}

/* ---- activations ---- */

/* Q8_0 activations for the dot tests, written here (any valid block serves: the check is against its decoding). */
static void make_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        float d = amax / 127;
        y[b].d = lc_fp32_to_fp16(d);
        for (int j = 0; j < 32; j++) y[b].qs[j] = (int8_t)(d ? lrintf(x[32 * b + j] / d) : 0);
    }
}

TEST(activation_quantizers) {
    /* Q8_K: the extreme element is exactly -127 (sign flipped), bsums are the group sums, d * q reproduces x to half
    ** a step; Q8_1: s is fp16(d * sum q), |q| <= 127, x within half a step of d*q. */
    float x[1024];
    block_q8_K yk[4];
    block_q8_1 y1[32];
    for (int kind = 0; kind < N_KINDS; kind++) {
        fill_kind(x, 1024, kind);
        lc__quantize_row_q8_K_ref(x, yk, 1024);
        lc__quantize_row_q8_1_ref(x, y1, 1024);
        for (int b = 0; b < 4; b++) {
            const float *xb = x + 256 * b;
            int imax = 0;
            for (int i = 1; i < 256; i++)
                if (fabsf(xb[i]) > fabsf(xb[imax])) imax = i;
            if (xb[imax] == 0) {
                CHECK(yk[b].d == 0);
                continue;
            }
            CHECK_EQ_INT(yk[b].qs[imax], -127);
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int i = 0; i < 16; i++) s += yk[b].qs[16 * g + i];
                CHECK_EQ_INT(yk[b].bsums[g], s);
            }
            for (int i = 0; i < 256; i++)
                CHECKF(fabs((double)yk[b].d * yk[b].qs[i] - xb[i]) <= 0.5001 * fabs((double)yk[b].d) + 1e-30,
                       "q8_K kind %d element %d", kind, i);
        }
        for (int b = 0; b < 32; b++) {
            int s = 0;
            float amax = 0;
            for (int j = 0; j < 32; j++) s += y1[b].qs[j];
            for (int j = 0; j < 32; j++)
                if (fabsf(x[32 * b + j]) > amax) amax = fabsf(x[32 * b + j]);
            CHECK_EQ_INT(y1[b].s, lc_fp32_to_fp16(amax / 127.f * (float)s));
            for (int j = 0; j < 32; j++) {
                CHECK(y1[b].qs[j] >= -127 && y1[b].qs[j] <= 127);
                /* d is fp16-rounded: allow the rounding of d on top of half a step */
                CHECKF(fabs(amax / 127.0 * y1[b].qs[j] - x[32 * b + j]) <= 0.5001 * amax / 127.0 + 1e-30,
                       "q8_1 kind %d element %d", kind, j);
            }
        }
    }
}

/* ---- 3. dot products vs dequantize-then-dot in double ---- */

/* Dequantized activations (exactly, in double) and the extra fp16 error of Q8_1's s per block. */
static void decode_act(int vtype, const void *xq, int64_t n, double *xd) {
    for (int64_t b = 0; b < n / (vtype == LC_TYPE_Q8_K ? 256 : 32); b++) {
        if (vtype == LC_TYPE_Q8_K) {
            const block_q8_K *k = (const block_q8_K *)xq + b;
            for (int i = 0; i < 256; i++) xd[256 * b + i] = (double)k->d * k->qs[i];
        } else if (vtype == LC_TYPE_Q8_0) {
            const block_q8_0 *k = (const block_q8_0 *)xq + b;
            for (int i = 0; i < 32; i++) xd[32 * b + i] = (double)lc_fp16_to_fp32(k->d) * k->qs[i];
        } else {
            const block_q8_1 *k = (const block_q8_1 *)xq + b;
            for (int i = 0; i < 32; i++) xd[32 * b + i] = (double)lc_fp16_to_fp32(k->d) * k->qs[i];
        }
    }
}

static size_t act_bytes(int vtype, int64_t n) {
    return vtype == LC_TYPE_Q8_K ? (size_t)(n / 256) * sizeof(block_q8_K)
           : vtype == LC_TYPE_Q8_0 ? (size_t)(n / 32) * sizeof(block_q8_0)
                                   : (size_t)(n / 32) * sizeof(block_q8_1);
}

static void quantize_act(int vtype, const float *x, void *xq, int64_t n) {
    if (vtype == LC_TYPE_Q8_K) lc__quantize_row_q8_K_ref(x, xq, n);
    else if (vtype == LC_TYPE_Q8_0) make_q8_0(x, xq, n);
    else lc__quantize_row_q8_1_ref(x, xq, n);
}

/* The exact dot of weight row w (type tc) and activations xq in double, and the bound on a float evaluation. */
static void exact_dot(const type_case *tc, const uint8_t *w, int vtype, const void *xq, int64_t n, double *exact,
                      double *bound) {
    double *xd = malloc((size_t)n * sizeof(double));
    decode_act(vtype, xq, n, xd);
    double sum = 0, mag = 0, s_err = 0;
    for (int64_t i = 0; i < n; i++) {
        double mp, wi = decode_elem(tc->type, w + (i / tc->blck) * tc->bytes, (int)(i % tc->blck), &mp);
        sum += wi * xd[i];
        mag += fabs(xd[i]) * (fabs(wi) + mp);
    }
    if (vtype == LC_TYPE_Q8_1) { /* the min term uses s = fp16(d * sum q) instead of the exact d * sum q */
        for (int64_t b = 0; b < n / 32; b++) {
            const block_q8_1 *k = (const block_q8_1 *)xq + b;
            double m = h2d(w + b * tc->bytes + 2), dq = 0;
            for (int i = 0; i < 32; i++) dq += (double)lc_fp16_to_fp32(k->d) * k->qs[i];
            s_err += fabs(m * ((double)lc_fp16_to_fp32(k->s) - dq));
        }
    }
    *exact = sum;
    *bound = ((double)(n / tc->blck) + 8) * 0x1p-24 * mag + s_err + 1e-37;
    free(xd);
}

TEST(dot_products_vs_double) {
    const int64_t ns[] = {256, 1024, 4096};
    for (int t = 0; t < N_TYPES; t++) {
        const type_case *tc = &types[t];
        const lc_quant_ref *r = lc__quant_ref(tc->type);
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            const int64_t n = ns[ni];
            float *wf = malloc((size_t)n * sizeof(float)), *xf = malloc((size_t)n * sizeof(float));
            uint8_t *w = malloc((size_t)(n / tc->blck * tc->bytes));
            void *xq = malloc(act_bytes(r->vec_dot_type, n));
            for (int rep = 0; rep < (quick() ? 2 : 8); rep++) {
                fill_kind(wf, n, rep % N_KINDS);
                fill_kind(xf, n, (rep + 3) % 3); /* activations: N(0,1), N(0,0.02), outliers */
                r->quantize(wf, w, n);
                quantize_act(r->vec_dot_type, xf, xq, n);
                float s = NAN;
                r->vec_dot((int)n, &s, w, xq);
                double exact, bound;
                exact_dot(tc, w, r->vec_dot_type, xq, n, &exact, &bound);
                CHECKF(fabs(s - exact) <= bound, "%s n=%lld rep %d: dot %.9g, exact %.9g, bound %.3g", tc->name,
                       (long long)n, rep, s, exact, bound);
            }
            free(wf);
            free(xf);
            free(w);
            free(xq);
        }
    }
}

/* Dot products on llama.cpp's own weight rows (from the files), random activations. */
TEST(dot_products_on_llamacpp_rows) {
    NEED_QUANT_DATA(dir);
    char path[4096];
    int done[N_TYPES] = {0};
    for (size_t fi = 0; fi < sizeof quant_files / sizeof *quant_files; fi++) {
        snprintf(path, sizeof path, "%.3000s/quant/quant-%s.gguf", dir, quant_files[fi]);
        gguf_file *q = NULL;
        CHECKF(gguf_open(path, &q) == 0, "%.800s: %s", path, lc_last_error());
        for (uint64_t ti = 0; ti < q->n_tensors; ti++) {
            const gguf_tensor *tq = &q->tensors[ti];
            const type_case *tc = case_of((int)tq->type);
            if (!tc) continue;
            const lc_quant_ref *r = lc__quant_ref(tc->type);
            const int64_t n = (int64_t)tq->ne[0];
            float *xf = malloc((size_t)n * sizeof(float));
            void *xq = malloc(act_bytes(r->vec_dot_type, n));
            fill_kind(xf, n, 0);
            quantize_act(r->vec_dot_type, xf, xq, n);
            const size_t row_bytes = (size_t)(n / tc->blck * tc->bytes);
            for (uint64_t row = 0; row < tq->ne[1]; row += quick() ? 61 : 7) {
                const uint8_t *w = (const uint8_t *)tq->data + row * row_bytes;
                float s = NAN;
                double exact, bound;
                r->vec_dot((int)n, &s, w, xq);
                exact_dot(tc, w, r->vec_dot_type, xq, n, &exact, &bound);
                if (!(fabs(s - exact) <= bound)) {
                    char msg[256];
                    snprintf(msg, sizeof msg, "%s %.60s row %llu: dot %.9g, exact %.9g, bound %.3g", quant_files[fi],
                             tq->name, (unsigned long long)row, s, exact, bound);
                    free(xf);
                    free(xq);
                    gguf_close(q);
                    FAILF("%s", msg);
                }
                done[tc - types]++;
            }
            free(xf);
            free(xq);
        }
        gguf_close(q);
    }
    for (int t = 0; t < N_TYPES; t++) CHECKF(done[t] > 0, "no %s rows", types[t].name);
}

/* ---- 2. llama.cpp's own functions (the oracle's shared libraries) ---- */
typedef size_t (*ll_quantize_t)(const float *, void *, int64_t, int64_t, const float *);
typedef void (*ll_dequantize_t)(const void *, float *, int64_t);
typedef void (*ll_from_float_t)(const float *, void *, int64_t);
typedef void (*ll_vec_dot_t)(int, float *, size_t, const void *, size_t, const void *, size_t, int);
struct ll_traits_cpu {
    ll_from_float_t from_float;
    ll_vec_dot_t vec_dot;
    int vec_dot_type;
    int64_t nrows;
};
typedef const struct ll_traits_cpu *(*ll_get_traits_cpu_t)(int);

static void *open_oracle_lib(const char *file, int flags) {
    char buf[1024];
    const char *e = getenv("LC_ORACLE_LIBDIR");
    const char *dirs[] = {e && *e ? e : NULL, ".oracle/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64",
                          "/tmp/nlc/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if (!dirs[i]) continue;
        snprintf(buf, sizeof buf, "%s/%s", dirs[i], file);
        void *h = dlopen(buf, flags);
        if (h) return h;
    }
    return NULL;
}

static const char *ll_suffix(int type) {
    switch (type) {
    case LC_TYPE_Q4_0: return "q4_0";
    case LC_TYPE_Q4_1: return "q4_1";
    case LC_TYPE_Q5_0: return "q5_0";
    case LC_TYPE_Q5_1: return "q5_1";
    case LC_TYPE_Q2_K: return "q2_K";
    case LC_TYPE_Q3_K: return "q3_K";
    case LC_TYPE_Q4_K: return "q4_K";
    case LC_TYPE_Q5_K: return "q5_K";
    case LC_TYPE_Q6_K: return "q6_K";
    case LC_TYPE_IQ4_NL: return "iq4_nl";
    case LC_TYPE_IQ4_XS: return "iq4_xs";
    }
    return "?";
}

TEST(quantize_matches_llamacpp_library) {
    void *h = open_oracle_lib("libggml-base.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) SKIP("llama.cpp's libggml-base.so not found (tests/oracle/build-oracle.sh installs it)");
    const int64_t n_per_row = 1024, n_rows = quick() ? 4 : 64;
    float *x = malloc((size_t)(n_per_row * n_rows) * sizeof(float)), *y0 = malloc((size_t)n_per_row * sizeof(float)),
          *y1 = malloc((size_t)n_per_row * sizeof(float));
    uint8_t *a = malloc((size_t)(n_per_row * n_rows) * 2), *b = malloc((size_t)(n_per_row * n_rows) * 2);
    printf("        type    rows x 1024 (%d kinds)  bytes equal  dequant equal\n", N_KINDS);
    for (int t = 0; t < N_TYPES; t++) {
        const type_case *tc = &types[t];
        char sym[64];
        snprintf(sym, sizeof sym, "quantize_%s", ll_suffix(tc->type));
        ll_quantize_t qf = (ll_quantize_t)dlsym(h, sym);
        snprintf(sym, sizeof sym, "dequantize_row_%s", ll_suffix(tc->type));
        ll_dequantize_t df = (ll_dequantize_t)dlsym(h, sym);
        if (!qf || !df) {
            dlclose(h);
            FAILF("libggml-base.so lacks %s", sym);
        }
        const size_t row_bytes = (size_t)(n_per_row / tc->blck * tc->bytes);
        uint64_t rows = 0, rows_equal = 0, deq_equal = 0;
        for (int kind = 0; kind < N_KINDS; kind++) {
            fill_kind(x, n_per_row * n_rows, kind);
            size_t got = qf(x, a, n_rows, n_per_row, NULL);
            CHECK_EQ_INT(got, row_bytes * (size_t)n_rows);
            for (int64_t r = 0; r < n_rows; r++) {
                lc__quant_quantize_row(tc->type, x + r * n_per_row, b + (size_t)r * row_bytes, n_per_row);
                rows++;
                bool eq = memcmp(a + (size_t)r * row_bytes, b + (size_t)r * row_bytes, row_bytes) == 0;
                rows_equal += eq;
                if (!eq) {
                    for (size_t k = 0; k < row_bytes; k++)
                        if (a[r * row_bytes + k] != b[r * row_bytes + k]) {
                            printf("        %s kind %d row %lld: first difference at byte %zu (block %zu)\n",
                                   tc->name, kind, (long long)r, k, k / (size_t)tc->bytes);
                            break;
                        }
                }
                df(a + (size_t)r * row_bytes, y0, n_per_row);
                lc__quant_dequantize_row(tc->type, a + (size_t)r * row_bytes, y1, n_per_row);
                deq_equal += memcmp(y0, y1, (size_t)n_per_row * sizeof(float)) == 0;
            }
        }
        printf("        %-7s %6llu                  %6llu       %6llu\n", tc->name, (unsigned long long)rows,
               (unsigned long long)rows_equal, (unsigned long long)deq_equal);
        CHECKF(rows_equal == rows, "%s: %llu of %llu rows differ from llama.cpp's quantize_%s", tc->name,
               (unsigned long long)(rows - rows_equal), (unsigned long long)rows, ll_suffix(tc->type));
        CHECKF(deq_equal == rows, "%s: dequantize differs from llama.cpp's", tc->name);
    }
    free(x);
    free(y0);
    free(y1);
    free(a);
    free(b);
    dlclose(h);
}

TEST(cpu_backend_matches_llamacpp_library) {
    const lc_cpu_features *cpu = lc__cpu();
    if (!cpu->avx2 || !cpu->fma || !cpu->f16c) SKIP("the haswell variant of llama.cpp's CPU backend needs AVX2/FMA/F16C");
    void *hb = open_oracle_lib("libggml-base.so", RTLD_NOW | RTLD_GLOBAL);
    if (!hb) SKIP("llama.cpp's libggml-base.so not found (tests/oracle/build-oracle.sh installs it)");
    void *hc = open_oracle_lib("libggml-cpu-haswell.so", RTLD_NOW | RTLD_LOCAL);
    if (!hc) {
        dlclose(hb);
        SKIP("llama.cpp's libggml-cpu-haswell.so not found");
    }
    void (*cpu_init)(void) = (void (*)(void))dlsym(hc, "ggml_cpu_init");
    ll_get_traits_cpu_t traits = (ll_get_traits_cpu_t)dlsym(hc, "ggml_get_type_traits_cpu");
    CHECK(cpu_init && traits);
    cpu_init();
    const int64_t n = 4096;
    float *x = malloc((size_t)n * sizeof(float)), *wf = malloc((size_t)n * sizeof(float));
    uint8_t *qa = malloc(act_bytes(LC_TYPE_Q8_1, n) + act_bytes(LC_TYPE_Q8_K, n));
    uint8_t *qb = malloc(act_bytes(LC_TYPE_Q8_1, n) + act_bytes(LC_TYPE_Q8_K, n));
    uint8_t *w = malloc((size_t)n * 2);
    /* activation quantizers, byte for byte */
    const int vtypes[2] = {LC_TYPE_Q8_1, LC_TYPE_Q8_K};
    for (int v = 0; v < 2; v++) {
        ll_from_float_t ff = traits(vtypes[v])->from_float;
        CHECK(ff);
        for (int kind = 0; kind < N_KINDS; kind++) {
            fill_kind(x, n, kind);
            memset(qa, 0, act_bytes(vtypes[v], n));
            ff(x, qa, n);
            quantize_act(vtypes[v], x, qb, n);
            if (vtypes[v] == LC_TYPE_Q8_K) /* llama.cpp leaves bsums unwritten for an all-zero block */
                for (int64_t b = 0; b < n / 256; b++)
                    if (((block_q8_K *)qb)[b].d == 0) memset(((block_q8_K *)qa)[b].bsums, 0, 32);
            CHECKF(memcmp(qa, qb, act_bytes(vtypes[v], n)) == 0, "%s activations differ from llama.cpp's (kind %d)",
                   vtypes[v] == LC_TYPE_Q8_1 ? "Q8_1" : "Q8_K", kind);
        }
    }
    /* dot products: llama.cpp's AVX2 kernels and ours, both within the float bound of the exact value */
    for (int t = 0; t < N_TYPES; t++) {
        const type_case *tc = &types[t];
        const lc_quant_ref *r = lc__quant_ref(tc->type);
        const struct ll_traits_cpu *lt = traits(tc->type);
        CHECKF(lt && lt->vec_dot && lt->vec_dot_type == r->vec_dot_type, "%s: vec-dot type %d, llama.cpp's %d",
               tc->name, r->vec_dot_type, lt ? lt->vec_dot_type : -1);
        for (int rep = 0; rep < (quick() ? 2 : 10); rep++) {
            fill_kind(wf, n, rep % N_KINDS);
            fill_kind(x, n, rep % 3);
            r->quantize(wf, w, n);
            quantize_act(r->vec_dot_type, x, qb, n);
            float s_ll = NAN, s_ours = NAN;
            lt->vec_dot((int)n, &s_ll, 0, w, 0, qb, 0, 1);
            r->vec_dot((int)n, &s_ours, w, qb);
            double exact, bound;
            exact_dot(tc, w, r->vec_dot_type, qb, n, &exact, &bound);
            CHECKF(fabs(s_ll - exact) <= bound && fabs(s_ours - exact) <= bound,
                   "%s rep %d: llama.cpp %.9g, ours %.9g, exact %.9g, bound %.3g", tc->name, rep, s_ll, s_ours, exact,
                   bound);
        }
    }
    free(x);
    free(wf);
    free(qa);
    free(qb);
    free(w);
    dlclose(hc);
    dlclose(hb);
}

int main(void) {
    lc__base_init();
    RUN(layouts_match_ggml);
    RUN(requantize_llamacpp_files);
    RUN(dequantize_llamacpp_blocks);
    RUN(dequantize_random_blocks);
    RUN(nonfinite_input_is_contained);
    RUN(activation_quantizers);
    RUN(dot_products_vs_double);
    RUN(dot_products_on_llamacpp_rows);
    RUN(quantize_matches_llamacpp_library);
    RUN(cpu_backend_matches_llamacpp_library);
    return TEST_SUMMARY();
}
