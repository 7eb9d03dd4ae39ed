/* test_bpe.c - byte-level BPE (Llama 3 / 3.1) and its pre-tokenizer, against references nobody here wrote.
**
** ../shared/data/tokenizer/llama3_1.jsonl holds the ids Hugging Face tokenizers (@lenml/tokenizers 3.7.2) give for
** the corpus with Meta's Llama 3.1 tokenizer.json: "ids" (special-token text parsed), "ids_bos" ([128000] + ids),
** "ids_special_as_text" where special-token text stays plain text, "decoded" (specials shown). The pre-tokenizer's
** cuts are checked on hand-derived cases of the regex in the tokenizer.json.
*/
#include "harness.h"
#include "llamac.h"

#include "../src/gguf/gguf.h"
#include "../src/tokenizer/json.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/tokenizer/unicode.h"
#include "tok_jsonl.h"

#include <unistd.h>

static char g_path[8192], g_path2[8192];

static const char *data_path(char *buf, const char *rel) {
    const char *d = th_shared_dir();
    if (!d) return NULL;
    snprintf(buf, sizeof g_path, "%s/%s", d, rel);
    return buf;
}

static int first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i == na && i == nb ? -1 : (int)i;
}

static int tokenize(const lc_vocab *v, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n) {
    size_t need = 0;
    *ids = NULL;
    *n = 0;
    int r = lc_vocab_tokenize(v, text, len, flags, NULL, 0, &need);
    if (r && r != LC_E_RANGE) return r;
    *ids = malloc((need ? need : 1) * sizeof **ids);
    return lc_vocab_tokenize(v, text, len, flags, *ids, need, n);
}

static char *detok_all(const lc_vocab *v, const int32_t *ids, size_t n, bool show_special, size_t *out_len) {
    size_t cap = 256, len = 0;
    char *s = malloc(cap);
    lc_detok d;
    lc_detok_init(&d, show_special);
    for (size_t i = 0; i <= n; i++) {
        char buf[1024];
        int k = i < n ? lc_vocab_detok_push(v, &d, ids[i], buf, sizeof buf) : lc_detok_flush(&d, buf, sizeof buf);
        if (k < 0) { free(s); return NULL; }
        while (len + (size_t)k + 1 > cap) s = realloc(s, cap *= 2);
        memcpy(s + len, buf, (size_t)k);
        len += (size_t)k;
    }
    s[len] = 0;
    *out_len = len;
    return s;
}

/* Words of the pre-tokenizer joined with '|'. */
static void split_str(const char *text, char *out, size_t cap) {
    size_t ends[64], len = strlen(text);
    size_t k = lc__llama3_split(text, len, ends, 64), o = 0, start = 0;
    for (size_t i = 0; i < k && i < 64; i++) {
        if (i && o + 1 < cap) out[o++] = '|';
        for (size_t b = start; b < ends[i] && o + 1 < cap; b++) out[o++] = text[b];
        start = ends[i];
    }
    out[o] = 0;
}

/* Each expectation follows from the regex's alternatives (tried in order, greedy, with backtracking). */
TEST(llama3_pretokenizer) {
    static const struct { const char *in, *out; } cases[] = {
        {"Hello world", "Hello| world"},
        {"I'm you're THEY'LL it's", "I|'m| you|'re| THEY|'LL| it|'s"},
        {"don't", "don|'t"},
        {"'x", "'x"},                         /* not a contraction: [^\r\n\p{L}\p{N}]?\p{L}+ */
        {"12345678", "123|456|78"},           /* \p{N}{1,3} */
        {"a 1", "a| |1"},                     /* " 1": the space is not [^\s\p{L}\p{N}] */
        {"x  y", "x| | y"},                   /* \s+(?!\S) leaves the last space to the word */
        {"x   ", "x|   "},                    /* at the end, the whole run */
        {"a\n\nb", "a|\n\n|b"},               /* \s*[\r\n]+ */
        {"a \n b", "a| \n| b"},
        {" ...\n\nx", " ...\n\n|x"},          /* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
        {"\tword", "\tword"},                 /* the optional non-letter may be a tab */
        {"\xC3\xA9t\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87", "\xC3\xA9t\xC3\xA9| \xE4\xB8\xAD\xE6\x96\x87"},
        {"\xD9\xA3\xD9\xA4", "\xD9\xA3\xD9\xA4"}, /* Arabic-Indic digits are \p{N} */
        {"a\xFF" "b", "a|\xFF" "b"},          /* a stray byte is a non-letter character */
        {"'\xC5\xBF", "'\xC5\xBF"},           /* U+017F folds to s: the contraction 's */
    };
    char got[256];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        split_str(cases[k].in, got, sizeof got);
        CHECKF(!strcmp(got, cases[k].out), "case %zu: \"%s\" split as \"%s\", want \"%s\"", k, cases[k].in, got,
               cases[k].out);
    }
}

TEST(unicode_classes) {
    CHECK_EQ_INT(lc_uclass('a'), LC_UCLASS_LETTER);
    CHECK_EQ_INT(lc_uclass('7'), LC_UCLASS_NUMBER);
    CHECK_EQ_INT(lc_uclass(' '), LC_UCLASS_SPACE);
    CHECK_EQ_INT(lc_uclass(0x85), LC_UCLASS_SPACE); /* NEL is White_Space */
    CHECK_EQ_INT(lc_uclass(0x3000), LC_UCLASS_SPACE);
    CHECK_EQ_INT(lc_uclass(0x4E2D), LC_UCLASS_LETTER); /* 中 */
    CHECK_EQ_INT(lc_uclass(0x2167), LC_UCLASS_NUMBER); /* Ⅷ, Nl */
    CHECK_EQ_INT(lc_uclass(0x0301), 0);                /* a combining mark is neither */
    CHECK_EQ_INT(lc_uclass(0x1F600), 0);
    CHECK_EQ_INT(lc_uclass(0x20000), LC_UCLASS_LETTER); /* CJK Extension B, a <..., First> range */
    CHECK(strlen(lc__unicode_version) >= 5);
}

static lc_vocab *g_l3;

static lc_vocab *llama31(void) {
    if (g_l3) return g_l3;
    const char *t = data_path(g_path, "tokenizer/llama3_1.tokenizer.json");
    const char *c = data_path(g_path2, "tokenizer/llama3_1.tokenizer_config.json");
    if (!t || lc_vocab_from_hf_json(t, c, &g_l3)) return NULL;
    return g_l3;
}

TEST(llama31_vocab) {
    if (!th_shared_dir()) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    lc_vocab *v = llama31();
    if (!v) FAILF("loading llama3_1.tokenizer.json: %s", lc_last_error());
    CHECK_EQ_INT(lc_vocab_n(v), 128256);
    CHECK_EQ_INT(lc_vocab_bos(v), 128000);
    CHECK_EQ_INT(lc_vocab_eos(v), 128009); /* the config's eos_token: <|eot_id|> */
    CHECK(lc_vocab_add_bos(v) && !lc_vocab_add_eos(v));
    CHECK(lc_vocab_is_eog(v, 128009) && lc_vocab_is_eog(v, 128008) && lc_vocab_is_eog(v, 128001));
    CHECK(!lc_vocab_is_eog(v, 128000) && !lc_vocab_is_eog(v, 128006));
    CHECK_EQ_INT(lc_vocab_type(v, 128006), LC_TOKTYPE_CONTROL);
    CHECK_EQ_INT(lc_vocab_get_kind(v), LC_VOCAB_BPE);
}

/* Every line of llama3_1.jsonl: ids with specials parsed, with BOS, with specials as text, and the decode. */
static void check_corpus(lc_vocab *v, char *err, size_t err_cap) {
    err[0] = 0;
    FILE *fp = fopen(data_path(g_path, "tokenizer/llama3_1.jsonl"), "r");
    if (!fp) { snprintf(err, err_cap, "cannot open llama3_1.jsonl"); return; }
    static char line[1 << 20];
    int n_lines = 0, bad[4] = {0};
    char first_bad[4][200] = {"", "", "", ""};
    while (fgets(line, sizeof line, fp)) {
        size_t len = 0, n_dec = 0, nw[3] = {0}, n = 0;
        char *text = json_str(line, "text", &len), *dec = json_str(line, "decoded", &n_dec);
        int32_t *want[3] = {json_ids(line, "ids", &nw[0]), json_ids(line, "ids_bos", &nw[1]),
                            json_ids(line, "ids_special_as_text", &nw[2])};
        n_lines++;
        if (!want[2]) want[2] = json_ids(line, "ids", &nw[2]);
        const unsigned flags[3] = {LC_TOK_PARSE_SPECIAL, LC_TOK_PARSE_SPECIAL | LC_TOK_ADD_BOS, 0};
        for (int m = 0; m < 3; m++) {
            int32_t *ids;
            int r = tokenize(v, text, len, flags[m], &ids, &n);
            int at = r ? 0 : first_diff(ids, n, want[m], nw[m]);
            if ((r || at >= 0) && !bad[m]++)
                snprintf(first_bad[m], sizeof first_bad[m], "line %d \"%.50s\": status %d, at %d: %d vs %d", n_lines,
                         text, r, at, !r && (size_t)at < n ? ids[at] : -1, (size_t)at < nw[m] ? want[m][at] : -1);
            if (m == 0 && !r) { /* decode with specials shown gives the text back */
                size_t out_len = 0;
                char *back = detok_all(v, ids, n, true, &out_len);
                if ((!back || out_len != n_dec || memcmp(back, dec, n_dec)) && !bad[3]++)
                    snprintf(first_bad[3], sizeof first_bad[3], "line %d \"%.50s\"", n_lines, text);
                free(back);
            }
            free(ids);
        }
        free(text), free(dec), free(want[0]), free(want[1]), free(want[2]);
    }
    fclose(fp);
    if (n_lines != 328) snprintf(err, err_cap, "%d lines, want 328", n_lines);
    else if (bad[0]) snprintf(err, err_cap, "special parsed: %d lines differ; first %s", bad[0], first_bad[0]);
    else if (bad[1]) snprintf(err, err_cap, "with BOS: %d lines differ; first %s", bad[1], first_bad[1]);
    else if (bad[2]) snprintf(err, err_cap, "special as text: %d lines differ; first %s", bad[2], first_bad[2]);
    else if (bad[3]) snprintf(err, err_cap, "decode: %d lines differ; first %s", bad[3], first_bad[3]);
}

TEST(llama31_corpus) {
    if (!th_shared_dir()) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    lc_vocab *v = llama31();
    if (!v) FAILF("loading llama3_1.tokenizer.json: %s", lc_last_error());
    char err[600];
    check_corpus(v, err, sizeof err);
    CHECKF(!err[0], "%s", err);
}

/* The same vocabulary through GGUF (tokenizer.ggml.model "gpt2", written as llama.cpp's converter does: tokens,
** token_type, merges, pre "llama-bpe", the special ids) gives the same ids. */
TEST(llama31_via_gguf) {
    if (!th_shared_dir()) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    lc_vocab *v = llama31();
    if (!v) FAILF("loading llama3_1.tokenizer.json: %s", lc_last_error());
    uint8_t *buf;
    size_t size;
    CHECK_OK(lc__read_file(data_path(g_path, "tokenizer/llama3_1.tokenizer.json"), &buf, &size, (size_t)1 << 30));
    lc_json *j = NULL;
    int r = lc__json_parse((const char *)buf, size, "tokenizer.json", &j);
    lc__free(buf);
    CHECK_OK(r);
    const lc_jnode *merges = lc__json_get(j, lc__json_get(j, lc__json_root(j), "model"), "merges");
    uint32_t n = lc_vocab_n(v), n_merges = merges ? merges->n : 0;
    const char **pieces = malloc(n * sizeof *pieces), **mt = malloc(n_merges * sizeof *mt);
    int32_t *types = malloc(n * sizeof *types);
    for (uint32_t id = 0; id < n; id++) pieces[id] = lc_vocab_piece(v, (int32_t)id), types[id] = lc_vocab_type(v, (int32_t)id);
    uint32_t k = 0;
    for (const lc_jnode *m = lc__json_first(j, merges); m; m = lc__json_next(j, m)) mt[k++] = lc__json_str(j, m);
    char path[64];
    snprintf(path, sizeof path, "/tmp/llamac-bpe-%d.gguf", (int)getpid());
    gguf_writer *w = gguf_writer_new();
    bool ok = w && !gguf_writer_set_str(w, "general.architecture", "llama") &&
              !gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2") &&
              !gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe") &&
              !gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", pieces, n) &&
              !gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, n) &&
              !gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", mt, n_merges) &&
              !gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 128000) &&
              !gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 128009) &&
              !gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) && !gguf_writer_write(w, path);
    gguf_writer_free(w);
    free(pieces), free(mt), free(types);
    lc__json_free(j);
    CHECKF(ok, "writing %s: %s", path, lc_last_error());
    gguf_file *f = NULL;
    lc_vocab *g = NULL;
    r = gguf_open(path, &f);
    if (!r) r = lc_vocab_from_gguf(f, &g);
    gguf_close(f);
    remove(path);
    CHECK_OK(r);
    CHECK(lc_vocab_bos(g) == 128000 && lc_vocab_eos(g) == 128009 && lc_vocab_add_bos(g));
    char err[600];
    check_corpus(g, err, sizeof err);
    lc_vocab_free(g);
    CHECKF(!err[0], "%s", err);
}

/* A tiny byte-level vocabulary: the 256 byte stand-ins, then the pieces below, merges in rank order. */
static lc_vocab *tiny(bool ignore_merges, const char *const *extra, int n_extra, const char *const *merges,
                      int n_merges) {
    static char bytes[256][4];
    const char *pieces[300];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lc__bpe_byte_to_cp((uint8_t)b);
        if (cp < 0x80) bytes[b][0] = (char)cp, bytes[b][1] = 0;
        else bytes[b][0] = (char)(0xC0 | cp >> 6), bytes[b][1] = (char)(0x80 | (cp & 0x3F)), bytes[b][2] = 0;
        pieces[b] = bytes[b];
    }
    for (int k = 0; k < n_extra; k++) pieces[256 + k] = extra[k];
    lc_vocab_desc d = {.name = "tiny", .kind = LC_VOCAB_BPE, .n = (uint32_t)(256 + n_extra), .piece = pieces,
                       .bos = -1, .eos = -1, .unk = -1, .pad = -1, .eot = -1, .eom = -1, .merges = merges,
                       .n_merges = (uint32_t)n_merges, .pre = LC_PRETOK_LLAMA3, .ignore_merges = ignore_merges};
    lc_vocab *v = NULL;
    return lc_vocab_from_arrays(&d, &v) ? NULL : v;
}

static bool ids_are(const lc_vocab *v, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    bool ok = !tokenize(v, text, strlen(text), 0, &ids, &n) && first_diff(ids, n, want, n_want) < 0;
    free(ids);
    return ok;
}

/* Merge order by rank, ties to the left; whole words first with ignore_merges; Hugging Face's validity rule. */
TEST(bpe_merge_rules) {
    /* 256 "ab" 257 "bc" 258 "abc"; merges: "b c" (rank 0) before "a b" (rank 1); "a bc" (rank 2) */
    const char *extra[] = {"ab", "bc", "abc"};
    const char *merges[] = {"b c", "a b", "a bc"};
    lc_vocab *v = tiny(false, extra, 3, merges, 3);
    CHECK(v);
    CHECK(ids_are(v, "abc", (const int32_t[]){258}, 1));  /* b+c first (rank 0), then a+bc */
    CHECK(ids_are(v, "ab", (const int32_t[]){256}, 1));
    CHECK(ids_are(v, "abab", (const int32_t[]){256, 256}, 2));
    lc_vocab_free(v);
    /* without "a bc", "abc" stays a + bc: the lower rank wins even though "ab" would start further left */
    v = tiny(false, extra, 3, merges, 2);
    CHECK(ids_are(v, "abc", (const int32_t[]){'a' - 0 /* byte 'a' is id 97 */, 257}, 2));
    lc_vocab_free(v);
    /* equal ranks cannot occur; equal pairs at two places merge left first: "aaa" with "a a" -> "aa" + "a" */
    const char *extra2[] = {"aa"};
    const char *merges2[] = {"a a"};
    v = tiny(false, extra2, 1, merges2, 1);
    CHECK(ids_are(v, "aaa", (const int32_t[]){256, 'a'}, 2));
    lc_vocab_free(v);
    /* ignore_merges: a word that is a piece is taken whole even when no merge path leads to it */
    const char *extra3[] = {"xyz"};
    v = tiny(true, extra3, 1, NULL, 0);
    CHECK(ids_are(v, "xyz", (const int32_t[]){256}, 1));
    lc_vocab_free(v);
    v = tiny(false, extra3, 1, NULL, 0);
    CHECK(ids_are(v, "xyz", (const int32_t[]){'x', 'y', 'z'}, 3));
    lc_vocab_free(v);
    /* merges that name missing pieces are skipped (with a warning), not fatal */
    const char *merges4[] = {"q r", "a b"};
    const char *extra4[] = {"ab"};
    v = tiny(false, extra4, 1, merges4, 2);
    CHECK(v && ids_are(v, "ab", (const int32_t[]){256}, 1));
    lc_vocab_free(v);
}

/* Any bytes: ids in range, nothing lost (the pieces' stand-in characters give the input bytes back), and the
** detokenizer's output is the input when it was valid UTF-8. */
TEST(bpe_any_bytes) {
    if (!th_shared_dir()) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    lc_vocab *v = llama31();
    if (!v) FAILF("loading llama3_1.tokenizer.json: %s", lc_last_error());
    uint64_t x = 99;
    int rounds = getenv("LLAMAC_QUICK") ? 300 : 3000;
    for (int round = 0; round < rounds; round++) {
        char text[80], back[400];
        size_t len = (size_t)(round % 80);
        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            unsigned b = (unsigned)(x >> 56);
            unsigned c = b >> 1;                                 /* ASCII */
            if ((b & 3) == 0) c = (unsigned char)" \n'a1"[b % 5];  /* what the regex looks at */
            else if ((b & 3) == 1) c = 0x80 | (b >> 2);            /* continuation and lead bytes */
            text[i] = (char)(round & 1 ? b : c);
        }
        int32_t *ids;
        size_t n, o = 0;
        CHECK_OK(tokenize(v, text, len, (unsigned)round & 3, &ids, &n));
        bool ok = true, bos = round & LC_TOK_ADD_BOS;
        if (bos) ok = n >= 1 && ids[0] == lc_vocab_bos(v);
        for (size_t i = bos; i < n && ok; i++) {
            ok = ids[i] >= 0 && (uint32_t)ids[i] < lc_vocab_n(v);
            if (!ok) break;
            const char *p = lc_vocab_piece(v, ids[i]);
            if (lc_vocab_type(v, ids[i]) != LC_TOKTYPE_NORMAL) { /* a special token parsed from the text */
                size_t pl = strlen(p);
                memcpy(back + o, p, pl), o += pl;
                continue;
            }
            for (size_t k = 0; p[k];) {
                uint32_t cp;
                k += lc_utf8_decode(p + k, strlen(p + k), &cp);
                int b = lc__bpe_cp_to_byte(cp);
                if (b < 0) { ok = false; break; }
                back[o++] = (char)b;
            }
        }
        free(ids);
        CHECKF(ok && o == len && !memcmp(back, text, len), "round %d: the ids do not spell the input", round);
    }
}

/* A minimal tokenizer.json written here: the 256 byte stand-ins, "ab" and "Ġb", merges "a b" and "Ġ b", the Llama 3
** pre-tokenizer, one special token. Loaded with every allocation failing in turn: LC_E_NOMEM or success, no crash. */
static char *mini_json(void) {
    size_t cap = 1 << 16, o = 0;
    char *s = malloc(cap);
    o += (size_t)snprintf(s + o, cap - o, "{\"added_tokens\": [{\"id\": 258, \"content\": \"<|eot_id|>\", \"special\": true}],"
                          " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                          "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"");
    const char *re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    for (const char *c = re; *c; c++) { /* JSON-escape the backslashes */
        if (*c == '\\') s[o++] = '\\';
        s[o++] = *c;
    }
    o += (size_t)snprintf(s + o, cap - o, "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
                          "\"use_regex\": false}]}, \"post_processor\": null, \"model\": {\"type\": \"BPE\", "
                          "\"ignore_merges\": true, \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lc__bpe_byte_to_cp((uint8_t)b);
        char u[3] = {0};
        if (cp < 0x80) u[0] = (char)cp;
        else u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F));
        if (u[0] == '"' || u[0] == '\\') o += (size_t)snprintf(s + o, cap - o, "\"\\%s\": %d, ", u, b);
        else o += (size_t)snprintf(s + o, cap - o, "\"%s\": %d, ", u, b);
    }
    o += (size_t)snprintf(s + o, cap - o, "\"ab\": 256, \"\\u0120b\": 257}, \"merges\": [\"a b\", [\"\xC4\xA0\", \"b\"]]}}");
    return s;
}

TEST(hf_json_mini_and_oom) {
    char *js = mini_json();
    lc_vocab *v = NULL;
    CHECK_OK(lc_vocab_from_hf_json_buf(js, strlen(js), NULL, 0, "mini.json", &v));
    CHECK_EQ_INT(lc_vocab_n(v), 259);
    CHECK(!lc_vocab_add_bos(v) && lc_vocab_bos(v) == -1);
    CHECK(lc_vocab_is_eog(v, 258)); /* <|eot_id|> by its text */
    CHECK(ids_are(v, "ab b", (const int32_t[]){256, 257}, 2));
    lc_vocab_free(v);
    int n_nomem = 0, n_ok = 0;
    for (long k = 1; k < 300; k++) {
        v = NULL;
        lc__alloc_fail_after(k);
        int r = lc_vocab_from_hf_json_buf(js, strlen(js), NULL, 0, "mini.json", &v);
        if (r == LC_OK) {
            int32_t ids[16];
            size_t n;
            r = lc_vocab_tokenize(v, "ab b<|eot_id|>ab", 16, LC_TOK_PARSE_SPECIAL, ids, 16, &n);
        }
        lc__alloc_fail_after(0);
        lc_vocab_free(v);
        CHECKF(r == LC_OK || r == LC_E_NOMEM, "k %ld: status %d (%s)", k, r, lc_last_error());
        n_nomem += r == LC_E_NOMEM;
        n_ok += r == LC_OK;
    }
    /* malformed documents: each an LC_E_FORMAT naming the file and an offset */
    static const char *bad[] = {"", "{", "{\"a\": }", "[1, 2,]", "{\"a\" 1}", "\"\\x\"", "01", "[1] x", "\"\x01\"",
                                "{\"model\": {\"type\": \"BPE\"}}"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        int r = lc_vocab_from_hf_json_buf(bad[k], strlen(bad[k]), NULL, 0, "bad.json", &v);
        CHECKF(r == LC_E_FORMAT || r == LC_E_UNSUPPORTED, "bad[%zu]: status %d", k, r);
        CHECK(strstr(lc_last_error(), "bad.json"));
    }
    free(js);
    CHECK(n_nomem > 5 && n_ok > 0);
}

int main(void) {
    RUN(llama3_pretokenizer);
    RUN(unicode_classes);
    RUN(llama31_vocab);
    RUN(llama31_corpus);
    RUN(llama31_via_gguf);
    RUN(bpe_merge_rules);
    RUN(bpe_any_bytes);
    RUN(hf_json_mini_and_oom);
    lc_vocab_free(g_l3);
    return TEST_SUMMARY();
}
