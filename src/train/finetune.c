/* finetune.c - lc_finetune: the LoRA fine-tuning loop. Per step: `batch` samples drawn by a seeded generator (text
** windows, or whole conversations), forward/backward in micro-batches with the gradients of the adapters
** accumulated, the loss averaged over the tokens that carry one, global-norm clipping, AdamW (adamw.c) at the
** scheduled learning rate; validation loss every eval_every steps and at the end; the adapter written by temporary
** file and rename (gguf_writer_write).
**
** Resume invariant (as train.c's): a checkpoint after step k holds everything the rest of the run depends on — the
** adapters, both moments, k and the generator — and every computation is deterministic (frozen.c, tr_gemm and AdamW
** keep fixed orders), so a killed and resumed run writes the same adapter as one never interrupted. Checkpoints are
** GGUF files: the adapter's keys and tensors, general.type "finetune-checkpoint", finetune.* keys and the moments as
** finetune.m.* / finetune.v.* tensors.
*/
#include "finetune.h"

#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

lc_finetune_params lc_finetune_default_params(void) {
    lc_finetune_params p;
    memset(&p, 0, sizeof p);
    p.rank = 8;
    p.n_steps = 200;
    p.batch = 8;
    p.lr = 1e-3f;
    p.min_lr = -1.0f; /* lr / 10 */
    p.warmup = -1;
    p.weight_decay = 0.0f;
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.adam_eps = 1e-8f;
    p.clip = 1.0f;
    p.val_frac = 0.05;
    p.val_batches = 2;
    p.eval_every = 50;
    p.checkpoint_every = 50;
    p.seed = 1;
    return p;
}

typedef struct tuner {
    const lc_finetune_params *p;
    char *ckpt_path;
    ft_data data;
    ft_model *m;
    ft_run *run;
    float *m1, *m2;
    tr_rng rng;
    int64_t step;
    int T, micro;
    int32_t *tokens, *targets; /* [max(batch, micro)][T] */
    lc_train_stats st;
} tuner;

/* Sample i of the chat data (training ones first): its tokens and targets. */
static void chat_sample(const tuner *t, size_t i, int32_t *tok, int32_t *tgt) {
    const int32_t *s = t->data.seq + i * 2 * (size_t)t->T;
    memcpy(tok, s, (size_t)t->T * sizeof(int32_t));
    memcpy(tgt, s + t->T, (size_t)t->T * sizeof(int32_t));
}

static size_t count_targets(const int32_t *tgt, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += tgt[i] >= 0;
    return k;
}

/* Mean validation loss per target token (NaN without validation data). */
static double evaluate(tuner *t) {
    const size_t T = (size_t)t->T, want_max = (size_t)t->p->val_batches * t->p->batch;
    const ft_data *d = &t->data;
    size_t n_win;
    if (d->chat) n_win = d->n_val;
    else n_win = d->text.n_val >= T + 1 ? (d->text.n_val - 1) / T : 0;
    const size_t want = LC_MIN(n_win, want_max);
    double sum = 0.0;
    size_t n_tok = 0;
    for (size_t w0 = 0; w0 < want; w0 += (size_t)t->micro) {
        const int n = (int)LC_MIN((size_t)t->micro, want - w0);
        for (int s = 0; s < n; s++) {
            const size_t w = (w0 + s) * n_win / want;
            if (d->chat) {
                chat_sample(t, d->n_train + w, t->tokens + s * T, t->targets + s * T);
            } else {
                memcpy(t->tokens + s * T, d->text.val + w * T, T * sizeof(int32_t));
                memcpy(t->targets + s * T, d->text.val + w * T + 1, T * sizeof(int32_t));
            }
        }
        sum += ft_run_step(t->run, t->tokens, t->targets, n, false, 0.0f);
        n_tok += count_targets(t->targets, (size_t)n * T);
    }
    return n_tok ? sum / (double)n_tok : NAN;
}

static double train_step(tuner *t, float lr) {
    const lc_finetune_params *p = t->p;
    const int T = t->T, B = (int)p->batch;
    const ft_data *d = &t->data;
    tr_model *lm = t->m->lora_m;
    for (int s = 0; s < B; s++) {
        int32_t *tok = t->tokens + (size_t)s * T, *tgt = t->targets + (size_t)s * T;
        if (d->chat) {
            chat_sample(t, (size_t)tr_rng_below(&t->rng, d->n_train), tok, tgt);
        } else {
            const size_t off = (size_t)tr_rng_below(&t->rng, (uint64_t)(d->text.n_train - (size_t)T) + 1);
            memcpy(tok, d->text.train + off, (size_t)T * sizeof(int32_t));
            memcpy(tgt, d->text.train + off + 1, (size_t)T * sizeof(int32_t));
        }
    }
    const size_t n_tgt = count_targets(t->targets, (size_t)B * T);
    memset(lm->grads, 0, lm->n_params * sizeof(float));
    double loss = 0.0;
    const float scale = 1.0f / (float)LC_MAX(n_tgt, 1);
    for (int s = 0; s < B; s += t->micro) {
        const int n = LC_MIN(t->micro, B - s);
        loss += ft_run_step(t->run, t->tokens + (size_t)s * T, t->targets + (size_t)s * T, n, true, scale);
    }
    const double norm = tr_grad_norm(lm, ft_run_pool(t->run));
    tr_adamw a = {.lr = lr, .beta1 = p->beta1, .beta2 = p->beta2, .eps = p->adam_eps,
                  .weight_decay = p->weight_decay, .grad_scale = 1.0f, .t = t->step + 1};
    if (p->clip > 0.0f && norm > p->clip) a.grad_scale = (float)(p->clip / norm);
    if (isfinite(norm) && n_tgt) tr_adamw_step(lm, t->m1, t->m2, &a, ft_run_pool(t->run));
    t->st.grad_norm = norm;
    t->st.lr = lr;
    return n_tgt ? loss / (double)n_tgt : NAN;
}

/* ---- checkpoints ---- */

static int ckpt_write(tuner *t) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return LC_ERR(LC_E_NOMEM, "finetune: out of memory");
    const tr_model *lm = t->m->lora_m;
    const uint64_t rng[4] = {t->rng.s[0], t->rng.s[1], t->rng.s[2], t->rng.s[3]};
    int r = ft_model_to_gguf(t->m, w, "llamac-lora-checkpoint");
    if (!r) r = gguf_writer_set_str(w, "general.type", "finetune-checkpoint"); /* not an adapter to load */
    if (!r) r = gguf_writer_set_u32(w, "finetune.version", 1);
    if (!r) r = gguf_writer_set_u64(w, "finetune.step", (uint64_t)t->step);
    if (!r) r = gguf_writer_set_arr(w, "finetune.rng", GGUF_T_UINT64, rng, 4);
    if (!r) r = gguf_writer_set_u64(w, "finetune.seed", t->p->seed);
    if (!r) r = gguf_writer_set_u64(w, "finetune.data_hash", t->data.hash);
    if (!r) r = gguf_writer_set_u32(w, "finetune.batch", t->p->batch);
    char nm[96];
    for (int i = 0; !r && i < lm->n_tensors; i++) {
        const tr_tensor *x = &lm->tensors[i];
        const uint64_t ne[2] = {(uint64_t)x->ne0, (uint64_t)x->ne1}, bytes = ne[0] * ne[1] * sizeof(float);
        snprintf(nm, sizeof nm, "finetune.m.%s", x->name);
        r = gguf_writer_add_tensor(w, nm, LC_TYPE_F32, 2, ne, t->m1 + x->off, bytes);
        snprintf(nm, sizeof nm, "finetune.v.%s", x->name);
        if (!r) r = gguf_writer_add_tensor(w, nm, LC_TYPE_F32, 2, ne, t->m2 + x->off, bytes);
    }
    if (!r) r = gguf_writer_write(w, t->ckpt_path);
    gguf_writer_free(w);
    return r;
}

static int ckpt_get(const gguf_file *f, const char *name, const tr_tensor *x, float *dst) {
    const gguf_tensor *g = gguf_find_tensor(f, name);
    if (!g || g->type != LC_TYPE_F32 || g->ne[0] != (uint64_t)x->ne0 || g->ne[1] != (uint64_t)x->ne1)
        return LC_ERR(LC_E_INVALID, "%s: tensor '%s' is missing or not F32 [%d, %d]: the checkpoint is of another "
                      "base model, rank or --lora-targets", f->path, name, x->ne0, x->ne1);
    memcpy(dst, g->data, (size_t)x->ne0 * x->ne1 * sizeof(float));
    return LC_OK;
}

/* Loads the checkpoint into t after checking that it belongs to this run. */
static int ckpt_read(tuner *t, const gguf_file *f) {
    uint32_t v32 = 0;
    uint64_t v64 = 0;
    int r;
    if ((r = gguf_get_u32(f, "finetune.version", &v32)) <= 0 || v32 != 1)
        return r < 0 ? r : LC_ERR(LC_E_FORMAT, "%s: not a llamac fine-tuning checkpoint (finetune.version 1)", f->path);
    const struct {
        const char *key, *what;
        uint64_t want;
    } keys[] = {{"finetune.seed", "--seed", t->p->seed},
                {"finetune.batch", "--batch", t->p->batch},
                {"finetune.data_hash", "data (the token samples differ)", t->data.hash}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        r = i == 1 ? gguf_get_u32(f, keys[i].key, &v32) : gguf_get_u64(f, keys[i].key, &v64);
        if (r < 0) return r;
        if (i == 1) v64 = v32;
        if (r == 0 || v64 != keys[i].want)
            return LC_ERR(LC_E_INVALID, "%s: written with other %s than this run's; resume with the options of the run "
                          "that wrote it, or start over without --resume", f->path, keys[i].what);
    }
    float alpha = 0.0f;
    if (gguf_get_f32(f, "adapter.lora.alpha", &alpha) <= 0 || alpha != t->m->alpha)
        return LC_ERR(LC_E_INVALID, "%s: written with another --lora-alpha", f->path);
    const gguf_value *rng;
    if ((r = gguf_get_arr(f, "finetune.rng", GGUF_T_UINT64, &rng)) < 0) return r;
    if (r == 0 || rng->v.arr.n != 4) return LC_ERR(LC_E_FORMAT, "%s: finetune.rng must hold 4 u64", f->path);
    if ((r = gguf_get_u64(f, "finetune.step", &v64)) <= 0)
        return r < 0 ? r : LC_ERR(LC_E_FORMAT, "%s: finetune.step is missing", f->path);
    tr_model *lm = t->m->lora_m;
    if (f->n_tensors != 3 * (uint64_t)lm->n_tensors)
        return LC_ERR(LC_E_INVALID, "%s: %llu tensors, this run has %d adapters (another --lora-targets?)", f->path,
                      (unsigned long long)f->n_tensors, lm->n_tensors / 2);
    char nm[96];
    for (int i = 0; i < lm->n_tensors; i++) {
        const tr_tensor *x = &lm->tensors[i];
        if ((r = ckpt_get(f, x->name, x, tr_param(lm, i)))) return r;
        snprintf(nm, sizeof nm, "finetune.m.%s", x->name);
        if ((r = ckpt_get(f, nm, x, t->m1 + x->off))) return r;
        snprintf(nm, sizeof nm, "finetune.v.%s", x->name);
        if ((r = ckpt_get(f, nm, x, t->m2 + x->off))) return r;
    }
    memcpy(t->rng.s, rng->v.arr.data, sizeof t->rng.s); /* little-endian file, little-endian hosts */
    t->step = (int64_t)v64;
    return LC_OK;
}

static int emit(tuner *t, int event) {
    t->st.event = event;
    t->st.step = t->step;
    return t->p->on_event ? t->p->on_event(&t->st, t->p->user) : 0;
}

static int check_params(const lc_finetune_params *p) {
    if (!p->model || !p->out) return LC_ERR(LC_E_INVALID, "finetune: a model and an output path are required");
    if (p->n_steps < 1 || p->batch < 1 || p->batch > 65536)
        return LC_ERR(LC_E_INVALID, "finetune: steps %lld and batch %u must be positive (batch at most 65536)",
                      (long long)p->n_steps, p->batch);
    if (!(p->lr > 0.0f) || !isfinite(p->lr) || p->beta1 < 0.0f || p->beta1 >= 1.0f || p->beta2 < 0.0f ||
        p->beta2 >= 1.0f || !(p->adam_eps > 0.0f) || p->weight_decay < 0.0f || p->clip < 0.0f ||
        !(p->alpha >= 0.0f) || !isfinite(p->alpha))
        return LC_ERR(LC_E_INVALID, "finetune: bad optimizer settings (lr %g > 0, betas in [0, 1), eps > 0, weight "
                      "decay, clip and alpha >= 0)", (double)p->lr);
    if (p->n_ctx == 1 || p->n_ctx > 65536) return LC_ERR(LC_E_INVALID, "finetune: context %u out of range (2 .. 65536)", p->n_ctx);
    return LC_OK;
}

int lc_finetune(const lc_finetune_params *p, lc_train_stats *final) {
    lc__base_init();
    int r = check_params(p);
    if (r) return r;
    tuner t;
    memset(&t, 0, sizeof t);
    t.p = p;
    t.st.val_loss = NAN;
    t.st.loss = NAN;
    t.st.resumed_from = -1;
    t.st.n_steps = p->n_steps;
    const lc_model *base = p->model;
    const int max_T = (int)(p->n_ctx ? p->n_ctx : LC_MIN(256u, LC_MAX(2u, base->hp.n_ctx_train)));
    if ((r = ft_data_load(&t.data, base, p->data, p->n_data, p->chat, p->doc_sep, max_T, p->val_frac))) goto done;
    t.T = t.data.T;
    if ((r = ft_model_new(base, (int)p->rank, p->alpha > 0.0f ? p->alpha : (float)p->rank,
                          p->targets ? p->targets : LC_LORA_TARGET_ALL, p->seed, &t.m)))
        goto done;
    const size_t np = t.m->lora_m->n_params;
    t.m1 = lc__aligned_alloc((np ? np : 1) * sizeof(float));
    t.m2 = lc__aligned_alloc((np ? np : 1) * sizeof(float));
    if (p->micro_batch) {
        t.micro = (int)LC_MIN(p->micro_batch, p->batch);
    } else { /* about 512 tokens, and at most 2^26 logits (256 MiB) */
        const int rows = LC_MIN(512, (int)((1 << 26) / t.m->n_vocab));
        t.micro = LC_MAX(1, LC_MIN((int)p->batch, rows / t.T));
    }
    const size_t rows = (size_t)LC_MAX(p->batch, (uint32_t)t.micro) * (size_t)t.T;
    t.tokens = lc__malloc(rows * sizeof(int32_t));
    t.targets = lc__malloc(rows * sizeof(int32_t));
    if (!t.m1 || !t.m2 || !t.tokens || !t.targets) {
        r = LC_ERR(LC_E_NOMEM, "finetune: out of memory");
        goto done;
    }
    memset(t.m1, 0, np * sizeof(float));
    memset(t.m2, 0, np * sizeof(float));
    tr_rng_seed(&t.rng, p->seed, 0x10AAull);
    if (p->checkpoint) t.ckpt_path = lc__strdup(p->checkpoint);
    else if ((t.ckpt_path = lc__malloc(strlen(p->out) + 6))) sprintf(t.ckpt_path, "%s.ckpt", p->out);
    if (!t.ckpt_path) {
        r = LC_ERR(LC_E_NOMEM, "finetune: out of memory");
        goto done;
    }
    struct stat sb;
    if (p->resume && stat(t.ckpt_path, &sb) == 0) {
        gguf_file *f = NULL;
        if ((r = gguf_open(t.ckpt_path, &f))) goto done;
        r = ckpt_read(&t, f);
        gguf_close(f);
        if (r) goto done;
        t.st.resumed_from = t.step;
    }
    if ((r = ft_run_new(t.m, t.micro, t.T, p->n_threads, &t.run))) goto done;

    const int64_t warmup = p->warmup >= 0 ? p->warmup : LC_MIN(100, p->n_steps / 10);
    const float min_lr = p->min_lr >= 0.0f ? p->min_lr : p->lr / 10.0f;
    /* tokens per step for the speed: every position of every sequence is computed */
    const double flops_tok = ft_flops_per_token(t.m, t.T);
    t.st.n_params = t.m->lora_m->n_weights;
    t.st.n_train_tokens = t.data.n_train_tokens;
    t.st.n_val_tokens = t.data.n_val_tokens;
    t.st.n_vocab = (uint64_t)t.m->n_vocab;
    t.st.kernel = ft_run_gemm(t.run)->name;
    bool stop = emit(&t, LC_TRAIN_START) != 0;
    const double t0 = lc_time_s();
    const int64_t step0 = t.step;
    while (!stop && t.step < p->n_steps) {
        t.st.loss = train_step(&t, tr_lr_at(t.step, p->n_steps, warmup, p->lr, min_lr));
        t.step++;
        const double el = lc_time_s() - t0, tok = (double)(t.step - step0) * p->batch * t.T;
        t.st.elapsed_s = el;
        t.st.tokens_per_s = el > 0 ? tok / el : 0.0;
        t.st.gflops = el > 0 ? tok * flops_tok / el * 1e-9 : 0.0;
        t.st.eta_s = el / (double)(t.step - step0) * (double)(p->n_steps - t.step);
        const double *tm = ft_run_times(t.run);
        t.st.time_matmul_s = tm[TR_TIME_MATMUL];
        t.st.time_attention_s = tm[TR_TIME_ATTENTION];
        t.st.time_other_s = tm[TR_TIME_OTHER];
        stop = emit(&t, LC_TRAIN_STEP) != 0;
        if ((p->eval_every > 0 && t.step % p->eval_every == 0) || t.step == p->n_steps || stop) {
            t.st.val_loss = evaluate(&t);
            stop |= emit(&t, LC_TRAIN_EVAL) != 0;
        }
        if (stop || t.step == p->n_steps || (p->checkpoint_every > 0 && t.step % p->checkpoint_every == 0)) {
            if ((r = ckpt_write(&t))) goto done;
            stop |= emit(&t, LC_TRAIN_CHECKPOINT) != 0;
        }
    }
    gguf_writer *w = gguf_writer_new();
    if (!w) r = LC_ERR(LC_E_NOMEM, "finetune: out of memory");
    if (!r) r = ft_model_to_gguf(t.m, w, "llamac-lora");
    if (!r) r = gguf_writer_write(w, p->out);
    gguf_writer_free(w);
    if (!r) emit(&t, LC_TRAIN_DONE);
done:
    if (final) *final = t.st;
    ft_run_free(t.run);
    ft_model_free(t.m);
    lc__aligned_free(t.m1);
    lc__aligned_free(t.m2);
    ft_data_free(&t.data);
    lc__free(t.ckpt_path);
    lc__free(t.tokens);
    lc__free(t.targets);
    return r;
}
