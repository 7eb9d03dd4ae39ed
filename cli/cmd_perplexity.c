/* cmd_perplexity.c - `llamac perplexity`: perplexity of a text, computed as llama.cpp's llama-perplexity does.
**
** The text is tokenized once (BOS first when the vocabulary adds one) and cut into non-overlapping chunks of CTX
** tokens (a tail shorter than CTX is dropped). Each chunk is evaluated from an empty KV cache with its first token
** replaced by BOS (when the vocabulary adds one); only the second half is scored, so every scored token has at
** least CTX/2 tokens of context: the logits at position p (CTX/2 <= p <= CTX-2) give -log softmax of the chunk's
** token p+1. PPL = exp(mean NLL); its uncertainty, as llama.cpp reports it, is PPL * sd(NLL) / sqrt(count - 1) with
** the population sd. Several chunks share one batch (as separate sequences) when -b allows, as llama.cpp does.
** Uses only the public API.
*/
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static const char *perplexity_help =
    "usage: llamac perplexity -m MODEL -f TEXT [options]\n"
    "\n"
    "Perplexity of the model on a text file, as llama.cpp's llama-perplexity computes it: the tokens are cut into\n"
    "chunks of CTX tokens, each evaluated from an empty cache (first token replaced by BOS when the vocabulary\n"
    "adds one), and the second half of every chunk is scored. The text must give at least 2*CTX tokens.\n"
    "Prints the running perplexity after each chunk ([1]x,[2]y,...) and\n"
    "  Final estimate: PPL = P +/- U\n"
    "where U = P * sd(NLL) / sqrt(count - 1).\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the model (GGUF, or llama2.c .bin)\n"
    "  -f, --file FILE      the text ('-': stdin)\n"
    "  -c, --ctx-size N     tokens per chunk (default 512)\n"
    "  -b, --batch-size N   tokens per decode call (default 2048); when it is a multiple of CTX, that many chunks\n"
    "                       are evaluated together\n"
    "  --chunks N           evaluate at most N chunks (default: all)\n"
    "  --kv f16|f32         KV cache type (default f16, as llama.cpp)\n"
    "  -t, --threads N      threads (default: all cores)\n"
    "  --mmap               map the model file instead of reading it into memory (huge pages)\n"
    "  -h, --help           this help\n";

/* -log p(tok) from one row of logits, with the roundings of llama.cpp's log_softmax: max in float, the sum of
** expf() in double, the difference formed in float and the log subtracted in double. */
static double nll_of(const float *logits, int32_t n_vocab, int32_t tok) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += expf(logits[i] - mx);
    return -((double)(logits[tok] - mx) - log(sum));
}

typedef struct progress {
    bool tty;
    double t0;
} progress;

static void progress_show(const progress *p, int done, int total, double ppl) {
    if (!p->tty) return;
    double el = lc_time_s() - p->t0, eta = done ? el / done * (total - done) : 0.0;
    char cells[31];
    for (int i = 0; i < 30; i++) cells[i] = i < done * 30 / (total ? total : 1) ? '#' : '.';
    cells[30] = 0;
    fprintf(stderr, "\rperplexity [%s] chunk %d/%d  PPL %.4f  %.1f s (eta %.0f s) ", cells, done, total, ppl, el, eta);
    fflush(stderr);
}

int cmd_perplexity(int argc, char **argv) {
    const char *cmd = "perplexity", *model_path = NULL, *file = NULL;
    int kv = 0;
    int64_t n_ctx = 512, n_batch = 2048, threads = 0, max_chunks = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {"-f", "--file", CLI_STR, &file, 0, 0, NULL, NULL},
        {"-c", "--ctx-size", CLI_INT, &n_ctx, 4, 1 << 20, NULL, NULL},
        {"-b", "--batch-size", CLI_INT, &n_batch, 1, 1 << 24, NULL, NULL},
        {NULL, "--chunks", CLI_INT, &max_chunks, 1, 1 << 30, NULL, NULL},
        {NULL, "--kv", CLI_CHOICE, &kv, 0, 0, CLI_KV_CHOICES, NULL},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
        CLI_MMAP_OPT,
    };
    bool help = false;
    size_t n_pos = 0;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(perplexity_help, stdout);
        return CLI_OK;
    }
    if (!model_path) return cli_usage_error(cmd, "missing -m MODEL");
    if (!file) return cli_usage_error(cmd, "missing -f TEXT");

    lc_model *m = NULL;
    lc_context *c = NULL;
    char *text = NULL;
    int32_t *ids = NULL, *tok = NULL, *pos = NULL, *seq = NULL;
    int8_t *want = NULL;
    double *acc = NULL; /* per sequence of a batch: nll, nll^2, count */
    size_t len = 0, n_ids = 0;
    if ((r = cli_read_file(file, &text, &len))) goto done;
    if ((r = cli_load_model(model_path, &m, NULL))) goto done;
    const bool add_bos = cli_model_add_bos(m);
    if ((r = cli_tokenize(m, text, len, add_bos, &ids, &n_ids))) goto done;
    const int32_t n_vocab = (int32_t)lc_model_hparams(m)->n_vocab, ctx = (int32_t)n_ctx;
    if (n_ids < 2 * (size_t)ctx) {
        r = cli_error("%s gives %zu tokens; a context of %d needs at least %d (2 chunks): use a longer text or a smaller "
                      "-c", file, n_ids, ctx, 2 * ctx);
        goto done;
    }
    /* chunks per batch as llama-perplexity: n_seq = batch / ctx, and then the batch is n_seq whole chunks */
    int32_t n_chunk = (int32_t)MIN(n_ids / (size_t)ctx, (size_t)INT32_MAX);
    if (max_chunks && max_chunks < n_chunk) n_chunk = (int32_t)max_chunks;
    const int32_t n_seq = n_batch >= ctx ? (int32_t)MIN(n_batch / ctx, n_chunk) : 1; /* no idle cache cells */
    const int32_t nb = n_batch >= ctx ? n_seq * ctx : (int32_t)n_batch;
    const int32_t first = ctx / 2;
    if (ctx > (int32_t)lc_model_hparams(m)->n_ctx_train)
        fprintf(stderr, "llamac perplexity: warning: the model was trained on %u tokens of context, -c is %d\n",
                lc_model_hparams(m)->n_ctx_train, ctx);

    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)(n_seq * ctx);
    cp.n_batch = (uint32_t)nb;
    cp.n_seq_max = (uint32_t)n_seq;
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv);
    if (lc_context_new(m, &cp, &c)) {
        r = cli_lib_error();
        goto done;
    }
    tok = malloc(sizeof *tok * (size_t)nb);
    pos = malloc(sizeof *pos * (size_t)nb);
    seq = malloc(sizeof *seq * (size_t)nb);
    want = malloc((size_t)nb);
    acc = calloc(3 * (size_t)n_seq, sizeof *acc);
    if (!tok || !pos || !seq || !want || !acc) {
        r = cli_error("out of memory for a batch of %d tokens", (int)nb);
        goto done;
    }
    fprintf(stderr, "llamac perplexity: %zu tokens, %d chunks of %d (scoring the last %d of each), %d per batch, "
            "KV %s\n", n_ids, (int)n_chunk, (int)ctx, (int)(ctx - first - 1), (int)n_seq, kv ? "f32" : "f16");

    progress pr = {!isatty(1) && isatty(2), lc_time_s()};
    double nll = 0.0, nll2 = 0.0;
    long long count = 0;
    const int32_t n_pass = (ctx + nb - 1) / nb; /* decode calls per chunk when a chunk does not fit one batch */
    for (int32_t i = 0; i < n_chunk; i += n_seq) {
        const int32_t n_here = MIN(n_seq, n_chunk - i);
        const double t_chunk = lc_time_s();
        lc_kv_remove(c, -1, 0, -1);
        memset(acc, 0, 3 * (size_t)n_seq * sizeof *acc);
        for (int32_t j = 0; j < n_pass; j++) {
            const int32_t p0 = j * nb, cnt = MIN(ctx - p0, nb);
            int32_t n = 0;
            for (int32_t s = 0; s < n_here; s++) {
                const int32_t *chunk = ids + (size_t)(i + s) * (size_t)ctx;
                for (int32_t k = 0; k < cnt; k++, n++) {
                    tok[n] = (p0 + k == 0 && add_bos) ? lc_token_bos(m) : chunk[p0 + k];
                    pos[n] = p0 + k;
                    seq[n] = s;
                    want[n] = p0 + k >= first && p0 + k < ctx - 1;
                }
            }
            lc_batch b = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = seq, .logits = want};
            if (lc_decode(c, &b)) {
                if (pr.tty) fputs("\n", stderr);
                r = cli_lib_error();
                goto done;
            }
            for (int32_t k = 0; k < n; k++) {
                if (!want[k]) continue;
                const float *x = lc_get_logits(c, k);
                if (!x) {
                    r = cli_error("no logits for batch row %d (library error)", (int)k);
                    goto done;
                }
                const int32_t *chunk = ids + (size_t)(i + seq[k]) * (size_t)ctx;
                const double v = nll_of(x, n_vocab, chunk[pos[k] + 1]);
                acc[3 * seq[k]] += v;
                acc[3 * seq[k] + 1] += v * v;
                acc[3 * seq[k] + 2] += 1;
            }
        }
        if (i == 0) {
            double dt = lc_time_s() - t_chunk;
            fprintf(stderr, "llamac perplexity: %.2f s per pass, ETA %.1f min\n", dt,
                    dt * ((n_chunk + n_seq - 1) / n_seq) / 60.0);
        }
        for (int32_t s = 0; s < n_here; s++) { /* chunk by chunk, in order, as llama-perplexity reports them */
            nll += acc[3 * s];
            nll2 += acc[3 * s + 1];
            count += (long long)acc[3 * s + 2];
            printf("[%d]%.4f,", (int)(i + s + 1), exp(nll / (double)count));
        }
        fflush(stdout);
        progress_show(&pr, i + n_here, n_chunk, exp(nll / (double)count));
    }
    if (pr.tty) fputs("\n", stderr);
    printf("\n");
    const double mean = nll / (double)count, ppl = exp(mean);
    double var = nll2 / (double)count - mean * mean;
    if (var > 0 && count > 1) {
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(var / (double)(count - 1)) * ppl);
    } else {
        printf("Final estimate: PPL = %.4f\n", ppl);
        fprintf(stderr, "llamac perplexity: the variance of the NLL is not positive; no uncertainty estimate\n");
    }
    fprintf(stderr, "llamac perplexity: %lld tokens scored in %.2f s\n", count, lc_time_s() - pr.t0);
    r = fflush(stdout) || ferror(stdout) ? cli_error("writing the output failed") : CLI_OK;
done:
    free(acc);
    free(want);
    free(seq);
    free(pos);
    free(tok);
    free(ids);
    free(text);
    lc_context_free(c);
    lc_model_free(m);
    return r;
}
