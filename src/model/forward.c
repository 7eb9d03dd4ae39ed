/* forward.c - the Llama forward pass over a batch of tokens (any mix of sequences), in plain C over the kernels.
**
** One thread-pool job per lc_decode; the threads meet at a barrier between steps. Per layer:
**   xb = rmsnorm(x) * attn_norm;  q,k,v = xb @ Wq,Wk,Wv;  rope(q, k);  k,v -> cache
**   att = softmax(q.K^T * 1/sqrt(head_dim) + causal/sequence mask) . V;  x += att @ Wo
**   xb = rmsnorm(x) * ffn_norm;  x += (silu(xb @ Wgate) * (xb @ Wup)) @ Wdown
** then rmsnorm(x) * output_norm @ Woutput for the rows whose logits were asked for (the last layer's FFN runs on
** those rows only, as llama.cpp does). Rounding follows llama.cpp's CPU backend so logits agree with it: RMSNorm
** sums squares in double; RoPE angles are built by repeated float multiplication (ggml_rope_cache_init); with an
** F16 KV cache, K/V are stored as F16, the query is rounded to F16 for Q.K and the softmax weights are rounded to
** F16 before weighting V.
*/
#include "model.h"

#include "../kernels/kernels.h"

#include <math.h>

typedef struct fwd_state {
    lc_context *c;
    const lc_kernels *kern;
} fwd_state;

/* Rows [*r0, *r1) of n for thread ith of nth. */
static inline void split(int n, int ith, int nth, int *r0, int *r1) {
    *r0 = (int)((int64_t)n * ith / nth);
    *r1 = (int)((int64_t)n * (ith + 1) / nth);
}

/* y = x / sqrt(mean(x^2) + eps) * w, with ggml's rounding: squares summed in double, scale in float. */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/* cos/sin pairs for position pos: cs[2i] = cos(theta_i), cs[2i+1] = sin(theta_i), theta_i = pos * base^(-2i/n_rot)
** / freq_factor_i * freq_scale, with the angle accumulated in float as ggml does. */
void lc__rope_cache(float *cs, int32_t pos, int n_rot, float base, float freq_scale, const float *ff) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        const float t = freq_scale * (ff ? theta / ff[i] : theta);
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

/* Rotates adjacent pairs (x[2i], x[2i+1]) of each of n_heads heads (GGML's "normal" RoPE, used for llama). */
static void rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < n_rot; i += 2) {
            const float c = cs[i], s = cs[i + 1], x0 = v[i], x1 = v[i + 1];
            v[i] = x0 * c - x1 * s;
            v[i + 1] = x0 * s + x1 * c;
        }
    }
}

/* What the conversion buffer xq holds: the input of the current group of matmuls (Q/K/V, or gate/up) in vec-dot
** type vdt (-1: nothing valid; reset at the start of each group, after the barrier that follows its input's
** writer). Also each thread's place in the forward's sequence of matmul row chunks (see matmul). */
typedef struct prep_key {
    int vdt;
    uint64_t base; /* tickets below it belong to the matmuls already done */
    uint64_t held; /* a ticket taken for a later matmul (NO_TICKET: none) */
} prep_key;
#define NO_TICKET UINT64_MAX

static const void *matmul_input(lc_context *c, prep_key *pk, const lc_weight *w, const float *X, int n_tok, int ith,
                                int nth) {
    const int n_in = (int)w->ne[0];
    const int vdt = lc_vec_dot_type(w->type);
    if (vdt == LC_TYPE_F32) return X; /* rows are contiguous (ldx == n_in) everywhere below */
    if (pk->vdt != vdt) {
        if (pk->vdt != -1) lc_pool_barrier(c->pool); /* others may still read xq for the previous type */
        lc_matmul_prepare(w->type, X, n_in, n_in, n_tok, c->xq, ith, nth);
        lc_pool_barrier(c->pool);
        pk->vdt = vdt;
    }
    return c->xq;
}

/* Y[n_tok][w->ne[1]] = X[n_tok][w->ne[0]] @ W^T. The caller puts a barrier before reading Y.
** The rows are dealt out in chunks (about 512 KiB of weights) to whichever thread asks next, so a thread slowed by
** anything else on its core does not hold the others at the next barrier. (Decode had 128 KiB chunks until each
** chunk's cold start showed: 512 KiB was faster in alternated tg32 runs, Q4_0 +6% and Q8_0 +10%, medians, Zen 3.) Every
** thread runs the same sequence of matmuls, so each can number the chunks of the whole forward alike: matmul k owns
** tickets [base_k, base_k + n_chunks_k) of one counter that only grows (no reset, hence no barrier between the
** matmuls of a group). A thread that draws a ticket of a later matmul keeps it and works it off there, after
** whatever barrier comes first. Results do not depend on who computes a row (the kernels' batch invariance). */
static void matmul(lc_context *c, prep_key *pk, const lc_weight *w, const float *X, float *Y, int n_tok, int ith,
                   int nth) {
    const void *xq = matmul_input(c, pk, w, X, n_tok, ith, nth);
    const int n_out = (int)w->ne[1], n_in = (int)w->ne[0];
    if (nth == 1) {
        (w->r8 ? lc_matmul_r8 : lc_matmul)(w->type, w->data, w->row_bytes, n_out, n_in, xq, n_tok, Y, n_out, 0, 1);
        return;
    }
    const uint64_t bytes = (uint64_t)w->row_bytes * (uint64_t)n_out;
    const uint64_t want = bytes / (512u << 10);
    const int align = w->r8 ? LC_MAX(16, lc__r8_rows(w->type)) : 16; /* lc_matmul's row groups */
    const int n_groups = (n_out + align - 1) / align;
    const int n_chunks = (int)LC_MIN((uint64_t)n_groups, LC_MAX(want, (uint64_t)nth));
    const uint64_t base = pk->base;
    pk->base += (uint64_t)n_chunks;
    for (;;) {
        uint64_t t = pk->held;
        if (t == NO_TICKET) t = atomic_fetch_add_explicit(&c->mm_ticket, 1, memory_order_relaxed);
        pk->held = NO_TICKET;
        if (t >= pk->base) { /* a later matmul's */
            pk->held = t;
            return;
        }
        (w->r8 ? lc_matmul_r8 : lc_matmul)(w->type, w->data, w->row_bytes, n_out, n_in, xq, n_tok, Y, n_out,
                                           (int)(t - base), n_chunks);
    }
}

static void embed_rows(lc_context *c, int ith, int nth) {
    const lc_model *m = c->model;
    const lc_hparams *hp = &m->hp;
    int r0, r1;
    split(c->b_n, ith, nth, &r0, &r1);
    for (int i = r0; i < r1; i++) {
        lc__weight_row(&m->tok_embd, c->b_token[i], 0, hp->n_embd, c->x + (size_t)i * hp->n_embd);
        lc__rope_cache(c->rope_cs + (size_t)i * hp->n_rot, c->b_pos[i], (int)hp->n_rot, hp->rope_theta, m->rope_freq_scale,
                   m->rope_freqs);
    }
}

/* Attention for (batch row, KV head) pairs dealt round-robin to threads (with the causal mask a batch's later rows
** see more cells, so contiguous ranges would leave the first thread idle at the barrier); writes att_out.
** The KV head's `group` query heads are scored together: one GEMM of their queries against the cache's K rows
** (the kernels' contract makes each score bit-identical to vec_dot), then per head the masked softmax and the
** weighted sum of V rows, cell by cell in order. */
static void attention(fwd_state *st, int il, int ith, int nth) {
    lc_context *c = st->c;
    const lc_hparams *hp = &c->model->hp;
    const int hd = (int)hp->head_dim, n_head_kv = (int)hp->n_head_kv, group = (int)(hp->n_head / hp->n_head_kv);
    const size_t n_q = (size_t)hp->n_head * hd, n_kv = (size_t)hp->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const bool f16 = c->p.kv_type == LC_TYPE_F16;
    const int kt = f16 ? LC_TYPE_F16 : LC_TYPE_F32;
    const lc_vec_dot_fn dot = st->kern->vec_dot[kt];
    const lc_gemm_fn gemm = st->kern->gemm[kt];
    const lc_vec_mad_fn mad = st->kern->vec_mad[kt]; /* out += w * V row */
    const lc_from_float_fn to_f16 = st->kern->from_float[LC_TYPE_F16];
    const uint8_t *K = c->k_cache[il], *V = c->v_cache[il];
    const size_t ld = (size_t)c->p.n_ctx + 16; /* one head's scores */
    float *att = c->att + (size_t)ith * group * ld;
    lc_fp16 *qh = (lc_fp16 *)((uint8_t *)c->qconv + (size_t)ith * (group * hd * 4 + 64));
    const size_t krow = n_kv * c->kv_elt; /* bytes from cell to cell */
    const uint32_t n_cells = c->n_used_hi;
    for (int pi = ith; pi < c->b_n * n_head_kv; pi += nth) {
        const int i = pi / n_head_kv, kvh = pi % n_head_kv;
        const int32_t seq = c->b_seq[i], pos = c->b_pos[i];
        const float *q = c->q + (size_t)i * n_q + (size_t)kvh * group * hd; /* the group's heads, contiguous */
        const void *qv = q;
        if (f16) {
            to_f16(q, qh, group * hd);
            qv = qh;
        }
        uint32_t hi = 0, n_vis = 0; /* cells [hi, n_cells) are all masked; n_vis cells are visible */
        for (uint32_t j = 0; j < n_cells; j++)
            if (c->cells[j].seq == seq && c->cells[j].pos <= pos) hi = j + 1, n_vis++;
        const uint8_t *Kh = K + (size_t)kvh * hd * c->kv_elt, *Vh = V + (size_t)kvh * hd * c->kv_elt;
        if (gemm && n_vis > hi / 2) /* mostly visible (one sequence): score every cell below hi at once */
            gemm(hd, (int)hi, group, Kh, krow, qv, (size_t)hd * c->kv_elt, att, ld);
        else /* sequences interleaved in the cache: only the visible cells */
            for (uint32_t j = 0; j < hi; j++)
                if (c->cells[j].seq == seq && c->cells[j].pos <= pos)
                    for (int g = 0; g < group; g++)
                        dot(hd, att + g * ld + j, Kh + j * krow, (const uint8_t *)qv + (size_t)g * hd * c->kv_elt);
        for (int g = 0; g < group; g++) {
            float *a = att + g * ld;
            float mx = -INFINITY;
            for (uint32_t j = 0; j < hi; j++) {
                const lc_kv_cell *cl = &c->cells[j];
                if (cl->seq != seq || cl->pos > pos) {
                    a[j] = -INFINITY;
                    continue;
                }
                const float s = a[j] * scale;
                a[j] = s;
                if (s > mx) mx = s;
            }
            double sum = 0.0;
            for (uint32_t j = 0; j < hi; j++) {
                if (a[j] == -INFINITY) {
                    a[j] = 0.0f;
                    continue;
                }
                const float e = expf(a[j] - mx);
                a[j] = e;
                sum += (double)e;
            }
            const float inv = (float)(1.0 / sum);
            float *out = c->att_out + (size_t)i * n_q + (size_t)(kvh * group + g) * hd;
            for (int d = 0; d < hd; d++) out[d] = 0.0f;
            /* the weights a[j] * inv, rounded to fp16 for an F16 cache (as llama.cpp converts them for its f16
            ** dot); a cell whose exponential is 0 adds nothing */
            enum { WCHUNK = 256 };
            float wf[WCHUNK];
            lc_fp16 wh[WCHUNK];
            for (uint32_t j0 = 0; j0 < hi; j0 += WCHUNK) {
                const int nj = (int)LC_MIN((uint32_t)WCHUNK, hi - j0);
                for (int k = 0; k < nj; k++) wf[k] = a[j0 + k] * inv;
                if (f16) {
                    to_f16(wf, wh, nj);
                    for (int k = 0; k < nj; k++) wf[k] = lc_fp16_lut(wh[k]);
                }
                for (int k = 0; k < nj; k++) {
                    const uint32_t j = j0 + (uint32_t)k;
                    if (a[j] == 0.0f) continue;
                    mad(hd, out, Vh + j * krow, wf[k]);
                }
            }
        }
    }
}

static void forward_worker(void *arg, int ith, int nth) {
    fwd_state *st = arg;
    lc_context *c = st->c;
    const lc_model *m = c->model;
    const lc_hparams *hp = &m->hp;
    const int n_embd = (int)hp->n_embd, n_ff = (int)hp->n_ff, hd = (int)hp->head_dim;
    const int n_q = (int)hp->n_head * hd, n_kv = (int)hp->n_head_kv * hd;
    prep_key pk = {-1, 0, NO_TICKET};
    int n = c->b_n; /* rows still computed (shrinks to the output rows in the last layer) */
    int r0 = 0, r1 = 0;

    embed_rows(c, ith, nth);
    lc_pool_barrier(c->pool);

    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const lc_layer *L = &m->layers[il];
        const bool last = il + 1 == hp->n_layer;
        /* attention block */
        split(n, ith, nth, &r0, &r1);
        for (int i = r0; i < r1; i++)
            rmsnorm(c->xb + (size_t)i * n_embd, c->x + (size_t)i * n_embd, L->attn_norm, n_embd, hp->rms_eps);
        lc_pool_barrier(c->pool);
        pk.vdt = -1;
        matmul(c, &pk, &L->wq, c->xb, c->q, n, ith, nth);
        matmul(c, &pk, &L->wk, c->xb, c->k, n, ith, nth);
        matmul(c, &pk, &L->wv, c->xb, c->v, n, ith, nth);
        if (c->n_lora) {
            lc__lora_apply(c, (int)il, LC_LORA_Q, c->xb, c->q, n, ith, nth);
            lc__lora_apply(c, (int)il, LC_LORA_K, c->xb, c->k, n, ith, nth);
            lc__lora_apply(c, (int)il, LC_LORA_V, c->xb, c->v, n, ith, nth);
        }
        lc_pool_barrier(c->pool);
        for (int i = r0; i < r1; i++) {
            const float *cs = c->rope_cs + (size_t)i * hp->n_rot;
            float *q = c->q + (size_t)i * n_q, *k = c->k + (size_t)i * n_kv, *v = c->v + (size_t)i * n_kv;
            rope_apply(q, (int)hp->n_head, hd, (int)hp->n_rot, cs);
            rope_apply(k, (int)hp->n_head_kv, hd, (int)hp->n_rot, cs);
            const size_t cell = (size_t)c->cell_of[i];
            if (c->p.kv_type == LC_TYPE_F16) {
                lc_fp16 *kd = (lc_fp16 *)c->k_cache[il] + cell * n_kv, *vd = (lc_fp16 *)c->v_cache[il] + cell * n_kv;
                st->kern->from_float[LC_TYPE_F16](k, kd, n_kv); /* round to nearest even in every variant */
                st->kern->from_float[LC_TYPE_F16](v, vd, n_kv);
            } else {
                memcpy((float *)c->k_cache[il] + cell * n_kv, k, (size_t)n_kv * sizeof(float));
                memcpy((float *)c->v_cache[il] + cell * n_kv, v, (size_t)n_kv * sizeof(float));
            }
        }
        lc_pool_barrier(c->pool);
        attention(st, (int)il, ith, nth);
        lc_pool_barrier(c->pool);
        pk.vdt = -1;
        matmul(c, &pk, &L->wo, c->att_out, c->xb2, n, ith, nth);
        if (c->n_lora) lc__lora_apply(c, (int)il, LC_LORA_O, c->att_out, c->xb2, n, ith, nth);
        lc_pool_barrier(c->pool);
        for (int i = r0; i < r1; i++) {
            float *x = c->x + (size_t)i * n_embd;
            const float *a = c->xb2 + (size_t)i * n_embd;
            for (int d = 0; d < n_embd; d++) x[d] += a[d];
        }
        lc_pool_barrier(c->pool);
        if (last) { /* keep only the rows whose logits were asked for (out_rows is increasing: in place is safe) */
            if (ith == 0)
                for (int k = 0; k < c->n_out; k++)
                    if (c->out_rows[k] != k)
                        memcpy(c->x + (size_t)k * n_embd, c->x + (size_t)c->out_rows[k] * n_embd,
                               (size_t)n_embd * sizeof(float));
            n = c->n_out;
            lc_pool_barrier(c->pool);
            if (n == 0) return;
            split(n, ith, nth, &r0, &r1);
        }
        /* feed-forward block */
        for (int i = r0; i < r1; i++)
            rmsnorm(c->xb + (size_t)i * n_embd, c->x + (size_t)i * n_embd, L->ffn_norm, n_embd, hp->rms_eps);
        lc_pool_barrier(c->pool);
        pk.vdt = -1;
        matmul(c, &pk, &L->w_gate, c->xb, c->hb, n, ith, nth);
        matmul(c, &pk, &L->w_up, c->xb, c->hb2, n, ith, nth);
        if (c->n_lora) {
            lc__lora_apply(c, (int)il, LC_LORA_GATE, c->xb, c->hb, n, ith, nth);
            lc__lora_apply(c, (int)il, LC_LORA_UP, c->xb, c->hb2, n, ith, nth);
        }
        lc_pool_barrier(c->pool);
        for (int i = r0; i < r1; i++) {
            float *g = c->hb + (size_t)i * n_ff;
            const float *u = c->hb2 + (size_t)i * n_ff;
            for (int d = 0; d < n_ff; d++) g[d] = g[d] / (1.0f + expf(-g[d])) * u[d];
        }
        lc_pool_barrier(c->pool);
        pk.vdt = -1;
        matmul(c, &pk, &L->w_down, c->hb, c->xb2, n, ith, nth);
        if (c->n_lora) lc__lora_apply(c, (int)il, LC_LORA_DOWN, c->hb, c->xb2, n, ith, nth);
        lc_pool_barrier(c->pool);
        for (int i = r0; i < r1; i++) {
            float *x = c->x + (size_t)i * n_embd;
            const float *a = c->xb2 + (size_t)i * n_embd;
            for (int d = 0; d < n_embd; d++) x[d] += a[d];
        }
        lc_pool_barrier(c->pool);
    }
    /* output head on the n_out rows */
    for (int i = r0; i < r1; i++)
        rmsnorm(c->xb + (size_t)i * n_embd, c->x + (size_t)i * n_embd, m->output_norm, n_embd, hp->rms_eps);
    lc_pool_barrier(c->pool);
    pk.vdt = -1;
    matmul(c, &pk, &m->output, c->xb, c->logits, n, ith, nth);
    if (c->n_lora) lc__lora_apply(c, -1, LC_LORA_OUTPUT, c->xb, c->logits, n, ith, nth);
}

void lc__forward(lc_context *c) {
    fwd_state st = {c, lc_kernels_get()};
    atomic_store_explicit(&c->mm_ticket, 0, memory_order_relaxed); /* the pool's start orders it before the workers */
    lc_pool_run(c->pool, forward_worker, &st);
}
