/* bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2", Hugging Face "BPE" with a ByteLevel pre-tokenizer): the
** Llama 3 pre-tokenizer cuts the text into words, each word's bytes are written as GPT-2's printable stand-ins, a
** word that is a piece as a whole is taken as is (ignore_merges), else its bytes are merged pairwise by merge rank.
**
** The pre-tokenizer is the Llama 3 regex, implemented by hand (alternatives tried in order, each greedy with the
** backtracking the regex would do):
**   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} | ' '?[^\s\p{L}\p{N}]+[\r\n]* |
**   \s*[\r\n]+ | \s+(?!\S) | \s+
** with \p{L}, \p{N}, \s (White_Space) from the generated Unicode tables. A byte that is not part of well-formed UTF-8
** counts as a non-letter, non-number, non-space character of its own and is tokenized as that byte (lossless).
** Merging follows Hugging Face tokenizers' Word::merge_all: the lowest rank first, ties to the leftmost pair; a queued
** pair is still valid if the pair now at its place merges into the same token.
*/
#include "unicode.h"
#include "vocab_impl.h"

/* ---- GPT-2's byte <-> printable character mapping ----
** Bytes that are printable and not space keep their code point (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF); the other 68
** become U+0100.. in byte order. */
uint32_t lc__bpe_byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    uint32_t n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
    return 0x100 + n;
}

int lc__bpe_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE) ? (int)cp : -1;
    uint32_t n = cp - 0x100;
    for (unsigned c = 0; c < 256; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE) && n-- == 0) return (int)c;
    return -1;
}

/* ---- the Llama 3 pre-tokenizer ---- */

typedef struct uchar {
    uint32_t cp; /* LC_UTF8_INVALID for a stray byte */
    unsigned bits; /* LC_UCLASS_* */
    size_t len;
} uchar;

static uchar uchar_at(const char *s, size_t n, size_t pos) {
    uchar u = {.cp = 0, .bits = 0, .len = 0};
    if (pos >= n) return u; /* len 0: past the end */
    u.len = lc_utf8_decode(s + pos, n - pos, &u.cp);
    u.bits = u.cp == LC_UTF8_INVALID ? 0 : lc_uclass(u.cp);
    return u;
}

static bool is_l(uchar u) { return u.bits & LC_UCLASS_LETTER; }
static bool is_n(uchar u) { return u.bits & LC_UCLASS_NUMBER; }
static bool is_s(uchar u) { return u.bits & LC_UCLASS_SPACE; }
static bool is_rn(uchar u) { return u.len && (u.cp == '\r' || u.cp == '\n'); }
/* [^\s\p{L}\p{N}]: any character that is none of the three (a stray byte included) */
static bool is_other(uchar u) { return u.len && !(u.bits & (LC_UCLASS_LETTER | LC_UCLASS_NUMBER | LC_UCLASS_SPACE)); }

/* Simple case folding of the letters the contractions use: ASCII, and U+017F LATIN SMALL LETTER LONG S, which
** folds to 's' (CaseFolding.txt) in the regex engines of the reference tokenizers. */
static uint32_t fold(uchar u) {
    if (!u.len) return 0;
    if (u.cp >= 'A' && u.cp <= 'Z') return u.cp + 32;
    if (u.cp == 0x17F) return 's';
    return u.cp;
}

/* End (byte offset) of the word that starts at pos < n. */
static size_t llama3_word_end(const char *s, size_t n, size_t pos) {
    uchar c0 = uchar_at(s, n, pos), c1 = uchar_at(s, n, pos + c0.len);
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c0.cp == '\'' && c1.len) {
        uint32_t f1 = fold(c1);
        if (f1 == 's' || f1 == 't' || f1 == 'm' || f1 == 'd') return pos + c0.len + c1.len;
        uchar c2 = uchar_at(s, n, pos + c0.len + c1.len);
        uint32_t f2 = fold(c2);
        if ((f1 == 'r' && f2 == 'e') || (f1 == 'v' && f2 == 'e') || (f1 == 'l' && f2 == 'l'))
            return pos + c0.len + c1.len + c2.len;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!is_rn(c0) && !is_n(c0) && (is_l(c0) || is_l(c1))) {
        size_t p = pos + c0.len;
        for (uchar u = c1; is_l(u); u = uchar_at(s, n, p)) p += u.len;
        return p;
    }
    /* \p{N}{1,3} */
    if (is_n(c0)) {
        size_t p = pos + c0.len;
        uchar u = c1;
        for (int k = 1; k < 3 && is_n(u); k++, u = uchar_at(s, n, p)) p += u.len;
        return p;
    }
    /* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
    if (is_other(c0) || (c0.cp == ' ' && is_other(c1))) {
        size_t p = pos + (c0.cp == ' ' ? c0.len : 0);
        uchar u = uchar_at(s, n, p);
        while (is_other(u)) p += u.len, u = uchar_at(s, n, p);
        while (is_rn(u)) p += u.len, u = uchar_at(s, n, p);
        return p;
    }
    /* the white-space run from pos: \s*[\r\n]+ ends after its last \r or \n; \s+(?!\S) leaves its last character
    ** to the next word unless the run ends the text; \s+ */
    size_t p = pos, last_rn = 0, last_start = pos;
    int count = 0;
    for (uchar u = c0; is_s(u); u = uchar_at(s, n, p)) {
        last_start = p;
        p += u.len;
        count++;
        if (u.cp == '\r' || u.cp == '\n') last_rn = p;
    }
    if (last_rn) return last_rn;
    if (count > 1 && p < n) return last_start;
    if (count > 0) return p;
    return pos + c0.len; /* unreachable: every character is a letter, a number, a space or other */
}

/* ---- merging ---- */

static uint64_t merge_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    return key;
}

/* Rank and result of merging tokens a and b, or false when the pair is not a merge. */
static bool merge_find(const lc_vocab *v, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!v->merge_key) return false;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint32_t i = (uint32_t)merge_hash(key) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        if (v->merge_key[i] == LC_MERGE_EMPTY) return false;
        if (v->merge_key[i] == key) {
            *rank = v->merge_rank[i];
            *id = v->merge_id[i];
            return true;
        }
    }
}

int lc__merge_insert(lc_vocab *v, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint32_t i = (uint32_t)merge_hash(key) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        if (v->merge_key[i] == key) return 0; /* a repeated merge: the first (lowest rank) stays, as llama.cpp */
        if (v->merge_key[i] == LC_MERGE_EMPTY) {
            v->merge_key[i] = key, v->merge_rank[i] = rank, v->merge_id[i] = id;
            return 1;
        }
    }
}

typedef struct bpe_sym {
    int32_t id, prev, next; /* id -1: merged away */
} bpe_sym;

typedef struct bpe_cand {
    int32_t rank, pos, new_id;
} bpe_cand;

/* Scratch reused for every word of one call. */
typedef struct bpe_work {
    bpe_sym *sym;
    size_t sym_cap;
    bpe_cand *heap;
    size_t n_heap, heap_cap;
    char *mapped;
    size_t mapped_cap;
} bpe_work;

static bool cand_before(const bpe_cand *x, const bpe_cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static int cand_push(bpe_work *w, bpe_cand c) {
    if (w->n_heap == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 64;
        bpe_cand *a = lc__realloc(w->heap, cap * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for %zu merge candidates", cap);
        w->heap = a, w->heap_cap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0 && cand_before(&c, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
    return LC_OK;
}

static bpe_cand cand_pop(bpe_work *w) {
    bpe_cand top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap) break;
        if (c + 1 < w->n_heap && cand_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->n_heap) w->heap[i] = last;
    return top;
}

static int try_merge(const lc_vocab *v, bpe_work *w, int32_t left) {
    if (left < 0) return LC_OK;
    int32_t right = w->sym[left].next, rank, id;
    if (right < 0 || !merge_find(v, w->sym[left].id, w->sym[right].id, &rank, &id)) return LC_OK;
    return cand_push(w, (bpe_cand){.rank = rank, .pos = left, .new_id = id});
}

/* One word (raw bytes) to ids. */
static int bpe_word(const lc_vocab *v, bpe_work *w, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                    size_t *cap) {
    int r;
    if (v->ignore_merges) { /* the whole word, when it is a piece */
        if (w->mapped_cap < 2 * n) {
            char *m = lc__realloc(w->mapped, 2 * n);
            if (!m) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for a word of %zu bytes", n);
            w->mapped = m, w->mapped_cap = 2 * n;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const char *p = lc__vocab_text(v, v->byte_sym[(uint8_t)s[i]]);
            w->mapped[m++] = p[0];
            if ((uint8_t)p[0] >= 0x80) w->mapped[m++] = p[1];
        }
        int32_t id = lc_vocab_find(v, w->mapped, m);
        if (id >= 0) return lc__spm_push_id(ids, n_ids, cap, id);
    }
    if (w->sym_cap < n) {
        bpe_sym *a = lc__realloc(w->sym, n * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for a word of %zu bytes", n);
        w->sym = a, w->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (bpe_sym){.id = v->byte_sym[(uint8_t)s[i]], .prev = (int32_t)i - 1,
                              .next = i + 1 < n ? (int32_t)i + 1 : -1};
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((r = try_merge(v, w, (int32_t)i))) return r;
    while (w->n_heap) {
        bpe_cand c = cand_pop(w);
        bpe_sym *l = &w->sym[c.pos];
        int32_t rank, id;
        /* still valid if the pair now at pos merges into the same token (Hugging Face's test) */
        if (l->id < 0 || l->next < 0 || !merge_find(v, l->id, w->sym[l->next].id, &rank, &id) || id != c.new_id)
            continue;
        bpe_sym *rt = &w->sym[l->next];
        l->id = c.new_id;
        l->next = rt->next;
        if (rt->next >= 0) w->sym[rt->next].prev = c.pos;
        rt->id = -1;
        if ((r = try_merge(v, w, l->prev)) || (r = try_merge(v, w, c.pos))) return r;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next)
        if ((r = lc__spm_push_id(ids, n_ids, cap, w->sym[i].id))) return r;
    return LC_OK;
}

int lc__bpe_encode(const lc_vocab *v, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    bpe_work w = {0};
    int r = LC_OK;
    for (size_t pos = 0; pos < len && r == LC_OK;) {
        size_t end = llama3_word_end(text, len, pos);
        r = bpe_word(v, &w, text + pos, end - pos, ids, n, cap);
        pos = end;
    }
    lc__free(w.sym);
    lc__free(w.heap);
    lc__free(w.mapped);
    return r;
}

/* For tests: the words the pre-tokenizer cuts text into, as end offsets (at most cap; returns the count). */
size_t lc__llama3_split(const char *text, size_t len, size_t *ends, size_t cap) {
    size_t k = 0;
    for (size_t pos = 0; pos < len; k++) {
        pos = llama3_word_end(text, len, pos);
        if (k < cap) ends[k] = pos;
    }
    return k;
}
