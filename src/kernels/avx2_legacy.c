/* avx2_legacy.c - AVX2 kernels of Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL (and Q8_1 activations). (Being written: the table keeps the reference kernels until then.) */
#include "kernels.h"

void lc__kernels_fill_avx2_legacy(lc_kernels *k) {
    (void)k;
}
