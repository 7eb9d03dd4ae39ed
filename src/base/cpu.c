/* cpu.c - CPU feature detection, done once: cpuid + xgetbv on x86-64 (an instruction set counts only when the OS
** also saves its register state: XCR0 bits 1-2 for AVX, 5-7 for AVX-512), getauxval(AT_HWCAP) on aarch64 Linux.
** References: Intel SDM vol. 2 (CPUID leaves 1 and 7), vol. 1 ch. 13 (XCR0); Linux Documentation/arch/arm64/
** elf_hwcaps.rst. The result is the only global state of the library besides the fp16 table.
*/
#include "base.h"

#include <pthread.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static lc_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(_M_X64)
static uint64_t xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static void detect(lc_cpu_features *f) {
    unsigned a, b, c, d;
    const unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const uint64_t xcr = osxsave ? xcr0() : 0;
    const bool os_avx = osxsave && (xcr & 0x6) == 0x6;        /* XMM and YMM state */
    const bool os_avx512 = os_avx && (xcr & 0xe0) == 0xe0;    /* opmask, ZMM_Hi256, Hi16_ZMM state */
    if (!avx || !os_avx) return;
    f->fma = (c >> 12) & 1;
    f->f16c = (c >> 29) & 1;
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_sub7 = a;
    f->avx2 = (b >> 5) & 1;
    /* AMX: the tile instructions (EDX bits 24, 25) and XCR0 bits 17-18 (TILECFG, TILEDATA state) */
    if (os_avx512 && (xcr & 0x60000) == 0x60000) {
        f->amx_tile = (d >> 24) & 1;
        f->amx_int8 = (d >> 25) & 1;
    }
    if (os_avx512) {
        f->avx512f = (b >> 16) & 1;
        f->avx512dq = (b >> 17) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512vnni = (c >> 11) & 1;
    }
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        f->avxvnni = (a >> 4) & 1;
        if (os_avx512) f->avx512bf16 = (a >> 5) & 1;
    }
}
#elif defined(__aarch64__)
static void detect(lc_cpu_features *f) {
    f->neon = true; /* Advanced SIMD is mandatory in AArch64 */
#if defined(__linux__)
    const unsigned long hw = getauxval(AT_HWCAP);
    /* bit numbers from the kernel's uapi asm/hwcap.h */
    const unsigned long fphp = 1ul << 9, asimdhp = 1ul << 10, asimddp = 1ul << 20;
    f->neon_fp16 = (hw & fphp) && (hw & asimdhp);
    f->dotprod = (hw & asimddp) != 0;
#elif defined(__APPLE__)
    f->neon_fp16 = true; /* every Apple arm64 core has FEAT_FP16 and FEAT_DotProd */
    f->dotprod = true;
#endif
}
#else
static void detect(lc_cpu_features *f) { (void)f; }
#endif

static void detect_once(void) { detect(&features); }

const lc_cpu_features *lc__cpu(void) {
    pthread_once(&features_once, detect_once);
    return &features;
}
