/* ref.c - the reference kernels: plain C, always built, the specification every ISA variant is tested against.
**
** Float types sum their products in double (as GGML's scalar path does), so ref is the most accurate variant and a
** good oracle. Q8_0 forms each block's integer dot exactly and adds (float)sumi * (d_w * d_x) block by block in f32
** with separate statements (no FMA contraction), which the SIMD variants reproduce bit for bit (see kernels.h).
** fp16 values are read through lc__fp16_table, which lc_kernels_get()/lc_kernels_by_name() initialise.
*/
#include "kernels.h"

/* Float results must not depend on the compiler: clang fuses a * b + c into an FMA by default (GCC in -std=c11 mode
** does not), which would change the bits the variants agree on. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

void lc__vec_dot_f32_ref(int n, float *s, const void *w, const void *x) {
    const float *a = w, *b = x;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(a[i] * b[i]);
    *s = (float)sum;
}

void lc__vec_dot_f16_ref(int n, float *s, const void *w, const void *x) {
    const lc_fp16 *a = w, *b = x;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(lc_fp16_lut(a[i]) * lc_fp16_lut(b[i]));
    *s = (float)sum;
}

void lc__vec_dot_bf16_ref(int n, float *s, const void *w, const void *x) {
    const lc_bf16 *a = w, *b = x;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(lc_bf16_to_fp32(a[i]) * lc_bf16_to_fp32(b[i]));
    *s = (float)sum;
}

void lc__vec_dot_q8_0_ref(int n, float *s, const void *w, const void *x) {
    const block_q8_0 *a = w, *b = x;
    float sum = 0.0f;
    for (int ib = 0; ib < n / QK8_0; ib++) {
        int32_t sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += (int32_t)a[ib].qs[j] * (int32_t)b[ib].qs[j];
        const float d = lc_fp16_lut(a[ib].d) * lc_fp16_lut(b[ib].d); /* exact: two 11-bit significands */
        const float p = (float)sumi * d;
        sum += p;
    }
    *s = sum;
}

static void vec_mad_f32(int n, float *y, const void *x, float a) {
    const float *v = x;
    for (int i = 0; i < n; i++) y[i] += a * v[i];
}
static void vec_mad_f16(int n, float *y, const void *x, float a) {
    const lc_fp16 *v = x;
    for (int i = 0; i < n; i++) y[i] += a * lc_fp16_lut(v[i]);
}
static void vec_mad_bf16(int n, float *y, const void *x, float a) {
    const lc_bf16 *v = x;
    for (int i = 0; i < n; i++) y[i] += a * lc_bf16_to_fp32(v[i]);
}

static void from_float_f32(const float *x, void *y, int64_t n) {
    if ((const void *)x != y) memmove(y, x, (size_t)n * sizeof(float));
}
static void from_float_f16(const float *x, void *y, int64_t n) { lc_fp32_to_fp16_row(x, y, n); }
static void from_float_bf16(const float *x, void *y, int64_t n) { lc_fp32_to_bf16_row(x, y, n); }
static void from_float_q8_0(const float *x, void *y, int64_t n) { lc__quantize_row_q8_0_act(x, y, n); }

void lc__kernels_fill_ref(lc_kernels *k) {
    k->vec_dot[LC_TYPE_F32] = lc__vec_dot_f32_ref;
    k->vec_dot[LC_TYPE_F16] = lc__vec_dot_f16_ref;
    k->vec_dot[LC_TYPE_BF16] = lc__vec_dot_bf16_ref;
    k->vec_dot[LC_TYPE_Q8_0] = lc__vec_dot_q8_0_ref;
    k->vec_mad[LC_TYPE_F32] = vec_mad_f32;
    k->vec_mad[LC_TYPE_F16] = vec_mad_f16;
    k->vec_mad[LC_TYPE_BF16] = vec_mad_bf16;
    k->from_float[LC_TYPE_F32] = from_float_f32;
    k->from_float[LC_TYPE_F16] = from_float_f16;
    k->from_float[LC_TYPE_BF16] = from_float_bf16;
    k->from_float[LC_TYPE_Q8_0] = from_float_q8_0;
}
