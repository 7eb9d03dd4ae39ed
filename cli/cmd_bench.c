/* cmd_bench.c - `llamac bench`: prompt-processing and generation speed, measured as llama-bench does: a warm-up,
** then r repetitions of pp (one batch of p pseudo-random tokens into an empty KV cache) and tg (n tokens decoded one
** at a time from an empty cache); tokens/s per repetition, reported as mean and sample standard deviation.
** Token ids come from a fixed LCG, so runs are comparable; the model's weights do not affect the amount of work.
*/
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    "  -r, --repetitions R  repetitions (default 3)\n"
    "  -t, --threads N      threads (default: all cores)\n"
    "  --kv f16|f32         KV cache type (default f16)\n"
    "  --json               print one JSON object instead of the table:\n"
    "                         pp_tps, pp_sd, tg_tps, tg_sd, threads, model_bytes, model_params, model_desc,\n"
    "                         n_prompt, n_gen, reps, cpu_variant, kv_type, pp_samples, tg_samples\n"
    "  -h, --help           this help\n";

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

/* One tg run: clear the cache, decode n tokens one at a time (each after the previous, as in generation). */
static double run_tg(lc_context *c, const int32_t *tok, int32_t n) {
    lc_kv_remove(c, -1, 0, -1);
    double t0 = lc_time_s();
    for (int32_t i = 0; i < n; i++) {
        lc_batch b = {.n_tokens = 1, .token = tok + i, .pos = NULL, .seq_id = NULL, .logits = NULL};
        if (lc_decode(c, &b)) {
            cli_lib_error();
            return -1.0;
        }
        if (!lc_get_logits(c, 0)) {
            cli_error("no logits after decoding (library error)");
            return -1.0;
        }
    }
    double dt = lc_time_s() - t0;
    return dt > 0 ? n / dt : 0.0;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *model_path = NULL;
    int64_t n_prompt = 512, n_gen = 128, reps = 3, threads = 0;
    bool json = false;
    int kv = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {"-p", "--n-prompt", CLI_INT, &n_prompt, 0, 1 << 20, NULL, NULL},
        {"-n", "--n-gen", CLI_INT, &n_gen, 0, 1 << 20, NULL, NULL},
        {"-r", "--repetitions", CLI_INT, &reps, 1, 1000, NULL, NULL},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
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

    lc_model *m = NULL;
    lc_context *c = NULL;
    int32_t *tok = NULL;
    double *pp = NULL, *tg = NULL;
    if ((r = cli_load_model(model_path, &m, NULL))) goto done;
    const lc_hparams *hp = lc_model_hparams(m);
    const int32_t np = (int32_t)n_prompt, ng = (int32_t)n_gen, nr = (int32_t)reps;
    const int32_t n_tok = np > ng ? np : ng;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)(n_tok > 0 ? n_tok : 1);
    cp.n_batch = (uint32_t)(np > 0 ? np : 1);
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv);
    if (lc_context_new(m, &cp, &c)) {
        r = cli_lib_error();
        goto done;
    }
    tok = malloc((size_t)n_tok * sizeof *tok);
    pp = calloc((size_t)nr, sizeof *pp);
    tg = calloc((size_t)nr, sizeof *tg);
    if (!tok || !pp || !tg) {
        r = cli_error("out of memory");
        goto done;
    }
    uint32_t s = 42;
    for (int32_t i = 0; i < n_tok; i++) tok[i] = (int32_t)(lcg_next(&s) % hp->n_vocab);

    /* warm-up: page in the weights, spin up the threads, size the logits buffer */
    if (np > 0 && run_pp(c, tok, np) < 0) {
        r = CLI_ERR;
        goto done;
    }
    if (ng > 0 && run_tg(c, tok, ng < 4 ? ng : 4) < 0) {
        r = CLI_ERR;
        goto done;
    }
    for (int32_t i = 0; i < nr; i++) {
        if (np > 0 && (pp[i] = run_pp(c, tok, np)) < 0) {
            r = CLI_ERR;
            goto done;
        }
        if (ng > 0 && (tg[i] = run_tg(c, tok, ng)) < 0) {
            r = CLI_ERR;
            goto done;
        }
    }

    double pp_m, pp_sd, tg_m, tg_sd;
    mean_sd(pp, np > 0 ? nr : 0, &pp_m, &pp_sd);
    mean_sd(tg, ng > 0 ? nr : 0, &tg_m, &tg_sd);
    char desc[128];
    lc_model_desc(m, desc, sizeof desc);
    const uint64_t bytes = lc_model_size_bytes(m), params = lc_model_n_params(m);
    const int n_threads = threads > 0 ? (int)threads : lc_n_cores();
    if (json) {
        printf("{\"model_desc\": ");
        cli_json_str(stdout, desc);
        printf(", \"model_bytes\": %llu, \"model_params\": %llu, \"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, "
               "\"reps\": %d, \"cpu_variant\": ",
               (unsigned long long)bytes, (unsigned long long)params, n_threads, (int)np, (int)ng, (int)nr);
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
            snprintf(test, sizeof test, "%s%d", k == 0 ? "pp" : "tg", k == 0 ? (int)np : (int)ng);
            snprintf(tps, sizeof tps, "%.2f ± %.2f", k == 0 ? pp_m : tg_m, k == 0 ? pp_sd : tg_sd);
            printf("| %-24s | %10s | %8.2fM | %-7s | %7d | %-7s | %21s |\n", desc, size, (double)params / 1e6,
                   lc_cpu_variant(), n_threads, test, tps);
        }
        printf("\nkv cache %s, %d repetitions after a warm-up\n", kv ? "f32" : "f16", (int)nr);
    }
    r = CLI_OK;
done:
    free(tok);
    free(pp);
    free(tg);
    lc_context_free(c);
    lc_model_free(m);
    return r;
}
