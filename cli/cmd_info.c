/* cmd_info.c - `llamac info MODEL`: what a model file holds: its metadata (long strings and arrays abbreviated), a
** table of tensors (name, type, shape, bytes) with totals, and the hyperparameters the engine derived from it.
** Shapes are printed as GGML orders them: ne[0] (the contiguous row length) first.
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *info_help =
    "usage: llamac info [options] MODEL\n"
    "\n"
    "Prints a model's metadata, its tensors (name, type, shape, bytes) with totals, and its hyperparameters.\n"
    "Shapes list ne[0] (the row length) first, as GGUF stores them.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the model (or give it as the argument): GGUF, or llama2.c .bin\n"
    "  --full               do not abbreviate long strings and arrays\n"
    "  --no-tensors         skip the tensor table (totals are still printed)\n"
    "  -h, --help           this help\n";

/* Prints a metadata value on one line: control characters escaped, at most max_chars characters. */
static void print_value(const char *v, size_t max_chars) {
    size_t n = strlen(v), shown = 0;
    for (const char *p = v; *p && shown < max_chars; p++, shown++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    if (shown < n) fputs(" ... (cut; --full shows all)", stdout);
    putchar('\n');
}

static void human_bytes(uint64_t b, char *buf, size_t cap) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.2f MiB", (double)b / (double)(1ull << 20));
    else if (b >= (1ull << 10)) snprintf(buf, cap, "%.2f KiB", (double)b / (double)(1ull << 10));
    else snprintf(buf, cap, "%llu B", (unsigned long long)b);
}

int cmd_info(int argc, char **argv) {
    const char *cmd = "info", *model_path = NULL;
    bool full = false, no_tensors = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {NULL, "--full", CLI_FLAG, &full, 0, 0, NULL, NULL},
        {NULL, "--no-tensors", CLI_FLAG, &no_tensors, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t n_pos;
    bool help;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, pos, 1, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(info_help, stdout);
        return CLI_OK;
    }
    if (n_pos && model_path) return cli_usage_error(cmd, "give the model once: -m FILE or as the argument");
    if (n_pos) model_path = pos[0];
    if (!model_path) return cli_usage_error(cmd, "missing MODEL (a GGUF file or a llama2.c .bin)");

    lc_model *m;
    double load_s;
    char why[512] = "";
    lc_model_params mp = lc_model_default_params();
    double t0 = lc_time_s();
    if (lc_model_load(model_path, &mp, &m) == 0) {
        load_s = lc_time_s() - t0;
    } else { /* not runnable here (e.g. a type or architecture llamac lacks): still show what the file holds */
        snprintf(why, sizeof why, "%s", lc_last_error());
        if ((r = cli_load_model_ex(model_path, true, &m, &load_s))) return r;
    }

    struct stat st;
    char desc[128], hb[32];
    lc_model_desc(m, desc, sizeof desc);
    printf("file: %s (%llu bytes)\n", model_path, stat(model_path, &st) == 0 ? (unsigned long long)st.st_size : 0ull);
    printf("model: %s\n", desc);

    /* metadata */
    const size_t cap = full ? (1u << 22) : 4096, max_items = full ? (size_t)-1 : 8, max_chars = full ? (size_t)-1 : 160;
    char *buf = malloc(cap);
    if (!buf) {
        lc_model_free(m);
        return cli_error("out of memory");
    }
    size_t n_kv = lc_model_meta_count(m), key_w = 0;
    for (size_t i = 0; i < n_kv; i++) {
        const char *k = lc_model_meta_get(m, i, buf, 1, 0);
        if (k && strlen(k) > key_w) key_w = strlen(k);
    }
    printf("\nmetadata (%zu keys):\n", n_kv);
    for (size_t i = 0; i < n_kv; i++) {
        const char *k = lc_model_meta_get(m, i, buf, cap, max_items);
        if (!k) continue;
        printf("  %-*s = ", (int)key_w, k);
        print_value(buf, max_chars);
    }
    free(buf);

    /* tensors */
    size_t n_t = lc_model_tensor_count(m), name_w = 4;
    lc_tensor_info ti;
    for (size_t i = 0; i < n_t; i++)
        if (lc_model_tensor_get(m, i, &ti) == 0 && strlen(ti.name) > name_w) name_w = strlen(ti.name);
    if (!no_tensors) {
        printf("\ntensors (%zu):\n", n_t);
        printf("  %5s  %-*s  %-7s  %-24s  %14s  %12s\n", "#", (int)name_w, "name", "type", "shape", "bytes", "offset");
    }
    uint64_t total_bytes = 0, total_params = 0, bytes_by_type[LC_TYPE_COUNT] = {0};
    for (size_t i = 0; i < n_t; i++) {
        if (lc_model_tensor_get(m, i, &ti)) {
            lc_model_free(m);
            return cli_lib_error();
        }
        uint64_t n_el = 1;
        char shape[96] = "";
        size_t sl = 0;
        for (uint32_t d = 0; d < ti.n_dims && d < 4; d++) {
            n_el *= ti.ne[d];
            sl += (size_t)snprintf(shape + sl, sizeof shape - sl, d ? " x %llu" : "%llu", (unsigned long long)ti.ne[d]);
            if (sl >= sizeof shape) sl = sizeof shape - 1;
        }
        total_bytes += ti.n_bytes;
        total_params += n_el;
        if (ti.type >= 0 && ti.type < LC_TYPE_COUNT) bytes_by_type[ti.type] += ti.n_bytes;
        if (!no_tensors) {
            const char *tn = lc_type_name(ti.type);
            printf("  %5zu  %-*s  %-7s  %-24s  %14llu  %12llu\n", i, (int)name_w, ti.name, tn ? tn : "?", shape,
                   (unsigned long long)ti.n_bytes, (unsigned long long)ti.offset);
        }
    }
    human_bytes(total_bytes, hb, sizeof hb);
    double tp = (double)total_params;
    char hp_s[32];
    if (tp >= 1e9) snprintf(hp_s, sizeof hp_s, "%.2f B", tp / 1e9);
    else if (tp >= 1e6) snprintf(hp_s, sizeof hp_s, "%.2f M", tp / 1e6);
    else snprintf(hp_s, sizeof hp_s, "%.2f K", tp / 1e3);
    printf("\ntotal: %zu tensors, %llu parameters (%s), %llu bytes (%s)\n", n_t, (unsigned long long)total_params, hp_s,
           (unsigned long long)total_bytes, hb);
    printf("by type:");
    for (int t = 0; t < LC_TYPE_COUNT; t++)
        if (bytes_by_type[t]) {
            human_bytes(bytes_by_type[t], hb, sizeof hb);
            printf("  %s %s", lc_type_name(t) ? lc_type_name(t) : "?", hb);
        }
    printf("\n");

    /* hyperparameters, as the engine reads them */
    const lc_hparams *hp = lc_model_hparams(m);
    const char *ft = lc_type_name(hp->ftype);
    printf("\nhyperparameters:\n");
    printf("  n_vocab      %u\n  n_ctx_train  %u\n  n_embd       %u\n  n_layer      %u\n  n_ff         %u\n",
           hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_ff);
    printf("  n_head       %u\n  n_head_kv    %u (group of %u)\n  head_dim     %u\n  n_rot        %u\n", hp->n_head,
           hp->n_head_kv, hp->n_head_kv ? hp->n_head / hp->n_head_kv : 0, hp->head_dim, hp->n_rot);
    printf("  rope_theta   %g\n  rms_eps      %g\n  rope_freqs   %s\n  output       %s\n  weights      %s\n",
           (double)hp->rope_theta, (double)hp->rms_eps, hp->has_rope_freqs ? "yes (Llama 3.1 RoPE scaling)" : "no",
           hp->tied_output ? "tied (token_embd.weight)" : "output.weight", ft ? ft : "mixed/unknown");
    printf("  tokens       bos %d, eos %d\n", (int)lc_token_bos(m), (int)lc_token_eos(m));
    if (why[0]) printf("\nNOT RUNNABLE by this build: %s\n", why);
    fprintf(stderr, "llamac info: loaded in %.2f s\n", load_s);
    lc_model_free(m);
    return CLI_OK;
}
