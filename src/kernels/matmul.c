/* matmul.c - Y = X @ W^T over a thread pool's (ith, nth) split, on top of a kernel variant's from_float and gemm.
**
** Threads own disjoint ranges of output rows (multiples of 16, or of 32 for the float r8 layout's groups, so SIMD
** row groups stay whole). Decode (n_tok == 1) hands a thread's whole range to the variant's GEMV, which streams W
** once. Prefill walks W in panels of about 512 KiB (they stay in L2) and lets the variant's register-blocked tiles
** sweep all tokens over each panel, so W is read from memory once per matmul. A variant without a gemm for the type falls back to vec_dot per output.
** Nothing here allocates; the conversion buffer xq belongs to the caller.
*/
#include "kernels.h"

#include "../quant/quants.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

/* Rows [r0, r1) of Y (r0 a multiple of align: ROW_ALIGN, or an r8 layout's group) with one gemm (NULL: vec_dot). */
static void matmul_rows(const lc_kernels *k, lc_gemm_fn gemm, int wtype, const uint8_t *w, size_t w_row_bytes, int r0,
                        int r1, int align, int n_in, const void *xq, int n_tok, float *Y, int ldy) {
    if (r1 <= r0 || n_tok <= 0) return;
    const size_t xrb = vdt_row_bytes(wtype, n_in);
    if (gemm && n_tok == 1) {
        gemm(n_in, r1 - r0, 1, w + (size_t)r0 * w_row_bytes, w_row_bytes, xq, xrb, Y + r0, (size_t)ldy);
        return;
    }
    if (gemm) {
        int panel = (int)(PANEL_BYTES / (w_row_bytes ? w_row_bytes : 1));
        panel = LC_MAX(align, panel / align * align);
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

static void thread_rows(int n_out, int align, int ith, int nth, int *r0, int *r1) {
    const int n_groups = (n_out + align - 1) / align;
    *r0 = (int)((int64_t)n_groups * ith / nth) * align;
    *r1 = LC_MIN((int)((int64_t)n_groups * (ith + 1) / nth) * align, n_out);
}

void lc_matmul_using(const lc_kernels *k, int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in,
                     const void *xq, int n_tok, float *Y, int ldy, int ith, int nth) {
    int r0, r1;
    thread_rows(n_out, ROW_ALIGN, ith, nth, &r0, &r1);
    matmul_rows(k, k->gemm[wtype], wtype, W, w_row_bytes, r0, r1, ROW_ALIGN, n_in, xq, n_tok, Y, ldy);
}

void lc_matmul_r8_using(const lc_kernels *k, int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in,
                        const void *xq, int n_tok, float *Y, int ldy, int ith, int nth) {
    const int g = lc__r8_rows(wtype), align = LC_MAX(ROW_ALIGN, g); /* g divides ROW_ALIGN or is a multiple */
    int r0, r1;
    thread_rows(n_out, align, ith, nth, &r0, &r1);
    const int ng = n_out / g * g; /* rows in whole groups */
    matmul_rows(k, k->gemm_r8[wtype], wtype, W, w_row_bytes, r0, LC_MIN(r1, ng), align, n_in, xq, n_tok, Y, ldy);
    matmul_rows(k, k->gemm[wtype], wtype, W, w_row_bytes, LC_MAX(r0, ng), r1, align, n_in, xq, n_tok, Y, ldy);
}

void lc_matmul_r8(int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in, const void *xq, int n_tok,
                  float *Y, int ldy, int ith, int nth) {
    lc_matmul_r8_using(lc_kernels_get(), wtype, W, w_row_bytes, n_out, n_in, xq, n_tok, Y, ldy, ith, nth);
}

static bool is_float(int wtype) { return wtype == LC_TYPE_F16 || wtype == LC_TYPE_BF16; }

static bool r8_type(int wtype) {
    return wtype == LC_TYPE_Q4_0 || wtype == LC_TYPE_Q8_0 || wtype == LC_TYPE_Q4_K || wtype == LC_TYPE_Q5_K ||
           wtype == LC_TYPE_Q6_K ||
           is_float(wtype);
}

int lc__r8_rows(int wtype) { return is_float(wtype) ? LC_R8F_ROWS : 8; }

bool lc__r8_packs(int wtype, int64_t n_in) {
    if (!r8_type(wtype) || n_in <= 0) return false;
    return n_in % (is_float(wtype) ? 32 : (int64_t)lc_type_traits_of(wtype)->blck_size) == 0;
}

/* Element index, within its group, of element i of row r (r < LC_R8F_ROWS) of a float W of n elements a row
** (kernels.h), pieces of pc elements: the piece at p = i rounded down to pc holds p * LC_R8F_ROWS elements before it;
** in it (len elements a row), tile r / 4, then phase (i % 32) / 8, then step (i - p) / 32 of 32 elements, row r % 4's
** 8 elements in it. */
static size_t r8f_index(int64_t n, int64_t pc, int r, int64_t i) {
    const int64_t p = i / pc * pc, len = LC_MIN(pc, n - p);
    return (size_t)(p * LC_R8F_ROWS + (r / 4) * 4 * len + (i % 32) / 8 * len + (i - p) / 32 * 32 + (r % 4) * 8 + i % 8);
}

/* Byte offset, within a group's block b, of byte j of row r's block: the block's nh fp16 scales first (d, and dmin
** for Q4_K and Q5_K; Q6_K's d, which its block stores last), each field's 8 rows side by side in 16 bytes; then the
** rest of it (Q4_K's 12 bytes of packed scales, then the quants; Q5_K's scales, qh and qs; Q6_K's ql, qh and
** scales) in 4-byte chunks, chunk c of the 8 rows in 32 bytes. */
static size_t r8_offset(int wtype, int r, int j) {
    if (wtype == LC_TYPE_Q6_K) {
        const int nq = (int)offsetof(block_q6_K, d); /* 208 bytes before d */
        if (j >= nq) return (size_t)(2 * r + j - nq);
        return (size_t)(16 + (j / 4) * 32 + 4 * r + j % 4);
    }
    const int nh = wtype == LC_TYPE_Q4_K || wtype == LC_TYPE_Q5_K ? 2 : 1;
    if (j < 2 * nh) return (size_t)(16 * (j / 2) + 2 * r + j % 2);
    j -= 2 * nh;
    return (size_t)(16 * nh + (j / 4) * 32 + 4 * r + j % 4);
}

/* The bytes from byte j of a block on that r8_offset keeps side by side: a 2-byte scale or a 4-byte chunk. */
static int r8_run(int wtype, int j) {
    if (wtype == LC_TYPE_Q6_K) return j >= (int)offsetof(block_q6_K, d) ? 2 : 4;
    return j < 2 * (wtype == LC_TYPE_Q4_K || wtype == LC_TYPE_Q5_K ? 2 : 1) ? 2 : 4;
}

/* One group of the float layout from its rows (tmp, w_row_bytes apart) into grp: 16-byte runs (8 elements of a row)
** in the order r8f_index numbers them. */
static void r8f_pack_group(uint8_t *grp, const uint8_t *tmp, size_t w_row_bytes, int64_t n, int64_t pc) {
    uint8_t *o = grp;
    for (int64_t p = 0; p < n; p += pc) {
        const int64_t len = LC_MIN(pc, n - p);
        for (int t = 0; t < LC_R8F_ROWS / 4; t++)
            for (int u = 0; u < 4; u++)
                for (int64_t st = p; st < p + len; st += 32)
                    for (int r = 4 * t; r < 4 * t + 4; r++, o += 16)
                        memcpy(o, tmp + (size_t)r * w_row_bytes + 2 * (size_t)(st + 8 * u), 16);
    }
}

bool lc__r8_pack(int wtype, void *w, size_t w_row_bytes, int64_t n_rows) {
    if (!r8_type(wtype)) return false;
    const size_t bs = lc_type_traits_of(wtype)->type_size, nb = w_row_bytes / bs;
    const int64_t n = (int64_t)(nb * lc_type_traits_of(wtype)->blck_size);
    if (!lc__r8_packs(wtype, n)) return false;
    const int gr = lc__r8_rows(wtype);
    uint8_t *tmp = malloc((size_t)gr * w_row_bytes);
    if (!tmp) return false;
    for (int64_t g = 0; g + gr <= n_rows; g += gr) {
        uint8_t *grp = (uint8_t *)w + (size_t)g * w_row_bytes;
        memcpy(tmp, grp, (size_t)gr * w_row_bytes);
        if (is_float(wtype)) {
            r8f_pack_group(grp, tmp, w_row_bytes, n, LC_R8F_PIECE(wtype));
            continue;
        }
        for (size_t b = 0; b < nb; b++)
            for (int r = 0; r < 8; r++)
                for (int j = 0, run; j < (int)bs; j += run) {
                    run = r8_run(wtype, j);
                    memcpy(grp + b * 8 * bs + r8_offset(wtype, r, j), tmp + (size_t)r * w_row_bytes + b * bs + j,
                           (size_t)run);
                }
    }
    free(tmp);
    return true;
}

void lc__r8_dequantize(int wtype, const void *w, size_t w_row_bytes, int64_t n_rows, int64_t row, int64_t col0,
                       int64_t n, float *out) {
    const lc_type_traits *tt = lc_type_traits_of(wtype);
    const int64_t b0 = col0 / (int64_t)tt->blck_size;
    const uint8_t *base = (const uint8_t *)w;
    const int gr = lc__r8_rows(wtype);
    if (row >= n_rows / gr * gr) { /* the partial group: rows as they were */
        lc_dequantize_row(wtype, base + (size_t)row * w_row_bytes + (size_t)b0 * tt->type_size, out, n);
        return;
    }
    if (is_float(wtype)) {
        const uint8_t *grp = base + (size_t)(row / gr) * gr * w_row_bytes;
        const int64_t nr = (int64_t)(w_row_bytes / 2);
        for (int64_t i = 0; i < n;) { /* runs of up to 8 elements lie side by side */
            const int64_t e = col0 + i, run = LC_MIN(8 - e % 8, n - i);
            lc_dequantize_row(wtype, grp + 2 * r8f_index(nr, LC_R8F_PIECE(wtype), (int)(row % gr), e), out + i, run);
            i += run;
        }
        return;
    }
    const size_t bs = tt->type_size;
    const int qk = (int)tt->blck_size;
    const uint8_t *grp = base + (size_t)(row / 8) * 8 * w_row_bytes;
    const int r = (int)(row % 8);
    for (int64_t i = 0; i < n; i += qk) {
        uint8_t blk[sizeof(block_q6_K)]; /* the largest r8 block */
        const uint8_t *src = grp + (size_t)(b0 + i / qk) * 8 * bs;
        for (int j = 0; j < (int)bs; j++) blk[j] = src[r8_offset(wtype, r, j)];
        float f[QK_K];
        lc_dequantize_row(wtype, blk, f, qk);
        memcpy(out + i, f, sizeof(float) * (size_t)LC_MIN((int64_t)qk, n - i));
    }
}

void lc_matmul_prepare(int wtype, const float *X, int ldx, int n_in, int n_tok, void *xq, int ith, int nth) {
    lc_matmul_prepare_using(lc_kernels_get(), wtype, X, ldx, n_in, n_tok, xq, ith, nth);
}

void lc_matmul(int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in, const void *xq, int n_tok,
               float *Y, int ldy, int ith, int nth) {
    lc_matmul_using(lc_kernels_get(), wtype, W, w_row_bytes, n_out, n_in, xq, n_tok, Y, ldy, ith, nth);
}
