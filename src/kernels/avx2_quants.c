/* avx2_quants.c - the 4/5-bit, K-quant and IQ4 kernels (qdot_impl.h) with AVX2 integer dot products: |w| times
** sign(x, w) through VPMADDUBSW (products of a weight in -128..127 and an activation in -127..127 never saturate
** the 16-bit pair sums), then VPMADDWD into 32-bit lanes. Below them, faster matrix kernels for the types that carry
** most models (Q4_0, Q4_K, Q6_K): 8 rows in the lanes of a register, for the GEMV and, staged, for the GEMM; their
** vec_dot stays qdot_impl.h's, which they equal bit for bit.
*/
#include "kernels.h"

#include "../quant/quants.h"

#include <immintrin.h>

#define QD_ATTR

static inline __m256i qd_mul_i8(__m256i w, __m256i x) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

static inline int32_t qd_hsum(__m256i p) {
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
    return _mm_cvtsi128_si32(q);
}

static inline int32_t qd_idot32(const int8_t *q, const int8_t *x) {
    return qd_hsum(qd_mul_i8(_mm256_loadu_si256((const __m256i *)q), _mm256_loadu_si256((const __m256i *)x)));
}

/* 32 bytes = groups 2c (lanes 0..3 after VPMADDWD) and 2c+1 (lanes 4..7), each times its scale. */
static inline int32_t qd_idot256(const int8_t *q, const int8_t *x, const int32_t *sc) {
    const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        const __m256i p = qd_mul_i8(_mm256_loadu_si256((const __m256i *)(q + 32 * c)),
                                    _mm256_loadu_si256((const __m256i *)(x + 32 * c)));
        const __m256i s = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(sc + 2 * c))),
                                                      spread);
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, s));
    }
    return qd_hsum(acc);
}

static inline void qd_hsum8(const __m256i v[8], int32_t *out) {
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
    _mm256_storeu_si256((__m256i *)out, _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20),
                                                         _mm256_permute2x128_si256(q0, q1, 0x31)));
}
#define QD_IDOT32X8(Q, X, out)                                                                                         \
    do {                                                                                                             \
        __m256i p_[8];                                                                                               \
        for (int j = 0; j < 8; j++) p_[j] = qd_mul_i8((__m256i)(Q), _mm256_loadu_si256((const __m256i *)(X)));       \
        qd_hsum8(p_, out);                                                                                           \
    } while (0)

#define QD_IDOT32 qd_idot32
#define QD_IDOT256 qd_idot256
#define QD_IDOT32V(v, x) qd_hsum(qd_mul_i8((__m256i)(v), _mm256_loadu_si256((const __m256i *)(x))))
#include "qdot_impl.h"

/* ---------------------------------------------------------------------------------------------------------------
** Q4_0, Q4_K and Q6_K: kernels that keep eight outputs in the eight lanes of a register.
**
** The weights' quants are used unsigned (Q4_0 and Q4_K nibbles 0..15, Q6_K's q + 32 in 0..63) as VPMADDUBSW's
** first operand, the activations signed as its second, so no sign tricks are needed; the offsets come back exactly
** through the activations' block sums (Q4_0: -8 * sum x, Q6_K: -32 * sum_g sc_g * bsum_g). Integer sums are exact
** whatever their order, and each lane then evaluates its block's float expression exactly as the reference does
** (fin_* above), adding the blocks in order: the results are bit-identical to the reference and to vec_dot.
** GEMV (decode): lanes are 8 weight rows, read side by side; each row's 32- or 256-element partial sums are reduced
** by one transposing reduction for the 8 rows (qd_hsum8), so there is no horizontal sum per row and block and no
** chain of dependent scalar adds. */

#define INLINE static inline __attribute__((always_inline))

/* Rows r0..r0+7 of W (rows past nr repeat the last one; their lanes are dropped). */
INLINE void group_rows(const uint8_t *w, size_t ws, int r0, int nr, const uint8_t *rows[8]) {
    for (int r = 0; r < 8; r++) rows[r] = w + (size_t)LC_MIN(r0 + r, nr - 1) * ws;
}
INLINE void store_lanes(float *y, int n, __m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int r = 0; r < n; r++) y[r] = t[r];
}
INLINE __m256 load_lanes(const float *y, int n) {
    float t[8] = {0};
    for (int r = 0; r < n; r++) t[r] = y[r];
    return _mm256_loadu_ps(t);
}
/* The fp16 at byte offset off of each of the 8 rows' block b (blocks bs bytes long), as f32 lanes (exact). */
INLINE __m256 gather_d(const uint8_t *const rows[8], size_t off) {
    uint16_t h[8];
    for (int r = 0; r < 8; r++) memcpy(&h[r], rows[r] + off, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}
INLINE __m256i nib_lo(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(15)); }
INLINE __m256i nib_hi(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15)); }
/* A Q4_0 block's 32 nibbles in element order: low nibbles (elements 0..15), then high ones (16..31). The 16 bytes
** are broadcast by the load itself and the upper half shifted by a per-lane count: one shuffle fewer than shifting a
** copy and inserting it, which made the GEMV 11% faster in cache (it is bound by instruction throughput there). */
INLINE __m256i q4_0_quants(const uint8_t *qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return nib_lo(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)));
}
INLINE __m256i ones16(void) { return _mm256_set1_epi16(1); }
/* Sum of the 32 int8 of an activation block, in every lane. */
INLINE int32_t sum_i8x32(const int8_t *x) {
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)x)),
                                        ones16());
    return qd_hsum(s);
}

/* For blocks b < nb of an activation row: bias[b] = 8 * sum of its quants, dx[b] = its scale. */
INLINE void q8_0_sums(const block_q8_0 *x, int nb, int32_t *bias, float *dx) {
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        __m256i p[8];
        for (int j = 0; j < 8; j++)
            p[j] = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)x[b + j].qs)), ones16());
        int32_t s[8];
        qd_hsum8(p, s);
        _mm256_storeu_si256((__m256i *)(bias + b), _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)s), 3));
        const uint8_t *rows[8];
        for (int j = 0; j < 8; j++) rows[j] = (const uint8_t *)&x[b + j];
        _mm256_storeu_ps(dx + b, gather_d(rows, 0));
    }
    for (; b < nb; b++) {
        bias[b] = 8 * sum_i8x32(x[b].qs);
        dx[b] = lc_fp16_lut(x[b].d);
    }
}

/* Software prefetch of the next 8-row group while this one is read: 8 rows side by side are 8 interleaved streams
** within a few pages, which the hardware prefetchers follow poorly (measured 2x slower from DRAM without this); the
** next group is one contiguous range, fetched at the pace the current group is consumed (8 rows' worth of the
** blocks of one iteration per iteration). */
INLINE void gv_prefetch(const uint8_t **pf, const uint8_t *goal) {
    for (; *pf < goal; *pf += 64) _mm_prefetch((const char *)*pf, _MM_HINT_T0);
}
/* The next group's range [*start, *end) for rows r0 + 8 .. r0 + 15 of W (clipped to nr rows). */
INLINE const uint8_t *gv_next(const uint8_t *w, size_t ws, int r0, int nr, const uint8_t **end) {
    *end = w + (size_t)LC_MIN(r0 + 16, nr) * ws;
    return w + (size_t)LC_MIN(r0 + 8, nr) * ws;
}
#define GV_PREFETCH_DECL(W, WS, R0, NR, TOTAL)                                                                        \
    const uint8_t *pf_end, *pf = gv_next(W, WS, R0, NR, &pf_end);                                                    \
    const uint8_t *const pf_start = pf;                                                                              \
    const size_t pf_range = (size_t)(pf_end - pf), pf_rate = pf_range / (size_t)(TOTAL) + 1;                         \
    size_t pf_done = 0
#define GV_PREFETCH()                                                                                                  \
    do {                                                                                                             \
        pf_done = LC_MIN(pf_range, pf_done + pf_rate);                                                               \
        gv_prefetch(&pf, pf_start + pf_done);                                                                        \
    } while (0)

/* GEMV, one group of 8 rows as stored: blocks [b0, b0 + nbc) added to acc (bias, dx: those blocks' activation sums
** and scales). */
INLINE __m256 gv_rows_q4_0(const uint8_t *w, size_t ws, int r0, int nr, int nb, int b0, int nbc, const block_q8_0 *x,
                           const int32_t *bias, const float *dx, __m256 acc) {
    const uint8_t *rows[8];
    group_rows(w + (size_t)b0 * sizeof(block_q4_0), ws, r0, nr, rows);
    GV_PREFETCH_DECL(w, ws, r0, nr, nb);
    for (int b = 0; b < nbc; b++) {
        GV_PREFETCH();
        const __m256i xv = _mm256_loadu_si256((const __m256i *)x[b0 + b].qs);
        const size_t off = (size_t)b * sizeof(block_q4_0);
        __m256i p[8];
        for (int r = 0; r < 8; r++)
            p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(q4_0_quants(rows[r] + off + 2), xv), ones16());
        int32_t is[8];
        qd_hsum8(p, is);
        const __m256i isum = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)is), _mm256_set1_epi32(bias[b]));
        const __m256 d = _mm256_mul_ps(gather_d(rows, off), _mm256_set1_ps(dx[b]));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), d));
    }
    return acc;
}

/* The 8 6-bit scales and mins of a Q4_K/Q5_K scales[12] array as bytes (lc__k4_scale_min, four at a time). */
INLINE void k4_scales8(const uint8_t *q, uint64_t *sc, uint64_t *m) {
    uint32_t a, b, c;
    memcpy(&a, q, 4), memcpy(&b, q + 4, 4), memcpy(&c, q + 8, 4);
    const uint32_t s_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    *sc = (a & 0x3f3f3f3fu) | (uint64_t)s_hi << 32;
    *m = (b & 0x3f3f3f3fu) | (uint64_t)m_hi << 32;
}
/* pshufb control: every 16-bit lane = byte g of each 128-bit half, zero-extended. */
INLINE __m256i bcast16_ctl(int g) { return _mm256_set1_epi16((short)(0x8000 | g)); }

static void gemv_q4_K(int n, int nr, const uint8_t *w, size_t ws, const block_q8_K *x, float *y) {
    const int nb = n / QK_K;
    for (int r0 = 0; r0 < nr; r0 += 8) {
        const uint8_t *rows[8];
        group_rows(w, ws, r0, nr, rows);
        __m256 acc = _mm256_setzero_ps();
        GV_PREFETCH_DECL(w, ws, r0, nr, nb);
        for (int b = 0; b < nb; b++) {
            GV_PREFETCH();
            const block_q8_K *xb = &x[b];
            const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)xb->bsums),
                                              _mm_loadu_si128((const __m128i *)(xb->bsums + 8)));
            __m256i is[8], ms[8];
            for (int r = 0; r < 8; r++) {
                const block_q4_K *wb = (const block_q4_K *)rows[r] + b;
                uint64_t sc, m;
                k4_scales8(wb->scales, &sc, &m);
                const __m256i scv = _mm256_set1_epi64x((long long)sc);
                __m256i a = _mm256_setzero_si256();
                for (int p = 0; p < 4; p++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * p));
                    const __m256i lo = _mm256_maddubs_epi16(nib_lo(v), _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * p)));
                    const __m256i hi =
                        _mm256_maddubs_epi16(nib_hi(v), _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * p + 32)));
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(lo, _mm256_shuffle_epi8(scv, bcast16_ctl(2 * p))));
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(hi, _mm256_shuffle_epi8(scv, bcast16_ctl(2 * p + 1))));
                }
                is[r] = a;
                ms[r] = _mm256_zextsi128_si256(_mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m)), bs));
            }
            int32_t isum[8], msum[8];
            qd_hsum8(is, isum);
            qd_hsum8(ms, msum);
            const __m256 xd = _mm256_set1_ps(xb->d);
            const size_t off = (size_t)b * sizeof(block_q4_K);
            const __m256 d = _mm256_mul_ps(gather_d(rows, off), xd), dm = _mm256_mul_ps(gather_d(rows, off + 2), xd);
            const __m256 t = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)isum))),
                                           _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)msum))));
            acc = _mm256_add_ps(acc, t);
        }
        store_lanes(y + r0, LC_MIN(8, nr - r0), acc);
    }
}

/* Lanes 0..7 = scale 2c, lanes 8..15 = scale 2c+1 of sc16 (16 int16 scales). */
INLINE __m256i q6_scale_pair(__m256i sc16, int c) {
    const __m256i ctl = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2,
                                         3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(c)), ctl);
}
/* Elements 128h + 32k + l (k = 0..3, l < 32) of a Q6_K block as q + 32 (0..63). */
INLINE void q6_quants(const block_q6_K *b, int h, __m256i q[4]) {
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    const __m256i m2 = _mm256_set1_epi8(0x30);
    q[0] = _mm256_or_si256(nib_lo(l0), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m2));
    q[1] = _mm256_or_si256(nib_lo(l1), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m2));
    q[2] = _mm256_or_si256(nib_hi(l0), _mm256_and_si256(hb, m2));
    q[3] = _mm256_or_si256(nib_hi(l1), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m2));
}

static void gemv_q6_K(int n, int nr, const uint8_t *w, size_t ws, const block_q8_K *x, float *y) {
    const int nb = n / QK_K;
    for (int r0 = 0; r0 < nr; r0 += 8) {
        const uint8_t *rows[8];
        group_rows(w, ws, r0, nr, rows);
        __m256 acc = _mm256_setzero_ps();
        GV_PREFETCH_DECL(w, ws, r0, nr, nb);
        for (int b = 0; b < nb; b++) {
            GV_PREFETCH();
            const block_q8_K *xb = &x[b];
            const __m256i bsums = _mm256_loadu_si256((const __m256i *)xb->bsums);
            __m256i is[8];
            for (int r = 0; r < 8; r++) {
                const block_q6_K *wb = (const block_q6_K *)rows[r] + b;
                const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
                __m256i a = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5); /* 32 * sum_g sc_g bsum_g */
                a = _mm256_sub_epi32(_mm256_setzero_si256(), a);
                for (int h = 0; h < 2; h++) {
                    __m256i q[4];
                    q6_quants(wb, h, q);
                    for (int k = 0; k < 4; k++) {
                        const int c = 4 * h + k;
                        const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * c)));
                        a = _mm256_add_epi32(a, _mm256_madd_epi16(p, q6_scale_pair(sc16, c)));
                    }
                }
                is[r] = a;
            }
            int32_t isum[8];
            qd_hsum8(is, isum);
            const __m256 d = _mm256_mul_ps(gather_d(rows, (size_t)b * sizeof(block_q6_K) + 208), _mm256_set1_ps(xb->d));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)isum))));
        }
        store_lanes(y + r0, LC_MIN(8, nr - r0), acc);
    }
}

/* GEMM (prefill): rows are unpacked 8 at a time into a lane layout on the stack ("x8"): for each 4-element chunk of
** a block one 32-byte vector holds the chunk's 4 quants of each of the 8 rows (row r in 32-bit lane r), next to the
** rows' scales as lanes. A tile of 8G rows x T tokens then broadcasts each 4-byte chunk of a token's activations to
** all lanes and multiplies it with the G staged vectors, the rows' sums staying in their lanes: no horizontal sums.
** Partial sums stay 16-bit for as many chunks as cannot overflow (Q4: 8 chunks, 2 * 8 * 15 * 128 < 2^15; Q6_K: 2,
** 2 * 2 * 63 * 128 < 2^15). X8_GROUPS lane groups and a slice of the row's blocks are staged at a time (about
** 20 KiB, so they stay in L1 while every token passes over them); a row's float sum continues in y from slice to
** slice, in block order. */
enum { X8_GROUPS = 4, X8_T = 3, X8_G = 2 }; /* groups staged; tile: X8_G groups x X8_T tokens */

/* out[c] lane r = 32-bit element c of v[r] (an 8x8 transpose of 32-bit elements). */
INLINE void transpose8(const __m256i v[8], __m256i *out) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) {
        u[4 * h] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int c = 0; c < 4; c++) {
        out[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
        out[c + 4] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
    }
}
INLINE __m256i bcast32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
/* 32-bit lanes (lo[r] | hi[r] << 16) from 8 16-bit pairs. */
INLINE __m256i pair16(const int16_t lo[8], const int16_t hi[8]) {
    int32_t v[8];
    for (int r = 0; r < 8; r++) v[r] = (int32_t)((uint32_t)(uint16_t)lo[r] | (uint32_t)(uint16_t)hi[r] << 16);
    return _mm256_loadu_si256((const __m256i *)v);
}
/* Tile output for group rows [r, r + nv) and one token: the running sum (a later slice) or zero. */
INLINE __m256 tile_load(const float *y, int nv, bool cont) {
    if (!cont) return _mm256_setzero_ps();
    return nv == 8 ? _mm256_loadu_ps(y) : load_lanes(y, nv);
}
INLINE void tile_store(float *y, int nv, __m256 v) {
    if (nv == 8) _mm256_storeu_ps(y, v);
    else store_lanes(y, nv, v);
}

INLINE void zero_tile(__m256i a[X8_G][X8_T]) {
#pragma GCC unroll 8
    for (int g = 0; g < X8_G; g++)
#pragma GCC unroll 8
        for (int t = 0; t < X8_T; t++) a[g][t] = _mm256_setzero_si256();
}

/* a[g][t] = the 16-bit lane sums over NC chunks of the staged vectors Q[g][0..NC) times token t's activation bytes
** Xq[t][0..4*NC), broadcast 4 at a time. */
INLINE void x8_dot16(const int G, const int T, const int NC, const __m256i *const Q[X8_G], const int8_t *const Xq[X8_T],
                     __m256i a[X8_G][X8_T]) {
    zero_tile(a);
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) {
        __m256i xb[X8_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xb[t] = bcast32(Xq[t] + 4 * c);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) {
            const __m256i wq = Q[g][c];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) a[g][t] = _mm256_add_epi16(a[g][t], _mm256_maddubs_epi16(wq, xb[t]));
        }
    }
}

/* ---- Q4_0 ---- */
typedef struct {
    __m256i q[8]; /* chunk c: quants 4c..4c+3 (0..15) of row r in lane r */
    __m256 d;
} x8_q4_0;
enum { X8_KC_Q4_0 = 16 }; /* blocks per slice: 4 groups x 16 x 288 bytes */

static void stage_q4_0(const uint8_t *w, size_t ws, int r0, int nr, int k0, int kc, x8_q4_0 *s) {
    const uint8_t *rows[8];
    group_rows(w, ws, r0, nr, rows);
    for (int b = 0; b < kc; b++) {
        const size_t off = (size_t)(k0 + b) * sizeof(block_q4_0);
        __m256i v[8];
        for (int r = 0; r < 8; r++) v[r] = q4_0_quants(rows[r] + off + 2);
        transpose8(v, s[b].q);
        s[b].d = gather_d(rows, off);
    }
}

INLINE void tile_q4_0(const int G, const int T, int kc, const x8_q4_0 *const S[X8_G], const block_q8_0 *const X[X8_T],
                      const int32_t (*bias)[X8_KC_Q4_0], const float (*dx)[X8_KC_Q4_0], __m256 acc[X8_G][X8_T]) {
    for (int b = 0; b < kc; b++) {
        const __m256i *Q[X8_G];
        for (int g = 0; g < X8_G; g++) Q[g] = S[LC_MIN(g, G - 1)][b].q;
        const int8_t *Xq[X8_T];
        for (int t = 0; t < X8_T; t++) Xq[t] = X[LC_MIN(t, T - 1)][b].qs;
        __m256i a[X8_G][X8_T];
        x8_dot16(G, T, 8, Q, Xq, a);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const __m256i is = _mm256_sub_epi32(_mm256_madd_epi16(a[g][t], ones16()), _mm256_set1_epi32(bias[t][b]));
                const __m256 d = _mm256_mul_ps(S[g][b].d, _mm256_set1_ps(dx[t][b]));
                acc[g][t] = _mm256_add_ps(acc[g][t], _mm256_mul_ps(_mm256_cvtepi32_ps(is), d));
            }
    }
}

/* The tile sweep shared by the four types: for each staged slice, XT tokens (XT <= X8_T) over group pairs.
** PREP(j, tok) fills the activation-side arrays of token tok for slot j; TILE(G, T) runs one tile. */
#define X8_SWEEP(KC, XT, STAGE, PREP, TILE)                                                                          \
    do {                                                                                                             \
        for (int r0 = 0; r0 < nr; r0 += 8 * X8_GROUPS) {                                                             \
            const int ng = LC_MIN(X8_GROUPS, (nr - r0 + 7) / 8);                                                     \
            for (int k0 = 0; k0 < nb; k0 += KC) {                                                                    \
                const int kc = LC_MIN(KC, nb - k0);                                                                  \
                for (int g = 0; g < ng; g++) STAGE;                                                                  \
                for (int t0 = 0; t0 < nt; t0 += XT) {                                                                \
                    const int tn = LC_MIN(XT, nt - t0);                                                              \
                    for (int j = 0; j < tn; j++) PREP;                                                               \
                    for (int g0 = 0; g0 < ng; g0 += X8_G) {                                                          \
                        const int gn = LC_MIN(X8_G, ng - g0);                                                        \
                        __m256 acc[X8_G][X8_T];                                                                      \
                        for (int g = 0; g < gn; g++)                                                                 \
                            for (int t = 0; t < tn; t++) {                                                           \
                                const int r = r0 + 8 * (g0 + g);                                                     \
                                acc[g][t] = tile_load(y + (size_t)(t0 + t) * ldy + r, LC_MIN(8, nr - r), k0 > 0);    \
                            }                                                                                        \
                        if (gn == 2 && tn == 3) TILE(2, 3);                                                          \
                        else if (gn == 2 && tn == 2) TILE(2, 2);                                                     \
                        else if (gn == 2) TILE(2, 1);                                                                \
                        else if (tn == 3) TILE(1, 3);                                                                \
                        else if (tn == 2) TILE(1, 2);                                                                \
                        else TILE(1, 1);                                                                             \
                        for (int g = 0; g < gn; g++)                                                                 \
                            for (int t = 0; t < tn; t++) {                                                           \
                                const int r = r0 + 8 * (g0 + g);                                                     \
                                tile_store(y + (size_t)(t0 + t) * ldy + r, LC_MIN(8, nr - r), acc[g][t]);            \
                            }                                                                                        \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    } while (0)

/* ---- Q4_0 in the r8 layout (kernels.h: 8 rows interleaved block by block, repacked at load) ----
** The same sums as gemv_q4_0 and gemm_x8_q4_0, in the same order, so the same bits; but a group is one contiguous
** range, a block's 8 scales one load, and its quants four loads already in lanes: no transposing reduction, no
** gathered scales, one VPMADDWD per block and 8 rows. */
INLINE const uint8_t *r8_block(const uint8_t *grp, int b) { return grp + (size_t)b * 8 * sizeof(block_q4_0); }

/* GEMV, one group of 8 rows in the r8 layout: as gv_rows_q4_0. */
INLINE __m256 gv_r8_q4_0(const uint8_t *w, size_t ws, int r0, int nr, int nb, int b0, int nbc, const block_q8_0 *x,
                         const int32_t *bias, const float *dx, __m256 acc) {
    const uint8_t *grp = w + (size_t)r0 * ws;
    GV_PREFETCH_DECL(w, ws, r0, nr, nb);
    for (int b = 0; b < nbc; b++) {
        GV_PREFETCH();
        const uint8_t *blk = r8_block(grp, b0 + b);
        const int8_t *xq = x[b0 + b].qs;
        __m256i a = _mm256_setzero_si256(); /* 16-bit sums of 8 chunks: 2 * 8 * 15 * 127 < 2^15 */
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * j));
            a = _mm256_add_epi16(a, _mm256_maddubs_epi16(nib_lo(v), bcast32(xq + 4 * j)));
            a = _mm256_add_epi16(a, _mm256_maddubs_epi16(nib_hi(v), bcast32(xq + 16 + 4 * j)));
        }
        const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(a, ones16()), _mm256_set1_epi32(bias[b]));
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)), _mm256_set1_ps(dx[b]));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), d));
    }
    return acc;
}

/* Y rows [0, nr) for one Q8_0 activation row, W as stored or r8; blocks in chunks so the per-block activation sums
** and scales fit on the stack. */
INLINE void gemv_q4_0(const bool r8, int n, int nr, const uint8_t *w, size_t ws, const block_q8_0 *x, float *y) {
    enum { CHUNK = 512 };
    float dx[CHUNK];
    int32_t bias[CHUNK];
    const int nb = n / QK4_0;
    for (int b0 = 0; b0 < nb; b0 += CHUNK) {
        const int nbc = LC_MIN(CHUNK, nb - b0);
        q8_0_sums(x + b0, nbc, bias, dx);
        for (int r0 = 0; r0 < nr; r0 += 8) {
            const int nv = LC_MIN(8, nr - r0);
            __m256 acc = b0 ? load_lanes(y + r0, nv) : _mm256_setzero_ps();
            acc = r8 ? gv_r8_q4_0(w, ws, r0, nr, nb, b0, nbc, x, bias, dx, acc)
                     : gv_rows_q4_0(w, ws, r0, nr, nb, b0, nbc, x, bias, dx, acc);
            store_lanes(y + r0, nv, acc);
        }
    }
}

static void stage_r8_q4_0(const uint8_t *w, size_t ws, int r0, int k0, int kc, x8_q4_0 *s) {
    const uint8_t *grp = w + (size_t)r0 * ws;
    for (int b = 0; b < kc; b++) {
        const uint8_t *blk = r8_block(grp, k0 + b);
        for (int j = 0; j < 4; j++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * j));
            s[b].q[j] = nib_lo(v), s[b].q[4 + j] = nib_hi(v);
        }
        s[b].d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
    }
}

/* The Q4_0 GEMM over W as stored (rows) or repacked (r8: nr a multiple of 8, lc_matmul_r8 gives a last partial
** group to the rows' kernel); only the staging differs. */
INLINE void gemm_q4_0_staged(const bool r8, int n, int nr, int nt, const void *vw, size_t ws, const void *vx,
                             size_t xs, float *y, size_t ldy) {
    if (nt == 1) {
        gemv_q4_0(r8, n, nr, vw, ws, vx, y);
        return;
    }
    x8_q4_0 stage[X8_GROUPS][X8_KC_Q4_0];
    int32_t bias[X8_T][X8_KC_Q4_0];
    float dx[X8_T][X8_KC_Q4_0];
    const int nb = n / QK4_0;
    const block_q8_0 *X[X8_T];
#define PREP_Q4_0                                                                                                      \
    do {                                                                                                             \
        X[j] = (const block_q8_0 *)((const uint8_t *)vx + (size_t)(t0 + j) * xs) + k0;                              \
        q8_0_sums(X[j], kc, bias[j], dx[j]);                                                                         \
    } while (0)
#define TILE_Q4_0(G, T)                                                                                                \
    do {                                                                                                             \
        const x8_q4_0 *S[X8_G] = {stage[g0], stage[LC_MIN(g0 + 1, X8_GROUPS - 1)]};                                 \
        tile_q4_0(G, T, kc, S, X, (const int32_t(*)[X8_KC_Q4_0])bias, (const float(*)[X8_KC_Q4_0])dx, acc);          \
    } while (0)
    X8_SWEEP(X8_KC_Q4_0, X8_T,
             r8 ? stage_r8_q4_0(vw, ws, r0 + 8 * g, k0, kc, stage[g])
                : stage_q4_0(vw, ws, r0 + 8 * g, nr, k0, kc, stage[g]),
             PREP_Q4_0, TILE_Q4_0);
#undef PREP_Q4_0
#undef TILE_Q4_0
}
static void gemm_x8_q4_0(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    gemm_q4_0_staged(false, n, nr, nt, vw, ws, vx, xs, y, ldy);
}
static void gemm_r8_q4_0(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    gemm_q4_0_staged(true, n, nr, nt, vw, ws, vx, xs, y, ldy);
}

/* ---- Q8_0 ----
** Both operands are signed bytes. The staged weights and the activations are widened to 16 bits, each 4-byte chunk
** split into its even and odd bytes: lane r of e[c] holds row r's weights 4c and 4c + 2, lane r of o[c] its weights
** 4c + 1 and 4c + 3; a token's activations are split the same way and broadcast a pair at a time. VPMADDWD adds two
** exact products into each 32-bit lane, which holds a whole block's sum (32 * 128 * 128 < 2^31) with no offset to
** take back, so the block's sum is exact and the float steps are the GEMV's: the same bits. A block of 8 rows and one
** token costs 16 VPMADDWD and 16 VPADDD (the adds run beside the multiplies; on Zen 3 VPMADDWD and VPMADDUBSW share
** two pipes). The 32-bit sums need one register per row group and token, so a tile holds 3 groups x 4 tokens in 12
** registers. It replaced a tile on the nibbles of x + 128 (VPMADDUBSW, two 16-bit sums per group and token, so 2 x 2
** tiles, and 3 VPMADDWD more per block to combine them): bench_kernels -T Q8_0 -c, one core, 2 / 8 / 32 / 512
** tokens: 55 / 83 / 95 / 94 -> 50 / 83 / 98 / 96 GFLOP/s (the widened stage costs more when few tokens share it);
** pp512 of the 1B-shaped Q8_0 model, 2 threads, alternated: 67-78 -> 78-89 t/s. */
typedef struct {
    __m256i e[8], o[8]; /* chunk c: row r's weights (4c, 4c + 2) and (4c + 1, 4c + 3), 16-bit, in lane r */
    __m256 d;
} x8_q8_0;
/* blocks per slice: 3 groups x 16 x 544 bytes; tile: all 3 staged groups x 4 tokens */
enum { X8_KC_Q8_0 = 16, X8_GQ = 3, X8_TQ = 4 };

/* The even bytes and the odd bytes of v's 16-bit lanes, sign-extended. */
INLINE void widen_pairs(__m256i v, __m256i *e, __m256i *o) {
    *e = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);
    *o = _mm256_srai_epi16(v, 8);
}

static void stage_q8_0(const uint8_t *w, size_t ws, int r0, int nr, int k0, int kc, int nb, x8_q8_0 *s) {
    const uint8_t *rows[8], *next[8];
    group_rows(w, ws, r0, nr, rows);
    /* the slice this group stages next (the same rows' next blocks, or the next rows' first): 8 rows side by side
    ** are 8 streams the hardware prefetchers follow poorly from DRAM */
    const bool last = k0 + kc >= nb;
    group_rows(w, ws, last ? LC_MIN(r0 + 8 * X8_GQ, nr - 1) : r0, nr, next);
    const size_t next_off = last ? 0 : (size_t)(k0 + kc) * sizeof(block_q8_0);
    for (int b = 0; b < kc; b++) {
        const size_t off = (size_t)(k0 + b) * sizeof(block_q8_0);
        for (int r = 0; r < 8; r++)
            _mm_prefetch((const char *)next[r] + next_off + (size_t)b * sizeof(block_q8_0), _MM_HINT_T0);
        __m256i v[8], q[8];
        for (int r = 0; r < 8; r++) v[r] = _mm256_loadu_si256((const __m256i *)(rows[r] + off + 2));
        transpose8(v, q);
        for (int c = 0; c < 8; c++) widen_pairs(q[c], &s[b].e[c], &s[b].o[c]);
        s[b].d = gather_d(rows, off);
    }
}

/* One token's blocks [0, kc): the activations split as the weights are (e[b][2c], e[b][2c + 1] = x[4c], x[4c + 2];
** o the odd ones), and their scales. */
typedef struct {
    int16_t e[X8_KC_Q8_0][16], o[X8_KC_Q8_0][16];
    float d[X8_KC_Q8_0];
} x8_act_q8_0;
static void prep_q8_0(const block_q8_0 *x, int kc, x8_act_q8_0 *a) {
    for (int b = 0; b < kc; b++) {
        __m256i e, o;
        widen_pairs(_mm256_loadu_si256((const __m256i *)x[b].qs), &e, &o);
        _mm256_storeu_si256((__m256i *)a->e[b], e);
        _mm256_storeu_si256((__m256i *)a->o[b], o);
        a->d[b] = lc_fp16_lut(x[b].d);
    }
}

INLINE void tile_x8_q8_0(const int G, const int T, int kc, const x8_q8_0 *const S[X8_GQ],
                         const x8_act_q8_0 *const A[X8_TQ], __m256 acc[X8_GQ][X8_TQ]) {
    for (int b = 0; b < kc; b++) {
        __m256i s[X8_GQ][X8_TQ];
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) s[g][t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const __m256i xe = bcast32(A[t]->e[b] + 2 * c), xo = bcast32(A[t]->o[b] + 2 * c);
#pragma GCC unroll 8
                for (int g = 0; g < G; g++) {
                    s[g][t] = _mm256_add_epi32(s[g][t], _mm256_madd_epi16(xe, S[g][b].e[c]));
                    s[g][t] = _mm256_add_epi32(s[g][t], _mm256_madd_epi16(xo, S[g][b].o[c]));
                    /* keeps each sum a chain in its own register: without it, GCC reassociated the unrolled adds of
                    ** the nibble tile this replaced into trees of products and spilled (41 against 79 GFLOP/s) */
                    __asm__("" : "+x"(s[g][t]));
                }
            }
        }
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const __m256 d = _mm256_mul_ps(S[g][b].d, _mm256_set1_ps(A[t]->d[b]));
                acc[g][t] = _mm256_add_ps(acc[g][t], _mm256_mul_ps(_mm256_cvtepi32_ps(s[g][t]), d));
            }
    }
}

/* ---- Q8_0 in the r8 layout (kernels.h) ----
** Staging is one load a chunk and no transpose; the GEMV takes a block of 8 rows in 8 loads with the rows already in
** the lanes, and adds each block's exact sum times d_w * d_x in block order, as gemv_q8_0 (avx2.c) and vec_dot do:
** the same bits. */
INLINE const uint8_t *r8_block_q8_0(const uint8_t *grp, int b) { return grp + (size_t)b * 8 * sizeof(block_q8_0); }
/* Prefetch of the lines of [p, p + len). */
INLINE void prefetch_range(const uint8_t *p, size_t len) {
    for (size_t o = 0; o < len; o += 64) _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

static void stage_r8_q8_0(const uint8_t *w, size_t ws, int r0, int nr, int k0, int kc, int nb, x8_q8_0 *s) {
    const uint8_t *grp = w + (size_t)r0 * ws;
    /* the slice this group stages next, as stage_q8_0; here one contiguous range (none after the last group) */
    const int rn = r0 + 8 * X8_GQ;
    const uint8_t *next = k0 + kc < nb ? r8_block_q8_0(grp, k0 + kc) : rn < nr ? w + (size_t)rn * ws : NULL;
    for (int b = 0; b < kc; b++) {
        if (next) prefetch_range(r8_block_q8_0(next, b), 8 * sizeof(block_q8_0));
        const uint8_t *blk = r8_block_q8_0(grp, k0 + b);
        for (int c = 0; c < 8; c++)
            widen_pairs(_mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c)), &s[b].e[c], &s[b].o[c]);
        s[b].d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
    }
}

/* GEMV, one group of 8 rows in the r8 layout: blocks [b0, b0 + nbc) added to acc (dx: those blocks' activation
** scales). A thread's groups are one range, read front to back: the prefetch runs a fixed 2 KiB ahead in it, as the
** rows' GEMV does in a row (tg 1B Q8_0, 2 threads, medians of 5 alternated runs: 21.2 t/s; pacing the next group's
** prefetch to this one, as gv_r8_q4_0 does: 18.7; the rows before repacking: 20.2). */
INLINE __m256 gv_r8_q8_0(const uint8_t *grp, int b0, int nbc, const block_q8_0 *x, const float *dx, __m256 acc) {
    for (int b = 0; b < nbc; b++) {
        const uint8_t *blk = r8_block_q8_0(grp, b0 + b);
        prefetch_range(blk + 2048, 8 * sizeof(block_q8_0));
        const int8_t *xq = x[b0 + b].qs;
        __m256i s = _mm256_setzero_si256(); /* a pair of products fits 16 bits (2 * 128 * 127), two do not */
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c)), xc = bcast32(xq + 4 * c);
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(xc, v));
            s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones16()));
        }
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)), _mm256_set1_ps(dx[b]));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(s), d));
    }
    return acc;
}

/* Y rows [0, nr) (whole groups) for one activation row; blocks in chunks so their scales fit on the stack. */
static void gemv_r8_q8_0(int n, int nr, const uint8_t *w, size_t ws, const block_q8_0 *x, float *y) {
    enum { CHUNK = 512 };
    float dx[CHUNK];
    const int nb = n / QK8_0;
    for (int b0 = 0; b0 < nb; b0 += CHUNK) {
        const int nbc = LC_MIN(CHUNK, nb - b0);
        for (int j = 0; j < nbc; j++) dx[j] = lc_fp16_lut(x[b0 + j].d);
        for (int r0 = 0; r0 < nr; r0 += 8) {
            const __m256 acc = b0 ? _mm256_loadu_ps(y + r0) : _mm256_setzero_ps();
            _mm256_storeu_ps(y + r0, gv_r8_q8_0(w + (size_t)r0 * ws, b0, nbc, x, dx, acc));
        }
    }
}

/* The staged Q8_0 GEMM over W as stored (rows) or repacked (r8: nr a multiple of 8); only the staging differs. For
** each slice of 3 groups' blocks, tokens 4 at a time; a row's float sum continues in y from slice to slice. */
INLINE void gemm_q8_0_staged(const bool r8, int n, int nr, int nt, const void *vw, size_t ws, const void *vx,
                             size_t xs, float *y, size_t ldy) {
    x8_q8_0 stage[X8_GQ][X8_KC_Q8_0];
    x8_act_q8_0 act[X8_TQ];
    const int nb = n / QK8_0;
    for (int r0 = 0; r0 < nr; r0 += 8 * X8_GQ) {
        const int gn = LC_MIN(X8_GQ, (nr - r0 + 7) / 8);
        const x8_q8_0 *S[X8_GQ];
        for (int g = 0; g < X8_GQ; g++) S[g] = stage[LC_MIN(g, gn - 1)];
        for (int k0 = 0; k0 < nb; k0 += X8_KC_Q8_0) {
            const int kc = LC_MIN(X8_KC_Q8_0, nb - k0);
            for (int g = 0; g < gn; g++)
                r8 ? stage_r8_q8_0(vw, ws, r0 + 8 * g, nr, k0, kc, nb, stage[g])
                   : stage_q8_0(vw, ws, r0 + 8 * g, nr, k0, kc, nb, stage[g]);
            for (int t0 = 0; t0 < nt; t0 += X8_TQ) {
                const int tn = LC_MIN(X8_TQ, nt - t0);
                const x8_act_q8_0 *A[X8_TQ];
                for (int t = 0; t < X8_TQ; t++) A[t] = &act[LC_MIN(t, tn - 1)];
                for (int j = 0; j < tn; j++)
                    prep_q8_0((const block_q8_0 *)((const uint8_t *)vx + (size_t)(t0 + j) * xs) + k0, kc, &act[j]);
                __m256 acc[X8_GQ][X8_TQ];
                for (int g = 0; g < gn; g++)
                    for (int t = 0; t < tn; t++) {
                        const int r = r0 + 8 * g;
                        acc[g][t] = tile_load(y + (size_t)(t0 + t) * ldy + r, LC_MIN(8, nr - r), k0 > 0);
                    }
#define TILE_Q8_0(G, T)                                                                                                \
    case (G) * 8 + (T): tile_x8_q8_0(G, T, kc, S, A, acc); break
                switch (gn * 8 + tn) {
                    TILE_Q8_0(3, 4); TILE_Q8_0(3, 3); TILE_Q8_0(3, 2); TILE_Q8_0(3, 1);
                    TILE_Q8_0(2, 4); TILE_Q8_0(2, 3); TILE_Q8_0(2, 2); TILE_Q8_0(2, 1);
                    TILE_Q8_0(1, 4); TILE_Q8_0(1, 3); TILE_Q8_0(1, 2); TILE_Q8_0(1, 1);
                }
#undef TILE_Q8_0
                for (int g = 0; g < gn; g++)
                    for (int t = 0; t < tn; t++) {
                        const int r = r0 + 8 * g;
                        tile_store(y + (size_t)(t0 + t) * ldy + r, LC_MIN(8, nr - r), acc[g][t]);
                    }
            }
        }
    }
}
void lc__gemm_x8_q8_0_avx2(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                           size_t ldy) {
    gemm_q8_0_staged(false, n, nr, nt, vw, ws, vx, xs, y, ldy);
}
static void gemm_r8_q8_0(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    if (nt == 1) gemv_r8_q8_0(n, nr, vw, ws, vx, y);
    else gemm_q8_0_staged(true, n, nr, nt, vw, ws, vx, xs, y, ldy);
}

/* ---- Q4_K ---- */
typedef struct {
    __m256i q[64];  /* chunk c of the super-block: quants 4c..4c+3 of row r in lane r */
    __m256i sc[8];  /* sub-block scale of row r in both 16-bit halves of lane r */
    __m256i mn[4];  /* mins of sub-blocks 2k, 2k+1 of row r in the 16-bit halves of lane r */
    __m256 d, dmin;
} x8_q4_K;
enum { X8_KC_K = 2 }; /* super-blocks per slice: 4 groups x 2 x 2496 bytes (Q6_K: 2848) */

static void stage_q4_K(const uint8_t *w, size_t ws, int r0, int nr, int k0, int kc, x8_q4_K *s) {
    const uint8_t *rows[8];
    group_rows(w, ws, r0, nr, rows);
    for (int b = 0; b < kc; b++) {
        const size_t off = (size_t)(k0 + b) * sizeof(block_q4_K);
        uint8_t sc[8][8], mn[8][8];
        for (int p = 0; p < 4; p++) {
            __m256i lo[8], hi[8];
            for (int r = 0; r < 8; r++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(((const block_q4_K *)(rows[r] + off))->qs + 32 * p));
                lo[r] = nib_lo(v), hi[r] = nib_hi(v);
            }
            transpose8(lo, s[b].q + 16 * p);
            transpose8(hi, s[b].q + 16 * p + 8);
        }
        for (int r = 0; r < 8; r++) {
            uint64_t a, m;
            k4_scales8(((const block_q4_K *)(rows[r] + off))->scales, &a, &m);
            memcpy(sc[r], &a, 8), memcpy(mn[r], &m, 8);
        }
        for (int g = 0; g < 8; g++) {
            int16_t lo[8], hi[8];
            for (int r = 0; r < 8; r++) lo[r] = hi[r] = sc[r][g];
            s[b].sc[g] = pair16(lo, hi);
        }
        for (int k = 0; k < 4; k++) {
            int16_t lo[8], hi[8];
            for (int r = 0; r < 8; r++) lo[r] = mn[r][2 * k], hi[r] = mn[r][2 * k + 1];
            s[b].mn[k] = pair16(lo, hi);
        }
        s[b].d = gather_d(rows, off);
        s[b].dmin = gather_d(rows, off + 2);
    }
}

/* Activation side of the K-quants: bsp[k] = the sums of sub-blocks 2k and 2k+1 of 32 (bsums[4k] + bsums[4k+1],
** bsums[4k+2] + bsums[4k+3]) as 16-bit halves. */
INLINE void k4_bsum_pairs(const block_q8_K *x, int32_t bsp[4]) {
    const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                      _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
    _mm_storeu_si128((__m128i *)bsp, bs);
}

/* NH: the sub-block's 8 chunks summed in 16 bits in NH parts (Q4_K 1: 8 * 2 * 15 * 128 < 2^15; Q5_K's 5-bit
** quants 2: 4 * 2 * 31 * 128 < 2^15), each part's sums then times the scale into 32 bits. */
INLINE void tile_q4_K(const int G, const int T, const int NH, int kc, const x8_q4_K *const S[X8_G],
                      const block_q8_K *const X[X8_T], const int32_t (*bsp)[X8_KC_K][4], __m256 acc[X8_G][X8_T]) {
    for (int b = 0; b < kc; b++) {
        __m256i is[X8_G][X8_T];
        zero_tile(is);
        for (int sb = 0; sb < 8; sb++)
            for (int h = 0; h < NH; h++) {
                const __m256i *Q[X8_G];
                for (int g = 0; g < X8_G; g++) Q[g] = S[LC_MIN(g, G - 1)][b].q + 8 * sb + 8 / NH * h;
                const int8_t *Xq[X8_T];
                for (int t = 0; t < X8_T; t++) Xq[t] = X[LC_MIN(t, T - 1)][b].qs + 32 * sb + 32 / NH * h;
                __m256i a[X8_G][X8_T];
                x8_dot16(G, T, 8 / NH, Q, Xq, a);
#pragma GCC unroll 8
                for (int g = 0; g < G; g++)
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++) {
                        const __m256i p = _mm256_madd_epi16(a[g][t], S[g][b].sc[sb]);
                        is[g][t] = _mm256_add_epi32(is[g][t], p);
                    }
            }
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                __m256i ms = _mm256_madd_epi16(S[g][b].mn[0], _mm256_set1_epi32(bsp[t][b][0]));
#pragma GCC unroll 8
                for (int k = 1; k < 4; k++)
                    ms = _mm256_add_epi32(ms, _mm256_madd_epi16(S[g][b].mn[k], _mm256_set1_epi32(bsp[t][b][k])));
                const __m256 xd = _mm256_set1_ps(X[t][b].d);
                const __m256 v = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(S[g][b].d, xd), _mm256_cvtepi32_ps(is[g][t])),
                                               _mm256_mul_ps(_mm256_mul_ps(S[g][b].dmin, xd), _mm256_cvtepi32_ps(ms)));
                acc[g][t] = _mm256_add_ps(acc[g][t], v);
            }
    }
}

/* ---- Q4_K in the r8 layout (kernels.h) ----
** A group's block: d and dmin of the 8 rows in one load each, their packed scales as three vectors (bytes 4k..4k+3 of
** row r's scales[12] in lane r, k < 3), quant chunk c in one load. The 6-bit scales then decode for the 8 rows at
** once (k4_scales8's bit operations, lane-wise), and a sub-block's scale reaches its lanes with one VPSHUFB. The same
** integer sums and the same float steps as gemv_q4_K and tile_q4_K: the same bits. */
typedef struct {
    __m256i sc_lo, sc_hi, mn_lo, mn_hi; /* byte j of lane r: scale (min) j, or 4 + j, of row r */
} r8_k4_scales;
INLINE r8_k4_scales r8_q4_K_scales(const uint8_t *blk) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(blk + 32)), b = _mm256_loadu_si256((const __m256i *)(blk + 64)),
                  c = _mm256_loadu_si256((const __m256i *)(blk + 96));
    const __m256i m6 = _mm256_set1_epi8(0x3f), m4 = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
    r8_k4_scales s;
    s.sc_lo = _mm256_and_si256(a, m6);
    s.mn_lo = _mm256_and_si256(b, m6);
    s.sc_hi = _mm256_or_si256(_mm256_and_si256(c, m4), _mm256_and_si256(_mm256_srli_epi32(a, 2), top));
    s.mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(c, 4), m4), _mm256_and_si256(_mm256_srli_epi32(b, 2), top));
    return s;
}
/* VPSHUFB control: the 16-bit halves of each 32-bit lane = bytes j0 and j1 of that lane, zero-extended. */
INLINE __m256i dw_bytes16_ctl(int j0, int j1) {
    const __m256i base = _mm256_setr_epi8(0, -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12, -128, 0,
                                          -128, 0, -128, 4, -128, 4, -128, 8, -128, 8, -128, 12, -128, 12, -128);
    return _mm256_add_epi8(base, _mm256_set1_epi32(j0 | j1 << 16));
}
/* Sub-block g's scale of row r in both 16-bit halves of lane r. */
INLINE __m256i r8_q4_K_scale(const r8_k4_scales *s, int g) {
    return _mm256_shuffle_epi8(g < 4 ? s->sc_lo : s->sc_hi, dw_bytes16_ctl(g % 4, g % 4));
}
/* The mins of sub-blocks 2k and 2k + 1 of row r in the 16-bit halves of lane r. */
INLINE __m256i r8_q4_K_mins(const r8_k4_scales *s, int k) {
    return _mm256_shuffle_epi8(k < 2 ? s->mn_lo : s->mn_hi, dw_bytes16_ctl(2 * (k % 2), 2 * (k % 2) + 1));
}

/* Q5_K (K5): Q4_K's block with a fifth bit per quant: qh[l] bit 2p is element 64p + l's, bit 2p + 1 element 64p + 32
** + l's. In the layout, chunk k of qh (its bytes 4k..4k+3, 8 rows) pairs with chunk 8p + k of qs, so a quant chunk
** and its high bits load side by side and q = nibble | bit << 4 (0..31). The scales, the mins and the float steps are
** Q4_K's; the 16-bit sums of a sub-block are taken in two halves (q < 32: four chunks fit 16 bits, eight do not).
** Integer sums exact and float steps as the rows' vec_dot (qdot_impl.h: fin_k4, blocks in order): the same bits.
** The 1B-shaped Q5_K_M model (bench/compare.sh -t 2 -p 256 -n 32), before (qdot_impl.h's kernels on the rows) and
** after: pp 30.5 -> 110 t/s (llama.cpp 33-36), tg 14.3 -> 26.9 (llama.cpp 20-21). */
INLINE size_t r8_k4_block_bytes(const bool K5) { return 8 * (K5 ? sizeof(block_q5_K) : sizeof(block_q4_K)); }
enum { R8_Q5K_QH = 32 + 3 * 32, R8_Q5K_QS = R8_Q5K_QH + 8 * 32 }; /* byte offsets in a group's Q5_K block */
/* 0x10 in each byte of h whose bit s (constant after unrolling) is set. */
INLINE __m256i k5_bit4(__m256i h, int s) {
    const __m256i m = _mm256_set1_epi8(0x10);
    return _mm256_and_si256(s >= 4 ? _mm256_srli_epi16(h, s - 4) : _mm256_slli_epi16(h, 4 - s), m);
}
/* The quants of chunk k of sub-block pair p, row r in lane r: elements 64p + 4k.. (lo) and 64p + 32 + 4k.. (hi). */
INLINE void r8_k4_chunk(const bool K5, const uint8_t *blk, int p, int k, __m256i *lo, __m256i *hi) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(blk + (K5 ? R8_Q5K_QS : 128) + 32 * (8 * p + k)));
    *lo = nib_lo(v), *hi = nib_hi(v);
    if (K5) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + R8_Q5K_QH + 32 * k));
        *lo = _mm256_or_si256(*lo, k5_bit4(h, 2 * p));
        *hi = _mm256_or_si256(*hi, k5_bit4(h, 2 * p + 1));
    }
}

INLINE void gemv_r8_k4(const bool K5, int n, int nr, const uint8_t *w, size_t ws, const block_q8_K *x, float *y) {
    const int nb = n / QK_K;
    for (int r0 = 0; r0 < nr; r0 += 8) {
        const uint8_t *grp = w + (size_t)r0 * ws;
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = grp + (size_t)b * r8_k4_block_bytes(K5);
            prefetch_range(blk + 2048, r8_k4_block_bytes(K5)); /* as gv_r8_q8_0 */
            const block_q8_K *xb = &x[b];
            const r8_k4_scales sc = r8_q4_K_scales(blk);
            int32_t bsp[4];
            k4_bsum_pairs(xb, bsp);
            __m256i is = _mm256_setzero_si256();
            for (int p = 0; p < 4; p++) {
                /* 16-bit sums of the sub-blocks' chunks: 8 of Q4_K's fit (< 2^15), 4 of Q5_K's, so K5 adds them
                ** into is halfway as well */
                __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    __m256i ql, qh;
                    r8_k4_chunk(K5, blk, p, k, &ql, &qh);
                    lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(ql, bcast32(xb->qs + 64 * p + 4 * k)));
                    hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(qh, bcast32(xb->qs + 64 * p + 32 + 4 * k)));
                    if (k == 7 || (K5 && k == 3)) {
                        is = _mm256_add_epi32(is, _mm256_madd_epi16(lo, r8_q4_K_scale(&sc, 2 * p)));
                        is = _mm256_add_epi32(is, _mm256_madd_epi16(hi, r8_q4_K_scale(&sc, 2 * p + 1)));
                        lo = hi = _mm256_setzero_si256();
                    }
                }
            }
            __m256i ms = _mm256_madd_epi16(r8_q4_K_mins(&sc, 0), _mm256_set1_epi32(bsp[0]));
            for (int k = 1; k < 4; k++)
                ms = _mm256_add_epi32(ms, _mm256_madd_epi16(r8_q4_K_mins(&sc, k), _mm256_set1_epi32(bsp[k])));
            const __m256 xd = _mm256_set1_ps(xb->d);
            const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)), xd);
            const __m256 dm = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16))), xd);
            acc = _mm256_add_ps(acc, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(is)),
                                                   _mm256_mul_ps(dm, _mm256_cvtepi32_ps(ms))));
        }
        _mm256_storeu_ps(y + r0, acc);
    }
}
static void gemv_r8_q4_K(int n, int nr, const uint8_t *w, size_t ws, const block_q8_K *x, float *y) {
    gemv_r8_k4(false, n, nr, w, ws, x, y);
}
static void gemv_r8_q5_K(int n, int nr, const uint8_t *w, size_t ws, const block_q8_K *x, float *y) {
    gemv_r8_k4(true, n, nr, w, ws, x, y);
}

INLINE void stage_r8_k4(const bool K5, const uint8_t *w, size_t ws, int r0, int k0, int kc, x8_q4_K *s) {
    const uint8_t *grp = w + (size_t)r0 * ws;
    for (int b = 0; b < kc; b++) {
        const uint8_t *blk = grp + (size_t)(k0 + b) * r8_k4_block_bytes(K5);
        for (int p = 0; p < 4; p++)
            for (int k = 0; k < 8; k++) r8_k4_chunk(K5, blk, p, k, &s[b].q[16 * p + k], &s[b].q[16 * p + 8 + k]);
        const r8_k4_scales sc = r8_q4_K_scales(blk);
        for (int g = 0; g < 8; g++) s[b].sc[g] = r8_q4_K_scale(&sc, g);
        for (int k = 0; k < 4; k++) s[b].mn[k] = r8_q4_K_mins(&sc, k);
        s[b].d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        s[b].dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
    }
}

/* The Q4_K GEMM over W as stored (rows) or repacked (r8: nr a multiple of 8); only the staging differs. K5: Q5_K
** (repacked only), its 5-bit quants staged as Q4_K's nibbles are, the tile's 16-bit sums in two halves. */
INLINE void gemm_q4_K_staged(const bool r8, const bool K5, int n, int nr, int nt, const void *vw, size_t ws,
                             const void *vx, size_t xs, float *y, size_t ldy) {
    x8_q4_K stage[X8_GROUPS][X8_KC_K];
    int32_t bsp[X8_T][X8_KC_K][4];
    const int nb = n / QK_K;
    const block_q8_K *X[X8_T];
#define PREP_Q4_K                                                                                                      \
    do {                                                                                                             \
        X[j] = (const block_q8_K *)((const uint8_t *)vx + (size_t)(t0 + j) * xs) + k0;                              \
        for (int b = 0; b < kc; b++) k4_bsum_pairs(&X[j][b], bsp[j][b]);                                             \
    } while (0)
#define TILE_Q4_K(G, T)                                                                                                \
    do {                                                                                                             \
        const x8_q4_K *S[X8_G] = {stage[g0], stage[LC_MIN(g0 + 1, X8_GROUPS - 1)]};                                 \
        tile_q4_K(G, T, K5 ? 2 : 1, kc, S, X, (const int32_t(*)[X8_KC_K][4])bsp, acc);                               \
    } while (0)
    X8_SWEEP(X8_KC_K, X8_T,
             r8 ? stage_r8_k4(K5, vw, ws, r0 + 8 * g, k0, kc, stage[g]) : stage_q4_K(vw, ws, r0 + 8 * g, nr, k0, kc, stage[g]),
             PREP_Q4_K, TILE_Q4_K);
#undef PREP_Q4_K
#undef TILE_Q4_K
}
static void gemm_x8_q4_K(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    if (nt == 1) gemv_q4_K(n, nr, vw, ws, vx, y);
    else gemm_q4_K_staged(false, false, n, nr, nt, vw, ws, vx, xs, y, ldy);
}
static void gemm_r8_q4_K(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    if (nt == 1) gemv_r8_q4_K(n, nr, vw, ws, vx, y);
    else gemm_q4_K_staged(true, false, n, nr, nt, vw, ws, vx, xs, y, ldy);
}
static void gemm_r8_q5_K(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    if (nt == 1) gemv_r8_q5_K(n, nr, vw, ws, vx, y);
    else gemm_q4_K_staged(true, true, n, nr, nt, vw, ws, vx, xs, y, ldy);
}

/* ---- Q6_K ---- */
typedef struct {
    __m256i q[64];   /* chunk c: quants + 32 (0..63) of elements 4c..4c+3 of row r in lane r */
    __m256i sc[16];  /* group scale of row r in both 16-bit halves of lane r */
    __m256i scp[8];  /* scales of groups 2k, 2k+1 of row r in the 16-bit halves of lane r */
    __m256 d;
} x8_q6_K;

static void stage_q6_K(const uint8_t *w, size_t ws, int r0, int nr, int k0, int kc, x8_q6_K *s) {
    const uint8_t *rows[8];
    group_rows(w, ws, r0, nr, rows);
    for (int b = 0; b < kc; b++) {
        const size_t off = (size_t)(k0 + b) * sizeof(block_q6_K);
        for (int h = 0; h < 2; h++) {
            __m256i q[8][4];
            for (int r = 0; r < 8; r++) q6_quants((const block_q6_K *)(rows[r] + off), h, q[r]);
            for (int k = 0; k < 4; k++) {
                __m256i v[8];
                for (int r = 0; r < 8; r++) v[r] = q[r][k];
                transpose8(v, s[b].q + 8 * (4 * h + k));
            }
        }
        int16_t sc[16][8];
        for (int r = 0; r < 8; r++)
            for (int g = 0; g < 16; g++) sc[g][r] = ((const block_q6_K *)(rows[r] + off))->scales[g];
        for (int g = 0; g < 16; g++) s[b].sc[g] = pair16(sc[g], sc[g]);
        for (int k = 0; k < 8; k++) s[b].scp[k] = pair16(sc[2 * k], sc[2 * k + 1]);
        s[b].d = gather_d(rows, off + 208);
    }
}

INLINE void tile_q6_K(const int G, const int T, int kc, const x8_q6_K *const S[X8_G], const block_q8_K *const X[X8_T],
                      __m256 acc[X8_G][X8_T]) {
    for (int b = 0; b < kc; b++) {
        __m256i is[X8_G][X8_T];
        zero_tile(is);
        for (int grp = 0; grp < 16; grp++) { /* 4 chunks; 16-bit sums over 2 of them */
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const int c = 4 * grp + 2 * h;
                const __m256i *Q[X8_G];
                for (int g = 0; g < X8_G; g++) Q[g] = S[LC_MIN(g, G - 1)][b].q + c;
                const int8_t *Xq[X8_T];
                for (int t = 0; t < X8_T; t++) Xq[t] = X[LC_MIN(t, T - 1)][b].qs + 4 * c;
                __m256i a[X8_G][X8_T];
                x8_dot16(G, T, 2, Q, Xq, a);
#pragma GCC unroll 8
                for (int g = 0; g < G; g++)
#pragma GCC unroll 8
                    for (int t = 0; t < T; t++)
                        is[g][t] = _mm256_add_epi32(is[g][t], _mm256_madd_epi16(a[g][t], S[g][b].sc[grp]));
            }
        }
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                __m256i bb = _mm256_madd_epi16(S[g][b].scp[0], bcast32(X[t][b].bsums));
#pragma GCC unroll 8
                for (int k = 1; k < 8; k++)
                    bb = _mm256_add_epi32(bb, _mm256_madd_epi16(S[g][b].scp[k], bcast32(X[t][b].bsums + 2 * k)));
                const __m256i isum = _mm256_sub_epi32(is[g][t], _mm256_slli_epi32(bb, 5));
                const __m256 d = _mm256_mul_ps(S[g][b].d, _mm256_set1_ps(X[t][b].d));
                acc[g][t] = _mm256_add_ps(acc[g][t], _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)));
            }
    }
}

/* ---- Q6_K in the r8 layout (kernels.h) ----
** A group's block: d of the 8 rows in one load, then 4-byte chunks, 8 rows side by side: ql in chunks 0-31, qh in
** 32-47, the scales in 48-51. Chunk 16h + j of ql (low nibbles: elements 128h + 4j.., high: 128h + 64 + 4j..), chunk
** 16h + 8 + j of ql (128h + 32 + 4j.., 128h + 96 + 4j..) and chunk 32 + 8h + j of qh (their top two bits, two per
** element) give the four quant vectors of j; a scale reaches its lanes with one VPSHUFB and a shift. The same
** integer sums and the same float steps as gemv_q6_K and tile_q6_K: the same bits. */
INLINE const uint8_t *r8_block_q6_K(const uint8_t *grp, int b) { return grp + (size_t)b * 8 * sizeof(block_q6_K); }
INLINE __m256i r8_q6_chunk(const uint8_t *blk, int c) { return _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c)); }

/* Quants + 32 (0..63) of elements 128h + 32k + 4j .. + 3 (k = 0..3) of the 8 rows, row r in lane r. */
INLINE void r8_q6_quants(const uint8_t *blk, int h, int j, __m256i q[4]) {
    const __m256i a = r8_q6_chunk(blk, 16 * h + j), b = r8_q6_chunk(blk, 16 * h + 8 + j);
    const __m256i v = r8_q6_chunk(blk, 32 + 8 * h + j), m2 = _mm256_set1_epi8(0x30);
    q[0] = _mm256_or_si256(nib_lo(a), _mm256_and_si256(_mm256_slli_epi16(v, 4), m2));
    q[1] = _mm256_or_si256(nib_lo(b), _mm256_and_si256(_mm256_slli_epi16(v, 2), m2));
    q[2] = _mm256_or_si256(nib_hi(a), _mm256_and_si256(v, m2));
    q[3] = _mm256_or_si256(nib_hi(b), _mm256_and_si256(_mm256_srli_epi16(v, 2), m2));
}
/* Scales g0 and g1 (both in chunk 48 + g0 / 4) of row r, sign-extended into the low and high 16-bit halves of lane
** r: dw_bytes16_ctl's control moved to the high byte of each half puts the scale there (the low byte is then byte 0
** of the lane, which the arithmetic shift that brings the scale down discards). */
INLINE __m256i r8_q6_scales(const __m256i sc4[4], int g0, int g1) {
    const __m256i ctl = _mm256_slli_epi16(dw_bytes16_ctl(g0 % 4, g1 % 4), 8);
    return _mm256_srai_epi16(_mm256_shuffle_epi8(sc4[g0 / 4], ctl), 8);
}
INLINE void r8_q6_scale_chunks(const uint8_t *blk, __m256i sc4[4]) {
    for (int m = 0; m < 4; m++) sc4[m] = r8_q6_chunk(blk, 48 + m);
}

static void gemv_r8_q6_K(int n, int nr, const uint8_t *w, size_t ws, const block_q8_K *x, float *y) {
    const int nb = n / QK_K;
    for (int r0 = 0; r0 < nr; r0 += 8) {
        const uint8_t *grp = w + (size_t)r0 * ws;
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = r8_block_q6_K(grp, b);
            prefetch_range(blk + 2048, 8 * sizeof(block_q6_K)); /* as gv_r8_q8_0 */
            const block_q8_K *xb = &x[b];
            __m256i sc4[4];
            r8_q6_scale_chunks(blk, sc4);
            __m256i bb = _mm256_setzero_si256(); /* sum_g sc_g bsum_g */
            for (int k = 0; k < 8; k++)
                bb = _mm256_add_epi32(bb, _mm256_madd_epi16(r8_q6_scales(sc4, 2 * k, 2 * k + 1), bcast32(xb->bsums + 2 * k)));
            __m256i is = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(bb, 5));
            for (int h = 0; h < 2; h++)
                for (int jp = 0; jp < 4; jp++) { /* chunks j = 2jp, 2jp + 1: 16-bit sums over 2 chunks */
                    __m256i s16[4];
                    for (int jj = 0; jj < 2; jj++) {
                        const int j = 2 * jp + jj;
                        __m256i q[4];
                        r8_q6_quants(blk, h, j, q);
#pragma GCC unroll 4
                        for (int k = 0; k < 4; k++) {
                            const __m256i p = _mm256_maddubs_epi16(q[k], bcast32(xb->qs + 128 * h + 32 * k + 4 * j));
                            s16[k] = jj ? _mm256_add_epi16(s16[k], p) : p;
                        }
                    }
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        const int g = 8 * h + 2 * k + (jp >= 2);
                        is = _mm256_add_epi32(is, _mm256_madd_epi16(s16[k], r8_q6_scales(sc4, g, g)));
                    }
                }
            const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)), _mm256_set1_ps(xb->d));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(is)));
        }
        _mm256_storeu_ps(y + r0, acc);
    }
}

static void stage_r8_q6_K(const uint8_t *w, size_t ws, int r0, int k0, int kc, x8_q6_K *s) {
    const uint8_t *grp = w + (size_t)r0 * ws;
    for (int b = 0; b < kc; b++) {
        const uint8_t *blk = r8_block_q6_K(grp, k0 + b);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 8; j++) {
                __m256i q[4];
                r8_q6_quants(blk, h, j, q);
                for (int k = 0; k < 4; k++) s[b].q[32 * h + 8 * k + j] = q[k];
            }
        __m256i sc4[4];
        r8_q6_scale_chunks(blk, sc4);
        for (int g = 0; g < 16; g++) s[b].sc[g] = r8_q6_scales(sc4, g, g);
        for (int k = 0; k < 8; k++) s[b].scp[k] = r8_q6_scales(sc4, 2 * k, 2 * k + 1);
        s[b].d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
    }
}

/* The Q6_K GEMM over W as stored (rows) or repacked (r8: nr a multiple of 8); only the staging differs. */
INLINE void gemm_q6_K_staged(const bool r8, int n, int nr, int nt, const void *vw, size_t ws, const void *vx,
                             size_t xs, float *y, size_t ldy) {
    x8_q6_K stage[X8_GROUPS][X8_KC_K];
    const int nb = n / QK_K;
    const block_q8_K *X[X8_T];
#define PREP_Q6_K X[j] = (const block_q8_K *)((const uint8_t *)vx + (size_t)(t0 + j) * xs) + k0
#define TILE_Q6_K(G, T)                                                                                                \
    do {                                                                                                             \
        const x8_q6_K *S[X8_G] = {stage[g0], stage[LC_MIN(g0 + 1, X8_GROUPS - 1)]};                                 \
        tile_q6_K(G, T, kc, S, X, acc);                                                                              \
    } while (0)
    X8_SWEEP(X8_KC_K, X8_T,
             r8 ? stage_r8_q6_K(vw, ws, r0 + 8 * g, k0, kc, stage[g]) : stage_q6_K(vw, ws, r0 + 8 * g, nr, k0, kc, stage[g]),
             PREP_Q6_K, TILE_Q6_K);
#undef PREP_Q6_K
#undef TILE_Q6_K
}
static void gemm_x8_q6_K(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    if (nt == 1) gemv_q6_K(n, nr, vw, ws, vx, y);
    else gemm_q6_K_staged(false, n, nr, nt, vw, ws, vx, xs, y, ldy);
}
static void gemm_r8_q6_K(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs, float *y,
                         size_t ldy) {
    if (nt == 1) gemv_r8_q6_K(n, nr, vw, ws, vx, y);
    else gemm_q6_K_staged(true, n, nr, nt, vw, ws, vx, xs, y, ldy);
}

/* ---- Q8_K activations (the K-quants' vec-dot type) ----
** lc__quantize_row_q8_K_ref vectorised, byte for byte: the first element of largest magnitude gives max (a NaN is
** never the largest: VMAXPS returns its second operand, the running maximum, when the first is NaN), q =
** min(127, round-half-even(x * (-127 / max))) (what lc__nearest_int computes for |v| < 2^22; 0 for a NaN product),
** d = 1 / iscale. */
static void from_float_q8_K(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < QK_K; i += 8) amax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), amax);
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float am = _mm_cvtss_f32(m);
        if (!(am > 0.0f)) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float max = 0.0f;
        for (int i = 0; i < QK_K; i += 8) { /* the first element whose magnitude is am */
            const __m256 v = _mm256_loadu_ps(x + i);
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(am), _CMP_EQ_OQ));
            if (hit) {
                max = x[i + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        __m256i gs[16];
        for (int k = 0; k < QK_K / 32; k++) {
            __m256i q[4];
            for (int j = 0; j < 4; j++) { /* a NaN product (NaN input, or 0 * inf) is 0 there, -2^31 here */
                const __m256 v = _mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * k + 8 * j));
                q[j] = _mm256_andnot_si256(_mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)),
                                           _mm256_min_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(127)));
            }
            gs[2 * k] = _mm256_add_epi32(q[0], q[1]);
            gs[2 * k + 1] = _mm256_add_epi32(q[2], q[3]);
            const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y[b].qs + 32 * k),
                                _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        }
        int32_t sums[16];
        qd_hsum8(gs, sums);
        qd_hsum8(gs + 8, sums + 8);
        for (int g = 0; g < 16; g++) y[b].bsums[g] = (int16_t)sums[g];
        y[b].d = 1 / iscale;
    }
}

void lc__kernels_fill_avx2_quants(lc_kernels *k) {
    qd_fill(k);
    k->gemm[LC_TYPE_Q4_0] = gemm_x8_q4_0;
    k->gemm[LC_TYPE_Q4_K] = gemm_x8_q4_K;
    k->gemm[LC_TYPE_Q6_K] = gemm_x8_q6_K;
    k->gemm_r8[LC_TYPE_Q4_0] = gemm_r8_q4_0;
    k->gemm_r8[LC_TYPE_Q8_0] = gemm_r8_q8_0;
    k->gemm_r8[LC_TYPE_Q4_K] = gemm_r8_q4_K;
    k->gemm_r8[LC_TYPE_Q5_K] = gemm_r8_q5_K;
    k->gemm_r8[LC_TYPE_Q6_K] = gemm_r8_q6_K;
    k->from_float[LC_TYPE_Q8_K] = from_float_q8_K;
}
