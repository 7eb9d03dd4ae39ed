/* cmd_finetune.c - `llamac finetune`: LoRA fine-tuning of a model (any weight type; the base stays frozen) on plain
** text or on chat JSONL rendered with the model's own template, writing an adapter in llama.cpp's GGUF LoRA format
** for `llamac run/chat --lora` (and llama.cpp's --lora). A progress line on a terminal; log lines with loss,
** tokens/s and GFLOP/s; Ctrl-C stops after the current step with a checkpoint (--resume continues) and still writes
** the adapter.
*/
#include "cli.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *help =
    "usage: llamac finetune -m BASE.gguf -f DATA [-f DATA...] --lora-rank R -o adapter.gguf [options]\n"
    "\n"
    "LoRA fine-tuning on the CPU: every adapted projection W of the base model becomes W + alpha/r * B A, with A\n"
    "(r x n_in, random) and B (n_out x r, zero) trained by AdamW (warm-up, cosine decay, gradient clipping); the base\n"
    "weights stay frozen in their own type (F32, F16, BF16, Q8_0, K-quants, ...), dequantized row by row inside the\n"
    "products. The adapter is written through a temporary file and a rename, in llama.cpp's GGUF LoRA format:\n"
    "`llamac run -m BASE.gguf --lora adapter.gguf` or llama.cpp's --lora load it.\n"
    "\n"
    "Data: plain text (each step draws --batch windows of --ctx+1 tokens), or chat JSONL (--format chat, the default\n"
    "for *.jsonl): one conversation per line, {\"messages\": [{\"role\": ..., \"content\": ...}, ...]} or a bare list,\n"
    "rendered with the model's chat template; the loss is on the assistant's turns only (their text and the\n"
    "end-of-turn marker). A fraction of the windows or conversations is held out: its loss is printed every\n"
    "--eval-every steps.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE       the base model (GGUF)\n"
    "  -f, --file FILE        data file (repeatable; further arguments are data files too)\n"
    "  --format text|chat     how to read the data (default: chat for files ending in .jsonl, else text)\n"
    "  --doc-sep LINE         text: a line equal to LINE separates documents (default: one per file)\n"
    "  -o, --output FILE      the adapter to write\n"
    "  --lora-rank R          rank r of the adapters (default 8)\n"
    "  --lora-alpha A         adapter.lora.alpha; the update is scaled by A/r (default: r, scale 1)\n"
    "  --lora-targets LIST    projections to adapt, comma-separated: q,k,v,o,gate,up,down, or attn, ffn, all\n"
    "                         (default all)\n"
    "  --ctx T                tokens per sequence (default min(256, the model's context); chat: at most the\n"
    "                         longest conversation, longer ones are cut)\n"
    "  --steps N              optimizer steps (default 200)\n"
    "  --batch B              sequences per step (default 8)\n"
    "  --micro-batch M        sequences per forward/backward pass (default: about 512 tokens; memory)\n"
    "  --lr LR                peak learning rate (default 1e-3)\n"
    "  --min-lr LR            final learning rate of the cosine decay (default LR/10)\n"
    "  --warmup W             linear warm-up steps (default min(100, steps/10))\n"
    "  --weight-decay WD      AdamW decoupled weight decay (default 0)\n"
    "  --beta1 B, --beta2 B   AdamW moments (default 0.9, 0.999)\n"
    "  --clip C               clip the global gradient norm to C (default 1.0; 0: off)\n"
    "  --val-frac F           fraction held out for validation (default 0.05)\n"
    "  --val-batches N        validation batches per evaluation (default 2)\n"
    "  --eval-every N         steps between validations (default 50; 0: only at the end)\n"
    "  --log-every N          steps between log lines (default 10)\n"
    "  --checkpoint-every N   steps between checkpoints (adapter, Adam moments, step; default 50; 0: only at the\n"
    "                         end or when stopped)\n"
    "  --checkpoint FILE      checkpoint path (default OUT.ckpt)\n"
    "  --resume               continue from the checkpoint (the same run: base, data, rank, targets, batch, seed);\n"
    "                         the adapter comes out as if never interrupted\n"
    "  --seed S               adapter initialisation and sampling (default 1)\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "  -h, --help             this help\n"
    "\n"
    "examples:\n"
    "  llamac finetune -m model.gguf -f notes.txt --lora-rank 8 --steps 300 -o notes-lora.gguf\n"
    "  llamac finetune -m Llama-3.2-1B-Instruct-Q8_0.gguf -f chats.jsonl --lora-rank 16 -o chat-lora.gguf\n"
    "  llamac run -m model.gguf --lora notes-lora.gguf -p \"Once upon a time\"\n";

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
    signal(SIGINT, SIG_DFL);
}

typedef struct ft_ui {
    bool tty;
    int64_t log_every;
    double last_draw;
} ft_ui;

static void hms(char *buf, size_t cap, double s) {
    const long t = isfinite(s) && s > 0 ? (long)(s + 0.5) : 0;
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static int on_event(const lc_train_stats *s, void *user) {
    ft_ui *u = user;
    char eta[32];
    const char *cr = u->tty ? "\r\033[K" : "";
    switch (s->event) {
    case LC_TRAIN_START:
        printf("adapter: %.3f M parameters; data: %llu training tokens with a loss, %llu for validation; kernel %s\n",
               (double)s->n_params / 1e6, (unsigned long long)s->n_train_tokens,
               (unsigned long long)s->n_val_tokens, s->kernel);
        if (s->resumed_from >= 0) printf("resumed from the checkpoint at step %lld\n", (long long)s->resumed_from);
        fflush(stdout);
        break;
    case LC_TRAIN_STEP:
        hms(eta, sizeof eta, s->eta_s);
        if (u->log_every > 0 && (s->step % u->log_every == 0 || s->step == s->n_steps || s->step == 1)) {
            printf("%sstep %lld/%lld  loss %.4f  lr %.2e  grad norm %.3f  %.0f tok/s  %.1f GFLOP/s  ETA %s\n", cr,
                   (long long)s->step, (long long)s->n_steps, s->loss, s->lr, s->grad_norm, s->tokens_per_s,
                   s->gflops, eta);
            fflush(stdout);
        }
        if (u->tty && (lc_time_s() - u->last_draw > 0.2 || s->step == s->n_steps)) {
            u->last_draw = lc_time_s();
            fprintf(stderr, "\r\033[Kfinetune %3d%%  step %lld/%lld  loss %.3f  %.0f tok/s  ETA %s",
                    (int)(100.0 * (double)s->step / (double)s->n_steps), (long long)s->step, (long long)s->n_steps,
                    s->loss, s->tokens_per_s, eta);
            fflush(stderr);
        }
        break;
    case LC_TRAIN_CHECKPOINT:
        if (g_stop) printf("%sinterrupted at step %lld: checkpoint written (continue with --resume)\n", cr,
                           (long long)s->step);
        break;
    case LC_TRAIN_EVAL:
        if (u->tty) fputs(cr, stderr);
        if (isnan(s->val_loss)) printf("step %lld: train loss %.4f (no validation data)\n", (long long)s->step, s->loss);
        else
            printf("step %lld: train loss %.4f, val loss %.4f, val perplexity %.2f\n", (long long)s->step, s->loss,
                   s->val_loss, exp(s->val_loss));
        fflush(stdout);
        break;
    case LC_TRAIN_DONE:
        if (u->tty) fputs(cr, stderr);
        hms(eta, sizeof eta, s->elapsed_s);
        printf("done: %lld steps in %s, %.0f tokens/s, %.1f GFLOP/s (matmul %.1f s, attention %.1f s, other %.1f s)\n",
               (long long)s->step, eta, s->tokens_per_s, s->gflops, s->time_matmul_s, s->time_attention_s,
               s->time_other_s);
        break;
    }
    return g_stop ? 1 : 0;
}

/* "q,k,v,o,gate,up,down", "attn", "ffn", "all" -> LC_LORA_TARGET_* bits; 0 on an unknown name. */
static unsigned parse_targets(const char *s) {
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {{"q", LC_LORA_TARGET_Q}, {"k", LC_LORA_TARGET_K}, {"v", LC_LORA_TARGET_V}, {"o", LC_LORA_TARGET_O},
                 {"gate", LC_LORA_TARGET_GATE}, {"up", LC_LORA_TARGET_UP}, {"down", LC_LORA_TARGET_DOWN},
                 {"attn", 0xf}, {"ffn", 0x70}, {"all", LC_LORA_TARGET_ALL}};
    unsigned bits = 0;
    while (*s) {
        const size_t n = strcspn(s, ",");
        unsigned b = 0;
        for (size_t i = 0; i < sizeof names / sizeof *names && !b; i++)
            if (strlen(names[i].name) == n && !strncmp(s, names[i].name, n)) b = names[i].bits;
        if (!b) return 0;
        bits |= b;
        s += n + (s[n] == ',');
    }
    return bits;
}

int cmd_finetune(int argc, char **argv) {
    const char *cmd = "finetune";
    const char **files = calloc((size_t)argc + 1, sizeof *files), **pos = calloc((size_t)argc + 1, sizeof *pos);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int rc = files && rest && pos ? CLI_OK : cli_error("out of memory");
    size_t nf = 0, n_pos = 0;
    int nr = 0;
    for (int i = 0; rc == CLI_OK && i < argc; i++) {
        if (i > 0 && (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) files[nf++] = argv[++i];
        else rest[nr++] = argv[i];
    }
    lc_finetune_params p = lc_finetune_default_params();
    const char *model = NULL, *out = NULL, *doc_sep = NULL, *targets = "all", *ckpt = NULL;
    int format = -1;
    int64_t rank = p.rank, ctx = 0, steps = p.n_steps, batch = p.batch, micro = 0, warmup = -1,
            val_batches = p.val_batches, eval_every = p.eval_every, log_every = 10, threads = 0,
            ckpt_every = p.checkpoint_every;
    double alpha = 0, lr = p.lr, min_lr = -1, wd = p.weight_decay, b1 = p.beta1, b2 = p.beta2, clip = p.clip,
           val_frac = p.val_frac;
    uint64_t seed = p.seed;
    bool help_wanted = false, resume = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0, NULL, NULL},
        {"-o", "--output", CLI_STR, &out, 0, 0, NULL, NULL},
        {NULL, "--format", CLI_CHOICE, &format, 0, 0, "text|chat", NULL},
        {NULL, "--doc-sep", CLI_STR, &doc_sep, 0, 0, NULL, NULL},
        {NULL, "--lora-rank", CLI_INT, &rank, 1, 4096, NULL, NULL},
        {NULL, "--lora-alpha", CLI_FLOAT, &alpha, 1e-6, 1e6, NULL, NULL},
        {NULL, "--lora-targets", CLI_STR, &targets, 0, 0, NULL, NULL},
        {NULL, "--ctx", CLI_INT, &ctx, 2, 65536, NULL, NULL},
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
        {NULL, "--seed", CLI_U64, &seed, 0, 0, NULL, NULL},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
    };
    if (rc == CLI_OK) rc = cli_parse(cmd, nr, rest, opts, sizeof opts / sizeof *opts, pos, (size_t)argc, &n_pos, &help_wanted);
    if (rc == CLI_OK && help_wanted) fputs(help, stdout);
    lc_model *m = NULL;
    if (rc != CLI_OK || help_wanted) goto done;
    for (size_t i = 0; i < n_pos; i++) files[nf++] = pos[i];
    const unsigned tbits = parse_targets(targets);
    if (!model) rc = cli_usage_error(cmd, "give the base model with -m FILE");
    else if (!nf) rc = cli_usage_error(cmd, "give the data with -f FILE");
    else if (!out) rc = cli_usage_error(cmd, "give the adapter to write with -o FILE");
    else if (!tbits)
        rc = cli_usage_error(cmd, "--lora-targets '%s': expected a comma-separated list of q, k, v, o, gate, up, down, "
                             "attn, ffn, all", targets);
    if (rc != CLI_OK) goto done;
    bool chat = format == 1;
    if (format < 0) {
        const size_t n = strlen(files[0]);
        chat = n > 6 && !strcmp(files[0] + n - 6, ".jsonl");
    }
    if ((rc = cli_load_model(model, &m, NULL))) goto done;
    p.model = m;
    p.data = files;
    p.n_data = nf;
    p.chat = chat;
    p.doc_sep = doc_sep;
    p.out = out;
    p.rank = (uint32_t)rank;
    p.alpha = (float)alpha;
    p.targets = tbits;
    p.n_ctx = (uint32_t)ctx;
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
    p.seed = seed;
    p.n_threads = (int)threads;
    p.checkpoint = ckpt;
    p.checkpoint_every = ckpt_every;
    p.resume = resume;
    ft_ui u = {.tty = isatty(2), .log_every = log_every};
    p.on_event = on_event;
    p.user = &u;
    char desc[128];
    lc_model_desc(m, desc, sizeof desc);
    printf("base %s (%s); %s data; LoRA rank %lld, alpha %g, targets %s; batch %u, %lld steps, lr %g\n", model, desc,
           chat ? "chat" : "text", (long long)rank, alpha > 0 ? alpha : (double)rank, targets, p.batch,
           (long long)p.n_steps, (double)p.lr);
    fflush(stdout);
    g_stop = 0;
    signal(SIGINT, on_sigint);
    lc_train_stats st;
    if (lc_finetune(&p, &st)) {
        if (u.tty) fputs("\r\033[K", stderr);
        rc = cli_lib_error();
    } else {
        printf("wrote %s%s\n", out, st.step < st.n_steps ? " (stopped early)" : "");
    }
    signal(SIGINT, SIG_DFL);
done:
    lc_model_free(m);
    free(files), free(rest), free(pos);
    return rc;
}
