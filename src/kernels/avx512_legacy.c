/* avx512_legacy.c - AVX-512 kernels of Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL. (Being written: the table keeps the reference kernels until then.) */
#include "kernels.h"

void lc__kernels_fill_avx512_legacy(lc_kernels *k, const lc_cpu_features *cpu) {
    (void)k; (void)cpu;
}
