/* train.c - lc_train: the pre-training loop. Per step: `batch` windows drawn by a seeded generator from the
** training stream, forward/backward in micro-batches (gradients accumulated), global-norm clipping, AdamW at the
** scheduled learning rate; validation loss every eval_every steps; checkpoints by temporary file and rename.
**
** Resume invariant: a checkpoint after step k holds everything the rest of the run depends on — weights, both Adam
** moments, k, and the generator state — and every computation is deterministic (fixed reduction orders, see
** train.h), so a run killed after a checkpoint and resumed writes the same bytes as one never interrupted.
** Checkpoints are GGUF files: the model's own keys and tensors (llamac run can sample from one) plus train.* keys
** and the moments as train.m.* / train.v.* tensors.
*/
#include "train.h"

#include "../tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

/* ---- presets ---- */

typedef struct preset {
    const char *name, *desc;
    lc_train_config cfg;
} preset;

static const preset presets[] = {
    {"tiny", "dim 64, 2 layers, 4/2 heads (GQA), ff 192, ctx 64: 0.1M + 64 x vocab parameters; tests, smoke runs",
     {64, 2, 4, 2, 192, 64, 10000.0f, 1e-5f}},
    {"small", "dim 288, 6 layers, 6/2 heads (GQA), ff 768, ctx 256: 5.3M + 288 x vocab parameters; 1500 steps of "
              "16 x 256 tokens in ~30 min on 2 AVX-512 cores",
     {288, 6, 6, 2, 768, 256, 10000.0f, 1e-5f}},
    {"medium", "dim 512, 8 layers, 8/4 heads (GQA), ff 1376, ctx 512: 23M + 512 x vocab parameters; hours",
     {512, 8, 8, 4, 1376, 512, 10000.0f, 1e-5f}},
};
#define N_PRESETS (sizeof presets / sizeof *presets)

const char *lc_train_config_preset(size_t i, lc_train_config *cfg, const char **desc) {
    if (i >= N_PRESETS) return NULL;
    if (cfg) *cfg = presets[i].cfg;
    if (desc) *desc = presets[i].desc;
    return presets[i].name;
}

int lc_train_config_by_name(const char *name, lc_train_config *cfg) {
    for (size_t i = 0; i < N_PRESETS; i++)
        if (name && !strcmp(name, presets[i].name)) {
            *cfg = presets[i].cfg;
            return LC_OK;
        }
    return LC_ERR(LC_E_INVALID, "unknown model configuration '%s' (known: tiny, small, medium)", name ? name : "");
}

lc_train_params lc_train_default_params(void) {
    lc_train_params p;
    memset(&p, 0, sizeof p);
    p.config = presets[0].cfg;
    p.n_steps = 1000;
    p.batch = 16;
    p.lr = 1e-3f;
    p.min_lr = -1.0f; /* lr / 10 */
    p.warmup = -1;    /* min(100, n_steps / 10) */
    p.weight_decay = 0.1f;
    p.beta1 = 0.9f;
    p.beta2 = 0.95f;
    p.adam_eps = 1e-8f;
    p.clip = 1.0f;
    p.val_frac = 0.05;
    p.val_batches = 4;
    p.eval_every = 100;
    p.checkpoint_every = 100;
    p.seed = 1;
    return p;
}

/* ---- state ---- */

typedef struct trainer {
    const lc_train_params *p;
    char *ckpt_path;
    gguf_file *tokf;     /* the tokenizer's GGUF (keys copied into outputs) */
    lc_tokenizer *tok;
    tr_data data;
    tr_model *m;
    float *m1, *m2;      /* Adam moments */
    tr_run *run;
    tr_rng rng;          /* window sampling */
    int64_t step;        /* steps done */
    int T, micro;
    int32_t *tokens, *targets; /* [batch][T] */
    lc_train_stats st;
} trainer;

/* ---- checkpoints ---- */

static int ckpt_write(trainer *t) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return LC_ERR(LC_E_NOMEM, "train: out of memory");
    tr_model *m = t->m;
    int r = tr_model_to_gguf(m, w, t->tokf, "llamac-train-checkpoint");
    char nm[96];
    const uint64_t rng[4] = {t->rng.s[0], t->rng.s[1], t->rng.s[2], t->rng.s[3]};
    if (!r) r = gguf_writer_set_u32(w, "train.version", 1);
    if (!r) r = gguf_writer_set_u64(w, "train.step", (uint64_t)t->step);
    if (!r) r = gguf_writer_set_arr(w, "train.rng", GGUF_T_UINT64, rng, 4);
    if (!r) r = gguf_writer_set_u64(w, "train.seed", t->p->seed);
    if (!r) r = gguf_writer_set_u32(w, "train.batch", t->p->batch);
    if (!r) r = gguf_writer_set_u64(w, "train.data_hash", t->data.hash);
    if (!r) r = gguf_writer_set_u64(w, "train.n_steps", (uint64_t)t->p->n_steps);
    for (int i = 0; !r && i < m->n_tensors; i++) {
        const tr_tensor *x = &m->tensors[i];
        const uint64_t ne[2] = {(uint64_t)x->ne0, (uint64_t)x->ne1};
        const uint64_t bytes = ne[0] * ne[1] * sizeof(float);
        snprintf(nm, sizeof nm, "train.m.%s", x->name);
        r = gguf_writer_add_tensor(w, nm, LC_TYPE_F32, x->ne1 == 1 ? 1 : 2, ne, t->m1 + x->off, bytes);
        snprintf(nm, sizeof nm, "train.v.%s", x->name);
        if (!r) r = gguf_writer_add_tensor(w, nm, LC_TYPE_F32, x->ne1 == 1 ? 1 : 2, ne, t->m2 + x->off, bytes);
    }
    if (!r) r = gguf_writer_write(w, t->ckpt_path);
    gguf_writer_free(w);
    return r;
}

static int ckpt_tensor(const gguf_file *f, const char *name, const tr_tensor *x, float *dst) {
    const gguf_tensor *g = gguf_find_tensor(f, name);
    if (!g || g->type != LC_TYPE_F32 || g->ne[0] != (uint64_t)x->ne0 || g->ne[1] != (uint64_t)x->ne1)
        return LC_ERR(LC_E_FORMAT, "%s: tensor '%s' is missing or not F32 [%d, %d]; the checkpoint is not of this model",
                      f->path, name, x->ne0, x->ne1);
    memcpy(dst, g->data, (size_t)x->ne0 * x->ne1 * sizeof(float));
    return LC_OK;
}

/* Loads the checkpoint into t (weights, moments, step, generator) after checking it belongs to this run. */
static int ckpt_read(trainer *t, const gguf_file *f) {
    const lc_train_config *c = &t->m->cfg;
    uint32_t ver = 0, v32 = 0;
    uint64_t v64 = 0;
    int r;
    if ((r = gguf_get_u32(f, "train.version", &ver)) <= 0 || ver != 1)
        return r < 0 ? r : LC_ERR(LC_E_FORMAT, "%s: not a llamac training checkpoint (train.version 1)", f->path);
    struct {
        const char *key;
        uint32_t want;
    } shape[] = {{"llama.embedding_length", c->n_embd},       {"llama.block_count", c->n_layer},
                 {"llama.attention.head_count", c->n_head},   {"llama.attention.head_count_kv", c->n_head_kv},
                 {"llama.feed_forward_length", c->n_ff},      {"llama.context_length", c->n_ctx},
                 {"llama.vocab_size", (uint32_t)t->m->n_vocab}, {"train.batch", t->p->batch}};
    for (size_t i = 0; i < sizeof shape / sizeof *shape; i++) {
        if ((r = gguf_get_u32(f, shape[i].key, &v32)) < 0) return r;
        if (r == 0 || v32 != shape[i].want)
            return LC_ERR(LC_E_INVALID, "%s: %s is %u but this run has %u; resume with the options of the run that "
                          "wrote it, or start over without --resume", f->path, shape[i].key, r ? v32 : 0, shape[i].want);
    }
    if ((r = gguf_get_u64(f, "train.seed", &v64)) < 0) return r;
    if (r == 0 || v64 != t->p->seed)
        return LC_ERR(LC_E_INVALID, "%s: written with --seed %llu, this run has %llu", f->path, (unsigned long long)v64,
                      (unsigned long long)t->p->seed);
    if ((r = gguf_get_u64(f, "train.data_hash", &v64)) < 0) return r;
    if (r == 0 || v64 != t->data.hash)
        return LC_ERR(LC_E_INVALID, "%s: written for another corpus or tokenizer (the token streams differ); resume "
                      "with the same files, or start over without --resume", f->path);
    const gguf_value *rng;
    if ((r = gguf_get_arr(f, "train.rng", GGUF_T_UINT64, &rng)) < 0) return r;
    if (r == 0 || rng->v.arr.n != 4) return LC_ERR(LC_E_FORMAT, "%s: train.rng must hold 4 u64", f->path);
    if ((r = gguf_get_u64(f, "train.step", &v64)) <= 0)
        return r < 0 ? r : LC_ERR(LC_E_FORMAT, "%s: train.step is missing", f->path);
    char nm[96];
    for (int i = 0; i < t->m->n_tensors; i++) {
        const tr_tensor *x = &t->m->tensors[i];
        if ((r = ckpt_tensor(f, x->name, x, tr_param(t->m, i)))) return r;
        snprintf(nm, sizeof nm, "train.m.%s", x->name);
        if ((r = ckpt_tensor(f, nm, x, t->m1 + x->off))) return r;
        snprintf(nm, sizeof nm, "train.v.%s", x->name);
        if ((r = ckpt_tensor(f, nm, x, t->m2 + x->off))) return r;
    }
    memcpy(t->rng.s, rng->v.arr.data, sizeof t->rng.s); /* little-endian file, little-endian hosts */
    t->step = (int64_t)v64;
    return LC_OK;
}

/* ---- steps ---- */

static double now(void) { return lc_time_s(); }

/* Mean validation loss over evenly spread windows (stride T through the validation stream); NaN if none. */
static double evaluate(trainer *t) {
    const size_t T = (size_t)t->T;
    if (t->data.n_val < T + 1) return NAN;
    const size_t n_win = (t->data.n_val - 1) / T;
    const size_t want = LC_MIN(n_win, (size_t)t->p->val_batches * t->p->batch);
    double sum = 0.0;
    size_t n_tok = 0;
    for (size_t w0 = 0; w0 < want; w0 += (size_t)t->micro) {
        const int n = (int)LC_MIN((size_t)t->micro, want - w0);
        for (int s = 0; s < n; s++) {
            const size_t off = ((w0 + s) * n_win / want) * T;
            memcpy(t->tokens + s * T, t->data.val + off, T * sizeof(int32_t));
            memcpy(t->targets + s * T, t->data.val + off + 1, T * sizeof(int32_t));
        }
        sum += tr_run_step(t->run, t->tokens, t->targets, n, false, 0.0f);
        n_tok += (size_t)n * T;
    }
    return n_tok ? sum / (double)n_tok : NAN;
}

/* One optimizer step; returns the mean training loss. */
static double train_step(trainer *t, float lr) {
    const lc_train_params *p = t->p;
    const int T = t->T, B = (int)p->batch;
    tr_model *m = t->m;
    const size_t span = t->data.n_train - (size_t)T; /* window starts in [0, span] */
    for (int s = 0; s < B; s++) {
        const size_t off = (size_t)tr_rng_below(&t->rng, (uint64_t)span + 1);
        memcpy(t->tokens + (size_t)s * T, t->data.train + off, (size_t)T * sizeof(int32_t));
        memcpy(t->targets + (size_t)s * T, t->data.train + off + 1, (size_t)T * sizeof(int32_t));
    }
    memset(m->grads, 0, m->n_params * sizeof(float));
    double loss = 0.0;
    const float scale = 1.0f / (float)((size_t)B * T);
    for (int s = 0; s < B; s += t->micro) {
        const int n = LC_MIN(t->micro, B - s);
        loss += tr_run_step(t->run, t->tokens + (size_t)s * T, t->targets + (size_t)s * T, n, true, scale);
    }
    const double norm = tr_grad_norm(m, tr_run_pool(t->run));
    tr_adamw a = {.lr = lr, .beta1 = p->beta1, .beta2 = p->beta2, .eps = p->adam_eps,
                  .weight_decay = p->weight_decay, .grad_scale = 1.0f, .t = t->step + 1};
    if (p->clip > 0.0f && norm > p->clip) a.grad_scale = (float)(p->clip / norm);
    if (isfinite(norm)) tr_adamw_step(m, t->m1, t->m2, &a, tr_run_pool(t->run));
    t->st.grad_norm = norm;
    t->st.lr = lr;
    return loss / ((double)B * T);
}

static int emit(trainer *t, int event) {
    t->st.event = event;
    t->st.step = t->step;
    return t->p->on_event ? t->p->on_event(&t->st, t->p->user) : 0;
}

static int check_params(const lc_train_params *p) {
    if (!p->tokenizer || !p->out) return LC_ERR(LC_E_INVALID, "train: a tokenizer and an output path are required");
    if (p->n_steps < 1 || p->batch < 1 || p->batch > 65536)
        return LC_ERR(LC_E_INVALID, "train: steps %lld and batch %u must be positive (batch at most 65536)",
                      (long long)p->n_steps, p->batch);
    if (!(p->lr > 0.0f) || !isfinite(p->lr) || p->beta1 < 0.0f || p->beta1 >= 1.0f || p->beta2 < 0.0f ||
        p->beta2 >= 1.0f || !(p->adam_eps > 0.0f) || p->weight_decay < 0.0f || p->clip < 0.0f)
        return LC_ERR(LC_E_INVALID, "train: bad optimizer settings (lr %g > 0, betas in [0, 1), eps > 0, weight decay "
                      "and clip >= 0)", (double)p->lr);
    return LC_OK;
}

static void trainer_free(trainer *t) {
    tr_run_free(t->run);
    tr_model_free(t->m);
    lc__aligned_free(t->m1);
    lc__aligned_free(t->m2);
    tr_data_free(&t->data);
    lc_tokenizer_free(t->tok);
    gguf_close(t->tokf);
    lc__free(t->tokens);
    lc__free(t->targets);
    lc__free(t->ckpt_path);
}

static int write_model(trainer *t) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return LC_ERR(LC_E_NOMEM, "train: out of memory");
    int r = tr_model_to_gguf(t->m, w, t->tokf, "llamac-trained");
    if (!r) r = gguf_writer_write(w, t->p->out);
    gguf_writer_free(w);
    return r;
}

int lc_train(const lc_train_params *p, lc_train_stats *final) {
    lc__base_init();
    int r = check_params(p);
    if (r) return r;
    trainer t;
    memset(&t, 0, sizeof t);
    t.p = p;
    t.T = (int)p->config.n_ctx;
    t.st.val_loss = NAN;
    t.st.loss = NAN;
    t.st.resumed_from = -1;
    t.st.n_steps = p->n_steps;
    /* the tokenizer: a GGUF, whose tokenizer.* keys the model file gets */
    if ((r = gguf_open(p->tokenizer, &t.tokf))) goto done;
    if (!gguf_find(t.tokf, "tokenizer.ggml.model")) {
        r = LC_ERR(LC_E_INVALID, "%s: no tokenizer.ggml.* keys; --tokenizer must be a GGUF with a vocabulary (from "
                   "`llamac train-tokenizer` or any GGUF model)", p->tokenizer);
        goto done;
    }
    if ((r = lc_vocab_from_gguf(t.tokf, &t.tok))) goto done;
    if ((r = tr_data_load(&t.data, p->corpus, p->n_corpus, p->doc_sep, t.tok, t.T, p->val_frac))) goto done;
    if ((r = tr_model_new(&p->config, (int)lc_tokenizer_n_vocab(t.tok), &t.m))) goto done;
    tr_model_init(t.m, p->seed);
    t.m1 = lc__aligned_alloc(t.m->n_params * sizeof(float));
    t.m2 = lc__aligned_alloc(t.m->n_params * sizeof(float));
    if (p->micro_batch) {
        t.micro = (int)LC_MIN(p->micro_batch, p->batch);
    } else { /* about 1024 tokens, and at most 2^26 logits (256 MiB) for large vocabularies */
        const int rows = LC_MIN(1024, (int)((1 << 26) / (int)lc_tokenizer_n_vocab(t.tok)));
        t.micro = LC_MAX(1, LC_MIN((int)p->batch, rows / t.T));
    }
    t.tokens = lc__malloc((size_t)LC_MAX(p->batch, (uint32_t)t.micro) * t.T * sizeof(int32_t));
    t.targets = lc__malloc((size_t)LC_MAX(p->batch, (uint32_t)t.micro) * t.T * sizeof(int32_t));
    if (p->checkpoint) t.ckpt_path = lc__strdup(p->checkpoint);
    else if ((t.ckpt_path = lc__malloc(strlen(p->out) + 6))) sprintf(t.ckpt_path, "%s.ckpt", p->out);
    if (!t.m1 || !t.m2 || !t.tokens || !t.targets || !t.ckpt_path) {
        r = LC_ERR(LC_E_NOMEM, "train: out of memory");
        goto done;
    }
    memset(t.m1, 0, t.m->n_params * sizeof(float));
    memset(t.m2, 0, t.m->n_params * sizeof(float));
    tr_rng_seed(&t.rng, p->seed, 0x5A3D1E5ull);
    if (p->resume) {
        struct stat sb;
        if (stat(t.ckpt_path, &sb) == 0) {
            gguf_file *f = NULL;
            if ((r = gguf_open(t.ckpt_path, &f))) goto done;
            r = ckpt_read(&t, f);
            gguf_close(f);
            if (r) goto done;
            t.st.resumed_from = t.step;
        }
    }
    if ((r = tr_run_new(t.m, t.micro, t.T, p->n_threads, &t.run))) goto done;

    const int64_t warmup = p->warmup >= 0 ? p->warmup : LC_MIN(100, p->n_steps / 10);
    const float min_lr = p->min_lr >= 0.0f ? p->min_lr : p->lr / 10.0f;
    const double flops_tok = tr_flops_per_token(t.m, t.T);
    t.st.n_params = t.m->n_weights;
    t.st.n_train_tokens = t.data.n_train;
    t.st.n_val_tokens = t.data.n_val;
    t.st.n_vocab = (uint64_t)t.m->n_vocab;
    t.st.kernel = tr_run_gemm(t.run)->name;
    bool stop = emit(&t, LC_TRAIN_START) != 0;
    const double t0 = now();
    const int64_t step0 = t.step;
    while (!stop && t.step < p->n_steps) {
        t.st.loss = train_step(&t, tr_lr_at(t.step, p->n_steps, warmup, p->lr, min_lr));
        t.step++;
        const double el = now() - t0;
        const double tok = (double)(t.step - step0) * p->batch * t.T;
        t.st.elapsed_s = el;
        t.st.tokens_per_s = el > 0 ? tok / el : 0.0;
        t.st.gflops = el > 0 ? tok * flops_tok / el * 1e-9 : 0.0;
        t.st.eta_s = el / (double)(t.step - step0) * (double)(p->n_steps - t.step);
        const double *tm = tr_run_times(t.run);
        t.st.time_matmul_s = tm[TR_TIME_MATMUL];
        t.st.time_attention_s = tm[TR_TIME_ATTENTION];
        t.st.time_other_s = tm[TR_TIME_OTHER];
        stop = emit(&t, LC_TRAIN_STEP) != 0;
        if ((p->eval_every > 0 && t.step % p->eval_every == 0) || t.step == p->n_steps) {
            t.st.val_loss = evaluate(&t);
            stop |= emit(&t, LC_TRAIN_EVAL) != 0;
        }
        if (stop || t.step == p->n_steps || (p->checkpoint_every > 0 && t.step % p->checkpoint_every == 0)) {
            if ((r = ckpt_write(&t))) goto done;
            stop |= emit(&t, LC_TRAIN_CHECKPOINT) != 0;
        }
    }
    if ((r = write_model(&t))) goto done;
    emit(&t, LC_TRAIN_DONE);
done:
    if (final) *final = t.st;
    trainer_free(&t);
    return r;
}
