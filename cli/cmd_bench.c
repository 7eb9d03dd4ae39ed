/* cmd_bench.c - `llamac bench`: prompt-processing and generation speed, measured as llama-bench does: a warm-up,
** then r repetitions of pp (one batch of p pseudo-random tokens into an empty KV cache) and tg (n tokens decoded one
** at a time from an empty cache; with -B, B sequences decoded together, a token of each per step, as a server's
** continuous batch does); tokens/s per repetition, reported as mean and sample standard deviation.
** Token ids come from a fixed LCG, so runs are comparable; the model's weights do not affect the amount of work.
*/
#include "cli.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

static const char *bench_help =
    "usage: llamac bench -m MODEL [options]\n"
    "\n"
    "Measures prompt processing (pp: one batch of P tokens into an empty KV cache) and text generation (tg: N\n"
    "tokens decoded one at a time from an empty cache), like llama-bench: a warm-up, then R repetitions of each;\n"
    "prints tokens/s as mean +- sample standard deviation. Runs alone: other load on the machine skews it.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the model\n"
    "  -p, --n-prompt P     prompt tokens (default 512; 0: skip pp)\n"
    "  -n, --n-gen N        generated tokens (default 128; 0: skip tg)\n"
    "  -B, --parallel B     tg decodes B sequences together, N tokens each, one token of every sequence per\n"
    "                       step (default 1); tokens/s counts all of them (as the serve load test's streams)\n"
    "  -r, --repetitions R  repetitions (default 3)\n"
    "  -t, --threads N      threads (default: all cores)\n"
    "  --mmap               map the model file instead of reading it into memory (huge pages)\n"
    "  --kv f16|f32         KV cache type (default f16)\n"
    "  --json               print one JSON object instead of the table:\n"
    "                         pp_tps, pp_sd, tg_tps, tg_sd, threads, model_bytes, model_params, model_desc,\n"
    "                         n_prompt, n_gen, n_parallel, reps, cpu_variant, kv_type, pp_samples, tg_samples,\n"
    "                         pp_gflops, tg_gflops, tg_gbs, tg_bytes_per_token, mem_read_gbs, mem_copy_gbs,\n"
    "                         tg_roofline_read, tg_roofline_copy, peak_rss_bytes, kv_bytes, scratch_bytes\n"
    "  -h, --help           this help\n"
    "\n"
    "Also reported: pp GFLOP/s (2 per weight per token through the matrices, plus attention's QK and AV);\n"
    "tg GB/s (weights and KV cache read per generated token, times tokens/s); the memory bandwidth of this\n"
    "machine measured with the same threads (a 256 MiB buffer read, and copied: bytes read + written, as STREAM\n"
    "counts), and tg GB/s as a share of each (the decode roofline); the peak resident memory of the process\n"
    "against the model's tensors + KV cache + scratch.\n";

/* ---- memory bandwidth: what decode could reach at best ---- */
typedef uint64_t u64x2 __attribute__((vector_size(16)));
typedef struct bw_job {
    const uint8_t *src;
    uint8_t *dst; /* NULL: read only */
    size_t bytes;
    u64x2 sum;
} bw_job;

static void *bw_worker(void *arg) {
    bw_job *j = arg;
    if (j->dst) {
        memcpy(j->dst, j->src, j->bytes);
        return NULL;
    }
    const u64x2 *p = (const u64x2 *)j->src;
    u64x2 a = {0, 0}, b = {0, 0}, c = {0, 0}, d = {0, 0}; /* in registers: four independent chains */
    for (size_t i = 0; i + 4 <= j->bytes / 16; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
    j->sum = (a + b) + (c + d);
    return NULL;
}

/* Best of 5 passes of n_threads threads over their slices of a 256 MiB buffer (huge pages, as the weights): GB/s
** read, and GB/s copied into a second buffer counting both directions. 0 when the buffers cannot be had. */
static void mem_bandwidth(int n_threads, double *read_gbs, double *copy_gbs) {
    const size_t bytes = (size_t)256 << 20;
    *read_gbs = *copy_gbs = 0.0;
    uint8_t *buf = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return;
#ifdef MADV_HUGEPAGE
    madvise(buf, 2 * bytes, MADV_HUGEPAGE);
#endif
    memset(buf, 1, 2 * bytes);
    if (n_threads > 256) n_threads = 256;
    pthread_t th[256];
    bw_job jobs[256];
    volatile uint64_t sink = 0;
    for (int copy = 0; copy < 2; copy++) {
        double best = 0.0;
        for (int rep = 0; rep < 5; rep++) {
            const size_t per = bytes / (size_t)n_threads / 64 * 64;
            for (int t = 0; t < n_threads; t++)
                jobs[t] = (bw_job){buf + (size_t)t * per, copy ? buf + bytes + (size_t)t * per : NULL, per, {0, 0}};
            const double t0 = lc_time_s();
            int started = 0;
            for (int t = 1; t < n_threads; t++, started++)
                if (pthread_create(&th[t], NULL, bw_worker, &jobs[t])) break;
            bw_worker(&jobs[0]);
            for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
            const double dt = lc_time_s() - t0;
            for (int t = 0; t < n_threads; t++) sink += jobs[t].sum[0] + jobs[t].sum[1];
            const double moved = (double)per * (started + 1) * (copy ? 2 : 1);
            if (dt > 0 && moved / dt / 1e9 > best) best = moved / dt / 1e9;
        }
        *(copy ? copy_gbs : read_gbs) = best;
    }
    (void)sink;
    munmap(buf, 2 * bytes);
}

/* ---- work per token, from the tensor table ---- */
typedef struct work {
    double layer_w, ffn_w;   /* weights of one layer's matrices (all; the FFN's alone) */
    double n_layer;
    double out_w, out_bytes; /* the output matrix (token_embd when tied) */
    double tg_bytes;         /* weight bytes one decoded token reads (not token_embd when untied: one row) */
    double attn_dim;         /* n_head * head_dim: multiply-adds per visible cell for QK, and again for AV */
    double kv_row_bytes;     /* K and V bytes of one cell over all layers */
} work;

static void count_work(const lc_model *m, int kv_elt, work *w) {
    const lc_hparams *hp = lc_model_hparams(m);
    memset(w, 0, sizeof *w);
    w->n_layer = hp->n_layer;
    double embd_w = 0, embd_bytes = 0;
    bool has_output = false;
    for (size_t i = 0; i < lc_model_tensor_count(m); i++) {
        lc_tensor_info t;
        if (lc_model_tensor_get(m, i, &t)) continue;
        const double n = (double)t.ne[0] * (double)t.ne[1] * (double)t.ne[2] * (double)t.ne[3];
        if (!strcmp(t.name, "token_embd.weight")) {
            embd_w = n, embd_bytes = (double)t.n_bytes;
            continue;
        }
        w->tg_bytes += (double)t.n_bytes;
        if (!strcmp(t.name, "output.weight")) {
            has_output = true;
            w->out_w = n, w->out_bytes = (double)t.n_bytes;
        } else if (t.n_dims >= 2 && t.ne[1] > 1 && !strncmp(t.name, "blk.0.", 6)) {
            w->layer_w += n;
            if (strstr(t.name, ".ffn_")) w->ffn_w += n;
        }
    }
    if (!has_output) { /* tied: the embeddings are the output matrix, read whole every token */
        w->out_w = embd_w, w->out_bytes = embd_bytes;
        w->tg_bytes += embd_bytes;
    }
    w->attn_dim = (double)hp->n_head * hp->head_dim;
    w->kv_row_bytes = 2.0 * hp->n_layer * hp->n_head_kv * hp->head_dim * kv_elt;
}

/* FLOPs of a pp test of p tokens into an empty cache: every layer's matrices on every token, except the last
** layer's FFN and the output matrix, which run on the last token only (its logits are the only ones asked for);
** attention's QK and AV over the cells each token sees (i + 1 for token i). */
static double pp_flops(const work *w, double p) {
    return 2.0 * (p * (w->n_layer * w->layer_w - w->ffn_w) + w->ffn_w + w->out_w) +
           4.0 * w->attn_dim * w->n_layer * p * (p + 1) / 2;
}
/* Bytes a tg test of n tokens in each of b sequences reads per step: the weights, and every sequence's cache cells
** seen (i + 1 for token i). */
static double tg_bytes_per_step(const work *w, double n, double b) {
    return w->tg_bytes + b * w->kv_row_bytes * (n + 1) / 2;
}
/* FLOPs of one generated token of a tg test of n tokens: every matrix, and attention over i + 1 cells on average. */
static double tg_flops_per_token(const work *w, double n) {
    return 2.0 * (w->n_layer * w->layer_w + w->out_w) + 4.0 * w->attn_dim * w->n_layer * (n + 1) / 2;
}

static uint32_t lcg_next(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

/* One pp run: clear the cache, decode n tokens in one batch. Returns tokens/s, or -1 after printing an error. */
static double run_pp(lc_context *c, int32_t *tok, int32_t n) {
    lc_kv_remove(c, -1, 0, -1);
    lc_batch b = {.n_tokens = n, .token = tok, .pos = NULL, .seq_id = NULL, .logits = NULL};
    double t0 = lc_time_s();
    if (lc_decode(c, &b)) {
        cli_lib_error();
        return -1.0;
    }
    double dt = lc_time_s() - t0;
    return dt > 0 ? n / dt : 0.0;
}

/* One tg run: clear the cache, decode n tokens one at a time (each after the previous, as in generation), in each
** of n_seq sequences: step i decodes token i of every sequence in one batch, all with logits. Returns tokens/s over
** all sequences. tok holds n * n_seq ids, seq (n_seq) and lg (n_seq) are the batch's arrays. */
static double run_tg(lc_context *c, const int32_t *tok, int32_t n, int32_t n_seq, const int32_t *seq,
                     const int8_t *lg) {
    lc_kv_remove(c, -1, 0, -1);
    double t0 = lc_time_s();
    for (int32_t i = 0; i < n; i++) {
        lc_batch b = {.n_tokens = n_seq, .token = tok + (size_t)i * n_seq, .pos = NULL, .seq_id = seq, .logits = lg};
        if (lc_decode(c, &b)) {
            cli_lib_error();
            return -1.0;
        }
        if (!lc_get_logits(c, n_seq - 1)) {
            cli_error("no logits after decoding (library error)");
            return -1.0;
        }
    }
    double dt = lc_time_s() - t0;
    return dt > 0 ? (double)n * n_seq / dt : 0.0;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *model_path = NULL;
    int64_t n_prompt = 512, n_gen = 128, reps = 3, threads = 0, n_par = 1;
    bool json = false;
    int kv = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {"-p", "--n-prompt", CLI_INT, &n_prompt, 0, 1 << 20, NULL, NULL},
        {"-n", "--n-gen", CLI_INT, &n_gen, 0, 1 << 20, NULL, NULL},
        {"-B", "--parallel", CLI_INT, &n_par, 1, 256, NULL, NULL},
        {"-r", "--repetitions", CLI_INT, &reps, 1, 1000, NULL, NULL},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
        CLI_MMAP_OPT,
        {NULL, "--kv", CLI_CHOICE, &kv, 0, 0, CLI_KV_CHOICES, NULL},
        {NULL, "--json", CLI_FLAG, &json, 0, 0, NULL, NULL},
    };
    bool help;
    size_t n_pos;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(bench_help, stdout);
        return CLI_OK;
    }
    if (!model_path) return cli_usage_error(cmd, "missing -m MODEL");
    if (n_prompt == 0 && n_gen == 0) return cli_usage_error(cmd, "-p 0 and -n 0: nothing to measure");
    if (n_gen * n_par > 1 << 20) return cli_usage_error(cmd, "-n N times -B B is more than 1048576 cache cells");

    lc_model *m = NULL;
    lc_context *c = NULL;
    int32_t *tok = NULL, *seq = NULL;
    int8_t *lg = NULL;
    double *pp = NULL, *tg = NULL;
    if ((r = cli_load_model(model_path, &m, NULL))) goto done;
    const lc_hparams *hp = lc_model_hparams(m);
    const int32_t np = (int32_t)n_prompt, ng = (int32_t)n_gen, nr = (int32_t)reps, B = (int32_t)n_par;
    const int32_t n_tok = np > ng * B ? np : ng * B;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)(n_tok > 0 ? n_tok : 1);
    cp.n_batch = (uint32_t)(np > B ? np : B);
    cp.n_seq_max = (uint32_t)B;
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv);
    if (lc_context_new(m, &cp, &c)) {
        r = cli_lib_error();
        goto done;
    }
    tok = malloc((size_t)n_tok * sizeof *tok);
    pp = calloc((size_t)nr, sizeof *pp);
    tg = calloc((size_t)nr, sizeof *tg);
    seq = malloc((size_t)B * sizeof *seq);
    lg = malloc((size_t)B);
    if (!tok || !pp || !tg || !seq || !lg) {
        r = cli_error("out of memory");
        goto done;
    }
    uint32_t s = 42;
    for (int32_t i = 0; i < n_tok; i++) tok[i] = (int32_t)(lcg_next(&s) % hp->n_vocab);
    for (int32_t i = 0; i < B; i++) seq[i] = i, lg[i] = 1;

    /* warm-up: page in the weights, spin up the threads, size the logits buffer */
    if (np > 0 && run_pp(c, tok, np) < 0) {
        r = CLI_ERR;
        goto done;
    }
    if (ng > 0 && run_tg(c, tok, ng < 4 ? ng : 4, B, seq, lg) < 0) {
        r = CLI_ERR;
        goto done;
    }
    for (int32_t i = 0; i < nr; i++) {
        if (np > 0 && (pp[i] = run_pp(c, tok, np)) < 0) {
            r = CLI_ERR;
            goto done;
        }
        if (ng > 0 && (tg[i] = run_tg(c, tok, ng, B, seq, lg)) < 0) {
            r = CLI_ERR;
            goto done;
        }
    }

    double pp_m, pp_sd, tg_m, tg_sd;
    mean_sd(pp, np > 0 ? nr : 0, &pp_m, &pp_sd);
    mean_sd(tg, ng > 0 ? nr : 0, &tg_m, &tg_sd);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak_rss = (double)ru.ru_maxrss * 1024.0; /* before the bandwidth buffers */
    uint64_t kv_bytes = 0, scratch_bytes = 0;
    lc_context_memory(c, &kv_bytes, &scratch_bytes);
    work w;
    count_work(m, kv ? 4 : 2, &w);
    const double pp_gflops = np > 0 ? pp_flops(&w, np) * pp_m / np / 1e9 : NAN;
    const double tg_bpt = tg_bytes_per_step(&w, ng, B), tg_gbs = ng > 0 ? tg_bpt * tg_m / B / 1e9 : NAN;
    const double tg_gflops = ng > 0 ? tg_flops_per_token(&w, ng) * tg_m / 1e9 : NAN;
    double read_gbs, copy_gbs;
    mem_bandwidth(threads > 0 ? (int)threads : lc_n_cores(), &read_gbs, &copy_gbs);
    char desc[128];
    lc_model_desc(m, desc, sizeof desc);
    const uint64_t bytes = lc_model_size_bytes(m), params = lc_model_n_params(m);
    const int n_threads = threads > 0 ? (int)threads : lc_n_cores();
    if (json) {
        printf("{\"model_desc\": ");
        cli_json_str(stdout, desc);
        printf(", \"model_bytes\": %llu, \"model_params\": %llu, \"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, "
               "\"n_parallel\": %d, \"reps\": %d, \"cpu_variant\": ",
               (unsigned long long)bytes, (unsigned long long)params, n_threads, (int)np, (int)ng, (int)B, (int)nr);
        cli_json_str(stdout, lc_cpu_variant());
        printf(", \"kv_type\": \"%s\"", kv ? "f32" : "f16");
        const char *names[2] = {"pp", "tg"};
        const double *smp[2] = {pp, tg}, mean[2] = {pp_m, tg_m}, sd[2] = {pp_sd, tg_sd};
        const bool on[2] = {np > 0, ng > 0};
        for (int k = 0; k < 2; k++) {
            /* a skipped test is null, not 0: 0 tokens/s would read as a measurement */
            printf(", \"%s_tps\": ", names[k]);
            cli_json_float(stdout, on[k] ? mean[k] : NAN);
            printf(", \"%s_sd\": ", names[k]);
            cli_json_float(stdout, on[k] ? sd[k] : NAN);
            printf(", \"%s_samples\": [", names[k]);
            for (int32_t i = 0; on[k] && i < nr; i++) {
                if (i) fputs(", ", stdout);
                cli_json_float(stdout, smp[k][i]);
            }
            putchar(']');
        }
        const char *xn[] = {"pp_gflops", "tg_gflops", "tg_gbs", "tg_bytes_per_token", "mem_read_gbs", "mem_copy_gbs",
                            "tg_roofline_read", "tg_roofline_copy", "peak_rss_bytes", "kv_bytes", "scratch_bytes"};
        const double xv[] = {pp_gflops, tg_gflops, tg_gbs, ng > 0 ? tg_bpt / B : NAN, read_gbs, copy_gbs,
                             read_gbs > 0 ? tg_gbs / read_gbs : NAN, copy_gbs > 0 ? tg_gbs / copy_gbs : NAN,
                             peak_rss, (double)kv_bytes, (double)scratch_bytes};
        for (size_t k = 0; k < sizeof xn / sizeof *xn; k++) {
            printf(", \"%s\": ", xn[k]);
            cli_json_float(stdout, xv[k]);
        }
        printf("}\n");
    } else {
        char size[32];
        double gib = (double)bytes / (double)(1ull << 30);
        if (gib >= 1.0) snprintf(size, sizeof size, "%.2f GiB", gib);
        else snprintf(size, sizeof size, "%.2f MiB", (double)bytes / (double)(1ull << 20));
        printf("| %-24s | %10s | %9s | %-7s | %7s | %-7s | %20s |\n", "model", "size", "params", "kernels", "threads",
               "test", "t/s");
        printf("| %.24s | %.10s | %.9s | %.7s | %.7s | %.7s | %.20s |\n", "------------------------------",
               "------------", "-----------", "---------", "---------", "---------", "----------------------");
        char test[32], tps[48];
        for (int k = 0; k < 2; k++) {
            if ((k == 0 && np == 0) || (k == 1 && ng == 0)) continue;
            if (k == 1 && B > 1) snprintf(test, sizeof test, "tg%dx%d", (int)ng, (int)B);
            else snprintf(test, sizeof test, "%s%d", k == 0 ? "pp" : "tg", k == 0 ? (int)np : (int)ng);
            snprintf(tps, sizeof tps, "%.2f ± %.2f", k == 0 ? pp_m : tg_m, k == 0 ? pp_sd : tg_sd);
            printf("| %-24s | %10s | %8.2fM | %-7s | %7d | %-7s | %21s |\n", desc, size, (double)params / 1e6,
                   lc_cpu_variant(), n_threads, test, tps);
        }
        printf("\nkv cache %s, %d repetitions after a warm-up\n", kv ? "f32" : "f16", (int)nr);
        if (np > 0) printf("pp%d: %.1f GFLOP/s\n", (int)np, pp_gflops);
        printf("memory bandwidth, %d threads: read %.1f GB/s, copy %.1f GB/s (read + written)\n", n_threads, read_gbs,
               copy_gbs);
        if (ng > 0 && B > 1)
            printf("tg%dx%d: %.1f GFLOP/s, %.1f GB/s (%.1f MB per step of %d tokens)\n", (int)ng, (int)B, tg_gflops,
                   tg_gbs, tg_bpt / 1e6, (int)B);
        else if (ng > 0)
            printf("tg%d: %.1f GB/s (%.1f MB per token): %.0f%% of the read bandwidth, %.0f%% of the copy bandwidth\n",
                   (int)ng, tg_gbs, tg_bpt / 1e6, 100.0 * tg_gbs / read_gbs, 100.0 * tg_gbs / copy_gbs);
        const double need = (double)bytes + (double)kv_bytes + (double)scratch_bytes;
        printf("peak resident memory %.1f MiB = %.2fx (tensors %.1f + KV cache %.1f + scratch %.1f MiB)\n",
               peak_rss / 1048576.0, peak_rss / need, (double)bytes / 1048576.0, (double)kv_bytes / 1048576.0,
               (double)scratch_bytes / 1048576.0);
    }
    r = CLI_OK;
done:
    free(tok);
    free(pp);
    free(tg);
    free(seq);
    free(lg);
    lc_context_free(c);
    lc_model_free(m);
    return r;
}
