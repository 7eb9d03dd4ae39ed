/* train_data.c - the training corpus: text files cut into documents, tokenized (BOS per document when the
** tokenizer adds one, EOS after it), concatenated, and split deterministically into a training and a validation
** stream: chunks of 8 windows, chunk i held out when floor((i+1) f) > floor(i f), so the held-out text is spread
** evenly over every file of the corpus rather than taken from its end.
*/
#include "train.h"

#include "../tokenizer/tokenizer.h"

#include <stdio.h>

#define MAX_FILE ((size_t)1 << 32)

typedef struct tokbuf {
    int32_t *ids;
    size_t n, cap;
} tokbuf;

static int tokbuf_reserve(tokbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return LC_OK;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + extra) cap *= 2;
    int32_t *p = lc__realloc(b->ids, cap * sizeof *p);
    if (!p) return LC_ERR(LC_E_NOMEM, "train: out of memory for %zu tokens", cap);
    b->ids = p;
    b->cap = cap;
    return LC_OK;
}

/* Appends BOS? + tokens(text) + EOS to b; blank documents are skipped. */
static int add_document(tokbuf *b, const lc_tokenizer *tok, const char *text, size_t len, size_t *n_docs) {
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
    if (i == len) return LC_OK;
    const unsigned flags = lc_tokenizer_add_bos(tok) ? LC_TOK_ADD_BOS : 0;
    size_t need = 0;
    int r = tokbuf_reserve(b, len + 8);
    if (r) return r;
    r = lc_tokenizer_tokenize(tok, text, len, flags, b->ids + b->n, b->cap - b->n, &need);
    if (r == LC_E_RANGE) {
        if ((r = tokbuf_reserve(b, need + 1))) return r;
        r = lc_tokenizer_tokenize(tok, text, len, flags, b->ids + b->n, b->cap - b->n, &need);
    }
    if (r) return r;
    b->n += need;
    const int32_t eos = lc_tokenizer_eos(tok);
    if (eos >= 0) {
        if ((r = tokbuf_reserve(b, 1))) return r;
        b->ids[b->n++] = eos;
    }
    (*n_docs)++;
    return LC_OK;
}

/* Documents of one file: the whole file, or the text between lines equal to sep (a trailing \r ignored). */
static int add_file(tokbuf *b, const lc_tokenizer *tok, const char *path, const char *sep, size_t *n_docs) {
    uint8_t *buf = NULL;
    size_t size = 0;
    int r = lc__read_file(path, &buf, &size, MAX_FILE);
    if (r) return r;
    const char *t = (const char *)buf;
    if (!sep) {
        r = add_document(b, tok, t, size, n_docs);
    } else {
        const size_t sl = strlen(sep);
        size_t doc = 0, line = 0;
        while (!r && line < size) {
            const char *nl = memchr(t + line, '\n', size - line);
            const size_t end = nl ? (size_t)(nl - t) : size; /* line is [line, end) */
            size_t ll = end - line;
            if (ll && t[line + ll - 1] == '\r') ll--;
            if (ll == sl && !memcmp(t + line, sep, sl)) {
                r = add_document(b, tok, t + doc, line - doc, n_docs);
                doc = nl ? end + 1 : size;
            }
            line = nl ? end + 1 : size;
        }
        if (!r && doc < size) r = add_document(b, tok, t + doc, size - doc, n_docs);
    }
    lc__free(buf);
    if (r) lc__error_prefix(r, "train: %s: ", path);
    return r;
}

static uint64_t fnv_ids(uint64_t h, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++, v >>= 8) h = (h ^ (v & 0xff)) * 0x100000001B3ull;
    }
    return h;
}

int tr_data_load(tr_data *d, const char *const *paths, size_t n_paths, const char *doc_sep, const lc_tokenizer *tok,
                 int T, double val_frac) {
    memset(d, 0, sizeof *d);
    if (n_paths == 0) return LC_ERR(LC_E_INVALID, "train: no corpus file given");
    if (!(val_frac >= 0.0 && val_frac < 1.0))
        return LC_ERR(LC_E_INVALID, "train: validation fraction %g must be in [0, 1)", val_frac);
    tokbuf b = {0};
    int r = LC_OK;
    for (size_t i = 0; !r && i < n_paths; i++) r = add_file(&b, tok, paths[i], doc_sep, &d->n_docs);
    if (r) {
        lc__free(b.ids);
        return r;
    }
    const size_t chunk = 8 * ((size_t)T + 1), n_chunks = (b.n + chunk - 1) / chunk;
    bool *held = lc__calloc(n_chunks ? n_chunks : 1, sizeof *held);
    if (!held) {
        lc__free(b.ids);
        return LC_ERR(LC_E_NOMEM, "train: out of memory");
    }
    size_t n_held = 0;
    for (size_t c = 0; c < n_chunks; c++) {
        held[c] = (size_t)((double)(c + 1) * val_frac) > (size_t)((double)c * val_frac);
        n_held += held[c];
    }
    if (val_frac > 0.0 && n_held == 0 && n_chunks >= 2) held[n_chunks - 1] = true; /* at least one */
    d->train = lc__malloc((b.n ? b.n : 1) * sizeof(int32_t));
    d->val = lc__malloc((b.n ? b.n : 1) * sizeof(int32_t));
    if (!d->train || !d->val) {
        lc__free(held);
        lc__free(b.ids);
        tr_data_free(d);
        return LC_ERR(LC_E_NOMEM, "train: out of memory");
    }
    for (size_t c = 0; c < n_chunks; c++) {
        const size_t a = c * chunk, n = LC_MIN(chunk, b.n - a);
        if (held[c]) memcpy(d->val + d->n_val, b.ids + a, n * sizeof(int32_t)), d->n_val += n;
        else memcpy(d->train + d->n_train, b.ids + a, n * sizeof(int32_t)), d->n_train += n;
    }
    lc__free(held);
    lc__free(b.ids);
    if (d->n_train < (size_t)T + 1) {
        const size_t n_total = d->n_train + d->n_val;
        tr_data_free(d);
        return LC_ERR(LC_E_INVALID, "train: the corpus has %zu tokens, too few for one training window of %d (context "
                      "+ 1) beside the validation part; give more text or a shorter --ctx", n_total, T + 1);
    }
    uint64_t h = 0xCBF29CE484222325ull ^ (uint64_t)T;
    h = fnv_ids(h, d->train, d->n_train);
    d->hash = fnv_ids(h * 31, d->val, d->n_val);
    return LC_OK;
}

void tr_data_free(tr_data *d) {
    lc__free(d->train);
    lc__free(d->val);
    memset(d, 0, sizeof *d);
}
