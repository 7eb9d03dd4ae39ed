/* layers.c - forward and backward of the Llama layers other than the matrix products: RMSNorm, RoPE, causal GQA
** attention, SwiGLU, cross-entropy. Forward rounding follows src/model/forward.c (RMSNorm squares summed in double,
** RoPE angles by repeated float multiplication), so a trained model computes the same function under lc_model_load.
** Attention keeps only the log-sum-exp of each query row and recomputes the probabilities in the backward (memory
** O(T) per head instead of O(T^2)). Every sum runs in a fixed order: results do not depend on the thread split.
** Tests: tests/test_train.c checks each backward against central differences of a double-precision reference.
*/
#include "train.h"

#include <math.h>

/* ---- small vector helpers: 8 independent partial sums, so the compiler vectorises the dot ---- */

static inline float dot(const float *restrict a, const float *restrict b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- RMSNorm ---- */

void tr_rmsnorm_fwd(float *y, float *rs, const float *x, const float *w, int d, float eps, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        double sum = 0.0;
        for (int i = 0; i < d; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / d);
        const float s = 1.0f / sqrtf(mean + eps);
        for (int i = 0; i < d; i++) yr[i] = (xr[i] * s) * w[i];
        rs[r] = s;
    }
}

/* y = x s w with s = (mean(x^2) + eps)^-1/2, ds/dx_j = -s^3 x_j / d:
** dx_j = s w_j dy_j - (s^3 / d) x_j sum_i(dy_i w_i x_i). */
void tr_rmsnorm_bwd_x(float *dx, const float *dy, const float *x, const float *rs, const float *w, int d, int r0,
                      int r1) {
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        float *o = dx + (size_t)r * d;
        double sum = 0.0;
        for (int i = 0; i < d; i++) sum += (double)(g[i] * w[i] * xr[i]);
        const float s = rs[r], c = (float)((double)s * s * s * sum / d);
        for (int i = 0; i < d; i++) o[i] += s * w[i] * g[i] - c * xr[i];
    }
}

void tr_rmsnorm_bwd_w(float *dw, const float *dy, const float *x, const float *rs, int d, int n, int c0, int c1) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        const float s = rs[r];
        for (int i = c0; i < c1; i++) dw[i] += g[i] * (xr[i] * s);
    }
}

/* ---- RoPE ---- */

void tr_rope_table(float *cs, int n_pos, int n_rot, float base) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    for (int p = 0; p < n_pos; p++) {
        float theta = (float)p;
        float *c = cs + (size_t)p * n_rot;
        for (int i = 0; i < n_rot / 2; i++) {
            c[2 * i] = cosf(theta);
            c[2 * i + 1] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

void tr_rope(float *x, int n_heads, int hd, const float *cs, const int32_t *pos, int r0, int r1, bool inverse) {
    const float sign = inverse ? -1.0f : 1.0f;
    for (int r = r0; r < r1; r++) {
        const float *c = cs + (size_t)pos[r] * hd;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * hd;
            for (int i = 0; i < hd; i += 2) {
                const float co = c[i], si = sign * c[i + 1], x0 = v[i], x1 = v[i + 1];
                v[i] = x0 * co - x1 * si;
                v[i + 1] = x0 * si + x1 * co;
            }
        }
    }
}

/* ---- causal attention, in blocks of query rows through the matrix product ----
** For query rows [b0, b0+rb) only keys [0, b0+rb) are touched, so the causal half is computed plus one triangle of
** rb x rb per block (the masked part of the diagonal block). */

enum { RB = 64 };

size_t tr_attn_scratch_floats(int T) { return 2 * (size_t)RB * (size_t)T + tr_gemm_scratch_floats(); }

void tr_attn_fwd(const tr_gemm_impl *g, float *out, float *lse, const float *q, const float *k, const float *v, int T,
                 int n_head, int n_head_kv, int hd, int i0, int i1, float *scratch) {
    const int group = n_head / n_head_kv, n_q = n_head * hd, n_kv = n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *S = scratch, *gs = scratch + 2 * (size_t)RB * T;
    for (int it = i0; it < i1; it++) {
        const int s = it / n_head, h = it % n_head, kvh = h / group;
        const size_t row0 = (size_t)s * T;
        const float *K = k + row0 * n_kv + (size_t)kvh * hd, *V = v + row0 * n_kv + (size_t)kvh * hd;
        for (int b0 = 0; b0 < T; b0 += RB) {
            const int rb = LC_MIN(RB, T - b0), e = b0 + rb;
            const float *Q = q + (row0 + b0) * n_q + (size_t)h * hd;
            tr_gemm(g, false, true, rb, e, hd, Q, n_q, K, n_kv, S, e, false, gs, 0, 1); /* S = Q K^T */
            for (int i = 0; i < rb; i++) {
                float *x = S + (size_t)i * e;
                const int n = b0 + i + 1; /* keys 0..t */
                float mx = -INFINITY;
                for (int j = 0; j < n; j++) mx = LC_MAX(mx, x[j] * scale);
                g->vexp(x, x, scale, mx, n);
                double sum = 0.0;
                for (int j = 0; j < n; j++) sum += (double)x[j];
                const float inv = (float)(1.0 / sum);
                for (int j = 0; j < n; j++) x[j] *= inv;
                for (int j = n; j < e; j++) x[j] = 0.0f;
                lse[(row0 + b0 + i) * n_head + h] = mx + (float)log(sum);
            }
            tr_gemm(g, false, false, rb, hd, e, S, e, V, n_kv, out + (row0 + b0) * n_q + (size_t)h * hd, n_q, false, gs,
                    0, 1); /* O = P V */
        }
    }
}

/* With P = exp(S scale - lse) (causal), D_t = dout_t . out_t:
**   dV += P^T dO;  dS = P (dO V^T - D) scale;  dQ = dS K;  dK += dS^T Q. */
void tr_attn_bwd(const tr_gemm_impl *g, float *dq, float *dk, float *dv, const float *dout, const float *out,
                 const float *lse, const float *q, const float *k, const float *v, int T, int n_head, int n_head_kv,
                 int hd, int i0, int i1, float *scratch) {
    const int group = n_head / n_head_kv, n_q = n_head * hd, n_kv = n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *P = scratch, *dS = scratch + (size_t)RB * T, *gs = scratch + 2 * (size_t)RB * T;
    for (int it = i0; it < i1; it++) {
        const int s = it / n_head_kv, kvh = it % n_head_kv;
        const size_t row0 = (size_t)s * T;
        const float *K = k + row0 * n_kv + (size_t)kvh * hd, *V = v + row0 * n_kv + (size_t)kvh * hd;
        float *dK = dk + row0 * n_kv + (size_t)kvh * hd, *dV = dv + row0 * n_kv + (size_t)kvh * hd;
        for (int t = 0; t < T; t++) {
            memset(dK + (size_t)t * n_kv, 0, (size_t)hd * sizeof(float));
            memset(dV + (size_t)t * n_kv, 0, (size_t)hd * sizeof(float));
        }
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            for (int b0 = 0; b0 < T; b0 += RB) {
                const int rb = LC_MIN(RB, T - b0), e = b0 + rb;
                const size_t qo = (row0 + b0) * n_q + (size_t)h * hd;
                tr_gemm(g, false, true, rb, e, hd, q + qo, n_q, K, n_kv, P, e, false, gs, 0, 1);          /* S */
                tr_gemm(g, false, true, rb, e, hd, dout + qo, n_q, V, n_kv, dS, e, false, gs, 0, 1);      /* dO V^T */
                for (int i = 0; i < rb; i++) {
                    float *p = P + (size_t)i * e, *d = dS + (size_t)i * e;
                    const size_t ro = qo + (size_t)i * n_q;
                    const int n = b0 + i + 1;
                    const float l = lse[(row0 + b0 + i) * n_head + h], D = dot(dout + ro, out + ro, hd);
                    g->vexp(p, p, scale, l, n);
                    for (int j = 0; j < n; j++) d[j] = p[j] * (d[j] - D) * scale;
                    for (int j = n; j < e; j++) p[j] = d[j] = 0.0f;
                }
                tr_gemm(g, false, false, rb, hd, e, dS, e, K, n_kv, dq + qo, n_q, false, gs, 0, 1); /* dQ = dS K */
                tr_gemm(g, true, false, e, hd, rb, dS, e, q + qo, n_q, dK, n_kv, true, gs, 0, 1);   /* dK += dS^T Q */
                tr_gemm(g, true, false, e, hd, rb, P, e, dout + qo, n_q, dV, n_kv, true, gs, 0, 1); /* dV += P^T dO */
            }
        }
    }
}

/* ---- SwiGLU ---- */

enum { CH = 256 }; /* elements per exp call */

void tr_swiglu_fwd(const tr_gemm_impl *k, float *h, const float *g, const float *u, size_t e0, size_t e1) {
    float e[CH];
    for (size_t c = e0; c < e1; c += CH) {
        const int n = (int)LC_MIN((size_t)CH, e1 - c);
        k->vexp(e, g + c, -1.0f, 0.0f, n);
        for (int i = 0; i < n; i++) h[c + i] = g[c + i] / (1.0f + e[i]) * u[c + i];
    }
}

/* silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))) */
void tr_swiglu_bwd(const tr_gemm_impl *k, float *dg, float *du, const float *dh, const float *g, const float *u,
                   size_t e0, size_t e1) {
    float e[CH];
    for (size_t c = e0; c < e1; c += CH) {
        const int n = (int)LC_MIN((size_t)CH, e1 - c);
        k->vexp(e, g + c, -1.0f, 0.0f, n);
        for (int j = 0; j < n; j++) {
            const size_t i = c + (size_t)j;
            const float sg = 1.0f / (1.0f + e[j]), silu = g[i] * sg;
            du[i] = dh[i] * silu;
            dg[i] = dh[i] * u[i] * (sg * (1.0f + g[i] * (1.0f - sg)));
        }
    }
}

/* ---- cross-entropy ---- */

void tr_xent(const tr_gemm_impl *k, float *logits, float *loss, const int32_t *targets, int n_vocab, float scale,
             bool grad, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        float *x = logits + (size_t)r * n_vocab;
        const int32_t tgt = targets[r];
        if (tgt < 0 || tgt >= n_vocab) {
            loss[r] = 0.0f;
            if (grad) memset(x, 0, (size_t)n_vocab * sizeof(float));
            continue;
        }
        float mx = x[0];
        for (int i = 1; i < n_vocab; i++) mx = x[i] > mx ? x[i] : mx;
        const float xt = x[tgt];
        double sum = 0.0;
        if (grad) {
            k->vexp(x, x, 1.0f, mx, n_vocab); /* x now holds exp(x - mx) */
            for (int i = 0; i < n_vocab; i++) sum += (double)x[i];
            const float inv = (float)(scale / sum);
            for (int i = 0; i < n_vocab; i++) x[i] *= inv;
            x[tgt] -= scale;
        } else { /* the logits stay */
            float e[CH];
            for (int c = 0; c < n_vocab; c += CH) {
                const int n = LC_MIN(CH, n_vocab - c);
                k->vexp(e, x + c, 1.0f, mx, n);
                for (int i = 0; i < n; i++) sum += (double)e[i];
            }
        }
        loss[r] = mx + (float)log(sum) - xt;
    }
}
