/* test_train.c - pre-training (src/train): the matrix product against a double-precision product; each layer's
** backward against central differences of an independent double-precision forward written here; the whole model's
** gradients likewise (tiny GQA shape); bit-identical products for every thread count; a training run whose loss
** falls; resume after a kill giving the same bytes as an uninterrupted run; the written GGUF computing, under
** lc_model_load, the logits of the training forward.
*/
#include "harness.h"

#include "../src/train/train.h"
#include "train_ref.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static bool quick(void) {
    const char *q = getenv("LLAMAC_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}
static void fill(float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * urand());
}

/* ---- the matrix product ---- */

static void gemm_ref(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     double *C) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]) *
                     (double)(tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]);
            C[(size_t)m * N + n] = s;
        }
}

TEST(gemm_matches_double_all_variants_and_thread_counts) {
    static const int shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {6, 32, 256}, {50, 70, 300}, {130, 37, 513}, {13, 200, 40}};
    const char *variants[] = {"ref", "avx2", "avx512"};
    float *scratch = malloc(tr_gemm_scratch_floats() * sizeof(float));
    int n_variants = 0;
    for (size_t vi = 0; vi < 3; vi++) {
        tr_gemm_impl g;
        if (!tr_gemm_select(&g, variants[vi])) continue;
        n_variants++;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int tt = 0; tt < 4; tt++)
                for (int acc = 0; acc < 2; acc++) {
                    const bool ta = tt & 1, tb = tt & 2;
                    const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                    float *A = malloc(sizeof(float) * (size_t)lda * (ta ? K : M));
                    float *B = malloc(sizeof(float) * (size_t)ldb * (tb ? N : K));
                    float *C0 = malloc(sizeof(float) * (size_t)ldc * M), *C = malloc(sizeof(float) * (size_t)ldc * M);
                    double *R = malloc(sizeof(double) * (size_t)M * N);
                    fill(A, (size_t)lda * (ta ? K : M), 1.0);
                    fill(B, (size_t)ldb * (tb ? N : K), 1.0);
                    fill(C0, (size_t)ldc * M, 1.0);
                    gemm_ref(ta, tb, M, N, K, A, lda, B, ldb, R);
                    float *first = malloc(sizeof(float) * (size_t)ldc * M);
                    for (int nth = 1; nth <= 3; nth++) {
                        memcpy(C, C0, sizeof(float) * (size_t)ldc * M);
                        for (int ith = 0; ith < nth; ith++)
                            tr_gemm(&g, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, scratch, ith, nth);
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < N; n++) {
                                const double want = R[(size_t)m * N + n] + (acc ? C0[(size_t)m * ldc + n] : 0.0);
                                const double got = C[(size_t)m * ldc + n];
                                CHECKF(fabs(got - want) <= 1e-5 * (K + 1), "%s ta %d tb %d acc %d %dx%dx%d nth %d "
                                       "C[%d][%d] = %.9g, want %.9g", g.name, ta, tb, acc, M, N, K, nth, m, n, got, want);
                            }
                        for (int m = 0; m < M; m++) /* padding columns untouched */
                            for (int n = N; n < ldc; n++) CHECK(C[(size_t)m * ldc + n] == C0[(size_t)m * ldc + n]);
                        if (nth == 1) memcpy(first, C, sizeof(float) * (size_t)ldc * M);
                        else CHECKF(!memcmp(first, C, sizeof(float) * (size_t)ldc * M),
                                    "%s: %d threads give other bits than 1", g.name, nth);
                    }
                    free(first);
                    free(A);
                    free(B);
                    free(C0);
                    free(C);
                    free(R);
                }
    }
    free(scratch);
    CHECK(n_variants >= 1);
}

/* ---- double-precision references of each layer ---- */

static void to_double(double *d, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}

/* ---- per-layer gradient checks: objective sum(c * layer(x)) with random c ---- */

TEST(rmsnorm_forward_and_backward) {
    enum { R = 3, D = 24 };
    const double eps = 1e-5;
    float x[R * D], w[D], c[R * D], y[R * D], rs[R], dx[R * D] = {0}, dw[D] = {0};
    fill(x, R * D, 2.0), fill(w, D, 1.0), fill(c, R * D, 1.0);
    tr_rmsnorm_fwd(y, rs, x, w, D, (float)eps, 0, R);
    double xd[R * D], wd[D], yd[D];
    to_double(xd, x, R * D), to_double(wd, w, D);
    for (int r = 0; r < R; r++) {
        ref_rmsnorm(yd, xd + r * D, wd, D, eps);
        for (int i = 0; i < D; i++) CHECK(fabs(y[r * D + i] - yd[i]) <= 1e-6 * (1 + fabs(yd[i])));
    }
    tr_rmsnorm_bwd_x(dx, c, x, rs, w, D, 0, R);
    tr_rmsnorm_bwd_w(dw, c, x, rs, D, R, 0, D);
    /* numeric */
    double nx[R * D], nw[D] = {0};
    const double h = 1e-6;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < D; i++) {
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                double xx[D];
                memcpy(xx, xd + r * D, sizeof xx);
                xx[i] += sgn ? -h : h;
                ref_rmsnorm(yd, xx, wd, D, eps);
                f[sgn] = 0;
                for (int j = 0; j < D; j++) f[sgn] += c[r * D + j] * yd[j];
            }
            nx[r * D + i] = (f[0] - f[1]) / (2 * h);
        }
    for (int i = 0; i < D; i++)
        for (int r = 0; r < R; r++) {
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                double ww[D];
                memcpy(ww, wd, sizeof ww);
                ww[i] += sgn ? -h : h;
                ref_rmsnorm(yd, xd + r * D, ww, D, eps);
                f[sgn] = 0;
                for (int j = 0; j < D; j++) f[sgn] += c[r * D + j] * yd[j];
            }
            nw[i] += (f[0] - f[1]) / (2 * h);
        }
    size_t wi;
    double e = grad_cmp(dx, nx, R * D, 1e-4, 1e-5, &wi);
    CHECKF(e <= 1, "dx[%zu] = %g, numeric %g", wi, dx[wi], nx[wi]);
    e = grad_cmp(dw, nw, D, 1e-4, 1e-5, &wi);
    CHECKF(e <= 1, "dw[%zu] = %g, numeric %g", wi, dw[wi], nw[wi]);
}

TEST(rope_forward_and_backward) {
    enum { R = 7, H = 3, HD = 8 };
    float cs[R * HD], x[R * H * HD], c[R * H * HD];
    int32_t pos[R];
    for (int i = 0; i < R; i++) pos[i] = (i * 5) % R; /* any order */
    tr_rope_table(cs, R, HD, 10000.0f);
    fill(x, R * H * HD, 1.0), fill(c, R * H * HD, 1.0);
    float y[R * H * HD];
    memcpy(y, x, sizeof y);
    tr_rope(y, H, HD, cs, pos, 0, R, false);
    for (int r = 0; r < R; r++) {
        double xd[H * HD];
        to_double(xd, x + r * H * HD, H * HD);
        ref_rope(xd, H, HD, pos[r], 10000.0);
        for (int i = 0; i < H * HD; i++) CHECK(fabs(y[r * H * HD + i] - xd[i]) <= 2e-6);
    }
    /* the backward of a rotation is its inverse applied to the output gradient; d sum(c * rope(x)) / dx */
    float g[R * H * HD];
    memcpy(g, c, sizeof g);
    tr_rope(g, H, HD, cs, pos, 0, R, true);
    double num[R * H * HD];
    for (int r = 0; r < R; r++)
        for (int i = 0; i < H * HD; i++) {
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                double xd[H * HD];
                to_double(xd, x + r * H * HD, H * HD);
                xd[i] += sgn ? -1e-6 : 1e-6;
                ref_rope(xd, H, HD, pos[r], 10000.0);
                f[sgn] = 0;
                for (int j = 0; j < H * HD; j++) f[sgn] += c[r * H * HD + j] * xd[j];
            }
            num[r * H * HD + i] = (f[0] - f[1]) / 2e-6;
        }
    size_t wi;
    const double e = grad_cmp(g, num, R * H * HD, 1e-4, 1e-5, &wi);
    CHECKF(e <= 1, "d[%zu] = %g, numeric %g", wi, g[wi], num[wi]);
}

static double attn_objective(const double *q, const double *k, const double *v, const float *c, int S, int T, int H,
                             int HK, int hd) {
    double *out = malloc(sizeof(double) * (size_t)S * T * H * hd);
    ref_attn(out, q, k, v, S, T, H, HK, hd);
    double f = 0;
    for (int i = 0; i < S * T * H * hd; i++) f += c[i] * out[i];
    free(out);
    return f;
}

/* T = 70 spans two blocks of query rows (64 each) */
TEST(attention_gqa_forward_and_backward) {
    enum { S = 2, T = 70, H = 4, HK = 2, HD = 6, NQ = S * T * H * HD, NK = S * T * HK * HD };
    static float q[NQ], k[NK], v[NK], c[NQ], out[NQ], lse[S * T * H], dq[NQ], dk[NK], dv[NK];
    static double qd[NQ], kd[NK], vd[NK], od[NQ], num[NQ];
    float *sc = malloc(tr_attn_scratch_floats(T) * sizeof(float));
    tr_gemm_impl g;
    tr_gemm_select(&g, NULL);
    fill(q, NQ, 1.5), fill(k, NK, 1.5), fill(v, NK, 1.0), fill(c, NQ, 1.0);
    tr_attn_fwd(&g, out, lse, q, k, v, T, H, HK, HD, 0, S * H, sc);
    to_double(qd, q, NQ), to_double(kd, k, NK), to_double(vd, v, NK);
    ref_attn(od, qd, kd, vd, S, T, H, HK, HD);
    for (int i = 0; i < NQ; i++) CHECKF(fabs(out[i] - od[i]) <= 1e-5, "out[%d] %g vs %g", i, out[i], od[i]);
    /* split the work items unevenly, as threads would */
    memset(dq, 0xff, sizeof dq), memset(dk, 0xff, sizeof dk), memset(dv, 0xff, sizeof dv); /* overwritten */
    tr_attn_bwd(&g, dq, dk, dv, c, out, lse, q, k, v, T, H, HK, HD, 0, 1, sc);
    tr_attn_bwd(&g, dq, dk, dv, c, out, lse, q, k, v, T, H, HK, HD, 1, S * HK, sc);
    free(sc);
    double *arrs[3] = {qd, kd, vd};
    const float *grads[3] = {dq, dk, dv};
    const int sizes[3] = {NQ, NK, NK};
    const char *names[3] = {"dq", "dk", "dv"};
    const int stride = quick() ? 29 : 5; /* a spread subset of the elements */
    for (int a = 0; a < 3; a++) {
        float sub[NQ];
        int n = 0;
        for (int i = 0; i < sizes[a]; i += stride, n++) {
            const double keep = arrs[a][i];
            arrs[a][i] = keep + 1e-6;
            const double fp = attn_objective(qd, kd, vd, c, S, T, H, HK, HD);
            arrs[a][i] = keep - 1e-6;
            const double fm = attn_objective(qd, kd, vd, c, S, T, H, HK, HD);
            arrs[a][i] = keep;
            num[n] = (fp - fm) / 2e-6;
            sub[n] = grads[a][i];
        }
        size_t wi;
        const double e = grad_cmp(sub, num, (size_t)n, 1e-3, 1e-4, &wi);
        CHECKF(e <= 1, "%s[%zu] = %g, numeric %g", names[a], wi * stride, sub[wi], num[wi]);
    }
}

TEST(swiglu_forward_and_backward) {
    enum { N = 64 };
    float g[N], u[N], h[N], dh[N], dg[N], du[N];
    fill(g, N, 6.0), fill(u, N, 2.0), fill(dh, N, 1.0);
    tr_gemm_impl k;
    tr_gemm_select(&k, NULL);
    tr_swiglu_fwd(&k, h, g, u, 0, N);
    tr_swiglu_bwd(&k, dg, du, dh, g, u, 0, N);
    double ng[N], nu[N];
    for (int i = 0; i < N; i++) {
        const double gd = g[i], ud = u[i];
        CHECK(fabs(h[i] - gd / (1 + exp(-gd)) * ud) <= 1e-6 * (1 + fabs(h[i])));
        const double e = 1e-6;
        ng[i] = dh[i] * ((gd + e) / (1 + exp(-(gd + e))) - (gd - e) / (1 + exp(-(gd - e)))) * ud / (2 * e);
        nu[i] = dh[i] * gd / (1 + exp(-gd));
    }
    size_t wi;
    CHECKF(grad_cmp(dg, ng, N, 1e-4, 1e-6, &wi) <= 1, "dg[%zu] %g vs %g", wi, dg[wi], ng[wi]);
    CHECKF(grad_cmp(du, nu, N, 1e-5, 1e-6, &wi) <= 1, "du[%zu] %g vs %g", wi, du[wi], nu[wi]);
}

TEST(cross_entropy_forward_and_backward) {
    enum { R = 4, V = 37 };
    float x[R * V], keep[R * V], loss[R];
    int32_t tgt[R] = {3, 0, -1, 36};
    fill(x, R * V, 5.0);
    memcpy(keep, x, sizeof x);
    const float scale = 0.25f;
    tr_gemm_impl k;
    tr_gemm_select(&k, NULL);
    tr_xent(&k, x, loss, tgt, V, scale, true, 0, R);
    for (int r = 0; r < R; r++) {
        double xd[V];
        to_double(xd, keep + r * V, V);
        if (tgt[r] < 0) {
            CHECK(loss[r] == 0.0f);
            for (int i = 0; i < V; i++) CHECK(x[r * V + i] == 0.0f);
            continue;
        }
        CHECK(fabs(loss[r] - ref_xent_row(xd, V, tgt[r])) <= 1e-5);
        double num[V];
        for (int i = 0; i < V; i++) {
            const double k0 = xd[i];
            xd[i] = k0 + 1e-6;
            const double fp = ref_xent_row(xd, V, tgt[r]);
            xd[i] = k0 - 1e-6;
            const double fm = ref_xent_row(xd, V, tgt[r]);
            xd[i] = k0;
            num[i] = scale * (fp - fm) / 2e-6;
        }
        size_t wi;
        CHECKF(grad_cmp(x + r * V, num, V, 1e-4, 1e-6, &wi) <= 1, "row %d [%zu] %g vs %g", r, wi, x[r * V + wi], num[wi]);
    }
}

/* ---- the whole model: a double-precision forward written from the maths, over the tr_model's tensor table ---- */

static const double *P_(const tr_model *m, const double *P, const char *name) {
    const int i = tr_model_find(m, name);
    return i < 0 ? NULL : P + m->tensors[i].off;
}

/* Sum of the token losses of S sequences of T tokens; logits_out (may be NULL) gets [S*T][V]. */
static double ref_model_loss(const tr_model *m, const double *P, const int32_t *tok, const int32_t *tgt, int S, int T,
                             double *logits_out) {
    const lc_train_config *c = &m->cfg;
    ref_llama M = {.D = (int)c->n_embd, .F = (int)c->n_ff, .H = (int)c->n_head, .HK = (int)c->n_head_kv,
                   .hd = m->head_dim, .V = m->n_vocab, .L = (int)c->n_layer, .eps = c->rms_eps,
                   .theta = c->rope_theta};
    M.embd = M.output = P_(m, P, "token_embd.weight");
    M.out_norm = P_(m, P, "output_norm.weight");
    static const char *const parts[REF_N_PROJ] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                                  "ffn_down"};
    char nm[64];
    for (int l = 0; l < M.L && l < REF_MAX_LAYERS; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l), M.attn_norm[l] = P_(m, P, nm);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l), M.ffn_norm[l] = P_(m, P, nm);
        for (int k = 0; k < REF_N_PROJ; k++) snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, parts[k]), M.w[l][k] = P_(m, P, nm);
    }
    return ref_llama_loss(&M, tok, tgt, S, T, logits_out);
}

static lc_train_config tiny_gqa_config(void) {
    lc_train_config c = {.n_embd = 16, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 12, .n_ctx = 8,
                         .rope_theta = 10000.0f, .rms_eps = 1e-5f};
    return c;
}

/* random weights of a useful size (the 0.02 of training would make every gradient tiny) */
static void randomize(tr_model *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *t = &m->tensors[i];
        float *p = tr_param(m, i);
        for (int j = 0; j < t->ne0 * t->ne1; j++) p[j] = (float)(t->ne1 == 1 ? 1.0 + 0.3 * urand() : 0.5 * urand());
    }
}

TEST(whole_model_gradients_match_finite_differences) {
    const lc_train_config c = tiny_gqa_config();
    enum { S = 2, T = 7, V = 11 };
    tr_model *m = NULL;
    CHECK_OK(tr_model_new(&c, V, &m));
    randomize(m);
    int32_t tok[S * T], tgt[S * T];
    for (int i = 0; i < S * T; i++) tok[i] = (int32_t)((i * 7 + 3) % V), tgt[i] = (int32_t)((i * 5 + 1) % V);
    tgt[4] = -1; /* an ignored position */
    tr_run *r = NULL;
    if (tr_run_new(m, S, T, 2, &r)) {
        tr_model_free(m);
        FAILF("tr_run_new: %s", lc_last_error());
    }
    memset(m->grads, 0, m->n_params * sizeof(float));
    const double loss = tr_run_step(r, tok, tgt, S, true, 1.0f);
    double *P = malloc(sizeof(double) * m->n_params), *num = malloc(sizeof(double) * m->n_params);
    to_double(P, m->params, m->n_params);
    const double ref = ref_model_loss(m, P, tok, tgt, S, T, NULL);
    bool ok = fabs(loss - ref) <= 1e-5 * fabs(ref);
    char why[512] = "";
    if (!ok) snprintf(why, sizeof why, "loss %.9g, double reference %.9g", loss, ref);
    const size_t stride = quick() ? 3 : 1; /* quick: every third parameter */
    float *sub = malloc(sizeof(float) * m->n_params);
    for (int ti = 0; ok && ti < m->n_tensors; ti++) {
        const tr_tensor *t = &m->tensors[ti];
        const size_t n = (size_t)t->ne0 * t->ne1;
        size_t k = 0;
        for (size_t i = 0; i < n; i += stride, k++) {
            double *p = P + t->off + i;
            const double keep = *p, h = 1e-5;
            *p = keep + h;
            const double fp = ref_model_loss(m, P, tok, tgt, S, T, NULL);
            *p = keep - h;
            const double fm = ref_model_loss(m, P, tok, tgt, S, T, NULL);
            *p = keep;
            num[k] = (fp - fm) / (2 * h);
            sub[k] = m->grads[t->off + i];
        }
        size_t wi;
        const double e = grad_cmp(sub, num, k, 2e-3, 2e-4, &wi);
        if (e > 1) {
            ok = false;
            snprintf(why, sizeof why, "%s[%zu]: analytic %.6g, numeric %.6g", t->name, wi * stride, sub[wi], num[wi]);
        }
    }
    free(sub);
    free(P), free(num);
    tr_run_free(r);
    tr_model_free(m);
    CHECKF(ok, "%s", why);
}

/* ---- schedule and optimizer against their formulas ---- */

TEST(lr_schedule_warmup_then_cosine) {
    const float lr = 1e-3f, mn = 1e-4f;
    CHECK(fabs(tr_lr_at(0, 110, 10, lr, mn) - 1e-4) < 1e-9);    /* warm-up: lr (s+1)/W */
    CHECK(fabs(tr_lr_at(4, 110, 10, lr, mn) - 5e-4) < 1e-9);
    CHECK(fabs(tr_lr_at(10, 110, 10, lr, mn) - 1e-3) < 1e-9);   /* start of the decay: the peak */
    /* decay over steps 10..109: x = (s - 10) / 99, lr = mn + (lr - mn) (1 + cos(pi x)) / 2 */
    const double x = 40.0 / 99.0, want = 1e-4 + 0.5 * 9e-4 * (1 + cos(3.141592653589793 * x));
    CHECK(fabs(tr_lr_at(50, 110, 10, lr, mn) - want) < 1e-9);
    CHECK(fabs(tr_lr_at(109, 110, 10, lr, mn) - 1e-4) < 1e-9);  /* last step: the floor */
}

TEST(adamw_step_matches_formula) {
    const lc_train_config c = tiny_gqa_config();
    tr_model *m = NULL;
    CHECK_OK(tr_model_new(&c, 11, &m));
    randomize(m);
    float *m1 = calloc(m->n_params, 4), *m2 = calloc(m->n_params, 4), *p0 = malloc(m->n_params * 4);
    for (size_t i = 0; i < m->n_params; i++) m->grads[i] = (float)urand(), m1[i] = (float)(0.1 * urand()),
                                              m2[i] = (float)(0.01 * fabs(urand()));
    memcpy(p0, m->params, m->n_params * 4);
    float *g0 = malloc(m->n_params * 4), *m10 = malloc(m->n_params * 4), *m20 = malloc(m->n_params * 4);
    memcpy(g0, m->grads, m->n_params * 4), memcpy(m10, m1, m->n_params * 4), memcpy(m20, m2, m->n_params * 4);
    lc_pool *pool = NULL;
    CHECK_OK(lc_pool_new(2, &pool));
    const tr_adamw a = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                        .grad_scale = 0.5f, .t = 3};
    tr_adamw_step(m, m1, m2, &a, pool);
    lc_pool_free(pool);
    bool ok = true;
    char why[256] = "";
    for (int ti = 0; ti < m->n_tensors && ok; ti++) {
        const tr_tensor *t = &m->tensors[ti];
        for (int i = 0; i < t->ne0 * t->ne1; i++) {
            const size_t k = t->off + (size_t)i;
            const double g = 0.5 * g0[k], M = 0.9 * m10[k] + 0.1 * g, V = 0.95 * m20[k] + 0.05 * g * g;
            const double mh = M / (1 - pow(0.9, 3)), vh = V / (1 - pow(0.95, 3));
            const double want = p0[k] - 0.01 * (mh / (sqrt(vh) + 1e-8) + (t->decay ? 0.1 * p0[k] : 0.0));
            if (fabs(m->params[k] - want) > 1e-6 * (1 + fabs(want)) || fabs(m1[k] - M) > 1e-6 || fabs(m2[k] - V) > 1e-6) {
                ok = false;
                snprintf(why, sizeof why, "%s[%d]: %.9g, want %.9g", t->name, i, m->params[k], want);
                break;
            }
        }
    }
    CHECK(!tr_model_find(m, "blk.0.attn_norm.weight") || !m->tensors[tr_model_find(m, "blk.0.attn_norm.weight")].decay);
    free(m1), free(m2), free(p0), free(g0), free(m10), free(m20);
    tr_model_free(m);
    CHECKF(ok, "%s", why);
}

/* ---- training runs (need a vocabulary: the stories260K GGUF's) ---- */

static char g_dir[256];

static const char *tmp_dir(void) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/llamac-train-XXXXXX");
        if (!mkdtemp(g_dir)) g_dir[0] = 0;
    }
    return g_dir[0] ? g_dir : NULL;
}

static bool g_tok_ok;
static char g_tok[4200], g_corpus[512];

/* The tokenizer and a small corpus: 12 sentences in a fixed order, repeated (a periodic text a model can learn),
** written as documents separated by lines "%". */
static const char *setup_data(void) {
    const char *shared = th_shared_dir();
    if (!shared) return "shared data (../shared/data) not found; set LLAMAC_SHARED_DATA";
    snprintf(g_tok, sizeof g_tok, "%s/stories260K/stories260K.gguf", shared);
    if (!tmp_dir()) return "cannot create a temporary directory";
    snprintf(g_corpus, sizeof g_corpus, "%s/corpus.txt", g_dir);
    if (!g_tok_ok) {
        static const char *const sent[] = {
            "Tom had a red ball.", "He liked to play in the park.", "One day the ball rolled away.",
            "Tom ran after it.", "A big dog found the ball.", "The dog gave it back to Tom.",
            "Tom said thank you.", "They played all day.", "Then the sun went down.", "Tom went home happy.",
            "His mom made soup.", "The end."};
        FILE *f = fopen(g_corpus, "w");
        if (!f) return "cannot write the corpus";
        for (int rep = 0; rep < 40; rep++) {
            for (int i = 0; i < 12; i++) fprintf(f, "%s%s", sent[i], i % 4 == 3 ? "\n" : " ");
            fprintf(f, "%%\n");
        }
        fclose(f);
        g_tok_ok = true;
    }
    return NULL;
}

/* ---- the corpus: documents, BOS/EOS, the held-out chunks ---- */

TEST(corpus_documents_and_validation_split) {
    const char *why = setup_data();
    if (why) SKIP("%s", why);
    lc_tokenizer *tok = NULL;
    CHECK_OK(lc_tokenizer_load(g_tok, NULL, &tok));
    char path[600];
    snprintf(path, sizeof path, "%s/docs.txt", g_dir);
    static const char *const docs[] = {"Once upon a time there was a cat.\n", "The cat sat.\nIt was warm.\n",
                                       "  \n", "A dog came by and said hello to the cat.\n"};
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    for (int rep = 0; rep < 30; rep++)
        for (int i = 0; i < 4; i++) fprintf(f, "%s%s", docs[i], i == 3 && rep == 29 ? "" : (i % 2 ? "%\r\n" : "%\n"));
    fclose(f);
    /* the expected stream, document by document through the public tokenizer API */
    int32_t *want = malloc(sizeof(int32_t) * 100000);
    size_t n_want = 0;
    for (int rep = 0; rep < 30; rep++)
        for (int i = 0; i < 4; i++) {
            if (i == 2) continue; /* blank documents are skipped */
            size_t n = 0;
            CHECK_OK(lc_tokenizer_tokenize(tok, docs[i], strlen(docs[i]), LC_TOK_ADD_BOS, want + n_want, 1000, &n));
            CHECK(want[n_want] == lc_tokenizer_bos(tok));
            n_want += n;
            want[n_want++] = lc_tokenizer_eos(tok);
        }
    const char *paths[1] = {path};
    tr_data d;
    const int T = 7; /* chunks of 8 * 8 = 64 tokens */
    CHECK_OK(tr_data_load(&d, paths, 1, "%", tok, T, 0.25));
    CHECK_EQ_INT(d.n_docs, 90);
    CHECK_EQ_INT(d.n_train + d.n_val, n_want);
    /* chunk c is held out when floor((c+1)/4) > floor(c/4): chunks 3, 7, 11, ... */
    size_t it = 0, iv = 0;
    bool ok = true;
    for (size_t c = 0; c * 64 < n_want && ok; c++) {
        const size_t a = c * 64, n = LC_MIN((size_t)64, n_want - a);
        if (c % 4 == 3) ok = !memcmp(d.val + iv, want + a, n * 4), iv += n;
        else ok = !memcmp(d.train + it, want + a, n * 4), it += n;
        if (!ok) printf("        chunk %zu differs\n", c);
    }
    CHECK(ok && it == d.n_train && iv == d.n_val);
    const uint64_t h = d.hash;
    tr_data_free(&d);
    /* the same corpus gives the same hash; a shorter window another one */
    CHECK_OK(tr_data_load(&d, paths, 1, "%", tok, T, 0.25));
    CHECK(d.hash == h);
    tr_data_free(&d);
    CHECK_OK(tr_data_load(&d, paths, 1, "%", tok, T - 1, 0.25));
    CHECK(d.hash != h);
    tr_data_free(&d);
    /* without a separator the file is one document */
    CHECK_OK(tr_data_load(&d, paths, 1, NULL, tok, T, 0.0));
    CHECK_EQ_INT(d.n_docs, 1);
    CHECK_EQ_INT(d.n_val, 0);
    tr_data_free(&d);
    /* too little text for one window */
    CHECK(tr_data_load(&d, paths, 1, "%", tok, 4000, 0.1) == LC_E_INVALID);
    CHECK(strstr(lc_last_error(), "too few") != NULL);
    const char *missing[1] = {"/nonexistent/corpus.txt"};
    CHECK(tr_data_load(&d, missing, 1, NULL, tok, T, 0.1) == LC_E_IO);
    CHECK(strstr(lc_last_error(), "/nonexistent/corpus.txt") != NULL);
    free(want);
    lc_tokenizer_free(tok);
}

typedef struct run_opts {
    const char *out;
    int64_t steps;
    int threads;
    bool resume;
    int64_t kill_at; /* > 0: SIGKILL the process when this step ends (in a child) */
    uint64_t seed;
    double first_loss; /* out: the loss of step 1 */
    uint32_t batch;    /* 0: 8 */
} run_opts;

static int on_event_kill(const lc_train_stats *s, void *user) {
    run_opts *o = user;
    if (s->event == LC_TRAIN_STEP && s->step == 1) o->first_loss = s->loss;
    if (s->event == LC_TRAIN_STEP && o->kill_at > 0 && s->step == o->kill_at) raise(SIGKILL);
    return 0;
}

static lc_train_params tiny_params(const run_opts *o) {
    static const char *files[1];
    files[0] = g_corpus;
    lc_train_params p = lc_train_default_params();
    p.corpus = files;
    p.n_corpus = 1;
    p.doc_sep = "%";
    p.tokenizer = g_tok;
    p.out = o->out;
    p.config = (lc_train_config){.n_embd = 48, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .n_ctx = 32,
                                 .rope_theta = 10000.0f, .rms_eps = 1e-5f};
    p.n_steps = o->steps;
    p.batch = o->batch ? o->batch : 8;
    p.micro_batch = 3; /* 3 + 3 + 2: gradient accumulation over unequal micro-batches */
    p.lr = 3e-3f;
    p.warmup = 5;
    p.val_frac = 0.1;
    p.val_batches = 1;
    p.eval_every = 0;
    p.checkpoint_every = 4;
    p.seed = o->seed ? o->seed : 7;
    p.n_threads = o->threads;
    p.resume = o->resume;
    p.on_event = on_event_kill;
    p.user = (void *)o;
    return p;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

TEST(training_loss_falls) {
    const char *why = setup_data();
    if (why) SKIP("%s", why);
    char out[512];
    snprintf(out, sizeof out, "%s/loss.gguf", g_dir);
    /* quick (sanitizers, qemu): fewer steps, a weaker bound */
    const int64_t steps = quick() ? 40 : 150;
    const double bound = quick() ? 4.0 : 0.5;
    run_opts o = {.out = out, .steps = steps, .threads = 2, .batch = quick() ? 4 : 8};
    lc_train_params p = tiny_params(&o);
    p.eval_every = 50;
    lc_train_stats st;
    CHECK_OK(lc_train(&p, &st));
    printf("        loss: step 1 %.3f (ln 512 = %.3f), step %lld train %.3f, val %.3f\n", o.first_loss, log(512.0),
           (long long)st.step, st.loss, st.val_loss);
    CHECK_EQ_INT(st.step, steps);
    /* small initial weights give near-uniform predictions: the first loss is close to ln(512) = 6.24 */
    CHECKF(fabs(o.first_loss - log(512.0)) < 0.3, "first loss %.3f", o.first_loss);
    /* a 12-sentence period is learnable: below 0.5 nats per token after 150 steps of 256 tokens (0.16 here; quick:
    ** below 4.0 after 40 steps of 128 tokens, 3.4 here) */
    CHECKF(st.loss < bound && st.val_loss < bound, "train loss %.3f, val loss %.3f", st.loss, st.val_loss);
}

TEST(resume_after_kill_gives_the_same_bytes) {
    const char *why = setup_data();
    if (why) SKIP("%s", why);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.gguf", g_dir);
    snprintf(b, sizeof b, "%s/b.gguf", g_dir);
    const int64_t N = quick() ? 8 : 12;
    const uint32_t B = quick() ? 4 : 8;
    run_opts oa = {.out = a, .steps = N, .threads = 2, .batch = B};
    lc_train_params pa = tiny_params(&oa);
    CHECK_OK(lc_train(&pa, NULL));
    /* a child trains the same run with 1 thread and is killed by SIGKILL at the end of step 6: the checkpoint of step
    ** 4 survives, steps 5 and 6 are lost */
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        run_opts ob = {.out = b, .steps = N, .threads = 1, .kill_at = 6, .batch = B};
        lc_train_params pb = tiny_params(&ob);
        lc_train(&pb, NULL);
        _exit(3); /* not reached when the kill happens */
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    struct stat sb;
    char ck[600];
    snprintf(ck, sizeof ck, "%s.ckpt", b);
    CHECKF(stat(ck, &sb) == 0, "no checkpoint %s after the kill", ck);
    CHECKF(stat(b, &sb) != 0, "%s exists although the run was killed", b);
    /* a resume that does not match the run is refused */
    run_opts obad = {.out = b, .steps = N, .threads = 3, .resume = true, .seed = 8, .batch = B};
    lc_train_params pbad = tiny_params(&obad);
    CHECK(lc_train(&pbad, NULL) == LC_E_INVALID);
    CHECK(strstr(lc_last_error(), "seed") != NULL);
    /* resumed with 3 threads: continues at step 4 */
    run_opts oc = {.out = b, .steps = N, .threads = 3, .resume = true, .batch = B};
    lc_train_params pc = tiny_params(&oc);
    lc_train_stats st;
    CHECK_OK(lc_train(&pc, &st));
    CHECK_EQ_INT(st.resumed_from, 4);
    size_t na = 0, nb = 0;
    unsigned char *da = slurp(a, &na), *db = slurp(b, &nb);
    const bool same = da && db && na == nb && !memcmp(da, db, na);
    free(da), free(db);
    CHECKF(same, "a.gguf (%zu bytes) and b.gguf (%zu bytes) differ", na, nb);
}

/* Loads a GGUF written by lc_train into a tr_model (tensors by name). */
static tr_model *model_from_gguf(const char *path, const lc_train_config *c) {
    gguf_file *f = NULL;
    if (gguf_open(path, &f)) return NULL;
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    tr_model *m = NULL;
    if (te && !tr_model_new(c, (int)te->ne[1], &m)) {
        for (int i = 0; i < m->n_tensors; i++) {
            const gguf_tensor *t = gguf_find_tensor(f, m->tensors[i].name);
            if (!t || t->type != LC_TYPE_F32 || t->ne[0] * t->ne[1] != (uint64_t)m->tensors[i].ne0 * m->tensors[i].ne1) {
                tr_model_free(m);
                m = NULL;
                break;
            }
            memcpy(tr_param(m, i), t->data, t->size);
        }
    }
    gguf_close(f);
    return m;
}

static double rel_l2(const float *a, const float *b, int n) {
    double d = 0, r = 0;
    for (int i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), r += (double)b[i] * b[i];
    return sqrt(d / (r + 1e-300));
}

/* The written file, run by lc_model_load + lc_decode (F32 KV cache), gives the logits of the training forward: the
** tensor names, shapes, Q/K layout (adjacent-pair RoPE), tied output and hyperparameter keys all agree. */
TEST(trained_model_runs_under_lc_model_load_with_the_same_logits) {
    const char *why = setup_data();
    if (why) SKIP("%s", why);
    char path[512];
    snprintf(path, sizeof path, "%s/a.gguf", g_dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        run_opts o = {.out = path, .steps = 12, .threads = 2};
        lc_train_params p = tiny_params(&o);
        CHECK_OK(lc_train(&p, NULL));
    }
    run_opts o0 = {0};
    const lc_train_params p = tiny_params(&o0);
    const int T = (int)p.config.n_ctx;
    tr_model *tm = model_from_gguf(path, &p.config);
    CHECK(tm != NULL);
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(path, NULL, &m));
    const lc_hparams *hp = lc_model_hparams(m);
    CHECK(hp->tied_output && hp->n_head_kv == 2 && hp->n_ctx_train == (uint32_t)T && (int)hp->n_vocab == tm->n_vocab);
    int32_t ids[64];
    size_t n = 0;
    CHECK_OK(lc_tokenize(m, "Tom had a red ball. He liked to play in the park. The dog", 57, LC_TOK_ADD_BOS, ids, 64, &n));
    CHECK(n >= 8 && n <= (size_t)T);
    int32_t toks[64], tgts[64];
    for (int i = 0; i < T; i++) toks[i] = ids[i % n], tgts[i] = -1;
    tr_run *r = NULL;
    CHECK_OK(tr_run_new(tm, 1, T, 2, &r));
    tr_run_step(r, toks, tgts, 1, false, 0.0f);
    const float *want = tr_run_logits(r);
    lc_context_params cp = lc_context_default_params();
    cp.kv_type = LC_TYPE_F32;
    cp.n_ctx = (uint32_t)T;
    cp.n_threads = 2;
    lc_context *c = NULL;
    CHECK_OK(lc_context_new(m, &cp, &c));
    int8_t want_logits[64];
    for (int i = 0; i < T; i++) want_logits[i] = 1;
    lc_batch b = {.n_tokens = T, .token = toks, .logits = want_logits};
    CHECK_OK(lc_decode(c, &b));
    double worst = 0;
    int worst_p = 0;
    for (int i = 0; i < T; i++) {
        const double e = rel_l2(lc_get_logits(c, i), want + (size_t)i * tm->n_vocab, tm->n_vocab);
        if (e > worst) worst = e, worst_p = i;
    }
    printf("        lc_decode vs training forward: max rel L2 %.2e (position %d)\n", worst, worst_p);
    lc_context_free(c);
    lc_model_free(m);
    tr_run_free(r);
    tr_model_free(tm);
    CHECKF(worst <= 1e-4, "rel %.3g at position %d", worst, worst_p);
}

/* ---- llama.cpp (tests/oracle/lc_oracle) runs the trained file and agrees with the training forward ---- */

static const char *oracle_path(void) {
    static char buf[1024];
    const char *e = getenv("LLAMAC_ORACLE");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : ".oracle/lc_oracle");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

TEST(trained_model_runs_in_llama_cpp_with_the_same_logits) {
    const char *why = setup_data();
    if (why) SKIP("%s", why);
    if (!oracle_path()) {
#if defined(__x86_64__) && defined(__linux__)
        const char *req = getenv("LLAMAC_REQUIRE_ORACLE");
        if (req && !strcmp(req, "1")) FAILF("llama.cpp oracle .oracle/lc_oracle missing and LLAMAC_REQUIRE_ORACLE=1");
#endif
        SKIP("llama.cpp oracle .oracle/lc_oracle not built (tests/oracle/build-oracle.sh; x86-64 Linux only)");
    }
    char path[512], ids_path[512], out_path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/a.gguf", g_dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        run_opts o = {.out = path, .steps = 12, .threads = 2};
        lc_train_params p = tiny_params(&o);
        CHECK_OK(lc_train(&p, NULL));
    }
    run_opts o0 = {0};
    const lc_train_params p = tiny_params(&o0);
    const int T = (int)p.config.n_ctx;
    tr_model *tm = model_from_gguf(path, &p.config);
    CHECK(tm != NULL);
    int32_t toks[64], tgts[64];
    for (int i = 0; i < T; i++) toks[i] = (int32_t)(1 + (i * 37) % (tm->n_vocab - 1)), tgts[i] = -1;
    snprintf(ids_path, sizeof ids_path, "%s/ids.txt", g_dir);
    snprintf(out_path, sizeof out_path, "%s/oracle.f32", g_dir);
    FILE *f = fopen(ids_path, "w");
    CHECK(f != NULL);
    for (int i = 0; i < T; i++) fprintf(f, "%d ", toks[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' -i '%s' -o '%s' -t 2 --kv f32 >/dev/null 2>&1", oracle_path(), path,
             ids_path, out_path);
    CHECKF(system(cmd) == 0, "oracle failed: %.900s", cmd);
    size_t nb = 0;
    float *ref = (float *)slurp(out_path, &nb);
    CHECK(ref && nb == (size_t)T * tm->n_vocab * sizeof(float));
    tr_run *r = NULL;
    CHECK_OK(tr_run_new(tm, 1, T, 2, &r));
    tr_run_step(r, toks, tgts, 1, false, 0.0f);
    double worst = 0;
    int worst_p = 0;
    for (int i = 0; i < T; i++) {
        const double e = rel_l2(tr_run_logits(r) + (size_t)i * tm->n_vocab, ref + (size_t)i * tm->n_vocab, tm->n_vocab);
        if (e > worst) worst = e, worst_p = i;
    }
    printf("        llama.cpp vs training forward: max rel L2 %.2e (position %d)\n", worst, worst_p);
    free(ref);
    tr_run_free(r);
    tr_model_free(tm);
    CHECKF(worst <= 1e-4, "rel %.3g at position %d", worst, worst_p);
}

/* ---- the command line: llamac train, then llamac run on its output ---- */

static const char *llamac_bin(void) {
    static char buf[1024];
    const char *b = getenv("LLAMAC_BUILD");
    snprintf(buf, sizeof buf, "%s/llamac", b && *b ? b : "build");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    const int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(cli_train_then_run) {
    const char *why = setup_data();
    if (why) SKIP("%s", why);
    const char *bin = llamac_bin();
    if (!bin || sh("'%s' --version >/dev/null 2>&1", bin) != 0) SKIP("no runnable llamac binary (LLAMAC_BUILD)");
    char log[600], model[600];
    snprintf(log, sizeof log, "%s/cli.log", g_dir);
    snprintf(model, sizeof model, "%s/cli.gguf", g_dir);
    CHECK_EQ_INT(sh("'%s' train --help > '%s' 2>&1", bin, log), 0);
    size_t n = 0;
    char *text = (char *)slurp(log, &n);
    CHECK(text && strstr(text, "tiny") && strstr(text, "small") && strstr(text, "--resume"));
    free(text);
    CHECK_EQ_INT(sh("'%s' train -f '%s' -o '%s' >/dev/null 2>&1", bin, g_corpus, model), 2); /* no tokenizer */
    CHECK_EQ_INT(sh("'%s' train -f '%s' --tokenizer '%s' -o '%s' --config nope >/dev/null 2>&1", bin, g_corpus, g_tok,
                    model), 2);
    CHECK_EQ_INT(sh("'%s' train -f /nonexistent --tokenizer '%s' -o '%s' >/dev/null 2>&1", bin, g_tok, model), 1);
    CHECK_EQ_INT(sh("'%s' train -f '%s' --doc-sep %% --tokenizer '%s' --config tiny --ctx 32 --steps 6 --batch 4 "
                    "--eval-every 3 --log-every 2 -t 2 -o '%s' > '%s' 2>&1",
                    bin, g_corpus, g_tok, model, log),
                 0);
    text = (char *)slurp(log, &n);
    CHECK(text && strstr(text, "val perplexity") && strstr(text, "tok/s") && strstr(text, "wrote"));
    free(text);
    CHECK_EQ_INT(sh("'%s' run -m '%s' -p Tom -n 4 --seed 1 > '%s' 2>&1", bin, model, log), 0);
}

int main(void) {
    RUN(gemm_matches_double_all_variants_and_thread_counts);
    RUN(rmsnorm_forward_and_backward);
    RUN(rope_forward_and_backward);
    RUN(attention_gqa_forward_and_backward);
    RUN(swiglu_forward_and_backward);
    RUN(cross_entropy_forward_and_backward);
    RUN(whole_model_gradients_match_finite_differences);
    RUN(lr_schedule_warmup_then_cosine);
    RUN(adamw_step_matches_formula);
    RUN(corpus_documents_and_validation_split);
    RUN(training_loss_falls);
    RUN(resume_after_kill_gives_the_same_bytes);
    RUN(trained_model_runs_under_lc_model_load_with_the_same_logits);
    RUN(trained_model_runs_in_llama_cpp_with_the_same_logits);
    RUN(cli_train_then_run);
    if (g_dir[0]) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) printf("        could not remove %s\n", g_dir);
    }
    return TEST_SUMMARY();
}
