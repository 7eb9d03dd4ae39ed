/* qdot_impl.h - dot products and GEMM tiles of the 4/5-bit, K-quant and IQ4 types, written once and compiled per ISA
** (avx2_quants.c, avx512_quants.c, neon_quants.c include it after defining two integer primitives).
**
** Each weight block is first unpacked into signed 8-bit values (and, for the 256-element types, one integer scale per
** 16 elements), then multiplied with the activation block by the ISA's primitive:
**   QD_IDOT32(q, x)          exact int32 sum of q[i]*x[i], i < 32 (QD_IDOT32V: q given as a qd_u8x32 vector)
**   QD_IDOT32X8(Q, X, out)   out[j] = QD_IDOT32V(Q, X) for j = 0..7 (Q, X expressions in j), one reduction for 8
**   QD_IDOT256(q, x, sc)     exact int32 sum over g < 16 of sc[g] * sum of q[i]*x[i] over i in group g (16 each)
** The integer sums are exact, so they equal the reference's whatever the order; the float side of every block is
** the reference's expression (src/quant/q_*_ref.c), evaluated in the same order, and blocks are added in order:
** every variant is bit-identical to the reference, and the GEMM (which unpacks a weight row once and reuses it for
** every token of the tile) is bit-identical to the dot product (batch invariance).
** The unpacking is written on 16- and 32-byte vectors (GCC vector extensions), so it runs on whole registers.
** Requires: kernels.h, ../quant/quants.h, QD_ATTR (function attributes, may be empty).
*/

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* the reference's roundings: no fused multiply-adds (GCC: off under -std=c11) */
#endif

/* ---- unpacking: weight block -> int8 values (+ int scales per 16) ---- */

/* Byte vectors (GCC/Clang vector extensions): the unpacking below is written on whole 16- and 32-byte rows so
** every ISA gets shifts, masks and table lookups on full registers. Arithmetic wraps in uint8; a value stored as
** int8 is the signed quant. */
typedef uint8_t qd_u8x16 __attribute__((vector_size(16)));
typedef uint8_t qd_u8x32 __attribute__((vector_size(32)));
typedef int8_t qd_i8x16 __attribute__((vector_size(16)));

QD_ATTR static inline qd_u8x16 qd_ld16(const uint8_t *p) {
    qd_u8x16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
QD_ATTR static inline qd_u8x32 qd_ld32(const uint8_t *p) {
    qd_u8x32 v;
    memcpy(&v, p, sizeof v);
    return v;
}
QD_ATTR static inline void qd_st16(int8_t *p, qd_u8x16 v) { memcpy(p, &v, sizeof v); }
QD_ATTR static inline void qd_st32(int8_t *p, qd_u8x32 v) { memcpy(p, &v, sizeof v); }

/* The 32 quants of a 32-element block as one 32-byte vector (returned in a register, so the dot product never
** reloads a half-written buffer). The 16 packed bytes go to both halves; the low half keeps the low nibbles, the
** high half the high ones. */
#define QD_CAT16(a, b)                                                                                                 \
    __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,   \
                            23, 24, 25, 26, 27, 28, 29, 30, 31)
QD_ATTR static inline qd_u8x32 qd_dup16(const uint8_t *p) {
    const qd_u8x16 v = qd_ld16(p);
    return QD_CAT16(v, v);
}
static const qd_u8x32 qd_low_half = {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255};

QD_ATTR static inline qd_u8x32 qd_nibbles(const uint8_t *qs) {
    const qd_u8x32 v = qd_dup16(qs);
    return ((v & 15) & qd_low_half) | ((v >> 4) & ~qd_low_half);
}

QD_ATTR static inline qd_u8x32 unpack_q4_0(const block_q4_0 *b) { return qd_nibbles(b->qs) - 8; }
QD_ATTR static inline qd_u8x32 unpack_q4_1(const block_q4_1 *b) { return qd_nibbles(b->qs); }

/* Bit j of the 32-bit little-endian qh, as 16 (bit 4 of quant j) or 0. */
QD_ATTR static inline qd_u8x32 q5_high_bits(const uint8_t *qh) {
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    typedef uint32_t qd_u32x8 __attribute__((vector_size(32)));
    const qd_u32x8 hv = {h, h, h, h, h, h, h, h};
    const qd_u8x32 bytes = (qd_u8x32)hv;
    const qd_u8x32 sel = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                          18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19};
    const qd_u8x32 bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
                          1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
#ifdef __clang__ /* Clang has no __builtin_shuffle; its shufflevector takes the constant indices */
    (void)sel;
    const qd_u8x32 spread = __builtin_shufflevector(bytes, bytes, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 18, 18, 18,
                                                    18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19);
    return (qd_u8x32)((spread & bit) != 0) & 16;
#else
    return (qd_u8x32)((__builtin_shuffle(bytes, sel) & bit) != 0) & 16;
#endif
}

QD_ATTR static inline qd_u8x32 unpack_q5(const uint8_t *qs, const uint8_t *qh, int offset) {
    return (qd_nibbles(qs) | q5_high_bits(qh)) - (uint8_t)offset;
}

QD_ATTR static inline qd_u8x16 qd_iq4_lookup(qd_u8x16 idx) {
    qd_u8x16 levels;
    memcpy(&levels, lc__iq4nl_values, 16);
#ifdef __clang__ /* no variable byte shuffle builtin in Clang: a lookup per byte */
    qd_u8x16 r;
    for (int i = 0; i < 16; i++) r[i] = levels[idx[i] & 15];
    return r;
#else
    return __builtin_shuffle(levels, idx);
#endif
}

QD_ATTR static inline qd_u8x32 unpack_iq4_nl(const uint8_t *qs) {
    const qd_u8x16 v = qd_ld16(qs), lo = qd_iq4_lookup(v & 15), hi = qd_iq4_lookup(v >> 4);
    return QD_CAT16(lo, hi);
}

QD_ATTR static inline void unpack_q2_K(const block_q2_K *b, int8_t *q, int32_t *sc) {
    for (int h = 0; h < 2; h++) {
        const qd_u8x32 v = qd_ld32(b->qs + 32 * h);
        qd_st32(q + 128 * h, v & 3);
        qd_st32(q + 128 * h + 32, (v >> 2) & 3);
        qd_st32(q + 128 * h + 64, (v >> 4) & 3);
        qd_st32(q + 128 * h + 96, v >> 6);
    }
    for (int g = 0; g < 16; g++) sc[g] = b->scales[g] & 0xF;
}

/* q = low 2 bits - 4 + 4 * (bit 4h+k of hmask[l]) */
QD_ATTR static inline void unpack_q3_K(const block_q3_K *b, int8_t *q, int32_t *sc) {
    const qd_u8x32 hm = qd_ld32(b->hmask);
    for (int h = 0; h < 2; h++) {
        const qd_u8x32 v = qd_ld32(b->qs + 32 * h);
        for (int k = 0; k < 4; k++) {
            const qd_u8x32 lo = (v >> (2 * k)) & 3, hi = (hm >> (4 * h + k)) & 1;
            qd_st32(q + 128 * h + 32 * k, lo + (hi << 2) - 4);
        }
    }
    for (int g = 0; g < 16; g++) sc[g] = lc__q3k_scale(g, b->scales);
}

QD_ATTR static inline void unpack_k4(const uint8_t *scales12, const uint8_t *qs, const uint8_t *qh, int8_t *q,
                                     int32_t *sc) {
    const qd_u8x32 h = qh ? qd_ld32(qh) : (qd_u8x32){0};
    for (int p = 0; p < 4; p++) {
        const qd_u8x32 v = qd_ld32(qs + 32 * p);
        qd_st32(q + 64 * p, (v & 15) | (((h >> (2 * p)) & 1) << 4));
        qd_st32(q + 64 * p + 32, (v >> 4) | (((h >> (2 * p + 1)) & 1) << 4));
    }
    for (int g = 0; g < 8; g++) {
        uint8_t s, m;
        lc__k4_scale_min(g, scales12, &s, &m);
        sc[2 * g] = sc[2 * g + 1] = s;
    }
}

QD_ATTR static inline void unpack_q6_K(const block_q6_K *b, int8_t *q, int32_t *sc) {
    for (int h = 0; h < 2; h++) {
        const qd_u8x32 l0 = qd_ld32(b->ql + 64 * h), l1 = qd_ld32(b->ql + 64 * h + 32), hb = qd_ld32(b->qh + 32 * h);
        int8_t *o = q + 128 * h;
        qd_st32(o, ((l0 & 15) | ((hb & 3) << 4)) - 32);
        qd_st32(o + 32, ((l1 & 15) | (((hb >> 2) & 3) << 4)) - 32);
        qd_st32(o + 64, ((l0 >> 4) | (((hb >> 4) & 3) << 4)) - 32);
        qd_st32(o + 96, ((l1 >> 4) | ((hb >> 6) << 4)) - 32);
    }
    for (int g = 0; g < 16; g++) sc[g] = b->scales[g];
}

QD_ATTR static inline void unpack_iq4_xs(const block_iq4_xs *b, int8_t *q, int32_t *sc) {
    for (int g = 0; g < 8; g++) {
        qd_st32(q + 32 * g, unpack_iq4_nl(b->qs + 16 * g));
        const int ls = ((b->scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b->scales_h >> (2 * g)) & 3) << 4);
        sc[2 * g] = sc[2 * g + 1] = ls - 32;
    }
}

/* ---- the float side of one block: the reference's expressions ---- */

QD_ATTR static inline float fin_q4_0(const block_q4_0 *w, const block_q8_0 *x, int isum) {
    return (float)isum * (lc_fp16_lut(w->d) * lc_fp16_lut(x->d));
}
QD_ATTR static inline float fin_q4_1(const block_q4_1 *w, const block_q8_1 *x, int isum) {
    return lc_fp16_lut(w->d) * lc_fp16_lut(x->d) * (float)isum + lc_fp16_lut(w->m) * lc_fp16_lut(x->s);
}
QD_ATTR static inline float fin_q5_0(const block_q5_0 *w, const block_q8_0 *x, int isum) {
    return lc_fp16_lut(w->d) * lc_fp16_lut(x->d) * (float)isum;
}
QD_ATTR static inline float fin_q5_1(const block_q5_1 *w, const block_q8_1 *x, int isum) {
    return lc_fp16_lut(w->d) * lc_fp16_lut(x->d) * (float)isum + lc_fp16_lut(w->m) * lc_fp16_lut(x->s);
}
QD_ATTR static inline float fin_iq4_nl(const block_iq4_nl *w, const block_q8_0 *x, int isum) {
    return lc_fp16_lut(x->d) * lc_fp16_lut(w->d) * (float)isum;
}
QD_ATTR static inline float fin_q2_K(const block_q2_K *w, const block_q8_K *x, int isum) {
    int msum = 0;
    for (int g = 0; g < 16; g++) msum += (w->scales[g] >> 4) * x->bsums[g];
    const float dall = x->d * lc_fp16_lut(w->d), dmin = x->d * lc_fp16_lut(w->dmin);
    return dall * isum - dmin * msum;
}
QD_ATTR static inline float fin_q3_K(const block_q3_K *w, const block_q8_K *x, int isum) {
    return lc_fp16_lut(w->d) * x->d * isum;
}
QD_ATTR static inline float fin_k4(const uint8_t *scales12, lc_fp16 d16, lc_fp16 dmin16, const block_q8_K *x, int isum) {
    int msum = 0;
    for (int g = 0; g < 8; g++) {
        uint8_t s, m;
        lc__k4_scale_min(g, scales12, &s, &m);
        msum += m * (x->bsums[2 * g] + x->bsums[2 * g + 1]);
    }
    const float d = lc_fp16_lut(d16), dmin = lc_fp16_lut(dmin16);
    return d * x->d * isum - dmin * x->d * msum;
}
QD_ATTR static inline float fin_q4_K(const block_q4_K *w, const block_q8_K *x, int isum) {
    return fin_k4(w->scales, w->d, w->dmin, x, isum);
}
QD_ATTR static inline float fin_q5_K(const block_q5_K *w, const block_q8_K *x, int isum) {
    return fin_k4(w->scales, w->d, w->dmin, x, isum);
}
QD_ATTR static inline float fin_q6_K(const block_q6_K *w, const block_q8_K *x, int isum) {
    return lc_fp16_lut(w->d) * x->d * isum;
}
QD_ATTR static inline float fin_iq4_xs(const block_iq4_xs *w, const block_q8_K *x, int isum) {
    return lc_fp16_lut(w->d) * x->d * (float)isum;
}

/* Unpack wrappers with one signature per block size. */
QD_ATTR static inline qd_u8x32 up32_q4_0(const void *b) { return unpack_q4_0(b); }
QD_ATTR static inline qd_u8x32 up32_q4_1(const void *b) { return unpack_q4_1(b); }
QD_ATTR static inline qd_u8x32 up32_q5_0(const void *b) {
    const block_q5_0 *p = b;
    return unpack_q5(p->qs, p->qh, 16);
}
QD_ATTR static inline qd_u8x32 up32_q5_1(const void *b) {
    const block_q5_1 *p = b;
    return unpack_q5(p->qs, p->qh, 0);
}
QD_ATTR static inline qd_u8x32 up32_iq4_nl(const void *b) { return unpack_iq4_nl(((const block_iq4_nl *)b)->qs); }
QD_ATTR static inline void up256_q2_K(const void *b, int8_t *q, int32_t *sc) { unpack_q2_K(b, q, sc); }
QD_ATTR static inline void up256_q3_K(const void *b, int8_t *q, int32_t *sc) { unpack_q3_K(b, q, sc); }
QD_ATTR static inline void up256_q4_K(const void *b, int8_t *q, int32_t *sc) {
    const block_q4_K *p = b;
    unpack_k4(p->scales, p->qs, NULL, q, sc);
}
QD_ATTR static inline void up256_q5_K(const void *b, int8_t *q, int32_t *sc) {
    const block_q5_K *p = b;
    unpack_k4(p->scales, p->qs, p->qh, q, sc);
}
QD_ATTR static inline void up256_q6_K(const void *b, int8_t *q, int32_t *sc) { unpack_q6_K(b, q, sc); }
QD_ATTR static inline void up256_iq4_xs(const void *b, int8_t *q, int32_t *sc) { unpack_iq4_xs(b, q, sc); }

/* ---- dot products and GEMM tiles, per block size ----
** QD_ROW_CHUNK elements of a weight row are unpacked at a time for the GEMM (stack: 1 byte + 1 int per 16 each);
** a row's sum continues from chunk to chunk in block order, so chunking never changes a result. */
#define QD_ROW_CHUNK 16384

/* nt == 1 (decode): one dot product per row, streaming the weights once. */
#define QD_GEMV_ROWS(NAME)                                                                                             \
    do {                                                                                                             \
        if (nt == 1) {                                                                                               \
            for (int r = 0; r < nr; r++) vec_dot_##NAME(n, &y[r], (const uint8_t *)vw + (size_t)r * ws, vx);         \
            return;                                                                                                  \
        }                                                                                                            \
    } while (0)

/* 32-element blocks: WT weight block type, XT activation block type. */
#define QD_DEFINE_32(NAME, WT, XT)                                                                                     \
    QD_ATTR static void vec_dot_##NAME(int n, float *s, const void *vw, const void *vx) {                            \
        const WT *w = vw;                                                                                            \
        const XT *x = vx;                                                                                            \
        float sum = 0.0f;                                                                                            \
        const int nb = n / 32;                                                                                       \
        int b = 0;                                                                                                   \
        for (; b + 8 <= nb; b += 8) { /* 8 blocks per horizontal reduction; the float side block by block */         \
            int32_t is[8];                                                                                           \
            QD_IDOT32X8(up32_##NAME(&w[b + j]), x[b + j].qs, is);                                                    \
            for (int j = 0; j < 8; j++) sum += fin_##NAME(&w[b + j], &x[b + j], is[j]);                              \
        }                                                                                                            \
        for (; b < nb; b++) sum += fin_##NAME(&w[b], &x[b], QD_IDOT32V(up32_##NAME(&w[b]), x[b].qs));                \
        *s = sum;                                                                                                    \
    }                                                                                                                \
    QD_ATTR static void gemm_##NAME##_blocks(int n, int nr, int nt, const void *vw, size_t ws, const void *vx,      \
                                             size_t xs, float *y, size_t ldy) {                                      \
        QD_GEMV_ROWS(NAME);                                                                                          \
        int8_t q[QD_ROW_CHUNK] __attribute__((aligned(64)));                                                         \
        const int nb = n / 32;                                                                                       \
        for (int r = 0; r < nr; r++) {                                                                               \
            const WT *w = (const WT *)((const uint8_t *)vw + (size_t)r * ws);                                       \
            for (int b0 = 0; b0 < nb; b0 += QD_ROW_CHUNK / 32) {                                                     \
                const int nbc = LC_MIN(QD_ROW_CHUNK / 32, nb - b0);                                                  \
                for (int b = 0; b < nbc; b++) qd_st32(q + 32 * b, up32_##NAME(&w[b0 + b]));                         \
                for (int t = 0; t < nt; t++) {                                                                       \
                    const XT *x = (const XT *)((const uint8_t *)vx + (size_t)t * xs) + b0;                           \
                    float sum = b0 ? y[(size_t)t * ldy + r] : 0.0f;                                                  \
                    for (int b = 0; b < nbc; b++) sum += fin_##NAME(&w[b0 + b], &x[b], QD_IDOT32(q + 32 * b, x[b].qs)); \
                    y[(size_t)t * ldy + r] = sum;                                                                    \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

/* The Q8_0 GEMM when the table has none: the reference dot product per (row, token). */
QD_ATTR static void gemm_q8_0_fallback(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,
                                       float *y, size_t ldy) {
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++)
            lc__vec_dot_q8_0_ref(n, &y[(size_t)t * ldy + r], (const uint8_t *)vw + (size_t)r * ws,
                                 (const uint8_t *)vx + (size_t)t * xs);
}

/* Q4_0, Q5_0 and IQ4_NL blocks are (float)isum * (d_w * d_x), exactly Q8_0's block product: their GEMM unpacks a
** few rows at a time into Q8_0 rows (same d, the quants as int8) and runs the ISA's Q8_0 GEMM, which is
** bit-identical to the Q8_0 dot product and hence to vec_dot here. qd_q8_0_gemm is set by qd_fill. */
static lc_gemm_fn qd_q8_0_gemm;
#define QD_Q8_STACK (48 * 1024) /* bytes of Q8_0 rows staged at a time */

#define QD_DEFINE_VIA_Q8_0(NAME, WT)                                                                                   \
    QD_ATTR static void gemm_##NAME(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,      \
                                    float *y, size_t ldy) {                                                          \
        QD_GEMV_ROWS(NAME);                                                                                          \
        block_q8_0 stage[QD_Q8_STACK / sizeof(block_q8_0)];                                                          \
        const int nb = n / 32;                                                                                       \
        const int rows = LC_MAX(1, LC_MIN(16, (int)(QD_Q8_STACK / sizeof(block_q8_0)) / nb));                        \
        if ((size_t)nb > QD_Q8_STACK / sizeof(block_q8_0)) { /* rows too long to stage: per-block path */           \
            gemm_##NAME##_blocks(n, nr, nt, vw, ws, vx, xs, y, ldy);                                                 \
            return;                                                                                                  \
        }                                                                                                            \
        for (int r0 = 0; r0 < nr; r0 += rows) {                                                                      \
            const int rc = LC_MIN(rows, nr - r0);                                                                    \
            for (int r = 0; r < rc; r++) {                                                                           \
                const WT *w = (const WT *)((const uint8_t *)vw + (size_t)(r0 + r) * ws);                            \
                block_q8_0 *o = stage + (size_t)r * nb;                                                              \
                for (int b = 0; b < nb; b++) {                                                                       \
                    o[b].d = w[b].d;                                                                                 \
                    qd_st32(o[b].qs, up32_##NAME(&w[b]));                                                            \
                }                                                                                                    \
            }                                                                                                        \
            qd_q8_0_gemm(n, rc, nt, stage, (size_t)nb * sizeof(block_q8_0), vx, xs, y + r0, ldy);                    \
        }                                                                                                            \
    }

/* 256-element super-blocks against Q8_K. */
#define QD_DEFINE_256(NAME, WT)                                                                                        \
    QD_ATTR static void vec_dot_##NAME(int n, float *s, const void *vw, const void *vx) {                            \
        const WT *w = vw;                                                                                            \
        const block_q8_K *x = vx;                                                                                    \
        float sum = 0.0f;                                                                                            \
        int8_t q[QK_K] __attribute__((aligned(64)));                                                                 \
        int32_t sc[16] __attribute__((aligned(64)));                                                                 \
        for (int b = 0; b < n / QK_K; b++) {                                                                         \
            up256_##NAME(&w[b], q, sc);                                                                              \
            sum += fin_##NAME(&w[b], &x[b], QD_IDOT256(q, x[b].qs, sc));                                             \
        }                                                                                                            \
        *s = sum;                                                                                                    \
    }                                                                                                                \
    QD_ATTR static void gemm_##NAME(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,      \
                                    float *y, size_t ldy) {                                                          \
        QD_GEMV_ROWS(NAME);                                                                                          \
        int8_t q[QD_ROW_CHUNK] __attribute__((aligned(64)));                                                         \
        int32_t sc[QD_ROW_CHUNK / 16] __attribute__((aligned(64)));                                                  \
        const int nb = n / QK_K;                                                                                     \
        for (int r = 0; r < nr; r++) {                                                                               \
            const WT *w = (const WT *)((const uint8_t *)vw + (size_t)r * ws);                                       \
            for (int b0 = 0; b0 < nb; b0 += QD_ROW_CHUNK / QK_K) {                                                   \
                const int nbc = LC_MIN(QD_ROW_CHUNK / QK_K, nb - b0);                                                \
                for (int b = 0; b < nbc; b++) up256_##NAME(&w[b0 + b], q + QK_K * b, sc + 16 * b);                   \
                for (int t = 0; t < nt; t++) {                                                                       \
                    const block_q8_K *x = (const block_q8_K *)((const uint8_t *)vx + (size_t)t * xs) + b0;           \
                    float sum = b0 ? y[(size_t)t * ldy + r] : 0.0f;                                                  \
                    for (int b = 0; b < nbc; b++)                                                                    \
                        sum += fin_##NAME(&w[b0 + b], &x[b], QD_IDOT256(q + QK_K * b, x[b].qs, sc + 16 * b));        \
                    y[(size_t)t * ldy + r] = sum;                                                                    \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

QD_DEFINE_32(q4_0, block_q4_0, block_q8_0)
QD_DEFINE_32(q4_1, block_q4_1, block_q8_1)
QD_DEFINE_32(q5_0, block_q5_0, block_q8_0)
QD_DEFINE_32(q5_1, block_q5_1, block_q8_1)
QD_DEFINE_32(iq4_nl, block_iq4_nl, block_q8_0)
QD_DEFINE_VIA_Q8_0(q4_0, block_q4_0)
QD_DEFINE_VIA_Q8_0(q5_0, block_q5_0)
QD_DEFINE_VIA_Q8_0(iq4_nl, block_iq4_nl)
#define gemm_q4_1 gemm_q4_1_blocks
#define gemm_q5_1 gemm_q5_1_blocks
QD_DEFINE_256(q2_K, block_q2_K)
QD_DEFINE_256(q3_K, block_q3_K)
QD_DEFINE_256(q4_K, block_q4_K)
QD_DEFINE_256(q5_K, block_q5_K)
QD_DEFINE_256(q6_K, block_q6_K)
QD_DEFINE_256(iq4_xs, block_iq4_xs)

/* Puts this file's kernels into a table. */
QD_ATTR static void qd_fill(lc_kernels *k) {
    qd_q8_0_gemm = k->gemm[LC_TYPE_Q8_0] ? k->gemm[LC_TYPE_Q8_0] : gemm_q8_0_fallback;
#define QD_SET(T, NAME)                                                                                                \
    k->vec_dot[T] = vec_dot_##NAME;                                                                                  \
    k->gemm[T] = gemm_##NAME;
    QD_SET(LC_TYPE_Q4_0, q4_0)
    QD_SET(LC_TYPE_Q4_1, q4_1)
    QD_SET(LC_TYPE_Q5_0, q5_0)
    QD_SET(LC_TYPE_Q5_1, q5_1)
    QD_SET(LC_TYPE_IQ4_NL, iq4_nl)
    QD_SET(LC_TYPE_Q2_K, q2_K)
    QD_SET(LC_TYPE_Q3_K, q3_K)
    QD_SET(LC_TYPE_Q4_K, q4_K)
    QD_SET(LC_TYPE_Q5_K, q5_K)
    QD_SET(LC_TYPE_Q6_K, q6_K)
    QD_SET(LC_TYPE_IQ4_XS, iq4_xs)
#undef QD_SET
}
