/* neon_quants.c - NEON kernels of Q4_0..Q5_1, IQ4_NL, Q2_K..Q6_K, IQ4_XS. (Being written: the table keeps the reference kernels until then.) */
#include "kernels.h"

void lc__kernels_fill_neon_quants(lc_kernels *k) {
    (void)k;
}
