/* qdot_impl.h - dot products and GEMM tiles of the 4/5-bit, K-quant and IQ4 types, written once and compiled per ISA
** (avx2_quants.c, avx512_quants.c, neon_quants.c include it after defining two integer primitives).
**
** Each weight block is first unpacked into signed 8-bit values (and, for the 256-element types, one integer scale per
** 16 elements), then multiplied with the activation block by the ISA's primitive:
**   QD_IDOT32(q, x)          exact int32 sum of q[i]*x[i], i < 32
**   QD_IDOT256(q, x, sc)     exact int32 sum over g < 16 of sc[g] * sum of q[i]*x[i] over i in group g (16 each)
** The integer sums are exact, so they equal the reference's whatever the order; the float side of every block is
** the reference's expression (src/quant/q_*_ref.c), evaluated in the same order, and blocks are added in order:
** every variant is bit-identical to the reference, and the GEMM (which unpacks a weight row once and reuses it for
** every token of the tile) is bit-identical to the dot product (batch invariance).
** The unpack loops are plain C over fixed-size blocks that the compiler vectorises for the ISA in use.
** Requires: kernels.h, ../quant/quants.h, QD_ATTR (function attributes, may be empty).
*/

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* the reference's roundings: no fused multiply-adds (GCC: off under -std=c11) */
#endif

/* ---- unpacking: weight block -> int8 values (+ int scales per 16) ---- */

QD_ATTR static inline void unpack_q4_0(const block_q4_0 *b, int8_t *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((b->qs[j] & 0xF) - 8);
        q[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
    }
}

QD_ATTR static inline void unpack_q4_1(const block_q4_1 *b, int8_t *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(b->qs[j] & 0xF);
        q[j + 16] = (int8_t)(b->qs[j] >> 4);
    }
}

QD_ATTR static inline uint32_t qd_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

QD_ATTR static inline void unpack_q5(const uint8_t *qs, const uint8_t *qh8, int offset, int8_t *q) {
    const uint32_t qh = qd_u32le(qh8);
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(((qs[j] & 0xF) | (int)((qh >> j) & 1) << 4) - offset);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - offset);
    }
}

QD_ATTR static inline void unpack_iq4_nl(const uint8_t *qs, int8_t *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = lc__iq4nl_values[qs[j] & 0xF];
        q[j + 16] = lc__iq4nl_values[qs[j] >> 4];
    }
}

QD_ATTR static inline void unpack_q2_K(const block_q2_K *b, int8_t *q, int32_t *sc) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * k + l] = (int8_t)((b->qs[32 * h + l] >> (2 * k)) & 3);
    for (int g = 0; g < 16; g++) sc[g] = b->scales[g] & 0xF;
}

QD_ATTR static inline void unpack_q3_K(const block_q3_K *b, int8_t *q, int32_t *sc) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                const int i = 128 * h + 32 * k + l;
                q[i] = (int8_t)(((b->qs[32 * h + l] >> (2 * k)) & 3) - ((b->hmask[l] >> (i / 32)) & 1 ? 0 : 4));
            }
    for (int g = 0; g < 16; g++) sc[g] = lc__q3k_scale(g, b->scales);
}

QD_ATTR static inline void unpack_k4(const uint8_t *scales12, const uint8_t *qs, const uint8_t *qh, int8_t *q,
                                     int32_t *sc) {
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            q[64 * p + l] = (int8_t)(qs[32 * p + l] & 0xF);
            q[64 * p + 32 + l] = (int8_t)(qs[32 * p + l] >> 4);
        }
    if (qh)
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                q[64 * p + l] = (int8_t)(q[64 * p + l] | ((qh[l] >> (2 * p)) & 1) << 4);
                q[64 * p + 32 + l] = (int8_t)(q[64 * p + 32 + l] | ((qh[l] >> (2 * p + 1)) & 1) << 4);
            }
    for (int g = 0; g < 8; g++) {
        uint8_t s, m;
        lc__k4_scale_min(g, scales12, &s, &m);
        sc[2 * g] = sc[2 * g + 1] = s;
    }
}

QD_ATTR static inline void unpack_q6_K(const block_q6_K *b, int8_t *q, int32_t *sc) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *ql = b->ql + 64 * h, qh = b->qh[32 * h + l];
            int8_t *o = q + 128 * h + l;
            o[0] = (int8_t)(((ql[l] & 0xF) | (qh & 3) << 4) - 32);
            o[32] = (int8_t)(((ql[32 + l] & 0xF) | ((qh >> 2) & 3) << 4) - 32);
            o[64] = (int8_t)(((ql[l] >> 4) | ((qh >> 4) & 3) << 4) - 32);
            o[96] = (int8_t)(((ql[32 + l] >> 4) | ((qh >> 6) & 3) << 4) - 32);
        }
    for (int g = 0; g < 16; g++) sc[g] = b->scales[g];
}

QD_ATTR static inline void unpack_iq4_xs(const block_iq4_xs *b, int8_t *q, int32_t *sc) {
    for (int g = 0; g < 8; g++) {
        unpack_iq4_nl(b->qs + 16 * g, q + 32 * g);
        const int ls = ((b->scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b->scales_h >> (2 * g)) & 3) << 4);
        sc[2 * g] = sc[2 * g + 1] = ls - 32;
    }
}

/* ---- the float side of one block: the reference's expressions ---- */

QD_ATTR static inline float fin_q4_0(const block_q4_0 *w, const block_q8_0 *x, int isum) {
    return (float)isum * lc_fp16_lut(w->d) * lc_fp16_lut(x->d);
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
QD_ATTR static inline void up32_q4_0(const void *b, int8_t *q) { unpack_q4_0(b, q); }
QD_ATTR static inline void up32_q4_1(const void *b, int8_t *q) { unpack_q4_1(b, q); }
QD_ATTR static inline void up32_q5_0(const void *b, int8_t *q) {
    const block_q5_0 *p = b;
    unpack_q5(p->qs, p->qh, 16, q);
}
QD_ATTR static inline void up32_q5_1(const void *b, int8_t *q) {
    const block_q5_1 *p = b;
    unpack_q5(p->qs, p->qh, 0, q);
}
QD_ATTR static inline void up32_iq4_nl(const void *b, int8_t *q) { unpack_iq4_nl(((const block_iq4_nl *)b)->qs, q); }
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

/* 32-element blocks: WT weight block type, XT activation block type. */
#define QD_DEFINE_32(NAME, WT, XT)                                                                                     \
    QD_ATTR static void vec_dot_##NAME(int n, float *s, const void *vw, const void *vx) {                            \
        const WT *w = vw;                                                                                            \
        const XT *x = vx;                                                                                            \
        float sum = 0.0f;                                                                                            \
        int8_t q[32];                                                                                                \
        for (int b = 0; b < n / 32; b++) {                                                                           \
            up32_##NAME(&w[b], q);                                                                                   \
            sum += fin_##NAME(&w[b], &x[b], QD_IDOT32(q, x[b].qs));                                                  \
        }                                                                                                            \
        *s = sum;                                                                                                    \
    }                                                                                                                \
    QD_ATTR static void gemm_##NAME(int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,      \
                                    float *y, size_t ldy) {                                                          \
        if (nt == 1) {                                                                                               \
            for (int r = 0; r < nr; r++) vec_dot_##NAME(n, &y[r], (const uint8_t *)vw + (size_t)r * ws, vx);         \
            return;                                                                                                  \
        }                                                                                                            \
        int8_t q[QD_ROW_CHUNK] __attribute__((aligned(64)));                                                         \
        const int nb = n / 32;                                                                                       \
        for (int r = 0; r < nr; r++) {                                                                               \
            const WT *w = (const WT *)((const uint8_t *)vw + (size_t)r * ws);                                       \
            for (int b0 = 0; b0 < nb; b0 += QD_ROW_CHUNK / 32) {                                                     \
                const int nbc = LC_MIN(QD_ROW_CHUNK / 32, nb - b0);                                                  \
                for (int b = 0; b < nbc; b++) up32_##NAME(&w[b0 + b], q + 32 * b);                                   \
                for (int t = 0; t < nt; t++) {                                                                       \
                    const XT *x = (const XT *)((const uint8_t *)vx + (size_t)t * xs) + b0;                           \
                    float sum = b0 ? y[(size_t)t * ldy + r] : 0.0f;                                                  \
                    for (int b = 0; b < nbc; b++) sum += fin_##NAME(&w[b0 + b], &x[b], QD_IDOT32(q + 32 * b, x[b].qs)); \
                    y[(size_t)t * ldy + r] = sum;                                                                    \
                }                                                                                                    \
            }                                                                                                        \
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
        if (nt == 1) {                                                                                               \
            for (int r = 0; r < nr; r++) vec_dot_##NAME(n, &y[r], (const uint8_t *)vw + (size_t)r * ws, vx);         \
            return;                                                                                                  \
        }                                                                                                            \
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
QD_DEFINE_256(q2_K, block_q2_K)
QD_DEFINE_256(q3_K, block_q3_K)
QD_DEFINE_256(q4_K, block_q4_K)
QD_DEFINE_256(q5_K, block_q5_K)
QD_DEFINE_256(q6_K, block_q6_K)
QD_DEFINE_256(iq4_xs, block_iq4_xs)

/* Puts this file's kernels into a table. */
QD_ATTR static void qd_fill(lc_kernels *k) {
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
