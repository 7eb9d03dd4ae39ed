/* test_finetune.c - LoRA fine-tuning (src/train/finetune*.c, frozen.c): the adapters' gradients against central
** differences of a double-precision forward over the dequantized base weights merged with s B A (train_ref.h), for
** F32 and Q8_0 bases; the fine-tuning forward against lc_decode with the same adapter (F32, Q8_0, Q4_K_M bases); an
** adapter made by lc_finetune loading in llama.cpp (the oracle) with the same logits as llamac's, and scale 0 giving
** the base logits exactly; the loss falling by a stated amount on text and on chat JSONL; resume after a kill giving
** the same adapter; the assistant-only loss mask of chat data against the Llama 3 prompt format; errors naming the
** file and line; the CLI.
*/
#include "harness.h"

#include "../src/kernels/kernels.h"
#include "../src/train/finetune.h"
#include "train_ref.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_dir[64];
static char g_bin[1024];

static bool quick(void) {
    const char *q = getenv("LLAMAC_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

static const char *path_in(const char *name) {
    static char buf[8][192];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

/* A small random Llama (n_embd, n_ff as given; 2 layers, 4/2 heads) of weight type wtype (F32, F16, BF16, Q8_0; or
** a llama-quantize ftype name such as "Q4_K_M" applied to the F32 file). "L31" as ftype: F16 in Llama 3.1's way
** (rope_freqs.weight, rope theta 5e5, head_dim 48 so that n_head * head_dim != n_embd). */
static int make_base(const char *path, int wtype, const char *ftype, int n_embd, int n_ff, bool tied, float w_std) {
    lc_synth_params p = lc_synth_default_params();
    p.n_embd = (uint32_t)n_embd, p.n_ff = (uint32_t)n_ff, p.n_layer = 2, p.n_head = 4, p.n_head_kv = 2;
    p.wtype = wtype, p.tied_output = tied, p.w_std = w_std, p.seed = 5;
    if (ftype && !strcmp(ftype, "L31")) {
        p.wtype = LC_TYPE_F16, p.rope_freqs = true, p.rope_theta = 500000.0f, p.head_dim = 48;
        return lc_synth_write(path, &p);
    }
    if (!ftype) return lc_synth_write(path, &p);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.f32", path);
    int r = lc_synth_write(tmp, &p);
    lc_quantize_params q = lc_quantize_default_params();
    q.ftype = lc_ftype_from_name(ftype);
    if (!r) r = lc_quantize_file(tmp, path, &q, NULL);
    unlink(tmp);
    return r;
}

static void randomize_adapters(ft_model *fm, double amp) {
    tr_model *t = fm->lora_m;
    for (int i = 0; i < t->n_tensors; i++) {
        float *p = tr_param(t, i);
        for (size_t j = 0; j < (size_t)t->tensors[i].ne0 * t->tensors[i].ne1; j++) p[j] = (float)(amp * urand());
    }
}

/* ---- the double-precision reference: dequantized base weights, W + s B A merged ---- */

typedef struct dmodel {
    ref_llama M;
    double *base[REF_MAX_LAYERS][REF_N_PROJ], *merged[REF_MAX_LAYERS][REF_N_PROJ];
    double *embd, *output, *norms;
    double *P; /* the adapters' parameters in doubles (lora_m layout) */
} dmodel;

static double *dequant(const lc_weight *w) {
    const size_t n_in = w->ne[0], n_out = w->ne[1];
    double *d = malloc(sizeof *d * n_in * n_out);
    float *row = malloc(sizeof *row * n_in);
    for (size_t o = 0; o < n_out; o++) {
        if (w->r8) /* repacked at load (kernels.h) */
            lc__r8_dequantize(w->type, w->data, w->row_bytes, (int64_t)n_out, (int64_t)o, 0, (int64_t)n_in, row);
        else
            lc_dequantize_row(w->type, (const uint8_t *)w->data + o * w->row_bytes, row, (int64_t)n_in);
        for (size_t i = 0; i < n_in; i++) d[o * n_in + i] = row[i];
    }
    free(row);
    return d;
}

/* merged = base + s B A for projection (l, p) */
static void dmodel_merge(dmodel *d, const ft_model *fm, int l, int p) {
    const int wi = l * FT_N_PROJ + p, li = fm->lora[wi];
    const int n_in = (int)fm->w[wi]->ne[0], n_out = (int)fm->w[wi]->ne[1], rk = fm->rank;
    double *W = d->merged[l][p];
    memcpy(W, d->base[l][p], sizeof *W * (size_t)n_in * n_out);
    if (li < 0) return;
    const double *A = d->P + fm->lora_m->tensors[li].off, *B = d->P + fm->lora_m->tensors[li + 1].off;
    for (int o = 0; o < n_out; o++)
        for (int k = 0; k < rk; k++) {
            const double b = fm->scale * B[(size_t)o * rk + k];
            for (int i = 0; i < n_in; i++) W[(size_t)o * n_in + i] += b * A[(size_t)k * n_in + i];
        }
}

static void dmodel_init(dmodel *d, const ft_model *fm) {
    memset(d, 0, sizeof *d);
    const lc_model *b = fm->base;
    ref_llama *M = &d->M;
    M->D = fm->D, M->F = fm->F, M->H = fm->H, M->HK = fm->HK, M->hd = fm->hd, M->V = fm->n_vocab, M->L = fm->n_layer;
    M->eps = b->hp.rms_eps, M->theta = b->hp.rope_theta;
    M->embd = d->embd = dequant(&b->tok_embd);
    M->output = d->output = dequant(&b->output);
    d->norms = malloc(sizeof(double) * (size_t)(2 * fm->n_layer + 1) * fm->D);
    for (int i = 0; i < fm->D; i++) d->norms[i] = b->output_norm[i];
    M->out_norm = d->norms;
    d->P = malloc(sizeof(double) * fm->lora_m->n_params);
    for (size_t i = 0; i < fm->lora_m->n_params; i++) d->P[i] = fm->lora_m->params[i];
    for (int l = 0; l < fm->n_layer; l++) {
        double *an = d->norms + (size_t)(1 + 2 * l) * fm->D, *fn = an + fm->D;
        for (int i = 0; i < fm->D; i++) an[i] = b->layers[l].attn_norm[i], fn[i] = b->layers[l].ffn_norm[i];
        M->attn_norm[l] = an, M->ffn_norm[l] = fn;
        for (int p = 0; p < FT_N_PROJ; p++) {
            const lc_weight *w = fm->w[l * FT_N_PROJ + p];
            d->base[l][p] = dequant(w);
            d->merged[l][p] = malloc(sizeof(double) * w->ne[0] * w->ne[1]);
            dmodel_merge(d, fm, l, p);
            M->w[l][p] = d->merged[l][p];
        }
    }
}

static void dmodel_free(dmodel *d) {
    for (int l = 0; l < REF_MAX_LAYERS; l++)
        for (int p = 0; p < REF_N_PROJ; p++) free(d->base[l][p]), free(d->merged[l][p]);
    free(d->embd), free(d->output), free(d->norms), free(d->P);
}

/* The adapters' gradients of the summed token loss against central differences of the double reference, on a
** spread of entries of every A and B; the forward loss against the reference's. */
static void check_gradients(int wtype, bool tied) {
    const char *path = path_in("grad.gguf");
    CHECK_OK(make_base(path, wtype, NULL, 64, 96, tied, 0.15f));
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(path, NULL, &m));
    ft_model *fm = NULL;
    ft_run *r = NULL;
    if (ft_model_new(m, 2, 3.0f, LC_LORA_TARGET_ALL, 7, &fm) || ft_run_new(fm, 2, 6, 2, &r)) {
        ft_model_free(fm);
        lc_model_free(m);
        FAILF("setup: %s", lc_last_error());
    }
    randomize_adapters(fm, 0.4);
    enum { S = 2, T = 6 };
    int32_t tok[S * T], tgt[S * T];
    for (int i = 0; i < S * T; i++) tok[i] = 3 + (int32_t)((i * 37 + 11) % 500), tgt[i] = 3 + (int32_t)((i * 53 + 5) % 500);
    tgt[2] = tgt[9] = -1; /* positions without a loss (as chat data has) */
    tr_model *t = fm->lora_m;
    memset(t->grads, 0, t->n_params * sizeof(float));
    const double loss = ft_run_step(r, tok, tgt, S, true, 1.0f);
    dmodel d;
    dmodel_init(&d, fm);
    const double ref = ref_llama_loss(&d.M, tok, tgt, S, T, NULL);
    bool ok = fabs(loss - ref) <= 1e-5 * fabs(ref);
    char why[512] = "";
    if (!ok) snprintf(why, sizeof why, "loss %.9g, double reference %.9g", loss, ref);
    const int per = quick() ? 3 : 8; /* entries checked per tensor */
    double worst = 0;
    for (int ti = 0; ok && ti < t->n_tensors; ti++) {
        const tr_tensor *x = &t->tensors[ti];
        const size_t n = (size_t)x->ne0 * x->ne1;
        const int l = ti / 2 / FT_N_PROJ, p = ti / 2 % FT_N_PROJ; /* all seven adapted: tensors in (layer, proj) order */
        float an[8];
        double num[8];
        for (int k = 0; k < per; k++) {
            const size_t i = (n * (size_t)(2 * k + 1)) / (size_t)(2 * per);
            double *q = d.P + x->off + i;
            const double keep = *q, h = 1e-5;
            *q = keep + h, dmodel_merge(&d, fm, l, p);
            const double fp = ref_llama_loss(&d.M, tok, tgt, S, T, NULL);
            *q = keep - h, dmodel_merge(&d, fm, l, p);
            const double fmn = ref_llama_loss(&d.M, tok, tgt, S, T, NULL);
            *q = keep, dmodel_merge(&d, fm, l, p);
            num[k] = (fp - fmn) / (2 * h);
            an[k] = t->grads[x->off + i];
        }
        size_t wi;
        const double e = grad_cmp(an, num, (size_t)per, 2e-3, 2e-4, &wi);
        worst = fmax(worst, e);
        if (e > 1) {
            ok = false;
            snprintf(why, sizeof why, "%s entry %d: analytic %.6g, numeric %.6g", x->name, (int)wi, an[wi], num[wi]);
        }
    }
    printf("        %s base: loss %.6f (double %.6f), worst gradient error %.2f of the bound\n", lc_type_name(wtype), loss,
           ref, worst);
    dmodel_free(&d);
    ft_run_free(r);
    ft_model_free(fm);
    lc_model_free(m);
    CHECKF(ok, "%s", why);
}

TEST(lora_gradients_match_finite_differences_f32) { check_gradients(LC_TYPE_F32, false); }
TEST(lora_gradients_match_finite_differences_q8_0) { check_gradients(LC_TYPE_Q8_0, true); }

/* ---- the fine-tuning forward computes what inference computes with the adapter ---- */

static double max_rel(const float *a, const float *b, int n, int nv) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double d = 0, r = 0;
        for (int j = 0; j < nv; j++) {
            const double x = a[(size_t)i * nv + j], y = b[(size_t)i * nv + j];
            d += (x - y) * (x - y), r += y * y;
        }
        worst = fmax(worst, sqrt(d) / (sqrt(r) + 1e-30));
    }
    return worst;
}

/* Logits of every position, llamac with adapter ad at scale (ad NULL: none), KV f32. */
static int llamac_logits(const char *model, const char *ad, float scale, const int32_t *ids, int n, float *out) {
    lc_model *m;
    if (lc_model_load(model, NULL, &m)) return -1;
    const int nv = (int)lc_model_hparams(m)->n_vocab;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 256, cp.n_batch = 256, cp.n_threads = 2, cp.kv_type = LC_TYPE_F32;
    lc_context *c = NULL;
    lc_lora *l = NULL;
    int r = lc_context_new(m, &cp, &c);
    if (!r && ad) r = lc_lora_load(m, ad, &l);
    if (!r && ad) r = lc_context_set_lora(c, &l, &scale, 1);
    int8_t want[256];
    memset(want, 1, sizeof want);
    lc_batch b = {.n_tokens = n, .token = ids, .logits = want};
    if (!r) r = lc_decode(c, &b);
    for (int i = 0; !r && i < n; i++) memcpy(out + (size_t)i * nv, lc_get_logits(c, i), sizeof *out * (size_t)nv);
    if (r) fprintf(stderr, "llamac: %s\n", lc_last_error());
    lc_context_free(c);
    lc_lora_free(l);
    lc_model_free(m);
    return r;
}

static int write_adapter(const ft_model *fm, const char *path) {
    gguf_writer *w = gguf_writer_new();
    int r = w ? ft_model_to_gguf(fm, w, "test") : LC_E_NOMEM;
    if (!r) r = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return r;
}

TEST(training_forward_matches_inference_with_the_adapter) {
    static const struct {
        int wtype;
        const char *ftype;
        double bound; /* F32: summation order; else inference rounds the activations (F16; Q8_0, Q8_K) */
    } cases[] = {{LC_TYPE_F32, NULL, 2e-5}, {LC_TYPE_Q8_0, NULL, 5e-2}, {LC_TYPE_F32, "Q4_K_M", 5e-2},
                 {LC_TYPE_F16, "L31", 5e-3}, {LC_TYPE_F32, "Q4_0", 5e-2}}; /* Q4_0: repacked at load (r8) */
    enum { T = 40 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = 3 + (int32_t)((unsigned)(i * 7919) % 500);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *model = path_in("fwd.gguf"), *ad = path_in("fwd-ad.gguf");
        CHECK_OK(make_base(model, cases[c].wtype, cases[c].ftype, 256, 512, c == 1, 0.05f));
        lc_model *m = NULL;
        CHECK_OK(lc_model_load(model, NULL, &m));
        ft_model *fm = NULL;
        ft_run *r = NULL;
        if (ft_model_new(m, 4, 8.0f, LC_LORA_TARGET_ALL, 3, &fm) || ft_run_new(fm, 1, T, 2, &r)) {
            ft_model_free(fm);
            lc_model_free(m);
            FAILF("setup: %s", lc_last_error());
        }
        randomize_adapters(fm, 0.05);
        int32_t tgt[T];
        for (int i = 0; i < T; i++) tgt[i] = i + 1 < T ? ids[i + 1] : -1;
        ft_run_step(r, ids, tgt, 1, false, 0.0f);
        const int nv = fm->n_vocab;
        float *a = malloc(sizeof *a * T * (size_t)nv), *b = malloc(sizeof *b * T * (size_t)nv);
        float *base = malloc(sizeof *base * T * (size_t)nv);
        memcpy(a, ft_run_logits(r), sizeof *a * T * (size_t)nv);
        const int wr = write_adapter(fm, ad);
        ft_run_free(r);
        ft_model_free(fm);
        lc_model_free(m);
        const bool got = !wr && !llamac_logits(model, ad, 1.0f, ids, T, b) && !llamac_logits(model, NULL, 0, ids, T, base);
        const double e = got ? max_rel(a, b, T, nv) : 1, moved = got ? max_rel(base, b, T, nv) : 0;
        free(a), free(b), free(base);
        printf("        %s base: training forward vs lc_decode with the adapter: max rel %.1e (bound %.0e; the "
               "adapter moves the logits by %.1e)\n",
               !cases[c].ftype ? lc_type_name(cases[c].wtype)
               : strcmp(cases[c].ftype, "L31") ? cases[c].ftype : "F16, Llama 3.1 RoPE, head_dim 48,", e,
               cases[c].bound, moved);
        CHECKF(got, "could not compute the logits: %s", lc_last_error());
        CHECKF(e <= cases[c].bound && moved > 5 * e, "case %zu: rel %.2e, moved %.2e", c, e, moved);
    }
}

/* ---- lc_finetune end to end ---- */

/* A text whose continuation a small adapter can learn: a fixed cycle of words. */
static const char *write_text(void) {
    const char *path = path_in("text.txt");
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    static const char *const w[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park"};
    for (int i = 0; i < 3000; i++) fprintf(f, "%s%s", w[i % 11], i % 11 == 10 ? ".\n" : " ");
    fclose(f);
    return path;
}

typedef struct losses {
    double first, last, val;
    int64_t steps;
} losses;

static int record(const lc_train_stats *s, void *user) {
    losses *l = user;
    if (s->event == LC_TRAIN_STEP && s->step == 1) l->first = s->loss;
    if (s->event == LC_TRAIN_STEP) l->last = s->loss, l->steps = s->step;
    if (s->event == LC_TRAIN_EVAL) l->val = s->val_loss;
    return 0;
}

static lc_finetune_params text_params(const lc_model *m, const char *const *data, const char *out, losses *l) {
    lc_finetune_params p = lc_finetune_default_params();
    p.model = m, p.data = data, p.n_data = 1, p.out = out;
    p.rank = 4, p.n_ctx = 32, p.batch = 4, p.n_steps = quick() ? 25 : 60, p.lr = 1e-2f, p.warmup = 5;
    p.eval_every = 0, p.n_threads = 2, p.seed = 3, p.on_event = record, p.user = l;
    return p;
}

/* The oracle is llama.cpp's prebuilt x86-64 Linux binary: other builds (the ARM64 one under qemu) skip it. */
static const char *oracle_path(void) {
#if !(defined(__x86_64__) && defined(__linux__))
    return NULL;
#endif
    static char buf[1024];
    const char *e = getenv("LLAMAC_ORACLE");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : ".oracle/lc_oracle");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

static bool oracle_required(void) {
#if defined(__x86_64__) && defined(__linux__)
    const char *e = getenv("LLAMAC_REQUIRE_ORACLE");
    return e && !strcmp(e, "1");
#else
    return false;
#endif
}

static int oracle_logits(const char *model, const char *ad, float scale, const int32_t *ids, int n, float *out,
                         size_t count) {
    const char *idp = path_in("ids"), *op = path_in("oracle.f32");
    char cmd[2048];
    FILE *f = fopen(idp, "w");
    if (!f) return -1;
    for (int i = 0; i < n; i++) fprintf(f, "%d ", ids[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' -i '%s' -o '%s' -t 2 --kv f32 --lora '%s' --lora-scale %g 2>/dev/null",
             oracle_path(), model, idp, op, ad, scale);
    if (system(cmd)) return -1;
    f = fopen(op, "rb");
    if (!f) return -1;
    const size_t got = fread(out, sizeof *out, count, f);
    fclose(f);
    return got == count ? 0 : -1;
}

TEST(finetuned_adapter_matches_llama_cpp_and_scale_zero_is_the_base) {
    if (!oracle_path()) {
        if (oracle_required()) FAILF("llama.cpp oracle .oracle/lc_oracle missing and LLAMAC_REQUIRE_ORACLE=1");
        SKIP("llama.cpp oracle .oracle/lc_oracle not built (tests/oracle/build-oracle.sh; x86-64 Linux only)");
    }
    const char *text = write_text();
    CHECK(text);
    static const struct {
        int wtype;
        const char *ftype;
        double bound; /* llamac vs llama.cpp on the base type (test_fidelity.c's bounds) */
    } cases[] = {{LC_TYPE_F32, NULL, 1e-4}, {LC_TYPE_Q8_0, NULL, 5e-2}, {LC_TYPE_F32, "Q4_K_M", 5e-2}};
    enum { N = 48 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 3 + (int32_t)((unsigned)(i * 7919) % 500);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *model = path_in("o-base.gguf"), *ad = path_in("o-ad.gguf");
        CHECK_OK(make_base(model, cases[c].wtype, cases[c].ftype, 256, 512, false, 0.05f));
        lc_model *m = NULL;
        CHECK_OK(lc_model_load(model, NULL, &m));
        losses l = {0};
        const char *data[1] = {text};
        lc_finetune_params p = text_params(m, data, ad, &l);
        p.n_steps = quick() ? 10 : 30;
        const int fr = lc_finetune(&p, NULL);
        lc_model_free(m);
        CHECKF(fr == 0, "lc_finetune: %s", lc_last_error());
        const int nv = 512;
        float *a = malloc(sizeof *a * N * nv), *b = malloc(sizeof *b * N * nv), *base = malloc(sizeof *base * N * nv);
        float *zero = malloc(sizeof *zero * N * nv);
        bool got = !llamac_logits(model, ad, 1.0f, ids, N, a) && !oracle_logits(model, ad, 1.0f, ids, N, b, (size_t)N * nv) &&
                   !llamac_logits(model, NULL, 0, ids, N, base) && !llamac_logits(model, ad, 0.0f, ids, N, zero);
        const double e = got ? max_rel(a, b, N, nv) : 1, moved = got ? max_rel(base, b, N, nv) : 0;
        const bool same = got && !memcmp(base, zero, sizeof *base * N * nv);
        free(a), free(b), free(base), free(zero);
        printf("        %s base, adapter after %d steps: llamac vs llama.cpp max rel %.1e (bound %.0e; the adapter "
               "moves the logits by %.1e); scale 0 %s the base logits\n",
               cases[c].ftype ? cases[c].ftype : lc_type_name(cases[c].wtype), (int)p.n_steps, e, cases[c].bound, moved,
               same ? "gives exactly" : "does NOT give");
        CHECKF(got, "could not compute the logits (llamac or the oracle failed)");
        CHECKF(e <= cases[c].bound && moved > 5 * e, "case %zu: rel %.2e (bound %.0e), moved %.2e", c, e,
               cases[c].bound, moved);
        CHECKF(same, "scale 0 should give the base logits bit for bit");
    }
}

TEST(finetuning_text_loss_falls) {
    const char *text = write_text(), *model = path_in("lf.gguf"), *ad = path_in("lf-ad.gguf");
    CHECK(text);
    CHECK_OK(make_base(model, LC_TYPE_Q8_0, NULL, 128, 256, false, 0.05f));
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(model, NULL, &m));
    losses l = {0};
    const char *data[1] = {text};
    lc_finetune_params p = text_params(m, data, ad, &l);
    lc_train_stats st;
    const int fr = lc_finetune(&p, &st);
    lc_model_free(m);
    CHECKF(fr == 0, "lc_finetune: %s", lc_last_error());
    printf("        Q8_0 base, rank 4: loss step 1 %.3f (ln 512 = %.3f), step %lld train %.3f, val %.3f; %.0f tok/s\n",
           l.first, log(512.0), (long long)l.steps, l.last, l.val, st.tokens_per_s);
    /* the stated amount: at least 2 nats in 60 steps (1 in the quick run's 25) */
    const double need = quick() ? 1.0 : 2.0;
    CHECKF(l.steps == p.n_steps && l.first - l.val >= need && l.first - l.last >= need,
           "loss fell from %.3f to %.3f (val %.3f), want at least %.1f", l.first, l.last, l.val, need);
    struct stat sb;
    CHECK(stat(ad, &sb) == 0 && sb.st_size > 0);
}

static int kill_at_6(const lc_train_stats *s, void *user) {
    (void)user;
    if (s->event == LC_TRAIN_STEP && s->step == 6) raise(SIGKILL);
    return 0;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 24);
    *n = buf ? fread(buf, 1, 1 << 24, f) : 0;
    fclose(f);
    return buf;
}

/* A run killed (SIGKILL) after step 6 with checkpoints every 4 steps, resumed with another thread count, writes
** the same adapter as an uninterrupted run; a resume with another seed is refused. */
TEST(resume_after_kill_gives_the_same_adapter) {
    const char *text = write_text(), *model = path_in("rs.gguf"), *a = path_in("rs-a.gguf"), *b = path_in("rs-b.gguf");
    CHECK(text);
    CHECK_OK(make_base(model, LC_TYPE_Q8_0, NULL, 128, 256, false, 0.05f));
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(model, NULL, &m));
    losses l = {0};
    const char *data[1] = {text};
    lc_finetune_params p = text_params(m, data, a, &l);
    p.n_steps = 10, p.checkpoint_every = 4, p.eval_every = 5;
    int r = lc_finetune(&p, NULL);
    if (r) lc_model_free(m);
    CHECKF(r == 0, "uninterrupted run: %s", lc_last_error());
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        lc_finetune_params pk = p;
        pk.out = b, pk.n_threads = 1, pk.on_event = kill_at_6;
        lc_finetune(&pk, NULL);
        _exit(3); /* not reached when the kill happens */
    }
    int status = 0;
    const bool killed = pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    struct stat sb;
    char ck[256];
    snprintf(ck, sizeof ck, "%s.ckpt", b);
    const bool ck_there = stat(ck, &sb) == 0, out_absent = stat(b, &sb) != 0;
    lc_finetune_params pr = p;
    pr.out = b, pr.resume = true, pr.seed = 99;
    const int bad = lc_finetune(&pr, NULL);
    const bool refused = bad == LC_E_INVALID && strstr(lc_last_error(), "--seed");
    pr.seed = p.seed, pr.n_threads = 2;
    lc_train_stats st;
    r = lc_finetune(&pr, &st);
    lc_model_free(m);
    CHECKF(killed && ck_there && out_absent, "the child was not killed after a checkpoint (status %d)", status);
    CHECKF(refused, "a resume with another seed: status %d, %s", bad, lc_last_error());
    CHECKF(r == 0, "resume: %s", lc_last_error());
    CHECK_EQ_INT(st.resumed_from, 4);
    size_t na = 0, nb = 0;
    unsigned char *da = slurp(a, &na), *db = slurp(b, &nb);
    const bool same = da && db && na == nb && !memcmp(da, db, na);
    free(da), free(db);
    CHECKF(same, "the resumed adapter (%zu bytes) differs from the uninterrupted one (%zu bytes)", nb, na);
}

/* ---- chat data ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* A small model with a Llama 3 vocabulary (byte-level BPE with <|start_header_id|> ... <|eot_id|>, trained here),
** so the model's family template is Llama 3's. Trained a little, so that its (tied, frozen) embeddings are large
** enough for an adapter to move the output distribution far. */
static const char *llama3_model(void) {
    static char path[192];
    if (path[0]) return path;
    const char *corpus = path_in("chat-corpus.txt"), *tok = path_in("chat-tok.gguf");
    FILE *f = fopen(corpus, "w");
    if (!f) return NULL;
    const int n_lines = quick() ? 80 : 200; /* quick (ASan, qemu): less to train on */
    for (int i = 0; i < n_lines; i++) fprintf(f, "hello how are you today? I am fine, thank you. What is %d plus %d?\n", i, i + 1);
    fclose(f);
    const char *files[1] = {corpus};
    lc_train_tokenizer_params tp = {.files = files, .n_files = 1, .vocab_size = 400};
    if (lc_train_tokenizer(&tp, tok)) return NULL;
    lc_train_params p = lc_train_default_params();
    p.corpus = files, p.n_corpus = 1, p.tokenizer = tok, p.n_steps = 60, p.batch = 4, p.lr = 1e-2f, p.n_threads = 2;
    p.checkpoint_every = 0, p.eval_every = 0;
    snprintf(path, sizeof path, "%s", path_in("chat-model.gguf"));
    p.out = path;
    if (lc_train(&p, NULL)) return path[0] = 0, NULL;
    return path;
}

TEST(chat_loss_is_on_the_assistant_turns_only) {
    const char *model = llama3_model();
    CHECKF(model, "could not make the Llama 3 vocabulary model: %s", lc_last_error());
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(model, NULL, &m));
    lc_chat *ch = NULL;
    CHECK_OK(lc_chat_new(m, NULL, NULL, &ch));
    static const char line[] =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
        "\"hello how are you?\"}, {\"role\": \"assistant\", \"content\": \"I am fine, thank you.\"}, {\"role\": "
        "\"user\", \"content\": \"What is 2 plus 3?\"}, {\"role\": \"assistant\", \"content\": \"5\"}]}";
    int32_t *tok = NULL;
    uint8_t *mask = NULL;
    size_t n = 0;
    const int r = ft_chat_encode(m, ch, line, sizeof line - 1, &tok, &mask, &n);
    char in[512] = "", out[512] = "";
    size_t ni = 0, no = 0;
    for (size_t i = 0; !r && i < n; i++) { /* the text of the masked-in and of the other tokens */
        char buf[256];
        const int k = lc_tokenizer_token_bytes(lc_model_tokenizer(m), tok[i], buf, sizeof buf);
        char *dst = mask[i] ? in : out;
        size_t *dn = mask[i] ? &ni : &no;
        if (k > 0 && *dn + (size_t)k < sizeof in) memcpy(dst + *dn, buf, (size_t)k), *dn += (size_t)k, dst[*dn] = 0;
    }
    const bool bos_first = !r && n && tok[0] == lc_token_bos(m) && !mask[0];
    free(tok), free(mask);
    lc_chat_free(ch);
    lc_model_free(m);
    CHECKF(r == 0, "ft_chat_encode: %s", lc_last_error());
    /* Meta's Llama 3 format: each assistant turn is "<|start_header_id|>assistant<|end_header_id|>\n\n" + content +
    ** "<|eot_id|>"; the loss covers the content and the end-of-turn token */
    CHECKF(!strcmp(in, "I am fine, thank you.<|eot_id|>5<|eot_id|>"), "assistant tokens: '%s'", in);
    CHECKF(strstr(out, "<|start_header_id|>assistant<|end_header_id|>\n\n") && strstr(out, "hello how are you?") &&
               strstr(out, "Be brief.") && !strstr(out, "thank you"),
           "other tokens: '%s'", out);
    CHECK(bos_first);
}

TEST(chat_finetuning_loss_falls_and_bad_lines_are_named) {
    const char *model = llama3_model(), *data = path_in("chat.jsonl"), *ad = path_in("chat-ad.gguf");
    CHECKF(model, "could not make the Llama 3 vocabulary model: %s", lc_last_error());
    FILE *f = fopen(data, "w");
    CHECK(f);
    for (int i = 0; i < 40; i++) /* 40 lines even when quick: the bad line's number below is fixed */
        fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"What is %d plus %d?\"}, {\"role\": \"assistant\", "
                   "\"content\": \"I am fine, thank you.\"}]}\n%s", i, i + 1, i % 10 == 3 ? "\n" : "");
    fprintf(f, "[{\"role\": \"user\", \"content\": \"no answer here\"}]\n");
    fclose(f);
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(model, NULL, &m));
    losses l = {0};
    const char *files[1] = {data};
    lc_finetune_params p = text_params(m, files, ad, &l);
    p.chat = true, p.n_ctx = 64, p.val_frac = 0.1, p.rank = 8, p.batch = 8, p.lr = 2e-2f;
    p.n_steps = quick() ? 15 : 40;
    lc_train_stats st;
    int fr = lc_finetune(&p, &st);
    printf("        chat data: %llu assistant tokens with a loss; loss step 1 %.3f, step %lld %.3f, val %.3f\n",
           (unsigned long long)st.n_train_tokens, l.first, (long long)l.steps, l.last, l.val);
    bool ok = fr == 0 && l.first - l.last >= 2.0 && l.first - l.val >= 2.0;
    char why[600];
    snprintf(why, sizeof why, "status %d (%s), loss %.3f -> %.3f, val %.3f: want a fall of 2 nats", fr,
             fr ? lc_last_error() : "", l.first, l.last, l.val);
    /* a broken line is refused with the file and line */
    f = fopen(data, "a");
    if (f) fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, oops]}\n"), fclose(f);
    p.n_steps = 1;
    fr = lc_finetune(&p, NULL);
    char want[256];
    snprintf(want, sizeof want, "%s:46:", data);
    const bool named = fr == LC_E_INVALID && strstr(lc_last_error(), want);
    if (ok && !named) snprintf(why, sizeof why, "bad line: status %d, message '%s' (want '%s')", fr, lc_last_error(), want);
    lc_model_free(m);
    CHECKF(ok && named, "%s", why);
}

/* ---- the command line ---- */

TEST(cli_finetune_then_run_with_the_adapter) {
    if (!g_bin[0] || sh("%s --version > /dev/null 2>&1", g_bin)) SKIP("the llamac binary does not run here");
    const char *text = write_text(), *model = path_in("cli.gguf"), *ad = path_in("cli-ad.gguf");
    CHECK(text);
    CHECK_OK(make_base(model, LC_TYPE_F16, NULL, 128, 256, true, 0.05f));
    const char *log = path_in("cli.log");
    CHECKF(!sh("%s finetune -m %s -f %s --lora-rank 4 --lora-targets attn,down --ctx 32 --batch 4 --steps 8 -t 2 -o %s "
               "> %s 2>&1", g_bin, model, text, ad, log),
           "llamac finetune failed (see %s)", log);
    CHECKF(!sh("grep -q 'tok/s' %s && grep -q 'wrote' %s", log, log), "no progress or result line in %s", log);
    lc_model *m = NULL;
    lc_lora *l = NULL;
    CHECK_OK(lc_model_load(model, NULL, &m));
    const int lr = lc_lora_load(m, ad, &l);
    lc_lora_free(l);
    lc_model_free(m);
    CHECKF(lr == 0, "the adapter does not load: %s", lc_last_error());
    const char *o[3] = {path_in("cli0.json"), path_in("cli1.json"), path_in("cli2.json")};
    const char *extra[3] = {"", "--lora-scale 1", "--lora-scale 0"};
    for (int i = 0; i < 3; i++)
        CHECK(!sh("%s logits -m %s --ids 1,7,42,99 --kv f32 -t 2 %s %s %s > %s 2>/dev/null", g_bin, model, i ? "--lora" : "",
                  i ? ad : "", extra[i], o[i]));
    CHECKF(sh("cmp -s %s %s", o[0], o[1]) != 0, "--lora did not change the logits");
    CHECKF(!sh("cmp -s %s %s", o[0], o[2]), "--lora FILE --lora-scale 0 should print the base model's logits");
    CHECK(!sh("%s run -m %s --lora %s --lora-scale 0.5 -p hello -n 4 --seed 1 > /dev/null 2>&1", g_bin, model, ad));
    CHECKF(sh("%s finetune -m %s -f %s --lora-targets qq -o %s > /dev/null 2>&1", g_bin, model, text, ad) >> 8 == 2,
           "a bad --lora-targets should be a usage error");
}

int main(int argc, char **argv) {
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    if (slash) snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv[0]), argv[0]);
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-test-finetune-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    printf("test_finetune (oracle: %s)\n", oracle_path() ? oracle_path() : "absent");
    RUN(lora_gradients_match_finite_differences_f32);
    RUN(lora_gradients_match_finite_differences_q8_0);
    RUN(training_forward_matches_inference_with_the_adapter);
    RUN(finetuned_adapter_matches_llama_cpp_and_scale_zero_is_the_base);
    RUN(finetuning_text_loss_falls);
    RUN(resume_after_kill_gives_the_same_adapter);
    RUN(chat_loss_is_on_the_assistant_turns_only);
    RUN(chat_finetuning_loss_falls_and_bad_lines_are_named);
    RUN(cli_finetune_then_run_with_the_adapter);
    sh("rm -rf %s", g_dir);
    return TEST_SUMMARY();
}
