/* lc_oracle.c - the reference engine for llamac's tests and benchmarks: llama.cpp (prebuilt, from the npm package
** node-llama-cpp 3.22.1 = llama.cpp v0.5.0, commit de3ff81) driven through its public C API (llama.h).
**
** Modes: `logits` writes float32 logits of every position, evaluated the way the goldens in
** ../shared/data (stories260K/goldens, quant) were (one batch, n_ctx = ceil(n/256)*256, CPU only, no flash attention); `bench` measures
** prompt processing and generation tokens/s the way llama-bench does; `tokenize` prints token ids.
** Built by tests/oracle/build-oracle.sh (x86-64 Linux only); not part of libllamac.
*/
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#ifndef LC_ORACLE_LIBDIR
#define LC_ORACLE_LIBDIR "."
#endif

static bool g_verbose;

static void log_quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (g_verbose || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void usage(void) {
    fputs("usage:\n"
          "  lc_oracle logits   -m MODEL -i IDS_FILE -o OUT.f32 [-t 2] [--kv f32|f16] [-c N_CTX]\n"
          "                     [--lora FILE [--lora-scale S]]... [-v]\n"
          "      ids: text file of token ids (whitespace/comma separated); OUT: float32 [n][n_vocab], every position.\n"
          "  lc_oracle bench    -m MODEL [-p 512] [-n 128] [-t 2] [-r 3] [-b 512] [--kv f16|f32]\n"
          "                     [--fa auto|on|off] [--json] [-v]\n"
          "  lc_oracle tokenize -m MODEL -p TEXT [--special] [--no-bos] [-v]\n"
          "env: LC_ORACLE_LIBDIR = directory of the libggml-cpu-*.so backends (default: built-in path)\n",
          stderr);
}

/* Loads the dynamically built ggml backends (the CPU backend is one of libggml-cpu-<variant>.so, the best variant
** for this CPU is chosen by ggml's scoring). */
static void load_backends(void) {
    const char *dir = getenv("LC_ORACLE_LIBDIR");
    if (!dir || !*dir) dir = LC_ORACLE_LIBDIR;
    ggml_backend_load_all_from_path(dir);
    if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
        fprintf(stderr, "lc_oracle: no CPU backend found in %s (set LC_ORACLE_LIBDIR)\n", dir);
        exit(1);
    }
}

static struct llama_model *load_model(const char *path) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) {
        fprintf(stderr, "lc_oracle: llama.cpp could not load %s\n", path);
        exit(1);
    }
    return model;
}

static enum ggml_type parse_kv(const char *s) {
    if (!strcmp(s, "f32")) return GGML_TYPE_F32;
    if (!strcmp(s, "f16")) return GGML_TYPE_F16;
    fprintf(stderr, "lc_oracle: --kv must be f32 or f16, not '%s'\n", s);
    exit(2);
}

static long parse_int(const char *opt, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "lc_oracle: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, s);
        exit(2);
    }
    return v;
}

/* Reads whitespace/comma separated token ids. Returns a malloc'd array; *n_out its length. */
static llama_token *read_ids(const char *path, int *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "lc_oracle: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    int n = 0, cap = 256;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    for (;;) {
        int c = fgetc(f);
        while (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r') c = fgetc(f);
        if (c == EOF) break;
        ungetc(c, f);
        long v;
        if (fscanf(f, "%ld", &v) != 1 || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "lc_oracle: %s: bad token id at item %d\n", path, n);
            exit(1);
        }
        if (n == cap) ids = realloc(ids, sizeof *ids * (size_t)(cap *= 2));
        ids[n++] = (llama_token)v;
    }
    fclose(f);
    if (!ids || n == 0) {
        fprintf(stderr, "lc_oracle: %s: no token ids\n", path);
        exit(1);
    }
    *n_out = n;
    return ids;
}

typedef struct opts {
    const char *model, *ids, *out, *prompt;
    int threads, n_prompt, n_gen, reps, n_batch, n_ctx;
    enum ggml_type kv;
    enum llama_flash_attn_type fa;
    bool json, special, no_bos;
    const char *lora[8]; /* logits: LoRA adapters (--lora FILE [--lora-scale S] per adapter) */
    float lora_scale[8];
    int n_lora;
} opts;

/* One batch of every id at positions 0..n-1 of sequence 0, logits for every row; written as float32 rows. */
static int cmd_logits(const opts *o) {
    int n = 0;
    llama_token *ids = read_ids(o->ids, &n);
    struct llama_model *model = load_model(o->model);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (int i = 0; i < n; i++) {
        if (ids[i] >= n_vocab) {
            fprintf(stderr, "lc_oracle: token id %d at %d is >= n_vocab %d\n", ids[i], i, n_vocab);
            return 1;
        }
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = o->n_ctx > 0 ? (uint32_t)o->n_ctx : (uint32_t)((n + 255) / 256 * 256);
    if ((int)cp.n_ctx < n) {
        fprintf(stderr, "lc_oracle: -c %d is smaller than the %d ids\n", o->n_ctx, n);
        return 2;
    }
    cp.n_batch = cp.n_ubatch = cp.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = o->threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = cp.type_v = o->kv;
    cp.offload_kqv = false;
    cp.op_offload = false;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "lc_oracle: llama_init_from_model failed\n");
        return 1;
    }
    struct llama_adapter_lora *ad[8];
    for (int i = 0; i < o->n_lora; i++) {
        ad[i] = llama_adapter_lora_init(model, o->lora[i]);
        if (!ad[i]) {
            fprintf(stderr, "lc_oracle: llama.cpp refused the adapter %s\n", o->lora[i]);
            return 1;
        }
    }
    if (o->n_lora && llama_set_adapters_lora(ctx, ad, (size_t)o->n_lora, (float *)o->lora_scale) != 0) {
        fprintf(stderr, "lc_oracle: llama_set_adapters_lora failed\n");
        return 1;
    }
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    int rc = llama_decode(ctx, b);
    if (rc != 0) {
        fprintf(stderr, "lc_oracle: llama_decode returned %d\n", rc);
        return 1;
    }
    FILE *f = fopen(o->out, "wb");
    if (!f) {
        fprintf(stderr, "lc_oracle: cannot create %s: %s\n", o->out, strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const float *row = llama_get_logits_ith(ctx, i);
        if (!row || fwrite(row, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) {
            fprintf(stderr, "lc_oracle: no logits for row %d or write error on %s\n", i, o->out);
            fclose(f);
            return 1;
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "lc_oracle: write error on %s\n", o->out);
        return 1;
    }
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    free(ids);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* xorshift64*: random token ids for the benchmark (the values do not matter, only that they vary). */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static llama_token rand_token(int n_vocab) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (llama_token)((g_rng * 0x2545F4914F6CDD1Dull >> 33) % (uint64_t)n_vocab);
}

/* Prompt processing as llama-bench's test_prompt: n_prompt tokens (BOS first if the vocabulary adds one) in
** llama_decode calls of at most n_batch tokens. */
static void run_prompt(struct llama_context *ctx, const struct llama_vocab *vocab, int n_prompt, int n_batch) {
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token *tok = malloc(sizeof *tok * (size_t)n_batch);
    for (int done = 0; done < n_prompt;) {
        int nt = n_prompt - done < n_batch ? n_prompt - done : n_batch;
        for (int i = 0; i < nt; i++) tok[i] = rand_token(n_vocab);
        if (done == 0 && llama_vocab_get_add_bos(vocab)) tok[0] = llama_vocab_bos(vocab);
        int rc = llama_decode(ctx, llama_batch_get_one(tok, nt));
        if (rc != 0) {
            fprintf(stderr, "lc_oracle: llama_decode (prompt) returned %d\n", rc);
            exit(1);
        }
        done += nt;
    }
    llama_synchronize(ctx);
    free(tok);
}

/* Generation as llama-bench's test_gen: n_gen llama_decode calls of one token each. */
static void run_gen(struct llama_context *ctx, const struct llama_vocab *vocab, int n_gen) {
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token t = llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : rand_token(n_vocab);
    for (int i = 0; i < n_gen; i++) {
        int rc = llama_decode(ctx, llama_batch_get_one(&t, 1));
        if (rc != 0) {
            fprintf(stderr, "lc_oracle: llama_decode (generation) returned %d\n", rc);
            exit(1);
        }
        llama_synchronize(ctx);
        t = rand_token(n_vocab);
    }
}

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

typedef struct ggml_threadpool *(*threadpool_new_fn)(struct ggml_threadpool_params *);
typedef void (*threadpool_free_fn)(struct ggml_threadpool *);

/* llama-bench's protocol: pp and tg are separate tests, each on a fresh (cleared) KV cache, one warm-up run first,
** then r timed repetitions; tokens/s per repetition, mean and sample standard deviation. The context holds
** n_prompt + n_gen cells, n_ubatch = 512, KV F16, flash attention auto (llama-bench's defaults), and a thread
** pool attached to the context as llama-bench does (otherwise ggml makes a new pool per graph). */
static int cmd_bench(const opts *o) {
    struct llama_model *model = load_model(o->model);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(o->n_prompt + o->n_gen);
    if (cp.n_ctx < 256) cp.n_ctx = 256;
    cp.n_batch = (uint32_t)o->n_batch;
    cp.n_ubatch = (uint32_t)(o->n_batch < 512 ? o->n_batch : 512);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = o->threads;
    cp.flash_attn_type = o->fa;
    cp.type_k = cp.type_v = o->kv;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "lc_oracle: llama_init_from_model failed\n");
        return 1;
    }
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    threadpool_new_fn tp_new = (threadpool_new_fn)ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new");
    threadpool_free_fn tp_free = (threadpool_free_fn)ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free");
    struct ggml_threadpool *tp = NULL;
    if (tp_new && tp_free) {
        struct ggml_threadpool_params tpp = ggml_threadpool_params_default(o->threads);
        tp = tp_new(&tpp);
        if (tp) llama_attach_threadpool(ctx, tp, NULL);
    }
    llama_memory_t mem = llama_get_memory(ctx);
    double *pp = calloc((size_t)o->reps, sizeof *pp), *tg = calloc((size_t)o->reps, sizeof *tg);
    if (o->n_prompt > 0) {
        llama_memory_clear(mem, false);
        run_prompt(ctx, vocab, o->n_prompt, o->n_batch); /* warm-up */
        for (int r = 0; r < o->reps; r++) {
            llama_memory_clear(mem, false);
            double t0 = now_s();
            run_prompt(ctx, vocab, o->n_prompt, o->n_batch);
            pp[r] = o->n_prompt / (now_s() - t0);
            if (g_verbose) fprintf(stderr, "pp run %d: %.2f t/s\n", r, pp[r]);
        }
    }
    if (o->n_gen > 0) {
        llama_memory_clear(mem, false);
        run_gen(ctx, vocab, 1); /* warm-up */
        for (int r = 0; r < o->reps; r++) {
            llama_memory_clear(mem, false);
            double t0 = now_s();
            run_gen(ctx, vocab, o->n_gen);
            tg[r] = o->n_gen / (now_s() - t0);
            if (g_verbose) fprintf(stderr, "tg run %d: %.2f t/s\n", r, tg[r]);
        }
    }
    double pp_m = 0, pp_sd = 0, tg_m = 0, tg_sd = 0;
    if (o->n_prompt > 0) mean_sd(pp, o->reps, &pp_m, &pp_sd);
    if (o->n_gen > 0) mean_sd(tg, o->reps, &tg_m, &tg_sd);
    char desc[256];
    llama_model_desc(model, desc, sizeof desc);
    const char *fa = o->fa == LLAMA_FLASH_ATTN_TYPE_AUTO ? "auto" : o->fa == LLAMA_FLASH_ATTN_TYPE_ENABLED ? "on" : "off";
    if (o->json) {
        printf("{\"engine\": \"llama.cpp\", \"version\": \"v0.5.0 de3ff81 (node-llama-cpp 3.22.1 prebuilt)\", "
               "\"model\": \"%s\", \"model_bytes\": %llu, \"n_params\": %llu, \"threads\": %d, \"n_prompt\": %d, "
               "\"n_gen\": %d, \"reps\": %d, \"n_batch\": %d, \"kv\": \"%s\", \"flash_attn\": \"%s\", "
               "\"pp_tps\": %.4f, \"pp_sd\": %.4f, \"tg_tps\": %.4f, \"tg_sd\": %.4f}\n",
               desc, (unsigned long long)llama_model_size(model), (unsigned long long)llama_model_n_params(model),
               o->threads, o->n_prompt, o->n_gen, o->reps, o->n_batch, o->kv == GGML_TYPE_F32 ? "f32" : "f16", fa,
               pp_m, pp_sd, tg_m, tg_sd);
    } else {
        printf("llama.cpp %s, %.2f GiB, %d threads, kv %s, fa %s\n", desc,
               llama_model_size(model) / 1073741824.0, o->threads, o->kv == GGML_TYPE_F32 ? "f32" : "f16", fa);
        if (o->n_prompt > 0) printf("pp%-5d %10.2f ± %.2f tokens/s\n", o->n_prompt, pp_m, pp_sd);
        if (o->n_gen > 0) printf("tg%-5d %10.2f ± %.2f tokens/s\n", o->n_gen, tg_m, tg_sd);
    }
    free(pp);
    free(tg);
    llama_free(ctx);
    if (tp) tp_free(tp);
    llama_model_free(model);
    return 0;
}

static int cmd_tokenize(const opts *o) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(o->model, mp);
    if (!model) {
        fprintf(stderr, "lc_oracle: llama.cpp could not load %s\n", o->model);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    size_t len = strlen(o->prompt);
    if (len > INT32_MAX / 2) return 1;
    int cap = (int)len + 16;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    int n = llama_tokenize(vocab, o->prompt, (int32_t)len, ids, cap, !o->no_bos, o->special);
    if (n < 0) {
        cap = -n;
        ids = realloc(ids, sizeof *ids * (size_t)cap);
        n = llama_tokenize(vocab, o->prompt, (int32_t)len, ids, cap, !o->no_bos, o->special);
    }
    if (n < 0) {
        fprintf(stderr, "lc_oracle: llama_tokenize failed (%d)\n", n);
        return 1;
    }
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    llama_model_free(model);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    opts o = {.threads = 2, .n_prompt = 512, .n_gen = 128, .reps = 3, .n_batch = 512, .kv = GGML_TYPE_F32,
              .fa = LLAMA_FLASH_ATTN_TYPE_AUTO};
    bool is_bench = !strcmp(mode, "bench");
    if (is_bench) o.kv = GGML_TYPE_F16;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                                                                                      \
    do {                                                                                                           \
        if (!v) {                                                                                                  \
            fprintf(stderr, "lc_oracle: %s needs a value\n", a);                                                   \
            return 2;                                                                                              \
        }                                                                                                          \
        i++;                                                                                                       \
    } while (0)
        if (!strcmp(a, "-m")) { NEEDV; o.model = v; }
        else if (!strcmp(a, "-i")) { NEEDV; o.ids = v; }
        else if (!strcmp(a, "-o")) { NEEDV; o.out = v; }
        else if (!strcmp(a, "-t")) { NEEDV; o.threads = (int)parse_int(a, v, 1, 512); }
        else if (!strcmp(a, "-c")) { NEEDV; o.n_ctx = (int)parse_int(a, v, 1, 1 << 20); }
        else if (!strcmp(a, "-p") && is_bench) { NEEDV; o.n_prompt = (int)parse_int(a, v, 0, 1 << 20); }
        else if (!strcmp(a, "-p")) { NEEDV; o.prompt = v; }
        else if (!strcmp(a, "-n")) { NEEDV; o.n_gen = (int)parse_int(a, v, 0, 1 << 20); }
        else if (!strcmp(a, "-r")) { NEEDV; o.reps = (int)parse_int(a, v, 1, 1000); }
        else if (!strcmp(a, "-b")) { NEEDV; o.n_batch = (int)parse_int(a, v, 1, 1 << 16); }
        else if (!strcmp(a, "--kv")) { NEEDV; o.kv = parse_kv(v); }
        else if (!strcmp(a, "--lora") && o.n_lora < 8) { NEEDV; o.lora[o.n_lora] = v; o.lora_scale[o.n_lora++] = 1.0f; }
        else if (!strcmp(a, "--lora-scale") && o.n_lora > 0) { NEEDV; o.lora_scale[o.n_lora - 1] = (float)atof(v); }
        else if (!strcmp(a, "--fa")) {
            NEEDV;
            if (!strcmp(v, "auto")) o.fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
            else if (!strcmp(v, "on")) o.fa = LLAMA_FLASH_ATTN_TYPE_ENABLED;
            else if (!strcmp(v, "off")) o.fa = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            else { fprintf(stderr, "lc_oracle: --fa must be auto, on or off\n"); return 2; }
        }
        else if (!strcmp(a, "--json")) o.json = true;
        else if (!strcmp(a, "--special")) o.special = true;
        else if (!strcmp(a, "--no-bos")) o.no_bos = true;
        else if (!strcmp(a, "-v")) g_verbose = true;
        else { fprintf(stderr, "lc_oracle: unknown option %s\n", a); usage(); return 2; }
#undef NEEDV
    }
    if (!o.model) { fprintf(stderr, "lc_oracle: -m MODEL is required\n"); return 2; }
    llama_log_set(log_quiet, NULL);
    load_backends();
    llama_backend_init();
    int rc;
    if (!strcmp(mode, "logits")) {
        if (!o.ids || !o.out) { fprintf(stderr, "lc_oracle logits: -i IDS_FILE and -o OUT are required\n"); return 2; }
        rc = cmd_logits(&o);
    } else if (is_bench) {
        rc = cmd_bench(&o);
    } else if (!strcmp(mode, "tokenize")) {
        if (!o.prompt) { fprintf(stderr, "lc_oracle tokenize: -p TEXT is required\n"); return 2; }
        rc = cmd_tokenize(&o);
    } else {
        fprintf(stderr, "lc_oracle: unknown mode %s\n", mode);
        usage();
        return 2;
    }
    llama_backend_free();
    return rc;
}
