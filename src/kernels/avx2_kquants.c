/* avx2_kquants.c - AVX2 kernels of Q2_K..Q6_K and IQ4_XS (and Q8_K activations). (Being written: the table keeps the reference kernels until then.) */
#include "kernels.h"

void lc__kernels_fill_avx2_kquants(lc_kernels *k) {
    (void)k;
}
