/* matmul.c - Y = X @ W^T over a thread pool's (ith, nth) split, on top of a kernel variant's from_float and gemm.
**
** Threads own disjoint ranges of output rows (multiples of 16 so SIMD row groups stay whole). Decode (n_tok == 1)
** hands a thread's whole range to the variant's GEMV, which streams W once. Prefill walks W in panels of about
** 512 KiB (they stay in L2) and lets the variant's register-blocked tiles sweep all tokens over each panel, so W is
** read from memory once per matmul. A variant without a gemm for the type falls back to vec_dot per output.
** Nothing here allocates; the conversion buffer xq belongs to the caller.
*/
#include "kernels.h"

enum { ROW_ALIGN = 16, PANEL_BYTES = 512 * 1024 }; /* W panel kept in L2 (1 MiB per core on Zen 4, Intel server) */

static size_t vdt_row_bytes(int wtype, int n_in) {
    const int vdt = lc_vec_dot_type(wtype);
    uint64_t rb = 0;
    if (vdt < 0 || n_in < 0 || !lc_type_row_bytes(vdt, (uint64_t)n_in, &rb)) return 0;
    return (size_t)rb;
}

size_t lc_matmul_xq_bytes(int wtype, int n_in, int n_tok) {
    return vdt_row_bytes(wtype, n_in) * (size_t)(n_tok > 0 ? n_tok : 0);
}

void lc_matmul_prepare_using(const lc_kernels *k, int wtype, const float *X, int ldx, int n_in, int n_tok, void *xq,
                             int ith, int nth) {
    const int vdt = lc_vec_dot_type(wtype);
    if (vdt < 0) return;
    if (vdt == LC_TYPE_F32 && (const void *)X == xq && ldx == n_in) return;
    const lc_type_traits *tt = lc_type_traits_of(vdt);
    const size_t rb = vdt_row_bytes(wtype, n_in);
    const lc_from_float_fn from_float = k->from_float[vdt];
    uint8_t *out = xq;
    if (n_tok >= nth) { /* whole rows per thread */
        const int t0 = (int)((int64_t)n_tok * ith / nth), t1 = (int)((int64_t)n_tok * (ith + 1) / nth);
        for (int t = t0; t < t1; t++) from_float(X + (size_t)t * ldx, out + (size_t)t * rb, n_in);
        return;
    }
    /* fewer rows than threads: each thread converts a slice of every row, in whole blocks (32 elements for the
    ** float types so SIMD loops stay long) */
    const int unit = tt->blck_size > 1 ? (int)tt->blck_size : 32;
    const int n_units = (n_in + unit - 1) / unit;
    const int u0 = (int)((int64_t)n_units * ith / nth), u1 = (int)((int64_t)n_units * (ith + 1) / nth);
    const int e0 = u0 * unit, e1 = LC_MIN(u1 * unit, n_in);
    if (e1 <= e0) return;
    const size_t off = (size_t)(e0 / (int)tt->blck_size) * tt->type_size;
    for (int t = 0; t < n_tok; t++) from_float(X + (size_t)t * ldx + e0, out + (size_t)t * rb + off, e1 - e0);
}

void lc_matmul_using(const lc_kernels *k, int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in,
                     const void *xq, int n_tok, float *Y, int ldy, int ith, int nth) {
    const int n_groups = (n_out + ROW_ALIGN - 1) / ROW_ALIGN;
    const int r0 = (int)((int64_t)n_groups * ith / nth) * ROW_ALIGN;
    const int r1 = LC_MIN((int)((int64_t)n_groups * (ith + 1) / nth) * ROW_ALIGN, n_out);
    if (r1 <= r0 || n_tok <= 0) return;
    const size_t xrb = vdt_row_bytes(wtype, n_in);
    const uint8_t *w = (const uint8_t *)W;
    const lc_gemm_fn gemm = k->gemm[wtype];
    if (gemm && n_tok == 1) {
        gemm(n_in, r1 - r0, 1, w + (size_t)r0 * w_row_bytes, w_row_bytes, xq, xrb, Y + r0, (size_t)ldy);
        return;
    }
    if (gemm) {
        int panel = (int)(PANEL_BYTES / (w_row_bytes ? w_row_bytes : 1));
        panel = LC_MAX(ROW_ALIGN, panel / ROW_ALIGN * ROW_ALIGN);
        for (int r = r0; r < r1; r += panel) {
            const int nr = LC_MIN(panel, r1 - r);
            gemm(n_in, nr, n_tok, w + (size_t)r * w_row_bytes, w_row_bytes, xq, xrb, Y + r, (size_t)ldy);
        }
        return;
    }
    const lc_vec_dot_fn dot = k->vec_dot[wtype];
    const uint8_t *x = xq;
    for (int t = 0; t < n_tok; t++)
        for (int r = r0; r < r1; r++)
            dot(n_in, Y + (size_t)t * ldy + r, w + (size_t)r * w_row_bytes, x + (size_t)t * xrb);
}

void lc_matmul_prepare(int wtype, const float *X, int ldx, int n_in, int n_tok, void *xq, int ith, int nth) {
    lc_matmul_prepare_using(lc_kernels_get(), wtype, X, ldx, n_in, n_tok, xq, ith, nth);
}

void lc_matmul(int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in, const void *xq, int n_tok,
               float *Y, int ldy, int ith, int nth) {
    lc_matmul_using(lc_kernels_get(), wtype, W, w_row_bytes, n_out, n_in, xq, n_tok, Y, ldy, ith, nth);
}
