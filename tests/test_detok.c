/* test_detok.c - the streaming detokenizer (lc_detok_*): pieces to text, never splitting a UTF-8 character.
**
** The U+FFFD expectations are Python 3.11's bytes.decode("utf-8", "replace") (which substitutes maximal subparts,
** as the Unicode Standard recommends, ch. 3 "U+FFFD Substitution of Maximal Subparts"); the first row is the
** standard's own example (Table 3-8). Piece rendering follows llama.cpp's token_to_piece for SentencePiece
** vocabularies (U+2581 -> ' ', <0xNN> -> the byte, control pieces shown only on request).
*/
#include "harness.h"
#include "llamac.h"

#include "../src/tokenizer/tokenizer.h"

enum { T_UNK, T_BOS, T_EOS, T_BYTE0, T_HELLO = 3 + 256, T_WORLD, T_MARK, T_E_ACUTE, T_USER, T_UNUSED, T_2MARK_X,
       T_RAW_C3, T_RAW_A9X, N_TOK };

static lc_vocab *g_v;

static lc_vocab *vocab(void) {
    if (g_v) return g_v;
    static char bytes[256][8];
    const char *pieces[N_TOK];
    int32_t types[N_TOK];
    pieces[T_UNK] = "<unk>", types[T_UNK] = LC_TOKTYPE_UNKNOWN;
    pieces[T_BOS] = "<s>", types[T_BOS] = LC_TOKTYPE_CONTROL;
    pieces[T_EOS] = "</s>", types[T_EOS] = LC_TOKTYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        pieces[T_BYTE0 + b] = bytes[b], types[T_BYTE0 + b] = LC_TOKTYPE_BYTE;
    }
    pieces[T_HELLO] = "\xE2\x96\x81Hello", types[T_HELLO] = LC_TOKTYPE_NORMAL;
    pieces[T_WORLD] = "\xE2\x96\x81world", types[T_WORLD] = LC_TOKTYPE_NORMAL;
    pieces[T_MARK] = "\xE2\x96\x81", types[T_MARK] = LC_TOKTYPE_NORMAL;
    pieces[T_E_ACUTE] = "\xC3\xA9", types[T_E_ACUTE] = LC_TOKTYPE_NORMAL;
    pieces[T_USER] = "[USER]", types[T_USER] = LC_TOKTYPE_USER_DEFINED;
    pieces[T_UNUSED] = "unused", types[T_UNUSED] = LC_TOKTYPE_UNUSED;
    pieces[T_2MARK_X] = "\xE2\x96\x81\xE2\x96\x81x", types[T_2MARK_X] = LC_TOKTYPE_NORMAL;
    pieces[T_RAW_C3] = "\xC3", types[T_RAW_C3] = LC_TOKTYPE_NORMAL; /* half a character */
    pieces[T_RAW_A9X] = "\xA9x", types[T_RAW_A9X] = LC_TOKTYPE_NORMAL;
    lc_vocab_desc d = {.name = "detok-test", .kind = LC_VOCAB_SPM, .n = N_TOK, .piece = pieces, .type = types,
                       .bos = T_BOS, .eos = T_EOS, .unk = T_UNK, .pad = -1, .eot = -1, .eom = -1, .add_bos = true,
                       .add_space_prefix = true};
    if (lc_vocab_from_arrays(&d, &g_v)) return NULL;
    return g_v;
}

/* Pushes ids through d, appending to out (NUL-terminated); flushes at the end if flush. Returns the length or -1. */
static int run(lc_detok *d, const int32_t *ids, int n, bool flush, char *out, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int k = lc_vocab_detok_push(vocab(), d, ids[i], out + len, cap - len);
        if (k < 0) return -1;
        len += (size_t)k;
    }
    if (flush) {
        int k = lc_detok_flush(d, out + len, cap - len);
        if (k < 0) return -1;
        len += (size_t)k;
    }
    out[len] = 0;
    return (int)len;
}

#define NEED_VOCAB() \
    if (!vocab()) FAILF("vocabulary: %s", lc_last_error())

TEST(pieces_and_first_space) {
    NEED_VOCAB();
    char out[256];
    lc_detok d;
    lc_detok_init(&d, false);
    CHECK_EQ_INT(run(&d, (const int32_t[]){T_HELLO, T_WORLD}, 2, true, out, sizeof out), 11);
    CHECK(!strcmp(out, "Hello world")); /* SentencePiece drops the space prefix of the first piece */
    lc_detok_init(&d, false);
    CHECK(run(&d, (const int32_t[]){T_BOS, T_HELLO, T_WORLD, T_EOS}, 4, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, "Hello world")); /* hidden control pieces do not count as the first piece */
    lc_detok_init(&d, true);
    CHECK(run(&d, (const int32_t[]){T_BOS, T_HELLO, T_EOS}, 3, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, "<s> Hello</s>")); /* shown, they do (as llama.cpp renders with special = true) */
    lc_detok_init(&d, false);
    CHECK(run(&d, (const int32_t[]){T_MARK, T_HELLO}, 2, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, " Hello")); /* only one space is dropped: tokenize(" Hello") = ▁ ▁Hello */
    lc_detok_init(&d, false);
    CHECK(run(&d, (const int32_t[]){T_2MARK_X, T_E_ACUTE}, 2, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, " x\xC3\xA9"));
    memset(&d, 0, sizeof d); /* a zeroed detokenizer continues a text: nothing dropped */
    CHECK(run(&d, (const int32_t[]){T_HELLO, T_WORLD}, 2, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, " Hello world"));
    lc_detok_init(&d, false);
    CHECK(run(&d, (const int32_t[]){T_UNK, T_USER, T_UNUSED, T_HELLO}, 4, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, "[USER] Hello")); /* unknown hidden, user-defined always shown, unused never */
    lc_detok_init(&d, false);
    CHECK(run(&d, (const int32_t[]){T_BYTE0 + ' ', T_BYTE0 + 'a'}, 2, true, out, sizeof out) >= 0);
    CHECK(!strcmp(out, "a")); /* a leading byte token for ' ' counts as the space prefix too (llama.cpp lstrip) */
}

/* An emoji as four byte tokens: nothing comes out until the character is complete. */
TEST(never_splits_a_character) {
    NEED_VOCAB();
    lc_detok d;
    lc_detok_init(&d, false);
    const unsigned char emoji[] = {0xF0, 0x9F, 0x98, 0x80};
    char out[16];
    for (int i = 0; i < 4; i++) {
        int k = lc_vocab_detok_push(vocab(), &d, T_BYTE0 + emoji[i], out, sizeof out);
        CHECK_EQ_INT(k, i < 3 ? 0 : 4);
        if (i < 3) CHECK(out[0] == 0);
    }
    CHECK(!memcmp(out, emoji, 4) && out[4] == 0);
    /* a character split across two normal pieces */
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_RAW_C3, out, sizeof out), 0);
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_RAW_A9X, out, sizeof out), 3);
    CHECK(!strcmp(out, "\xC3\xA9x"));
    CHECK_EQ_INT(lc_detok_flush(&d, out, sizeof out), 0);
}

static const struct {
    const char *in;
    int n_in;
    const char *out;
    int n_out;
} replace_cases[] = {
    {"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", 13,
     "\x61\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\x62\xef\xbf\xbd\x63\xef\xbf\xbd\xef\xbf\xbd\x64", 22},
    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
    {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12},
    {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
    {"\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
    {"\xf0\x9f\x98\x41", 4, "\xef\xbf\xbd\x41", 4},
    {"\xf0\x9f\x98", 3, "\xef\xbf\xbd", 3},
    {"\xff\xfe", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
    {"\xe2\x82\xac\xe2\x82", 5, "\xe2\x82\xac\xef\xbf\xbd", 6},
    {"\xf0\x9f\x98\x80\xf0\x9f", 6, "\xf0\x9f\x98\x80\xef\xbf\xbd", 7},
    {"\xc3\xa9\xa9", 3, "\xc3\xa9\xef\xbf\xbd", 5},
    {"\xef\xbf\xbd", 3, "\xef\xbf\xbd", 3},
    {"\xf5\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
    {"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80", 9, "\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80", 9},
    {"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8, "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8},
};

TEST(invalid_utf8_becomes_replacement) {
    NEED_VOCAB();
    for (size_t k = 0; k < sizeof replace_cases / sizeof *replace_cases; k++) {
        int32_t ids[16];
        for (int i = 0; i < replace_cases[k].n_in; i++) ids[i] = T_BYTE0 + (unsigned char)replace_cases[k].in[i];
        lc_detok d;
        memset(&d, 0, sizeof d);
        char out[64];
        int n = run(&d, ids, replace_cases[k].n_in, true, out, sizeof out);
        CHECKF(n == replace_cases[k].n_out && !memcmp(out, replace_cases[k].out, (size_t)n),
               "case %zu: %d bytes out, want %d", k, n, replace_cases[k].n_out);
    }
}

/* A buffer too small: LC_E_RANGE and the state untouched, so the same push can be retried. */
TEST(small_buffer_leaves_state) {
    NEED_VOCAB();
    lc_detok d;
    lc_detok_init(&d, false);
    char out[16];
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_BYTE0 + 0xC3, out, sizeof out), 0);
    lc_detok before = d;
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_RAW_A9X, out, 2), LC_E_RANGE);
    CHECK(!memcmp(&before, &d, sizeof d));
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_RAW_A9X, out, 3), 3); /* exactly fits: no room for the NUL */
    CHECK(!memcmp(out, "\xC3\xA9x", 3));
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_WORLD, out, 6), 6);
    CHECK(!memcmp(out, " world", 6));
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, T_BYTE0 + 0xE2, NULL, 0), 0); /* nothing out yet: cap 0 is fine */
    CHECK_EQ_INT(lc_detok_flush(&d, out, 2), LC_E_RANGE);
    CHECK_EQ_INT(lc_detok_flush(&d, out, 3), 3);
    CHECK(!memcmp(out, "\xef\xbf\xbd", 3));
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, N_TOK, out, sizeof out), LC_E_RANGE);
    CHECK_EQ_INT(lc_vocab_detok_push(vocab(), &d, -1, out, sizeof out), LC_E_RANGE);
    CHECK(strstr(lc_last_error(), "-1"));
}

int main(void) {
    RUN(pieces_and_first_space);
    RUN(never_splits_a_character);
    RUN(invalid_utf8_becomes_replacement);
    RUN(small_buffer_leaves_state);
    lc_vocab_free(g_v);
    return TEST_SUMMARY();
}
