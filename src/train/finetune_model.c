/* finetune_model.c - a frozen base model with LoRA adapters: the adapters' parameter table, the forward pass over a
** batch of sequences keeping what the backward needs, the backward pass into the adapters' gradients only, and the
** adapter GGUF.
**
** The forward computes what lc_model_load's inference computes (same RMSNorm and RoPE rounding, Llama 3 RoPE
** frequencies, head_dim, untied output), in f32 through the dequantized weights: y = W x + s B(A x) per adapted
** projection, s = alpha/r, as llama.cpp applies an adapter. Per adapted projection the forward keeps s (X A^T)
** [rows][r]; the backward then needs, besides the layers' activations, dB = dY^T (s X A^T), dT = s dY B,
** dA = dT^T X, dX += dT A. Work runs as small programs of ops on the pool, with explicit barriers where an op reads
** what another thread's share of an earlier op wrote; every sum keeps a fixed order (results do not depend on the
** thread count).
*/
#include "finetune.h"

#include <math.h>
#include <stdio.h>

/* ---- the adapters ---- */

static const lc_weight *proj_weight(const lc_layer *L, int p) {
    const lc_weight *w[FT_N_PROJ] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return w[p];
}

void ft_model_free(ft_model *m) {
    if (!m) return;
    tr_model_free(m->lora_m);
    lc__free(m->w);
    lc__free(m->lora);
    lc__free(m);
}

static void lora_tensor(tr_model *t, const char *wname, const char *suffix, int ne0, int ne1) {
    tr_tensor *x = &t->tensors[t->n_tensors++];
    snprintf(x->name, sizeof x->name, "%s.%s", wname, suffix);
    x->ne0 = ne0, x->ne1 = ne1, x->off = t->n_params, x->decay = true;
    const size_t n = (size_t)ne0 * ne1;
    t->n_params += (n + 15) & ~(size_t)15;
    t->n_weights += n;
}

int ft_model_new(const lc_model *base, int rank, float alpha, unsigned targets, uint64_t seed, ft_model **out) {
    *out = NULL;
    const lc_hparams *hp = &base->hp;
    if (!base->layers) return LC_ERR(LC_E_INVALID, "finetune: the model was loaded with metadata only");
    if (rank < 1 || rank > 4096) return LC_ERR(LC_E_INVALID, "finetune: LoRA rank %d out of range (1 .. 4096)", rank);
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return LC_ERR(LC_E_INVALID, "finetune: LoRA alpha %g must be positive", (double)alpha);
    if (!(targets & ((1u << FT_N_PROJ) - 1)))
        return LC_ERR(LC_E_INVALID, "finetune: no projection to adapt (attention q/k/v/o, FFN gate/up/down)");
    if (hp->n_embd > 65536 || hp->n_ff > 262144 || hp->head_dim > 1024 || hp->n_vocab > (1u << 22))
        return LC_ERR(LC_E_UNSUPPORTED, "finetune: model dimensions beyond the trainer's limits");
    const lc_weight *check[] = {&base->tok_embd, &base->output};
    for (int i = 0; i < 2; i++)
        if (!lc_type_traits_of(check[i]->type)->supported)
            return LC_ERR(LC_E_UNSUPPORTED, "finetune: %s has a weight type llamac cannot compute with", check[i]->name);
    ft_model *m = lc__calloc(1, sizeof *m);
    tr_model *t = m ? lc__calloc(1, sizeof *t) : NULL;
    if (m) m->lora_m = t;
    const size_t n_w = (size_t)hp->n_layer * FT_N_PROJ;
    if (t) {
        m->w = lc__calloc(n_w, sizeof *m->w);
        m->lora = lc__calloc(n_w, sizeof *m->lora);
        t->tensors = lc__calloc(2 * n_w, sizeof *t->tensors);
    }
    if (!t || !m->w || !m->lora || !t->tensors) {
        ft_model_free(m);
        return LC_ERR(LC_E_NOMEM, "finetune: out of memory");
    }
    m->base = base;
    m->n_layer = (int)hp->n_layer, m->D = (int)hp->n_embd, m->F = (int)hp->n_ff, m->H = (int)hp->n_head;
    m->HK = (int)hp->n_head_kv, m->hd = (int)hp->head_dim, m->n_vocab = (int)hp->n_vocab, m->rank = rank;
    m->n_q = m->H * m->hd, m->n_kv = m->HK * m->hd;
    m->alpha = alpha, m->scale = alpha / (float)rank;
    for (int l = 0; l < m->n_layer; l++)
        for (int p = 0; p < FT_N_PROJ; p++) {
            const lc_weight *w = proj_weight(&base->layers[l], p);
            const size_t i = (size_t)l * FT_N_PROJ + p;
            m->w[i] = w;
            m->lora[i] = -1;
            if (!lc_type_traits_of(w->type)->supported || !w->data) {
                ft_model_free(m);
                return LC_ERR(LC_E_UNSUPPORTED, "finetune: %s has a weight type llamac cannot compute with", w->name);
            }
            if (!(targets & (1u << p))) continue;
            m->lora[i] = t->n_tensors;
            lora_tensor(t, w->name, "lora_a", (int)w->ne[0], rank);
            lora_tensor(t, w->name, "lora_b", rank, (int)w->ne[1]);
        }
    t->params = lc__aligned_alloc((t->n_params ? t->n_params : 1) * sizeof(float));
    t->grads = lc__aligned_alloc((t->n_params ? t->n_params : 1) * sizeof(float));
    if (!t->params || !t->grads) {
        ft_model_free(m);
        return LC_ERR(LC_E_NOMEM, "finetune: out of memory for %zu adapter parameters", t->n_params);
    }
    memset(t->params, 0, t->n_params * sizeof(float));
    memset(t->grads, 0, t->n_params * sizeof(float));
    /* A ~ N(0, 1/n_in), B = 0 (Hu et al., "LoRA", section 4.1): the adapted model starts as the base model */
    for (int i = 0; i < t->n_tensors; i += 2) {
        const tr_tensor *a = &t->tensors[i];
        float *p = tr_param(t, i);
        tr_rng r;
        tr_rng_seed(&r, seed, (uint64_t)i + 1);
        const float sd = 1.0f / sqrtf((float)a->ne0);
        for (size_t j = 0; j < (size_t)a->ne0 * a->ne1; j++) p[j] = sd * (float)tr_rng_normal(&r);
    }
    *out = m;
    return LC_OK;
}

int ft_model_to_gguf(const ft_model *m, gguf_writer *w, const char *name) {
    int r = gguf_writer_set_str(w, "general.architecture", "llama");
    if (!r) r = gguf_writer_set_str(w, "general.type", "adapter");
    if (!r) r = gguf_writer_set_str(w, "general.name", name ? name : "llamac-lora");
    if (!r) r = gguf_writer_set_str(w, "adapter.type", "lora");
    if (!r) r = gguf_writer_set_f32(w, "adapter.lora.alpha", m->alpha);
    const tr_model *t = m->lora_m;
    for (int i = 0; !r && i < t->n_tensors; i++) {
        const tr_tensor *x = &t->tensors[i];
        const uint64_t ne[2] = {(uint64_t)x->ne0, (uint64_t)x->ne1};
        r = gguf_writer_add_tensor(w, x->name, LC_TYPE_F32, 2, ne, tr_param(t, i), ne[0] * ne[1] * sizeof(float));
    }
    return r;
}

double ft_flops_per_token(const ft_model *m, int T) {
    double frozen = (double)m->n_vocab * m->D, adapters = 0.0;
    for (int i = 0; i < m->n_layer * FT_N_PROJ; i++) frozen += (double)m->w[i]->ne[0] * m->w[i]->ne[1];
    for (int i = 0; i < m->lora_m->n_tensors; i++) adapters += (double)m->lora_m->tensors[i].ne0 * m->lora_m->tensors[i].ne1;
    const double attn = (double)m->n_layer * m->H * (T + 1) / 2.0 * m->hd * 14.0;
    return 4.0 * frozen + 6.0 * adapters + attn;
}

/* ---- the run: activations, scratch, pool ---- */

struct ft_run {
    ft_model *m;
    int max_seq, T, max_rows;
    lc_pool *pool;
    tr_gemm_impl gemm;
    float **ws;     /* per thread: frozen-product scratch (tr_gemm's included) */
    float **asc;    /* per thread: attention scratch */
    int32_t *pos;   /* [max_rows]: row % T */
    float *rope_cs; /* [T][head_dim] */
    float **xs, **xm, **rs1, **rs2, **xn1, **xn2, **q, **k, **v, **lse, **att, **g, **u, **h; /* as tr_run */
    float **lt;     /* [n_layer * FT_N_PROJ]: s X A^T [rows][rank] of adapted projections */
    float *rsf, *xnf, *logits, *row_loss;
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dg, *du, *dh, *dt[3];
    tr_bufs bufs; /* everything above */
    double time[TR_TIME_COUNT];
    const int32_t *tokens, *targets;
    int n_seq, rows;
};

lc_pool *ft_run_pool(ft_run *r) { return r->pool; }
const tr_gemm_impl *ft_run_gemm(const ft_run *r) { return &r->gemm; }
const float *ft_run_logits(const ft_run *r) { return r->logits; }
const double *ft_run_times(const ft_run *r) { return r->time; }

static float *ralloc(ft_run *r, size_t n_floats, bool *ok) { return tr_bufs_alloc(&r->bufs, n_floats, ok); }
static float **rlist(ft_run *r, int n, size_t n_floats, const int *want, bool *ok) {
    return tr_bufs_list(&r->bufs, n, n_floats, want, ok);
}

void ft_run_free(ft_run *r) {
    if (!r) return;
    lc_pool_free(r->pool);
    tr_bufs_free(&r->bufs);
    lc__free(r);
}

int ft_run_new(ft_model *m, int max_seq, int T, int n_threads, ft_run **out) {
    *out = NULL;
    if (max_seq < 1 || T < 1 || (int64_t)max_seq * T > (1 << 20))
        return LC_ERR(LC_E_INVALID, "finetune: batch of %d sequences of %d tokens is out of range", max_seq, T);
    ft_run *r = lc__calloc(1, sizeof *r);
    if (!r) return LC_ERR(LC_E_NOMEM, "finetune: out of memory");
    r->m = m;
    r->max_seq = max_seq, r->T = T, r->max_rows = max_seq * T;
    if (n_threads <= 0) n_threads = lc_n_cores();
    int st = lc_pool_new(n_threads, &r->pool);
    if (st) {
        lc__free(r);
        return st;
    }
    tr_gemm_select(&r->gemm, NULL);
    const int L = m->n_layer, D = m->D, F = m->F;
    const size_t R = (size_t)r->max_rows, rk = (size_t)m->rank;
    bool ok = true;
    r->ws = rlist(r, n_threads, fz_scratch_floats(LC_MAX(LC_MAX(D, F), m->n_q)), NULL, &ok);
    r->asc = rlist(r, n_threads, tr_attn_scratch_floats(T), NULL, &ok);
    r->pos = (int32_t *)ralloc(r, R, &ok);
    r->rope_cs = ralloc(r, (size_t)T * m->hd, &ok);
    r->xs = rlist(r, L + 1, R * D, NULL, &ok);
    r->xm = rlist(r, L, R * D, NULL, &ok);
    r->rs1 = rlist(r, L, R, NULL, &ok);
    r->rs2 = rlist(r, L, R, NULL, &ok);
    r->xn1 = rlist(r, L, R * D, NULL, &ok);
    r->xn2 = rlist(r, L, R * D, NULL, &ok);
    r->q = rlist(r, L, R * m->n_q, NULL, &ok);
    r->k = rlist(r, L, R * m->n_kv, NULL, &ok);
    r->v = rlist(r, L, R * m->n_kv, NULL, &ok);
    r->lse = rlist(r, L, R * m->H, NULL, &ok);
    r->att = rlist(r, L, R * m->n_q, NULL, &ok);
    r->g = rlist(r, L, R * F, NULL, &ok);
    r->u = rlist(r, L, R * F, NULL, &ok);
    r->h = rlist(r, L, R * F, NULL, &ok);
    r->lt = rlist(r, L * FT_N_PROJ, R * rk, m->lora, &ok);
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
    for (int i = 0; i < 3; i++) r->dt[i] = ralloc(r, R * rk, &ok);
    if (!ok) {
        ft_run_free(r);
        return LC_ERR(LC_E_NOMEM, "finetune: out of memory for the activations of %d x %d tokens (try a smaller "
                                  "--micro-batch or --ctx)", max_seq, T);
    }
    for (size_t i = 0; i < R; i++) r->pos[i] = (int32_t)(i % (size_t)T);
    const lc_model *b = m->base;
    for (int p = 0; p < T; p++)
        lc__rope_cache(r->rope_cs + (size_t)p * m->hd, p, m->hd, b->hp.rope_theta, b->rope_freq_scale, b->rope_freqs);
    *out = r;
    return LC_OK;
}

/* ---- programs of ops run on the pool ---- */

enum {
    OP_BARRIER,
    OP_FZ_FWD,     /* C (+)= A W^T, M rows */
    OP_FZ_BWD,     /* C (+)= A W, M rows */
    OP_GEMM,       /* tr_gemm */
    OP_SCALE,      /* C[0 .. n) *= s */
    OP_EMBED,      /* xs[0] = token_embd[tokens] */
    OP_COPY,       /* C = x over rows of D */
    OP_RMS_FWD,    /* C = rmsnorm(x) * wv, rs into b */
    OP_RMS_BWD,    /* dx += d/dx through rmsnorm(x) * wv from dxn */
    OP_ROPE,       /* C (n_head heads), b (n_head_kv heads); flag: inverse */
    OP_ATTN_FWD,   /* layer l */
    OP_ATTN_BWD,
    OP_SWIGLU_FWD,
    OP_SWIGLU_BWD,
    OP_XENT,       /* flag: gradient, scale s */
};

typedef struct ft_op {
    int kind, l;
    const lc_weight *w;
    bool ta, tb, acc, flag;
    int M, N, K, lda, ldb, ldc;
    const float *A, *B, *x, *wv, *rs;
    float *C, *b;
    float s;
    size_t n;
} ft_op;

enum { MAX_OPS = 40 };
typedef struct ft_prog {
    ft_run *r;
    int n;
    ft_op op[MAX_OPS];
} ft_prog;

static inline void split(int64_t n, int ith, int nth, int64_t *a, int64_t *b) {
    *a = n * ith / nth;
    *b = n * (ith + 1) / nth;
}

static void op_exec(ft_run *r, const ft_op *o, int ith, int nth) {
    const ft_model *m = r->m;
    const int D = m->D, l = o->l;
    int64_t a, b;
    switch (o->kind) {
    case OP_BARRIER: lc_pool_barrier(r->pool); break;
    case OP_FZ_FWD: fz_fwd(&r->gemm, o->w, o->A, o->C, o->M, o->acc, r->ws[ith], ith, nth); break;
    case OP_FZ_BWD: fz_bwd(&r->gemm, o->w, o->A, o->C, o->M, o->acc, r->ws[ith], ith, nth); break;
    case OP_GEMM:
        tr_gemm(&r->gemm, o->ta, o->tb, o->M, o->N, o->K, o->A, o->lda, o->B, o->ldb, o->C, o->ldc, o->acc, r->ws[ith],
                ith, nth);
        break;
    case OP_SCALE:
        split((int64_t)o->n, ith, nth, &a, &b);
        for (int64_t i = a; i < b; i++) o->C[i] *= o->s;
        break;
    case OP_EMBED: {
        split(r->rows, ith, nth, &a, &b);
        const lc_weight *E = &m->base->tok_embd;
        for (int64_t i = a; i < b; i++)
            lc__weight_row(E, r->tokens[i], 0, D, r->xs[0] + i * D);
        break;
    }
    case OP_COPY:
        split(r->rows, ith, nth, &a, &b);
        memcpy(o->C + a * D, o->x + a * D, (size_t)(b - a) * D * sizeof(float));
        break;
    case OP_RMS_FWD:
        split(r->rows, ith, nth, &a, &b);
        tr_rmsnorm_fwd(o->C, o->b, o->x, o->wv, D, m->base->hp.rms_eps, (int)a, (int)b);
        break;
    case OP_RMS_BWD:
        split(r->rows, ith, nth, &a, &b);
        tr_rmsnorm_bwd_x(r->dx, r->dxn, o->x, o->rs, o->wv, D, (int)a, (int)b);
        break;
    case OP_ROPE:
        split(r->rows, ith, nth, &a, &b);
        tr_rope(o->C, m->H, m->hd, r->rope_cs, r->pos, (int)a, (int)b, o->flag);
        tr_rope(o->b, m->HK, m->hd, r->rope_cs, r->pos, (int)a, (int)b, o->flag);
        break;
    case OP_ATTN_FWD:
        split((int64_t)r->n_seq * m->H, ith, nth, &a, &b);
        tr_attn_fwd(&r->gemm, r->att[l], r->lse[l], r->q[l], r->k[l], r->v[l], r->T, m->H, m->HK, m->hd, (int)a, (int)b,
                    r->asc[ith]);
        break;
    case OP_ATTN_BWD:
        split((int64_t)r->n_seq * m->HK, ith, nth, &a, &b);
        tr_attn_bwd(&r->gemm, r->dq, r->dk, r->dv, r->datt, r->att[l], r->lse[l], r->q[l], r->k[l], r->v[l], r->T, m->H,
                    m->HK, m->hd, (int)a, (int)b, r->asc[ith]);
        break;
    case OP_SWIGLU_FWD:
        split((int64_t)r->rows * m->F, ith, nth, &a, &b);
        tr_swiglu_fwd(&r->gemm, r->h[l], r->g[l], r->u[l], (size_t)a, (size_t)b);
        break;
    case OP_SWIGLU_BWD:
        split((int64_t)r->rows * m->F, ith, nth, &a, &b);
        tr_swiglu_bwd(&r->gemm, r->dg, r->du, r->dh, r->g[l], r->u[l], (size_t)a, (size_t)b);
        break;
    case OP_XENT:
        split(r->rows, ith, nth, &a, &b);
        tr_xent(&r->gemm, r->logits, r->row_loss, r->targets, m->n_vocab, o->s, o->flag, (int)a, (int)b);
        break;
    }
}

static void prog_worker(void *arg, int ith, int nth) {
    ft_prog *p = arg;
    for (int i = 0; i < p->n; i++) op_exec(p->r, &p->op[i], ith, nth);
}

static ft_op *op_add(ft_prog *p, int kind) {
    ft_op *o = &p->op[p->n++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

static void gemm_add(ft_prog *p, bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     float *C, int ldc, bool acc) {
    ft_op *o = op_add(p, OP_GEMM);
    o->ta = ta, o->tb = tb, o->M = M, o->N = N, o->K = K, o->A = A, o->lda = lda, o->B = B, o->ldb = ldb, o->C = C;
    o->ldc = ldc, o->acc = acc;
}

/* Runs the program (one pool run) and books its time under kind. */
static void prog_run(ft_prog *p, int kind) {
    const double t0 = lc_time_s();
    lc_pool_run(p->r->pool, prog_worker, p);
    p->r->time[kind] += lc_time_s() - t0;
    p->n = 0;
}

static ft_op *ew(ft_prog *p, int kind, int l) {
    ft_op *o = op_add(p, kind);
    o->l = l;
    return o;
}

/* Y_i (+)= X W_i^T + s B_i (A_i X) for the projections proj[0 .. n) of layer l (one input X). */
static void lin_fwd(ft_prog *p, int l, const int *proj, int n, const float *X, float *const *Y, bool acc) {
    ft_run *r = p->r;
    const ft_model *m = r->m;
    const int R = r->rows, rk = m->rank;
    bool any = false;
    for (int i = 0; i < n; i++) {
        const int wi = l * FT_N_PROJ + proj[i], li = m->lora[wi];
        const lc_weight *w = m->w[wi];
        ft_op *o = op_add(p, OP_FZ_FWD);
        o->w = w, o->A = X, o->C = Y[i], o->M = R, o->acc = acc;
        if (li < 0) continue;
        any = true;
        gemm_add(p, false, true, R, rk, (int)w->ne[0], X, (int)w->ne[0], tr_param(m->lora_m, li), (int)w->ne[0],
                 r->lt[wi], rk, false);
    }
    if (!any) return;
    op_add(p, OP_BARRIER);
    for (int i = 0; i < n; i++) {
        const int wi = l * FT_N_PROJ + proj[i];
        if (m->lora[wi] < 0) continue;
        ft_op *o = op_add(p, OP_SCALE);
        o->C = r->lt[wi], o->n = (size_t)R * rk, o->s = m->scale;
    }
    op_add(p, OP_BARRIER);
    for (int i = 0; i < n; i++) {
        const int wi = l * FT_N_PROJ + proj[i], li = m->lora[wi];
        if (li < 0) continue;
        const int n_out = (int)m->w[wi]->ne[1];
        gemm_add(p, false, true, R, n_out, rk, r->lt[wi], rk, tr_param(m->lora_m, li + 1), rk, Y[i], n_out, true);
    }
}

/* dX = sum_i dY_i W_i + s dY_i B_i A_i, and the adapters' gradients, for projections proj[0 .. n) (n <= 3) of layer
** l whose input was X. */
static void lin_bwd(ft_prog *p, int l, const int *proj, int n, const float *const *dY, const float *X, float *dX) {
    ft_run *r = p->r;
    const ft_model *m = r->m;
    const tr_model *t = m->lora_m;
    const int R = r->rows, rk = m->rank;
    bool any = false;
    for (int i = 0; i < n; i++) {
        const int wi = l * FT_N_PROJ + proj[i], li = m->lora[wi];
        const lc_weight *w = m->w[wi];
        const int n_out = (int)w->ne[1];
        ft_op *o = op_add(p, OP_FZ_BWD);
        o->w = w, o->A = dY[i], o->C = dX, o->M = R, o->acc = i > 0;
        if (li < 0) continue;
        any = true;
        gemm_add(p, true, false, n_out, rk, R, dY[i], n_out, r->lt[wi], rk, tr_grad(t, li + 1), rk, true); /* dB */
        gemm_add(p, false, false, R, rk, n_out, dY[i], n_out, tr_param(t, li + 1), rk, r->dt[i], rk, false); /* dT */
    }
    if (!any) return;
    op_add(p, OP_BARRIER);
    for (int i = 0; i < n; i++) {
        if (m->lora[l * FT_N_PROJ + proj[i]] < 0) continue;
        ft_op *o = op_add(p, OP_SCALE);
        o->C = r->dt[i], o->n = (size_t)R * rk, o->s = m->scale;
    }
    op_add(p, OP_BARRIER);
    for (int i = 0; i < n; i++) {
        const int wi = l * FT_N_PROJ + proj[i], li = m->lora[wi];
        if (li < 0) continue;
        const int n_in = (int)m->w[wi]->ne[0];
        gemm_add(p, true, false, rk, n_in, R, r->dt[i], rk, X, n_in, tr_grad(t, li), n_in, true);     /* dA */
        gemm_add(p, false, false, R, n_in, rk, r->dt[i], rk, tr_param(t, li), n_in, dX, n_in, true); /* dX */
    }
}

double ft_run_step(ft_run *r, const int32_t *tokens, const int32_t *targets, int n_seq, bool backward,
                   float grad_scale) {
    const ft_model *m = r->m;
    const lc_model *b = m->base;
    const int L = m->n_layer, D = m->D;
    r->tokens = tokens, r->targets = targets, r->n_seq = n_seq;
    const int R = r->rows = n_seq * r->T;
    ft_prog p = {.r = r};
    ft_op *o;
    static const int qkv[3] = {FT_Q, FT_K, FT_V}, wo[1] = {FT_O}, gu[2] = {FT_GATE, FT_UP}, down[1] = {FT_DOWN};

    ew(&p, OP_EMBED, 0);
    prog_run(&p, TR_TIME_OTHER);
    for (int l = 0; l < L; l++) {
        const lc_layer *B = &b->layers[l];
        o = ew(&p, OP_RMS_FWD, l), o->C = r->xn1[l], o->b = r->rs1[l], o->x = r->xs[l], o->wv = B->attn_norm;
        prog_run(&p, TR_TIME_OTHER);
        lin_fwd(&p, l, qkv, 3, r->xn1[l], (float *const[]){r->q[l], r->k[l], r->v[l]}, false);
        prog_run(&p, TR_TIME_MATMUL);
        o = ew(&p, OP_ROPE, l), o->C = r->q[l], o->b = r->k[l];
        op_add(&p, OP_BARRIER);
        ew(&p, OP_ATTN_FWD, l);
        o = ew(&p, OP_COPY, l), o->C = r->xm[l], o->x = r->xs[l];
        prog_run(&p, TR_TIME_ATTENTION);
        lin_fwd(&p, l, wo, 1, r->att[l], (float *const[]){r->xm[l]}, true);
        prog_run(&p, TR_TIME_MATMUL);
        o = ew(&p, OP_RMS_FWD, l), o->C = r->xn2[l], o->b = r->rs2[l], o->x = r->xm[l], o->wv = B->ffn_norm;
        prog_run(&p, TR_TIME_OTHER);
        lin_fwd(&p, l, gu, 2, r->xn2[l], (float *const[]){r->g[l], r->u[l]}, false);
        prog_run(&p, TR_TIME_MATMUL);
        ew(&p, OP_SWIGLU_FWD, l);
        o = ew(&p, OP_COPY, l), o->C = r->xs[l + 1], o->x = r->xm[l];
        prog_run(&p, TR_TIME_OTHER);
        lin_fwd(&p, l, down, 1, r->h[l], (float *const[]){r->xs[l + 1]}, true);
        prog_run(&p, TR_TIME_MATMUL);
    }
    o = ew(&p, OP_RMS_FWD, 0), o->C = r->xnf, o->b = r->rsf, o->x = r->xs[L], o->wv = b->output_norm;
    prog_run(&p, TR_TIME_OTHER);
    o = op_add(&p, OP_FZ_FWD), o->w = &b->output, o->A = r->xnf, o->C = r->logits, o->M = R;
    prog_run(&p, TR_TIME_MATMUL);
    o = ew(&p, OP_XENT, 0), o->flag = backward, o->s = grad_scale;
    prog_run(&p, TR_TIME_OTHER);
    double loss = 0.0;
    for (int i = 0; i < R; i++) loss += r->row_loss[i];
    if (!backward) return loss;

    /* output head: logits now hold d(loss)/d(logits) * grad_scale */
    o = op_add(&p, OP_FZ_BWD), o->w = &b->output, o->A = r->logits, o->C = r->dxn, o->M = R;
    prog_run(&p, TR_TIME_MATMUL);
    memset(r->dx, 0, (size_t)R * D * sizeof(float));
    o = ew(&p, OP_RMS_BWD, 0), o->x = r->xs[L], o->rs = r->rsf, o->wv = b->output_norm;
    prog_run(&p, TR_TIME_OTHER);
    for (int l = L - 1; l >= 0; l--) {
        const lc_layer *B = &b->layers[l];
        lin_bwd(&p, l, down, 1, (const float *const[]){r->dx}, r->h[l], r->dh);
        prog_run(&p, TR_TIME_MATMUL);
        ew(&p, OP_SWIGLU_BWD, l);
        prog_run(&p, TR_TIME_OTHER);
        lin_bwd(&p, l, gu, 2, (const float *const[]){r->dg, r->du}, r->xn2[l], r->dxn);
        prog_run(&p, TR_TIME_MATMUL);
        o = ew(&p, OP_RMS_BWD, l), o->x = r->xm[l], o->rs = r->rs2[l], o->wv = B->ffn_norm;
        prog_run(&p, TR_TIME_OTHER);
        lin_bwd(&p, l, wo, 1, (const float *const[]){r->dx}, r->att[l], r->datt);
        prog_run(&p, TR_TIME_MATMUL);
        ew(&p, OP_ATTN_BWD, l);
        op_add(&p, OP_BARRIER);
        o = ew(&p, OP_ROPE, l), o->C = r->dq, o->b = r->dk, o->flag = true;
        prog_run(&p, TR_TIME_ATTENTION);
        lin_bwd(&p, l, qkv, 3, (const float *const[]){r->dq, r->dk, r->dv}, r->xn1[l], r->dxn);
        prog_run(&p, TR_TIME_MATMUL);
        o = ew(&p, OP_RMS_BWD, l), o->x = r->xs[l], o->rs = r->rs1[l], o->wv = B->attn_norm;
        prog_run(&p, TR_TIME_OTHER);
    }
    return loss;
}
