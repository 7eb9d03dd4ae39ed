/* cmd_quantize.c - `llamac quantize IN.gguf OUT.gguf TYPE`: converts a model's weights with one of llama-quantize's
** recipes (lc_quantize_file). Prints a table of per-tensor types with --dry-run or -v, a progress bar on a terminal
** (stderr), and a summary: sizes, bits per weight, the tensors per type. The output is written through a temporary
** file and renamed, so OUT is never half-written.
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *quantize_help =
    "usage: llamac quantize IN.gguf OUT.gguf TYPE [options]\n"
    "       llamac quantize --dry-run IN.gguf [OUT.gguf] TYPE\n"
    "\n"
    "Writes OUT.gguf with IN's weights converted to TYPE, choosing per tensor as llama.cpp's llama-quantize does\n"
    "(no importance matrix): norms and other 1-D tensors stay as they are; output.weight (or the token\n"
    "embeddings when tied) gets Q6_K (Q8_0 in Q8_0 files); the _S/_M/_L mixes give some attn_v, attn_output and\n"
    "ffn_down tensors more bits; rows a type's blocks do not divide fall back to a 32-element type or F16. The file\n"
    "is byte-identical to llama-quantize's. All metadata (tokenizer, chat template) is carried over.\n"
    "\n"
    "TYPE: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS\n"
    "      F16 BF16 F32   (aliases: Q3_K = Q3_K_M, Q4_K = Q4_K_M, Q5_K = Q5_K_M; case does not matter)\n"
    "\n"
    "options:\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "  --dry-run              print the per-tensor types and the resulting size; write nothing\n"
    "  --allow-requantize     accept input tensors that are already quantized (compounds rounding errors)\n"
    "  -v, --verbose          print the per-tensor table also when writing\n"
    "  -h, --help             this help\n"
    "\n"
    "examples:\n"
    "  llamac quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M\n"
    "  llamac quantize --dry-run model-f16.gguf Q3_K_S\n";

typedef struct tally {
    bool print; /* a table row per tensor */
    uint64_t n_by_type[LC_TYPE_COUNT];
} tally;

static void human_bytes(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.2f MiB", (double)b / (1ull << 20));
    else snprintf(buf, cap, "%.2f KiB", (double)b / 1024.0);
}

static void on_tensor(const lc_quantize_tensor *t, void *user) {
    tally *ta = user;
    if (t->type_out >= 0 && t->type_out < LC_TYPE_COUNT) ta->n_by_type[t->type_out]++;
    if (!ta->print) return;
    char shape[96], bin[32], bout[32];
    int k = 0;
    for (uint32_t d = 0; d < t->n_dims && k < (int)sizeof shape; d++)
        k += snprintf(shape + k, sizeof shape - (size_t)k, d ? " x %llu" : "%llu", (unsigned long long)t->ne[d]);
    human_bytes(bin, sizeof bin, t->bytes_in);
    human_bytes(bout, sizeof bout, t->bytes_out);
    const char *tin = lc_type_name(t->type_in), *tout = lc_type_name(t->type_out);
    printf("[%4llu/%4llu] %-32s %-20s %-6s -> %-6s %12s -> %12s%s\n", (unsigned long long)t->index + 1,
           (unsigned long long)t->count, t->name, shape, tin ? tin : "?",
           tout ? tout : "?", bin, bout, t->fallback ? "  (fallback: rows do not fit the recipe's type)" : "");
}

typedef struct bar {
    double t0;
    int last_pct;
} bar;

/* A progress bar on stderr; only installed when stderr is a terminal. */
static void draw_bar(float fraction, void *user) {
    bar *b = user;
    int pct = (int)(fraction * 100.0f);
    if (pct > 100) pct = 100;
    if (pct == b->last_pct) return;
    b->last_pct = pct;
    char cells[41];
    for (int i = 0; i < 40; i++) cells[i] = i < pct * 40 / 100 ? '#' : '.';
    cells[40] = 0;
    fprintf(stderr, "\rquantizing [%s] %3d%% %6.1f s", cells, pct, lc_time_s() - b->t0);
    fflush(stderr);
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    int64_t threads = 0;
    bool dry_run = false, requant = false, verbose = false;
    const cli_opt opts[] = {
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
        {NULL, "--dry-run", CLI_FLAG, &dry_run, 0, 0, NULL, NULL},
        {NULL, "--allow-requantize", CLI_FLAG, &requant, 0, 0, NULL, NULL},
        {"-v", "--verbose", CLI_FLAG, &verbose, 0, 0, NULL, NULL},
    };
    const char *pos[3];
    size_t n_pos = 0;
    bool help = false;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, pos, 3, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(quantize_help, stdout);
        return CLI_OK;
    }
    if (n_pos != 3 && !(dry_run && n_pos == 2))
        return cli_usage_error(cmd, "expected IN.gguf OUT.gguf TYPE (with --dry-run, OUT may be left out)");
    const char *in = pos[0], *out = n_pos == 3 ? pos[1] : NULL, *type_name = pos[n_pos - 1];
    int ftype = lc_ftype_from_name(type_name);
    if (ftype < 0)
        return cli_usage_error(cmd, "unknown TYPE '%s' (one of Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L "
                               "Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS F16 BF16 F32)", type_name);
    if (out && !strcmp(in, out)) return cli_usage_error(cmd, "OUT is IN ('%s'): write to another file", in);

    lc_quantize_params qp = lc_quantize_default_params();
    qp.ftype = ftype;
    qp.n_threads = (int)threads;
    qp.dry_run = dry_run;
    qp.allow_requantize = requant;
    tally ta = {.print = dry_run || verbose};
    lc_quantize_result res;
    qp.on_tensor = on_tensor;
    qp.on_tensor_user = &ta;
    bar b = {lc_time_s(), -1};
    bool tty = !dry_run && isatty(2);
    if (tty) {
        qp.progress = draw_bar;
        qp.progress_user = &b;
    }
    if (ta.print) fflush(stdout);
    r = lc_quantize_file(in, out, &qp, &res);
    if (tty && b.last_pct >= 0) fputs("\n", stderr);
    if (r) return cli_lib_error();

    char sin[32], sout[32], sfile[32];
    human_bytes(sin, sizeof sin, res.bytes_in);
    human_bytes(sout, sizeof sout, res.bytes_out);
    human_bytes(sfile, sizeof sfile, res.file_bytes);
    double nel = res.n_elements ? (double)res.n_elements : 1.0;
    printf("%s: %.2f M parameters, tensors %s (%.2f bits per weight)\n", in, (double)res.n_elements / 1e6, sin,
           8.0 * (double)res.bytes_in / nel);
    printf("%s%s: %s, tensors %s (%.2f bits per weight), file %s (%llu bytes)\n", dry_run ? "would write " : "",
           out ? out : "(dry run)", lc_ftype_name(ftype), sout, 8.0 * (double)res.bytes_out / nel, sfile,
           (unsigned long long)res.file_bytes);
    printf("types:");
    for (int t = 0; t < LC_TYPE_COUNT; t++)
        if (ta.n_by_type[t]) printf(" %s %llu", lc_type_name(t), (unsigned long long)ta.n_by_type[t]);
    printf(" (%llu tensors)\n", (unsigned long long)res.n_tensors);
    if (res.n_fallback)
        printf("note: %u tensor(s) have rows the recipe's type does not divide and use a fallback type\n",
               res.n_fallback);
    if (!dry_run) fprintf(stderr, "llamac quantize: done in %.2f s\n", lc_time_s() - b.t0);
    return CLI_OK;
}
