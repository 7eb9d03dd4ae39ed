/* neon_quants.c - the 4/5-bit, K-quant and IQ4 kernels (qdot_impl.h) with the ARMv8.2 dot-product instruction
** (SDOT: four signed 8-bit products summed into each 32-bit lane).
*/
#include "kernels.h"

#include "../quant/quants.h"

#include <arm_neon.h>
#include <string.h>

#define QD_ATTR

static inline int32_t qd_idot32(const int8_t *q, const int8_t *x) {
    int32x4_t acc = vdotq_s32(vdupq_n_s32(0), vld1q_s8(q), vld1q_s8(x));
    acc = vdotq_s32(acc, vld1q_s8(q + 16), vld1q_s8(x + 16));
    return vaddvq_s32(acc);
}

static inline int32_t qd_idot256(const int8_t *q, const int8_t *x, const int32_t *sc) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int g = 0; g < 16; g++) {
        const int32x4_t p = vdotq_s32(vdupq_n_s32(0), vld1q_s8(q + 16 * g), vld1q_s8(x + 16 * g));
        acc = vmlaq_n_s32(acc, p, sc[g]);
    }
    return vaddvq_s32(acc);
}

typedef uint8_t qd_neon_u8x32 __attribute__((vector_size(32)));
static inline int32_t qd_idot32v_neon(qd_neon_u8x32 v, const int8_t *x) {
    int8_t q[32];
    memcpy(q, &v, 32); /* register moves after optimisation */
    return qd_idot32(q, x);
}

#define QD_IDOT32X8(Q, X, out)                                                                                         \
    do {                                                                                                             \
        for (int j = 0; j < 8; j++) (out)[j] = QD_IDOT32V(Q, X);                                                     \
    } while (0)

#define QD_IDOT32 qd_idot32
#define QD_IDOT256 qd_idot256
#define QD_IDOT32V(v, x) qd_idot32v_neon((v), (x))
#include "qdot_impl.h"

void lc__kernels_fill_neon_quants(lc_kernels *k) { qd_fill(k); }
