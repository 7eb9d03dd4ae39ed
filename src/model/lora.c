/* lora.c - LoRA adapters in llama.cpp's GGUF format, applied at inference.
**
** An adapter file has general.type = "adapter", adapter.type = "lora", general.architecture = "llama",
** adapter.lora.alpha, and for each adapted weight W (n_out x n_in) two tensors "<W's name>.lora_a" (r rows of n_in:
** GGUF ne = [n_in, r]) and "<W's name>.lora_b" (n_out rows of r: ne = [r, n_out]). With adapter scale s the
** projection becomes y = W x + s' * B (A x), s' = s * alpha / r (s when alpha is 0), as llama.cpp computes it.
** A and B are converted to F32 at load (adapters are small). Validation names the file and tensor.
*/
#include "model.h"

#include "../kernels/kernels.h"

#include <stdio.h>
#include <string.h>

/* Index of a model weight in the per-layer projection list (LC_LORA_*), from its GGUF name; -1 if none. */
static int proj_of(const char *name, size_t n, int *layer) {
    static const char *const names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    if (n == 13 && !memcmp(name, "output.weight", 13)) return *layer = -1, LC_LORA_OUTPUT;
    int l, off = 0;
    if (sscanf(name, "blk.%d.%n", &l, &off) != 1 || off <= 0 || l < 0) return -1;
    for (int k = 0; k < 7; k++) {
        const size_t kl = strlen(names[k]);
        if (n == (size_t)off + kl + 7 && !memcmp(name + off, names[k], kl) && !memcmp(name + off + kl, ".weight", 7)) {
            *layer = l;
            return k;
        }
    }
    return -1;
}

static const lc_weight *model_weight(const lc_model *m, int layer, int proj) {
    if (proj == LC_LORA_OUTPUT) return &m->output;
    const lc_layer *L = &m->layers[layer];
    const lc_weight *w[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return w[proj];
}

static int to_f32(const gguf_tensor *t, float **out) {
    const uint64_t n = t->ne[0] * t->ne[1];
    float *f = lc__malloc(sizeof *f * (n ? n : 1));
    if (!f) return LC_ERR(LC_E_NOMEM, "out of memory");
    if (t->type == LC_TYPE_F32) memcpy(f, t->data, sizeof *f * n);
    else
        for (uint64_t r = 0; r < t->ne[1]; r++) {
            uint64_t rb;
            lc_type_row_bytes((int)t->type, t->ne[0], &rb);
            lc_dequantize_row((int)t->type, (const uint8_t *)t->data + r * rb, f + r * t->ne[0], (int64_t)t->ne[0]);
        }
    *out = f;
    return 0;
}

void lc_lora_free(lc_lora *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) lc__free(a->w[i].a), lc__free(a->w[i].b);
    lc__free(a->w);
    lc__free(a);
}

int lc_lora_load(const lc_model *m, const char *path, lc_lora **out) {
    *out = NULL;
    gguf_file *f;
    int r = gguf_open(path, &f);
    if (r) return r;
    gguf_str s;
    if (gguf_get_str(f, "general.type", &s) != 1 || s.len != 7 || memcmp(s.ptr, "adapter", 7))
        r = LC_ERR(LC_E_FORMAT, "%s: not an adapter (general.type is not \"adapter\")", path);
    else if (gguf_get_str(f, "adapter.type", &s) != 1 || s.len != 4 || memcmp(s.ptr, "lora", 4))
        r = LC_ERR(LC_E_UNSUPPORTED, "%s: adapter.type is not \"lora\"", path);
    else if (gguf_get_str(f, "general.architecture", &s) != 1 || s.len != 5 || memcmp(s.ptr, "llama", 5))
        r = LC_ERR(LC_E_UNSUPPORTED, "%s: the adapter is not for the llama architecture", path);
    lc_lora *a = r ? NULL : lc__calloc(1, sizeof *a);
    if (!r && !a) r = LC_ERR(LC_E_NOMEM, "out of memory");
    if (!r) {
        float alpha = 0;
        if (gguf_get_f32(f, "adapter.lora.alpha", &alpha) < 0) r = LC_ERR(LC_E_FORMAT, "%s: adapter.lora.alpha is not a number", path);
        a->alpha = alpha;
        a->w = lc__calloc(f->n_tensors ? f->n_tensors : 1, sizeof *a->w);
        if (!a->w) r = LC_ERR(LC_E_NOMEM, "out of memory");
    }
    for (uint64_t i = 0; !r && i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const size_t nl = strlen(t->name);
        const bool is_a = nl > 7 && !strcmp(t->name + nl - 7, ".lora_a"), is_b = nl > 7 && !strcmp(t->name + nl - 7, ".lora_b");
        if (!is_a && !is_b) {
            if (nl > 12 && !strcmp(t->name + nl - 12, "_norm.weight")) continue; /* llama.cpp ignores these too */
            r = LC_ERR(LC_E_FORMAT, "%s: tensor '%s' is neither .lora_a nor .lora_b", path, t->name);
            break;
        }
        if (!is_a) continue; /* pairs are found from their A */
        int layer = -1;
        const int proj = proj_of(t->name, nl - 7, &layer);
        if (proj < 0 || (layer >= 0 && (uint32_t)layer >= m->hp.n_layer)) {
            r = LC_ERR(LC_E_UNSUPPORTED, "%s: '%s' adapts '%.*s', which llamac cannot adapt (attention and FFN projections "
                       "and output.weight can be)", path, t->name, (int)(nl - 7), t->name);
            break;
        }
        char bname[512];
        snprintf(bname, sizeof bname, "%.*s.lora_b", (int)(nl - 7), t->name);
        const gguf_tensor *tb = gguf_find_tensor(f, bname);
        if (!tb) {
            r = LC_ERR(LC_E_FORMAT, "%s: '%s' has no '%s'", path, t->name, bname);
            break;
        }
        const lc_weight *w = model_weight(m, layer, proj);
        const uint64_t rank = t->ne[1];
        if (t->n_dims != 2 || tb->n_dims != 2 || t->ne[0] != w->ne[0] || tb->ne[1] != w->ne[1] || tb->ne[0] != rank || !rank) {
            r = LC_ERR(LC_E_FORMAT, "%s: '%s' is [%llu, %llu] and '%s' [%llu, %llu]; the model's weight is [%llu, %llu] (n_in, "
                       "n_out): expected [n_in, r] and [r, n_out] (wrong base model?)", path, t->name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], bname, (unsigned long long)tb->ne[0],
                       (unsigned long long)tb->ne[1], (unsigned long long)w->ne[0], (unsigned long long)w->ne[1]);
            break;
        }
        const lc_type_traits *ta = lc_type_traits_of((int)t->type), *tbt = lc_type_traits_of((int)tb->type);
        if (!ta || !tbt || !ta->supported || !tbt->supported) {
            r = LC_ERR(LC_E_UNSUPPORTED, "%s: '%s' has a weight type llamac cannot read", path, t->name);
            break;
        }
        lc_lora_weight *lw = &a->w[a->n];
        lw->layer = layer, lw->proj = proj, lw->rank = (int)rank, lw->n_in = (int)w->ne[0], lw->n_out = (int)w->ne[1];
        if ((r = to_f32(t, &lw->a)) || (r = to_f32(tb, &lw->b))) break;
        a->n++;
    }
    /* every B must have had its A */
    for (uint64_t i = 0; !r && i < f->n_tensors; i++) {
        const size_t nl = strlen(f->tensors[i].name);
        if (nl > 7 && !strcmp(f->tensors[i].name + nl - 7, ".lora_b")) {
            char aname[512];
            snprintf(aname, sizeof aname, "%.*s.lora_a", (int)(nl - 7), f->tensors[i].name);
            if (!gguf_find_tensor(f, aname)) r = LC_ERR(LC_E_FORMAT, "%s: '%s' has no '%s'", path, f->tensors[i].name, aname);
        }
    }
    gguf_close(f);
    if (r) {
        lc_lora_free(a);
        return r;
    }
    *out = a;
    return 0;
}

int lc_context_set_lora(lc_context *c, lc_lora *const *adapters, const float *scales, size_t n) {
    if (n > LC_MAX_LORA) return LC_ERR(LC_E_INVALID, "at most %d adapters at once", LC_MAX_LORA);
    size_t max_r = 0, max_out = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < adapters[i]->n; k++) {
            const lc_lora_weight *w = &adapters[i]->w[k];
            if ((size_t)w->rank > max_r) max_r = (size_t)w->rank;
            if ((size_t)w->n_out > max_out) max_out = (size_t)w->n_out;
        }
    lc__aligned_free(c->lora_t);
    lc__aligned_free(c->lora_u);
    c->lora_t = c->lora_u = NULL;
    c->n_lora = 0;
    if (max_r) {
        const size_t rows = c->p.n_batch;
        c->lora_t = lc__aligned_alloc(sizeof(float) * rows * max_r);
        c->lora_u = lc__aligned_alloc(sizeof(float) * rows * max_out);
        if (!c->lora_t || !c->lora_u) return LC_ERR(LC_E_NOMEM, "out of memory for the adapters' scratch");
    }
    for (size_t i = 0; i < n; i++) {
        c->lora[i] = adapters[i];
        c->lora_scale[i] = scales ? scales[i] : 1.0f;
    }
    c->n_lora = (int)n;
    return 0;
}

/* y[n_tok][n_out] += s * B (A x) for every adapter of (layer, proj): all threads, barriers between the steps. The
** scale-0 and no-adapter cases do nothing (the base logits exactly). */
void lc__lora_apply(lc_context *c, int layer, int proj, const float *x, float *y, int n_tok, int ith, int nth) {
    for (int i = 0; i < c->n_lora; i++) {
        const lc_lora *ad = c->lora[i];
        if (c->lora_scale[i] == 0.0f) continue;
        for (size_t k = 0; k < ad->n; k++) {
            const lc_lora_weight *w = &ad->w[k];
            if (w->layer != layer || w->proj != proj) continue;
            const float s = ad->alpha != 0.0f ? c->lora_scale[i] * ad->alpha / (float)w->rank : c->lora_scale[i];
            lc_pool_barrier(c->pool); /* y complete (and the previous adapter's use of the scratch done) */
            lc_matmul(LC_TYPE_F32, w->a, sizeof(float) * (size_t)w->n_in, w->rank, w->n_in, x, n_tok, c->lora_t,
                      w->rank, ith, nth);
            lc_pool_barrier(c->pool);
            lc_matmul(LC_TYPE_F32, w->b, sizeof(float) * (size_t)w->rank, w->n_out, w->rank, c->lora_t, n_tok,
                      c->lora_u, w->n_out, ith, nth);
            lc_pool_barrier(c->pool);
            const int t0 = (int)((int64_t)n_tok * ith / nth), t1 = (int)((int64_t)n_tok * (ith + 1) / nth);
            for (int t = t0; t < t1; t++) {
                float *yr = y + (size_t)t * w->n_out;
                const float *ur = c->lora_u + (size_t)t * w->n_out;
                for (int d = 0; d < w->n_out; d++) yr[d] += s * ur[d];
            }
        }
    }
}
