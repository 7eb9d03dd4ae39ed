/* test_quantize.c - `llamac quantize` against llama.cpp's own quantizer.
**
** 1. ../shared/data/quant/base-F32.gguf quantized by `llamac quantize` to each of the 18 types llama-quantize made
**    quant-TYPE.gguf from: the per-tensor types equal manifest.json's tensor_types, and every tensor's bytes equal
**    those of quant-TYPE.gguf (read back with src/gguf); the whole files are compared too.
** 2. llama.cpp's quantizer itself (llama_model_quantize in the oracle's prebuilt libllama, via dlopen) on synthetic
**    models that reach the recipe branches the 2-layer base model does not: 16 layers (the use_more_bits pattern,
**    n/8 and n/16 cut-offs, the first attn_v tensors), GQA 4, tied embeddings, rows that are not a multiple of 256
**    or 32 (fallback types, F16), F16/BF16/Q8_0 input (with --allow-requantize): files byte-identical.
** 3. llama.cpp loads files written here: the oracle's logits on llamac's Q4_K_M output equal the golden logits of
**    llama-quantize's file; on a synthetic output with fallback types it evaluates to finite logits.
** 4. Behaviour: OUT == IN refused (same path, hard link, symlink) and the input untouched; an already-quantized input
**    needs --allow-requantize; a dry run writes nothing and predicts the file size; the thread count does not change
**    the output; CLI usage errors exit 2.
** The tool: env LLAMAC_BIN, else <build>/llamac beside <build>/tests/. When it cannot run here (a cross build under
** qemu), part 1 calls lc_quantize_file directly (what the tool calls) and the CLI checks skip.
*/
#include "../src/gguf/gguf.h"
#include "../src/tokenizer/json.h"
#include "harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation" /* long paths in messages may be cut; that is fine */
#endif

static char g_bin[4096];
static char g_tmp[256];
static bool g_cli_runs;

static bool quick(void) {
    const char *q = getenv("LLAMAC_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmp, name); }

/* ---- running the tool: fork/exec, stdout and stderr to files, exit status back ------------------------------- */
static int run_tool(const char *const *args, const char *out_file, const char *err_file) {
    const char *argv[32];
    size_t n = 0;
    argv[n++] = g_bin;
    for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fo = open(out_file ? out_file : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_file ? err_file : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo >= 0) dup2(fo, 1);
        if (fe >= 0) dup2(fe, 2);
        execv(g_bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static char *slurp(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (n_out) *n_out = (size_t)n;
    return buf;
}

static bool file_exists(const char *p) { return access(p, F_OK) == 0; }

/* Quantizes in -> out as TYPE: through the tool when it runs here, else through the library call it makes. */
static int quantize(const char *in, const char *out, const char *type, const char *threads, bool requant) {
    if (g_cli_runs) {
        char err[512];
        tmp_path(err, sizeof err, "quantize.err");
        const char *args[] = {"quantize", in, out, type, "-t", threads, requant ? "--allow-requantize" : NULL, NULL};
        int rc = run_tool(args, NULL, err);
        if (rc != 0) {
            char *msg = slurp(err, NULL);
            fprintf(stderr, "llamac quantize %s %s %s: exit %d: %s\n", in, out, type, rc, msg ? msg : "");
            free(msg);
        }
        return rc;
    }
    lc_quantize_params p = lc_quantize_default_params();
    p.ftype = lc_ftype_from_name(type);
    p.n_threads = atoi(threads);
    p.allow_requantize = requant;
    int r = lc_quantize_file(in, out, &p, NULL);
    if (r) fprintf(stderr, "lc_quantize_file %s: %s\n", type, lc_last_error());
    return r;
}

/* ---- comparing GGUF files ------------------------------------------------------------------------------------ */
/* Compares ours with ref tensor by tensor (names in the same order, types, shapes, data bytes). Returns the number
** of tensors that differ (-1 if a file cannot be read); msg describes the first difference. */
static int compare_tensors(const char *ours, const char *ref, char *msg, size_t cap) {
    gguf_file *a = NULL, *b = NULL;
    msg[0] = 0;
    if (gguf_open(ours, &a) || gguf_open(ref, &b)) {
        snprintf(msg, cap, "cannot read: %s", lc_last_error());
        gguf_close(a);
        return -1;
    }
    int n_diff = 0;
    if (a->n_tensors != b->n_tensors) {
        snprintf(msg, cap, "%llu tensors vs %llu", (unsigned long long)a->n_tensors, (unsigned long long)b->n_tensors);
        n_diff = -1;
    }
    for (uint64_t i = 0; n_diff >= 0 && i < b->n_tensors; i++) {
        const gguf_tensor *tb = &b->tensors[i], *ta = gguf_find_tensor(a, tb->name);
        const char *why = NULL;
        uint64_t bytes = 0;
        if (!ta) why = "missing";
        else if (ta->type != tb->type) why = "type";
        else if (ta->n_dims != tb->n_dims || memcmp(ta->ne, tb->ne, sizeof ta->ne)) why = "shape";
        else if (ta->size != tb->size) why = "size";
        else if (ta != &a->tensors[i]) why = "order";
        else
            for (uint64_t k = 0; k < ta->size; k++) bytes += ((const uint8_t *)ta->data)[k] != ((const uint8_t *)tb->data)[k];
        if (why || bytes) {
            if (!n_diff)
                snprintf(msg, cap, "tensor '%s': %s%s%s (%llu bytes differ)", tb->name, why ? why : "data",
                         ta ? " ours " : "", ta ? lc_type_name((int)ta->type) : "", (unsigned long long)bytes);
            n_diff++;
        }
    }
    gguf_close(a);
    gguf_close(b);
    return n_diff;
}

/* Whole files byte for byte: 1 identical, 0 not (first differing offset in *at), -1 unreadable. */
static int compare_bytes(const char *pa, const char *pb, long *at) {
    size_t na, nb;
    char *a = slurp(pa, &na), *b = slurp(pb, &nb);
    int r = -1;
    if (a && b) {
        size_t n = na < nb ? na : nb, i = 0;
        while (i < n && a[i] == b[i]) i++;
        r = i == n && na == nb;
        *at = (long)i;
    }
    free(a);
    free(b);
    return r;
}

/* ---- 1. the base model vs llama-quantize's files ------------------------------------------------------------- */
static const char *const k_types[] = {"F16",    "BF16",   "Q8_0",   "Q4_0",   "Q4_1",   "Q5_0",
                                      "Q5_1",   "Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
                                      "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",   "IQ4_NL", "IQ4_XS"};
#define N_TYPES (sizeof k_types / sizeof *k_types)

/* manifest.json's tensor_types of one type (an object node), or NULL. */
static const lc_jnode *manifest_types(const lc_json *j, const char *type) {
    const lc_jnode *files = lc__json_get(j, lc__json_root(j), "files");
    for (const lc_jnode *f = files ? lc__json_first(j, files) : NULL; f; f = lc__json_next(j, f)) {
        const char *t = lc__json_get_str(j, f, "type");
        if (t && !strcmp(t, type)) return lc__json_get(j, f, "tensor_types");
    }
    return NULL;
}

/* The goldens in ../shared/data were made on an x86-64 CPU with AVX-512; ggml picks its CPU variant at run time. */
static bool cpu_has_avx512(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

TEST(base_model_matches_llama_quantize_files) {
    const char *sd = th_shared_dir();
    if (!sd) SKIP("../shared/data is absent");
    char base[512], mpath[512];
    snprintf(base, sizeof base, "%s/quant/base-F32.gguf", sd);
    snprintf(mpath, sizeof mpath, "%s/quant/manifest.json", sd);
    size_t mlen;
    char *mtext = slurp(mpath, &mlen);
    if (!mtext || !file_exists(base)) {
        free(mtext);
        SKIP("../shared/data/quant (base-F32.gguf, manifest.json) is absent");
    }
    lc_json *j = NULL;
    int r = lc__json_parse(mtext, mlen, mpath, &j);
    free(mtext);
    CHECKF(r == 0, "manifest.json: %s", lc_last_error());
    int n_identical = 0;
    char fails[1024] = "";
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const char *type = k_types[ti];
        char out[512], ref[512], msg[512];
        snprintf(out, sizeof out, "%s/base-%s.gguf", g_tmp, type);
        snprintf(ref, sizeof ref, "%s/quant/quant-%s.gguf", sd, type);
        if (quantize(base, out, type, "2", false) != 0) {
            lc__json_free(j);
            FAILF("quantizing to %s failed", type);
        }
        /* per-tensor types as the manifest lists them */
        const lc_jnode *want = manifest_types(j, type);
        gguf_file *f = NULL;
        if (!want || gguf_open(out, &f)) {
            lc__json_free(j);
            FAILF("%s: %s", type, want ? lc_last_error() : "not in manifest.json");
        }
        uint32_t n_want = 0;
        const char *bad = NULL;
        for (const lc_jnode *m = lc__json_first(j, want); m; m = lc__json_next(j, m), n_want++) {
            const gguf_tensor *t = gguf_find_tensor(f, lc__json_key(j, m));
            if (!t || strcmp(lc_type_name((int)t->type), lc__json_str(j, m)) != 0) bad = lc__json_key(j, m);
            if (bad) {
                snprintf(msg, sizeof msg, "%s: tensor %s is %s, manifest.json says %s", type, bad,
                         t ? lc_type_name((int)t->type) : "missing", lc__json_str(j, m));
                break;
            }
        }
        bool count_ok = f->n_tensors == n_want;
        gguf_close(f);
        if (bad || !count_ok) {
            lc__json_free(j);
            FAILF("%s", bad ? msg : "tensor count differs from manifest.json");
        }
        /* tensor data, then the whole file */
        int nd = compare_tensors(out, ref, msg, sizeof msg);
        long at = 0;
        int same = compare_bytes(out, ref, &at);
        printf("        %-7s tensors: %s%s; whole file: %s\n", type, nd == 0 ? "all identical" : "DIFFER ",
               nd == 0 ? "" : msg, same == 1 ? "identical" : "differs");
        if (nd != 0) snprintf(fails + strlen(fails), sizeof fails - strlen(fails), " %s", type);
        n_identical += same == 1;
        unlink(out);
    }
    lc__json_free(j);
    CHECKF(!fails[0], "tensor data differs from llama-quantize's for:%s", fails);
    printf("        %d of %zu files byte-identical to llama-quantize's\n", n_identical, N_TYPES);
}

/* ---- 2. llama.cpp's quantizer on synthetic models ------------------------------------------------------------ */
/* llama_model_quantize_params of llama.h at the oracle's release (v0.5.0, de3ff81). The layout is checked against
** the defaults llama_model_quantize_default_params returns before use. */
typedef struct ll_qparams {
    int32_t nthread;
    int ftype;
    int output_tensor_type, token_embedding_type;
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const void *imatrix, *kv_overrides, *tt_overrides;
    const int32_t *prune_layers;
    size_t max_buf_size;
} ll_qparams;

typedef struct ll_quant {
    void *h;
    ll_qparams (*defaults)(void);
    uint32_t (*quantize)(const char *, const char *, const ll_qparams *);
} ll_quant;

static void ll_log_quiet(int level, const char *text, void *user) {
    (void)user;
    if (level == 4 /* GGML_LOG_LEVEL_ERROR */) fputs(text, stderr);
}

/* LLAMAC_REQUIRE_ORACLE=1 turns a missing oracle into a failure; the prebuilt llama.cpp exists for x86-64 only. */
static bool oracle_required(void) {
#if defined(__x86_64__)
    const char *e = getenv("LLAMAC_REQUIRE_ORACLE");
    return e && !strcmp(e, "1");
#else
    return false;
#endif
}

/* Opens the oracle's libllama (LC_ORACLE_LIBDIR, .oracle/npm/..., /tmp/nlc/...). */
static bool ll_open(ll_quant *q, char *why, size_t cap) {
    const char *e = getenv("LC_ORACLE_LIBDIR");
    const char *dirs[] = {e && *e ? e : NULL, ".oracle/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64",
                          "/tmp/nlc/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"};
    memset(q, 0, sizeof *q);
    snprintf(why, cap, "llama.cpp's libllama not found (tests/oracle/build-oracle.sh installs it; x86-64 Linux)");
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs && !q->h; i++) {
        if (!dirs[i]) continue;
        char pat[1024];
        snprintf(pat, sizeof pat, "%s/libllama.v*.so", dirs[i]);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            if (g.gl_pathc > 0) q->h = dlopen(g.gl_pathv[0], RTLD_NOW | RTLD_LOCAL);
            globfree(&g);
        }
    }
    if (!q->h) return false;
    void *d = dlsym(q->h, "llama_model_quantize_default_params"), *f = dlsym(q->h, "llama_model_quantize"),
         *l = dlsym(q->h, "llama_log_set");
    if (!d || !f || !l) {
        snprintf(why, cap, "libllama lacks llama_model_quantize");
        return false;
    }
    memcpy(&q->defaults, &d, sizeof d);
    memcpy(&q->quantize, &f, sizeof f);
    void (*log_set)(void (*)(int, const char *, void *), void *);
    memcpy(&log_set, &l, sizeof l);
    log_set(ll_log_quiet, NULL);
    ll_qparams p = q->defaults();
    if (p.nthread != 0 || p.ftype != LC_FTYPE_Q8_0 || p.output_tensor_type != LC_TYPE_COUNT ||
        p.token_embedding_type != LC_TYPE_COUNT || p.allow_requantize || !p.quantize_output_tensor || p.only_copy ||
        p.pure || p.dry_run || p.max_buf_size != (8ull << 30)) {
        snprintf(why, cap, "libllama's llama_model_quantize_params is not the layout of v0.5.0");
        return false;
    }
    return true;
}

typedef struct synth_case {
    const char *name;
    lc_synth_params p;
    const char *types[16];
    bool requant;
} synth_case;

static lc_synth_params synth(uint32_t n_vocab, uint32_t n_embd, uint32_t n_layer, uint32_t n_head, uint32_t n_head_kv,
                             uint32_t n_ff, bool tied, int wtype) {
    lc_synth_params p = lc_synth_default_params();
    p.n_vocab = n_vocab;
    p.n_embd = n_embd;
    p.n_layer = n_layer;
    p.n_head = n_head;
    p.n_head_kv = n_head_kv;
    p.n_ff = n_ff;
    p.tied_output = tied;
    p.wtype = wtype;
    p.seed = 11 + n_layer;
    return p;
}

TEST(synthetic_models_match_llama_cpp_quantizer) {
    ll_quant q;
    char why[256];
    if (!ll_open(&q, why, sizeof why)) {
        if (oracle_required()) FAILF("%s and LLAMAC_REQUIRE_ORACLE=1", why);
        SKIP("%s", why);
    }
    synth_case cases[] = {
        /* 16 layers, GQA 4, F16 input: the layer-dependent bumps of every mix */
        {"16 layers GQA4 F16", synth(260, 256, 16, 4, 1, 256, false, LC_TYPE_F16),
         {"Q4_K_M", "Q3_K_M", "Q2_K", "Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_S", "Q5_K_M", "Q6_K", "Q4_0", "Q8_0", "BF16",
          "F32"},
         false},
        /* the IQ4 mixes (slow to quantize: a scale search per block) on 8 layers, GQA 4 */
        {"8 layers GQA4 F32", synth(260, 256, 8, 4, 1, 256, false, LC_TYPE_F32), {"IQ4_XS", "IQ4_NL"}, false},
        /* tied output, rows of 288 (not a multiple of 256) and 784 (not of 32): fallbacks to 32-blocks and F16 */
        {"tied, rows 288/784, F32", synth(300, 288, 3, 6, 6, 784, true, LC_TYPE_F32),
         {"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_S", "Q6_K", "IQ4_XS", "IQ4_NL", "Q4_0", "Q5_1", "Q8_0", "F16"},
         false},
        /* already-quantized and BF16 input */
        {"Q8_0 input", synth(260, 256, 4, 4, 2, 512, false, LC_TYPE_Q8_0), {"Q4_K_M", "Q4_0", "F16"}, true},
        {"BF16 input", synth(260, 256, 4, 4, 2, 512, true, LC_TYPE_BF16), {"Q5_K_M", "IQ4_XS"}, false},
    };
    int n_cmp = 0, n_bad = 0;
    char first_bad[512] = "";
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        synth_case *c = &cases[ci];
        if (quick()) { /* smaller under sanitizers: fewer layers and types */
            if (c->p.n_layer > 8) c->p.n_layer = 8;
            c->types[1] = NULL;
        }
        char in[512];
        snprintf(in, sizeof in, "%s/synth-%zu.gguf", g_tmp, ci);
        CHECKF(lc_synth_write(in, &c->p) == 0, "lc_synth_write: %s", lc_last_error());
        for (size_t ti = 0; ti < 16 && c->types[ti]; ti++) {
            const char *type = c->types[ti];
            char ours[512], theirs[512], msg[512];
            snprintf(ours, sizeof ours, "%s/synth-%zu-%s-llamac.gguf", g_tmp, ci, type);
            snprintf(theirs, sizeof theirs, "%s/synth-%zu-%s-llama.gguf", g_tmp, ci, type);
            ll_qparams p = q.defaults();
            p.ftype = lc_ftype_from_name(type);
            p.nthread = 2;
            p.allow_requantize = c->requant;
            CHECKF(q.quantize(in, theirs, &p) == 0, "%s: llama_model_quantize to %s failed", c->name, type);
            CHECKF(quantize(in, ours, type, "2", c->requant) == 0, "%s: quantizing to %s failed", c->name, type);
            int nd = compare_tensors(ours, theirs, msg, sizeof msg);
            long at = 0;
            int same = compare_bytes(ours, theirs, &at);
            n_cmp++;
            if (nd != 0 || same != 1) {
                if (!n_bad++)
                    snprintf(first_bad, sizeof first_bad, "%s, %s: %s (files differ from byte %ld)", c->name, type,
                             nd ? msg : "tensors equal", at);
                printf("        %s %s: DIFFERS: %s\n", c->name, type, nd ? msg : "metadata");
            }
            unlink(ours);
            unlink(theirs);
        }
        unlink(in);
    }
    printf("        %d files compared with llama_model_quantize's: %d byte-identical\n", n_cmp, n_cmp - n_bad);
    CHECKF(n_bad == 0, "%d of %d files differ; first: %s", n_bad, n_cmp, first_bad);
}

/* ---- 3. llama.cpp loads what llamac writes -------------------------------------------------------------------- */
static const char *oracle_path(void) {
    static char buf[1024];
    const char *e = getenv("LLAMAC_ORACLE");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : ".oracle/lc_oracle");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

/* The oracle's logits of ids on model (KV f32) into out[n * n_vocab]; 0 on success. */
static int oracle_logits(const char *model, const int32_t *ids, int n, int n_vocab, float *out) {
    char ids_path[512], out_path[512], err[512];
    tmp_path(ids_path, sizeof ids_path, "ids.txt");
    tmp_path(out_path, sizeof out_path, "oracle.f32");
    tmp_path(err, sizeof err, "oracle.err");
    FILE *f = fopen(ids_path, "w");
    if (!f) return -1;
    for (int i = 0; i < n; i++) fprintf(f, "%d ", ids[i]);
    fclose(f);
    unlink(out_path);
    pid_t pid = fork();
    if (pid == 0) {
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fe >= 0) dup2(fe, 2);
        execl(oracle_path(), oracle_path(), "logits", "-m", model, "-i", ids_path, "-o", out_path, "-t", "2", "--kv",
              "f32", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *msg = slurp(err, NULL);
        fprintf(stderr, "oracle failed on %s: %s\n", model, msg ? msg : "");
        free(msg);
        return -1;
    }
    size_t len = 0;
    char *data = slurp(out_path, &len);
    int r = data && len == (size_t)n * (size_t)n_vocab * sizeof(float) ? 0 : -1;
    if (!r) memcpy(out, data, len);
    free(data);
    return r;
}

TEST(llama_cpp_loads_quantized_files) {
    if (!oracle_path()) {
        if (oracle_required()) FAILF("llama.cpp oracle .oracle/lc_oracle missing and LLAMAC_REQUIRE_ORACLE=1");
        SKIP("llama.cpp oracle .oracle/lc_oracle not built (tests/oracle/build-oracle.sh; x86-64 Linux only)");
    }
    const char *sd = th_shared_dir();
    if (!sd) SKIP("../shared/data is absent");
    /* a) llamac's Q4_K_M of the base model: llama.cpp gives the same logits on it as on llama-quantize's file (and,
    ** on the AVX-512 CPU the goldens were made on, as the golden) */
    char base[512], theirs[512], gold[512], out[512];
    snprintf(base, sizeof base, "%s/quant/base-F32.gguf", sd);
    snprintf(theirs, sizeof theirs, "%s/quant/quant-Q4_K_M.gguf", sd);
    snprintf(gold, sizeof gold, "%s/quant/quant-Q4_K_M.logits.f32", sd);
    tmp_path(out, sizeof out, "load-Q4_K_M.gguf");
    if (!file_exists(base) || !file_exists(theirs) || !file_exists(gold)) SKIP("../shared/data/quant is absent");
    const int32_t ids[64] = {1,   13,  218, 116, 106, 247, 244, 14,  492, 169, 222, 19,  174, 352, 511, 63,
                             401, 224, 115, 392, 307, 59,  506, 275, 232, 294, 54,  99,  264, 60,  85,  294,
                             125, 154, 243, 251, 375, 227, 431, 478, 286, 322, 207, 57,  437, 143, 434, 253,
                             132, 286, 302, 100, 443, 168, 32,  216, 104, 287, 82,  204, 365, 430, 113, 224};
    const int n = 64, V = 512;
    float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V);
    size_t glen = 0;
    CHECK(a && b);
    int r = quantize(base, out, "Q4_K_M", "2", false);
    char *graw = slurp(gold, &glen);
    bool ok = r == 0 && graw && glen == sizeof(float) * n * V && oracle_logits(out, ids, n, V, a) == 0 &&
              oracle_logits(theirs, ids, n, V, b) == 0;
    double num = 0, den = 0, gnum = 0;
    if (ok) {
        const float *g = (const float *)graw;
        for (int i = 0; i < n * V; i++) {
            num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            gnum += ((double)a[i] - g[i]) * ((double)a[i] - g[i]);
            den += (double)g[i] * g[i];
        }
    }
    unlink(out);
    free(graw);
    free(b);
    if (!ok) {
        free(a);
        FAILF("quantizing, reading the golden or running the oracle on the Q4_K_M files failed");
    }
    const bool golden_isa = cpu_has_avx512();
    printf("        llama.cpp on llamac's vs llama-quantize's Q4_K_M: rel L2 %.2g; vs the golden %.2g%s\n",
           sqrt(num / den), sqrt(gnum / den), golden_isa ? "" : " (another ggml CPU variant than the golden's)");
    /* the files are byte-identical, so the same llama.cpp must give the same logits on both */
    if (!(num == 0)) {
        free(a);
        FAILF("llama.cpp's logits on llamac's Q4_K_M file differ from those on llama-quantize's: rel L2 %.3g",
              sqrt(num / den));
    }
    if (golden_isa && !(sqrt(gnum / den) <= 1e-5)) {
        free(a);
        FAILF("llama.cpp's logits on llamac's Q4_K_M file differ from the golden: rel L2 %.3g", sqrt(gnum / den));
    }
    /* b) a synthetic file with fallback types and tied embeddings (Q4_K_M: Q5_0, F16, Q8_0 tensors) loads and runs */
    char in[512];
    tmp_path(in, sizeof in, "load-synth.gguf");
    lc_synth_params sp = synth(300, 288, 2, 6, 2, 784, true, LC_TYPE_F32);
    const char *types[] = {"Q4_K_M", "IQ4_XS", "Q3_K_S"};
    int32_t ids300[32];
    for (int i = 0; i < 32; i++) ids300[i] = ids[i] % 300;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        ok = lc_synth_write(in, &sp) == 0 && quantize(in, out, types[ti], "2", false) == 0 &&
             oracle_logits(out, ids300, 32, 300, a) == 0;
        bool finite = true;
        for (int i = 0; ok && i < 32 * 300; i++) finite &= isfinite(a[i]) != 0;
        unlink(in);
        unlink(out);
        if (!ok || !finite) {
            free(a);
            FAILF("llama.cpp did not evaluate llamac's %s of a synthetic model (%s)", types[ti],
                  ok ? "non-finite logits" : "load or run failed");
        }
    }
    printf("        llama.cpp evaluates llamac's Q4_K_M, IQ4_XS, Q3_K_S of a tied model with fallback types\n");
    free(a);
}

/* ---- 4. behaviour --------------------------------------------------------------------------------------------- */
static int write_small_model(const char *path, int wtype) {
    lc_synth_params p = synth(260, 256, 2, 4, 2, 256, false, wtype);
    return lc_synth_write(path, &p);
}

static bool same_bytes(const char *a, const char *b) {
    long at;
    return compare_bytes(a, b, &at) == 1;
}

TEST(refuses_output_equal_to_input) {
    char in[512], copy[512], link_h[512], link_s[512];
    tmp_path(in, sizeof in, "same-in.gguf");
    tmp_path(copy, sizeof copy, "same-copy.gguf");
    tmp_path(link_h, sizeof link_h, "same-hard.gguf");
    tmp_path(link_s, sizeof link_s, "same-sym.gguf");
    CHECK_OK(write_small_model(in, LC_TYPE_F32));
    CHECK_OK(write_small_model(copy, LC_TYPE_F32));
    CHECK(link(in, link_h) == 0);
    CHECK(symlink(in, link_s) == 0);
    lc_quantize_params p = lc_quantize_default_params();
    p.ftype = LC_FTYPE_Q4_0;
    const char *outs[] = {in, link_h, link_s};
    for (size_t i = 0; i < 3; i++) {
        int r = lc_quantize_file(in, outs[i], &p, NULL);
        CHECKF(r == LC_E_INVALID, "quantize %s -> %s returned %d, expected LC_E_INVALID", in, outs[i], r);
        CHECKF(strstr(lc_last_error(), "input"), "message does not say why: %s", lc_last_error());
    }
    CHECKF(same_bytes(in, copy), "the input file was modified");
    int r = lc_quantize_file(in, "/nonexistent-dir/out.gguf", &p, NULL);
    CHECKF(r == LC_E_IO && strstr(lc_last_error(), "/nonexistent-dir/out.gguf"),
           "an output in a missing directory gave %d: %s", r, lc_last_error());
    if (g_cli_runs) {
        const char *a1[] = {"quantize", in, in, "Q4_0", NULL};
        CHECK_EQ_INT(run_tool(a1, NULL, NULL), 2);
        const char *a2[] = {"quantize", in, link_h, "Q4_0", NULL};
        CHECK_EQ_INT(run_tool(a2, NULL, NULL), 1);
        CHECKF(same_bytes(in, copy), "the input file was modified by the tool");
    }
    unlink(link_s);
    unlink(link_h);
    unlink(copy);
    unlink(in);
}

TEST(requantize_needs_the_flag) {
    char in[512], out[512];
    tmp_path(in, sizeof in, "rq-in.gguf");
    tmp_path(out, sizeof out, "rq-out.gguf");
    CHECK_OK(write_small_model(in, LC_TYPE_Q8_0));
    lc_quantize_params p = lc_quantize_default_params();
    p.ftype = LC_FTYPE_Q4_0;
    int r = lc_quantize_file(in, out, &p, NULL);
    CHECKF(r == LC_E_INVALID && strstr(lc_last_error(), "allow-requantize") && strstr(lc_last_error(), "Q8_0"),
           "got %d: %s", r, lc_last_error());
    CHECKF(!file_exists(out), "a failed quantize left %s behind", out);
    p.allow_requantize = true;
    CHECK_OK(lc_quantize_file(in, out, &p, NULL));
    /* Q8_0 -> Q8_0 needs no flag: every tensor is copied as it is */
    p.allow_requantize = false;
    p.ftype = LC_FTYPE_Q8_0;
    CHECK_OK(lc_quantize_file(in, out, &p, NULL));
    gguf_file *a = NULL, *b = NULL;
    CHECK_OK(gguf_open(in, &a));
    if (gguf_open(out, &b)) {
        gguf_close(a);
        FAILF("%s", lc_last_error());
    }
    bool same = a->n_tensors == b->n_tensors;
    for (uint64_t i = 0; same && i < a->n_tensors; i++) {
        const gguf_tensor *tb = gguf_find_tensor(b, a->tensors[i].name);
        same = tb && tb->size == a->tensors[i].size && !memcmp(tb->data, a->tensors[i].data, tb->size);
    }
    gguf_close(a);
    gguf_close(b);
    CHECKF(same, "Q8_0 -> Q8_0 changed tensor data");
    unlink(out);
    unlink(in);
}

TEST(dry_run_writes_nothing_and_predicts_the_size) {
    char in[512], out[512];
    tmp_path(in, sizeof in, "dry-in.gguf");
    tmp_path(out, sizeof out, "dry-out.gguf");
    lc_synth_params sp = synth(300, 288, 2, 6, 2, 784, true, LC_TYPE_F16);
    CHECK_OK(lc_synth_write(in, &sp));
    const int fts[] = {LC_FTYPE_Q4_K_M, LC_FTYPE_Q8_0, LC_FTYPE_ALL_F32, LC_FTYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof fts / sizeof *fts; i++) {
        lc_quantize_params p = lc_quantize_default_params();
        p.ftype = fts[i];
        p.dry_run = true;
        lc_quantize_result dry, wet;
        CHECK_OK(lc_quantize_file(in, out, &p, &dry));
        CHECKF(!file_exists(out), "a dry run wrote %s", out);
        p.dry_run = false;
        CHECK_OK(lc_quantize_file(in, out, &p, &wet));
        struct stat st;
        CHECK(stat(out, &st) == 0);
        CHECKF(dry.file_bytes == (uint64_t)st.st_size && wet.file_bytes == (uint64_t)st.st_size &&
                   dry.bytes_out == wet.bytes_out && dry.n_tensors == wet.n_tensors,
               "%s: dry run predicted %llu bytes, the file has %lld", lc_ftype_name(fts[i]),
               (unsigned long long)dry.file_bytes, (long long)st.st_size);
        CHECKF(fts[i] == LC_FTYPE_ALL_F32 || fts[i] == LC_FTYPE_Q8_0 || dry.n_fallback > 0,
               "%s: rows of 288 and 784 should need fallback types", lc_ftype_name(fts[i]));
        unlink(out);
    }
    if (g_cli_runs) {
        char so[512];
        tmp_path(so, sizeof so, "dry.out");
        const char *args[] = {"quantize", "--dry-run", in, "Q4_K_M", NULL};
        CHECK_EQ_INT(run_tool(args, so, NULL), 0);
        char *text = slurp(so, NULL);
        bool listed = text && strstr(text, "blk.1.ffn_down.weight") && strstr(text, "token_embd.weight") &&
                      strstr(text, "bits per weight") && strstr(text, "fallback");
        free(text);
        CHECKF(listed, "the dry run does not list the tensors, their types and the size");
        CHECKF(!file_exists(out), "the dry run wrote a file");
    }
    unlink(in);
}

TEST(threads_do_not_change_the_output) {
    char in[512], o1[512], o3[512];
    tmp_path(in, sizeof in, "thr-in.gguf");
    tmp_path(o1, sizeof o1, "thr-1.gguf");
    tmp_path(o3, sizeof o3, "thr-3.gguf");
    CHECK_OK(write_small_model(in, LC_TYPE_F16));
    CHECK_EQ_INT(quantize(in, o1, "Q3_K_M", "1", false), 0);
    CHECK_EQ_INT(quantize(in, o3, "Q3_K_M", "3", false), 0);
    CHECKF(same_bytes(o1, o3), "-t 1 and -t 3 give different files");
    unlink(o1);
    unlink(o3);
    unlink(in);
}

TEST(cli_usage) {
    if (!g_cli_runs) SKIP("%s does not run here", g_bin);
    char so[512], in[512], out[512];
    tmp_path(so, sizeof so, "usage.out");
    tmp_path(in, sizeof in, "usage-in.gguf");
    tmp_path(out, sizeof out, "usage-out.gguf");
    CHECK_OK(write_small_model(in, LC_TYPE_F32));
    const char *help[] = {"quantize", "--help", NULL};
    CHECK_EQ_INT(run_tool(help, so, NULL), 0);
    char *text = slurp(so, NULL);
    bool has = text && strstr(text, "Q4_K_M") && strstr(text, "--dry-run") && strstr(text, "--allow-requantize");
    free(text);
    CHECKF(has, "quantize --help does not list the types and options");
    const char *bad_type[] = {"quantize", in, out, "Q7_K", NULL};
    CHECK_EQ_INT(run_tool(bad_type, NULL, NULL), 2);
    const char *missing[] = {"quantize", in, out, NULL};
    CHECK_EQ_INT(run_tool(missing, NULL, NULL), 2);
    const char *bad_t[] = {"quantize", in, out, "Q4_0", "-t", "0", NULL};
    CHECK_EQ_INT(run_tool(bad_t, NULL, NULL), 2);
    const char *no_in[] = {"quantize", "/nonexistent/in.gguf", out, "Q4_0", NULL};
    CHECK_EQ_INT(run_tool(no_in, NULL, NULL), 1);
    CHECKF(!file_exists(out), "failed runs left %s behind", out);
    const char *alias[] = {"quantize", in, out, "q4_k", NULL}; /* alias, any case */
    CHECK_EQ_INT(run_tool(alias, NULL, NULL), 0);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(out, &f));
    uint32_t ft = 0;
    int r = gguf_get_u32(f, "general.file_type", &ft);
    gguf_close(f);
    CHECKF(r == 1 && ft == LC_FTYPE_Q4_K_M, "Q4_K should be Q4_K_M (file type 15), the file says %u", ft);
    unlink(out);
    unlink(in);
}

/* ---- main ---------------------------------------------------------------------------------------------------- */
static void find_bin(const char *argv0) {
    const char *e = getenv("LLAMAC_BIN");
    if (e && *e) {
        snprintf(g_bin, sizeof g_bin, "%s", e);
        return;
    }
    const char *slash = strrchr(argv0, '/');
    if (slash) {
        snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv0), argv0);
        if (access(g_bin, X_OK) == 0) return;
    }
    const char *b = getenv("LLAMAC_BUILD");
    snprintf(g_bin, sizeof g_bin, "%s/llamac", b && *b ? b : "build");
}

int main(int argc, char **argv) {
    (void)argc;
    find_bin(argv[0]);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/llamac-test-quantize-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        printf("cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    const char *ver[] = {"--version", NULL};
    g_cli_runs = access(g_bin, X_OK) == 0 && run_tool(ver, NULL, NULL) == 0;
    printf("test_quantize%s: %s\n", quick() ? " (quick)" : "",
           g_cli_runs ? g_bin : "the tool does not run here; the library call is tested instead");
    RUN(base_model_matches_llama_quantize_files);
    RUN(synthetic_models_match_llama_cpp_quantizer);
    RUN(llama_cpp_loads_quantized_files);
    RUN(refuses_output_equal_to_input);
    RUN(requantize_needs_the_flag);
    RUN(dry_run_writes_nothing_and_predicts_the_size);
    RUN(threads_do_not_change_the_output);
    RUN(cli_usage);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", g_tmp);
    return TEST_SUMMARY();
}
