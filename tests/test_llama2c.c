/* test_llama2c.c - llama2.c checkpoints presented as GGUF-shaped files.
**
** References: ../shared/data/stories260K/stories260K.bin against stories260K.gguf, which llama.cpp's own converter
** (convert-llama2c-to-ggml) made from it: every tensor must be byte-identical under the same name and shape (this also
** settles that the converter does not permute Q/K). Small checkpoints built here with tensor offsets computed by hand
** from llama2.c's run.c (memory_map_weights) and export.py (version1_export). Malformed headers and every truncation
** must be rejected with LC_E_FORMAT and a message naming the file and the offset.
*/
#include "../src/gguf/gguf.h"
#include "harness.h"

#include <unistd.h>

/* Tiny config: dim 8, hidden 12, 2 layers, 2 heads, 1 KV head (head 4, kv_dim 4), vocab 5, seq_len 4. */
enum { DIM = 8, HID = 12, NL = 2, NH = 2, NKV = 1, VOCAB = 5, SEQ = 4 };

/* A checkpoint whose i-th float (counting from the first weight) has the value i. */
static uint8_t *make_ckpt(int version, bool shared, size_t *n) {
    size_t hdr = version == 1 ? 256 : 28, floats = version == 1 ? 1040 : 1056;
    if (!shared) floats += (size_t)VOCAB * DIM;
    *n = hdr + 4 * floats;
    uint8_t *p = calloc(1, *n);
    int32_t cfg[7] = {DIM, HID, NL, NH, NKV, version == 1 || shared ? VOCAB : -VOCAB, SEQ};
    if (version == 1) {
        uint32_t magic = 0x616b3432, v = 1;
        memcpy(p, &magic, 4);
        memcpy(p + 4, &v, 4);
        memcpy(p + 8, cfg, sizeof cfg);
        p[36] = shared;
    } else {
        memcpy(p, cfg, sizeof cfg);
    }
    for (size_t i = 0; i < floats; i++) {
        float x = (float)i;
        memcpy(p + hdr + 4 * i, &x, 4);
    }
    return p;
}

static int parse_copy(const uint8_t *p, size_t n, gguf_file **out) {
    uint8_t *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    int r = llama2c_parse(c, n, "ckpt.bin", out);
    if (!*out) free(c);
    return r;
}
static void close_copy(gguf_file *f) {
    if (!f) return;
    void *c = (void *)(uintptr_t)f->base;
    gguf_close(f);
    free(c);
}

/* Tensor name, ne0, ne1 and the index of its first float, worked out by hand from run.c / export.py. */
typedef struct expect {
    const char *name;
    uint64_t ne0, ne1, first;
} expect;

static const expect v0_expect[] = {
    {"token_embd.weight", 8, 5, 0},        {"blk.0.attn_norm.weight", 8, 1, 40},
    {"blk.1.attn_norm.weight", 8, 1, 48},  {"blk.0.attn_q.weight", 8, 8, 56},
    {"blk.1.attn_q.weight", 8, 8, 120},    {"blk.0.attn_k.weight", 8, 4, 184},
    {"blk.1.attn_k.weight", 8, 4, 216},    {"blk.0.attn_v.weight", 8, 4, 248},
    {"blk.1.attn_v.weight", 8, 4, 280},    {"blk.0.attn_output.weight", 8, 8, 312},
    {"blk.1.attn_output.weight", 8, 8, 376}, {"blk.0.ffn_norm.weight", 8, 1, 440},
    {"blk.1.ffn_norm.weight", 8, 1, 448},  {"blk.0.ffn_gate.weight", 8, 12, 456},
    {"blk.1.ffn_gate.weight", 8, 12, 552}, {"blk.0.ffn_down.weight", 12, 8, 648},
    {"blk.1.ffn_down.weight", 12, 8, 744}, {"blk.0.ffn_up.weight", 8, 12, 840},
    {"blk.1.ffn_up.weight", 8, 12, 936},   {"output_norm.weight", 8, 1, 1032},
    /* freq_cis_real/imag: 1040..1056, skipped */
};

static const expect v1_expect[] = {
    {"blk.0.attn_norm.weight", 8, 1, 0},    {"blk.1.attn_norm.weight", 8, 1, 8},
    {"blk.0.ffn_norm.weight", 8, 1, 16},    {"blk.1.ffn_norm.weight", 8, 1, 24},
    {"output_norm.weight", 8, 1, 32},       {"token_embd.weight", 8, 5, 40},
    {"blk.0.attn_q.weight", 8, 8, 80},      {"blk.1.attn_q.weight", 8, 8, 144},
    {"blk.0.attn_k.weight", 8, 4, 208},     {"blk.1.attn_k.weight", 8, 4, 240},
    {"blk.0.attn_v.weight", 8, 4, 272},     {"blk.1.attn_v.weight", 8, 4, 304},
    {"blk.0.attn_output.weight", 8, 8, 336}, {"blk.1.attn_output.weight", 8, 8, 400},
    {"blk.0.ffn_gate.weight", 8, 12, 464},  {"blk.1.ffn_gate.weight", 8, 12, 560},
    {"blk.0.ffn_down.weight", 12, 8, 656},  {"blk.1.ffn_down.weight", 12, 8, 752},
    {"blk.0.ffn_up.weight", 8, 12, 848},    {"blk.1.ffn_up.weight", 8, 12, 944},
};

static void check_layout(int version, bool shared) {
    size_t n;
    uint8_t *p = make_ckpt(version, shared, &n);
    gguf_file *f = NULL;
    int r = parse_copy(p, n, &f);
    free(p);
    CHECK_OK(r);
    const expect *e = version == 1 ? v1_expect : v0_expect;
    size_t ne = version == 1 ? sizeof v1_expect / sizeof *v1_expect : sizeof v0_expect / sizeof *v0_expect;
    CHECK_EQ_INT(f->n_tensors, ne + (shared ? 0 : 1));
    CHECK_EQ_INT(f->version, version);
    for (size_t i = 0; i < ne; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, e[i].name);
        CHECKF(t, "%s missing", e[i].name);
        CHECK(t->type == LC_TYPE_F32 && t->ne[0] == e[i].ne0 && t->ne[1] == e[i].ne1 && t->ne[2] == 1);
        CHECK_EQ_INT(t->n_dims, e[i].ne1 > 1 ? 2 : 1);
        CHECK_EQ_INT(t->size, e[i].ne0 * e[i].ne1 * 4);
        const float *x = t->data;
        CHECKF(x[0] == (float)e[i].first && x[e[i].ne0 * e[i].ne1 - 1] == (float)(e[i].first + e[i].ne0 * e[i].ne1 - 1),
               "%s starts at float %g, want %llu", e[i].name, x[0], (unsigned long long)e[i].first);
    }
    const gguf_tensor *out = gguf_find_tensor(f, "output.weight");
    if (shared) CHECK(out == NULL);
    else CHECK(out && ((const float *)out->data)[0] == (version == 1 ? 1040.0f : 1056.0f) && out->ne[1] == VOCAB);
    uint32_t u;
    float x;
    gguf_str s;
    CHECK(gguf_get_str(f, "general.architecture", &s) == 1 && s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    CHECK(gguf_get_u32(f, "llama.embedding_length", &u) == 1 && u == DIM);
    CHECK(gguf_get_u32(f, "llama.feed_forward_length", &u) == 1 && u == HID);
    CHECK(gguf_get_u32(f, "llama.block_count", &u) == 1 && u == NL);
    CHECK(gguf_get_u32(f, "llama.attention.head_count", &u) == 1 && u == NH);
    CHECK(gguf_get_u32(f, "llama.attention.head_count_kv", &u) == 1 && u == NKV);
    CHECK(gguf_get_u32(f, "llama.context_length", &u) == 1 && u == SEQ);
    CHECK(gguf_get_u32(f, "llama.vocab_size", &u) == 1 && u == VOCAB);
    CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &x) == 1 && x == 1e-5f);
    CHECK(gguf_get_f32(f, "llama.rope.freq_base", &x) == 1 && x == 10000.0f);
    close_copy(f);
}

TEST(v0_shared_layout) { check_layout(0, true); }
TEST(v0_unshared_layout) { check_layout(0, false); }
TEST(v1_shared_layout) { check_layout(1, true); }
TEST(v1_unshared_layout) { check_layout(1, false); }

static bool rejected(const uint8_t *p, size_t n, long long at, const char *sub) {
    gguf_file *f = NULL;
    int r = parse_copy(p, n, &f);
    if (r != LC_E_FORMAT || f) {
        close_copy(f);
        printf("    status %d: %s\n", r, lc_last_error());
        return false;
    }
    const char *m = lc_last_error();
    char want[64] = "offset ";
    if (at >= 0) snprintf(want, sizeof want, "offset %lld:", at);
    if (!strstr(m, "ckpt.bin") || !strstr(m, want) || (sub && !strstr(m, sub))) {
        printf("    want '%s' and '%s' in: %s\n", want, sub ? sub : "", m);
        return false;
    }
    if (getenv("LLAMAC_VERBOSE")) printf("    %s\n", m);
    return true;
}

TEST(every_truncation_and_extension_rejected) {
    for (int v = 0; v <= 1; v++) {
        size_t n;
        uint8_t *p = make_ckpt(v, v == 0, &n);
        for (size_t k = 0; k < n; k++)
            if (!rejected(p, k, -1, NULL)) {
                free(p);
                FAILF("v%d prefix of %zu bytes not rejected", v, k);
            }
        uint8_t *q = calloc(1, n + 4);
        memcpy(q, p, n);
        bool ok = rejected(q, n + 4, (long long)n, "follow");
        free(q);
        free(p);
        CHECK(ok);
    }
}

static void set_i32(uint8_t *p, size_t off, int32_t v) { memcpy(p + off, &v, 4); }

TEST(bad_headers_rejected) {
    size_t n;
    uint8_t *p = make_ckpt(0, true, &n), *q = malloc(n);
    static const struct { size_t off; int32_t v; const char *sub; } cases[] = {
        {0, 0, "dim is 0"},        {4, -12, "hidden_dim"},   {8, 0, "n_layers"},     {12, 0, "n_heads"},
        {16, 0, "n_kv_heads"},     {20, 0, "vocab_size"},    {24, -1, "seq_len"},    {16, 3, "does not divide"},
        {12, 3, "even head size"}, {12, 8, "even head size"}, {0, 1 << 30, "overflow"}, {20, INT32_MIN, "vocab_size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(q, p, n);
        set_i32(q, cases[i].off, cases[i].v);
        if (cases[i].v == 1 << 30) { /* dim 2^30, n_layers 2^30: dim*dim*n_layers overflows 64 bits */
            set_i32(q, 8, 1 << 30);
            set_i32(q, 12, 1 << 10);
            set_i32(q, 16, 1 << 10);
        }
        long long at = cases[i].v == 1 << 30 ? -1 : (long long)cases[i].off;
        if (strcmp(cases[i].sub, "does not divide") == 0 || strcmp(cases[i].sub, "even head size") == 0) at = -1;
        CHECKF(rejected(q, n, at, cases[i].sub), "case %zu (%s)", i, cases[i].sub);
    }
    /* a consistent header with a size that does not match: vocab sign flipped (shared <-> unshared) */
    memcpy(q, p, n);
    set_i32(q, 20, -VOCAB);
    CHECK(rejected(q, n, (long long)n, "ends after"));
    free(p);
    free(q);
    /* version 1 specifics */
    p = make_ckpt(1, true, &n);
    q = malloc(n);
    memcpy(q, p, n);
    set_i32(q, 4, 2);
    CHECK(rejected(q, n, 4, "version 2"));
    memcpy(q, p, n);
    q[36] = 2;
    CHECK(rejected(q, n, 36, "shared_classifier"));
    memcpy(q, p, n);
    set_i32(q, 28, -VOCAB);
    CHECK(rejected(q, n, 28, "negative"));
    CHECK(rejected(p, 200, -1, "256-byte"));
    free(p);
    free(q);
}

/* The real checkpoint against llama.cpp's conversion of it. */
TEST(stories260K_bin_matches_llamacpp_gguf) {
    const char *dir = th_shared_dir();
    if (!dir) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char bin[4200], gg[4200];
    snprintf(bin, sizeof bin, "%s/stories260K/stories260K.bin", dir);
    snprintf(gg, sizeof gg, "%s/stories260K/stories260K.gguf", dir);
    gguf_file *b = NULL, *g = NULL;
    CHECK_OK(llama2c_open(bin, &b));
    CHECK(b->mapped);
    CHECK_OK(gguf_open(gg, &g));
    /* the converter always writes output.weight (a copy of the embedding when shared); we do not */
    CHECK_EQ_INT(b->n_tensors + 1, g->n_tensors);
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const gguf_tensor *t = &b->tensors[i], *u = gguf_find_tensor(g, t->name);
        CHECKF(u, "%s not in the gguf", t->name);
        CHECKF(u->type == t->type && u->ne[0] == t->ne[0] && u->ne[1] == t->ne[1] && u->size == t->size,
               "%s: shape or type differs", t->name);
        CHECKF(memcmp(u->data, t->data, t->size) == 0, "%s: bytes differ from llama.cpp's conversion", t->name);
    }
    const gguf_tensor *out = gguf_find_tensor(g, "output.weight"), *emb = gguf_find_tensor(b, "token_embd.weight");
    CHECK(out && emb && out->size == emb->size && memcmp(out->data, emb->data, emb->size) == 0);
    static const char *const keys[] = {"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                                       "llama.attention.head_count", "llama.attention.head_count_kv",
                                       "llama.rope.dimension_count"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        uint32_t x = 0, y = 0;
        CHECK(gguf_get_u32(b, keys[i], &x) == 1 && gguf_get_u32(g, keys[i], &y) == 1);
        CHECKF(x == y, "%s: %u in the .bin, %u in the .gguf", keys[i], x, y);
    }
    float e1, e2;
    CHECK(gguf_get_f32(b, "llama.attention.layer_norm_rms_epsilon", &e1) == 1);
    CHECK(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &e2) == 1 && e1 == e2);
    uint32_t ctx;
    CHECK(gguf_get_u32(b, "llama.context_length", &ctx) == 1 && ctx == 512); /* seq_len; the converter wrote 128 */
    gguf_close(b);
    gguf_close(g);
}

TEST(open_missing_file) {
    gguf_file *f = NULL;
    CHECK_EQ_INT(llama2c_open("/nonexistent/model.bin", &f), LC_E_IO);
    CHECK(strstr(lc_last_error(), "/nonexistent/model.bin"));
    CHECK(f == NULL);
}

int main(void) {
    RUN(v0_shared_layout);
    RUN(v0_unshared_layout);
    RUN(v1_shared_layout);
    RUN(v1_unshared_layout);
    RUN(every_truncation_and_extension_rejected);
    RUN(bad_headers_rejected);
    RUN(stories260K_bin_matches_llamacpp_gguf);
    RUN(open_missing_file);
    return TEST_SUMMARY();
}
