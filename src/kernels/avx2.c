/* avx2.c - x86-64 kernels for AVX2 + FMA + F16C (built with -mavx2 -mfma -mf16c; dispatch.c calls in only when
** lc__cpu() reports all three). Float types: 8-lane FMA in one canonical summation order shared by vec_dot, GEMV
** (one row at a time) and GEMM (4 rows x 3 tokens tiles), so results do not depend on the batch. Q8_0: VPMADDUBSW
** on |w| and sign(x, w) (GGML's trick; safe because activations never hold -128), each block's integer sum reduced
** exactly, then scaled and added block by block: bit-identical to ref.c (kernels.h states the contract). The Q8_0
** GEMM is avx2_quants.c's (staged, 8 rows in the lanes, both operands widened to 16 bits), with the same sums.
*/
#include "kernels.h"

#include <immintrin.h>

/* Float results must not depend on the compiler: clang fuses a * b + c into an FMA by default (GCC in -std=c11 mode
** does not), which would change the bits the variants agree on. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------------------------------------------------------
** float types: F32, F16 (x in F16), BF16 (x in BF16) */


INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE __m256 load8(const int T, const void *p, int i) {
    if (T == LC_TYPE_F32) return _mm256_loadu_ps((const float *)p + i);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (T == LC_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16: the high half of f32 */
}

INLINE float elem(const int T, const void *p, int i) {
    if (T == LC_TYPE_F32) return ((const float *)p)[i];
    if (T == LC_TYPE_F16) return lc_fp16_lut(((const lc_fp16 *)p)[i]);
    return lc_bf16_to_fp32(((const lc_bf16 *)p)[i]);
}

/* Every dot product, in vec_dot, GEMV and GEMM alike, sums in one canonical order, so a token's outputs do not
** depend on how many tokens share the batch: chunks of KCHUNK elements, each summed with four accumulators over
** 32-element steps, then 8-element steps into accumulator 0, reduced as (a0 + a1) + (a2 + a3), then the tail
** elements added one by one; the chunk sums are added in order. */
enum { KCHUNK = 4096 };
/* How far ahead in its row the GEMV prefetches (bytes). The hardware prefetcher alone left F16 decode at ~85% of the
** read bandwidth; bench_kernels -T F16 -p 1, medians of 4 alternated runs: none 14.8 / 26.3 GB/s (1 / 2 threads),
** 1 KiB 17.1 / 28.6, 2 KiB 16.2 / 27.8. */
enum { PF_FLOAT = 1024 };

/* Software prefetch, a line at a time, of the len bytes dist bytes after p: what a GEMV row reads next. The address
** is formed as an integer and may lie past the matrix (a prefetch never faults). */
INLINE void prefetch_ahead(const void *p, size_t dist, size_t len) {
    for (size_t l = 0; l < len; l += 64) _mm_prefetch((const char *)((uintptr_t)p + dist + l), _MM_HINT_T0);
}

/* y[j*ldy + r] (+)= dot(w row r, x row j) over one chunk of n elements, r < RM, j < RN (RM*RN <= 3: 12
** accumulators of 16 registers). W rows of type T are ws bytes apart; x rows of type TX (F32 after widening, or T)
** xs elements apart. `add`: add to y (a later chunk) instead of storing. */
INLINE void tile_float(const int T, const int TX, const int RM, const int RN, int n, const uint8_t *w, size_t ws,
                       const void *x, size_t xs, float *y, size_t ldy, bool add) {
    const size_t xbytes = TX == LC_TYPE_F32 ? 4 : 2;
    const uint8_t *xb = x;
    __m256 acc[3][4];
#pragma GCC unroll 3
    for (int p = 0; p < RM * RN; p++)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) acc[p][u] = _mm256_setzero_ps();
    const size_t wbytes = T == LC_TYPE_F32 ? 4 : 2;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        if (RM == 1 && RN == 1) prefetch_ahead(w + (size_t)i * wbytes, PF_FLOAT, 32 * wbytes); /* one stream */
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
#pragma GCC unroll 3
            for (int r = 0; r < RM; r++) {
                const __m256 a = load8(T, w + r * ws, i + 8 * u);
#pragma GCC unroll 3
                for (int j = 0; j < RN; j++)
                    acc[r * RN + j][u] =
                        _mm256_fmadd_ps(a, load8(TX, xb + j * xs * xbytes, i + 8 * u), acc[r * RN + j][u]);
            }
        }
    }
    for (; i + 8 <= n; i += 8) {
#pragma GCC unroll 3
        for (int r = 0; r < RM; r++) {
            const __m256 a = load8(T, w + r * ws, i);
#pragma GCC unroll 3
            for (int j = 0; j < RN; j++)
                acc[r * RN + j][0] = _mm256_fmadd_ps(a, load8(TX, xb + j * xs * xbytes, i), acc[r * RN + j][0]);
        }
    }
#pragma GCC unroll 3
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 3
        for (int j = 0; j < RN; j++) {
            const __m256 *a = acc[r * RN + j];
            float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
            for (int k = i; k < n; k++) s += elem(T, w + r * ws, k) * elem(TX, xb + j * xs * xbytes, k);
            y[j * ldy + r] = add ? y[j * ldy + r] + s : s;
        }
}

INLINE void dot_float(const int T, int n, float *s, const void *w, const void *x) {
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    for (int c0 = 0; c0 < n || c0 == 0; c0 += KCHUNK)
        tile_float(T, T, 1, 1, LC_MIN(KCHUNK, n - c0), (const uint8_t *)w + (size_t)c0 * esz, 0,
                   (const uint8_t *)x + (size_t)c0 * esz, 0, s, 0, c0 > 0);
}

/* The same sums for an RM x RN GEMM tile (RM*RN <= 12 accumulators) in four phases: phase u accumulates what
** accumulator u of tile_float does (the u-th 8-element piece of every 32-element step; phase 0 also the 8-element
** steps after them), in the same order; tile_float's reduction and tail come after. Bit-identical to tile_float with
** 4x fewer registers per output. A phase can stop and go on later: its sums wait in part[] between the sub-blocks
** of the k range (the same additions in the same order). x: rows of type TX (f32, or W's type), xs elements apart;
** phase_step: f32 rows. */
INLINE void phase_step_x(const int T, const int TX, const int RM, const int RN, const uint8_t *w, size_t ws,
                         const void *x, size_t xs, int i, int ix, __m256 *acc) {
    if (RN <= RM) { /* the x pieces in registers, W one row at a time */
        __m256 b[4];
#pragma GCC unroll 4
        for (int j = 0; j < RN; j++) b[j] = load8(TX, x, (int)(j * xs) + ix);
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) {
            const __m256 a = load8(T, w + r * ws, i);
#pragma GCC unroll 6
            for (int j = 0; j < RN; j++) acc[r * RN + j] = _mm256_fmadd_ps(a, b[j], acc[r * RN + j]);
        }
    } else { /* the W pieces in registers (converted once), x one token at a time */
        __m256 a[4];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) a[r] = load8(T, w + r * ws, i);
#pragma GCC unroll 6
        for (int j = 0; j < RN; j++) {
            const __m256 b = load8(TX, x, (int)(j * xs) + ix);
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) acc[r * RN + j] = _mm256_fmadd_ps(a[r], b, acc[r * RN + j]);
        }
    }
}

INLINE void phase_step(const int T, const int RM, const int RN, const uint8_t *w, size_t ws, const float *x,
                       size_t xs, int i, int ix, __m256 *acc) {
    phase_step_x(T, LC_TYPE_F32, RM, RN, w, ws, x, xs, i, ix, acc);
}

/* The four phases over the 32-element steps in [i0, i1) (and, when tail8, phase 0's 8-element steps in [i1, n8)),
** continuing part[(r * pr + j) * 4 + u] (zeros when first). w: row 0 of the tile at element 0 of the chunk; x: token
** 0 of the tile, its element i at x[i - xo]. */
INLINE void tile_sub(const int T, const int RM, const int RN, int i0, int i1, bool tail8, int n8, const uint8_t *w,
                     size_t ws, const float *x, size_t xs, int xo, __m256 *part, int pr, bool first) {
    for (int u = 0; u < 4; u++) {
        __m256 acc[12];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
#pragma GCC unroll 6
            for (int j = 0; j < RN; j++)
                acc[r * RN + j] = first ? _mm256_setzero_ps() : part[(r * pr + j) * 4 + u];
        for (int i = i0 + 8 * u; i < i1; i += 32) phase_step(T, RM, RN, w, ws, x, xs, i, i - xo, acc);
        if (u == 0 && tail8)
            for (int i = i1; i < n8; i += 8) phase_step(T, RM, RN, w, ws, x, xs, i, i - xo, acc);
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
#pragma GCC unroll 6
            for (int j = 0; j < RN; j++) part[(r * pr + j) * 4 + u] = acc[r * RN + j];
    }
}

static void vec_dot_f32(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_F32, n, s, w, x); }
static void vec_dot_f16(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_F16, n, s, w, x); }
static void vec_dot_bf16(int n, float *s, const void *w, const void *x) { dot_float(LC_TYPE_BF16, n, s, w, x); }

/* GEMM blocking. A group of RGROUP rows x TGROUP tokens is summed KSUB elements at a time: the tokens' KSUB-element
** pieces (widened to f32, 24 KiB) stay in L1 while every tile of the group passes over them, and each tile's W piece
** stays in L1 for its four phases; the tiles' phase sums wait in part[] (48 KiB) between pieces: 72 KiB of stack
** (pool.c gives its threads 1 MiB, the server its scheduler 8). Before, each tile ran its phases over whole rows and
** read its x rows from L2 in every phase. bench_kernels -T F16 -c, 1 thread, best of 3 (Zen 3): 8 tokens over 2048
** elements 57 -> 72 GFLOP/s, over 8192 (FFN down) 41 -> 73, 512 tokens 54 -> 67; `llamac bench -B 8` (8 sequences
** decoding together), 1B F16, 2 threads: 67-70 -> 77-89 GFLOP/s, pp256 77-84 -> 101. Tried: groups of 16 rows (48
** KiB in all: 7% slower at 512 tokens, bench_kernels -T F16 -c -t 1, CPU time, 3 runs 63.0-64.4 against 68.4-69.1),
** 9 tokens a group (66), 64 rows and 8 tokens (the same in the model within the noise), 3 x 4 and 2 x 6 tiles (no
** better, 2 x 6 worse), KSUB 256 and 1024 (worse), software prefetch of W (the next piece of the same rows, the next
** row group, or the tile 4-16 rows on; T0, T1, T2, NTA: all slower or no faster). */
enum { TILE_M = 4, TILE_N = 3, RGROUP = 32, TGROUP = 12, KSUB = 512 };

INLINE void tile_any(const int T, int rm, int rn, int i0, int i1, bool tail8, int n8, const uint8_t *w, size_t ws,
                     const float *x, size_t xs, int xo, __m256 *part, bool first) {
#define TILE(RM, RN) tile_sub(T, RM, RN, i0, i1, tail8, n8, w, ws, x, xs, xo, part, TGROUP, first)
    if (rm == TILE_M) {
        switch (rn) {
        case 1: TILE(TILE_M, 1); break;
        case 2: TILE(TILE_M, 2); break;
        default: TILE(TILE_M, 3); break;
        }
    } else {
        switch (rn) {
        case 1: TILE(1, 1); break;
        case 2: TILE(1, 2); break;
        default: TILE(1, 3); break;
        }
    }
#undef TILE
}

/* GEMV (nt == 1): vec_dot row after row, each row one DRAM stream from start to end (interleaving rows, or reading
** a row at several places or in several passes, measured up to 2x slower). GEMM: the blocking above, per KCHUNK
** chunk (the canonical order's unit); F16/BF16 activations are widened to f32 a KSUB piece at a time, so the tiles
** convert only W. */
INLINE void gemm_float(const int T, int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,
                       float *y, size_t ldy) {
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    const uint8_t *w = vw, *x = vx;
    if (nt == 1) { /* GEMV: vec_dot row after row, each row one DRAM stream from start to end */
        for (int r = 0; r < nr; r++) dot_float(T, n, y + r, w + (size_t)r * ws, x);
        return;
    }
    float xf[TGROUP][KSUB] __attribute__((aligned(32)));
    __m256 part[RGROUP * TGROUP * 4];
    for (int c0 = 0; c0 < n; c0 += KCHUNK) {
        const int nc = LC_MIN(KCHUNK, n - c0), n32 = nc / 32 * 32, n8 = nc / 8 * 8;
        const uint8_t *wc = w + (size_t)c0 * esz;
        for (int rg = 0; rg < nr; rg += RGROUP) {
            const int nrg = LC_MIN(RGROUP, nr - rg);
            for (int tg = 0; tg < nt; tg += TGROUP) {
                const int ntg = LC_MIN(TGROUP, nt - tg);
                for (int k0 = 0; k0 < n8 || k0 == 0; k0 += KSUB) {
                    const int k1 = LC_MIN(k0 + KSUB, n32), last = k0 + KSUB >= n8, ke = last ? n8 : k1;
                    const float *xc;
                    size_t xstride;
                    int xo = 0;
                    if (T == LC_TYPE_F32) {
                        xc = (const float *)(x + (size_t)tg * xs) + c0; /* element i of the chunk at xc + i */
                        xstride = xs / 4;
                    } else {
                        for (int j = 0; j < ntg; j++) {
                            const uint8_t *xr = x + (size_t)(tg + j) * xs + (size_t)c0 * esz;
                            for (int i = k0; i < ke; i += 8) _mm256_store_ps(xf[j] + i - k0, load8(T, xr, i));
                        }
                        xc = xf[0];
                        xstride = KSUB;
                        xo = k0;
                    }
                    for (int r = 0; r < nrg; r += (nrg - r >= TILE_M ? TILE_M : 1)) {
                        const int rm = nrg - r >= TILE_M ? TILE_M : 1;
                        for (int j = 0; j < ntg; j += TILE_N)
                            tile_any(T, rm, LC_MIN(TILE_N, ntg - j), k0, k1, last, n8, wc + (size_t)(rg + r) * ws,
                                     ws, xc + (size_t)j * xstride, xstride, xo, part + (r * TGROUP + j) * 4, k0 == 0);
                    }
                }
                for (int r = 0; r < nrg; r++)
                    for (int j = 0; j < ntg; j++) {
                        const __m256 *p = part + (r * TGROUP + j) * 4;
                        const uint8_t *wr = wc + (size_t)(rg + r) * ws;
                        const uint8_t *xr = x + (size_t)(tg + j) * xs + (size_t)c0 * esz;
                        float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(p[0], p[1]), _mm256_add_ps(p[2], p[3])));
                        for (int k = n8; k < nc; k++) s += elem(T, wr, k) * elem(T, xr, k);
                        float *yo = y + (size_t)(tg + j) * ldy + rg + r;
                        *yo = c0 > 0 ? *yo + s : s;
                    }
            }
        }
    }
}

/* The float r8 layout (kernels.h): a group of LC_R8F_ROWS rows stores each piece of its rows (LC_R8F_PIECE(type)
** elements) tile by tile (4 rows), each tile phase by phase, each phase's 32-element steps as 64-byte lines holding
** the step's 8 elements of the tile's 4 rows: exactly what phase_step reads, in the order gemm_float's loops read it.
** W is then one sequential stream per 4096-element chunk instead of 32 rows read 1 KiB at a time. The loops and the
** additions are gemm_float's, so the bits are too (n a multiple of 32, whole groups: lc_matmul_r8 sees to both).
** Over a 128 MiB F16 W, 8 tokens, 1 thread: 42-51 -> 53-62 GFLOP/s (rows -> this layout, best of 8 x 5 calls).
** F16: a batch's tiles read the activations as they are (converted in the step: VCVTPH2PS from memory runs beside
** the FMAs, a loop of 12 FMAs and 7 conversions reaches the FMA peak), so a piece's length is bounded by L1 holding a
** tile's W piece and its 3 tokens' x (16 + 12 KiB), no longer by an f32 copy of 12 tokens' x (24 KiB for 512
** elements); a phase's 64 steps then amortize its 12 accumulators' loads and stores. Pieces 512 -> 2048 with x
** read as is, 1B-shaped F16 model, 2 threads, 5 alternated pairs: pp256 +8% median (0.99-1.14; a build with the
** prefetch branches unswitched, no faster in cache, +14%), tg32 +1% (0.95-1.06), -B 8 level; bench_kernels -T F16
** -c, 1 thread: 8 tokens level (76), 512 tokens 66-71 -> 75-79 GFLOP/s. 1024: pp 0.88x of 2048 (median of 5); 4096
** (the tile's W piece fills L1): 1.03x. Reading x as is with pieces of 512: no faster, nor pieces of 1024 with x
** widened (the 8 tokens' copy fills L1). */
/* How far ahead the first token tile prefetches the stream (bytes). bench_kernels -T F16 -t 1, GEMV: 256 B to 1 KiB
** 18.4-19.3 GB/s, 2 KiB 16.0, 4 KiB 15.1 (T0); T1 and NTA no better; none 15.9-17.6. Two streams at once (a tile's
** phases in pairs): 13. Several tokens: 4 KiB took bench_kernels' 8-token GEMM from 61-64 to 69-72 GFLOP/s (1
** thread), but the model's `llamac bench -B 8` from 48-50 down to 44-47 t/s (2 KiB: lower too), so 1 KiB for both.
** What helped the GEMM instead (r8f_block's pf_next): the first token tile over a 4-row tile reads it from DRAM at
** about 3x the rate the whole GEMM needs, while the later token tiles compute on it from L1 and leave the memory idle.
** So the second token tile prefetches the next 4-row tile (to L2, one line per step; the stream is contiguous).
** bench_kernels -T F16 -p 8 -s 2: 1 thread 50-63 -> 68-74 GFLOP/s, 2 threads 129-142 -> 140-150; the model's
** `llamac bench -B 8` (F16, 2 threads, 6 alternated pairs) +7% median (0.97-1.26). */
enum { PF_R8F = 1024 };
/* BF16 keeps pieces of 512 with its activations widened a piece at a time (XF_PIECE): converting BF16 takes two
** instructions (zero-extend, shift) on the pipes beside the FMAs, where F16 takes one, and the step already converts
** W; read as it is, x cost BF16 12% (bench_kernels -T BF16 -c, 1 thread, 8 and 512 tokens: 60 -> 53 GFLOP/s), and
** widened into pieces of 2048 (96 KiB for 12 tokens) 4-7%. */
enum { XF_PIECE = 512 };
_Static_assert(KCHUNK % LC_R8F_PIECE(LC_TYPE_F16) == 0 && LC_R8F_PIECE(LC_TYPE_BF16) == XF_PIECE &&
                   TGROUP * XF_PIECE >= KCHUNK && LC_R8F_ROWS % TILE_M == 0,
               "a piece never straddles a chunk; xf holds a BF16 piece of TGROUP tokens, or a chunk of one token");

INLINE void tile_r8f(const int T, const int TX, const int RN, const uint8_t *w, int len, const void *x, size_t xs,
                     __m256 *part, bool first, bool pf, bool pf_next) {
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    for (int u = 0; u < 4; u++) {
        __m256 acc[12];
#pragma GCC unroll 4
        for (int r = 0; r < TILE_M; r++)
#pragma GCC unroll 3
            for (int j = 0; j < RN; j++) acc[r * RN + j] = first ? _mm256_setzero_ps() : part[(r * TGROUP + j) * 4 + u];
        const uint8_t *l = w + (size_t)u * len * esz;
        for (int s = 0; s < len / 32; s++) {
            if (pf) _mm_prefetch((const char *)((uintptr_t)l + (size_t)s * 32 * esz + PF_R8F), _MM_HINT_T0);
            if (pf_next) _mm_prefetch((const char *)((uintptr_t)l + (size_t)s * 32 * esz + (size_t)TILE_M * len * esz),
                                      _MM_HINT_T1);
            phase_step_x(T, TX, TILE_M, RN, l + (size_t)s * 32 * esz, 8 * esz, x, xs, 0, 32 * s + 8 * u, acc);
        }
#pragma GCC unroll 4
        for (int r = 0; r < TILE_M; r++)
#pragma GCC unroll 3
            for (int j = 0; j < RN; j++) part[(r * TGROUP + j) * 4 + u] = acc[r * RN + j];
    }
}

/* Group rg's rows over tokens [tg, tg + ntg) and the elements [c0, c0 + nc) of a chunk: its sums added to y (or
** stored, in the first chunk). pf_next (a batch of up to TGROUP tokens, W read once from DRAM): the second token tile
** over each 4-row tile prefetches the next 4-row tile, one line a step (the first prefetches its own stream 1 KiB
** ahead). Prefill keeps only the latter: with more tokens, pp144 and pp512 measured no better and perhaps worse.
** The tokens' x: rows of W's type, xs bytes apart, read as they are; or xw, one token's chunk widened to f32. */
INLINE void r8f_block(const int T, int c0, int nc, int rg, int tg, int ntg, const uint8_t *w, size_t ws,
                      const uint8_t *x, size_t xs, float *y, size_t ldy, const float *xw, float (*xf)[XF_PIECE],
                      __m256 *part, bool pf_next) {
    const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
    const int pc = LC_R8F_PIECE(T);
    const bool widen = T == LC_TYPE_BF16 && !xw;
    const uint8_t *wg = w + (size_t)rg * ws;
    for (int k0 = 0; k0 < nc; k0 += pc) {
        const int len = LC_MIN(pc, nc - k0);
        const uint8_t *wp = wg + (size_t)(c0 + k0) * LC_R8F_ROWS * esz;
        /* the tokens' elements c0 + k0 + i: x as it is (its own type, xs bytes a row), xw (one token, f32), or (BF16)
        ** widened into xf */
        const uint8_t *xt = x + (size_t)tg * xs + (size_t)(c0 + k0) * esz;
        for (int j = 0; widen && j < ntg; j++)
            for (int i = 0; i < len; i += 8) _mm256_store_ps(xf[j] + i, load8(T, xt + (size_t)j * xs, i));
        for (int t = 0; t < LC_R8F_ROWS / TILE_M; t++) {
            const uint8_t *wt = wp + (size_t)t * TILE_M * len * esz;
            __m256 *pt = part + (size_t)t * TILE_M * TGROUP * 4;
            for (int j = 0; j < ntg; j += TILE_N) {
                const bool first = k0 == 0, pf = j == 0, pn = pf_next && j == TILE_N;
#define R8F_TILES(TX, X, XS)                                                                                           \
    switch (LC_MIN(TILE_N, ntg - j)) {                                                                                 \
    case 1: tile_r8f(T, TX, 1, wt, len, X, XS, pt + j * 4, first, pf, pn); break;                                      \
    case 2: tile_r8f(T, TX, 2, wt, len, X, XS, pt + j * 4, first, pf, pn); break;                                      \
    default: tile_r8f(T, TX, 3, wt, len, X, XS, pt + j * 4, first, pf, pn); break;                                     \
    }
                if (xw) {
                    R8F_TILES(LC_TYPE_F32, xw + k0, 0)
                } else if (widen) {
                    R8F_TILES(LC_TYPE_F32, xf[j], XF_PIECE)
                } else {
                    R8F_TILES(T, xt + (size_t)j * xs, xs / esz)
                }
#undef R8F_TILES
            }
        }
    }
    for (int r = 0; r < LC_R8F_ROWS; r++)
        for (int j = 0; j < ntg; j++) {
            const __m256 *p = part + (r * TGROUP + j) * 4;
            const float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(p[0], p[1]), _mm256_add_ps(p[2], p[3])));
            float *yo = y + (size_t)(tg + j) * ldy + rg + r;
            *yo = c0 > 0 ? *yo + s : s;
        }
}

/* One token (decode): chunk after chunk, its activations widened once for every group (a group's chunk is 256 KiB of
** F16 W read in order, so W is still read in long runs). Up to one group of tokens (a continuous batch): group after
** group, each from its first chunk to its last, so W is read once from start to end. More tokens (prefill): chunk
** after chunk, every token group over a group's chunk while it is in L2 (a group's whole rows of 8192 F16 would not
** be). */
INLINE void gemm_r8_float(const int T, int n, int nr, int nt, const void *vw, size_t ws, const void *vx, size_t xs,
                          float *y, size_t ldy) {
    const uint8_t *w = vw, *x = vx;
    float xf[TGROUP][XF_PIECE] __attribute__((aligned(32)));
    __m256 part[LC_R8F_ROWS * TGROUP * 4];
    if (nt == 1) {
        const size_t esz = T == LC_TYPE_F32 ? 4 : 2;
        for (int c0 = 0; c0 < n; c0 += KCHUNK) {
            const int nc = LC_MIN(KCHUNK, n - c0);
            const float *xw = (const float *)x + c0;
            if (T != LC_TYPE_F32) {
                for (int i = 0; i < nc; i += 8) _mm256_store_ps(xf[0] + i, load8(T, x + (size_t)c0 * esz, i));
                xw = xf[0];
            }
            for (int rg = 0; rg + LC_R8F_ROWS <= nr; rg += LC_R8F_ROWS)
                r8f_block(T, c0, nc, rg, 0, 1, w, ws, x, xs, y, ldy, xw, xf, part, false);
        }
        return;
    }
    if (nt <= TGROUP) {
        for (int rg = 0; rg + LC_R8F_ROWS <= nr; rg += LC_R8F_ROWS)
            for (int c0 = 0; c0 < n; c0 += KCHUNK)
                r8f_block(T, c0, LC_MIN(KCHUNK, n - c0), rg, 0, nt, w, ws, x, xs, y, ldy, NULL, xf, part, true);
        return;
    }
    for (int c0 = 0; c0 < n; c0 += KCHUNK)
        for (int rg = 0; rg + LC_R8F_ROWS <= nr; rg += LC_R8F_ROWS)
            for (int tg = 0; tg < nt; tg += TGROUP)
                r8f_block(T, c0, LC_MIN(KCHUNK, n - c0), rg, tg, LC_MIN(TGROUP, nt - tg), w, ws, x, xs, y, ldy, NULL,
                          xf, part, false);
}

static void gemm_r8_f16(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,
                        size_t ldy) {
    gemm_r8_float(LC_TYPE_F16, n, nr, nt, w, ws, x, xs, y, ldy);
}
static void gemm_r8_bf16(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,
                         size_t ldy) {
    gemm_r8_float(LC_TYPE_BF16, n, nr, nt, w, ws, x, xs, y, ldy);
}

static void gemm_f32(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y, size_t ldy) {
    gemm_float(LC_TYPE_F32, n, nr, nt, w, ws, x, xs, y, ldy);
}
static void gemm_f16(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y, size_t ldy) {
    gemm_float(LC_TYPE_F16, n, nr, nt, w, ws, x, xs, y, ldy);
}
static void gemm_bf16(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,
                      size_t ldy) {
    gemm_float(LC_TYPE_BF16, n, nr, nt, w, ws, x, xs, y, ldy);
}

/* y += a * x with a separate multiply and add (the bits of the scalar loop) */
INLINE void mad_float(const int T, int n, float *y, const void *x, float a) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, load8(T, x, i))));
    for (; i < n; i++) y[i] += a * elem(T, x, i);
}
static void vec_mad_f32(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_F32, n, y, x, a); }
static void vec_mad_f16(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_F16, n, y, x, a); }
static void vec_mad_bf16(int n, float *y, const void *x, float a) { mad_float(LC_TYPE_BF16, n, y, x, a); }

/* ---------------------------------------------------------------------------------------------------------------
** Q8_0 */

/* Per-lane int32 partial sums of w . x over one block (32 bytes each); w holds the weights (|w| <= 128 as u8),
** x the activations (never -128, so sign(x, w) stays in range and the i16 pair sums cannot saturate). */
INLINE __m256i dot_block(__m256i w, __m256i x) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Lane j of the result is the sum of the 8 lanes of v[j]. */
INLINE __m256i hsum_8x8(const __m256i v[8]) {
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20), _mm256_permute2x128_si256(q0, q1, 0x31));
}

INLINE __m256i load_qs(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

INLINE int32_t hsum_epi32(__m256i p) {
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4e));
    q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xb1));
    return _mm_cvtsi128_si32(q);
}

/* GEMV row: lanes over 8 consecutive blocks, each block's exact sum times d_w * d_x added in block order. */
INLINE float gemv_row_q8_0(float sum, int nb, const block_q8_0 *w, const block_q8_0 *x, const float *dx) {
    float prod[8];
    int ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        /* the bytes 2 KiB ahead (this row's next blocks, or the next row's first), a line at a time: the hardware
        ** prefetcher alone left decode at ~74% of the read bandwidth (tg 1B Q8_0, 2 threads: +8-10%, medians of 5-6
        ** alternated runs; 1 KiB gave less, 8 KiB nothing) */
        prefetch_ahead(w + ib, 2048, 8 * sizeof(block_q8_0));
        __m256i p[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) p[j] = dot_block(load_qs(&w[ib + j]), load_qs(&x[ib + j]));
        const __m256 s = _mm256_cvtepi32_ps(hsum_8x8(p));
        const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16((short)w[ib].d, (short)w[ib + 1].d, (short)w[ib + 2].d,
                                                         (short)w[ib + 3].d, (short)w[ib + 4].d, (short)w[ib + 5].d,
                                                         (short)w[ib + 6].d, (short)w[ib + 7].d));
        _mm256_storeu_ps(prod, _mm256_mul_ps(s, _mm256_mul_ps(dw, _mm256_loadu_ps(dx + ib))));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) sum += prod[j];
    }
    for (; ib < nb; ib++) {
        const float d = lc_fp16_lut(w[ib].d) * dx[ib];
        const float pr = (float)hsum_epi32(dot_block(load_qs(&w[ib]), load_qs(&x[ib]))) * d;
        sum += pr;
    }
    return sum;
}

/* GEMV: one weight row at a time (a single DRAM stream per thread), activation scales expanded once per chunk. */
static void gemv_q8_0(int n, int nr, const uint8_t *w, size_t ws, const block_q8_0 *x, float *y) {
    enum { CHUNK = 1024 }; /* blocks whose scales are expanded at a time: rows up to 32768 stream in one pass */
    float dx[CHUNK];
    const int nb = n / QK8_0;
    for (int b0 = 0; b0 < nb; b0 += CHUNK) {
        const int nbc = LC_MIN(CHUNK, nb - b0);
        for (int j = 0; j < nbc; j++) dx[j] = lc_fp16_lut(x[b0 + j].d);
        for (int r = 0; r < nr; r++) /* a row's sum continues from chunk to chunk, in block order */
            y[r] = gemv_row_q8_0(b0 ? y[r] : 0.0f, nbc, (const block_q8_0 *)(w + (size_t)r * ws) + b0, x + b0, dx);
    }
}

/* Batches of 2 or more tokens go to avx2_quants.c's staged kernel (8 rows in the lanes): bench_kernels -T Q8_0 -c,
** 1 thread, against the row-by-row tiles that were here: 2 tokens 34 -> 50, 8 tokens 72 -> 79, 512 tokens 69 -> 91
** GFLOP/s (activations split into nibbles; both operands now widened to 16 bits instead, see there). */
static void gemm_q8_0(int n, int nr, int nt, const void *w, size_t ws, const void *x, size_t xs, float *y,
                      size_t ldy) {
    if (nt == 1) gemv_q8_0(n, nr, w, ws, (const block_q8_0 *)x, y);
    else lc__gemm_x8_q8_0_avx2(n, nr, nt, w, ws, x, xs, y, ldy);
}

static void vec_dot_q8_0(int n, float *s, const void *vw, const void *vx) {
    const block_q8_0 *w = vw, *x = vx;
    float sum = 0.0f;
    for (int ib = 0; ib < n / QK8_0; ib++) {
        const float d = lc_fp16_lut(w[ib].d) * lc_fp16_lut(x[ib].d);
        const float prod = (float)hsum_epi32(dot_block(load_qs(&w[ib]), load_qs(&x[ib]))) * d;
        sum += prod;
    }
    *s = sum;
}

/* ---------------------------------------------------------------------------------------------------------------
** from_float */

static void from_float_f16(const float *x, void *vy, int64_t n) {
    lc_fp16 *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = lc_fp32_to_fp16(x[i]);
}

/* bf16 = round-to-nearest-even of the high half; NaN keeps its payload and is made quiet (GGML_FP32_TO_BF16). */
static void from_float_bf16(const float *x, void *vy, int64_t n) {
    lc_bf16 *y = vy;
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(64);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; h++) {
            const __m256i u = _mm256_loadu_si256((const __m256i *)(x + i + 8 * h));
            const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            const __m256i rounded = _mm256_srli_epi32(
                _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))), 16);
            const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
            r[h] = _mm256_blendv_epi8(rounded, qnan, nan);
        }
        /* pack lanes (0-3, 8-11 | 4-7, 12-15), then restore element order */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++) y[i] = lc_fp32_to_bf16(x[i]);
}

/* GGML's x86 activation quantizer (see lc__quantize_row_q8_0_act): the same float operations, vectorised. */
static void from_float_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float mx = _mm_cvtss_f32(m);
        y[ib].d = lc_fp32_to_fp16(mx / 127.0f);
        const __m256 id = _mm256_set1_ps(mx != 0.0f ? 127.0f / mx : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(
                _mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        /* i32 -> i16 -> i8 packs work per 128-bit lane; a dword permutation restores element order */
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)y[ib].qs,
                            _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

void lc__kernels_fill_avx2(lc_kernels *k) {
    k->vec_dot[LC_TYPE_F32] = vec_dot_f32;
    k->vec_dot[LC_TYPE_F16] = vec_dot_f16;
    k->vec_dot[LC_TYPE_BF16] = vec_dot_bf16;
    k->vec_dot[LC_TYPE_Q8_0] = vec_dot_q8_0;
    k->vec_mad[LC_TYPE_F32] = vec_mad_f32;
    k->vec_mad[LC_TYPE_F16] = vec_mad_f16;
    k->vec_mad[LC_TYPE_BF16] = vec_mad_bf16;
    k->gemm[LC_TYPE_F32] = gemm_f32;
    k->gemm[LC_TYPE_F16] = gemm_f16;
    k->gemm[LC_TYPE_BF16] = gemm_bf16;
    k->gemm[LC_TYPE_Q8_0] = gemm_q8_0;
    k->gemm_r8[LC_TYPE_F16] = gemm_r8_f16;
    k->gemm_r8[LC_TYPE_BF16] = gemm_r8_bf16;
    k->from_float[LC_TYPE_F16] = from_float_f16;
    k->from_float[LC_TYPE_BF16] = from_float_bf16;
    k->from_float[LC_TYPE_Q8_0] = from_float_q8_0;
    lc__kernels_fill_avx2_quants(k);
}
