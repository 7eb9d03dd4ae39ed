/* kernels.h - the numeric kernels behind the forward pass: dot products and matrix multiplication per weight type.
**
** Each weight type T has a "vec-dot type": the type the f32 activations are converted to before the dot product,
** exactly as GGML does so results stay comparable with llama.cpp: F32 -> F32, F16 -> F16, BF16 -> BF16,
** Q8_0/Q4_0/Q4_1/Q5_x/IQ4_NL -> Q8_0 (Q8_1 for Q4_1/Q5_1), K-quants/IQ4_XS -> Q8_K.
** ref.c (plain C) is the specification and the test oracle; avx2.c, avx512.c and neon.c are compiled with their
** own flags and picked once at start-up by dispatch.c from the CPU's features. LLAMAC_CPU=ref|avx2|avx512|amx|neon
** forces a variant (an unsupported request falls back to the best available, with a warning).
**
** Numerical contract (tests/test_kernels.c checks it):
** - Batch invariance: within a variant, vec_dot, the GEMV (n_tok == 1) and the GEMM (n_tok > 1) give bit-identical
**   results for the same (row, token), so a token's logits do not depend on what else is in the batch.
** - Integer-block types (Q8_0; later the other quants): every variant forms each block's integer dot product
**   exactly, scales it as (float)sumi * (d_w * d_x) (one f32 rounding; d_w * d_x is exact for two fp16 values) and
**   adds the blocks in order with separate f32 adds, so all variants are bit-identical to ref.c.
** - Float types (F32, F16, BF16): products summed in f32 in a fixed per-variant order (several lanes and
**   accumulators, 4096-element chunks); the result is within (n/4 + 32) * 2^-24 * sum|w_i x_i| of the exact dot
**   (ref.c sums in double, as GGML's scalar path does). AVX-512 BF16 uses VDPBF16PS, which treats bf16 subnormals
**   as zero; still within that bound for normal data.
** - from_float is bit-identical across variants: F16 and BF16 round to nearest even; Q8_0 is GGML's x86 form
**   (d = amax/127, q = round-half-even(x * (127/amax))), see lc__quantize_row_q8_0_act.
*/
#ifndef LC_KERNELS_H
#define LC_KERNELS_H

#include "../quant/types.h"

/* s = dot(w[0..n), x[0..n)) with w a row of type T and x a row of vec_dot_type(T). n is a multiple of the block
** (any n >= 0 for F32/F16/BF16). Pure, thread-safe. */
typedef void (*lc_vec_dot_fn)(int n, float *s, const void *w, const void *x);
/* Converts n f32 activations to the vec-dot type (n a multiple of its block). Pure, thread-safe. */
typedef void (*lc_from_float_fn)(const float *x, void *y, int64_t n);
/* A tile of a matrix product: y[t*ldy + r] = dot(W row r, X row t) for r in [0, nr), t in [0, nt), rows of n
** elements. W rows (type T) are w_stride bytes apart, X rows (vec-dot type of T) x_stride bytes apart; rows need
** only their element's alignment (4 bytes for F32, 2 otherwise). Bit-identical to vec_dot for every (r, t).
** nt == 1 is the decode GEMV. No allocation (stack buffers of at most 64 KiB), thread-safe. */
typedef void (*lc_gemm_fn)(int n, int nr, int nt, const void *w, size_t w_stride, const void *x, size_t x_stride,
                           float *y, size_t ldy);
/* y[i] = y[i] + a * x[i] for i < n, x a row of type T (F32, F16, BF16): one f32 multiply, then one f32 add (no FMA),
** so every variant gives the same bits as the plain C loop `y[i] += a * x[i]` (attention's weighted sum of V). */
typedef void (*lc_vec_mad_fn)(int n, float *y, const void *x, float a);

typedef struct lc_kernels {
    const char *name; /* "ref", "avx2", "avx512", "amx", "neon" */
    lc_vec_dot_fn vec_dot[LC_TYPE_COUNT];      /* NULL: type not supported */
    lc_from_float_fn from_float[LC_TYPE_COUNT]; /* indexed by the vec-dot type */
    lc_gemm_fn gemm[LC_TYPE_COUNT];             /* indexed by weight type; NULL: matmul loops over vec_dot */
    lc_vec_mad_fn vec_mad[LC_TYPE_COUNT];       /* F32, F16, BF16 */
    lc_gemm_fn gemm_r8[LC_TYPE_COUNT];          /* the same over W in the r8 layout (below); NULL: none */
} lc_kernels;

/* The variant in use (chosen once, thread-safe; initialises the base tables too). */
const lc_kernels *lc_kernels_get(void);
/* A specific variant by name, or NULL if this CPU/build cannot run it (for tests). */
const lc_kernels *lc_kernels_by_name(const char *name);
/* The vec-dot type of weight type T (-1 if unsupported). */
int lc_vec_dot_type(int type);

/* ---- matrix multiplication ----
** Y[t*ldy + r] = dot(W row r, X row t) for t in [0, n_tok), r in [0, n_out).
** W: n_out rows of n_in elements of type wtype, w_row_bytes apart.
** Step 1, lc_matmul_prepare: converts X (f32, n_tok rows of n_in, ldx floats apart) to the vec-dot type into xq
**         (lc_matmul_xq_bytes bytes; rows of the vec-dot type back to back). Step 2, after a barrier, lc_matmul.
**         Both split work over (ith, nth) and never allocate. For wtype F32, prepare copies nothing when
**         ldx == n_in and xq == X (pass X as xq); otherwise it copies the rows into xq.
** lc_matmul splits output rows evenly over threads; n_tok == 1 streams W once (a GEMV at memory bandwidth),
** n_tok > 1 runs the variant's blocked GEMM over panels of W that stay in cache. */
size_t lc_matmul_xq_bytes(int wtype, int n_in, int n_tok);
void lc_matmul_prepare(int wtype, const float *X, int ldx, int n_in, int n_tok, void *xq, int ith, int nth);
void lc_matmul(int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in, const void *xq, int n_tok,
               float *Y, int ldy, int ith, int nth);
/* The same with an explicit variant (tests and benchmarks run every variant in one process). */
void lc_matmul_prepare_using(const lc_kernels *k, int wtype, const float *X, int ldx, int n_in, int n_tok, void *xq,
                             int ith, int nth);
void lc_matmul_using(const lc_kernels *k, int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in,
                     const void *xq, int n_tok, float *Y, int ldy, int ith, int nth);

/* ---- the r8 layout: weights repacked at load for the variants that read it (gemm_r8 non-NULL) ----
** W's rows in groups of 8, each group keeping its 8 rows' bytes (8 * w_row_bytes) but interleaved block by block, so
** one group streams as one range and a block of 8 rows loads as whole vectors. Q4_0, Q8_0, Q4_K, Q5_K and Q6_K: per
** block, the 8 rows' fp16 scales (d, row r at 2r; Q4_K's and Q5_K's dmin next, at 16 + 2r; Q6_K's d although its
** block stores it last), then the rest of the block in 4-byte chunks: chunk c of row r at 16 h + 32c + 4r (h = 1, or 2
** for Q4_K and Q5_K; c < 4 for Q4_0's 16 bytes of quants, c < 8 for Q8_0's 32, c < 35 for Q4_K's 12 bytes of packed
** scales and 128 of quants, c < 43 for Q5_K's 12 of scales, 32 of qh and 128 of qs, c < 52 for Q6_K's ql, qh and
** scales). A last group of fewer than 8 rows stays row after row. The numbers are
** unchanged: a variant's gemm_r8 gives bit for bit what its gemm gives on the rows.
** F16 and BF16 (rows of a multiple of 32 elements): groups of LC_R8F_ROWS rows; a group stores its rows' elements
** [p, p + len) (the pieces: p a multiple of P = LC_R8F_PIECE(type), len = min(P, n - p)) after those before p, and in
** a piece, for each tile of 4 rows, for each phase u < 4, for each 32-element step s, a line of 4 x 8 elements: row
** r's elements p + 32 s + 8 u + [0, 8) at 8 r. That is the order in which the AVX2 GEMM's 4-row tiles and four
** partial sums (avx2.c) read them, so a group streams from start to end. A last group of fewer rows stays as rows. */
enum { LC_R8F_ROWS = 32 };
/* Elements a piece (a power of 2 dividing 4096): 2048 for F16, whose GEMM reads the activations as they are, 512 for
** BF16, whose GEMM reads them widened to f32 (avx2.c says why). */
#define LC_R8F_PIECE(wtype) ((wtype) == LC_TYPE_BF16 ? 512 : 2048)
/* Rows a group holds (8, or LC_R8F_ROWS for F16 and BF16). */
int lc__r8_rows(int wtype);
/* Whether lc__r8_pack takes rows of n_in elements of the type (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K; F16 and BF16 when n_in
** is a multiple of 32). */
bool lc__r8_packs(int wtype, int64_t n_in);
/* Repacks n_rows rows of W in place (memory as big as one group is borrowed from the heap; false if unavailable, or
** if lc__r8_packs says no). */
bool lc__r8_pack(int wtype, void *w, size_t w_row_bytes, int64_t n_rows);
/* Elements [col0, col0 + n) of row `row` of an r8 W of n_rows rows, as f32 (col0 and n whole blocks, or n to the
** row's end). */
void lc__r8_dequantize(int wtype, const void *w, size_t w_row_bytes, int64_t n_rows, int64_t row, int64_t col0,
                       int64_t n, float *out);
/* lc_matmul over an r8 W: the variant's gemm_r8 for whole groups, its gemm for a last partial group. */
void lc_matmul_r8(int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in, const void *xq, int n_tok,
                  float *Y, int ldy, int ith, int nth);
void lc_matmul_r8_using(const lc_kernels *k, int wtype, const void *W, size_t w_row_bytes, int n_out, int n_in,
                        const void *xq, int n_tok, float *Y, int ldy, int ith, int nth);

/* ---- internal: how dispatch.c fills the tables ----
** Each ISA file fills a table that already holds the ref functions, replacing what it accelerates. dispatch.c calls
** an ISA's fill function only when lc__cpu() reports that ISA (the code is compiled with its -m flags). */
void lc__kernels_fill_ref(lc_kernels *k);
void lc__kernels_fill_avx2(lc_kernels *k);
void lc__kernels_fill_avx512(lc_kernels *k, const lc_cpu_features *cpu);
void lc__kernels_fill_neon(lc_kernels *k);
/* amx.c: asks Linux for the tile data state (once per process; false when refused), then the Q8_0 GEMM on tiles
** over a copy of the avx512 table (which must have the VNNI Q8_0 kernels: they run what the tiles do not). */
bool lc__amx_enable(void);
void lc__kernels_fill_amx(lc_kernels *k);
/* The 4/5-bit, K-quant and IQ4 types (qdot_impl.h compiled per ISA: avx2_quants.c, avx512_quants.c,
** neon_quants.c), called at the end of the fill function above them. */
void lc__kernels_fill_avx2_quants(lc_kernels *k);
/* avx2_quants.c's staged Q8_0 GEMM, which avx2.c's gemm_q8_0 calls for 2 tokens or more */
void lc__gemm_x8_q8_0_avx2(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,
                           size_t ldy);
void lc__kernels_fill_avx512_quants(lc_kernels *k, const lc_cpu_features *cpu);
void lc__kernels_fill_neon_quants(lc_kernels *k);

/* ref.c's kernels, also used by the ISA files for the types they do not accelerate and by tests. */
void lc__vec_dot_f32_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_f16_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_bf16_ref(int n, float *s, const void *w, const void *x);
void lc__vec_dot_q8_0_ref(int n, float *s, const void *w, const void *x);

#endif /* LC_KERNELS_H */
