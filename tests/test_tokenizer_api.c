/* test_tokenizer_api.c - the public tokenizer API without a model (lc_tokenizer_* in llamac.h): loading every kind
** of tokenizer file by its content, finding tokenizer_config.json beside a tokenizer.json, a model's own tokenizer,
** BOS defaults as llama.cpp sets them, token bytes, and errors that name the file.
**
** Expected ids come from references nobody here wrote: the .jsonl files of ../shared/data/tokenizer (SentencePiece,
** Hugging Face tokenizers) and the stories260K prompt ids llama.cpp and llama2.c agree on (stories260K, PROVENANCE.md). The BOS
** default of a "llama-bpe" GGUF without tokenizer.ggml.add_bos_token is llama.cpp's (src/llama-vocab.cpp, load():
** pre-tokenizer "llama3"/"llama-v3"/"llama-bpe" sets add_bos = true; only the key overrides it).
*/
#include "harness.h"
#include "llamac.h"

#include "../src/gguf/gguf.h"
#include "../src/tokenizer/tokenizer.h"

#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation" /* long paths in messages may be cut; that is fine */
#endif

static char g_tmp[256];

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmp, name); }

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = n == 0 || fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static bool copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) return false;
    FILE *g = fopen(to, "wb");
    bool ok = g != NULL;
    char buf[1 << 16];
    size_t k;
    while (ok && (k = fread(buf, 1, sizeof buf, f)) > 0) ok = fwrite(buf, 1, k, g) == k;
    fclose(f);
    return g && fclose(g) == 0 && ok;
}

static bool ids_are(const lc_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n_want) {
    int32_t ids[64];
    size_t n = 0;
    if (lc_tokenizer_tokenize(t, text, strlen(text), flags, ids, 64, &n)) return false;
    return n == n_want && !memcmp(ids, want, n * sizeof *ids);
}

TEST(spm_model_and_token_bytes) {
    const char *d = th_shared_dir();
    if (!d) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/llama2.tokenizer.model", d);
    lc_tokenizer *t = NULL;
    CHECK_OK(lc_tokenizer_load(path, NULL, &t));
    CHECK_EQ_INT(lc_tokenizer_n_vocab(t), 32000);
    CHECK(lc_tokenizer_add_bos(t) && lc_tokenizer_bos(t) == 1 && lc_tokenizer_eos(t) == 2);
    CHECK(lc_tokenizer_is_eog(t, 2) && !lc_tokenizer_is_eog(t, 1));
    CHECK(lc_tokenizer_is_control(t, 1) && lc_tokenizer_is_control(t, 0) && !lc_tokenizer_is_control(t, 15043));
    /* llama2.jsonl line 0 */
    CHECK(ids_are(t, "Hello world", LC_TOK_ADD_BOS, (const int32_t[]){1, 15043, 3186}, 3));
    size_t len = 0;
    CHECK(!strcmp(lc_tokenizer_piece(t, 15043, &len), "\xE2\x96\x81Hello") && len == 8);
    CHECK(lc_tokenizer_piece(t, 32000, &len) == NULL && len == 0);
    /* token bytes: U+2581 is a space (kept: no text start here), <0xF0> the byte alone, control tokens as text */
    char b[64];
    CHECK_EQ_INT(lc_tokenizer_token_bytes(t, 15043, b, sizeof b), 6);
    CHECK(!memcmp(b, " Hello", 6));
    CHECK_EQ_INT(lc_tokenizer_token_bytes(t, 243, b, sizeof b), 1); /* <0xF0>: 243 = 0xF0 + 3 */
    CHECK((unsigned char)b[0] == 0xF0);
    CHECK_EQ_INT(lc_tokenizer_token_bytes(t, 1, b, sizeof b), 3);
    CHECK(!memcmp(b, "<s>", 3));
    CHECK_EQ_INT(lc_tokenizer_token_bytes(t, 15043, b, 5), LC_E_RANGE);
    CHECK_EQ_INT(lc_tokenizer_token_bytes(t, -1, b, sizeof b), LC_E_RANGE);
    CHECK_EQ_INT(lc_tokenizer_token_bytes(t, 32000, b, sizeof b), LC_E_RANGE);
    lc_tokenizer_free(t);
}

/* tokenizer_config.json is found beside tokenizer.json (X.tokenizer_config.json next to X.tokenizer.json, or the
** directory's tokenizer_config.json), and "" means none: Llama 3.1's config says EOS is <|eot_id|> (128009); without
** it nothing names an EOS. BOS comes from the config, else from the post-processor's template. */
TEST(hf_json_config_lookup) {
    const char *d = th_shared_dir();
    if (!d) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char tok[4096], cfg[4096], tok2[512], cfg2[512];
    snprintf(tok, sizeof tok, "%s/tokenizer/llama3_1.tokenizer.json", d);
    snprintf(cfg, sizeof cfg, "%s/tokenizer/llama3_1.tokenizer_config.json", d);
    lc_tokenizer *t = NULL;
    CHECK_OK(lc_tokenizer_load(tok, NULL, &t));
    CHECK(lc_tokenizer_eos(t) == 128009 && lc_tokenizer_bos(t) == 128000 && lc_tokenizer_add_bos(t));
    /* llama3_1.jsonl line 0 */
    CHECK(ids_are(t, "Hello world", LC_TOK_ADD_BOS, (const int32_t[]){128000, 9906, 1917}, 3));
    lc_tokenizer_free(t);
    CHECK_OK(lc_tokenizer_load(tok, "", &t));
    CHECK(lc_tokenizer_eos(t) == -1 && lc_tokenizer_bos(t) == 128000 && lc_tokenizer_add_bos(t));
    lc_tokenizer_free(t);
    /* plain names in a directory of their own */
    tmp_path(tok2, sizeof tok2, "tokenizer.json");
    tmp_path(cfg2, sizeof cfg2, "tokenizer_config.json");
    CHECK(copy_file(tok, tok2) && copy_file(cfg, cfg2));
    CHECK_OK(lc_tokenizer_load(tok2, NULL, &t));
    CHECK_EQ_INT(lc_tokenizer_eos(t), 128009);
    lc_tokenizer_free(t);
    /* a broken config is an error naming the config, not the tokenizer.json */
    CHECK(write_file(cfg2, "{\"eos_token\": ", 14));
    CHECK_EQ_INT(lc_tokenizer_load(tok2, NULL, &t), LC_E_FORMAT);
    CHECKF(strstr(lc_last_error(), cfg2) != NULL, "%s", lc_last_error());
    CHECK(t == NULL);
    unlink(tok2);
    unlink(cfg2);
}

/* llama2.c tokenizer.bin: the token count is the number of records. A file whose max_token_length is 123 starts
** with '{' and is still read as a tokenizer.bin, not as JSON. */
TEST(llama2c_bin) {
    const char *d = th_shared_dir();
    if (d) {
        char path[4096];
        snprintf(path, sizeof path, "%s/stories260K/tok512.bin", d);
        lc_tokenizer *t = NULL;
        CHECK_OK(lc_tokenizer_load(path, NULL, &t));
        CHECK_EQ_INT(lc_tokenizer_n_vocab(t), 512);
        CHECK(lc_tokenizer_add_bos(t));
        CHECK(ids_are(t, "Once upon a time", LC_TOK_ADD_BOS, (const int32_t[]){1, 403, 407, 261, 378}, 5));
        lc_tokenizer_free(t);
    }
    /* 4 records: <unk>, <s>, </s> (their text is fixed by the format), "a" */
    uint8_t bin[4 + 4 * 8 + 1] = {123, 0, 0, 0};
    size_t off = 4;
    for (int i = 0; i < 4; i++) {
        memset(bin + off, 0, 8); /* score 0.0 */
        bin[off + 4] = i == 3 ? 1 : 0;
        off += 8;
        if (i == 3) bin[off++] = 'a';
    }
    char path[512];
    tmp_path(path, sizeof path, "brace.dat");
    CHECK(write_file(path, bin, off));
    lc_tokenizer *t = NULL;
    CHECK_OK(lc_tokenizer_load(path, NULL, &t));
    CHECK_EQ_INT(lc_tokenizer_n_vocab(t), 4);
    lc_tokenizer_free(t);
    /* one byte short: a .bin says where its records break (the fourth record, at 4 + 3 * 8) */
    tmp_path(path, sizeof path, "short.bin");
    CHECK(write_file(path, bin, off - 1));
    CHECK_EQ_INT(lc_tokenizer_load(path, NULL, &t), LC_E_FORMAT);
    CHECKF(strstr(lc_last_error(), path) && strstr(lc_last_error(), "offset 28:"), "%s", lc_last_error());
    unlink(path);
    tmp_path(path, sizeof path, "brace.dat");
    unlink(path);
}

/* A vocab-only GGUF (no tensors) of a byte-level BPE with pre-tokenizer "llama-bpe": BOS by default as llama.cpp
** (add_bos = true for that pre-tokenizer), unless tokenizer.ggml.add_bos_token says otherwise. */
static int write_bpe_gguf(const char *path, int add_bos_key) {
    char pieces[257][4];
    const char *p[257];
    int32_t types[257];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lc__bpe_byte_to_cp((uint8_t)b);
        if (cp < 0x80) pieces[b][0] = (char)cp, pieces[b][1] = 0;
        else pieces[b][0] = (char)(0xC0 | cp >> 6), pieces[b][1] = (char)(0x80 | (cp & 0x3F)), pieces[b][2] = 0;
        p[b] = pieces[b], types[b] = LC_TOKTYPE_NORMAL;
    }
    p[256] = "<|begin_of_text|>", types[256] = LC_TOKTYPE_CONTROL;
    gguf_writer *w = gguf_writer_new();
    const char *no_merges[1] = {NULL};
    int r = !w || gguf_writer_set_str(w, "general.architecture", "llama") ||
            gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") ||
            gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe") ||
            gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", p, 257) ||
            gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, 257) ||
            gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", no_merges, 0) ||
            gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 256);
    if (!r && add_bos_key >= 0) r = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos_key == 1);
    if (!r) r = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return r ? -1 : 0;
}

TEST(vocab_only_gguf_bos_default) {
    char path[512];
    tmp_path(path, sizeof path, "vocab.gguf");
    const int keys[] = {-1, 1, 0};
    const bool want[] = {true, true, false};
    for (int k = 0; k < 3; k++) {
        CHECKF(write_bpe_gguf(path, keys[k]) == 0, "writing %s: %s", path, lc_last_error());
        lc_tokenizer *t = NULL;
        CHECK_OK(lc_tokenizer_load(path, NULL, &t));
        CHECK_EQ_INT(lc_tokenizer_n_vocab(t), 257);
        CHECKF(lc_tokenizer_add_bos(t) == want[k], "add_bos_token key %d: add_bos %d", keys[k], lc_tokenizer_add_bos(t));
        /* no merges: every byte its own token; BOS first when asked */
        CHECK(ids_are(t, "Hi", LC_TOK_ADD_BOS, (const int32_t[]){256, 'H', 'i'}, 3));
        lc_tokenizer_free(t);
    }
    unlink(path);
}

/* A model's tokenizer is the same object the model tokenizes with; a checkpoint without one has none. */
TEST(model_tokenizer) {
    const char *d = th_shared_dir();
    if (!d) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char path[4096];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", d);
    lc_model *m = NULL;
    CHECK_OK(lc_model_load(path, NULL, &m));
    const lc_tokenizer *t = lc_model_tokenizer(m);
    CHECK(t != NULL);
    CHECK(ids_are(t, "Once upon a time", LC_TOK_ADD_BOS, (const int32_t[]){1, 403, 407, 261, 378}, 5));
    CHECK(lc_tokenizer_n_vocab(t) == lc_model_hparams(m)->n_vocab);
    lc_model_free(m);
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", d); /* no tokenizer.bin beside it */
    CHECK_OK(lc_model_load(path, NULL, &m));
    CHECK(lc_model_tokenizer(m) == NULL);
    lc_model_free(m);
    CHECK(lc_model_tokenizer(NULL) == NULL);
}

/* Errors name the file; nothing is returned on failure. */
TEST(load_errors) {
    lc_tokenizer *t = (lc_tokenizer *)&t; /* must be reset to NULL */
    CHECK_EQ_INT(lc_tokenizer_load("/nonexistent/tokenizer.model", NULL, &t), LC_E_IO);
    CHECK(t == NULL && strstr(lc_last_error(), "/nonexistent/tokenizer.model"));
    CHECK_EQ_INT(lc_tokenizer_load(NULL, NULL, &t), LC_E_INVALID);
    char path[512];
    static const struct { const char *name; const char *data; size_t n; int status; } bad[] = {
        {"empty.model", "", 0, LC_E_FORMAT},
        {"garbage.txt", "hello, world", 12, LC_E_FORMAT},
        {"unigram.json", "{\"model\": {\"type\": \"Unigram\"}}", 30, LC_E_UNSUPPORTED},
        {"trunc.gguf", "GGUF\x03\x00\x00\x00", 8, LC_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tmp_path(path, sizeof path, bad[i].name);
        CHECK(write_file(path, bad[i].data, bad[i].n));
        int r = lc_tokenizer_load(path, NULL, &t);
        CHECKF(r == bad[i].status, "%s: status %d (%s)", bad[i].name, r, lc_last_error());
        CHECKF(t == NULL && strstr(lc_last_error(), path), "%s: %s", bad[i].name, lc_last_error());
        unlink(path);
    }
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/llamac-test-tokapi-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    setenv("LLAMAC_LOG", "0", 0); /* the checkpoint without tokenizer.bin warns */
    RUN(spm_model_and_token_bytes);
    RUN(hf_json_config_lookup);
    RUN(llama2c_bin);
    RUN(vocab_only_gguf_bos_default);
    RUN(model_tokenizer);
    RUN(load_errors);
    rmdir(g_tmp);
    return TEST_SUMMARY();
}
