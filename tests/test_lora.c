/* test_lora.c - LoRA adapters (src/model/lora.c) against llama.cpp.
**
** Adapters in llama.cpp's GGUF format are written here with random A and B for generated base models (grouped-query
** attention; F32, F16 and Q8_0 weights), on every projection kind and on a subset, ranks 1/4/8, alpha set and unset,
** scales 0.5/1/2, two adapters at once. llamac's logits with the adapter must match llama.cpp's (the oracle,
** llama_adapter_lora_init + llama_set_adapters_lora) on the same files: max over positions of ||diff|| / ||ref||
** within 1e-4 for an F32 base with an F32 KV cache (float summation order only), and within the base type's bound
** of test_fidelity.c otherwise. Scale 0 gives exactly the base logits. Malformed adapters are refused naming the
** tensor. The CLI applies adapters with --lora / --lora-scaled.
*/
#include "harness.h"
#include "llamac.h"

#include "lora_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_dir[64];

static const char *oracle_path(void) {
    static char buf[1024];
    const char *e = getenv("LLAMAC_ORACLE");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : ".oracle/lc_oracle");
    return access(buf, X_OK) == 0 ? buf : NULL;
}

static bool oracle_required(void) {
#if defined(__x86_64__) && defined(__linux__)
    const char *e = getenv("LLAMAC_REQUIRE_ORACLE");
    return e && !strcmp(e, "1");
#else
    return false;
#endif
}

#define NEED_ORACLE()                                                                                              \
    do {                                                                                                           \
        if (!oracle_path()) {                                                                                      \
            if (oracle_required()) FAILF("llama.cpp oracle .oracle/lc_oracle missing and LLAMAC_REQUIRE_ORACLE=1");  \
            SKIP("llama.cpp oracle .oracle/lc_oracle not built (tests/oracle/build-oracle.sh; x86-64 Linux only)"); \
        }                                                                                                          \
    } while (0)

/* Logits of every position with the adapters applied (n_lora 0: none), llamac. */
static int llamac_logits(const char *model, const char *const *ads, const float *scales, int n_lora, const int32_t *ids,
                         int n, int kv, float *out, int *n_vocab) {
    lc_model *m;
    if (lc_model_load(model, NULL, &m)) return -1;
    *n_vocab = (int)lc_model_hparams(m)->n_vocab;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = 256, cp.n_batch = 256, cp.n_threads = 2, cp.kv_type = kv;
    lc_context *c = NULL;
    lc_lora *ad[4] = {0};
    int r = lc_context_new(m, &cp, &c);
    for (int i = 0; i < n_lora && !r; i++) r = lc_lora_load(m, ads[i], &ad[i]);
    if (!r && n_lora) r = lc_context_set_lora(c, ad, scales, (size_t)n_lora);
    int8_t want[256];
    memset(want, 1, sizeof want);
    lc_batch b = {.n_tokens = n, .token = ids, .logits = want};
    if (!r) r = lc_decode(c, &b);
    for (int i = 0; !r && i < n; i++) memcpy(out + (size_t)i * *n_vocab, lc_get_logits(c, i), sizeof *out * (size_t)*n_vocab);
    if (r) fprintf(stderr, "llamac: %s\n", lc_last_error());
    lc_context_free(c);
    for (int i = 0; i < n_lora; i++) lc_lora_free(ad[i]);
    lc_model_free(m);
    return r;
}

static int oracle_logits(const char *model, const char *const *ads, const float *scales, int n_lora, const int32_t *ids,
                         int n, const char *kv, float *out, size_t count) {
    char idp[128], op[128], cmd[4096];
    snprintf(idp, sizeof idp, "%s/ids", g_dir);
    snprintf(op, sizeof op, "%s/oracle.f32", g_dir);
    FILE *f = fopen(idp, "w");
    if (!f) return -1;
    for (int i = 0; i < n; i++) fprintf(f, "%d ", ids[i]);
    fclose(f);
    int k = snprintf(cmd, sizeof cmd, "'%s' logits -m '%s' -i '%s' -o '%s' -t 2 --kv %s", oracle_path(), model, idp, op, kv);
    for (int i = 0; i < n_lora; i++) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " --lora '%s' --lora-scale %g", ads[i], scales[i]);
    snprintf(cmd + k, sizeof cmd - (size_t)k, " 2>/dev/null");
    if (system(cmd)) return -1;
    f = fopen(op, "rb");
    if (!f) return -1;
    const size_t got = fread(out, sizeof *out, count, f);
    fclose(f);
    return got == count ? 0 : -1;
}

static double max_rel(const float *a, const float *b, int n, int nv) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double d = 0, r = 0;
        for (int j = 0; j < nv; j++) {
            const double x = a[(size_t)i * nv + j], y = b[(size_t)i * nv + j];
            d += (x - y) * (x - y), r += y * y;
        }
        const double e = sqrt(d) / (sqrt(r) + 1e-30);
        if (e > worst) worst = e;
    }
    return worst;
}

TEST(adapters_match_llama_cpp) {
    NEED_ORACLE();
    static const struct {
        int wtype;
        const char *kinds;
        int rank;
        float alpha, scale;
        int kv;
        double bound;
    } cases[] = {
        {LC_TYPE_F32, "qkvogud", 4, 8.0f, 1.0f, LC_TYPE_F32, 1e-4},
        {LC_TYPE_F32, "qvx", 1, 0.0f, 2.0f, LC_TYPE_F32, 1e-4},
        {LC_TYPE_F32, "kgd", 8, 16.0f, 0.5f, LC_TYPE_F16, 6e-3},
        {LC_TYPE_F16, "qkvogud", 4, 4.0f, 1.0f, LC_TYPE_F32, 3e-3},
        {LC_TYPE_Q8_0, "qkvogud", 8, 8.0f, 1.0f, LC_TYPE_F32, 5e-2},
    };
    float *a = malloc(sizeof *a * 64 * 4096), *b = malloc(sizeof *b * 64 * 4096);
    int32_t ids[48];
    for (int i = 0; i < 48; i++) ids[i] = 3 + (int32_t)((unsigned)(i * 7919) % 500);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char model[128], ad[128];
        snprintf(model, sizeof model, "%s/base%zu.gguf", g_dir, c);
        snprintf(ad, sizeof ad, "%s/ad%zu.gguf", g_dir, c);
        lc_synth_params p = lc_synth_default_params();
        p.wtype = cases[c].wtype, p.n_embd = 256, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 512, p.seed = 11 + c;
        p.tied_output = false;
        CHECK_OK(lc_synth_write(model, &p));
        CHECK(write_adapter(ad, model, cases[c].kinds, cases[c].rank, cases[c].alpha, 0.08f, 0) == 0);
        const char *ads[1] = {ad};
        const float sc[1] = {cases[c].scale};
        int nv;
        CHECK(llamac_logits(model, ads, sc, 1, ids, 48, cases[c].kv, a, &nv) == 0);
        CHECK(oracle_logits(model, ads, sc, 1, ids, 48, cases[c].kv == LC_TYPE_F32 ? "f32" : "f16", b, (size_t)48 * nv) == 0);
        const double e = max_rel(a, b, 48, nv);
        /* how much the adapter moves the logits, so the agreement is not trivially the base model's */
        float *base = malloc(sizeof *base * 48 * (size_t)nv);
        CHECK(llamac_logits(model, NULL, NULL, 0, ids, 48, cases[c].kv, base, &nv) == 0);
        const double moved = max_rel(base, b, 48, nv);
        free(base);
        printf("        %s base, %-7s r %d alpha %g scale %g, KV %s: rel %.1e (the adapter moves logits by %.1e)\n",
               lc_type_name(cases[c].wtype), cases[c].kinds, cases[c].rank, cases[c].alpha, cases[c].scale,
               cases[c].kv == LC_TYPE_F32 ? "f32" : "f16", e, moved);
        CHECKF(e <= cases[c].bound && moved > 10 * e, "case %zu: rel %.2e (bound %.0e), moved %.2e", c, e, cases[c].bound, moved);
        unlink(model);
    }
    /* two adapters at once */
    char model[128], ad1[128], ad2[128];
    snprintf(model, sizeof model, "%s/base2.gguf", g_dir);
    snprintf(ad1, sizeof ad1, "%s/two1.gguf", g_dir);
    snprintf(ad2, sizeof ad2, "%s/two2.gguf", g_dir);
    lc_synth_params p = lc_synth_default_params();
    p.n_embd = 256, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 512, p.seed = 99;
    CHECK_OK(lc_synth_write(model, &p));
    CHECK(write_adapter(ad1, model, "qkv", 4, 8.0f, 0.08f, 0) == 0);
    CHECK(write_adapter(ad2, model, "vogud", 2, 0.0f, 0.05f, 0) == 0);
    const char *ads[2] = {ad1, ad2};
    const float sc[2] = {1.0f, 0.7f};
    int nv;
    CHECK(llamac_logits(model, ads, sc, 2, ids, 48, LC_TYPE_F32, a, &nv) == 0);
    CHECK(oracle_logits(model, ads, sc, 2, ids, 48, "f32", b, (size_t)48 * nv) == 0);
    const double e = max_rel(a, b, 48, nv);
    printf("        two adapters (F32 base, KV f32): rel %.1e\n", e);
    free(a), free(b);
    CHECKF(e <= 1e-4, "two adapters: rel %.2e", e);
}

TEST(scale_zero_is_the_base_model_and_errors) {
    char model[128], ad[128];
    snprintf(model, sizeof model, "%s/z.gguf", g_dir);
    snprintf(ad, sizeof ad, "%s/zad.gguf", g_dir);
    lc_synth_params p = lc_synth_default_params();
    CHECK_OK(lc_synth_write(model, &p));
    CHECK(write_adapter(ad, model, "qkvogud", 4, 8.0f, 0.1f, 0) == 0);
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = 3 + i * 17 % 400;
    int nv;
    float *a = malloc(sizeof *a * 16 * 512), *b = malloc(sizeof *b * 16 * 512), *c = malloc(sizeof *c * 16 * 512);
    const char *ads[1] = {ad};
    const float zero[1] = {0.0f}, one[1] = {1.0f};
    CHECK(llamac_logits(model, NULL, NULL, 0, ids, 16, LC_TYPE_F16, a, &nv) == 0);
    CHECK(llamac_logits(model, ads, zero, 1, ids, 16, LC_TYPE_F16, b, &nv) == 0);
    CHECK(llamac_logits(model, ads, one, 1, ids, 16, LC_TYPE_F16, c, &nv) == 0);
    const bool same = !memcmp(a, b, sizeof *a * 16 * (size_t)nv), differs = memcmp(a, c, sizeof *a * 16 * (size_t)nv) != 0;
    free(a), free(b), free(c);
    CHECKF(same, "scale 0 should give the base logits bit for bit");
    CHECKF(differs, "scale 1 should change the logits");
    lc_model *m;
    CHECK_OK(lc_model_load(model, NULL, &m));
    static const char *const want[] = {NULL, "incorrect", "has no", "not an adapter", "neither"};
    for (int bad = 1; bad <= 4; bad++) {
        char path[128];
        snprintf(path, sizeof path, "%s/bad%d.gguf", g_dir, bad);
        CHECK(write_adapter(path, model, "qk", 2, 0.0f, 0.1f, bad) == 0);
        lc_lora *l = NULL;
        const int r = lc_lora_load(m, path, &l);
        const bool ok = r != 0 && !l && strstr(lc_last_error(), path) &&
                        (bad != 1 || strstr(lc_last_error(), "wrong base model")) && (bad == 1 || strstr(lc_last_error(), want[bad]));
        if (!ok) {
            lc_lora_free(l);
            lc_model_free(m);
            FAILF("malformed adapter %d: status %d, message: %s", bad, r, lc_last_error());
        }
    }
    lc_model_free(m);
}

static char g_bin[1024];

/* `llamac logits --lora` and `--lora-scaled FILE 0` through the tool: the adapter changes the output, scale 0
** gives the output without it. */
TEST(cli_applies_adapters) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --version > /dev/null 2>&1", g_bin);
    if (!g_bin[0] || system(cmd)) SKIP("the llamac binary does not run here");
    char model[128], ad[128], o[3][160];
    snprintf(model, sizeof model, "%s/cli.gguf", g_dir);
    snprintf(ad, sizeof ad, "%s/cliad.gguf", g_dir);
    lc_synth_params p = lc_synth_default_params();
    CHECK_OK(lc_synth_write(model, &p));
    CHECK(write_adapter(ad, model, "qvd", 2, 4.0f, 0.2f, 0) == 0);
    const char *extra[3] = {"", "--lora", "--lora-scaled"};
    char *out[3];
    for (int i = 0; i < 3; i++) {
        snprintf(o[i], sizeof o[i], "%s/cli%d.json", g_dir, i);
        snprintf(cmd, sizeof cmd, "%s logits -m %s --ids 1,7,42,99 --kv f32 -t 2 %s %s %s > %s 2>/dev/null", g_bin, model, extra[i],
                 i ? ad : "", i == 2 ? "0" : "", o[i]);
        CHECKF(system(cmd) == 0, "failed: %s", cmd);
        FILE *f = fopen(o[i], "rb");
        CHECK(f);
        out[i] = calloc(1, 1 << 20);
        const size_t n = fread(out[i], 1, (1 << 20) - 1, f);
        (void)n;
        fclose(f);
    }
    const bool changed = strcmp(out[0], out[1]) != 0, zero_same = !strcmp(out[0], out[2]);
    for (int i = 0; i < 3; i++) free(out[i]);
    CHECKF(changed, "--lora did not change the logits");
    CHECKF(zero_same, "--lora-scaled FILE 0 should print the base model's logits");
}

int main(int argc, char **argv) {
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    if (slash) snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv[0]), argv[0]);
    snprintf(g_dir, sizeof g_dir, "/tmp/llamac-test-lora-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    printf("test_lora (oracle: %s)\n", oracle_path() ? oracle_path() : "absent");
    RUN(adapters_match_llama_cpp);
    RUN(scale_zero_is_the_base_model_and_errors);
    RUN(cli_applies_adapters);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd)) printf("note: could not remove %s\n", g_dir);
    return TEST_SUMMARY();
}
