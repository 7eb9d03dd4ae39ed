/* test_synth.c - lc_synth_write: the file it writes, read back with the GGUF reader.
**
** Checked against the parameters and against values computed here independently: the llama.* keys, the tensor
** names/shapes/types llama.cpp's loader asks for (src/models/llama.cpp of the pinned release), the Llama 3.1 RoPE
** factors from the formula of convert_hf_to_gguf.py (in double), the weight statistics, determinism, and that
** weights depend on the tensor name only (the fidelity tests rely on it). That llama.cpp itself accepts the files
** is checked by test_fidelity (the oracle runs on them).
*/
#include "harness.h"
#include "llamac.h"

#include "../src/gguf/gguf.h"
#include "../src/kernels/kernels.h"
#include "../src/model/model.h"
#include "../src/quant/types.h"

#include <unistd.h>

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[256];
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/llamac-synth-XXXXXX");
        if (!mkdtemp(g_dir)) return NULL;
    }
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static lc_synth_params small(int wtype) {
    lc_synth_params p = lc_synth_default_params();
    p.n_vocab = 300;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 96;
    p.wtype = wtype;
    p.seed = 5;
    return p;
}

static uint32_t u32_of(const gguf_file *f, const char *key) {
    uint32_t v = 0xFFFFFFFFu;
    return gguf_get_u32(f, key, &v) == 1 ? v : 0xFFFFFFFFu;
}

TEST(keys_match_params) {
    lc_synth_params p = small(LC_TYPE_F16);
    p.head_dim = 32; /* n_head * head_dim = 128 != n_embd: key_length must be written */
    p.rope_theta = 500000.0f;
    p.rms_eps = 1e-6f;
    p.n_ctx_train = 8192;
    p.name = "unit";
    const char *path = tmp_path("keys.gguf");
    CHECK(path);
    CHECK_OK(lc_synth_write(path, &p));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    gguf_str s;
    bool ok = gguf_get_str(f, "general.architecture", &s) == 1 && s.len == 5 && !memcmp(s.ptr, "llama", 5) &&
              gguf_get_str(f, "general.name", &s) == 1 && s.len == 4 && !memcmp(s.ptr, "unit", 4) &&
              gguf_get_str(f, "tokenizer.ggml.model", &s) == 1 && s.len == 5 && !memcmp(s.ptr, "llama", 5);
    uint32_t vals[] = {u32_of(f, "llama.context_length"), u32_of(f, "llama.embedding_length"),
                       u32_of(f, "llama.block_count"), u32_of(f, "llama.feed_forward_length"),
                       u32_of(f, "llama.attention.head_count"), u32_of(f, "llama.attention.head_count_kv"),
                       u32_of(f, "llama.rope.dimension_count"), u32_of(f, "llama.attention.key_length"),
                       u32_of(f, "llama.attention.value_length"), u32_of(f, "llama.vocab_size"),
                       u32_of(f, "general.file_type"), u32_of(f, "tokenizer.ggml.bos_token_id"),
                       u32_of(f, "tokenizer.ggml.eos_token_id"), u32_of(f, "tokenizer.ggml.unknown_token_id")};
    uint32_t want[] = {8192, 64, 2, 96, 4, 2, 32, 32, 32, 300, 1 /* LLAMA_FTYPE_MOSTLY_F16 */, 1, 2, 0};
    float theta = 0, eps = 0;
    ok = ok && gguf_get_f32(f, "llama.rope.freq_base", &theta) == 1 && theta == 500000.0f &&
         gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == 1 && eps == 1e-6f;
    const gguf_value *tok = NULL, *sc = NULL, *ty = NULL;
    bool vocab_ok = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_T_STRING, &tok) == 1 && tok->v.arr.n == 300 &&
                    gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_T_FLOAT32, &sc) == 1 && sc->v.arr.n == 300 &&
                    gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_T_INT32, &ty) == 1 && ty->v.arr.n == 300;
    /* SentencePiece layout: <unk> <s> </s>, <0x00>..<0xFF> (type BYTE = 6), then unique normal pieces (type 1) */
    if (vocab_ok) {
        const gguf_str *t = tok->v.arr.strs;
        vocab_ok = t[0].len == 5 && !memcmp(t[0].ptr, "<unk>", 5) && t[1].len == 3 && !memcmp(t[1].ptr, "<s>", 3) &&
                   t[2].len == 4 && !memcmp(t[2].ptr, "</s>", 4) && t[3 + 0x0A].len == 6 &&
                   !memcmp(t[3 + 0x0A].ptr, "<0x0A>", 6) && gguf_arr_i64(ty, 0) == 2 && gguf_arr_i64(ty, 1) == 3 &&
                   gguf_arr_i64(ty, 2) == 3 && gguf_arr_i64(ty, 3) == 6 && gguf_arr_i64(ty, 258) == 6 &&
                   gguf_arr_i64(ty, 259) == 1 && gguf_arr_i64(ty, 299) == 1;
        for (uint64_t i = 0; vocab_ok && i < 300; i++)
            for (uint64_t j = i + 1; vocab_ok && j < 300; j++)
                if (t[i].len == t[j].len && !memcmp(t[i].ptr, t[j].ptr, t[i].len)) vocab_ok = false;
    }
    gguf_close(f);
    CHECK(ok);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) CHECKF(vals[i] == want[i], "key %zu: %u != %u", i, vals[i], want[i]);
    CHECKF(vocab_ok, "vocabulary layout or uniqueness");
}

/* Names and shapes as llama.cpp's llama loader creates them: {ne0, ne1} with ne0 the input width. */
TEST(tensors_named_and_shaped_as_llama_cpp_expects) {
    lc_synth_params p = small(LC_TYPE_Q8_0);
    p.rope_freqs = true;
    p.tied_output = false;
    const char *path = tmp_path("tensors.gguf");
    CHECK(path);
    CHECK_OK(lc_synth_write(path, &p));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    const uint64_t E = 64, Q = 4 * 16, KV = 2 * 16, F = 96, V = 300;
    struct { const char *name; uint32_t type; uint64_t ne0, ne1; } want[] = {
        {"token_embd.weight", LC_TYPE_Q8_0, E, V},   {"rope_freqs.weight", LC_TYPE_F32, 8, 1},
        {"output_norm.weight", LC_TYPE_F32, E, 1},   {"output.weight", LC_TYPE_Q8_0, E, V},
        {"blk.1.attn_norm.weight", LC_TYPE_F32, E, 1}, {"blk.1.attn_q.weight", LC_TYPE_Q8_0, E, Q},
        {"blk.1.attn_k.weight", LC_TYPE_Q8_0, E, KV}, {"blk.1.attn_v.weight", LC_TYPE_Q8_0, E, KV},
        {"blk.1.attn_output.weight", LC_TYPE_Q8_0, Q, E}, {"blk.1.ffn_norm.weight", LC_TYPE_F32, E, 1},
        {"blk.1.ffn_gate.weight", LC_TYPE_Q8_0, E, F}, {"blk.1.ffn_up.weight", LC_TYPE_Q8_0, E, F},
        {"blk.1.ffn_down.weight", LC_TYPE_Q8_0, F, E},
    };
    uint64_t n_tensors = f->n_tensors;
    int bad = -1;
    for (size_t i = 0; i < sizeof want / sizeof *want && bad < 0; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, want[i].name);
        if (!t || t->type != want[i].type || t->ne[0] != want[i].ne0 || t->ne[1] != want[i].ne1 ||
            t->n_dims != (want[i].ne1 > 1 ? 2u : 1u))
            bad = (int)i;
    }
    gguf_close(f);
    CHECKF(bad < 0, "tensor %s missing or of the wrong type/shape", want[bad].name);
    CHECK_EQ_INT(n_tensors, 3 + 1 + 9 * 2); /* token_embd, output_norm, output, rope_freqs, 9 per layer */

    p.tied_output = true;
    p.rope_freqs = false;
    CHECK_OK(lc_synth_write(path, &p));
    CHECK_OK(gguf_open(path, &f));
    bool tied_ok = !gguf_find_tensor(f, "output.weight") && !gguf_find_tensor(f, "rope_freqs.weight") &&
                   f->n_tensors == 2 + 9 * 2;
    gguf_close(f);
    CHECK(tied_ok);
}

/* Llama 3.1 rope scaling (factor 8, low 1, high 4, original context 8192), computed here in double. */
TEST(rope_freqs_follow_llama3_formula) {
    lc_synth_params p = small(LC_TYPE_F32);
    p.n_embd = 256;
    p.n_head = 2;
    p.n_head_kv = 1; /* head_dim 128 */
    p.n_ff = 64;
    p.rope_theta = 500000.0f;
    p.rope_freqs = true;
    const char *path = tmp_path("rope.gguf");
    CHECK(path);
    CHECK_OK(lc_synth_write(path, &p));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    const gguf_tensor *t = gguf_find_tensor(f, "rope_freqs.weight");
    float got[64];
    bool found = t && t->type == LC_TYPE_F32 && t->ne[0] == 64;
    if (found) memcpy(got, t->data, sizeof got);
    gguf_close(f);
    CHECK(found);
    int n_one = 0, n_eight = 0, n_mid = 0;
    for (int i = 0; i < 64; i++) {
        double freq = pow(500000.0, -(2.0 * i) / 128.0), wavelen = 2 * M_PI / freq, want;
        if (wavelen < 8192.0 / 4) want = 1, n_one++;
        else if (wavelen > 8192.0 / 1) want = 8, n_eight++;
        else {
            double smooth = (8192.0 / wavelen - 1) / (4 - 1);
            want = 1 / ((1 - smooth) / 8 + smooth);
            n_mid++;
        }
        CHECKF(fabs(got[i] - want) <= 1e-5 * want, "factor %d: %.7g, expected %.7g", i, got[i], want);
    }
    CHECK(n_one > 0 && n_eight > 0 && n_mid > 0); /* the test covers all three branches */
    CHECKF(got[0] == 1.0f && got[63] == 8.0f, "ends %g %g", got[0], got[63]);
}

static bool file_bytes(const char *path, unsigned char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(*n);
    bool ok = *out && fread(*out, 1, *n, f) == *n;
    fclose(f);
    return ok;
}

TEST(deterministic_and_seeded) {
    lc_synth_params p = small(LC_TYPE_BF16);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s", tmp_path("det-a.gguf"));
    snprintf(b, sizeof b, "%s", tmp_path("det-b.gguf"));
    CHECK_OK(lc_synth_write(a, &p));
    CHECK_OK(lc_synth_write(b, &p));
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool ok = file_bytes(a, &x, &nx) && file_bytes(b, &y, &ny);
    bool same = ok && nx == ny && !memcmp(x, y, nx);
    free(y);
    y = NULL;
    p.seed = 6;
    CHECK_OK(lc_synth_write(b, &p));
    ok = ok && file_bytes(b, &y, &ny);
    bool differs = ok && (nx != ny || memcmp(x, y, nx) != 0);
    free(x);
    free(y);
    CHECK(ok);
    CHECKF(same, "same params gave different files");
    CHECKF(differs, "another seed gave the same file");
}

/* Weights N(0, w_std), norms 1 + N(0, w_std); a tensor's values depend on its name and the seed only. */
TEST(weight_statistics_and_name_seeding) {
    lc_synth_params p = small(LC_TYPE_F32);
    p.w_std = 0.05f;
    p.n_vocab = 2048;
    const char *pa = tmp_path("stat-a.gguf");
    CHECK(pa);
    CHECK_OK(lc_synth_write(pa, &p));
    gguf_file *fa = NULL, *fb = NULL;
    CHECK_OK(gguf_open(pa, &fa));
    const gguf_tensor *e = gguf_find_tensor(fa, "token_embd.weight");
    const gguf_tensor *nrm = gguf_find_tensor(fa, "blk.0.ffn_norm.weight");
    double s = 0, ss = 0, s4 = 0, ns = 0;
    uint64_t n = e ? e->ne[0] * e->ne[1] : 0;
    for (uint64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, (const char *)e->data + 4 * i, 4);
        s += v;
        ss += (double)v * v;
        s4 += (double)v * v * v * v;
    }
    for (uint64_t i = 0; nrm && i < nrm->ne[0]; i++) {
        float v;
        memcpy(&v, (const char *)nrm->data + 4 * i, 4);
        ns += v;
    }
    double mean = s / (double)n, sd = sqrt(ss / (double)n - mean * mean);
    double kurt = (s4 / (double)n) / ((ss / (double)n) * (ss / (double)n)); /* 3 for a normal distribution */
    double norm_mean = nrm ? ns / (double)nrm->ne[0] : 0;
    /* a copy of the same model with rope_freqs and another theta: token_embd must be byte-identical */
    p.rope_freqs = true;
    p.rope_theta = 500000.0f;
    char pb[256];
    snprintf(pb, sizeof pb, "%s", tmp_path("stat-b.gguf"));
    int r = lc_synth_write(pb, &p);
    bool same = false;
    if (r == 0 && gguf_open(pb, &fb) == 0) {
        const gguf_tensor *e2 = gguf_find_tensor(fb, "token_embd.weight");
        same = e && e2 && e2->size == e->size && !memcmp(e2->data, e->data, e->size);
    }
    gguf_close(fa);
    gguf_close(fb);
    CHECK(n == 64 * 2048);
    /* n = 131072 samples: the standard error of the mean is 0.05/362 = 1.4e-4, of the sd ~1e-4 */
    CHECKF(fabs(mean) < 1e-3, "mean %g", mean);
    CHECKF(fabs(sd - 0.05) < 1e-3, "sd %g (want 0.05)", sd);
    CHECKF(fabs(kurt - 3.0) < 0.1, "kurtosis %g (want 3: normal)", kurt);
    CHECKF(fabs(norm_mean - 1.0) < 0.02, "norm gain mean %g (want 1)", norm_mean);
    CHECKF(same, "token_embd changed when only rope_freqs/theta changed");
}

/* Q8_0 and F16 files hold the F32 file's weights, rounded: dequantized, within each format's step. */
TEST(quantized_types_hold_the_same_weights) {
    lc_synth_params p = small(LC_TYPE_F32);
    char pf[256];
    snprintf(pf, sizeof pf, "%s", tmp_path("q-f32.gguf"));
    CHECK_OK(lc_synth_write(pf, &p));
    const int types[] = {LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0};
    /* relative L2 error of the rounding: F16 2^-11, BF16 2^-8, Q8_0 ~ (amax/127)/sqrt(12) over sd ~ 1/127 */
    const double tol[] = {1e-3, 5e-3, 1.5e-2};
    for (int k = 0; k < 3; k++) {
        p.wtype = types[k];
        char pq[256];
        snprintf(pq, sizeof pq, "%s", tmp_path("q-x.gguf"));
        CHECK_OK(lc_synth_write(pq, &p));
        gguf_file *ff = NULL, *fq = NULL;
        CHECK_OK(gguf_open(pf, &ff));
        if (gguf_open(pq, &fq) != 0) { gguf_close(ff); FAILF("gguf_open(%s): %s", pq, lc_last_error()); }
        const gguf_tensor *a = gguf_find_tensor(ff, "blk.1.ffn_down.weight");
        const gguf_tensor *b = gguf_find_tensor(fq, "blk.1.ffn_down.weight");
        bool ok = a && b && b->type == (uint32_t)types[k] && a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1];
        double d2 = 0, r2 = 0;
        if (ok) {
            int64_t n = (int64_t)(a->ne[0] * a->ne[1]);
            float *x = malloc(sizeof(float) * (size_t)n);
            lc_dequantize_row(types[k], b->data, x, n);
            for (int64_t i = 0; i < n; i++) {
                float w;
                memcpy(&w, (const char *)a->data + 4 * i, 4);
                d2 += ((double)x[i] - w) * ((double)x[i] - w);
                r2 += (double)w * w;
            }
            free(x);
        }
        gguf_close(ff);
        gguf_close(fq);
        CHECKF(ok, "%s: tensor missing or wrong type", lc_type_name(types[k]));
        double rel = sqrt(d2 / r2);
        CHECKF(rel < tol[k] && rel > 0, "%s: rel error %.3g vs the F32 file (want (0, %.1g))", lc_type_name(types[k]),
               rel, tol[k]);
    }
}

TEST(invalid_params_rejected) {
    const char *path = tmp_path("bad.gguf");
    CHECK(path);
    lc_synth_params p = small(LC_TYPE_Q8_0);
    p.n_embd = 48; /* not a multiple of the Q8_0 block */
    p.n_head = 3;
    p.n_head_kv = 3;
    CHECK_EQ_INT(lc_synth_write(path, &p), LC_E_INVALID);
    p = small(LC_TYPE_F32);
    p.n_vocab = 100; /* fewer than 3 control + 256 byte tokens */
    CHECK_EQ_INT(lc_synth_write(path, &p), LC_E_INVALID);
    p = small(LC_TYPE_F32);
    p.n_head_kv = 3; /* 4 heads do not split into 3 groups */
    CHECK_EQ_INT(lc_synth_write(path, &p), LC_E_INVALID);
    p = small(LC_TYPE_Q4_0);
    CHECK_EQ_INT(lc_synth_write(path, &p), LC_E_INVALID);
    CHECK(strstr(lc_last_error(), "Q4_0") != NULL);
    CHECK_EQ_INT(lc_synth_write(NULL, &p), LC_E_INVALID);
    CHECK(access(path, F_OK) != 0); /* nothing written */
}

/* The weights read into anonymous memory (the default) or mapped (use_mmap) are the same bytes: same logits. With
** the copy, a kernel variant that reads the r8 layout of the type gets the matrices repacked (kernels.h); the mapped
** file is used as stored. Prompt (GEMM) and decode (GEMV) logits must be bit-identical either way; the output matrix
** has 300 rows, so its last group of 4 (12 for the float layout's groups of 32) stays row by row. */
TEST(model_copied_or_mapped_same_logits) {
    /* the third and fourth with the output tied (Q6_K: the tied embeddings of a Q4_K_M file); F16 and BF16 in groups
    ** of 32 rows (the last tied) */
    const int types[] = {LC_TYPE_Q8_0, LC_TYPE_Q4_0, LC_TYPE_Q8_0, LC_TYPE_Q6_K, LC_TYPE_F16, LC_TYPE_BF16};
    for (int ti = 0; ti < 6; ti++) {
        const bool requant = types[ti] == LC_TYPE_Q4_0 || types[ti] == LC_TYPE_Q6_K;
        lc_synth_params p = small(requant ? LC_TYPE_F32 : types[ti]);
        p.tied_output = ti == 2 || ti == 3 || ti == 5;
        if (types[ti] == LC_TYPE_Q6_K) p.n_embd = 256, p.n_ff = 512; /* whole 256-element blocks */
        char path[512], f32[512]; /* tmp_path's buffer is reused */
        snprintf(path, sizeof path, "%s", tmp_path("load-modes.gguf"));
        snprintf(f32, sizeof f32, "%s", tmp_path("load-modes-f32.gguf"));
        if (requant) { /* lc_synth_write has no Q4_0 or Q6_K: quantized as llama-quantize would */
            CHECK_OK(lc_synth_write(f32, &p));
            lc_quantize_params qp = lc_quantize_default_params();
            qp.ftype = types[ti] == LC_TYPE_Q4_0 ? LC_FTYPE_Q4_0 : LC_FTYPE_Q6_K;
            CHECK_OK(lc_quantize_file(f32, path, &qp, NULL));
        } else {
            CHECK_OK(lc_synth_write(path, &p));
        }
        float *logits[2] = {NULL, NULL};
        for (int mode = 0; mode < 2; mode++) {
            lc_model_params mp = lc_model_default_params();
            mp.use_mmap = mode == 1;
            lc_model *m = NULL;
            lc_context *c = NULL;
            CHECK_OK(lc_model_load(path, &mp, &m));
            if (!m) return;
            CHECKF(m->file->copied == (mode == 0), "mode %d: copied = %d", mode, (int)m->file->copied);
            const lc_weight *wd = &m->layers[1].w_down, *wo = &m->output;
            CHECK_EQ_INT(wd->type, types[ti]);
            const lc_kernels *k = lc_kernels_get();
            const bool want_r8 =
                mode == 0 && k->gemm_r8[types[ti]] != NULL && lc__r8_packs(wd->type, (int64_t)wd->ne[0]);
            const bool want_o = mode == 0 && k->gemm_r8[wo->type] != NULL && lc__r8_packs(wo->type, (int64_t)wo->ne[0]);
            /* the token embeddings are repacked only as the tied output (their lookups read through the layout) */
            CHECKF(wd->r8 == want_r8 && wo->r8 == want_o && m->tok_embd.r8 == (p.tied_output && want_o),
                   "%s%s mode %d: r8 %d %d %d, want %d %d", lc_type_name(types[ti]), p.tied_output ? " tied" : "", mode,
                   (int)wd->r8, (int)wo->r8, (int)m->tok_embd.r8, (int)want_r8, (int)want_o);
            CHECK_OK(lc_context_new(m, NULL, &c));
            int32_t tok[5] = {1, 17, 42, 299, 3}, next = 77;
            lc_batch b = {.n_tokens = 5, .token = tok};
            CHECK_OK(lc_decode(c, &b));
            logits[mode] = malloc(2 * p.n_vocab * sizeof(float));
            const float *l = lc_get_logits(c, 4); /* the last row: the only one with logits */
            CHECK(l != NULL);
            if (l && logits[mode]) memcpy(logits[mode], l, p.n_vocab * sizeof(float));
            int32_t pos = 5;
            lc_batch b1 = {.n_tokens = 1, .token = &next, .pos = &pos};
            CHECK_OK(lc_decode(c, &b1));
            l = lc_get_logits(c, 0);
            CHECK(l != NULL);
            if (l && logits[mode]) memcpy(logits[mode] + p.n_vocab, l, p.n_vocab * sizeof(float));
            lc_context_free(c);
            lc_model_free(m);
        }
        CHECKF(logits[0] && logits[1] && !memcmp(logits[0], logits[1], 2 * p.n_vocab * sizeof(float)),
               "%s: the logits differ", lc_type_name(types[ti]));
        free(logits[0]);
        free(logits[1]);
    }
}

/* The forward deals matmul rows to threads in chunks from a shared counter (forward.c); the logits of a prompt
** batch and of the decode steps after it must not depend on the thread count nor on who took which chunk. */
TEST(logits_same_for_any_thread_count) {
    lc_synth_params p = small(LC_TYPE_Q8_0);
    p.n_embd = 256, p.n_ff = 512, p.n_vocab = 4096; /* output matrix 1.1 MB: several chunks per matmul */
    const char *path = tmp_path("threads.gguf");
    CHECK_OK(lc_synth_write(path, &p));
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(path, NULL, &m));
    if (!m) return;
    enum { N_PROMPT = 7, N_GEN = 3, N_ROWS = N_PROMPT + N_GEN };
    const size_t V = p.n_vocab;
    float *ref = malloc(N_ROWS * V * sizeof(float)), *got = malloc(N_ROWS * V * sizeof(float));
    CHECK(ref && got);
    const int threads[] = {1, 2, 3, 5};
    for (size_t ti = 0; ref && got && ti < sizeof threads / sizeof *threads; ti++) {
        lc_context_params cp = lc_context_default_params();
        cp.n_ctx = 64, cp.n_threads = threads[ti];
        lc_context *c = NULL;
        CHECK_OK(lc_context_new(m, &cp, &c));
        if (!c) break;
        float *out = ti == 0 ? ref : got;
        int32_t tok[N_PROMPT] = {1, 900, 17, 4095, 256, 3, 2048};
        int8_t want[N_PROMPT] = {1, 1, 1, 1, 1, 1, 1};
        lc_batch b = {.n_tokens = N_PROMPT, .token = tok, .logits = want};
        CHECK_OK(lc_decode(c, &b));
        for (int i = 0; i < N_PROMPT; i++) {
            const float *l = lc_get_logits(c, i);
            CHECK(l != NULL);
            if (l) memcpy(out + i * V, l, V * sizeof(float));
        }
        for (int g = 0; g < N_GEN; g++) {
            int32_t t1 = 100 + 37 * g;
            lc_batch b1 = {.n_tokens = 1, .token = &t1};
            CHECK_OK(lc_decode(c, &b1));
            const float *l = lc_get_logits(c, 0);
            CHECK(l != NULL);
            if (l) memcpy(out + (N_PROMPT + g) * V, l, V * sizeof(float));
        }
        if (ti > 0) CHECKF(!memcmp(ref, got, N_ROWS * V * sizeof(float)), "%d threads: logits differ from 1 thread",
                           threads[ti]);
        lc_context_free(c);
    }
    free(ref);
    free(got);
    lc_model_free(m);
}

int main(void) {
    RUN(keys_match_params);
    RUN(tensors_named_and_shaped_as_llama_cpp_expects);
    RUN(rope_freqs_follow_llama3_formula);
    RUN(deterministic_and_seeded);
    RUN(weight_statistics_and_name_seeding);
    RUN(quantized_types_hold_the_same_weights);
    RUN(invalid_params_rejected);
    RUN(model_copied_or_mapped_same_logits);
    RUN(logits_same_for_any_thread_count);
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return TEST_SUMMARY();
}
