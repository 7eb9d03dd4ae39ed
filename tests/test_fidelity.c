/* test_fidelity.c - llamac's logits against llama.cpp's, position by position.
**
** References nobody here wrote: the llama.cpp goldens in ../shared/data (stories260K: real trained weights, from the
** .gguf and the llama2.c .bin; quant: one random model in F32/F16/BF16/Q8_0), and the llama.cpp oracle
** (.oracle/lc_oracle, tests/oracle/) run on synthetic models written by lc_synth_write. Measure per position:
** rel = ||ours - ref||_2 / ||ref||_2 over the vocabulary, and argmax agreement. Bounds and their reasons are in
** docs/TESTING.md. Also checks batch semantics (one batch = token by token = chunks; sequences independent).
*/
#include "harness.h"
#include "llamac.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_THREADS 2

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation" /* long paths in failure messages may be cut; that is fine */
#endif

/* ---- small utilities ---------------------------------------------------------------------------------------- */
static bool quick(void) {
    const char *e = getenv("LLAMAC_QUICK");
    return e && *e && strcmp(e, "0") != 0;
}

static char *read_file(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (n_out) *n_out = (size_t)n; }
    return buf;
}

/* Reads exactly n floats; false if the file is missing or has another size. */
static bool read_f32(const char *path, float *out, size_t n) {
    size_t len = 0;
    char *buf = read_file(path, &len);
    bool ok = buf && len == n * sizeof(float);
    if (ok) memcpy(out, buf, len);
    free(buf);
    return ok;
}

/* ---- a tiny JSON walker: just enough for the goldens' manifest.json (objects, arrays, strings, numbers) --------- */
static const char *js_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

static const char *js_skip(const char *p) {
    p = js_ws(p);
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && p[1]) p++;
        return *p ? p + 1 : p;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = js_ws(p + 1);
        while (*p && *p != close) {
            p = js_skip(p); /* key or element */
            p = js_ws(p);
            if (*p == ':') p = js_skip(p + 1);
            p = js_ws(p);
            if (*p == ',') p = js_ws(p + 1);
        }
        return *p ? p + 1 : p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']') p++;
    return p;
}

/* Value of key in the object at obj ('{'), or NULL. */
static const char *js_get(const char *obj, const char *key) {
    if (!obj) return NULL;
    const char *p = js_ws(obj);
    if (*p != '{') return NULL;
    p = js_ws(p + 1);
    size_t klen = strlen(key);
    while (*p == '"') {
        const char *k = p + 1;
        const char *v = js_ws(js_skip(p));
        if (*v != ':') return NULL;
        v = js_ws(v + 1);
        if (!strncmp(k, key, klen) && k[klen] == '"') return v;
        p = js_ws(js_skip(v));
        if (*p == ',') p = js_ws(p + 1);
    }
    return NULL;
}

/* Element i of the array at arr, or NULL. */
static const char *js_at(const char *arr, int i) {
    if (!arr) return NULL;
    const char *p = js_ws(arr);
    if (*p != '[') return NULL;
    p = js_ws(p + 1);
    for (int k = 0; *p && *p != ']'; k++) {
        if (k == i) return p;
        p = js_ws(js_skip(p));
        if (*p == ',') p = js_ws(p + 1);
    }
    return NULL;
}

static bool js_str(const char *v, char *out, size_t cap) {
    if (!v || *v != '"') return false;
    size_t n = 0;
    for (v++; *v && *v != '"' && n + 1 < cap; v++) out[n++] = *v;
    out[n] = 0;
    return *v == '"';
}

/* Integer array -> out (at most cap); returns the count, or -1. */
static int js_ints(const char *v, int32_t *out, int cap) {
    int n = 0;
    for (const char *e; (e = js_at(v, n)) != NULL; n++) {
        if (n >= cap) return -1;
        char *end;
        long x = strtol(e, &end, 10);
        if (end == e) return -1;
        out[n] = (int32_t)x;
    }
    return v ? n : -1;
}

/* ---- comparison ----------------------------------------------------------------------------------------------- */
typedef struct cmp_stats {
    double max_rel;  /* max over positions of ||a - ref|| / ||ref|| */
    int worst;       /* position of max_rel */
    int agree;       /* positions whose argmax agrees */
    int unexplained; /* argmax disagreements NOT explained by the row's error (see compare_logits) */
    int n;
} cmp_stats;

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* An argmax disagreement is explained when the reference logit of our pick is within 2 * max|ours - ref| of the
** reference maximum: then an error of that size, which the bound allows, can reorder the two. Anything else means
** the logits rank tokens differently in a way the error does not account for. */
static cmp_stats compare_logits(const float *a, const float *ref, int n, int n_vocab) {
    cmp_stats s = {0, 0, 0, 0, n};
    for (int p = 0; p < n; p++) {
        const float *x = a + (size_t)p * n_vocab, *y = ref + (size_t)p * n_vocab;
        double d2 = 0, r2 = 0, dmax = 0;
        for (int v = 0; v < n_vocab; v++) {
            double d = (double)x[v] - (double)y[v];
            d2 += d * d;
            r2 += (double)y[v] * y[v];
            if (fabs(d) > dmax || d != d) dmax = d != d ? INFINITY : fabs(d);
        }
        double rel = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
        if (!(rel <= s.max_rel)) { s.max_rel = rel; s.worst = p; } /* NaN sticks */
        int ax = argmax(x, n_vocab), ay = argmax(y, n_vocab);
        if (ax == ay) s.agree++;
        else if (!((double)y[ay] - (double)y[ax] <= 2 * dmax)) s.unexplained++;
    }
    return s;
}

static void report(const char *what, cmp_stats s, double bound) {
    printf("        %-58s rel %.2e (pos %3d)  argmax %3d/%-3d  bound %.1e", what, s.max_rel, s.worst, s.agree, s.n,
           bound);
    printf(s.unexplained ? "  (%d argmax changes unexplained)\n" : "\n", s.unexplained);
}

/* Prints the comparison; on a violation (rel above bound, or an unexplained argmax change) records the first one in
** msg and returns false. Callers go on with the other cases so that one run shows every number. */
static bool judge(const char *what, const float *ours, const float *ref, int n, int n_vocab, double bound, char *msg,
                  size_t cap) {
    cmp_stats s = compare_logits(ours, ref, n, n_vocab);
    report(what, s, bound);
    bool ok = s.max_rel <= bound && s.unexplained == 0;
    if (!ok && !msg[0])
        snprintf(msg, cap, "%s: max rel %.3e at position %d (bound %.1e), %d unexplained argmax changes", what,
                 s.max_rel, s.worst, bound, s.unexplained);
    if (!ok) printf("        ^ FAILS\n");
    return ok;
}

/* ---- llamac side ---------------------------------------------------------------------------------------------- */
/* Logits of every position of ids (one lc_decode call, positions 0..n-1, sequence 0) into out[n * n_vocab], with
** the context sized as the goldens' evaluator did (n_ctx = ceil(n/256)*256, n_batch = n_ctx). */
static int engine_logits(lc_model *m, const int32_t *ids, int n, int kv_type, float *out) {
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)((n + 255) / 256 * 256);
    cp.n_batch = cp.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = N_THREADS;
    cp.kv_type = kv_type;
    lc_context *c = NULL;
    int r = lc_context_new(m, &cp, &c);
    if (r) return r;
    int8_t *want = malloc((size_t)n);
    int32_t *pos = malloc(sizeof *pos * (size_t)n);
    for (int i = 0; i < n; i++) { want[i] = 1; pos[i] = i; }
    lc_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = NULL, .logits = want};
    r = lc_decode(c, &b);
    const int n_vocab = (int)lc_model_hparams(m)->n_vocab;
    for (int i = 0; r == 0 && i < n; i++) {
        const float *l = lc_get_logits(c, i);
        if (!l) { fprintf(stderr, "no logits for row %d\n", i); r = LC_E_INVALID; break; }
        memcpy(out + (size_t)i * n_vocab, l, sizeof(float) * (size_t)n_vocab);
    }
    free(want);
    free(pos);
    lc_context_free(c);
    return r;
}

/* ---- the oracle (llama.cpp through tests/oracle/lc_oracle) ---------------------------------------------------- */
static char g_tmp[256]; /* scratch directory of this run */

static const char *tmpdir(void) {
    if (!g_tmp[0]) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/llamac-fidelity-XXXXXX");
        if (!mkdtemp(g_tmp)) g_tmp[0] = 0;
    }
    return g_tmp[0] ? g_tmp : NULL;
}

static const char *oracle_path(void) {
    static char buf[1024];
    const char *e = getenv("LLAMAC_ORACLE");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : ".oracle/lc_oracle");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

/* The prebuilt oracle exists for x86-64 Linux only; elsewhere (e.g. the aarch64 build under qemu) it is never
** required. */
static bool oracle_required(void) {
#if defined(__x86_64__) && defined(__linux__)
    const char *e = getenv("LLAMAC_REQUIRE_ORACLE");
    return e && !strcmp(e, "1");
#else
    return false;
#endif
}

/* In a TEST: skip without the oracle, or fail when LLAMAC_REQUIRE_ORACLE=1 (make test). */
#define NEED_ORACLE()                                                                                              \
    do {                                                                                                           \
        if (!oracle_path()) {                                                                                      \
            if (oracle_required())                                                                                 \
                FAILF("llama.cpp oracle .oracle/lc_oracle missing and LLAMAC_REQUIRE_ORACLE=1: run "              \
                      "tests/oracle/build-oracle.sh (x86-64 Linux)");                                              \
            SKIP("llama.cpp oracle .oracle/lc_oracle not built (tests/oracle/build-oracle.sh; x86-64 Linux only)"); \
        }                                                                                                          \
        if (!tmpdir()) FAILF("cannot create a temporary directory in /tmp");                                      \
    } while (0)

/* Runs the oracle's logits mode on model with ids (kv "f32" or "f16") into out[n * n_vocab]. */
static int oracle_logits(const char *model, const int32_t *ids, int n, const char *kv, int n_vocab, float *out) {
    char ids_path[512], out_path[512], cmd[2048];
    snprintf(ids_path, sizeof ids_path, "%s/ids.txt", tmpdir());
    snprintf(out_path, sizeof out_path, "%s/oracle.f32", tmpdir());
    FILE *f = fopen(ids_path, "w");
    if (!f) return -1;
    for (int i = 0; i < n; i++) fprintf(f, "%d ", ids[i]);
    fclose(f);
    unlink(out_path);
    snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' -i '%s' -o '%s' -t %d --kv %s", oracle_path(), model, ids_path,
             out_path, N_THREADS, kv);
    int rc = system(cmd);
    if (rc != 0) { fprintf(stderr, "oracle failed (%d): %s\n", rc, cmd); return -1; }
    return read_f32(out_path, out, (size_t)n * n_vocab) ? 0 : -1;
}

/* The goldens in ../shared/data were made on an x86-64 CPU with AVX-512; ggml picks its CPU variant at run time. */
static bool cpu_has_avx512(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

/* ---- the oracle itself reproduces the goldens (so comparisons with it are comparisons with llama.cpp) ---------- */
/* The goldens were made by a native build of the same commit; the oracle is the prebuilt one. On this project's
** machines the two agree bit for bit (tests/oracle/README.md); on another CPU ggml may pick another kernel variant,
** so the check allows float32 summation-order differences only (and, for the F16 KV cache, the spread of
** llama.cpp's own builds: these two, justified at a) below). */
#define BOUND_STORIES_KVF32 1e-4
#define BOUND_STORIES_KVF16 6e-3
TEST(oracle_reproduces_stories260K_goldens) {
    NEED_ORACLE();
    const char *shared = th_shared_dir();
    if (!shared) SKIP("shared data (../shared/data) not found; set LLAMAC_SHARED_DATA");
    char man[1024], model[1024];
    snprintf(man, sizeof man, "%s/stories260K/goldens/manifest.json", shared);
    snprintf(model, sizeof model, "%s/stories260K/stories260K.gguf", shared);
    char *js = read_file(man, NULL);
    CHECKF(js != NULL, "cannot read %s", man);
    const char *e = js_at(js_get(js, "files"), 2); /* seq2_len200 */
    int32_t ids[1024];
    char gold[2][128];
    int n = js_ints(js_get(e, "ids"), ids, 1024);
    bool ok = n > 0 && js_str(js_get(e, "file"), gold[0], 128) && js_str(js_get(e, "file_kvf16"), gold[1], 128);
    free(js);
    CHECKF(ok, "%s: entry 2 unreadable", man);
    const int V = 512;
    float *ref = malloc(sizeof(float) * (size_t)n * V), *orc = malloc(sizeof(float) * (size_t)n * V);
    cmp_stats s[2];
    double max_abs[2] = {0, 0};
    for (int kv = 0; ok && kv < 2; kv++) {
        char gp[1024];
        snprintf(gp, sizeof gp, "%s/stories260K/goldens/%s", shared, gold[kv]);
        ok = read_f32(gp, ref, (size_t)n * V) && oracle_logits(model, ids, n, kv ? "f16" : "f32", V, orc) == 0;
        if (!ok) break;
        s[kv] = compare_logits(orc, ref, n, V);
        for (size_t i = 0; i < (size_t)n * V; i++) max_abs[kv] = fmax(max_abs[kv], fabs((double)orc[i] - ref[i]));
    }
    free(ref);
    free(orc);
    CHECKF(ok, "reading the goldens or running the oracle failed");
    /* The goldens were made on an AVX-512 machine; elsewhere ggml loads another CPU variant (haswell, sse42, ...),
    ** whose F16-KV path rounds differently: llama.cpp's own AVX2 and SSE4.2 builds land 2.5e-3 and 3.0e-3 from its
    ** AVX-512 golden (docs/TESTING.md), so there the bounds are the ones llamac is held to. */
    const bool same_isa = cpu_has_avx512();
    for (int kv = 0; kv < 2; kv++) {
        char what[128];
        const double bound = same_isa ? 1e-5 : kv ? BOUND_STORIES_KVF16 : BOUND_STORIES_KVF32;
        snprintf(what, sizeof what, "oracle vs %s (max abs %.2g)%s", gold[kv], max_abs[kv],
                 same_isa ? "" : " [no AVX-512: another ggml CPU variant than the goldens']");
        report(what, s[kv], bound);
        CHECKF(s[kv].max_rel <= bound, "%s: rel %.3e at %d", what, s[kv].max_rel, s[kv].worst);
    }
}

/* ---- a) stories260K goldens ----------------------------------------------------------------------------------- */
/* Bounds (docs/TESTING.md has the measurements): F32 KV against the F32-KV goldens: 1e-4, the bound (same
** float32 arithmetic up to summation order: ~1e-5 here). F16 KV against the F16-KV goldens: llama.cpp rounds K, V,
** Q and the softmax weights to F16, and llamac does the same; but a rounding step turns a 1e-7 upstream difference
** into a whole F16 step now and then, and in this trained model (head_dim 8, peaked attention) those steps add up:
** llama.cpp's own AVX2 and SSE4.2 builds land 2.5e-3 and 3.0e-3 from its AVX-512 golden. 6e-3 is twice that and
** half the 1.3e-2 that separates the two golden sets, so an engine that ignores the cache type still fails. */

static void stories_goldens(bool from_bin) {
    const char *shared = th_shared_dir();
    if (!shared) SKIP("shared data (../shared/data) not found; set LLAMAC_SHARED_DATA");
    char path[1024], tok[1024], man[1024];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.%s", shared, from_bin ? "bin" : "gguf");
    snprintf(tok, sizeof tok, "%s/stories260K/tok512.bin", shared);
    snprintf(man, sizeof man, "%s/stories260K/goldens/manifest.json", shared);
    char *js = read_file(man, NULL);
    CHECKF(js != NULL, "cannot read %s", man);
    lc_model_params mp = lc_model_default_params();
    if (from_bin) mp.tokenizer_path = tok;
    lc_model *m = NULL;
    int r = lc_model_load(path, &mp, &m);
    if (r) { free(js); FAILF("lc_model_load(%s): %s", path, lc_last_error()); }
    const int n_vocab = (int)lc_model_hparams(m)->n_vocab;
    const char *files = js_get(js, "files");
    int n_files = 0;
    bool ok = true, within = true;
    char msg[512] = "", bmsg[512] = "";
    for (const char *e; ok && (e = js_at(files, n_files)) != NULL; n_files++) {
        char name[64], gold[2][128];
        int32_t ids[1024];
        int n = js_ints(js_get(e, "ids"), ids, 1024);
        if (n <= 0 || !js_str(js_get(e, "name"), name, sizeof name) ||
            !js_str(js_get(e, "file"), gold[0], sizeof gold[0]) ||
            !js_str(js_get(e, "file_kvf16"), gold[1], sizeof gold[1])) {
            snprintf(msg, sizeof msg, "manifest entry %d unreadable", n_files);
            ok = false;
            break;
        }
        if (quick() && n > 64) continue;
        float *ref = malloc(sizeof(float) * (size_t)n * n_vocab), *ours = malloc(sizeof(float) * (size_t)n * n_vocab);
        for (int kv = 0; ok && kv < 2; kv++) {
            char gp[1024];
            snprintf(gp, sizeof gp, "%s/stories260K/goldens/%s", shared, gold[kv]);
            if (!read_f32(gp, ref, (size_t)n * n_vocab)) {
                snprintf(msg, sizeof msg, "golden %s missing or of the wrong size", gp);
                ok = false;
                break;
            }
            if ((r = engine_logits(m, ids, n, kv ? LC_TYPE_F16 : LC_TYPE_F32, ours)) != 0) {
                snprintf(msg, sizeof msg, "%s: decode failed: %s", name, lc_last_error());
                ok = false;
                break;
            }
            double bound = kv ? BOUND_STORIES_KVF16 : BOUND_STORIES_KVF32;
            char what[160];
            snprintf(what, sizeof what, "%s %s kv %s", from_bin ? "bin" : "gguf", gold[kv], kv ? "f16" : "f32");
            if (!judge(what, ours, ref, n, n_vocab, bound, bmsg, sizeof bmsg)) within = false;
        }
        free(ref);
        free(ours);
    }
    lc_model_free(m);
    free(js);
    CHECKF(ok, "%s", msg);
    CHECKF(within, "%s", bmsg);
    CHECKF(n_files == 4, "expected 4 golden files in %s, found %d", man, n_files);
}

TEST(stories260K_gguf_matches_llama_cpp_goldens) { stories_goldens(false); }
TEST(stories260K_bin_matches_llama_cpp_goldens) { stories_goldens(true); }

/* ---- b) quantization goldens (one random model stored in every type llama-quantize makes) -------------------------------- */
/* Bounds: llama.cpp multiplies F16 weights by activations rounded to F16, BF16 weights by BF16 activations, Q8_0
** weights by Q8_0-quantized activations; llamac does the same. Rounding is a step function: a 1e-7 difference
** upstream (summation order, expf) moves a value by a whole step now and then, and that propagates. The size of the
** effect is measured on llama.cpp alone: its AVX2 and SSE4.2 builds against its AVX-512 build on these files and
** on the synthetic ones below differ by at most 1.7e-6 (F32, KV f32), 8.3e-4 (F32, KV f16), 1.2e-3 (F16), 6.8e-3
** (BF16), 2.3e-2 (Q8_0). The bounds are about 2.5x that; a real mistake (a wrong scale, block layout, row, RoPE
** pair) is off by 1e-1 or more (see synthetic_cases_are_sensitive_to_rope). */
typedef struct quant_bound {
    const char *type;
    double kv32, kv16;
} quant_bound;
static const quant_bound QUANT_BOUNDS[] = {
    {"F32", 1e-4, 2e-3}, {"F16", 3e-3, 3e-3}, {"BF16", 1.5e-2, 1.5e-2}, {"Q8_0", 5e-2, 5e-2},
    /* the other quantized files: activations quantized to Q8_0/Q8_1/Q8_K as llama.cpp does, same step-function
    ** argument as Q8_0 (measured 2e-7 to 1.8e-2 with the scalar reference kernels) */
    {"Q4_0", 5e-2, 5e-2}, {"Q4_1", 5e-2, 5e-2}, {"Q5_0", 5e-2, 5e-2}, {"Q5_1", 5e-2, 5e-2},
    {"Q2_K", 5e-2, 5e-2}, {"Q3_K_S", 5e-2, 5e-2}, {"Q3_K_M", 5e-2, 5e-2}, {"Q3_K_L", 5e-2, 5e-2},
    {"Q4_K_S", 5e-2, 5e-2}, {"Q4_K_M", 5e-2, 5e-2}, {"Q5_K_S", 5e-2, 5e-2}, {"Q5_K_M", 5e-2, 5e-2},
    {"Q6_K", 5e-2, 5e-2}, {"IQ4_NL", 5e-2, 5e-2}, {"IQ4_XS", 5e-2, 5e-2},
};

TEST(quant_goldens_f32_f16_bf16_q8_0) {
    const char *shared = th_shared_dir();
    if (!shared) SKIP("shared data (../shared/data) not found; set LLAMAC_SHARED_DATA");
    char man[1024];
    snprintf(man, sizeof man, "%s/quant/manifest.json", shared);
    char *js = read_file(man, NULL);
    CHECKF(js != NULL, "cannot read %s", man);
    int32_t ids[256];
    int n = js_ints(js_get(js, "ids"), ids, 256);
    const char *files = js_get(js, "files");
    bool ok = n > 0, within = true;
    char msg[512] = "manifest ids unreadable", bmsg[512] = "";
    int n_done = 0;
    for (size_t q = 0; ok && q < sizeof QUANT_BOUNDS / sizeof *QUANT_BOUNDS; q++) {
        if (quick() && q != 0 && q != 3) continue;
        const char *e = NULL;
        char type[32], file[128], gold[2][128];
        for (int i = 0; (e = js_at(files, i)) != NULL; i++)
            if (js_str(js_get(e, "type"), type, sizeof type) && !strcmp(type, QUANT_BOUNDS[q].type)) break;
        if (!e || !js_str(js_get(e, "file"), file, sizeof file) || !js_str(js_get(e, "golden"), gold[0], 128) ||
            !js_str(js_get(e, "golden_kvf16"), gold[1], 128)) {
            snprintf(msg, sizeof msg, "%s: no usable manifest entry for %s", man, QUANT_BOUNDS[q].type);
            ok = false;
            break;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/quant/%s", shared, file);
        lc_model *m = NULL;
        if (lc_model_load(path, NULL, &m) != 0) {
            snprintf(msg, sizeof msg, "lc_model_load(%s): %s", path, lc_last_error());
            ok = false;
            break;
        }
        const int n_vocab = (int)lc_model_hparams(m)->n_vocab;
        float *ref = malloc(sizeof(float) * (size_t)n * n_vocab), *ours = malloc(sizeof(float) * (size_t)n * n_vocab);
        for (int kv = 0; ok && kv < 2; kv++) {
            char gp[1024], what[160];
            snprintf(gp, sizeof gp, "%s/quant/%s", shared, gold[kv]);
            if (!read_f32(gp, ref, (size_t)n * n_vocab)) {
                snprintf(msg, sizeof msg, "golden %s missing or of the wrong size", gp);
                ok = false;
            } else if (engine_logits(m, ids, n, kv ? LC_TYPE_F16 : LC_TYPE_F32, ours) != 0) {
                snprintf(msg, sizeof msg, "%s: decode failed: %s", file, lc_last_error());
                ok = false;
            } else {
                double bound = kv ? QUANT_BOUNDS[q].kv16 : QUANT_BOUNDS[q].kv32;
                snprintf(what, sizeof what, "%s kv %s", gold[kv], kv ? "f16" : "f32");
                if (!judge(what, ours, ref, n, n_vocab, bound, bmsg, sizeof bmsg)) within = false;
                n_done++;
            }
        }
        free(ref);
        free(ours);
        lc_model_free(m);
    }
    free(js);
    CHECKF(ok, "%s", msg);
    CHECKF(within, "%s", bmsg);
    CHECK(n_done >= 4);
}

/* ---- c) synthetic models vs the oracle on the same file -------------------------------------------------------- */
typedef struct synth_case {
    const char *label;
    uint32_t n_head, n_head_kv, head_dim;
    bool tied, rope_freqs;
    float theta;
    int n_pos;
} synth_case;

/* Every axis of the issue appears at least once: GQA group 1/4/8 (and 2), head_dim 64 and 128 (also head_dim *
** n_head != n_embd), tied and untied output, theta 1e4 and 5e5, with and without rope_freqs. n_embd 256, 2
** layers, n_ff 512, vocab 384: big enough for every code path, small enough for seconds. Weights N(0, 0.08) so that
** attention scores have a spread of about 2 (with 0.02 attention is almost uniform and RoPE errors would hide). */
static const synth_case SYNTH_CASES[] = {
    {"mha g1 hd64 untied theta1e4", 4, 4, 64, false, false, 1e4f, 100},
    {"gqa g4 hd64 tied theta5e5 (n_q 512 != n_embd)", 8, 2, 64, true, false, 5e5f, 100},
    {"gqa g8 hd64 untied theta5e5 rope_freqs", 8, 1, 64, false, true, 5e5f, 300},
    {"gqa g2 hd128 tied theta1e4 rope_freqs", 2, 1, 128, true, true, 1e4f, 100},
};

/* The same bounds as for the quant goldens (see QUANT_BOUNDS). */
static const struct { int type; const char *name; double kv32, kv16; } SYNTH_TYPES[] = {
    {LC_TYPE_F32, "F32", 1e-4, 2e-3},
    {LC_TYPE_F16, "F16", 3e-3, 3e-3},
    {LC_TYPE_BF16, "BF16", 1.5e-2, 1.5e-2},
    {LC_TYPE_Q8_0, "Q8_0", 5e-2, 5e-2},
};

static lc_synth_params synth_params_of(const synth_case *c, int wtype) {
    lc_synth_params p = lc_synth_default_params();
    p.n_vocab = 384;
    p.n_embd = 256;
    p.n_layer = 2;
    p.n_ff = 512;
    p.n_head = c->n_head;
    p.n_head_kv = c->n_head_kv;
    p.head_dim = c->head_dim;
    p.tied_output = c->tied;
    p.rope_freqs = c->rope_freqs;
    p.rope_theta = c->theta;
    p.n_ctx_train = 4096;
    p.wtype = wtype;
    p.seed = 42;
    p.w_std = 0.08f;
    return p;
}

/* Token ids: BOS then a fixed pseudo-random walk over [3, n_vocab). */
static void make_ids(int32_t *ids, int n, int n_vocab, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 12345u;
    ids[0] = 1;
    for (int i = 1; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((x >> 8) % (uint32_t)(n_vocab - 3));
    }
}

static int write_synth(const lc_synth_params *p, const char *tag, char *path, size_t cap) {
    snprintf(path, cap, "%s/synth-%s.gguf", tmpdir(), tag);
    return lc_synth_write(path, p);
}

TEST(synthetic_models_match_llama_cpp) {
    NEED_ORACLE();
    bool ok = true, within = true;
    char msg[512] = "", bmsg[512] = "";
    int n_cmp = 0;
    for (size_t ci = 0; ok && ci < sizeof SYNTH_CASES / sizeof *SYNTH_CASES; ci++) {
        const synth_case *sc = &SYNTH_CASES[ci];
        for (size_t ti = 0; ok && ti < sizeof SYNTH_TYPES / sizeof *SYNTH_TYPES; ti++) {
            if (quick() && ((ci + ti) % 3 != 0)) continue; /* a diagonal sample under sanitizers */
            lc_synth_params p = synth_params_of(sc, SYNTH_TYPES[ti].type);
            char path[512];
            if (write_synth(&p, "case", path, sizeof path) != 0) {
                snprintf(msg, sizeof msg, "lc_synth_write(%s %s): %s", sc->label, SYNTH_TYPES[ti].name,
                         lc_last_error());
                ok = false;
                break;
            }
            lc_model *m = NULL;
            if (lc_model_load(path, NULL, &m) != 0) {
                snprintf(msg, sizeof msg, "lc_model_load(%s %s): %s", sc->label, SYNTH_TYPES[ti].name,
                         lc_last_error());
                ok = false;
                break;
            }
            int n = quick() ? 40 : sc->n_pos, n_vocab = (int)p.n_vocab;
            int32_t ids[512];
            make_ids(ids, n, n_vocab, (uint32_t)ci);
            float *ref = malloc(sizeof(float) * (size_t)n * n_vocab), *ours = malloc(sizeof(float) * (size_t)n * n_vocab);
            for (int kv = 0; ok && kv < 2; kv++) {
                char what[200];
                snprintf(what, sizeof what, "%s %s kv %s", sc->label, SYNTH_TYPES[ti].name, kv ? "f16" : "f32");
                if (oracle_logits(path, ids, n, kv ? "f16" : "f32", n_vocab, ref) != 0) {
                    snprintf(msg, sizeof msg, "%s: the oracle failed on the synthetic file", what);
                    ok = false;
                } else if (engine_logits(m, ids, n, kv ? LC_TYPE_F16 : LC_TYPE_F32, ours) != 0) {
                    snprintf(msg, sizeof msg, "%s: decode failed: %s", what, lc_last_error());
                    ok = false;
                } else {
                    double bound = kv ? SYNTH_TYPES[ti].kv16 : SYNTH_TYPES[ti].kv32;
                    if (!judge(what, ours, ref, n, n_vocab, bound, bmsg, sizeof bmsg)) within = false;
                    n_cmp++;
                }
            }
            free(ref);
            free(ours);
            lc_model_free(m);
        }
    }
    CHECKF(ok, "%s", msg);
    CHECKF(within, "%s", bmsg);
    CHECK(n_cmp >= 4);
}

/* The synthetic comparisons can fail: switching one feature of the file (rope_freqs; rope theta) moves llama.cpp's
** own logits far beyond the bounds above, so an engine that ignored it would be caught. lc_synth_write derives
** each tensor's weights from its name, so the two files differ only in that feature. */
TEST(synthetic_cases_are_sensitive_to_rope) {
    NEED_ORACLE();
    const synth_case *sc = &SYNTH_CASES[2]; /* rope_freqs, theta 5e5, 300 positions */
    int n = quick() ? 100 : sc->n_pos, n_vocab = 384;
    int32_t ids[512];
    make_ids(ids, n, n_vocab, 2);
    float *a = malloc(sizeof(float) * (size_t)n * n_vocab), *b = malloc(sizeof(float) * (size_t)n * n_vocab);
    char pa[512], pb[512];
    lc_synth_params p = synth_params_of(sc, LC_TYPE_F32);
    int r = write_synth(&p, "sens-a", pa, sizeof pa);
    p.rope_freqs = false;
    if (!r) r = write_synth(&p, "sens-b", pb, sizeof pb);
    bool ok = !r && oracle_logits(pa, ids, n, "f32", n_vocab, a) == 0 && oracle_logits(pb, ids, n, "f32", n_vocab, b) == 0;
    cmp_stats s1 = {0}, s2 = {0};
    if (ok) {
        s1 = compare_logits(b, a, n, n_vocab);
        p.rope_freqs = true;
        p.rope_theta = 1e4f;
        ok = write_synth(&p, "sens-b", pb, sizeof pb) == 0 && oracle_logits(pb, ids, n, "f32", n_vocab, b) == 0;
        s2 = compare_logits(b, a, n, n_vocab);
    }
    free(a);
    free(b);
    CHECKF(ok, "writing the synthetic files or running the oracle failed: %s", lc_last_error());
    report("oracle: rope_freqs vs none (same weights)", s1, 1e-2);
    report("oracle: theta 5e5 vs 1e4 (same weights)", s2, 1e-2);
    CHECKF(s1.max_rel > 1e-2, "dropping rope_freqs changes the logits by only %.2e", s1.max_rel);
    CHECKF(s2.max_rel > 1e-2, "changing theta changes the logits by only %.2e", s2.max_rel);
}

/* ---- d) batch semantics (llamac against itself; exact up to summation order) ---------------------------------- */
/* Different batch shapes may take different kernels (matrix-matrix vs matrix-vector) with another summation order,
** so equality is to float rounding, not bits: 1e-5 relative. */
#define BOUND_BATCH 1e-5

static lc_model *g_batch_model;
static int g_batch_vocab;

static lc_context *new_ctx(int kv, uint32_t n_seq) {
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_seq_max = n_seq;
    cp.n_threads = N_THREADS;
    cp.kv_type = kv;
    lc_context *c = NULL;
    return lc_context_new(g_batch_model, &cp, &c) == 0 ? c : NULL;
}

/* Decodes ids[0..n) of sequence seq starting at position p0 in chunks of `chunk`, every row's logits into out. */
static int decode_chunks(lc_context *c, const int32_t *ids, int n, int p0, int seq, int chunk, float *out) {
    int32_t pos[256], sid[256];
    int8_t want[256];
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        for (int i = 0; i < k; i++) { pos[i] = p0 + i0 + i; sid[i] = seq; want[i] = 1; }
        lc_batch b = {.n_tokens = k, .token = ids + i0, .pos = pos, .seq_id = sid, .logits = want};
        int r = lc_decode(c, &b);
        if (r) return r;
        for (int i = 0; i < k; i++) {
            const float *l = lc_get_logits(c, i);
            if (!l) return LC_E_INVALID;
            memcpy(out + (size_t)(i0 + i) * g_batch_vocab, l, sizeof(float) * (size_t)g_batch_vocab);
        }
    }
    return 0;
}

static bool batch_model(void) {
    if (g_batch_model) return true;
    if (!tmpdir()) return false;
    lc_synth_params p = synth_params_of(&SYNTH_CASES[1], LC_TYPE_F32); /* GQA, tied */
    char path[512];
    if (write_synth(&p, "batch", path, sizeof path) != 0) return false;
    if (lc_model_load(path, NULL, &g_batch_model) != 0) return false;
    g_batch_vocab = (int)p.n_vocab;
    return true;
}

TEST(batch_one_vs_token_by_token_vs_chunks) {
    CHECKF(batch_model(), "synthetic model: %s", lc_last_error());
    const int n = 48, V = g_batch_vocab;
    int32_t ids[48];
    make_ids(ids, n, V, 7);
    float *one = malloc(sizeof(float) * n * V), *other = malloc(sizeof(float) * n * V);
    const int chunks[] = {1, 7, 16};
    bool ok = true;
    char msg[256] = "";
    for (int kv = 0; ok && kv < 2; kv++) {
        int kvt = kv ? LC_TYPE_F16 : LC_TYPE_F32;
        lc_context *c = new_ctx(kvt, 1);
        ok = c && decode_chunks(c, ids, n, 0, 0, n, one) == 0;
        lc_context_free(c);
        for (size_t k = 0; ok && k < sizeof chunks / sizeof *chunks; k++) {
            c = new_ctx(kvt, 1);
            ok = c && decode_chunks(c, ids, n, 0, 0, chunks[k], other) == 0;
            if (ok) ok = lc_kv_seq_len(c, 0) == n;
            lc_context_free(c);
            if (!ok) { snprintf(msg, sizeof msg, "decode in chunks of %d failed: %s", chunks[k], lc_last_error()); break; }
            cmp_stats s = compare_logits(other, one, n, V);
            char what[96];
            snprintf(what, sizeof what, "chunks of %d vs one batch, kv %s", chunks[k], kv ? "f16" : "f32");
            report(what, s, BOUND_BATCH);
            if (!(s.max_rel <= BOUND_BATCH)) {
                snprintf(msg, sizeof msg, "%s: rel %.3e at %d", what, s.max_rel, s.worst);
                ok = false;
            }
        }
        if (!ok && !msg[0]) snprintf(msg, sizeof msg, "decode failed: %s", lc_last_error());
    }
    free(one);
    free(other);
    CHECKF(ok, "%s", msg);
}

TEST(batch_two_sequences_equal_each_alone) {
    CHECKF(batch_model(), "synthetic model: %s", lc_last_error());
    const int na = 30, nb = 21, V = g_batch_vocab;
    int32_t a[30], b[21];
    make_ids(a, na, V, 11);
    make_ids(b, nb, V, 12);
    float *alone_a = malloc(sizeof(float) * na * V), *alone_b = malloc(sizeof(float) * nb * V);
    float *mix_a = malloc(sizeof(float) * na * V), *mix_b = malloc(sizeof(float) * nb * V);
    lc_context *c = new_ctx(LC_TYPE_F32, 2);
    bool ok = c && decode_chunks(c, a, na, 0, 0, na, alone_a) == 0;
    lc_kv_remove(c, -1, 0, -1);
    ok = ok && lc_kv_seq_len(c, 0) == 0 && decode_chunks(c, b, nb, 0, 1, nb, alone_b) == 0;
    lc_kv_remove(c, -1, 0, -1);
    /* one batch holding both, interleaved: a0 b0 a1 b1 ... then the rest of a */
    int32_t tok[51], pos[51], sid[51];
    int8_t want[51];
    int row_a[30], row_b[21], k = 0;
    for (int i = 0; i < na; i++) {
        tok[k] = a[i]; pos[k] = i; sid[k] = 0; want[k] = 1; row_a[i] = k++;
        if (i < nb) { tok[k] = b[i]; pos[k] = i; sid[k] = 1; want[k] = 1; row_b[i] = k++; }
    }
    lc_batch bt = {.n_tokens = k, .token = tok, .pos = pos, .seq_id = sid, .logits = want};
    ok = ok && lc_decode(c, &bt) == 0;
    for (int i = 0; ok && i < na; i++) {
        const float *l = lc_get_logits(c, row_a[i]);
        ok = l != NULL;
        if (ok) memcpy(mix_a + (size_t)i * V, l, sizeof(float) * V);
    }
    for (int i = 0; ok && i < nb; i++) {
        const float *l = lc_get_logits(c, row_b[i]);
        ok = l != NULL;
        if (ok) memcpy(mix_b + (size_t)i * V, l, sizeof(float) * V);
    }
    ok = ok && lc_kv_seq_len(c, 0) == na && lc_kv_seq_len(c, 1) == nb;
    const char *err = ok ? "" : lc_last_error();
    lc_context_free(c);
    cmp_stats sa = compare_logits(mix_a, alone_a, na, V), sb = compare_logits(mix_b, alone_b, nb, V);
    free(alone_a); free(alone_b); free(mix_a); free(mix_b);
    CHECKF(ok, "decoding failed: %s", err);
    report("seq 0 in a shared batch vs alone", sa, BOUND_BATCH);
    report("seq 1 in a shared batch vs alone", sb, BOUND_BATCH);
    CHECKF(sa.max_rel <= BOUND_BATCH, "seq 0: rel %.3e at %d", sa.max_rel, sa.worst);
    CHECKF(sb.max_rel <= BOUND_BATCH, "seq 1: rel %.3e at %d", sb.max_rel, sb.worst);
}

TEST(batch_kv_remove_then_redecode) {
    CHECKF(batch_model(), "synthetic model: %s", lc_last_error());
    const int n = 40, cut = 25, V = g_batch_vocab;
    int32_t ids[40], other[40];
    make_ids(ids, n, V, 21);
    make_ids(other, n, V, 22);
    float *ref = malloc(sizeof(float) * n * V), *re = malloc(sizeof(float) * n * V);
    lc_context *c = new_ctx(LC_TYPE_F32, 1);
    bool ok = c && decode_chunks(c, ids, n, 0, 0, n, ref) == 0;
    /* replace the tail with other tokens, then remove it again and decode the original tail */
    lc_kv_remove(c, 0, cut, -1);
    ok = ok && lc_kv_seq_len(c, 0) == cut;
    ok = ok && decode_chunks(c, other + cut, n - cut, cut, 0, 5, re) == 0;
    lc_kv_remove(c, 0, cut, -1);
    ok = ok && lc_kv_seq_len(c, 0) == cut;
    ok = ok && decode_chunks(c, ids + cut, n - cut, cut, 0, n - cut, re + (size_t)cut * V) == 0;
    const char *err = ok ? "" : lc_last_error();
    lc_context_free(c);
    cmp_stats s = compare_logits(re + (size_t)cut * V, ref + (size_t)cut * V, n - cut, V);
    free(ref);
    free(re);
    CHECKF(ok, "decoding failed: %s", err);
    report("tail after lc_kv_remove + re-decode vs first decode", s, BOUND_BATCH);
    CHECKF(s.max_rel <= BOUND_BATCH, "rel %.3e at %d", s.max_rel, s.worst);
}

static void cleanup(void) {
    lc_model_free(g_batch_model);
    if (!g_tmp[0]) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
}

int main(void) {
    printf("test_fidelity%s (oracle: %s)\n", quick() ? " (quick)" : "", oracle_path() ? oracle_path() : "absent");
    RUN(oracle_reproduces_stories260K_goldens);
    RUN(stories260K_gguf_matches_llama_cpp_goldens);
    RUN(stories260K_bin_matches_llama_cpp_goldens);
    RUN(quant_goldens_f32_f16_bf16_q8_0);
    RUN(synthetic_cases_are_sensitive_to_rope);
    RUN(synthetic_models_match_llama_cpp);
    RUN(batch_one_vs_token_by_token_vs_chunks);
    RUN(batch_two_sequences_equal_each_alone);
    RUN(batch_kv_remove_then_redecode);
    cleanup();
    return TEST_SUMMARY();
}
