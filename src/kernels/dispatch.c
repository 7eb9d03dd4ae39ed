/* dispatch.c - picks the kernel variant once (pthread_once) from lc__cpu(): the best this CPU runs, unless
** LLAMAC_CPU=ref|avx2|avx512|amx|neon asks for another (one the CPU cannot run falls back to the best, with a warning).
** An ISA's fill function is called only when the CPU reports that ISA: its code is compiled with -m flags the rest
** of the library is not, and even filling a table may use its instructions.
*/
#include "kernels.h"

#include "../quant/quants.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { V_REF, V_AVX2, V_AVX512, V_AMX, V_NEON, V_COUNT };
static const char *const variant_names[V_COUNT] = {"ref", "avx2", "avx512", "amx", "neon"};

static lc_kernels tables[V_COUNT];
static bool available[V_COUNT];
static int chosen = V_REF;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_tables(void) {
    lc__base_init(); /* fp16 table (the kernels read it) and CPU features */
    const lc_cpu_features *f = lc__cpu();
    (void)f;
    for (int v = 0; v < V_COUNT; v++) tables[v].name = variant_names[v];
    lc__kernels_fill_ref(&tables[V_REF]);
    /* the other quantized formats: their scalar references (src/quant), inherited by every variant below until it
    ** has its own kernels */
    for (int t = 0; t < LC_TYPE_COUNT; t++) {
        const lc_quant_ref *q = lc__quant_ref(t);
        if (!q) continue;
        if (q->vec_dot && !tables[V_REF].vec_dot[t]) tables[V_REF].vec_dot[t] = q->vec_dot;
        if (!q->vec_dot && q->quantize && !tables[V_REF].from_float[t]) tables[V_REF].from_float[t] = q->quantize;
    }
    available[V_REF] = true;
#if defined(__x86_64__)
    if (f->avx2 && f->fma && f->f16c) {
        tables[V_AVX2] = tables[V_REF];
        tables[V_AVX2].name = variant_names[V_AVX2];
        lc__kernels_fill_avx2(&tables[V_AVX2]);
        available[V_AVX2] = true;
    }
    if (available[V_AVX2] && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq) {
        tables[V_AVX512] = tables[V_AVX2];
        tables[V_AVX512].name = variant_names[V_AVX512];
        lc__kernels_fill_avx512(&tables[V_AVX512], f);
        available[V_AVX512] = true;
    }
    if (available[V_AVX512] && f->avx512vnni && f->amx_tile && f->amx_int8 && lc__amx_enable()) {
        tables[V_AMX] = tables[V_AVX512];
        tables[V_AMX].name = variant_names[V_AMX];
        lc__kernels_fill_amx(&tables[V_AMX]);
        available[V_AMX] = true;
    }
#elif defined(__aarch64__)
    if (f->neon && f->neon_fp16 && f->dotprod) {
        tables[V_NEON] = tables[V_REF];
        tables[V_NEON].name = variant_names[V_NEON];
        lc__kernels_fill_neon(&tables[V_NEON]);
        available[V_NEON] = true;
    }
#endif
    int best = V_REF;
    for (int v = 0; v < V_COUNT; v++)
        if (available[v]) best = v; /* the enum is in order of preference */
    chosen = best;
    const char *want = getenv("LLAMAC_CPU");
    if (want && *want) {
        int v = 0;
        while (v < V_COUNT && strcmp(want, variant_names[v]) != 0) v++;
        if (v < V_COUNT && available[v])
            chosen = v;
        else
            LC_WARN("LLAMAC_CPU=%s: %s; using %s", want,
                    v < V_COUNT ? "this CPU or build cannot run that kernel variant"
                                : "unknown variant (ref, avx2, avx512, amx, neon)",
                    variant_names[best]);
    }
}

const lc_kernels *lc_kernels_get(void) {
    pthread_once(&tables_once, fill_tables);
    return &tables[chosen];
}

const lc_kernels *lc_kernels_by_name(const char *name) {
    pthread_once(&tables_once, fill_tables);
    for (int v = 0; v < V_COUNT; v++)
        if (name && strcmp(name, variant_names[v]) == 0) return available[v] ? &tables[v] : NULL;
    return NULL;
}

const char *lc_cpu_variant(void) { return lc_kernels_get()->name; }

int lc_vec_dot_type(int type) {
    switch (type) {
    case LC_TYPE_F32: return LC_TYPE_F32;
    case LC_TYPE_F16: return LC_TYPE_F16;
    case LC_TYPE_BF16: return LC_TYPE_BF16;
    case LC_TYPE_Q8_0: return LC_TYPE_Q8_0;
    default: {
        const lc_quant_ref *q = lc__quant_ref(type);
        return q && q->vec_dot ? q->vec_dot_type : -1;
    }
    }
}
