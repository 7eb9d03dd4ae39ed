/* avx512.c - x86-64 kernels for AVX-512 F/BW/VL/DQ (work in progress). */
#include "kernels.h"

void lc__kernels_fill_avx512(lc_kernels *k, const lc_cpu_features *cpu) {
    (void)k;
    (void)cpu;
}
