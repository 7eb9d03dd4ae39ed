/* spm.c - SentencePiece-style BPE (tokenizer.ggml.model "llama"): the text is cut into UTF-8 characters, then the
** adjacent pair whose concatenation is the piece with the highest score is merged, again and again (ties: leftmost
** pair first), until no adjacent pair forms a piece. Symbols that are not pieces fall back to <0xNN> byte tokens.
**
** This is the algorithm of llama.cpp's llm_tokenizer_spm_session (src/llama-vocab.cpp), which our ids must equal:
** the same character split (by the length the lead byte claims, so invalid UTF-8 cannot read past the end), the same
** priority order, the same stale-pair test. A binary heap keeps it O(n log n) in the text length.
*/
#include "vocab_impl.h"

#include <stdint.h>

typedef struct spm_sym {
    int32_t prev, next; /* neighbours in the live chain, -1 at the ends */
    uint32_t start, n;  /* bytes [start, start + n) of the text; n == 0 once merged into its left neighbour */
} spm_sym;

typedef struct spm_pair {
    int32_t left, right;
    float score;  /* score of the merged piece */
    uint32_t size; /* bytes of the merged piece: a pair is stale when left.n + right.n no longer equals it */
} spm_pair;

typedef struct spm_heap {
    spm_pair *a;
    size_t n, cap;
} spm_heap;

/* Max-heap order: higher score first, then the leftmost pair. */
static bool pair_before(const spm_pair *x, const spm_pair *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(spm_heap *h, spm_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        spm_pair *a = lc__realloc(h->a, cap * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for %zu merge candidates", cap);
        h->a = a, h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = p;
    return LC_OK;
}

static spm_pair heap_pop(spm_heap *h) {
    spm_pair top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Length of the UTF-8 sequence a lead byte announces (continuation and invalid bytes count as 1, as llama.cpp's
** unicode_len_utf8 does). */
static uint32_t utf8_len(uint8_t c) {
    static const uint8_t len_of_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len_of_high_nibble[c >> 4];
}

int lc__spm_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        int32_t *a = lc__realloc(*ids, c * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for %zu token ids", c);
        *ids = a, *cap = c;
    }
    (*ids)[(*n)++] = id;
    return LC_OK;
}

/* Queues the merge of symbols left and right if their concatenation is a piece. */
static int try_pair(const lc_vocab *v, const char *text, const spm_sym *sym, int32_t left, int32_t right,
                    spm_heap *h) {
    if (left < 0 || right < 0) return LC_OK;
    uint32_t size = sym[left].n + sym[right].n;
    int32_t id = lc_vocab_find(v, text + sym[left].start, size); /* right follows left in the text */
    if (id < 0) return LC_OK;
    return heap_push(h, (spm_pair){.left = left, .right = right, .score = v->score[id], .size = size});
}

/* BPE over one chunk of the text (symbols and heap reused across chunks). */
static int spm_chunk(const lc_vocab *v, const char *text, size_t len, spm_sym **symp, size_t *sym_cap, spm_heap *h,
                     int32_t **ids, size_t *n, size_t *cap) {
    size_t n_sym = 0;
    for (size_t off = 0; off < len; off += LC_MIN((size_t)utf8_len((uint8_t)text[off]), len - off)) n_sym++;
    if (n_sym > *sym_cap) {
        spm_sym *a = lc__realloc(*symp, n_sym * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for %zu symbols", n_sym);
        *symp = a, *sym_cap = n_sym;
    }
    spm_sym *sym = *symp;
    int r = LC_OK;
    size_t off = 0;
    for (size_t i = 0; i < n_sym; i++) {
        uint32_t l = (uint32_t)LC_MIN((size_t)utf8_len((uint8_t)text[off]), len - off);
        sym[i] = (spm_sym){.prev = (int32_t)i - 1, .next = i + 1 < n_sym ? (int32_t)i + 1 : -1, .start = (uint32_t)off,
                           .n = l};
        off += l;
    }
    h->n = 0;
    for (size_t i = 1; i < n_sym && r == LC_OK; i++) r = try_pair(v, text, sym, (int32_t)i - 1, (int32_t)i, h);

    while (r == LC_OK && h->n) {
        spm_pair p = heap_pop(h);
        spm_sym *l = &sym[p.left], *rt = &sym[p.right];
        if (l->n == 0 || rt->n == 0 || l->n + rt->n != p.size) continue; /* one side merged elsewhere since */
        l->n += rt->n;
        rt->n = 0;
        l->next = rt->next;
        if (rt->next >= 0) sym[rt->next].prev = p.left;
        r = try_pair(v, text, sym, l->prev, p.left, h);
        if (r == LC_OK) r = try_pair(v, text, sym, p.left, l->next, h);
    }

    /* Every merged symbol is a piece (a pair is queued only then); a symbol that is not one is a single character
    ** missing from the vocabulary: its bytes fall back to byte tokens, or to one <unk> if a byte token is missing. */
    for (int32_t i = n_sym ? 0 : -1; i >= 0 && r == LC_OK; i = sym[i].next) {
        const char *s = text + sym[i].start;
        int32_t id = lc_vocab_find(v, s, sym[i].n);
        if (id >= 0) {
            r = lc__spm_push_id(ids, n, cap, id);
            continue;
        }
        bool all_bytes = true;
        for (uint32_t k = 0; k < sym[i].n; k++) all_bytes &= v->byte_tok[(uint8_t)s[k]] >= 0;
        if (all_bytes) {
            for (uint32_t k = 0; k < sym[i].n && r == LC_OK; k++)
                r = lc__spm_push_id(ids, n, cap, v->byte_tok[(uint8_t)s[k]]);
        } else if (v->unk >= 0) {
            r = lc__spm_push_id(ids, n, cap, v->unk);
        } else {
            r = LC_ERR(LC_E_FORMAT, "%s: text byte 0x%02X is in no piece, and the vocabulary has neither byte-fallback "
                       "tokens nor an unknown token", v->name, (uint8_t)s[0]);
        }
    }
    return r;
}

static bool is_mark(const char *s, size_t l) {
    return l == 3 && (uint8_t)s[0] == 0xE2 && (uint8_t)s[1] == 0x96 && (uint8_t)s[2] == 0x81;
}

/* When no piece holds a U+2581 right after another character (v->spm_word_split; true of SentencePiece vocabularies
** trained with split_by_whitespace, as Llama 2's), no piece - and so no merge - spans the start of a "▁" that follows
** a character other than "▁". Cutting the text there (at symbol boundaries of the whole text) gives exactly the ids of
** the whole, with memory bounded by the longest chunk; chunks of at least SPM_CHUNK bytes keep the overhead low.
** The fuzzer builds with a tiny SPM_CHUNK, so that its naive reference (on the uncut text) checks the cutting. */
#ifndef SPM_CHUNK
#define SPM_CHUNK 4096
#endif

int lc__spm_encode(const lc_vocab *v, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap) {
    if (len == 0) return LC_OK;
    if (len > (size_t)INT32_MAX / 2)
        return LC_ERR(LC_E_RANGE, "tokenizer: a text fragment of %zu bytes is too long (at most %d)", len,
                      INT32_MAX / 2);
    spm_sym *sym = NULL;
    size_t sym_cap = 0, start = 0, off = 0;
    spm_heap h = {0};
    int r = LC_OK;
    bool prev_mark = false;
    while (off < len && r == LC_OK) {
        size_t l = LC_MIN((size_t)utf8_len((uint8_t)text[off]), len - off);
        bool mark = is_mark(text + off, l);
        if (v->spm_word_split && mark && !prev_mark && off - start >= SPM_CHUNK) {
            r = spm_chunk(v, text + start, off - start, &sym, &sym_cap, &h, ids, n, cap);
            start = off;
        }
        prev_mark = mark;
        off += l;
    }
    if (r == LC_OK) r = spm_chunk(v, text + start, len - start, &sym, &sym_cap, &h, ids, n, cap);
    lc__free(h.a);
    lc__free(sym);
    return r;
}
