/* context.c - a context: the KV cache (cells holding (sequence, position)), scratch buffers sized once for n_batch
** tokens, the thread pool, and lc_decode, which validates a batch, assigns cache cells and runs the forward pass.
**
** Invariant: a cell holds at most one (seq, pos); a (seq, pos) pair is in at most one cell. A new token takes the
** lowest free cell above every cell of its sequence (the lowest free cell anywhere only when there is none), so a
** sequence appended in order occupies cells in position order whatever the other sequences do, and attention sums
** over its cells in the same order as for that sequence alone: batched decoding gives each sequence bit-identical
** results (the server's concurrent streams equal sequential runs).
*/
#include "model.h"

#include "../kernels/kernels.h"

#include <stdio.h>

lc_context_params lc_context_default_params(void) {
    lc_context_params p;
    memset(&p, 0, sizeof p);
    p.kv_type = LC_TYPE_F16;
    return p;
}

void lc_context_free(lc_context *c) {
    if (!c) return;
    lc_pool_free(c->pool);
    if (c->k_cache)
        for (uint32_t l = 0; l < c->model->hp.n_layer; l++) lc__aligned_free(c->k_cache[l]);
    if (c->v_cache)
        for (uint32_t l = 0; l < c->model->hp.n_layer; l++) lc__aligned_free(c->v_cache[l]);
    lc__free(c->k_cache);
    lc__free(c->v_cache);
    lc__free(c->cells);
    lc__free(c->seq_hi);
    float *bufs[] = {c->x, c->xb, c->xb2, c->q, c->k, c->v, c->att_out, c->hb, c->hb2, c->att, c->rope_cs, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) lc__aligned_free(bufs[i]);
    lc__aligned_free(c->xq);
    lc__aligned_free(c->lora_t);
    lc__aligned_free(c->lora_u);
    lc__aligned_free(c->qconv);
    lc__free(c->cell_of);
    lc__free(c->out_rows);
    lc__free(c->out_idx);
    lc__free(c->b_pos);
    lc__free(c->b_seq);
    lc__free(c);
}

static float *falloc(size_t n, bool *ok) {
    float *p = lc__aligned_alloc(n * sizeof(float));
    if (!p) *ok = false;
    return p;
}

int lc_context_new(lc_model *m, const lc_context_params *params, lc_context **out) {
    lc__base_init();
    *out = NULL;
    lc_context_params p = params ? *params : lc_context_default_params();
    const lc_hparams *hp = &m->hp;
    if (!m->layers) return LC_ERR(LC_E_INVALID, "this model was loaded with metadata_only; it cannot run");
    if (p.n_ctx == 0) p.n_ctx = LC_MIN(hp->n_ctx_train, 4096u);
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_seq_max == 0) p.n_seq_max = 1;
    if (p.kv_type != LC_TYPE_F16 && p.kv_type != LC_TYPE_F32)
        return LC_ERR(LC_E_INVALID, "KV cache type %d is not supported (F16 or F32)", p.kv_type);
    if (p.n_ctx > (1u << 24) || p.n_seq_max > 4096)
        return LC_ERR(LC_E_INVALID, "context of %u cells or %u sequences is beyond the limits (2^24, 4096)", p.n_ctx,
                      p.n_seq_max);
    if (p.n_ctx > hp->n_ctx_train)
        LC_WARN("context of %u tokens is larger than the %u the model was trained with; quality may suffer", p.n_ctx,
                hp->n_ctx_train);
    if (p.n_threads <= 0) p.n_threads = lc_n_cores();

    lc_context *c = lc__calloc(1, sizeof *c);
    if (!c) return LC_ERR(LC_E_NOMEM, "out of memory creating a context");
    c->model = m;
    c->p = p;
    int r = lc_pool_new(p.n_threads, &c->pool);
    if (r) {
        lc__free(c);
        return r;
    }
    const size_t n_ctx = p.n_ctx, nb = p.n_batch, n_embd = hp->n_embd, n_q = (size_t)hp->n_head * hp->head_dim,
                 n_kv = (size_t)hp->n_head_kv * hp->head_dim, n_ff = hp->n_ff;
    bool ok = true;
    c->kv_elt = p.kv_type == LC_TYPE_F16 ? 2 : 4;
    c->k_cache = lc__calloc(hp->n_layer, sizeof(void *));
    c->v_cache = lc__calloc(hp->n_layer, sizeof(void *));
    ok = c->k_cache && c->v_cache;
    for (uint32_t l = 0; ok && l < hp->n_layer; l++) {
        c->k_cache[l] = lc__aligned_alloc(n_ctx * n_kv * c->kv_elt);
        c->v_cache[l] = lc__aligned_alloc(n_ctx * n_kv * c->kv_elt);
        ok = c->k_cache[l] && c->v_cache[l];
    }
    c->seq_hi = lc__malloc(p.n_seq_max * sizeof *c->seq_hi);
    if (!c->seq_hi) ok = false;
    c->cells = lc__malloc(n_ctx * sizeof *c->cells);
    if (c->cells)
        for (size_t i = 0; i < n_ctx; i++) c->cells[i] = (lc_kv_cell){-1, -1};
    else ok = false;
    c->x = falloc(nb * n_embd, &ok);
    c->xb = falloc(nb * n_embd, &ok);
    c->xb2 = falloc(nb * n_embd, &ok);
    c->q = falloc(nb * n_q, &ok);
    c->k = falloc(nb * n_kv, &ok);
    c->v = falloc(nb * n_kv, &ok);
    c->att_out = falloc(nb * n_q, &ok);
    c->hb = falloc(nb * n_ff, &ok);
    c->hb2 = falloc(nb * n_ff, &ok);
    const size_t group = hp->n_head / hp->n_head_kv; /* attention scores of a KV head's query heads, per thread */
    c->att = falloc((size_t)p.n_threads * group * (n_ctx + 16), &ok);
    c->rope_cs = falloc(nb * hp->n_rot, &ok);
    c->qconv = lc__aligned_alloc((size_t)p.n_threads * (group * hp->head_dim * 4 + 64));
    c->cell_of = lc__malloc(nb * sizeof(int32_t));
    c->out_rows = lc__malloc(nb * sizeof(int32_t));
    c->out_idx = lc__malloc(nb * sizeof(int32_t));
    c->b_pos = lc__malloc(nb * sizeof(int32_t));
    c->b_seq = lc__malloc(nb * sizeof(int32_t));
    ok = ok && c->qconv && c->cell_of && c->out_rows && c->out_idx && c->b_pos && c->b_seq;
    /* conversion buffer: the largest input of any matmul, for the largest weight type in use */
    size_t xq = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const lc_layer *L = &m->layers[l];
        const lc_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++)
            xq = LC_MAX(xq, lc_matmul_xq_bytes(mats[i]->type, (int)mats[i]->ne[0], (int)nb));
    }
    xq = LC_MAX(xq, lc_matmul_xq_bytes(m->output.type, (int)n_embd, (int)nb));
    c->xq_bytes = xq;
    c->xq = lc__aligned_alloc(xq);
    c->cap_out = (int32_t)LC_MIN(nb, LC_MAX(p.n_seq_max, 1u));
    c->logits = lc__aligned_alloc((size_t)c->cap_out * hp->n_vocab * sizeof(float));
    c->kv_bytes = 2ull * hp->n_layer * n_ctx * n_kv * c->kv_elt;
    c->scratch_bytes = sizeof(float) * (nb * (3 * n_embd + 2 * n_q + 2 * n_kv + 2 * n_ff + hp->n_rot) +
                                         (size_t)p.n_threads * group * (n_ctx + 16) +
                                         (size_t)c->cap_out * hp->n_vocab) +
                       (size_t)p.n_threads * (group * hp->head_dim * 4 + 64) + xq + nb * 5 * sizeof(int32_t) +
                       n_ctx * sizeof *c->cells;
    if (!ok || !c->xq || !c->logits) {
        lc_context_free(c);
        return LC_ERR(LC_E_NOMEM, "out of memory creating a context of %u tokens (n_batch %u)", p.n_ctx, p.n_batch);
    }
    *out = c;
    return LC_OK;
}

uint32_t lc_context_n_ctx(const lc_context *c) { return c->p.n_ctx; }

int32_t lc_kv_seq_len(const lc_context *c, int32_t seq) {
    int32_t n = 0;
    for (uint32_t i = 0; i < c->n_used_hi; i++)
        if (c->cells[i].seq == seq && c->cells[i].pos + 1 > n) n = c->cells[i].pos + 1;
    return n;
}

int32_t lc_kv_copy(lc_context *c, int32_t src, int32_t dst, int32_t p0, int32_t p1) {
    const uint32_t n_seq = c->p.n_seq_max;
    if (src < 0 || dst < 0 || (uint32_t)src >= n_seq || (uint32_t)dst >= n_seq || src == dst)
        return LC_ERR(LC_E_INVALID, "lc_kv_copy: sequences %d -> %d: each must be in [0, %u) and differ", src, dst,
                      n_seq);
    if (p1 < 0) p1 = INT32_MAX;
    if (p0 < 0 || p0 > p1) return LC_ERR(LC_E_INVALID, "lc_kv_copy: positions [%d, %d) are not a range", p0, p1);
    uint32_t n = 0, dst_hi = 0; /* cells to copy; one past dst's highest cell */
    for (uint32_t i = 0; i < c->n_used_hi; i++) {
        const lc_kv_cell cl = c->cells[i];
        if (cl.seq == dst) {
            if (cl.pos >= p0 && cl.pos < p1)
                return LC_ERR(LC_E_INVALID, "lc_kv_copy: sequence %d already holds position %d of [%d, %d)", dst,
                              cl.pos, p0, p1);
            dst_hi = i + 1;
        }
        n += cl.seq == src && cl.pos >= p0 && cl.pos < p1;
    }
    /* free cells above dst's own (as lc_decode places them) keep dst's cells in position order; else the lowest */
    uint32_t n_free = 0, start = dst_hi;
    for (uint32_t k = dst_hi; k < c->p.n_ctx && n_free < n; k++) n_free += c->cells[k].seq < 0;
    if (n_free < n) {
        start = 0, n_free = 0;
        for (uint32_t k = 0; k < c->p.n_ctx && n_free < n; k++) n_free += c->cells[k].seq < 0;
    }
    if (n_free < n)
        return LC_ERR(LC_E_RANGE, "lc_kv_copy: %u positions need as many free cells; the cache has %u", n, n_free);
    const uint32_t n_used = c->n_used_hi, n_kv = c->model->hp.n_head_kv * c->model->hp.head_dim;
    const size_t row = (size_t)n_kv * c->kv_elt;
    uint32_t k = start;
    for (uint32_t i = 0; i < n_used; i++) {
        const lc_kv_cell cl = c->cells[i];
        if (cl.seq != src || cl.pos < p0 || cl.pos >= p1) continue;
        while (c->cells[k].seq >= 0) k++;
        for (uint32_t l = 0; l < c->model->hp.n_layer; l++) {
            memcpy((uint8_t *)c->k_cache[l] + k * row, (const uint8_t *)c->k_cache[l] + i * row, row);
            memcpy((uint8_t *)c->v_cache[l] + k * row, (const uint8_t *)c->v_cache[l] + i * row, row);
        }
        c->cells[k] = (lc_kv_cell){cl.pos, dst};
        if (k + 1 > c->n_used_hi) c->n_used_hi = k + 1;
    }
    return (int32_t)n;
}

void lc_kv_remove(lc_context *c, int32_t seq, int32_t p0, int32_t p1) {
    if (p1 < 0) p1 = INT32_MAX;
    for (uint32_t i = 0; i < c->n_used_hi; i++) {
        lc_kv_cell *cl = &c->cells[i];
        if (cl->seq < 0 || (seq >= 0 && cl->seq != seq)) continue;
        if (cl->pos >= p0 && cl->pos < p1) *cl = (lc_kv_cell){-1, -1};
    }
    while (c->n_used_hi > 0 && c->cells[c->n_used_hi - 1].seq < 0) c->n_used_hi--;
}

int lc_decode(lc_context *c, const lc_batch *b) {
    const lc_hparams *hp = &c->model->hp;
    c->n_batch_last = 0; /* no logits readable after a failed call */
    if (!b || b->n_tokens <= 0 || !b->token) return LC_ERR(LC_E_INVALID, "lc_decode: empty batch");
    if ((uint32_t)b->n_tokens > c->p.n_batch)
        return LC_ERR(LC_E_RANGE, "lc_decode: batch of %d tokens exceeds n_batch %u; split it or raise n_batch",
                      b->n_tokens, c->p.n_batch);
    const int32_t n = b->n_tokens;
    /* validate tokens and sequence ids, and resolve positions */
    for (int32_t i = 0; i < n; i++) {
        if (b->token[i] < 0 || (uint32_t)b->token[i] >= hp->n_vocab)
            return LC_ERR(LC_E_INVALID, "lc_decode: token %d at batch row %d is outside the vocabulary [0, %u)",
                          b->token[i], i, hp->n_vocab);
        int32_t s = b->seq_id ? b->seq_id[i] : 0;
        if (s < 0 || (uint32_t)s >= c->p.n_seq_max)
            return LC_ERR(LC_E_INVALID, "lc_decode: sequence id %d at batch row %d is outside [0, %u) (n_seq_max)", s, i,
                          c->p.n_seq_max);
        c->b_seq[i] = s;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t pos;
        if (b->pos) {
            pos = b->pos[i];
        } else { /* continue the sequence: after its cached cells and the earlier rows of this batch */
            pos = lc_kv_seq_len(c, c->b_seq[i]);
            for (int32_t j = 0; j < i; j++)
                if (c->b_seq[j] == c->b_seq[i] && c->b_pos[j] + 1 > pos) pos = c->b_pos[j] + 1;
        }
        if (pos < 0 || pos > (1 << 28))
            return LC_ERR(LC_E_INVALID, "lc_decode: position %d at batch row %d is out of range", pos, i);
        for (int32_t j = 0; j < i; j++)
            if (c->b_seq[j] == c->b_seq[i] && c->b_pos[j] == pos)
                return LC_ERR(LC_E_INVALID, "lc_decode: batch rows %d and %d both hold position %d of sequence %d", j, i,
                              pos, c->b_seq[i]);
        c->b_pos[i] = pos;
    }
    for (uint32_t k = 0; k < c->n_used_hi; k++) {
        const lc_kv_cell *cl = &c->cells[k];
        if (cl->seq < 0) continue;
        for (int32_t i = 0; i < n; i++)
            if (cl->seq == c->b_seq[i] && cl->pos == c->b_pos[i])
                return LC_ERR(LC_E_INVALID,
                              "lc_decode: position %d of sequence %d is already in the KV cache; remove it first "
                              "(lc_kv_remove)",
                              c->b_pos[i], c->b_seq[i]);
    }
    /* outputs */
    int32_t n_out = 0;
    for (int32_t i = 0; i < n; i++) {
        bool want = b->logits ? b->logits[i] != 0 : i == n - 1;
        c->out_idx[i] = want ? n_out : -1;
        if (want) c->out_rows[n_out++] = i;
    }
    if (n_out > c->cap_out) { /* grows only when more rows are asked for than ever before */
        float *nl = lc__aligned_alloc((size_t)n_out * hp->n_vocab * sizeof(float));
        if (!nl) return LC_ERR(LC_E_NOMEM, "lc_decode: out of memory for %d rows of logits", n_out);
        lc__aligned_free(c->logits);
        c->logits = nl;
        c->scratch_bytes += (uint64_t)(n_out - c->cap_out) * hp->n_vocab * sizeof(float);
        c->cap_out = n_out;
    }
    /* cells: the lowest free one above the sequence's cells, else the lowest free one; taken cells are undone if the
    ** cache turns out full, so a failed call changes nothing */
    for (uint32_t s = 0; s < c->p.n_seq_max; s++) c->seq_hi[s] = -1;
    for (uint32_t k = 0; k < c->n_used_hi; k++)
        if (c->cells[k].seq >= 0 && (int32_t)k > c->seq_hi[c->cells[k].seq]) c->seq_hi[c->cells[k].seq] = (int32_t)k;
    for (int32_t i = 0; i < n; i++) {
        const int32_t s = c->b_seq[i];
        uint32_t k = (uint32_t)(c->seq_hi[s] + 1);
        while (k < c->p.n_ctx && c->cells[k].seq >= 0) k++;
        if (k >= c->p.n_ctx) /* no room above: the lowest free cell (this sequence's order is lost from here) */
            for (k = 0; k < c->p.n_ctx && c->cells[k].seq >= 0; k++) {}
        if (k >= c->p.n_ctx) {
            for (int32_t j = 0; j < i; j++) c->cells[c->cell_of[j]] = (lc_kv_cell){-1, -1};
            c->n_out = 0;
            return LC_ERR(LC_E_RANGE, "lc_decode: the KV cache is full (%u cells); raise the context size (-c) or "
                          "remove old positions", c->p.n_ctx);
        }
        c->cell_of[i] = (int32_t)k;
        c->cells[k] = (lc_kv_cell){c->b_pos[i], s};
        if ((int32_t)k > c->seq_hi[s]) c->seq_hi[s] = (int32_t)k;
    }
    for (int32_t i = 0; i < n; i++)
        if ((uint32_t)c->cell_of[i] + 1 > c->n_used_hi) c->n_used_hi = (uint32_t)c->cell_of[i] + 1;
    c->b_token = b->token;
    c->b_n = n;
    c->n_out = n_out;
    c->n_batch_last = n;
    lc__forward(c);
    c->b_token = NULL;
    return LC_OK;
}

const float *lc_get_logits(const lc_context *c, int32_t i) {
    if (i < 0 || i >= c->n_batch_last || c->out_idx[i] < 0) return NULL;
    return c->logits + (size_t)c->out_idx[i] * c->model->hp.n_vocab;
}

void lc_context_memory(const lc_context *c, uint64_t *kv_bytes, uint64_t *scratch_bytes) {
    if (kv_bytes) *kv_bytes = c->kv_bytes;
    if (scratch_bytes) *scratch_bytes = c->scratch_bytes;
}
