/* cmd_train.c - `llamac train`: pre-trains a small Llama model from scratch on text files (lc_train) and writes a
** GGUF that `llamac run` loads. Shows a progress line on a terminal (loss, tokens/s, GFLOP/s, ETA), prints train and
** validation loss with perplexity at every evaluation; Ctrl-C stops after the current step with a checkpoint, so
** `--resume` continues where it stopped.
*/
#include "cli.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *help_head =
    "usage: llamac train -f CORPUS [-f CORPUS... | CORPUS...] --tokenizer tok.gguf -o model.gguf [options]\n"
    "\n"
    "Pre-trains a Llama model (f32, tied output embedding, GQA, RoPE, SwiGLU) from scratch on the CPU: each step\n"
    "draws --batch windows of --ctx+1 tokens at random (seeded) from the training part of the corpus, runs forward\n"
    "and backward passes, clips the gradient norm and takes an AdamW step (linear warm-up, cosine decay). A fraction\n"
    "of the corpus (every k-th chunk) is held out: its loss and perplexity are printed every --eval-every steps.\n"
    "Checkpoints (weights, Adam moments, step, generator state) go to OUT.ckpt every --checkpoint-every steps, by\n"
    "rename; --resume continues from it, and a killed-and-resumed run ends with the same bytes as an uninterrupted\n"
    "one (same options). The model is written through a temporary file and a rename, with the tokenizer's\n"
    "tokenizer.* keys, and runs with `llamac run -m model.gguf`.\n"
    "\n"
    "options:\n"
    "  -f, --file FILE        a UTF-8 text file (repeatable; further arguments are corpus files too)\n"
    "  --doc-sep LINE         a line equal to LINE separates documents (e.g. % for fortune files); each document\n"
    "                         gets BOS (when the tokenizer adds it) and EOS. Default: one document per file\n"
    "  --tokenizer FILE       a GGUF with a vocabulary (llamac train-tokenizer, or any GGUF model)\n"
    "  -o, --output FILE      the model to write\n"
    "  --config NAME          model shape (default tiny):\n";

static const char *help_tail =
    "  --dim N, --layers N, --heads N, --kv-heads N, --ff N\n"
    "                         override the shape of --config\n"
    "  --ctx T                tokens per training sequence (default: the config's)\n"
    "  --steps N              optimizer steps (default 1000)\n"
    "  --batch B              sequences per step (default 16)\n"
    "  --micro-batch M        sequences per forward/backward pass (default: about 1024 tokens; memory)\n"
    "  --lr LR                peak learning rate (default 1e-3)\n"
    "  --min-lr LR            final learning rate of the cosine decay (default LR/10)\n"
    "  --warmup W             linear warm-up steps (default min(100, steps/10))\n"
    "  --weight-decay WD      AdamW decoupled weight decay on matrices, not norms (default 0.1)\n"
    "  --beta1 B, --beta2 B   AdamW moments (default 0.9, 0.95)\n"
    "  --clip C               clip the global gradient norm to C (default 1.0; 0: off)\n"
    "  --val-frac F           fraction held out for validation (default 0.05)\n"
    "  --val-batches N        validation batches per evaluation (default 4)\n"
    "  --eval-every N         steps between validations (default 100; 0: only at the end)\n"
    "  --log-every N          steps between log lines (default 10)\n"
    "  --checkpoint-every N   steps between checkpoints (default 100; 0: only at the end). The last one stays:\n"
    "                         --resume with a larger --steps trains on (the cosine schedule stretches)\n"
    "  --checkpoint FILE      checkpoint path (default OUT.ckpt)\n"
    "  --resume               continue from the checkpoint (must be the same run: shape, batch, seed, data)\n"
    "  --stop-after N         stop after step N with a checkpoint and the model, as Ctrl-C does but at a chosen\n"
    "                         step (the schedule stays that of --steps): a run can be made in parts, the same\n"
    "                         every time\n"
    "  --seed S               initial weights and window sampling (default 1)\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "  -h, --help             this help\n"
    "\n"
    "example:\n"
    "  llamac train-tokenizer -f corpus.txt --vocab 4096 -o tok.gguf\n"
    "  llamac train -f corpus.txt --tokenizer tok.gguf --config small --steps 1500 -o model.gguf\n"
    "  llamac run -m model.gguf -p \"Once upon a time\"\n";

static void print_help(void) {
    fputs(help_head, stdout);
    lc_train_config c;
    const char *desc, *name;
    for (size_t i = 0; (name = lc_train_config_preset(i, &c, &desc)); i++) { /* "shape: notes" on two lines */
        const char *colon = strstr(desc, ": ");
        if (colon) printf("%27s%-7s %.*s\n%35s%s\n", "", name, (int)(colon - desc), desc, "", colon + 2);
        else printf("%27s%-7s %s\n", "", name, desc);
    }
    fputs(help_tail, stdout);
}

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends at once */
}

typedef struct ui {
    bool tty;
    int64_t log_every;
    double last_draw;
    const char *ckpt;
    bool resume;
    int64_t stop_after; /* 0: none */
} ui;

static void fmt_time(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    const long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static void clear_line(ui *u) {
    if (u->tty) fputs("\r\033[K", stderr);
}

static int on_event(const lc_train_stats *s, void *user) {
    ui *u = user;
    char eta[32], el[32];
    switch (s->event) {
    case LC_TRAIN_START:
        printf("model: %.2f M parameters, vocabulary %llu; corpus: %llu training tokens, %llu validation tokens; "
               "kernel %s\n",
               (double)s->n_params / 1e6, (unsigned long long)s->n_vocab, (unsigned long long)s->n_train_tokens,
               (unsigned long long)s->n_val_tokens, s->kernel);
        if (s->resumed_from >= 0) printf("resumed from %s at step %lld\n", u->ckpt, (long long)s->resumed_from);
        else if (u->resume) printf("no checkpoint %s: starting from the beginning\n", u->ckpt);
        fflush(stdout);
        break;
    case LC_TRAIN_STEP:
        fmt_time(eta, sizeof eta, s->eta_s);
        if (u->log_every > 0 && (s->step % u->log_every == 0 || s->step == s->n_steps)) {
            clear_line(u);
            printf("step %lld/%lld  loss %.4f  lr %.2e  grad norm %.3f  %.0f tok/s  %.1f GFLOP/s  ETA %s\n",
                   (long long)s->step, (long long)s->n_steps, s->loss, s->lr, s->grad_norm, s->tokens_per_s, s->gflops,
                   eta);
            fflush(stdout);
        }
        if (u->tty && (lc_time_s() - u->last_draw > 0.2 || s->step == s->n_steps)) {
            u->last_draw = lc_time_s();
            const int pct = (int)(100.0 * (double)s->step / (double)s->n_steps);
            char cells[26];
            for (int i = 0; i < 25; i++) cells[i] = i < pct / 4 ? '#' : '.';
            cells[25] = 0;
            fprintf(stderr, "\r\033[K[%s] %3d%% step %lld/%lld loss %.3f %.0f tok/s ETA %s", cells, pct,
                    (long long)s->step, (long long)s->n_steps, s->loss, s->tokens_per_s, eta);
            fflush(stderr);
        }
        break;
    case LC_TRAIN_EVAL:
        clear_line(u);
        if (isnan(s->val_loss))
            printf("step %lld: train loss %.4f (no validation text: --val-frac 0, or too little for one window)\n",
                   (long long)s->step, s->loss);
        else
            printf("step %lld: train loss %.4f, val loss %.4f, val perplexity %.2f\n", (long long)s->step, s->loss,
                   s->val_loss, exp(s->val_loss));
        fflush(stdout);
        break;
    case LC_TRAIN_CHECKPOINT:
        if (g_stop || (u->stop_after > 0 && s->step >= u->stop_after && s->step < s->n_steps)) {
            clear_line(u);
            printf("%s: checkpoint %s at step %lld (continue with --resume)\n",
                   g_stop ? "interrupted" : "stopped as asked (--stop-after)", u->ckpt, (long long)s->step);
        }
        break;
    case LC_TRAIN_DONE:
        clear_line(u);
        fmt_time(el, sizeof el, s->elapsed_s);
        printf("done: %lld steps in %s, %.0f tokens/s, %.1f GFLOP/s (time: matmul %.1f s, attention %.1f s, "
               "other %.1f s)\n",
               (long long)s->step, el, s->tokens_per_s, s->gflops, s->time_matmul_s, s->time_attention_s,
               s->time_other_s);
        break;
    }
    return g_stop || (u->stop_after > 0 && s->step >= u->stop_after) ? 1 : 0;
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!files || !rest) {
        free(files), free(rest);
        return cli_error("out of memory");
    }
    size_t nf = 0;
    int nr = 0;
    for (int i = 0; i < argc; i++) { /* -f repeats: collected here */
        if (i > 0 && (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) files[nf++] = argv[++i];
        else rest[nr++] = argv[i];
    }
    lc_train_params p = lc_train_default_params();
    const char *config = "tiny", *tokenizer = NULL, *out = NULL, *ckpt = NULL, *doc_sep = NULL;
    int64_t dim = 0, layers = 0, heads = 0, kv_heads = 0, ff = 0, ctx = 0, steps = p.n_steps, batch = p.batch,
            micro = 0, warmup = -1, val_batches = p.val_batches, eval_every = p.eval_every, log_every = 10,
            ckpt_every = p.checkpoint_every, threads = 0, stop_after = 0;
    double lr = p.lr, min_lr = -1, wd = p.weight_decay, b1 = p.beta1, b2 = p.beta2, clip = p.clip,
           val_frac = p.val_frac;
    uint64_t seed = p.seed;
    bool resume = false, help = false;
    const cli_opt opts[] = {
        {NULL, "--tokenizer", CLI_STR, &tokenizer, 0, 0, NULL, NULL},
        {"-o", "--output", CLI_STR, &out, 0, 0, NULL, NULL},
        {NULL, "--config", CLI_STR, &config, 0, 0, NULL, NULL},
        {NULL, "--doc-sep", CLI_STR, &doc_sep, 0, 0, NULL, NULL},
        {NULL, "--dim", CLI_INT, &dim, 2, 16384, NULL, NULL},
        {NULL, "--layers", CLI_INT, &layers, 1, 256, NULL, NULL},
        {NULL, "--heads", CLI_INT, &heads, 1, 1024, NULL, NULL},
        {NULL, "--kv-heads", CLI_INT, &kv_heads, 1, 1024, NULL, NULL},
        {NULL, "--ff", CLI_INT, &ff, 1, 65536, NULL, NULL},
        {NULL, "--ctx", CLI_INT, &ctx, 2, 16384, NULL, NULL},
        {NULL, "--steps", CLI_INT, &steps, 1, 1LL << 40, NULL, NULL},
        {NULL, "--batch", CLI_INT, &batch, 1, 65536, NULL, NULL},
        {NULL, "--micro-batch", CLI_INT, &micro, 1, 65536, NULL, NULL},
        {NULL, "--lr", CLI_FLOAT, &lr, 1e-12, 10, NULL, NULL},
        {NULL, "--min-lr", CLI_FLOAT, &min_lr, 0, 10, NULL, NULL},
        {NULL, "--warmup", CLI_INT, &warmup, 0, 1LL << 40, NULL, NULL},
        {NULL, "--weight-decay", CLI_FLOAT, &wd, 0, 10, NULL, NULL},
        {NULL, "--beta1", CLI_FLOAT, &b1, 0, 0.999999, NULL, NULL},
        {NULL, "--beta2", CLI_FLOAT, &b2, 0, 0.999999, NULL, NULL},
        {NULL, "--clip", CLI_FLOAT, &clip, 0, 1e9, NULL, NULL},
        {NULL, "--val-frac", CLI_FLOAT, &val_frac, 0, 0.9, NULL, NULL},
        {NULL, "--val-batches", CLI_INT, &val_batches, 1, 1 << 20, NULL, NULL},
        {NULL, "--eval-every", CLI_INT, &eval_every, 0, 1LL << 40, NULL, NULL},
        {NULL, "--log-every", CLI_INT, &log_every, 0, 1LL << 40, NULL, NULL},
        {NULL, "--checkpoint-every", CLI_INT, &ckpt_every, 0, 1LL << 40, NULL, NULL},
        {NULL, "--checkpoint", CLI_STR, &ckpt, 0, 0, NULL, NULL},
        {NULL, "--resume", CLI_FLAG, &resume, 0, 0, NULL, NULL},
        {NULL, "--stop-after", CLI_INT, &stop_after, 1, 1LL << 40, NULL, NULL},
        {NULL, "--seed", CLI_U64, &seed, 0, 0, NULL, NULL},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
    };
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    size_t n_pos = 0;
    int rc = pos ? cli_parse(cmd, nr, rest, opts, sizeof opts / sizeof *opts, pos, (size_t)argc, &n_pos, &help)
                 : cli_error("out of memory");
    if (rc == CLI_OK && help) print_help();
    if (rc != CLI_OK || help) goto done;
    for (size_t i = 0; i < n_pos; i++) files[nf++] = pos[i];
    if (!nf) rc = cli_usage_error(cmd, "give the text with -f FILE");
    else if (!tokenizer) rc = cli_usage_error(cmd, "give the tokenizer with --tokenizer FILE (a GGUF)");
    else if (!out) rc = cli_usage_error(cmd, "give the output model with -o FILE");
    else if (lc_train_config_by_name(config, &p.config)) rc = cli_usage_error(cmd, "%s", lc_last_error());
    if (rc != CLI_OK) goto done;
    if (dim) p.config.n_embd = (uint32_t)dim;
    if (layers) p.config.n_layer = (uint32_t)layers;
    if (heads) p.config.n_head = (uint32_t)heads;
    if (kv_heads) p.config.n_head_kv = (uint32_t)kv_heads;
    else if (heads && p.config.n_head % p.config.n_head_kv) p.config.n_head_kv = p.config.n_head;
    if (ff) p.config.n_ff = (uint32_t)ff;
    if (ctx) p.config.n_ctx = (uint32_t)ctx;
    p.corpus = files;
    p.n_corpus = nf;
    p.doc_sep = doc_sep;
    p.tokenizer = tokenizer;
    p.out = out;
    p.checkpoint = ckpt;
    p.n_steps = steps;
    p.batch = (uint32_t)batch;
    p.micro_batch = (uint32_t)micro;
    p.lr = (float)lr;
    p.min_lr = (float)min_lr;
    p.warmup = warmup;
    p.weight_decay = (float)wd;
    p.beta1 = (float)b1;
    p.beta2 = (float)b2;
    p.clip = (float)clip;
    p.val_frac = val_frac;
    p.val_batches = (uint32_t)val_batches;
    p.eval_every = eval_every;
    p.checkpoint_every = ckpt_every;
    p.seed = seed;
    p.n_threads = (int)threads;
    p.resume = resume;
    char ckpt_default[4096];
    snprintf(ckpt_default, sizeof ckpt_default, "%s.ckpt", out);
    ui u = {.tty = isatty(2), .log_every = log_every, .ckpt = ckpt ? ckpt : ckpt_default, .resume = resume,
            .stop_after = stop_after};
    p.on_event = on_event;
    p.user = &u;
    printf("config %s: dim %u, layers %u, heads %u/%u, ff %u, ctx %u; batch %u x %u tokens, %lld steps, lr %g\n",
           config, p.config.n_embd, p.config.n_layer, p.config.n_head, p.config.n_head_kv, p.config.n_ff,
           p.config.n_ctx, p.batch, p.config.n_ctx, (long long)p.n_steps, (double)p.lr);
    fflush(stdout);
    g_stop = 0;
    signal(SIGINT, on_sigint);
    lc_train_stats st;
    if (lc_train(&p, &st)) {
        clear_line(&u);
        rc = cli_lib_error();
    } else {
        printf("wrote %s%s\n", out, st.step < st.n_steps ? " (training stopped early)" : "");
    }
    signal(SIGINT, SIG_DFL);
done:
    free(files), free(rest), free(pos);
    return rc;
}
