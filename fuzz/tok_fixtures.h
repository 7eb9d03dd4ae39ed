/* tok_fixtures.h - small vocabularies for the tokenizer fuzz targets and their seed generator: a SentencePiece-style
** one (with and without byte fallback) and a byte-level BPE one with the Llama 3 pre-tokenizer, each small enough for
** the naive reference encoders in fuzz_tokenizer.c. Harness code, not library code.
**
** The BPE merges are given in raw bytes and mapped to GPT-2's stand-in characters here; a merge whose result is
** already a piece is dropped, so every piece comes from at most one merge (then Hugging Face's merge order, which
** the library follows, and the naive "lowest rank, leftmost" order agree).
*/
#ifndef LC_TOK_FIXTURES_H
#define LC_TOK_FIXTURES_H

#include "../src/tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx_piece {
    const char *text;
    float score;
    int type;
} fx_piece;

/* SentencePiece-style pieces after <unk> <s> </s> and (optionally) the 256 <0xNN>. Ties in score on purpose; no
** piece has U+2581 after another character (so the library may cut long texts before word starts). */
static const fx_piece fx_spm_pieces[] = {
    {"\xE2\x96\x81", -1.0f, LC_TOKTYPE_NORMAL}, {"a", -2.0f, LC_TOKTYPE_NORMAL}, {"b", -2.0f, LC_TOKTYPE_NORMAL},
    {"c", -2.0f, LC_TOKTYPE_NORMAL}, {"e", -3.0f, LC_TOKTYPE_NORMAL}, {"t", -3.0f, LC_TOKTYPE_NORMAL},
    {"h", -3.0f, LC_TOKTYPE_NORMAL}, {"ab", -4.0f, LC_TOKTYPE_NORMAL}, {"bc", -4.0f, LC_TOKTYPE_NORMAL},
    {"abc", -5.0f, LC_TOKTYPE_NORMAL}, {"\xE2\x96\x81" "a", -1.5f, LC_TOKTYPE_NORMAL},
    {"\xE2\x96\x81" "ab", -3.0f, LC_TOKTYPE_NORMAL}, {"\xE2\x96\x81\xE2\x96\x81", -6.0f, LC_TOKTYPE_NORMAL},
    {"\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81", -7.0f, LC_TOKTYPE_NORMAL}, {"aa", -4.0f, LC_TOKTYPE_NORMAL},
    {"aaa", -4.5f, LC_TOKTYPE_NORMAL}, {"th", -2.5f, LC_TOKTYPE_NORMAL}, {"the", -2.0f, LC_TOKTYPE_NORMAL},
    {"\xE2\x96\x81the", -1.0f, LC_TOKTYPE_NORMAL}, {"\xC3\xA9", -3.0f, LC_TOKTYPE_NORMAL},
    {"\xE4\xB8\x96", -3.0f, LC_TOKTYPE_NORMAL}, {"\xE7\x95\x8C", -3.0f, LC_TOKTYPE_NORMAL},
    {"\xE4\xB8\x96\xE7\x95\x8C", -2.0f, LC_TOKTYPE_NORMAL},
    {"\xE2\x96\x81\xE4\xB8\x96\xE7\x95\x8C", -2.5f, LC_TOKTYPE_NORMAL}, {"ca", -4.0f, LC_TOKTYPE_NORMAL},
    {"bca", -3.0f, LC_TOKTYPE_NORMAL}, {"<tool>", 0.0f, LC_TOKTYPE_USER_DEFINED},
    {"<unused0>", 0.0f, LC_TOKTYPE_UNUSED}, {"<pad>", 0.0f, LC_TOKTYPE_CONTROL},
};

/* Builds the SentencePiece-style vocabulary (ids 0 <unk>, 1 <s>, 2 </s>, then 3..258 <0x00>..<0xFF> when
** byte_fallback, then fx_spm_pieces). Returns NULL on failure. */
static inline lc_vocab *fx_spm_vocab(bool byte_fallback) {
    const size_t n_fixed = 3 + (byte_fallback ? 256 : 0), n_extra = sizeof fx_spm_pieces / sizeof *fx_spm_pieces;
    const size_t n = n_fixed + n_extra;
    const char **piece = calloc(n, sizeof *piece);
    float *score = calloc(n, sizeof *score);
    int32_t *type = calloc(n, sizeof *type);
    char (*hex)[8] = calloc(256, sizeof *hex);
    piece[0] = "<unk>", type[0] = LC_TOKTYPE_UNKNOWN;
    piece[1] = "<s>", type[1] = LC_TOKTYPE_CONTROL;
    piece[2] = "</s>", type[2] = LC_TOKTYPE_CONTROL;
    for (size_t b = 0; byte_fallback && b < 256; b++) {
        snprintf(hex[b], sizeof hex[b], "<0x%02X>", (unsigned)b);
        piece[3 + b] = hex[b], type[3 + b] = LC_TOKTYPE_BYTE;
    }
    for (size_t i = 0; i < n_extra; i++)
        piece[n_fixed + i] = fx_spm_pieces[i].text, score[n_fixed + i] = fx_spm_pieces[i].score,
        type[n_fixed + i] = fx_spm_pieces[i].type;
    lc_vocab_desc d = {.name = byte_fallback ? "spm-mini" : "spm-mini-nobytes", .kind = LC_VOCAB_SPM, .n = (uint32_t)n,
                       .piece = piece, .score = score, .type = type, .bos = 1, .eos = 2, .unk = 0, .pad = -1,
                       .eot = -1, .eom = -1, .add_bos = true, .add_space_prefix = true};
    lc_vocab *v = NULL;
    if (lc_vocab_from_arrays(&d, &v)) fprintf(stderr, "fx_spm_vocab: %s\n", lc_last_error());
    free(piece), free(score), free(type), free(hex);
    return v;
}

/* Byte-level BPE: merges in raw bytes (left, right); rank = position among the kept ones. */
static const char *const fx_bpe_merges[][2] = {
    {" ", "t"},   {"h", "e"},   {" t", "he"}, {"a", "b"},   {"ab", "c"},   {"b", "c"},    {"a", "a"},
    {"aa", "a"},  {" ", "a"},   {" a", "b"},  {"1", "2"},   {"12", "3"},   {"'", "s"},    {" ", " "},
    {"  ", " "},  {"\n", "\n"}, {"c", "a"},   {"bc", "a"},  {"b", "ca"},   {"\xC3", "\xA9"}, {"\xE4", "\xB8"},
    {"\xE4\xB8", "\x96"}, {" ", "\xE4\xB8\x96"}, {"t", "h"}, {"th", "e"}, {"e", "r"}, {"he", "r"},
    {"\xF0", "\x9F"}, {"\xF0\x9F", "\x99"}, {"\xF0\x9F\x99", "\x82"}, {"!", "!"}, {"\r", "\n"},
};
/* Pieces that no merge makes (whole-word lookup, ignore_merges), then the special ones. */
static const char *const fx_bpe_words[] = {" hello", "world", " world", "\xC3\xA9t\xC3\xA9"};
static const fx_piece fx_bpe_specials[] = {
    {"<|begin_of_text|>", 0, LC_TOKTYPE_CONTROL}, {"<|eot_id|>", 0, LC_TOKTYPE_CONTROL},
    {"<tool>", 0, LC_TOKTYPE_USER_DEFINED},       {"<|reserved_0|>", 0, LC_TOKTYPE_CONTROL},
};

/* Raw bytes -> GPT-2 stand-in characters (UTF-8), into out (at least 2 * n + 1 bytes). */
static inline size_t fx_bpe_map(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = lc__bpe_byte_to_cp((uint8_t)s[i]);
        if (cp < 0x80) out[o++] = (char)cp;
        else out[o++] = (char)(0xC0 | cp >> 6), out[o++] = (char)(0x80 | (cp & 0x3F));
    }
    out[o] = 0;
    return o;
}

/* The BPE fixture as arrays (pieces and merges in stand-in form; all malloc'd, free with fx_bpe_arrays_free). */
typedef struct fx_bpe {
    char **piece;
    int32_t *type;
    uint32_t n;
    char **merge; /* "left right" */
    uint32_t n_merges;
    int32_t bos, eot;
} fx_bpe;

static inline int32_t fx_find(const fx_bpe *b, const char *s) {
    for (uint32_t i = 0; i < b->n; i++)
        if (!strcmp(b->piece[i], s)) return (int32_t)i;
    return -1;
}

static inline void fx_bpe_build(fx_bpe *b) {
    const size_t n_merges = sizeof fx_bpe_merges / sizeof *fx_bpe_merges;
    const size_t n_words = sizeof fx_bpe_words / sizeof *fx_bpe_words;
    const size_t n_spec = sizeof fx_bpe_specials / sizeof *fx_bpe_specials;
    const size_t cap = 256 + n_merges + n_words + n_spec;
    memset(b, 0, sizeof *b);
    b->piece = calloc(cap, sizeof *b->piece);
    b->type = calloc(cap, sizeof *b->type);
    b->merge = calloc(n_merges, sizeof *b->merge);
    char tmp[256];
    for (int c = 0; c < 256; c++) {
        char raw = (char)c;
        fx_bpe_map(&raw, 1, tmp);
        b->piece[b->n] = strdup(tmp), b->type[b->n++] = LC_TOKTYPE_NORMAL;
    }
    for (size_t i = 0; i < n_merges; i++) {
        char l[64], r[64], both[128];
        fx_bpe_map(fx_bpe_merges[i][0], strlen(fx_bpe_merges[i][0]), l);
        fx_bpe_map(fx_bpe_merges[i][1], strlen(fx_bpe_merges[i][1]), r);
        snprintf(both, sizeof both, "%s%s", l, r);
        if (fx_find(b, l) < 0 || fx_find(b, r) < 0 || fx_find(b, both) >= 0) continue;
        b->piece[b->n] = strdup(both), b->type[b->n++] = LC_TOKTYPE_NORMAL;
        snprintf(tmp, sizeof tmp, "%s %s", l, r);
        b->merge[b->n_merges++] = strdup(tmp);
    }
    for (size_t i = 0; i < n_words; i++) {
        fx_bpe_map(fx_bpe_words[i], strlen(fx_bpe_words[i]), tmp);
        if (fx_find(b, tmp) < 0) b->piece[b->n] = strdup(tmp), b->type[b->n++] = LC_TOKTYPE_NORMAL;
    }
    for (size_t i = 0; i < n_spec; i++) b->piece[b->n] = strdup(fx_bpe_specials[i].text), b->type[b->n++] = fx_bpe_specials[i].type;
    b->bos = fx_find(b, "<|begin_of_text|>");
    b->eot = fx_find(b, "<|eot_id|>");
}

static inline void fx_bpe_free(fx_bpe *b) {
    for (uint32_t i = 0; i < b->n; i++) free(b->piece[i]);
    for (uint32_t i = 0; i < b->n_merges; i++) free(b->merge[i]);
    free(b->piece), free(b->type), free(b->merge);
    memset(b, 0, sizeof *b);
}

static inline lc_vocab *fx_bpe_vocab(void) {
    fx_bpe b;
    fx_bpe_build(&b);
    lc_vocab_desc d = {.name = "bpe-mini", .kind = LC_VOCAB_BPE, .n = b.n, .piece = (const char *const *)b.piece,
                       .type = b.type, .bos = b.bos, .eos = b.eot, .unk = -1, .pad = -1, .eot = b.eot, .eom = -1,
                       .add_bos = true, .merges = (const char *const *)b.merge, .n_merges = b.n_merges,
                       .pre = LC_PRETOK_LLAMA3, .ignore_merges = true};
    lc_vocab *v = NULL;
    if (lc_vocab_from_arrays(&d, &v)) fprintf(stderr, "fx_bpe_vocab: %s\n", lc_last_error());
    fx_bpe_free(&b);
    return v;
}

#endif /* LC_TOK_FIXTURES_H */
