/* train_model.c - the Llama model under training: parameters in one array (GGUF tensor names and layout), the
** forward pass over a batch of sequences keeping what the backward needs, the backward pass accumulating into the
** gradients, and the GGUF output.
**
** Layout as lc_model_load reads it: W[out][in] row-major ("ne0 = in"), q/k rotated on adjacent pairs (the GGUF
** llama layout, so no Q/K permutation is involved), token_embd doubles as the output matrix. Every step is one
** thread-pool run; each splits rows, columns or (sequence, head) pairs so that no sum depends on the thread count.
*/
#include "train.h"

#include <math.h>
#include <stdio.h>

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tr_rng_seed(tr_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tr_rng_next(tr_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t tr_rng_below(tr_rng *r, uint64_t n) {
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n; /* reject the last partial range: no modulo bias */
    uint64_t x;
    do x = tr_rng_next(r);
    while (x >= lim);
    return x % n;
}

double tr_rng_normal(tr_rng *r) {
    const double u1 = ((double)(tr_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    const double u2 = (double)(tr_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- the parameter table ---- */

static int add_tensor(tr_model *m, const char *name, int ne0, int ne1, bool decay) {
    tr_tensor *t = &m->tensors[m->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->off = m->n_params;
    t->decay = decay;
    const size_t n = (size_t)ne0 * ne1;
    m->n_params += (n + 15) & ~(size_t)15;
    m->n_weights += n;
    return m->n_tensors++;
}

int tr_model_new(const lc_train_config *c, int n_vocab, tr_model **out) {
    *out = NULL;
    if (c->n_embd == 0 || c->n_embd > 16384 || c->n_layer == 0 || c->n_layer > 256 || c->n_head == 0 ||
        c->n_head_kv == 0 || c->n_ff == 0 || c->n_ff > 65536 || c->n_ctx < 2 || c->n_ctx > 16384)
        return LC_ERR(LC_E_INVALID, "train: model shape out of range (n_embd %u, n_layer %u, n_head %u, n_head_kv %u, "
                                    "n_ff %u, n_ctx %u)",
                      c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->n_ff, c->n_ctx);
    if (c->n_embd % c->n_head || (c->n_embd / c->n_head) % 2 || c->n_head % c->n_head_kv)
        return LC_ERR(LC_E_INVALID, "train: n_embd %u must be n_head %u times an even head dimension, and n_head a "
                                    "multiple of n_head_kv %u",
                      c->n_embd, c->n_head, c->n_head_kv);
    if (!(c->rope_theta > 0.0f) || !(c->rms_eps > 0.0f) || !isfinite(c->rope_theta) || !isfinite(c->rms_eps))
        return LC_ERR(LC_E_INVALID, "train: rope_theta %g and rms_eps %g must be positive", (double)c->rope_theta,
                      (double)c->rms_eps);
    if (n_vocab < 2 || n_vocab > (1 << 20))
        return LC_ERR(LC_E_INVALID, "train: vocabulary of %d tokens (2 .. 2^20 supported)", n_vocab);
    tr_model *m = lc__calloc(1, sizeof *m);
    if (!m) return LC_ERR(LC_E_NOMEM, "train: out of memory");
    m->cfg = *c;
    m->n_vocab = n_vocab;
    m->head_dim = (int)(c->n_embd / c->n_head);
    m->n_q = (int)c->n_embd;
    m->n_kv = (int)c->n_head_kv * m->head_dim;
    m->tensors = lc__calloc(2 + 9 * (size_t)c->n_layer, sizeof *m->tensors);
    m->layers = lc__calloc(c->n_layer, sizeof *m->layers);
    if (!m->tensors || !m->layers) {
        tr_model_free(m);
        return LC_ERR(LC_E_NOMEM, "train: out of memory");
    }
    const int D = (int)c->n_embd, F = (int)c->n_ff;
    m->tok_embd = add_tensor(m, "token_embd.weight", D, n_vocab, true);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        tr_layer_idx *L = &m->layers[l];
        char nm[64];
#define T(field, part, ne0, ne1, decay)                                                                            \
    (snprintf(nm, sizeof nm, "blk.%u.%s.weight", l, part), L->field = add_tensor(m, nm, ne0, ne1, decay))
        T(attn_norm, "attn_norm", D, 1, false);
        T(wq, "attn_q", D, m->n_q, true);
        T(wk, "attn_k", D, m->n_kv, true);
        T(wv, "attn_v", D, m->n_kv, true);
        T(wo, "attn_output", m->n_q, D, true);
        T(ffn_norm, "ffn_norm", D, 1, false);
        T(w_gate, "ffn_gate", D, F, true);
        T(w_up, "ffn_up", D, F, true);
        T(w_down, "ffn_down", F, D, true);
#undef T
    }
    m->output_norm = add_tensor(m, "output_norm.weight", D, 1, false);
    m->params = lc__aligned_alloc(m->n_params * sizeof(float));
    m->grads = lc__aligned_alloc(m->n_params * sizeof(float));
    if (!m->params || !m->grads) {
        tr_model_free(m);
        return LC_ERR(LC_E_NOMEM, "train: out of memory for %zu parameters", m->n_params);
    }
    memset(m->params, 0, m->n_params * sizeof(float));
    memset(m->grads, 0, m->n_params * sizeof(float));
    *out = m;
    return LC_OK;
}

void tr_model_free(tr_model *m) {
    if (!m) return;
    lc__aligned_free(m->params);
    lc__aligned_free(m->grads);
    lc__free(m->tensors);
    lc__free(m->layers);
    lc__free(m);
}

int tr_model_find(const tr_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return i;
    return -1;
}

void tr_model_init(tr_model *m, uint64_t seed) {
    const float std = 0.02f, resid = std / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *t = &m->tensors[i];
        float *p = tr_param(m, i);
        const size_t n = (size_t)t->ne0 * t->ne1;
        if (t->ne1 == 1) {
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
            continue;
        }
        const bool is_resid = strstr(t->name, "attn_output") || strstr(t->name, "ffn_down");
        const float sd = is_resid ? resid : std;
        tr_rng r;
        tr_rng_seed(&r, seed, (uint64_t)i + 1);
        for (size_t j = 0; j < n; j++) p[j] = sd * (float)tr_rng_normal(&r);
    }
}

double tr_flops_per_token(const tr_model *m, int T) {
    const double D = m->cfg.n_embd, F = m->cfg.n_ff, L = m->cfg.n_layer;
    const double mat = L * (D * (m->n_q + 2.0 * m->n_kv) + m->n_q * D + 3.0 * D * F) + (double)m->n_vocab * D;
    /* attention per token: (T+1)/2 keys on average; forward 4 hd per key (score, weighted V), backward 10 hd */
    const double attn = L * m->cfg.n_head * (T + 1) / 2.0 * m->head_dim * 14.0;
    return 6.0 * mat + attn;
}

/* ---- the run: activations, scratch, pool ---- */

struct tr_run {
    tr_model *m;
    int max_seq, T, max_rows;
    lc_pool *pool;
    tr_gemm_impl gemm;
    float **ws;      /* per thread: gemm scratch */
    float **asc;     /* per thread: attention scratch */
    int32_t *pos;    /* [max_rows]: row % T */
    float *rope_cs;  /* [T][head_dim] */
    /* kept for the backward, per layer */
    float **xs;      /* [L+1][rows][D] residual stream entering layer l (xs[L]: the final) */
    float **xm;      /* [L][rows][D] after attention */
    float **rs1, **rs2;
    float **xn1, **xn2;
    float **q, **k, **v, **lse, **att;
    float **g, **u, **h;
    float *rsf, *xnf, *logits, *row_loss;
    /* scratch */
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dg, *du, *dh;
    tr_bufs bufs;    /* everything above */
    double time[TR_TIME_COUNT]; /* seconds spent, by kind */
    /* the current call */
    const int32_t *tokens, *targets;
    int n_seq, rows;
};

lc_pool *tr_run_pool(tr_run *r) { return r->pool; }
const tr_gemm_impl *tr_run_gemm(const tr_run *r) { return &r->gemm; }
const float *tr_run_logits(const tr_run *r) { return r->logits; }
const double *tr_run_times(const tr_run *r) { return r->time; }

float *tr_bufs_alloc(tr_bufs *b, size_t n_floats, bool *ok) {
    if (!*ok) return NULL;
    float *p = lc__aligned_alloc((n_floats ? n_floats : 1) * sizeof(float));
    void **a = p ? lc__realloc(b->p, (b->n + 1) * sizeof *a) : NULL;
    if (!p || !a) {
        lc__aligned_free(p);
        *ok = false;
        return NULL;
    }
    b->p = a;
    b->p[b->n++] = p;
    return p;
}

float **tr_bufs_list(tr_bufs *b, int n, size_t n_floats, const int *want, bool *ok) {
    float **l = (float **)tr_bufs_alloc(b, (size_t)n * sizeof(float *) / sizeof(float) + 2, ok);
    for (int i = 0; *ok && i < n; i++) l[i] = !want || want[i] >= 0 ? tr_bufs_alloc(b, n_floats, ok) : NULL;
    return l;
}

void tr_bufs_free(tr_bufs *b) {
    for (size_t i = b->n; i-- > 0;) lc__aligned_free(b->p[i]);
    lc__free(b->p);
    b->p = NULL, b->n = 0;
}

static float *ralloc(tr_run *r, size_t n_floats, bool *ok) { return tr_bufs_alloc(&r->bufs, n_floats, ok); }
static float **rlist(tr_run *r, int n, size_t n_floats, bool *ok) { return tr_bufs_list(&r->bufs, n, n_floats, NULL, ok); }

void tr_run_free(tr_run *r) {
    if (!r) return;
    lc_pool_free(r->pool);
    tr_bufs_free(&r->bufs);
    lc__free(r);
}

int tr_run_new(tr_model *m, int max_seq, int T, int n_threads, tr_run **out) {
    *out = NULL;
    if (max_seq < 1 || T < 1 || T > (int)m->cfg.n_ctx || (int64_t)max_seq * T > (1 << 24))
        return LC_ERR(LC_E_INVALID, "train: batch of %d sequences of %d tokens (context %u) is out of range", max_seq, T,
                      m->cfg.n_ctx);
    tr_run *r = lc__calloc(1, sizeof *r);
    if (!r) return LC_ERR(LC_E_NOMEM, "train: out of memory");
    r->m = m;
    r->max_seq = max_seq;
    r->T = T;
    r->max_rows = max_seq * T;
    if (n_threads <= 0) n_threads = lc_n_cores();
    int st = lc_pool_new(n_threads, &r->pool);
    if (st) {
        lc__free(r);
        return st;
    }
    tr_gemm_select(&r->gemm, NULL);
    const int L = (int)m->cfg.n_layer, D = (int)m->cfg.n_embd, F = (int)m->cfg.n_ff, H = (int)m->cfg.n_head;
    const size_t R = (size_t)r->max_rows;
    bool ok = true;
    r->ws = rlist(r, n_threads, tr_gemm_scratch_floats(), &ok);
    r->asc = rlist(r, n_threads, tr_attn_scratch_floats(T), &ok);
    r->pos = (int32_t *)ralloc(r, R, &ok);
    r->rope_cs = ralloc(r, (size_t)T * m->head_dim, &ok);
    r->xs = rlist(r, L + 1, R * D, &ok);
    r->xm = rlist(r, L, R * D, &ok);
    r->rs1 = rlist(r, L, R, &ok);
    r->rs2 = rlist(r, L, R, &ok);
    r->xn1 = rlist(r, L, R * D, &ok);
    r->xn2 = rlist(r, L, R * D, &ok);
    r->q = rlist(r, L, R * m->n_q, &ok);
    r->k = rlist(r, L, R * m->n_kv, &ok);
    r->v = rlist(r, L, R * m->n_kv, &ok);
    r->lse = rlist(r, L, R * H, &ok);
    r->att = rlist(r, L, R * m->n_q, &ok);
    r->g = rlist(r, L, R * F, &ok);
    r->u = rlist(r, L, R * F, &ok);
    r->h = rlist(r, L, R * F, &ok);
    r->rsf = ralloc(r, R, &ok);
    r->xnf = ralloc(r, R * D, &ok);
    r->logits = ralloc(r, R * m->n_vocab, &ok);
    r->row_loss = ralloc(r, R, &ok);
    r->dx = ralloc(r, R * D, &ok);
    r->dxn = ralloc(r, R * D, &ok);
    r->dq = ralloc(r, R * m->n_q, &ok);
    r->dk = ralloc(r, R * m->n_kv, &ok);
    r->dv = ralloc(r, R * m->n_kv, &ok);
    r->datt = ralloc(r, R * m->n_q, &ok);
    r->dg = ralloc(r, R * F, &ok);
    r->du = ralloc(r, R * F, &ok);
    r->dh = ralloc(r, R * F, &ok);
    if (!ok) {
        tr_run_free(r);
        return LC_ERR(LC_E_NOMEM, "train: out of memory for the activations of %d x %d tokens", max_seq, T);
    }
    for (size_t i = 0; i < R; i++) r->pos[i] = (int32_t)(i % (size_t)T);
    tr_rope_table(r->rope_cs, T, m->head_dim, m->cfg.rope_theta);
    *out = r;
    return LC_OK;
}

/* ---- pool jobs ---- */

static inline void split(int64_t n, int ith, int nth, int64_t *a, int64_t *b) {
    *a = n * ith / nth;
    *b = n * (ith + 1) / nth;
}

typedef struct gemm_op {
    bool ta, tb, acc;
    int M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C;
} gemm_op;

typedef struct gemm_job {
    tr_run *r;
    int n;
    gemm_op op[6];
} gemm_job;

/* Ops run in order on each thread without a barrier: an op may read what an earlier op of the same job wrote only
** when both have the same M and N (then each thread owns the same part of C in both). */
static void gemm_worker(void *arg, int ith, int nth) {
    gemm_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        const gemm_op *o = &j->op[i];
        tr_gemm(&j->r->gemm, o->ta, o->tb, o->M, o->N, o->K, o->A, o->lda, o->B, o->ldb, o->C, o->ldc, o->acc,
                j->r->ws[ith], ith, nth);
    }
}

static void job_add(gemm_job *j, bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B,
                    int ldb, float *C, int ldc, bool acc) {
    j->op[j->n++] = (gemm_op){ta, tb, acc, M, N, K, lda, ldb, ldc, A, B, C};
}

/* Y[rows][out] (+)= X[rows][in] @ W^T, W [out][in] */
static void lin_fwd(gemm_job *j, const float *X, const float *W, float *Y, int rows, int in, int out, bool acc) {
    job_add(j, false, true, rows, out, in, X, in, W, in, Y, out, acc);
}
/* dX[rows][in] (+)= dY[rows][out] @ W */
static void lin_bwd_x(gemm_job *j, const float *dY, const float *W, float *dX, int rows, int in, int out, bool acc) {
    job_add(j, false, false, rows, in, out, dY, out, W, in, dX, in, acc);
}
/* dW[out][in] += dY^T @ X */
static void lin_bwd_w(gemm_job *j, const float *dY, const float *X, float *dW, int rows, int in, int out) {
    job_add(j, true, false, out, in, rows, dY, out, X, in, dW, in, true);
}

static void run_gemms(tr_run *r, gemm_job *j) {
    j->r = r;
    const double t0 = lc_time_s();
    lc_pool_run(r->pool, gemm_worker, j);
    r->time[TR_TIME_MATMUL] += lc_time_s() - t0;
    j->n = 0;
}

enum {
    EW_EMBED,     /* xs[0] rows = token_embd[tokens] */
    EW_COPY,      /* dst = src over rows of D */
    EW_RMS_FWD,   /* y, rs from x, w */
    EW_ROPE,      /* a (n_head heads) and b (n_head_kv heads), inverse flag */
    EW_ATTN_FWD,
    EW_ATTN_BWD,
    EW_SWIGLU_FWD,
    EW_SWIGLU_BWD,
    EW_XENT,
    EW_RMS_BWD,   /* dx += (rows), dw += (columns) */
    EW_EMBED_BWD, /* dE[tokens] += dx (columns) */
};

typedef struct ew_job {
    tr_run *r;
    int kind, layer;
    bool flag;
    float *a, *b, *c;
    const float *x, *w, *rs;
    float scale;
} ew_job;

static void ew_worker(void *arg, int ith, int nth) {
    ew_job *j = arg;
    tr_run *r = j->r;
    const tr_model *m = r->m;
    const int D = (int)m->cfg.n_embd, F = (int)m->cfg.n_ff, H = (int)m->cfg.n_head, HK = (int)m->cfg.n_head_kv;
    const int hd = m->head_dim, l = j->layer;
    int64_t a, b;
    switch (j->kind) {
    case EW_EMBED: {
        split(r->rows, ith, nth, &a, &b);
        const float *E = tr_param(m, m->tok_embd);
        for (int64_t i = a; i < b; i++)
            memcpy(r->xs[0] + i * D, E + (size_t)r->tokens[i] * D, (size_t)D * sizeof(float));
        break;
    }
    case EW_COPY:
        split(r->rows, ith, nth, &a, &b);
        memcpy(j->a + a * D, j->x + a * D, (size_t)(b - a) * D * sizeof(float));
        break;
    case EW_RMS_FWD:
        split(r->rows, ith, nth, &a, &b);
        tr_rmsnorm_fwd(j->a, j->b, j->x, j->w, D, m->cfg.rms_eps, (int)a, (int)b);
        break;
    case EW_ROPE:
        split(r->rows, ith, nth, &a, &b);
        tr_rope(j->a, H, hd, r->rope_cs, r->pos, (int)a, (int)b, j->flag);
        tr_rope(j->b, HK, hd, r->rope_cs, r->pos, (int)a, (int)b, j->flag);
        break;
    case EW_ATTN_FWD:
        split((int64_t)r->n_seq * H, ith, nth, &a, &b);
        tr_attn_fwd(&r->gemm, r->att[l], r->lse[l], r->q[l], r->k[l], r->v[l], r->T, H, HK, hd, (int)a, (int)b, r->asc[ith]);
        break;
    case EW_ATTN_BWD:
        split((int64_t)r->n_seq * HK, ith, nth, &a, &b);
        tr_attn_bwd(&r->gemm, r->dq, r->dk, r->dv, r->datt, r->att[l], r->lse[l], r->q[l], r->k[l], r->v[l], r->T, H, HK, hd,
                    (int)a, (int)b, r->asc[ith]);
        break;
    case EW_SWIGLU_FWD:
        split((int64_t)r->rows * F, ith, nth, &a, &b);
        tr_swiglu_fwd(&r->gemm, r->h[l], r->g[l], r->u[l], (size_t)a, (size_t)b);
        break;
    case EW_SWIGLU_BWD:
        split((int64_t)r->rows * F, ith, nth, &a, &b);
        tr_swiglu_bwd(&r->gemm, r->dg, r->du, r->dh, r->g[l], r->u[l], (size_t)a, (size_t)b);
        break;
    case EW_XENT:
        split(r->rows, ith, nth, &a, &b);
        tr_xent(&r->gemm, r->logits, r->row_loss, r->targets, m->n_vocab, j->scale, j->flag, (int)a, (int)b);
        break;
    case EW_RMS_BWD:
        split(r->rows, ith, nth, &a, &b);
        tr_rmsnorm_bwd_x(r->dx, r->dxn, j->x, j->rs, j->w, D, (int)a, (int)b);
        split(D, ith, nth, &a, &b);
        tr_rmsnorm_bwd_w(j->a, r->dxn, j->x, j->rs, D, r->rows, (int)a, (int)b);
        break;
    case EW_EMBED_BWD: {
        split(D, ith, nth, &a, &b);
        float *dE = tr_grad(m, m->tok_embd);
        for (int i = 0; i < r->rows; i++) {
            float *dst = dE + (size_t)r->tokens[i] * D;
            const float *src = r->dx + (size_t)i * D;
            for (int64_t c = a; c < b; c++) dst[c] += src[c];
        }
        break;
    }
    }
}

static void ew(tr_run *r, int kind, int layer, ew_job j) {
    j.r = r;
    j.kind = kind;
    j.layer = layer;
    const double t0 = lc_time_s();
    lc_pool_run(r->pool, ew_worker, &j);
    r->time[kind == EW_ATTN_FWD || kind == EW_ATTN_BWD ? TR_TIME_ATTENTION : TR_TIME_OTHER] += lc_time_s() - t0;
}

/* ---- forward and backward ---- */

double tr_run_step(tr_run *r, const int32_t *tokens, const int32_t *targets, int n_seq, bool backward,
                   float grad_scale) {
    tr_model *m = r->m;
    const int L = (int)m->cfg.n_layer, D = (int)m->cfg.n_embd, F = (int)m->cfg.n_ff, V = m->n_vocab;
    const int nq = m->n_q, nkv = m->n_kv;
    r->tokens = tokens;
    r->targets = targets;
    r->n_seq = n_seq;
    const int R = r->rows = n_seq * r->T;
    gemm_job j = {0};

    ew(r, EW_EMBED, 0, (ew_job){0});
    for (int l = 0; l < L; l++) {
        const tr_layer_idx *I = &m->layers[l];
        ew(r, EW_RMS_FWD, l, (ew_job){.a = r->xn1[l], .b = r->rs1[l], .x = r->xs[l], .w = tr_param(m, I->attn_norm)});
        lin_fwd(&j, r->xn1[l], tr_param(m, I->wq), r->q[l], R, D, nq, false);
        lin_fwd(&j, r->xn1[l], tr_param(m, I->wk), r->k[l], R, D, nkv, false);
        lin_fwd(&j, r->xn1[l], tr_param(m, I->wv), r->v[l], R, D, nkv, false);
        run_gemms(r, &j);
        ew(r, EW_ROPE, l, (ew_job){.a = r->q[l], .b = r->k[l], .flag = false});
        ew(r, EW_ATTN_FWD, l, (ew_job){0});
        ew(r, EW_COPY, l, (ew_job){.a = r->xm[l], .x = r->xs[l]});
        lin_fwd(&j, r->att[l], tr_param(m, I->wo), r->xm[l], R, nq, D, true);
        run_gemms(r, &j);
        ew(r, EW_RMS_FWD, l, (ew_job){.a = r->xn2[l], .b = r->rs2[l], .x = r->xm[l], .w = tr_param(m, I->ffn_norm)});
        lin_fwd(&j, r->xn2[l], tr_param(m, I->w_gate), r->g[l], R, D, F, false);
        lin_fwd(&j, r->xn2[l], tr_param(m, I->w_up), r->u[l], R, D, F, false);
        run_gemms(r, &j);
        ew(r, EW_SWIGLU_FWD, l, (ew_job){0});
        ew(r, EW_COPY, l, (ew_job){.a = r->xs[l + 1], .x = r->xm[l]});
        lin_fwd(&j, r->h[l], tr_param(m, I->w_down), r->xs[l + 1], R, F, D, true);
        run_gemms(r, &j);
    }
    ew(r, EW_RMS_FWD, 0, (ew_job){.a = r->xnf, .b = r->rsf, .x = r->xs[L], .w = tr_param(m, m->output_norm)});
    lin_fwd(&j, r->xnf, tr_param(m, m->tok_embd), r->logits, R, D, V, false);
    run_gemms(r, &j);
    ew(r, EW_XENT, 0, (ew_job){.flag = backward, .scale = grad_scale});
    double loss = 0.0;
    for (int i = 0; i < R; i++) loss += r->row_loss[i];
    if (!backward) return loss;

    /* output head: logits now hold d(loss)/d(logits) * grad_scale */
    lin_bwd_w(&j, r->logits, r->xnf, tr_grad(m, m->tok_embd), R, D, V);
    lin_bwd_x(&j, r->logits, tr_param(m, m->tok_embd), r->dxn, R, D, V, false);
    run_gemms(r, &j);
    memset(r->dx, 0, (size_t)R * D * sizeof(float));
    ew(r, EW_RMS_BWD, 0,
       (ew_job){.a = tr_grad(m, m->output_norm), .x = r->xs[L], .rs = r->rsf, .w = tr_param(m, m->output_norm)});
    for (int l = L - 1; l >= 0; l--) {
        const tr_layer_idx *I = &m->layers[l];
        /* feed-forward: x_out = xm + swiglu(xn2 Wg^T, xn2 Wu^T) Wd^T */
        lin_bwd_x(&j, r->dx, tr_param(m, I->w_down), r->dh, R, F, D, false);
        lin_bwd_w(&j, r->dx, r->h[l], tr_grad(m, I->w_down), R, F, D);
        run_gemms(r, &j);
        ew(r, EW_SWIGLU_BWD, l, (ew_job){0});
        lin_bwd_x(&j, r->dg, tr_param(m, I->w_gate), r->dxn, R, D, F, false);
        lin_bwd_x(&j, r->du, tr_param(m, I->w_up), r->dxn, R, D, F, true);
        lin_bwd_w(&j, r->dg, r->xn2[l], tr_grad(m, I->w_gate), R, D, F);
        lin_bwd_w(&j, r->du, r->xn2[l], tr_grad(m, I->w_up), R, D, F);
        run_gemms(r, &j);
        ew(r, EW_RMS_BWD, l,
           (ew_job){.a = tr_grad(m, I->ffn_norm), .x = r->xm[l], .rs = r->rs2[l], .w = tr_param(m, I->ffn_norm)});
        /* attention: xm = xs + attn(rope(xn1 Wq^T), rope(xn1 Wk^T), xn1 Wv^T) Wo^T */
        lin_bwd_x(&j, r->dx, tr_param(m, I->wo), r->datt, R, nq, D, false);
        lin_bwd_w(&j, r->dx, r->att[l], tr_grad(m, I->wo), R, nq, D);
        run_gemms(r, &j);
        ew(r, EW_ATTN_BWD, l, (ew_job){0});
        ew(r, EW_ROPE, l, (ew_job){.a = r->dq, .b = r->dk, .flag = true});
        lin_bwd_x(&j, r->dq, tr_param(m, I->wq), r->dxn, R, D, nq, false);
        lin_bwd_x(&j, r->dk, tr_param(m, I->wk), r->dxn, R, D, nkv, true);
        lin_bwd_x(&j, r->dv, tr_param(m, I->wv), r->dxn, R, D, nkv, true);
        lin_bwd_w(&j, r->dq, r->xn1[l], tr_grad(m, I->wq), R, D, nq);
        lin_bwd_w(&j, r->dk, r->xn1[l], tr_grad(m, I->wk), R, D, nkv);
        lin_bwd_w(&j, r->dv, r->xn1[l], tr_grad(m, I->wv), R, D, nkv);
        run_gemms(r, &j);
        ew(r, EW_RMS_BWD, l,
           (ew_job){.a = tr_grad(m, I->attn_norm), .x = r->xs[l], .rs = r->rs1[l], .w = tr_param(m, I->attn_norm)});
    }
    ew(r, EW_EMBED_BWD, 0, (ew_job){0});
    return loss;
}

/* ---- GGUF output ---- */

int tr_model_to_gguf(const tr_model *m, gguf_writer *w, const gguf_file *tok, const char *name) {
    const lc_train_config *c = &m->cfg;
    int r;
#define SET(x)                                                                                                     \
    do {                                                                                                           \
        if ((r = (x)) != LC_OK) return r;                                                                          \
    } while (0)
    SET(gguf_writer_set_str(w, "general.architecture", "llama"));
    SET(gguf_writer_set_str(w, "general.name", name ? name : "llamac-trained"));
    SET(gguf_writer_set_u32(w, "general.file_type", LC_FTYPE_ALL_F32));
    SET(gguf_writer_set_u32(w, "llama.context_length", c->n_ctx));
    SET(gguf_writer_set_u32(w, "llama.embedding_length", c->n_embd));
    SET(gguf_writer_set_u32(w, "llama.block_count", c->n_layer));
    SET(gguf_writer_set_u32(w, "llama.feed_forward_length", c->n_ff));
    SET(gguf_writer_set_u32(w, "llama.attention.head_count", c->n_head));
    SET(gguf_writer_set_u32(w, "llama.attention.head_count_kv", c->n_head_kv));
    SET(gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)m->head_dim));
    SET(gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_theta));
    SET(gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->rms_eps));
    SET(gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)m->n_vocab));
    for (uint64_t i = 0; tok && i < tok->n_kv; i++)
        if (!strncmp(tok->kv[i].key, "tokenizer.", 10)) SET(gguf_writer_set_value(w, tok->kv[i].key, &tok->kv[i].val));
    for (int i = 0; i < m->n_tensors; i++) {
        const tr_tensor *t = &m->tensors[i];
        const uint64_t ne[2] = {(uint64_t)t->ne0, (uint64_t)t->ne1};
        SET(gguf_writer_add_tensor(w, t->name, LC_TYPE_F32, t->ne1 == 1 ? 1 : 2, ne, tr_param(m, i),
                                   ne[0] * ne[1] * sizeof(float)));
    }
#undef SET
    return LC_OK;
}
