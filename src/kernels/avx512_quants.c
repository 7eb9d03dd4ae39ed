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

/* 64 bytes = groups 4c..4c+3 (lanes 4g..4g+3 of VPDPBUSD), each times its scale. */
QD_ATTR static inline int32_t qd_idot256(const int8_t *q, const int8_t *x, const int32_t *sc) {
    const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512i acc = _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
        const __m512i w = _mm512_loadu_si512(q + 64 * c), xv = _mm512_loadu_si512(x + 64 * c);
        /* sign(x, w) for 64 bytes: negate x where w < 0, zero where w == 0 */
        const __mmask64 neg = _mm512_movepi8_mask(w), zero = _mm512_testn_epi8_mask(w, w);
        __m512i sx = _mm512_mask_sub_epi8(xv, neg, _mm512_setzero_si512(), xv);
        sx = _mm512_maskz_mov_epi8(~zero, sx);
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
        const __m512i s = _mm512_permutexvar_epi32(spread, _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(sc + 4 * c))));
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(p, s));
    }
    return _mm512_reduce_add_epi32(acc);
}

#define QD_IDOT32 qd_idot32
#define QD_IDOT256 qd_idot256
#include "qdot_impl.h"

void lc__kernels_fill_avx512_quants(lc_kernels *k, const lc_cpu_features *cpu) {
    if (cpu->avx512vnni) qd_fill(k);
}
