/* frozen.c - matrix products through a frozen weight of any type (F32, F16, BF16, Q8_0, K-quants, ...) for LoRA
** fine-tuning: the forward Y = X W^T and the input gradient dX = dY W, never the weight gradient.
**
** The weight stays as the model file stores it. Each thread dequantizes panels of W (lc_dequantize_row, the
** reference conversion inference uses) into its own scratch and multiplies them with tr_gemm; an F32 weight is used
** in place. Forward: a thread owns output columns (rows of W), taken in panels of whole rows. Input gradient: a
** thread owns input columns, cut at block boundaries of the type, and sums over the rows of W in panels of PK rows,
** always in increasing order, so every element's sum is the same for any thread count.
*/
#include "finetune.h"

#include "../kernels/kernels.h"

enum { PANEL_FLOATS = 1 << 19, ROW_UNIT = 16, PK = 192, CW = 2048 };

size_t fz_scratch_floats(int n_in_max) {
    const size_t fwd = (size_t)ROW_UNIT * (size_t)(n_in_max > 0 ? n_in_max : 1);
    return LC_MAX(fwd, (size_t)PANEL_FLOATS) + tr_gemm_scratch_floats() + 64;
}

/* Rows of W per forward panel: about PANEL_FLOATS floats, a multiple of ROW_UNIT. */
static int fwd_panel_rows(int n_in) {
    int p = PANEL_FLOATS / (n_in > 0 ? n_in : 1);
    p = p / ROW_UNIT * ROW_UNIT;
    return LC_MAX(ROW_UNIT, LC_MIN(256, p));
}

void fz_fwd(const tr_gemm_impl *g, const lc_weight *w, const float *X, float *Y, int rows, bool acc, float *scratch,
            int ith, int nth) {
    const int n_in = (int)w->ne[0], n_out = (int)w->ne[1];
    const int n_units = (n_out + ROW_UNIT - 1) / ROW_UNIT;
    const int o0 = (int)((int64_t)n_units * ith / nth) * ROW_UNIT;
    const int o1 = LC_MIN(n_out, (int)((int64_t)n_units * (ith + 1) / nth) * ROW_UNIT);
    if (o0 >= o1 || rows <= 0) return;
    const uint8_t *W = w->data;
    if (w->type == LC_TYPE_F32) {
        tr_gemm(g, false, true, rows, o1 - o0, n_in, X, n_in, (const float *)(W + (size_t)o0 * w->row_bytes), n_in,
                Y + o0, n_out, acc, scratch, 0, 1);
        return;
    }
    const int pr = fwd_panel_rows(n_in);
    float *panel = scratch, *gs = scratch + LC_MAX((size_t)ROW_UNIT * n_in, (size_t)PANEL_FLOATS);
    for (int o = o0; o < o1; o += pr) {
        const int n = LC_MIN(pr, o1 - o);
        for (int i = 0; i < n; i++)
            lc__weight_row(w, o + i, 0, n_in, panel + (size_t)i * n_in);
        tr_gemm(g, false, true, rows, n, n_in, X, n_in, panel, n_in, Y + o, n_out, acc, gs, 0, 1);
    }
}

void fz_bwd(const tr_gemm_impl *g, const lc_weight *w, const float *dY, float *dX, int rows, bool acc, float *scratch,
            int ith, int nth) {
    const int n_in = (int)w->ne[0], n_out = (int)w->ne[1];
    const lc_type_traits *tt = lc_type_traits_of(w->type);
    const int blk = (int)tt->blck_size, unit = LC_MAX(ROW_UNIT, blk); /* blck sizes 1, 32, 256 divide unit */
    const int n_units = (n_in + unit - 1) / unit;
    const int c0 = (int)((int64_t)n_units * ith / nth) * unit;
    const int c1 = LC_MIN(n_in, (int)((int64_t)n_units * (ith + 1) / nth) * unit);
    if (c0 >= c1 || rows <= 0) return;
    const uint8_t *W = w->data;
    if (w->type == LC_TYPE_F32) {
        tr_gemm(g, false, false, rows, c1 - c0, n_out, dY, n_out, (const float *)W + c0, n_in, dX + c0, n_in, acc,
                scratch, 0, 1);
        return;
    }
    float *panel = scratch, *gs = scratch + LC_MAX((size_t)ROW_UNIT * n_in, (size_t)PANEL_FLOATS);
    for (int c = c0; c < c1; c += CW) {
        const int cw = LC_MIN(CW, c1 - c);
        for (int o = 0; o < n_out; o += PK) {
            const int k = LC_MIN(PK, n_out - o);
            for (int i = 0; i < k; i++)
                lc__weight_row(w, o + i, c, cw, panel + (size_t)i * cw);
            tr_gemm(g, false, false, rows, cw, k, dY + o, n_out, panel, cw, dX + c, n_in, acc || o > 0, gs, 0, 1);
        }
    }
}
