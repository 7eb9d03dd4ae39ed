/* avx512_quants.c - the 4/5-bit, K-quant and IQ4 kernels (qdot_impl.h) with AVX-512 VNNI integer dot products
** (VPDPBUSD on |w| and sign(x, w)); used only on CPUs with VNNI, others keep avx2_quants.c's. Every function here
** carries the VNNI target attribute, so none of its instructions reach a CPU without it.
*/
#include "kernels.h"

#include "../quant/quants.h"

#include <immintrin.h>

#define QD_ATTR __attribute__((target("avx512vnni,avx512vl,avx512bw,avx512f")))

QD_ATTR static inline __m256i qd_mul_i8(__m256i w, __m256i x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
}

QD_ATTR static inline int32_t qd_hsum(__m256i p) {
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
    return _mm_cvtsi128_si32(q);
}

QD_ATTR static inline int32_t qd_idot32(const int8_t *q, const int8_t *x) {
    return qd_hsum(qd_mul_i8(_mm256_loadu_si256((const __m256i *)q), _mm256_loadu_si256((const __m256i *)x)));
}

/* 32 bytes = groups 2c (lanes 0..3) and 2c+1 (lanes 4..7), each times its scale. (32-byte loads: the unpacked
** quants were just stored 32 bytes at a time, and a wider load would not be forwarded from those stores.) */
QD_ATTR static inline int32_t qd_idot256(const int8_t *q, const int8_t *x, const int32_t *sc) {
    const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        const __m256i p = qd_mul_i8(_mm256_loadu_si256((const __m256i *)(q + 32 * c)),
                                    _mm256_loadu_si256((const __m256i *)(x + 32 * c)));
        const __m256i s = _mm256_permutexvar_epi32(spread, _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(sc + 2 * c))));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, s));
    }
    return qd_hsum(acc);
}

QD_ATTR static inline void qd_hsum8(const __m256i v[8], int32_t *out) {
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

/* k holds the AVX2 table. Its own Q4_0, Q4_K and Q6_K kernels (8-row register tiles, paced prefetch) stay: on Zen 4
** they beat this file's generic ones (bench_kernels -t 2 -p 64: Q4_0 GEMV 28.7 vs 13.0 GB/s, GEMM 285 vs 135
** GFLOP/s; Q4_K 20.0 vs 10.9 GB/s, 265 vs 61; Q6_K GEMM 231 vs 102). */
void lc__kernels_fill_avx512_quants(lc_kernels *k, const lc_cpu_features *cpu) {
    if (!cpu->avx512vnni) return;
    static const int keep[] = {LC_TYPE_Q4_0, LC_TYPE_Q4_K, LC_TYPE_Q6_K};
    lc_vec_dot_fn vd[3];
    lc_gemm_fn gm[3];
    for (int i = 0; i < 3; i++) vd[i] = k->vec_dot[keep[i]], gm[i] = k->gemm[keep[i]];
    qd_fill(k);
    for (int i = 0; i < 3; i++)
        if (vd[i] && gm[i]) k->vec_dot[keep[i]] = vd[i], k->gemm[keep[i]] = gm[i];
}
