/* fp16.c - IEEE binary16 <-> binary32 conversion in integer arithmetic (identical on every CPU), and the lookup
** table the kernels use for fp16 -> fp32. Rounding is to nearest, ties to even, as F16C's VCVTPS2PH does. */
#include "base.h"

#include <pthread.h>

float lc__fp16_table[65536];

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lc_fp16_to_fp32(lc_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000 | (mant << 13)); /* inf, nan */
    if (exp == 0) {
        if (mant == 0) return bits_to_f32(sign);
        /* subnormal: mant * 2^-24 is exact in f32 */
        float f = (float)mant * 5.9604644775390625e-08f;
        return sign ? -f : f;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

lc_fp16 lc_fp32_to_fp16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, abs = u & 0x7fffffff;
    if (abs > 0x7f800000) return (lc_fp16)(sign | 0x7e00 | ((abs >> 13) & 0x3ff)); /* nan stays nan (quiet) */
    if (abs >= 0x477ff000) return (lc_fp16)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (abs < 0x38800000) { /* below the smallest normal half (2^-14): subnormal or zero */
        if (abs < 0x33000000) return (lc_fp16)sign; /* < 2^-25: rounds to 0 (2^-25 exactly ties to even 0) */
        uint32_t e = abs >> 23, m = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* value = m * 2^(e-150); half subnormal unit 2^-24 -> m >> (126 - e) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (lc_fp16)(sign | q);
    }
    /* normal: rebias exponent (127 -> 15), round 23-bit mantissa to 10 bits, ties to even */
    uint32_t r = abs - 0x38000000; /* exponent - 112 */
    uint32_t q = r >> 13, rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (lc_fp16)(sign | q);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_tables(void) {
    for (uint32_t i = 0; i < 65536; i++) lc__fp16_table[i] = lc_fp16_to_fp32((lc_fp16)i);
    (void)lc__cpu();
}

void lc__base_init(void) { pthread_once(&init_once, init_tables); }
