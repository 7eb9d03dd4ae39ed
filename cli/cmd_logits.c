/* cmd_logits.c - `llamac logits`: runs a token sequence through the model and prints ONE JSON object with the
** logits of the last position (every position with --all), or with --top K the K best tokens and their
** log-probabilities (log-softmax in double). This is the interface fidelity checks use, so the output is exact:
** floats as %.9g (round-trips a float), non-finite values as null (JSON has no NaN or Infinity). Rows are streamed
** as they are computed; the sequence is decoded in chunks of n_batch tokens.
*/
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *logits_help =
    "usage: llamac logits -m MODEL (-p TEXT | -f FILE | --ids 1,2,3) [options]\n"
    "\n"
    "Prints one JSON object on stdout:\n"
    "  {\"n_vocab\": V, \"rows\": [{\"pos\": P, \"token\": ID, \"logits\": [V floats]}, ...]}\n"
    "for the last position, or every position with --all. With --top K each row has \"top\": [[id, logprob], ...]\n"
    "(K pairs, best first; log-softmax over the whole vocabulary, in double; equal values: lower id first)\n"
    "instead of \"logits\". Floats are printed with 9 significant digits; a value that is not finite (NaN, inf) is\n"
    "printed as null. \"pos\" is the token's position in the sequence (from 0).\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the model (GGUF, or llama2.c .bin)\n"
    "  -p, --prompt TEXT    text to tokenize (BOS prepended as the vocabulary says; see --no-bos)\n"
    "  -f, --file FILE      read the text from FILE ('-': stdin)\n"
    "  --ids LIST           token ids, comma-separated (used exactly as given: no BOS is added)\n"
    "  --all                a row for every position (default: the last one only)\n"
    "  --top K              the K most likely tokens with log-probabilities instead of all logits\n"
    "  --kv f16|f32         KV cache type (default f16, as llama.cpp)\n"
    "  -c, --ctx-size N     context size (default: the sequence length)\n"
    "  -b, --batch-size N   tokens per decode call (default: min(sequence length, 512))\n"
    "  -t, --threads N      threads (default: all cores)\n"
    "  --mmap               map the model file instead of reading it into memory (huge pages)\n"
    "  --no-bos             do not prepend BOS to the text\n"
    CLI_LORA_HELP
    "  -h, --help           this help\n";

/* a ranks before b: larger logit first, NaN last, equal values by lower id */
static bool ranks_before(const float *x, int32_t a, int32_t b) {
    float va = x[a], vb = x[b];
    bool na = isnan(va), nb = isnan(vb);
    if (na != nb) return nb;
    if (!na && va != vb) return va > vb;
    return a < b;
}

/* Min-heap (worst on top) of the k best ids seen so far. */
static void heap_sift_down(const float *x, int32_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ranks_before(x, h[w], h[l])) w = l;
        if (r < n && ranks_before(x, h[w], h[r])) w = r;
        if (w == i) return;
        int32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heap_sift_up(const float *x, int32_t *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ranks_before(x, h[p], h[i])) return;
        int32_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Writes the ids of the k best logits, best first, into out[k]. O(n log k). */
static void top_k(const float *x, int32_t n, int32_t k, int32_t *out) {
    size_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (m < (size_t)k) {
            out[m] = i;
            heap_sift_up(x, out, m++);
        } else if (ranks_before(x, i, out[0])) {
            out[0] = i;
            heap_sift_down(x, out, m, 0);
        }
    }
    /* heap sort: repeatedly move the worst to the end */
    for (size_t end = m; end > 1; end--) {
        int32_t t = out[0];
        out[0] = out[end - 1];
        out[end - 1] = t;
        heap_sift_down(x, out, end - 1, 0);
    }
}

/* log(sum(exp(x))) over the non-NaN values, in double. */
static double log_sum_exp(const float *x, int32_t n) {
    double mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (!isnan(x[i]) && x[i] > mx) mx = x[i];
    if (!isfinite(mx)) return mx; /* all -inf: -inf; any +inf: +inf (log-probs become null) */
    double s = 0.0;
    for (int32_t i = 0; i < n; i++)
        if (!isnan(x[i])) s += exp((double)x[i] - mx);
    return mx + log(s);
}

static void print_row(const float *x, int32_t n_vocab, int32_t pos, int32_t token, int32_t k, int32_t *topbuf,
                      bool first) {
    printf("%s\n  {\"pos\": %d, \"token\": %d, ", first ? "" : ",", (int)pos, (int)token);
    if (k > 0) {
        double lse = log_sum_exp(x, n_vocab);
        top_k(x, n_vocab, k, topbuf);
        fputs("\"top\": [", stdout);
        for (int32_t j = 0; j < k; j++) {
            printf(j ? ", [%d, " : "[%d, ", (int)topbuf[j]);
            cli_json_float(stdout, (double)x[topbuf[j]] - lse);
            putchar(']');
        }
    } else {
        fputs("\"logits\": [", stdout);
        for (int32_t j = 0; j < n_vocab; j++) {
            if (j) fputs(", ", stdout);
            cli_json_float(stdout, (double)x[j]);
        }
    }
    fputs("]}", stdout);
}

int cmd_logits(int argc, char **argv) {
    const char *cmd = "logits", *model_path = NULL, *prompt = NULL, *file = NULL, *ids_s = NULL;
    bool all = false, no_bos = false;
    int kv = 0;
    int64_t top = 0, n_ctx = 0, n_batch = 0, threads = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {"-p", "--prompt", CLI_STR, &prompt, 0, 0, NULL, NULL},
        {"-f", "--file", CLI_STR, &file, 0, 0, NULL, NULL},
        {NULL, "--ids", CLI_STR, &ids_s, 0, 0, NULL, NULL},
        {NULL, "--all", CLI_FLAG, &all, 0, 0, NULL, NULL},
        {NULL, "--top", CLI_INT, &top, 1, 1 << 30, NULL, NULL},
        {NULL, "--kv", CLI_CHOICE, &kv, 0, 0, CLI_KV_CHOICES, NULL},
        {"-c", "--ctx-size", CLI_INT, &n_ctx, 1, 1 << 24, NULL, NULL},
        {"-b", "--batch-size", CLI_INT, &n_batch, 1, 1 << 24, NULL, NULL},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
        CLI_MMAP_OPT,
        {NULL, "--no-bos", CLI_FLAG, &no_bos, 0, 0, NULL, NULL},
    };
    bool help;
    size_t n_pos;
    cli_lora lora = {0};
    int r = cli_lora_take(cmd, &argc, argv, &lora);
    if (r) return r;
    r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(logits_help, stdout);
        return CLI_OK;
    }
    if (!model_path) return cli_usage_error(cmd, "missing -m MODEL");
    if ((prompt != NULL) + (file != NULL) + (ids_s != NULL) != 1)
        return cli_usage_error(cmd, "give exactly one input: -p TEXT, -f FILE or --ids LIST");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (ids_s && (r = cli_parse_int_list(cmd, "--ids", ids_s, 0, INT32_MAX, &ids, &n_ids))) return r;

    lc_model *m = NULL;
    lc_context *c = NULL;
    char *text = NULL;
    int32_t *topbuf = NULL;
    int8_t *want = NULL;
    if ((r = cli_load_model(model_path, &m, NULL))) goto done;
    const int32_t n_vocab = (int32_t)lc_model_hparams(m)->n_vocab;
    if (ids) {
        for (size_t i = 0; i < n_ids; i++)
            if (ids[i] >= n_vocab) {
                r = cli_usage_error(cmd, "bad value for --ids: token %d (item %zu) is outside the vocabulary [0, %d) of %s",
                                    (int)ids[i], i + 1, (int)n_vocab, model_path);
                goto done;
            }
    } else {
        size_t len = 0;
        if (file) {
            if ((r = cli_read_file(file, &text, &len))) goto done;
        } else {
            len = strlen(prompt);
        }
        if ((r = cli_tokenize(m, text ? text : prompt, len, !no_bos && cli_model_add_bos(m), &ids, &n_ids))) goto done;
        if (n_ids == 0) {
            r = cli_error("the text gives no tokens (empty text and no BOS); nothing to compute");
            goto done;
        }
    }
    if (n_ids > (1u << 24)) {
        r = cli_error("%zu tokens are beyond the limit of 2^24", n_ids);
        goto done;
    }
    const int32_t n = (int32_t)n_ids;
    if (n_ctx && n > n_ctx) {
        r = cli_error("%d tokens do not fit in a context of %d (-c); raise -c or shorten the input", (int)n, (int)n_ctx);
        goto done;
    }
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)(n_ctx ? n_ctx : n);
    cp.n_batch = (uint32_t)(n_batch ? n_batch : (n < 512 ? n : 512));
    if (cp.n_batch > cp.n_ctx) cp.n_batch = cp.n_ctx;
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv);
    if (lc_context_new(m, &cp, &c) || (r = cli_lora_apply(&lora, m, c))) {
        if (r) goto done;
        r = cli_lib_error();
        goto done;
    }
    const int32_t nb = (int32_t)cp.n_batch;
    if (top > n_vocab) top = n_vocab;
    if (top && !(topbuf = malloc((size_t)top * sizeof *topbuf))) {
        r = cli_error("out of memory");
        goto done;
    }
    if (!(want = malloc((size_t)nb))) {
        r = cli_error("out of memory");
        goto done;
    }

    /* rows are streamed: a big stdout buffer keeps printf cheap without holding the whole output */
    setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    double t0 = lc_time_s();
    printf("{\"n_vocab\": %d, \"rows\": [", (int)n_vocab);
    bool first = true;
    int32_t n_rows = 0;
    for (int32_t p0 = 0; p0 < n; p0 += nb) {
        int32_t cnt = n - p0 < nb ? n - p0 : nb;
        bool last_chunk = p0 + cnt == n;
        for (int32_t i = 0; i < cnt; i++) want[i] = all || (last_chunk && i == cnt - 1);
        lc_batch b = {.n_tokens = cnt, .token = ids + p0, .pos = NULL, .seq_id = NULL, .logits = want};
        if (lc_decode(c, &b)) {
            fflush(stdout);
            fputs("\n", stdout); /* the JSON is incomplete: the exit status says so */
            r = cli_lib_error();
            goto done;
        }
        for (int32_t i = 0; i < cnt; i++) {
            if (!want[i]) continue;
            const float *x = lc_get_logits(c, i);
            if (!x) {
                r = cli_error("no logits for position %d (library error)", (int)(p0 + i));
                goto done;
            }
            print_row(x, n_vocab, p0 + i, ids[p0 + i], (int32_t)top, topbuf, first);
            first = false;
            n_rows++;
        }
    }
    printf("\n]}\n");
    if (fflush(stdout) || ferror(stdout)) {
        r = cli_error("writing the output failed");
        goto done;
    }
    fprintf(stderr, "llamac logits: %d tokens, %d rows, %.2f s\n", (int)n, (int)n_rows, lc_time_s() - t0);
    r = CLI_OK;
done:
    free(want);
    free(topbuf);
    free(text);
    free(ids);
    lc_context_free(c);
    cli_lora_free(&lora);
    lc_model_free(m);
    return r;
}
