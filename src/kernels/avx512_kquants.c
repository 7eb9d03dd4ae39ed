/* avx512_kquants.c - AVX-512 kernels of Q2_K..Q6_K and IQ4_XS. (Being written: the table keeps the reference kernels until then.) */
#include "kernels.h"

void lc__kernels_fill_avx512_kquants(lc_kernels *k, const lc_cpu_features *cpu) {
    (void)k; (void)cpu;
}
