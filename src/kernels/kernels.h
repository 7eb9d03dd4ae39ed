/* kernels.h - the numeric kernels behind the forward pass: dot products and matrix multiplication per weight type.
**
** Each weight type T has a "vec-dot type": the type the f32 activations are converted to before the dot product,
** exactly as GGML does so results stay comparable with llama.cpp: F32 -> F32, F16 -> F16, BF16 -> BF16,
** Q8_0/Q4_0/Q4_1/Q5_x/IQ4_NL -> Q8_0 (Q8_1 for Q4_1/Q5_1), K-quants/IQ4_XS -> Q8_K.
** ref.c (plain C) is the specification and the test oracle; avx2.c, avx512.c and neon.c are compiled with their
** own flags and picked once at start-up by dispatch.c from the CPU's features. LLAMAC_CPU=ref|avx2|avx512|neon
** forces a variant (an unsupported request falls back to the best available, with a warning).
*/
#ifndef LC_KERNELS_H
#define LC_KERNELS_H

#include "../quant/types.h"

/* s = dot(w[0..n), x[0..n)) with w a row of type T and x a row of vec_dot_type(T). n is a multiple of the block. */
typedef void (*lc_vec_dot_fn)(int n, float *s, const void *w, const void *x);
/* Converts n f32 activations to the vec-dot type. */
typedef void (*lc_from_float_fn)(const float *x, void *y, int64_t n);

typedef struct lc_kernels {
    const char *name; /* "ref", "avx2", "avx512", "neon" */
    lc_vec_dot_fn vec_dot[LC_TYPE_COUNT];      /* NULL: type not supported */
    lc_from_float_fn from_float[LC_TYPE_COUNT]; /* indexed by the vec-dot type */
} lc_kernels;

/* The variant in use (chosen once, thread-safe). */
const lc_kernels *lc_kernels_get(void);
/* A specific variant by name, or NULL if this CPU/build cannot run it (for tests). */
const lc_kernels *lc_kernels_by_name(const char *name);
/* The vec-dot type of weight type T (-1 if unsupported). */
int lc_vec_dot_type(int type);

/* ---- matrix multiplication ----
** Y[t*ldy + r] = dot(W row r, X row t) for t in [0, n_tok), r in [0, n_out).
** W: n_out rows of n_in elements of type wtype, w_row_bytes apart.
** Step 1, lc_matmul_prepare: converts X (f32, n_tok rows of n_in, ldx floats apart) to the vec-dot type into xq
**         (lc_matmul_xq_bytes bytes). Step 2, after a barrier, lc_matmul. Both split work over (ith, nth) and never
**         allocate. For wtype F32, prepare copies nothing and xq may alias X if ldx == n_in (pass X as xq). */
size_t lc_matmul_xq_bytes(int wtype, int n_in, int n_tok);
void lc_matmul_prepare(int wtype, const float *X, int ldx, int n_in, int n_tok, void *xq, int ith, int nth);
void lc_matmul(int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in, const void *xq, int n_tok,
               float *Y, int ldy, int ith, int nth);

#endif /* LC_KERNELS_H */
