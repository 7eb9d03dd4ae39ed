/* amx.c - the "amx" kernel variant: the avx512 table with the Q8_0, Q4_0, Q4_K and Q6_K prefill GEMMs on AMX-INT8
** tiles (Intel Xeon from Sapphire Rapids on). Built with the avx512 flags plus -mavx512vnni -mamx-tile -mamx-int8;
** dispatch.c offers the variant only when CPUID reports AMX-TILE and AMX-INT8, XCR0 has the tile state and Linux
** grants this process the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, see lc__amx_enable).
**
** One TDPBSSD per Q8_0 block: C[j][i] = sum over the block's 32 quants of x_j * w_i, for 16 weight rows i and up to
** 16 tokens j, exactly in int32 (the same integer the GEMV forms). Each block has its own scales, so every block's
** tile is stored, converted and added to the f32 sums as (float)C * (d_w * d_x), block after block in order: the
** same operations in the same order as the VNNI GEMV, hence bit-identical to it and to ref.c (kernels.h).
** Q4_0 blocks are the same product ((float)isum * (d_w * d_x), the nibbles minus 8 as the integers), so they take
** the same path; only the weight packing unpacks them first.
** A: the tokens' quants straight from xq (16 rows, 32 bytes, xq's row stride). B: the weights transposed to the
** tiles' layout (B[g][4i + c] = byte 4g + c of row i), packed once per 16 rows and K chunk and reused by every
** 16-token group. Tokens fill the C rows, so each token's 16 outputs are one contiguous store.
** The K-quants (second half of the file) use one tile per 32- or 16-element group and exact integer scales.
** What the tiles do not cover (decode and very small batches, the last rows of a panel that are not a multiple of
** 16) runs the avx512 table's kernels, which give the same bits.
*/
#include "kernels.h"

#include "../quant/quants.h"

#include <immintrin.h>
#include <stddef.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define INLINE static inline __attribute__((always_inline))

/* The tile instructions, with memory clobbers (the compiler must not move xq, wp or C buffer accesses across
** them). Registers: tmm0-1 C, tmm2-3 A (tokens), tmm4-5 B (weights). */
#define TILE_LOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"((const void *)(base)), "r"((long)(stride)) : "memory")
#define TILE_STORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"((void *)(base)), "r"((long)(stride)) : "memory")
#define TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#define TILE_DPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Tiles for m token rows (1..16) and k-byte groups (32 or 16): C m x 16 int32, A m x k bytes, B k/4 x 64 bytes. */
static void tile_configure(int m, int k) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 2; t++) c.rows[t] = (uint8_t)m, c.colsb[t] = 64;
    for (int t = 2; t < 4; t++) c.rows[t] = (uint8_t)m, c.colsb[t] = (uint16_t)k;
    for (int t = 4; t < 6; t++) c.rows[t] = (uint8_t)(k / 4), c.colsb[t] = 64;
    __asm__ volatile("ldtilecfg %0" ::"m"(c) : "memory");
}

static void tile_release(void) { __asm__ volatile("tilerelease" ::: "memory"); }

enum {
    TR = 16,  /* weight rows per tile (C columns) */
    KC = 32,  /* blocks per K chunk: the packed weights are 18 KiB */
    TS = 256, /* tokens whose scales are converted at a time (32 KiB) and that share one weight packing */
    MIN_TOK = 9, /* fewer tokens run the VNNI kernels (bench_kernels -T Q8_0 -p 6: 236 vs 225 GFLOP/s there;
                 ** 8 tokens: even, and slower in `llamac serve` with 8 streams; 9: 224 vs 315) */
};

typedef struct {
    int32_t q[QK8_0 / 4][TR]; /* B tile: dword g of row i (its quants 4g..4g+3) at q[g][i] */
    float d[TR];              /* the rows' scales */
} packed_w;

/* Block b of weight row p as 32 signed bytes: Q8_0 quants as they are; Q4_0 nibbles (low halves are elements 0-15,
** high halves 16-31) minus 8, the values its dot product multiplies. */
INLINE __m256i row_quants(const int wtype, const uint8_t *blk) {
    if (wtype == LC_TYPE_Q8_0) return _mm256_loadu_si256((const __m256i *)(blk + 2));
    const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2)), m = _mm_set1_epi8(15);
    const __m256i v = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* out[g][i] = dword g of r[i] (i < 16, g < 8): the classic 8 x 8 dword transpose (unpack 32, unpack 64, swap
** 128-bit halves) on rows 0-7 and 8-15 at once, one in each 256-bit half. */
INLINE void transpose_16x8(const __m256i *r, int32_t (*out)[TR]) {
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512i z[8], t[8], u[8];
    for (int p = 0; p < 8; p++) z[p] = _mm512_inserti64x4(_mm512_castsi256_si512(r[p]), r[p + 8], 1);
    for (int p = 0; p < 8; p += 2) {
        t[p] = _mm512_unpacklo_epi32(z[p], z[p + 1]);
        t[p + 1] = _mm512_unpackhi_epi32(z[p], z[p + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm512_unpacklo_epi64(t[h], t[h + 2]);
        u[h + 1] = _mm512_unpackhi_epi64(t[h], t[h + 2]);
        u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    for (int g = 0; g < 4; g++) {
        _mm512_store_si512(out[g], _mm512_permutex2var_epi64(u[g], lo, u[g + 4]));
        _mm512_store_si512(out[g + 4], _mm512_permutex2var_epi64(u[g], hi, u[g + 4]));
    }
}

/* Rows w[0..16) (ws bytes apart, blocks of bsz bytes, the fp16 scale first), blocks [b0, b0 + nbc) -> wp. */
INLINE void pack_weights(const int wtype, const size_t bsz, packed_w *wp, const uint8_t *w, size_t ws, int b0,
                         int nbc) {
    for (int b = 0; b < nbc; b++) {
        const uint8_t *blk = w + (size_t)(b0 + b) * bsz;
        __m256i r[TR];
        for (int i = 0; i < TR; i++) r[i] = row_quants(wtype, blk + (size_t)i * ws);
        transpose_16x8(r, wp[b].q);
        uint16_t dh[TR];
        for (int i = 0; i < TR; i++) memcpy(&dh[i], blk + (size_t)i * ws, 2);
        _mm512_store_ps(wp[b].d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh)));
    }
}

/* Block b's tile: C = tokens' quants x the packed weights, stored to c. */
#define TILE_BLOCK(tc, ta, tb, xb, xs, wq, c) \
    do {                                     \
        TILE_LOAD(ta, xb, xs);               \
        TILE_LOAD(tb, wq, 64);               \
        TILE_ZERO(tc);                       \
        TILE_DPBSSD(tc, ta, tb);             \
        TILE_STORE(tc, c, 64);               \
    } while (0)

/* acc[j] += (float)c[j] * (d_w * d_x[j]) for tokens j < M: one block's products, added in block order. */
INLINE void add_block(const int M, __m512 *acc, const int32_t (*c)[TR], const float *dw, const float *dx) {
    const __m512 w = _mm512_load_ps(dw);
#pragma GCC unroll 16
    for (int j = 0; j < TR; j++)
        if (j < M) {
            const __m512 d = _mm512_mul_ps(w, _mm512_set1_ps(dx[j * KC]));
            acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[j])), d));
        }
}

/* y[j*ldy + i] (+)= the 16 rows of wp against tokens j < M over blocks [0, nbc); x: token 0's first block's quants,
** xs bytes from token to token; dx[j*KC + b]: token j's scale of block b. first: start the sums at 0, else continue
** from y (a later K chunk). M is a constant in the 16-token case, so the sums stay in registers.
** Software-pipelined: the tiles of blocks b + 2 and b + 3 are computed and stored before blocks b and b + 1 are
** read back, so the vector loads do not wait on the tile stores. */
INLINE void tile_tokens(const int M, int nbc, const uint8_t *x, size_t xs, const packed_w *wp, const float *dx,
                        float *y, size_t ldy, int first) {
    int32_t c[4][TR][TR] __attribute__((aligned(64))); /* four blocks' C tiles in flight */
    __m512 acc[TR];
    const size_t bs = sizeof(block_q8_0);
#pragma GCC unroll 16
    for (int j = 0; j < TR; j++)
        acc[j] = j < M && !first ? _mm512_loadu_ps(y + (size_t)j * ldy) : _mm512_setzero_ps();
    TILE_BLOCK(0, 2, 4, x, xs, wp[0].q, c[0]);
    if (nbc > 1) TILE_BLOCK(1, 3, 5, x + bs, xs, wp[1].q, c[1]);
    int b = 0;
    for (; b + 4 <= nbc; b += 2) {
        const int s = b & 2; /* c slots of blocks b, b + 1; blocks b + 2, b + 3 go to the other two */
        TILE_BLOCK(0, 2, 4, x + (size_t)(b + 2) * bs, xs, wp[b + 2].q, c[s ^ 2]);
        TILE_BLOCK(1, 3, 5, x + (size_t)(b + 3) * bs, xs, wp[b + 3].q, c[(s ^ 2) + 1]);
        add_block(M, acc, (const int32_t(*)[TR])c[s], wp[b].d, dx + b);
        add_block(M, acc, (const int32_t(*)[TR])c[s + 1], wp[b + 1].d, dx + b + 1);
    }
    /* 1 to 3 blocks left; blocks b and b + 1 (those that exist) are already in c */
    const int s = b & 2;
    if (nbc - b == 3) TILE_BLOCK(0, 2, 4, x + (size_t)(b + 2) * bs, xs, wp[b + 2].q, c[s ^ 2]);
    add_block(M, acc, (const int32_t(*)[TR])c[s], wp[b].d, dx + b);
    if (b + 1 < nbc) add_block(M, acc, (const int32_t(*)[TR])c[s + 1], wp[b + 1].d, dx + b + 1);
    if (b + 2 < nbc) add_block(M, acc, (const int32_t(*)[TR])c[s ^ 2], wp[b + 2].d, dx + b + 2);
#pragma GCC unroll 16
    for (int j = 0; j < TR; j++)
        if (j < M) _mm512_storeu_ps(y + (size_t)j * ldy, acc[j]);
}

/* The weight types on tiles and the avx512 table's kernels for what the tiles do not cover. */
static lc_gemm_fn vnni_q8_0, avx512_q4_0;

/* Weight type wtype (Q8_0 or Q4_0: blocks of 32 whose product is (float)isum * (d_w * d_x)) against Q8_0 tokens. */
INLINE void gemm_amx(const int wtype, const lc_gemm_fn fallback, int n, int nr, int nt, const void *vw, size_t ws,
                     const void *vx, size_t xs, float *y, size_t ldy) {
    const size_t bsz = wtype == LC_TYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const uint8_t *w = vw, *x = vx;
    const int nr16 = nr / TR * TR;
    if (nt < MIN_TOK || nr16 == 0) return fallback(n, nr, nt, vw, ws, vx, xs, y, ldy);
    if (nr16 < nr) fallback(n, nr - nr16, nt, w + (size_t)nr16 * ws, ws, vx, xs, y + nr16, ldy);
    packed_w wp[KC] __attribute__((aligned(64)));
    float dx[TS * KC];
    const int nb = n / QK8_0;
    int m_configured = 0;
    for (int b0 = 0; b0 < nb; b0 += KC) {
        const int nbc = LC_MIN(KC, nb - b0);
        for (int t0 = 0; t0 < nt; t0 += TS) {
            const int ntc = LC_MIN(TS, nt - t0);
            for (int j = 0; j < ntc; j++) {
                const block_q8_0 *xr = (const block_q8_0 *)(x + (size_t)(t0 + j) * xs) + b0;
                for (int b = 0; b < nbc; b++) dx[j * KC + b] = lc_fp16_lut(xr[b].d);
            }
            for (int r = 0; r < nr16; r += TR) {
                pack_weights(wtype, bsz, wp, w + (size_t)r * ws, ws, b0, nbc);
                for (int t = t0; t < t0 + ntc; t += TR) {
                    const int m = LC_MIN(TR, t0 + ntc - t);
                    if (m != m_configured) tile_configure(m, QK8_0), m_configured = m;
                    const uint8_t *xt = x + (size_t)t * xs + (size_t)b0 * sizeof(block_q8_0) + 2;
                    float *yt = y + (size_t)t * ldy + r;
                    const float *dxt = dx + (t - t0) * KC;
                    if (m == TR)
                        tile_tokens(TR, nbc, xt, xs, wp, dxt, yt, ldy, b0 == 0);
                    else
                        tile_tokens(m, nbc, xt, xs, wp, dxt, yt, ldy, b0 == 0);
                }
            }
        }
    }
    tile_release();
}

/* The table's entry for weight type T: IMPL(T, ...) with the avx512 kernel FALLBACK for what the tiles skip. */
#define AMX_GEMM(NAME, IMPL, T, FALLBACK)                                                                          \
    static void NAME(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,        \
                     size_t ldy) {                                                                               \
        IMPL(T, FALLBACK, n, nr, nt, w, ws, x, xs, y, ldy);                                                      \
    }
AMX_GEMM(gemm_q8_0_amx, gemm_amx, LC_TYPE_Q8_0, vnni_q8_0)
AMX_GEMM(gemm_q4_0_amx, gemm_amx, LC_TYPE_Q4_0, avx512_q4_0)

/* ---------------------------------------------------------------------------------------------------------------
** K-quants (Q4_K, Q6_K) against Q8_K. The reference's integer per 256-element super-block is
** isum = sum over groups g of sc_g * (exact dot of the group), with groups of 32 (Q4_K: one 6-bit scale each) or
** 16 (Q6_K: one int8 scale each). One TDPBSSD per group (K = 32 or 16) gives every (token, row) its group dot; the
** tile is stored and multiplied by the rows' scales into int32 sums (VPMULLD, exact), so each super-block's isum is
** the reference's integer. Its float side is the reference's expression, lane by lane over the 16 rows:
** Q6_K (d * d_x) * isum; Q4_K (d * d_x) * isum - (dmin * d_x) * msum, msum = sum of m_g * (bsums of group g) formed
** exactly with VPDPWSSD; the super-blocks are added to y in order. Bit-identical to vec_dot. */

enum { KSB = 2 }; /* super-blocks per K chunk (the packed weights are 35 KiB) */

typedef struct {
    int32_t q[QK_K / 4][TR];   /* B tiles: the G elements of group g at rows [g * G / 4, (g + 1) * G / 4) */
    int32_t sc[QK_K / 16][TR]; /* the integer scale of each 16 elements, per row (Q4_K: equal in pairs) */
    int32_t m[QK_K / 64][TR];  /* Q4_K: mins of groups 2k and 2k + 1 as two int16 per row */
    float d[TR], dmin[TR];
} packed_k;

/* One row's super-block as 256 signed bytes q, 16 scales sc and (Q4_K) 8 mins m. */
INLINE void unpack_k(const int wtype, const uint8_t *blk, int8_t *q, int32_t *sc, int32_t *m, float *d,
                     float *dmin) {
    if (wtype == LC_TYPE_Q4_K) {
        const block_q4_K *b = (const block_q4_K *)blk;
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                q[64 * p + l] = (int8_t)(b->qs[32 * p + l] & 15);
                q[64 * p + 32 + l] = (int8_t)(b->qs[32 * p + l] >> 4);
            }
        for (int g = 0; g < 8; g++) {
            uint8_t s, mn;
            lc__k4_scale_min(g, b->scales, &s, &mn);
            sc[2 * g] = sc[2 * g + 1] = s;
            m[g] = mn;
        }
        *d = lc_fp16_lut(b->d), *dmin = lc_fp16_lut(b->dmin);
    } else { /* Q6_K */
        const block_q6_K *b = (const block_q6_K *)blk;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t l0 = b->ql[64 * h + l], l1 = b->ql[64 * h + 32 + l], hb = b->qh[32 * h + l];
                int8_t *o = q + 128 * h;
                o[l] = (int8_t)(((l0 & 15) | ((hb & 3) << 4)) - 32);
                o[32 + l] = (int8_t)(((l1 & 15) | (((hb >> 2) & 3) << 4)) - 32);
                o[64 + l] = (int8_t)(((l0 >> 4) | (((hb >> 4) & 3) << 4)) - 32);
                o[96 + l] = (int8_t)(((l1 >> 4) | ((hb >> 6) << 4)) - 32);
            }
        for (int g = 0; g < 16; g++) sc[g] = b->scales[g];
        *d = lc_fp16_lut(b->d), *dmin = 0.0f;
    }
}

/* Rows w[0..16) (ws bytes apart), super-blocks [b0, b0 + nsb) -> pk. */
INLINE void pack_k(const int wtype, const size_t bsz, packed_k *pk, const uint8_t *w, size_t ws, int b0, int nsb) {
    int8_t q[TR][QK_K] __attribute__((aligned(64)));
    int32_t sc[TR][16], m[TR][8];
    for (int b = 0; b < nsb; b++) {
        for (int i = 0; i < TR; i++)
            unpack_k(wtype, w + (size_t)i * ws + (size_t)(b0 + b) * bsz, q[i], sc[i], m[i], &pk[b].d[i],
                     &pk[b].dmin[i]);
        for (int c = 0; c < QK_K / 32; c++) {
            __m256i r[TR];
            for (int i = 0; i < TR; i++) r[i] = _mm256_load_si256((const __m256i *)(q[i] + 32 * c));
            transpose_16x8(r, pk[b].q + 8 * c);
        }
        for (int g = 0; g < 16; g++)
            for (int i = 0; i < TR; i++) pk[b].sc[g][i] = sc[i][g];
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < TR; i++)
                pk[b].m[k][i] = (int32_t)((uint32_t)m[i][2 * k] | (uint32_t)m[i][2 * k + 1] << 16);
    }
}

/* is[j] += sc * c[j] for tokens j < M. */
INLINE void add_group(const int M, __m512i *is, const int32_t (*c)[TR], const int32_t *sc) {
    const __m512i s = _mm512_load_si512(sc);
#pragma GCC unroll 16
    for (int j = 0; j < TR; j++)
        if (j < M) is[j] = _mm512_add_epi32(is[j], _mm512_mullo_epi32(_mm512_load_si512(c[j]), s));
}

/* y[j*ldy + i] (+)= the 16 rows of pk against tokens j < M over super-blocks [0, nsb); x: token 0's first
** super-block, xs bytes from token to token. G: elements per group (32 Q4_K, 16 Q6_K). */
INLINE void tile_tokens_k(const int wtype, const int G, const int M, int nsb, const uint8_t *x, size_t xs,
                          const packed_k *pk, float *y, size_t ldy, int first) {
    int32_t c[2][TR][TR] __attribute__((aligned(64)));
    const int ng = QK_K / G, sg = G / 16; /* groups; 16-element scales per group */
    const size_t qoff = offsetof(block_q8_K, qs);
    for (int b = 0; b < nsb; b++) {
        const uint8_t *xb = x + (size_t)b * sizeof(block_q8_K) + qoff;
        __m512i is[TR];
#pragma GCC unroll 16
        for (int j = 0; j < TR; j++) is[j] = _mm512_setzero_si512();
        TILE_BLOCK(0, 2, 4, xb, xs, pk[b].q[0], c[0]);
        for (int g = 0; g < ng; g += 2) { /* ng is even; group g + 1 is computed before group g is read back */
            TILE_BLOCK(1, 3, 5, xb + (size_t)(g + 1) * G, xs, pk[b].q[(g + 1) * G / 4], c[1]);
            add_group(M, is, (const int32_t(*)[TR])c[0], pk[b].sc[g * sg]);
            if (g + 2 < ng) TILE_BLOCK(0, 2, 4, xb + (size_t)(g + 2) * G, xs, pk[b].q[(g + 2) * G / 4], c[0]);
            add_group(M, is, (const int32_t(*)[TR])c[1], pk[b].sc[(g + 1) * sg]);
        }
        const __m512 d = _mm512_load_ps(pk[b].d), dmin = _mm512_load_ps(pk[b].dmin);
#pragma GCC unroll 16
        for (int j = 0; j < TR; j++)
            if (j < M) {
                const block_q8_K *xj = (const block_q8_K *)(x + (size_t)j * xs) + b;
                const __m512 xd = _mm512_set1_ps(xj->d);
                __m512 f = _mm512_mul_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(is[j]));
                if (wtype == LC_TYPE_Q4_K) {
                    __m512i ms = _mm512_setzero_si512();
                    for (int k = 0; k < 4; k++) {
                        const int32_t b0 = xj->bsums[4 * k] + xj->bsums[4 * k + 1];
                        const int32_t b1 = xj->bsums[4 * k + 2] + xj->bsums[4 * k + 3];
                        const uint32_t pair = ((uint32_t)b0 & 0xffff) | (uint32_t)b1 << 16; /* two int16 */
                        const __m512i bb = _mm512_set1_epi32((int32_t)pair);
                        ms = _mm512_dpwssd_epi32(ms, _mm512_load_si512(pk[b].m[k]), bb);
                    }
                    f = _mm512_sub_ps(f, _mm512_mul_ps(_mm512_mul_ps(dmin, xd), _mm512_cvtepi32_ps(ms)));
                }
                float *yj = y + (size_t)j * ldy;
                const __m512 prev = first && b == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(yj);
                _mm512_storeu_ps(yj, _mm512_add_ps(prev, f));
            }
    }
}

static lc_gemm_fn avx512_q4_K, avx512_q6_K;

INLINE void gemm_k_amx(const int wtype, const lc_gemm_fn fallback, int n, int nr, int nt, const void *vw, size_t ws,
                       const void *vx, size_t xs, float *y, size_t ldy) {
    const size_t bsz = wtype == LC_TYPE_Q4_K ? sizeof(block_q4_K) : sizeof(block_q6_K);
    const int G = wtype == LC_TYPE_Q4_K ? 32 : 16;
    const uint8_t *w = vw, *x = vx;
    const int nr16 = nr / TR * TR;
    if (nt < MIN_TOK || nr16 == 0) return fallback(n, nr, nt, vw, ws, vx, xs, y, ldy);
    if (nr16 < nr) fallback(n, nr - nr16, nt, w + (size_t)nr16 * ws, ws, vx, xs, y + nr16, ldy);
    packed_k pk[KSB] __attribute__((aligned(64)));
    const int nb = n / QK_K;
    int m_configured = 0;
    for (int b0 = 0; b0 < nb; b0 += KSB) {
        const int nsb = LC_MIN(KSB, nb - b0);
        for (int r = 0; r < nr16; r += TR) {
            pack_k(wtype, bsz, pk, w + (size_t)r * ws, ws, b0, nsb);
            for (int t = 0; t < nt; t += TR) {
                const int m = LC_MIN(TR, nt - t);
                if (m != m_configured) tile_configure(m, G), m_configured = m;
                const uint8_t *xt = x + (size_t)t * xs + (size_t)b0 * sizeof(block_q8_K);
                float *yt = y + (size_t)t * ldy + r;
                if (m == TR)
                    tile_tokens_k(wtype, G, TR, nsb, xt, xs, pk, yt, ldy, b0 == 0);
                else
                    tile_tokens_k(wtype, G, m, nsb, xt, xs, pk, yt, ldy, b0 == 0);
            }
        }
    }
    tile_release();
}

AMX_GEMM(gemm_q4_K_amx, gemm_k_amx, LC_TYPE_Q4_K, avx512_q4_K)
AMX_GEMM(gemm_q6_K_amx, gemm_k_amx, LC_TYPE_Q6_K, avx512_q6_K)

bool lc__amx_enable(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM_ = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

void lc__kernels_fill_amx(lc_kernels *k) {
    vnni_q8_0 = k->gemm[LC_TYPE_Q8_0];
    k->gemm[LC_TYPE_Q8_0] = gemm_q8_0_amx;
    k->gemm_r8[LC_TYPE_Q8_0] = NULL; /* the tiles read rows as the file stores them */
    if (k->gemm[LC_TYPE_Q4_0] && lc_vec_dot_type(LC_TYPE_Q4_0) == LC_TYPE_Q8_0) {
        avx512_q4_0 = k->gemm[LC_TYPE_Q4_0];
        k->gemm[LC_TYPE_Q4_0] = gemm_q4_0_amx;
        k->gemm_r8[LC_TYPE_Q4_0] = NULL; /* the tiles read rows as the file stores them: no repacking at load */
    }
    if (k->gemm[LC_TYPE_Q4_K] && lc_vec_dot_type(LC_TYPE_Q4_K) == LC_TYPE_Q8_K) {
        avx512_q4_K = k->gemm[LC_TYPE_Q4_K];
        k->gemm[LC_TYPE_Q4_K] = gemm_q4_K_amx;
        k->gemm_r8[LC_TYPE_Q4_K] = NULL;
    }
    if (k->gemm[LC_TYPE_Q6_K] && lc_vec_dot_type(LC_TYPE_Q6_K) == LC_TYPE_Q8_K) {
        avx512_q6_K = k->gemm[LC_TYPE_Q6_K];
        k->gemm[LC_TYPE_Q6_K] = gemm_q6_K_amx;
        k->gemm_r8[LC_TYPE_Q6_K] = NULL;
    }
}
