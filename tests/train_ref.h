/* train_ref.h - double-precision references for the training tests (test_train.c, test_finetune.c): the Llama
** layers written from the maths (RMSNorm, RoPE on adjacent pairs, causal GQA attention, cross-entropy), a whole
** forward over given weights, and the gradient comparison. Static functions: include once per test program.
*/
#ifndef LC_TRAIN_REF_H
#define LC_TRAIN_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Gradient comparison: analytic a[i] (float) against numeric n[i] (double); passes when every
** |a - n| <= rtol * |n| + atol * max|n|. Returns the worst ratio err / bound (<= 1 passes). */
static double grad_cmp(const float *a, const double *n, size_t cnt, double rtol, double atol, size_t *worst_i) {
    double mx = 0.0, worst = 0.0;
    for (size_t i = 0; i < cnt; i++) mx = fmax(mx, fabs(n[i]));
    *worst_i = 0;
    for (size_t i = 0; i < cnt; i++) {
        const double bound = rtol * fabs(n[i]) + atol * mx + 1e-300;
        const double r = fabs((double)a[i] - n[i]) / bound;
        if (r > worst) worst = r, *worst_i = i;
    }
    return worst;
}

static void ref_rmsnorm(double *y, const double *x, const double *w, int d, double eps) {
    double s = 0.0;
    for (int i = 0; i < d; i++) s += x[i] * x[i];
    const double r = 1.0 / sqrt(s / d + eps);
    for (int i = 0; i < d; i++) y[i] = x[i] * r * w[i];
}

static void ref_rope(double *x, int n_heads, int hd, int pos, double base) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hd; i += 2) {
            const double th = pos * pow(base, -(double)i / hd), c = cos(th), s = sin(th);
            double *v = x + (size_t)h * hd, x0 = v[i], x1 = v[i + 1];
            v[i] = x0 * c - x1 * s;
            v[i + 1] = x0 * s + x1 * c;
        }
}

/* out[n_seq*T][H*hd] from q, k, v (rows s*T + t), causal */
static void ref_attn(double *out, const double *q, const double *k, const double *v, int n_seq, int T, int H, int HK,
                     int hd) {
    const int g = H / HK;
    double sc[256];
    for (int s = 0; s < n_seq; s++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const double *qt = q + ((size_t)s * T + t) * H * hd + (size_t)h * hd;
                double mx = -1e300, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    const double *kj = k + ((size_t)s * T + j) * HK * hd + (size_t)(h / g) * hd;
                    double d = 0.0;
                    for (int i = 0; i < hd; i++) d += qt[i] * kj[i];
                    sc[j] = d / sqrt((double)hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                double *o = out + ((size_t)s * T + t) * H * hd + (size_t)h * hd;
                for (int i = 0; i < hd; i++) o[i] = 0.0;
                for (int j = 0; j <= t; j++) {
                    const double *vj = v + ((size_t)s * T + j) * HK * hd + (size_t)(h / g) * hd;
                    for (int i = 0; i < hd; i++) o[i] += sc[j] / sum * vj[i];
                }
            }
}

static double ref_xent_row(const double *x, int n, int tgt) {
    double mx = x[0], s = 0.0;
    for (int i = 1; i < n; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    return mx + log(s) - x[tgt];
}


/* Y[rows][out] = X[rows][in] @ W^T */
static void ref_lin(double *Y, const double *X, const double *W, int rows, int in, int out) {
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) {
            double s = 0.0;
            for (int i = 0; i < in; i++) s += X[(size_t)r * in + i] * W[(size_t)o * in + i];
            Y[(size_t)r * out + o] = s;
        }
}

/* A Llama model in doubles (weights borrowed): W [out][in] row-major, q [H*hd], k/v [HK*hd]. */
enum { REF_N_PROJ = 7, REF_MAX_LAYERS = 8 }; /* q, k, v, o, gate, up, down */
typedef struct ref_llama {
    int D, F, H, HK, hd, V, L;
    double eps, theta;
    const double *embd, *out_norm, *output; /* embd [V][D], output [V][D] */
    const double *attn_norm[REF_MAX_LAYERS], *ffn_norm[REF_MAX_LAYERS], *w[REF_MAX_LAYERS][REF_N_PROJ];
} ref_llama;

/* Sum of the losses of the targets >= 0 of S sequences of T tokens (row s*T + t at position t); logits_out (may be
** NULL) gets [S*T][V]. */
static double ref_llama_loss(const ref_llama *M, const int32_t *tok, const int32_t *tgt, int S, int T,
                             double *logits_out) {
    const int D = M->D, F = M->F, H = M->H, HK = M->HK, hd = M->hd, V = M->V, R = S * T, nq = H * hd, nkv = HK * hd;
    double *x = calloc((size_t)R * D, 8), *xn = calloc((size_t)R * D, 8), *q = calloc((size_t)R * nq, 8);
    double *k = calloc((size_t)R * nkv, 8), *v = calloc((size_t)R * nkv, 8), *att = calloc((size_t)R * nq, 8);
    double *g = calloc((size_t)R * F, 8), *u = calloc((size_t)R * F, 8), *o = calloc((size_t)R * D, 8);
    double *lg = calloc((size_t)R * V, 8);
    for (int r = 0; r < R; r++) memcpy(x + (size_t)r * D, M->embd + (size_t)tok[r] * D, sizeof(double) * D);
    for (int l = 0; l < M->L; l++) {
        const double *const *W = M->w[l];
        for (int r = 0; r < R; r++) ref_rmsnorm(xn + (size_t)r * D, x + (size_t)r * D, M->attn_norm[l], D, M->eps);
        ref_lin(q, xn, W[0], R, D, nq);
        ref_lin(k, xn, W[1], R, D, nkv);
        ref_lin(v, xn, W[2], R, D, nkv);
        for (int r = 0; r < R; r++) {
            ref_rope(q + (size_t)r * nq, H, hd, r % T, M->theta);
            ref_rope(k + (size_t)r * nkv, HK, hd, r % T, M->theta);
        }
        ref_attn(att, q, k, v, S, T, H, HK, hd);
        ref_lin(o, att, W[3], R, nq, D);
        for (int i = 0; i < R * D; i++) x[i] += o[i];
        for (int r = 0; r < R; r++) ref_rmsnorm(xn + (size_t)r * D, x + (size_t)r * D, M->ffn_norm[l], D, M->eps);
        ref_lin(g, xn, W[4], R, D, F);
        ref_lin(u, xn, W[5], R, D, F);
        for (int i = 0; i < R * F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
        ref_lin(o, g, W[6], R, F, D);
        for (int i = 0; i < R * D; i++) x[i] += o[i];
    }
    for (int r = 0; r < R; r++) ref_rmsnorm(xn + (size_t)r * D, x + (size_t)r * D, M->out_norm, D, M->eps);
    ref_lin(lg, xn, M->output, R, D, V);
    double loss = 0.0;
    for (int r = 0; r < R; r++)
        if (tgt[r] >= 0) loss += ref_xent_row(lg + (size_t)r * V, V, tgt[r]);
    if (logits_out) memcpy(logits_out, lg, sizeof(double) * (size_t)R * V);
    free(x), free(xn), free(q), free(k), free(v), free(att), free(g), free(u), free(o), free(lg);
    return loss;
}

#endif /* LC_TRAIN_REF_H */
