/* vocab.c - building a vocabulary (pieces, scores, types, special ids) and the GGUF and llama2.c loaders.
**
** Every loader ends in lc_vocab_from_arrays, which copies the pieces into one blob, indexes them in a hash table and
** derives what the tokenizer needs (byte-fallback ids, the special-token list, the end-of-generation set) the way
** llama.cpp's llama_vocab::load does (src/llama-vocab.cpp of the release the goldens came from).
*/
#include "vocab_impl.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- hashing: FNV-1a over the piece bytes ---- */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

int32_t lc_vocab_find(const lc_vocab *v, const char *text, size_t len) {
    if (len == 0 || len > v->max_len) return -1;
    uint32_t i = (uint32_t)hash_bytes(text, len) & v->table_mask;
    for (;;) {
        int32_t id = v->table[i];
        if (id < 0) return -1;
        if (v->len[id] == len && !memcmp(lc__vocab_text(v, id), text, len)) return id;
        i = (i + 1) & v->table_mask;
    }
}

void lc_vocab_free(lc_vocab *v) {
    if (!v) return;
    lc__free(v->name);
    lc__free(v->blob);
    lc__free(v->off);
    lc__free(v->len);
    lc__free(v->score);
    lc__free(v->type);
    lc__free(v->table);
    lc__free(v->special);
    lc__free(v->merge_key);
    lc__free(v->merge_rank);
    lc__free(v->merge_id);
    lc__free(v);
}

/* Order of the special list: longer text first, so "<s>" inside "<s>x" style overlaps resolve to the longest
** token, as llama.cpp's cache_special_tokens; equal lengths by id, so the order does not depend on a sort's whims. */
static _Thread_local const lc_vocab *special_sort_vocab; /* qsort has no user pointer */
static int cmp_special(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = special_sort_vocab->len[x], ly = special_sort_vocab->len[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

static void add_eog(lc_vocab *v, int32_t id) {
    if (id < 0) return;
    for (uint32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return;
    if (v->n_eog < LC_VOCAB_MAX_EOG) v->eog[v->n_eog++] = id;
}

/* End-of-turn pieces llama.cpp recognises by their text (the subset that Llama-family vocabularies use). */
static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|end_of_text|>", "<EOT>", "_<EOT>"};
static const char *const eog_texts[] = {"<|eot_id|>",   "<|im_end|>", "<|end|>", "<end_of_turn>",  "<|endoftext|>",
                                        "</s>",         "<|eom_id|>", "<EOT>",   "_<EOT>",         "<|end_of_text|>"};

static int32_t find_str(const lc_vocab *v, const char *s) { return lc_vocab_find(v, s, strlen(s)); }

/* Byte-level BPE: the pieces of the 256 byte stand-ins and the merge table. */
static int bpe_setup(lc_vocab *v, const lc_vocab_desc *d) {
    v->pre = d->pre;
    v->ignore_merges = d->ignore_merges;
    for (uint32_t c = 0; c < LC_BPE_CP_MAX; c++) v->cp_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = lc__bpe_byte_to_cp((uint8_t)b);
        char u[2] = {(char)cp, 0};
        size_t ul = 1;
        if (cp >= 0x80) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), ul = 2;
        v->cp_byte[cp] = (int16_t)b;
        if ((v->byte_sym[b] = lc_vocab_find(v, u, ul)) < 0)
            return LC_ERR(LC_E_FORMAT, "%s: byte-level vocabulary without the piece for byte 0x%02X (U+%04X)", v->name, b,
                          cp);
    }
    uint32_t size = 16;
    while (size < 2 * (uint64_t)d->n_merges) size <<= 1;
    v->merge_mask = size - 1;
    v->merge_key = lc__malloc(size * sizeof *v->merge_key);
    v->merge_rank = lc__malloc(size * sizeof *v->merge_rank);
    v->merge_id = lc__malloc(size * sizeof *v->merge_id);
    if (!v->merge_key || !v->merge_rank || !v->merge_id)
        return LC_ERR(LC_E_NOMEM, "%s: out of memory for %u merges", v->name, d->n_merges);
    for (uint32_t i = 0; i < size; i++) v->merge_key[i] = LC_MERGE_EMPTY;
    uint32_t n_bad = 0, first_bad = 0;
    char *both = lc__malloc((size_t)2 * v->max_len + 1);
    if (!both) return LC_ERR(LC_E_NOMEM, "%s: out of memory", v->name);
    for (uint32_t i = 0; i < d->n_merges; i++) {
        const char *m = d->merges[i] ? d->merges[i] : "";
        size_t ml = d->merge_len ? d->merge_len[i] : strlen(m);
        /* the split is at the first space after the first byte, as llama.cpp reads "left right" */
        const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL;
        int32_t a = -1, b = -1, ab = -1;
        if (sp) {
            size_t la = (size_t)(sp - m), lb = ml - la - 1;
            a = lc_vocab_find(v, m, la);
            b = lc_vocab_find(v, sp + 1, lb);
            if (a >= 0 && b >= 0 && la + lb <= 2 * (size_t)v->max_len) {
                memcpy(both, m, la);
                memcpy(both + la, sp + 1, lb);
                ab = lc_vocab_find(v, both, la + lb);
            }
        }
        if (ab < 0) {
            if (!n_bad++) first_bad = i;
            continue;
        }
        lc__merge_insert(v, a, b, (int32_t)i, ab);
    }
    lc__free(both);
    if (n_bad)
        LC_WARN("%s: %u of %u merges name pieces that are not in the vocabulary (the first: #%u); they are ignored",
                v->name, n_bad, d->n_merges, first_bad);
    return LC_OK;
}

int lc_vocab_from_arrays(const lc_vocab_desc *d, lc_vocab **out) {
    *out = NULL;
    const char *name = d->name ? d->name : "vocabulary";
    if (d->kind != LC_VOCAB_SPM && d->kind != LC_VOCAB_BPE)
        return LC_ERR(LC_E_UNSUPPORTED, "%s: unsupported tokenizer kind %d", name, d->kind);
    if (d->kind == LC_VOCAB_BPE && d->pre != LC_PRETOK_LLAMA3)
        return LC_ERR(LC_E_UNSUPPORTED, "%s: byte-level BPE needs a known pre-tokenizer (only Llama 3's is supported)",
                      name);
    if (d->n == 0 || d->n > (1u << 24))
        return LC_ERR(LC_E_FORMAT, "%s: %u tokens; a vocabulary needs 1 to %u tokens", name, d->n, 1u << 24);
    const int32_t *ids[] = {&d->bos, &d->eos, &d->unk, &d->pad, &d->eot, &d->eom};
    const char *id_names[] = {"bos", "eos", "unknown", "padding", "eot", "eom"};
    for (size_t k = 0; k < sizeof ids / sizeof *ids; k++)
        if (*ids[k] < -1 || (*ids[k] >= 0 && (uint32_t)*ids[k] >= d->n))
            return LC_ERR(LC_E_FORMAT, "%s: %s token id %d is outside the vocabulary of %u tokens", name,
                          id_names[k], *ids[k], d->n);

    lc_vocab *v = lc__calloc(1, sizeof *v);
    if (!v) return LC_ERR(LC_E_NOMEM, "%s: vocabulary", name);
    int r = LC_E_NOMEM;
    uint64_t total = 0;
    uint32_t table_size = 16;
    while (table_size < 2 * d->n) table_size <<= 1;
    v->name = lc__strdup(name);
    v->kind = d->kind;
    v->n = d->n;
    v->off = lc__malloc(d->n * sizeof *v->off);
    v->len = lc__malloc(d->n * sizeof *v->len);
    v->score = lc__malloc(d->n * sizeof *v->score);
    v->type = lc__malloc(d->n);
    v->table = lc__malloc(table_size * sizeof *v->table);
    if (!v->name || !v->off || !v->len || !v->score || !v->type || !v->table) goto nomem;
    for (uint32_t i = 0; i < d->n; i++) {
        const char *p = d->piece[i] ? d->piece[i] : "";
        v->len[i] = d->piece_len ? d->piece_len[i] : (uint32_t)strlen(p);
        if (d->piece_len && v->len[i] && !d->piece[i]) {
            r = LC_ERR(LC_E_INVALID, "%s: token %u has length %u but no text", name, i, v->len[i]);
            goto fail;
        }
        v->off[i] = total;
        total += (uint64_t)v->len[i] + 1;
        if (v->len[i] > v->max_len) v->max_len = v->len[i];
    }
    if (total > SIZE_MAX || !(v->blob = lc__malloc((size_t)total))) goto nomem;
    for (uint32_t i = 0; i < d->n; i++) {
        if (v->len[i]) memcpy(v->blob + v->off[i], d->piece[i], v->len[i]);
        v->blob[v->off[i] + v->len[i]] = 0;
        v->score[i] = d->score ? d->score[i] : 0.0f;
        int32_t t = d->type ? d->type[i] : LC_TOKTYPE_NORMAL;
        /* llama.cpp maps a type outside the enum to UNDEFINED (rendered as nothing) rather than failing */
        v->type[i] = (uint8_t)(t >= LC_TOKTYPE_UNDEFINED && t <= LC_TOKTYPE_BYTE ? t : LC_TOKTYPE_UNDEFINED);
    }

    /* index: empty pieces are not indexed (nothing can match them); a duplicate piece is an error, as in llama.cpp
    ** (which asserts that every piece maps to one id) */
    v->table_mask = table_size - 1;
    for (uint32_t i = 0; i < table_size; i++) v->table[i] = -1;
    for (uint32_t id = 0; id < d->n; id++) {
        if (!v->len[id]) continue;
        const char *s = lc__vocab_text(v, (int32_t)id);
        uint32_t i = (uint32_t)hash_bytes(s, v->len[id]) & v->table_mask;
        while (v->table[i] >= 0) {
            int32_t o = v->table[i];
            if (v->len[o] == v->len[id] && !memcmp(lc__vocab_text(v, o), s, v->len[id])) {
                r = LC_ERR(LC_E_FORMAT, "%s: tokens %d and %u have the same text \"%.*s\"; a piece must be unique",
                           name, o, id, (int)LC_MIN(v->len[id], 64u), s);
                goto fail;
            }
            i = (i + 1) & v->table_mask;
        }
        v->table[i] = (int32_t)id;
    }

    v->bos = d->bos, v->eos = d->eos, v->unk = d->unk, v->pad = d->pad, v->eot = d->eot, v->eom = d->eom;
    v->add_bos = d->add_bos, v->add_eos = d->add_eos, v->add_space_prefix = d->add_space_prefix;

    /* byte fallback: "<0xNN>" (upper-case hex, as llama.cpp spells it), else the one-byte piece */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        v->byte_tok[b] = find_str(v, buf);
        if (v->byte_tok[b] < 0) {
            char c = (char)b;
            v->byte_tok[b] = lc_vocab_find(v, &c, 1);
        }
    }

    if (d->kind == LC_VOCAB_BPE && (r = bpe_setup(v, d)) != LC_OK) goto fail;
    if (d->kind == LC_VOCAB_SPM) { /* see lc__spm_encode: may the text be cut before a word-start mark? */
        v->spm_word_split = true;
        for (uint32_t id = 0; id < d->n && v->spm_word_split; id++) {
            /* allowed: marks only as a leading run ("▁▁abc"), none after the first other byte */
            const char *p = lc__vocab_text(v, (int32_t)id);
            size_t l = v->len[id], k = 0;
            while (l - k >= 3 && !memcmp(p + k, "\xE2\x96\x81", 3)) k += 3;
            if (l - k >= 3 && memmem(p + k, l - k, "\xE2\x96\x81", 3)) v->spm_word_split = false;
        }
    }

    /* end of generation: eot/eom found by text when not given, then eos, eot, eom and every end-of-turn text; those
    ** pieces become control tokens (hidden in output, matched in text only with LC_TOK_PARSE_SPECIAL) */
    if (v->eot < 0)
        for (size_t k = 0; k < sizeof eot_texts / sizeof *eot_texts && v->eot < 0; k++) v->eot = find_str(v, eot_texts[k]);
    if (v->eom < 0) v->eom = find_str(v, "<|eom_id|>");
    for (size_t k = 0; k < sizeof eog_texts / sizeof *eog_texts; k++) {
        int32_t id = find_str(v, eog_texts[k]);
        if (id >= 0) {
            add_eog(v, id);
            v->type[id] = LC_TOKTYPE_CONTROL;
        }
    }
    add_eog(v, v->eos);
    add_eog(v, v->eot);
    add_eog(v, v->eom);

    uint32_t n_special = 0;
    for (uint32_t id = 0; id < d->n; id++) {
        int t = v->type[id];
        if (v->len[id] && (t == LC_TOKTYPE_CONTROL || t == LC_TOKTYPE_USER_DEFINED || t == LC_TOKTYPE_UNKNOWN))
            n_special++;
    }
    if (!(v->special = lc__malloc((n_special ? n_special : 1) * sizeof *v->special))) goto nomem;
    for (uint32_t id = 0; id < d->n; id++) {
        int t = v->type[id];
        if (v->len[id] && (t == LC_TOKTYPE_CONTROL || t == LC_TOKTYPE_USER_DEFINED || t == LC_TOKTYPE_UNKNOWN))
            v->special[v->n_special++] = (int32_t)id;
    }
    special_sort_vocab = v;
    qsort(v->special, v->n_special, sizeof *v->special, cmp_special);
    special_sort_vocab = NULL;

    *out = v;
    return LC_OK;
nomem:
    r = LC_ERR(LC_E_NOMEM, "%s: out of memory building a vocabulary of %u tokens", name, d->n);
fail:
    lc_vocab_free(v);
    return r;
}

/* ---- accessors ---- */
uint32_t lc_vocab_n(const lc_vocab *v) { return v->n; }
lc_vocab_kind lc_vocab_get_kind(const lc_vocab *v) { return v->kind; }
int32_t lc_vocab_bos(const lc_vocab *v) { return v->bos; }
int32_t lc_vocab_eos(const lc_vocab *v) { return v->eos; }
int32_t lc_vocab_unk(const lc_vocab *v) { return v->unk; }
int32_t lc_vocab_pad(const lc_vocab *v) { return v->pad; }
int32_t lc_vocab_eot(const lc_vocab *v) { return v->eot; }
int32_t lc_vocab_eom(const lc_vocab *v) { return v->eom; }
bool lc_vocab_add_bos(const lc_vocab *v) { return v->add_bos; }
bool lc_vocab_add_eos(const lc_vocab *v) { return v->add_eos; }
bool lc_vocab_add_space_prefix(const lc_vocab *v) { return v->add_space_prefix; }

bool lc_vocab_is_eog(const lc_vocab *v, int32_t id) {
    if (id < 0) return false;
    for (uint32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return true;
    return false;
}

static bool in_range(const lc_vocab *v, int32_t id) { return id >= 0 && (uint32_t)id < v->n; }
const char *lc_vocab_piece(const lc_vocab *v, int32_t id) { return in_range(v, id) ? lc__vocab_text(v, id) : NULL; }
uint32_t lc_vocab_piece_len(const lc_vocab *v, int32_t id) { return in_range(v, id) ? v->len[id] : 0; }
float lc_vocab_score(const lc_vocab *v, int32_t id) { return in_range(v, id) ? v->score[id] : 0.0f; }
int lc_vocab_type(const lc_vocab *v, int32_t id) { return in_range(v, id) ? v->type[id] : LC_TOKTYPE_UNDEFINED; }
int32_t lc_vocab_byte_token(const lc_vocab *v, uint8_t b) { return v->byte_tok[b]; }

/* ---- GGUF: tokenizer.ggml.* ---- */

/* A special id from key (absent: keep *id). An id outside the vocabulary is ignored with a warning, keeping the
** default, as llama.cpp does (converters write -1 or the vocabulary size for "no padding token"). */
static int gguf_special_id(const gguf_file *f, const char *key, uint32_t n, int32_t *id) {
    uint32_t u;
    int r = gguf_get_u32(f, key, &u);
    if (r < 0) return r;
    if (r == 0) return LC_OK;
    if (u >= n) { /* UINT32_MAX is the usual spelling of "none": no warning for it */
        if (u != UINT32_MAX) LC_WARN("%s: %s = %u is outside the vocabulary of %u tokens; ignored", f->path, key, u, n);
        return LC_OK;
    }
    *id = (int32_t)u;
    return LC_OK;
}

static int gguf_flag(const gguf_file *f, const char *key, bool *b) {
    int r = gguf_get_bool(f, key, b);
    return r < 0 ? r : LC_OK;
}

int lc_vocab_from_gguf(const gguf_file *f, lc_vocab **out) {
    *out = NULL;
    gguf_str model;
    int r = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (r < 0) return r;
    if (r == 0) return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.model is missing; the file has no tokenizer", f->path);
    bool spm = model.len == 5 && !memcmp(model.ptr, "llama", 5), bpe = model.len == 4 && !memcmp(model.ptr, "gpt2", 4);
    if (!spm && !bpe)
        return LC_ERR(LC_E_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.*s\" is not supported; only \"llama\" "
                      "(SentencePiece, Llama 2) and \"gpt2\" (byte-level BPE, Llama 3) are",
                      f->path, (int)LC_MIN(model.len, 64u), model.ptr);

    const gguf_value *toks = NULL, *scores = NULL, *types = NULL;
    if ((r = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_T_STRING, &toks)) < 0) return r;
    if (r == 0) return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.tokens is missing", f->path);
    uint64_t n = toks->v.arr.n;
    if (n == 0 || n > (1u << 24))
        return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.tokens: %llu tokens; expected 1 to %u", f->path,
                      (unsigned long long)n, 1u << 24);
    /* scores: float32 (llama.cpp also takes int32) */
    const gguf_kv *kv = gguf_find(f, "tokenizer.ggml.scores");
    if (kv) {
        if (kv->val.type != GGUF_T_ARRAY ||
            (kv->val.v.arr.type != GGUF_T_FLOAT32 && kv->val.v.arr.type != GGUF_T_INT32))
            return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.scores (offset %llu) must be an array of float32",
                          f->path, (unsigned long long)kv->offset);
        scores = &kv->val;
        if (scores->v.arr.n != n)
            return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.scores has %llu items but tokenizer.ggml.tokens has %llu",
                          f->path, (unsigned long long)scores->v.arr.n, (unsigned long long)n);
    }
    if ((r = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_T_INT32, &types)) < 0) return r;
    if (r == 1 && types->v.arr.n != n)
        return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.token_type has %llu items but tokenizer.ggml.tokens has %llu",
                      f->path, (unsigned long long)types->v.arr.n, (unsigned long long)n);

    /* SentencePiece defaults (llama.cpp: bos 1, eos 2, unk 0, no padding; add BOS and a space prefix); byte-level
    ** BPE has none (llama.cpp falls back to GPT-2's id 11; Llama 3 files always carry their ids) */
    lc_vocab_desc d = {.name = f->path, .kind = LC_VOCAB_SPM, .n = (uint32_t)n, .bos = 1, .eos = 2, .unk = 0,
                       .pad = -1, .eot = -1, .eom = -1, .add_bos = true, .add_eos = false, .add_space_prefix = true};
    if (n <= 2) d.eos = -1;
    if (n <= 1) d.bos = -1;
    const gguf_value *merges = NULL;
    if (bpe) {
        d.kind = LC_VOCAB_BPE;
        d.bos = d.eos = d.unk = -1;
        d.add_bos = d.add_space_prefix = false;
        if ((r = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_T_STRING, &merges)) < 0) return r;
        if (r == 0) return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.merges is missing (a \"gpt2\" tokenizer needs it)",
                                  f->path);
        if (merges->v.arr.n > (1u << 24))
            return LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.merges: %llu merges (at most %u)", f->path,
                          (unsigned long long)merges->v.arr.n, 1u << 24);
        gguf_str pre;
        if ((r = gguf_get_str(f, "tokenizer.ggml.pre", &pre)) < 0) return r;
        if (r == 0) {
            /* llama.cpp falls back to a default pre-tokenizer; a wrong one silently changes ids, so only a vocabulary
            ** recognisably Llama 3's gets its pre-tokenizer */
            const gguf_str *t = toks->v.arr.strs;
            if (n >= 128256 && t[128000].len == 17 && !memcmp(t[128000].ptr, "<|begin_of_text|>", 17) &&
                t[0].len == 1 && t[0].ptr[0] == '!') {
                LC_WARN("%s: key tokenizer.ggml.pre is missing; the vocabulary is Llama 3's, so its pre-tokenizer is used",
                        f->path);
                d.pre = LC_PRETOK_LLAMA3;
            } else {
                return LC_ERR(LC_E_UNSUPPORTED, "%s: key tokenizer.ggml.pre is missing and the vocabulary is not Llama 3's; "
                              "without the pre-tokenizer the ids would be wrong (reconvert the model)", f->path);
            }
        } else if ((pre.len == 9 && !memcmp(pre.ptr, "llama-bpe", 9)) || (pre.len == 6 && !memcmp(pre.ptr, "llama3", 6)) ||
                   (pre.len == 8 && !memcmp(pre.ptr, "llama-v3", 8))) {
            d.pre = LC_PRETOK_LLAMA3;
        } else {
            return LC_ERR(LC_E_UNSUPPORTED, "%s: tokenizer.ggml.pre \"%.*s\" is not supported (only Llama 3's "
                          "\"llama-bpe\")", f->path, (int)LC_MIN(pre.len, 64u), pre.ptr);
        }
        /* as llama.cpp for the Llama 3 pre-tokenizer: ignore_merges (Hugging Face's flag) and BOS by default; an
        ** explicit tokenizer.ggml.add_bos_token below still wins */
        d.ignore_merges = true;
        d.add_bos = true;
    }
    if ((r = gguf_special_id(f, "tokenizer.ggml.bos_token_id", d.n, &d.bos)) ||
        (r = gguf_special_id(f, "tokenizer.ggml.eos_token_id", d.n, &d.eos)) ||
        (r = gguf_special_id(f, "tokenizer.ggml.unknown_token_id", d.n, &d.unk)) ||
        (r = gguf_special_id(f, "tokenizer.ggml.padding_token_id", d.n, &d.pad)) ||
        (r = gguf_special_id(f, "tokenizer.ggml.eot_token_id", d.n, &d.eot)) ||
        (r = gguf_special_id(f, "tokenizer.ggml.eom_token_id", d.n, &d.eom)) ||
        (r = gguf_flag(f, "tokenizer.ggml.add_bos_token", &d.add_bos)) ||
        (r = gguf_flag(f, "tokenizer.ggml.add_eos_token", &d.add_eos)) ||
        (r = gguf_flag(f, "tokenizer.ggml.add_space_prefix", &d.add_space_prefix)))
        return r;

    const char **pieces = lc__malloc(n * sizeof *pieces);
    uint32_t *lens = lc__malloc(n * sizeof *lens);
    float *sc = scores ? lc__malloc(n * sizeof *sc) : NULL;
    int32_t *ty = types ? lc__malloc(n * sizeof *ty) : NULL;
    uint64_t n_merges = merges ? merges->v.arr.n : 0;
    const char **mtext = n_merges ? lc__malloc(n_merges * sizeof *mtext) : NULL;
    uint32_t *mlen = n_merges ? lc__malloc(n_merges * sizeof *mlen) : NULL;
    if (n_merges && (!mtext || !mlen)) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory reading %llu merges", f->path, (unsigned long long)n_merges);
        goto done;
    }
    for (uint64_t i = 0; i < n_merges; i++) {
        const gguf_str *m = &merges->v.arr.strs[i];
        if (m->len > (1u << 20)) {
            r = LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.merges: merge %llu is %llu bytes long", f->path,
                       (unsigned long long)i, (unsigned long long)m->len);
            goto done;
        }
        mtext[i] = m->ptr, mlen[i] = (uint32_t)m->len;
    }
    d.merges = mtext, d.merge_len = mlen, d.n_merges = (uint32_t)n_merges;
    if (!pieces || !lens || (scores && !sc) || (types && !ty)) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory reading %llu tokens", f->path, (unsigned long long)n);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        const gguf_str *s = &toks->v.arr.strs[i];
        if (s->len > (1u << 20)) {
            r = LC_ERR(LC_E_FORMAT, "%s: key tokenizer.ggml.tokens: token %llu is %llu bytes long (at most %u)",
                       f->path, (unsigned long long)i, (unsigned long long)s->len, 1u << 20);
            goto done;
        }
        pieces[i] = s->ptr;
        lens[i] = (uint32_t)s->len;
        if (sc) sc[i] = (float)gguf_arr_f64(scores, i);
        if (ty) ty[i] = (int32_t)gguf_arr_i64(types, i);
    }
    d.piece = pieces;
    d.piece_len = lens;
    d.score = sc;
    d.type = ty;
    r = lc_vocab_from_arrays(&d, out);
done:
    lc__free(pieces);
    lc__free(lens);
    lc__free(sc);
    lc__free(ty);
    lc__free(mtext);
    lc__free(mlen);
    return r;
}

/* ---- llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 len, len bytes ---- */

static bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); }

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int lc_vocab_from_llama2c_buf(const void *buf, size_t size, const char *name, uint32_t n_vocab, lc_vocab **out) {
    *out = NULL;
    const uint8_t *p = buf;
    if (n_vocab < 3 || n_vocab > (1u << 24))
        return LC_ERR(LC_E_FORMAT, "%s: the model's vocabulary size %u is out of range (3 to %u)", name, n_vocab,
                      1u << 24);
    if (size < 4) return LC_ERR(LC_E_FORMAT, "%s: %zu bytes; a llama2.c tokenizer.bin starts with a 4-byte header", name, size);
    int32_t max_len = (int32_t)rd_u32(p);
    if (max_len < 0) return LC_ERR(LC_E_FORMAT, "%s: offset 0: negative max_token_length %d", name, max_len);

    int r = LC_OK;
    char **pieces = lc__calloc(n_vocab, sizeof *pieces);
    float *scores = lc__malloc(n_vocab * sizeof *scores);
    int32_t *types = lc__malloc(n_vocab * sizeof *types);
    uint32_t *lens = lc__malloc(n_vocab * sizeof *lens);
    if (!pieces || !scores || !types || !lens) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory for %u tokens", name, n_vocab);
        goto done;
    }
    size_t off = 4;
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (size - off < 8) {
            r = LC_ERR(LC_E_FORMAT, "%s: offset %zu: the file ends inside token %u of %u (is it the tokenizer of this "
                       "model? its vocabulary has %u tokens)", name, off, i, n_vocab, n_vocab);
            goto done;
        }
        uint32_t bits = rd_u32(p + off);
        memcpy(&scores[i], &bits, 4);
        int32_t len = (int32_t)rd_u32(p + off + 4);
        if (len < 0 || len > max_len) {
            r = LC_ERR(LC_E_FORMAT, "%s: offset %zu: token %u has length %d, outside [0, max_token_length %d]", name,
                       off + 4, i, len, max_len);
            goto done;
        }
        off += 8;
        if ((size_t)len > size - off) {
            r = LC_ERR(LC_E_FORMAT, "%s: offset %zu: token %u of %d bytes runs past the end of the file (%zu bytes)",
                       name, off, i, len, size);
            goto done;
        }
        const char *s = (const char *)p + off;
        off += (size_t)len;
        /* as convert-llama2c-to-ggml: fixed special ids, empty pieces are control, "<0xNN>" are bytes, and the
        ** spaces llama2.c stores become SentencePiece's U+2581 */
        int32_t t;
        if (i == 0) s = "<unk>", len = 5, t = LC_TOKTYPE_UNKNOWN;
        else if (i == 1) s = "<s>", len = 3, t = LC_TOKTYPE_CONTROL;
        else if (i == 2) s = "</s>", len = 4, t = LC_TOKTYPE_CONTROL;
        else if (len == 0) t = LC_TOKTYPE_CONTROL;
        else if (len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && is_hex(s[3]) && is_hex(s[4])) t = LC_TOKTYPE_BYTE;
        else t = LC_TOKTYPE_NORMAL;
        size_t n_sp = 0;
        for (int32_t k = 0; k < len; k++) n_sp += s[k] == ' ';
        char *q = pieces[i] = lc__malloc((size_t)len + 2 * n_sp + 1);
        if (!q) {
            r = LC_ERR(LC_E_NOMEM, "%s: out of memory for token %u", name, i);
            goto done;
        }
        for (int32_t k = 0; k < len; k++) {
            if (s[k] == ' ') *q++ = '\xE2', *q++ = '\x96', *q++ = '\x81';
            else *q++ = s[k];
        }
        *q = 0;
        lens[i] = (uint32_t)(q - pieces[i]);
        types[i] = t;
    }
    if (off != size) {
        r = LC_ERR(LC_E_FORMAT, "%s: offset %zu: %zu bytes left after %u tokens; the tokenizer holds more tokens than "
                   "the model's vocabulary (is it the tokenizer of this model?)", name, off, size - off, n_vocab);
        goto done;
    }
    lc_vocab_desc d = {.name = name, .kind = LC_VOCAB_SPM, .n = n_vocab, .piece = (const char *const *)pieces,
                       .piece_len = lens, .score = scores, .type = types, .bos = 1, .eos = 2, .unk = 0, .pad = -1,
                       .eot = -1, .eom = -1, .add_bos = true, .add_eos = false, .add_space_prefix = true};
    r = lc_vocab_from_arrays(&d, out);
done:
    if (pieces)
        for (uint32_t i = 0; i < n_vocab; i++) lc__free(pieces[i]);
    lc__free(pieces);
    lc__free(scores);
    lc__free(types);
    lc__free(lens);
    return r;
}

/* Reads a whole (small) file into memory; LC_E_IO naming the path on failure. */
int lc__read_file(const char *path, uint8_t **buf, size_t *size, size_t max_size) {
    *buf = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return LC_ERR(LC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    int r = LC_OK;
    long end = -1;
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && !S_ISREG(st.st_mode)) { /* a directory "opens" but has no size */
        r = LC_ERR(LC_E_IO, "%s: not a regular file", path);
        goto done;
    }
    if (fseek(fp, 0, SEEK_END) || (end = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET)) {
        r = LC_ERR(LC_E_IO, "%s: cannot determine its size: %s", path, strerror(errno));
        goto done;
    }
    if ((unsigned long)end > max_size) {
        r = LC_ERR(LC_E_FORMAT, "%s: %ld bytes is larger than a tokenizer file can be (%zu)", path, end, max_size);
        goto done;
    }
    if (!(*buf = lc__malloc((size_t)end ? (size_t)end : 1))) {
        r = LC_ERR(LC_E_NOMEM, "%s: out of memory for %ld bytes", path, end);
        goto done;
    }
    if (end && fread(*buf, 1, (size_t)end, fp) != (size_t)end) {
        r = LC_ERR(LC_E_IO, "%s: read failed: %s", path, ferror(fp) ? strerror(errno) : "short read");
        lc__free(*buf);
        *buf = NULL;
        goto done;
    }
    *size = (size_t)end;
done:
    fclose(fp);
    return r;
}

int lc_vocab_from_llama2c(const char *path, uint32_t n_vocab, lc_vocab **out) {
    uint8_t *buf;
    size_t size;
    *out = NULL;
    int r = lc__read_file(path, &buf, &size, (size_t)1 << 30);
    if (r) return r;
    r = lc_vocab_from_llama2c_buf(buf, size, path, n_vocab, out);
    lc__free(buf);
    return r;
}
