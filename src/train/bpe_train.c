/* bpe_train.c - trains a byte-level BPE tokenizer (Llama 3 style) on text files and writes it as a GGUF vocabulary.
**
** The text is cut into words by the Llama 3 pre-tokenizer (lc__llama3_split, the one encoding uses); each distinct
** word is counted once with its frequency. The 256 bytes are the first tokens (so any input encodes: the byte
** fallback), then merges are learned: repeatedly the most frequent adjacent pair of tokens over all words (weighted
** by word frequency) becomes a new token. Ties go to the pair whose merged bytes are smallest (memcmp, shorter
** first on a common prefix), so the result depends only on the text. Pair counts live in a hash table with a max-heap
** of (count, pair) entries updated lazily; a merge rewrites only the words that contain the pair (an index from pair
** to words), so training is close to linear in the corpus. The Llama 3 control tokens follow the learned ones.
*/
#include "train.h"

#include "../gguf/gguf.h"
#include "../tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                          "<|end_header_id|>", "<|eot_id|>",      "<|eom_id|>",
                                          "<|python_tag|>"};
#define N_SPECIALS 7

/* ---- distinct words ---- */

typedef struct word {
    int32_t *sym; /* token ids */
    int32_t n;
    int64_t count;
} word;

typedef struct wtab {
    uint64_t *hash;
    uint32_t *slot; /* index + 1 into words, 0 empty */
    size_t cap;
    word *words;
    char **text; /* the word's bytes (for hashing equality) */
    uint32_t *len;
    size_t n, wcap;
} wtab;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int wtab_add(wtab *t, const char *s, size_t n) {
    if (2 * (t->n + 1) > t->cap) {
        const size_t cap = t->cap ? 2 * t->cap : 1 << 16;
        uint64_t *h = lc__calloc(cap, sizeof *h);
        uint32_t *sl = lc__calloc(cap, sizeof *sl);
        if (!h || !sl) return lc__free(h), lc__free(sl), LC_ERR(LC_E_NOMEM, "out of memory");
        for (size_t i = 0; i < t->cap; i++)
            if (t->slot[i]) {
                size_t j = t->hash[i] & (cap - 1);
                while (sl[j]) j = (j + 1) & (cap - 1);
                h[j] = t->hash[i], sl[j] = t->slot[i];
            }
        lc__free(t->hash), lc__free(t->slot);
        t->hash = h, t->slot = sl, t->cap = cap;
    }
    const uint64_t h = fnv(s, n);
    size_t j = h & (t->cap - 1);
    while (t->slot[j]) {
        const uint32_t w = t->slot[j] - 1;
        if (t->hash[j] == h && t->len[w] == n && !memcmp(t->text[w], s, n)) {
            t->words[w].count++;
            return 0;
        }
        j = (j + 1) & (t->cap - 1);
    }
    if (t->n == t->wcap) {
        const size_t wc = t->wcap ? 2 * t->wcap : 1 << 15;
        word *nw = lc__realloc(t->words, sizeof *nw * wc);
        if (nw) t->words = nw;
        char **nt = lc__realloc(t->text, sizeof *nt * wc);
        if (nt) t->text = nt;
        uint32_t *nl = lc__realloc(t->len, sizeof *nl * wc);
        if (nl) t->len = nl;
        if (!nw || !nt || !nl) return LC_ERR(LC_E_NOMEM, "out of memory");
        t->wcap = wc;
    }
    char *copy = lc__malloc(n ? n : 1);
    int32_t *sym = lc__malloc(sizeof *sym * (n ? n : 1));
    if (!copy || !sym) return lc__free(copy), lc__free(sym), LC_ERR(LC_E_NOMEM, "out of memory");
    memcpy(copy, s, n);
    for (size_t i = 0; i < n; i++) sym[i] = (unsigned char)s[i];
    t->text[t->n] = copy, t->len[t->n] = (uint32_t)n;
    t->words[t->n] = (word){sym, (int32_t)n, 1};
    t->hash[j] = h, t->slot[j] = (uint32_t)++t->n;
    return 0;
}

/* ---- pair statistics ---- */

typedef struct pstat {
    uint64_t key; /* a << 32 | b, 0 empty slot marker uses used[] */
    int64_t count;
    uint32_t *words; /* ids of words that contained the pair when it was counted (may repeat or be stale) */
    uint32_t nw, cw;
    bool used;
} pstat;

typedef struct ptab {
    pstat *s;
    size_t cap, n;
} ptab;

static pstat *ptab_get(ptab *t, uint64_t key, bool create) {
    if (create && 2 * (t->n + 1) > t->cap) {
        const size_t cap = t->cap ? 2 * t->cap : 1 << 16;
        pstat *ns = lc__calloc(cap, sizeof *ns);
        if (!ns) return NULL;
        for (size_t i = 0; i < t->cap; i++)
            if (t->s[i].used) {
                size_t j = (t->s[i].key * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
                while (ns[j].used) j = (j + 1) & (cap - 1);
                ns[j] = t->s[i];
            }
        lc__free(t->s);
        t->s = ns, t->cap = cap;
    }
    if (!t->cap) return NULL;
    size_t j = (key * 0x9E3779B97F4A7C15ull >> 20) & (t->cap - 1);
    while (t->s[j].used) {
        if (t->s[j].key == key) return &t->s[j];
        j = (j + 1) & (t->cap - 1);
    }
    if (!create) return NULL;
    t->s[j].used = true, t->s[j].key = key, t->n++;
    return &t->s[j];
}

/* ---- the heap of candidate merges ---- */

typedef struct trainer {
    char **piece; /* token bytes */
    uint32_t *plen;
    int32_t n_tok, cap_tok;
    ptab pairs;
    struct hent {
        int64_t count;
        uint64_t key;
    } *heap;
    size_t nh, ch;
} trainer;

/* a before b in the merge order: more frequent, then smaller merged bytes */
static bool better(const trainer *tr, const struct hent *x, const struct hent *y) {
    if (x->count != y->count) return x->count > y->count;
    const int32_t xa = (int32_t)(x->key >> 32), xb = (int32_t)(x->key & 0xffffffff);
    const int32_t ya = (int32_t)(y->key >> 32), yb = (int32_t)(y->key & 0xffffffff);
    char bx[512], by[512];
    size_t nx = 0, ny = 0;
    const uint32_t lx = tr->plen[xa] + tr->plen[xb], ly = tr->plen[ya] + tr->plen[yb];
    if (lx <= sizeof bx && ly <= sizeof by) {
        memcpy(bx, tr->piece[xa], tr->plen[xa]), memcpy(bx + tr->plen[xa], tr->piece[xb], tr->plen[xb]), nx = lx;
        memcpy(by, tr->piece[ya], tr->plen[ya]), memcpy(by + tr->plen[ya], tr->piece[yb], tr->plen[yb]), ny = ly;
        const int c = memcmp(bx, by, nx < ny ? nx : ny);
        if (c) return c < 0;
        if (nx != ny) return nx < ny;
    }
    return x->key < y->key;
}

static bool heap_push(trainer *tr, int64_t count, uint64_t key) {
    if (tr->nh == tr->ch) {
        const size_t c = tr->ch ? 2 * tr->ch : 1 << 16;
        struct hent *h = lc__realloc(tr->heap, sizeof *h * c);
        if (!h) return false;
        tr->heap = h, tr->ch = c;
    }
    size_t i = tr->nh++;
    tr->heap[i] = (struct hent){count, key};
    while (i && better(tr, &tr->heap[i], &tr->heap[(i - 1) / 2])) {
        const struct hent t = tr->heap[i];
        tr->heap[i] = tr->heap[(i - 1) / 2], tr->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    return true;
}

static struct hent heap_pop(trainer *tr) {
    const struct hent top = tr->heap[0];
    tr->heap[0] = tr->heap[--tr->nh];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tr->nh && better(tr, &tr->heap[l], &tr->heap[m])) m = l;
        if (r < tr->nh && better(tr, &tr->heap[r], &tr->heap[m])) m = r;
        if (m == i) break;
        const struct hent t = tr->heap[i];
        tr->heap[i] = tr->heap[m], tr->heap[m] = t;
        i = m;
    }
    return top;
}

/* Adds delta * count of every adjacent pair of word w; new pairs remember w. */
static int count_pairs(trainer *tr, const word *wd, uint32_t w, int delta, uint64_t *touched, size_t *nt, size_t ct) {
    for (int32_t i = 0; i + 1 < wd->n; i++) {
        const uint64_t key = (uint64_t)(uint32_t)wd->sym[i] << 32 | (uint32_t)wd->sym[i + 1];
        pstat *p = ptab_get(&tr->pairs, key, delta > 0);
        if (!p) {
            if (delta > 0) return LC_ERR(LC_E_NOMEM, "out of memory");
            continue;
        }
        p->count += delta * wd->count;
        if (delta > 0) {
            if (p->nw == p->cw) {
                const uint32_t c = p->cw ? 2 * p->cw : 4;
                uint32_t *nw = lc__realloc(p->words, sizeof *nw * c);
                if (!nw) return LC_ERR(LC_E_NOMEM, "out of memory");
                p->words = nw, p->cw = c;
            }
            if (!p->nw || p->words[p->nw - 1] != w) p->words[p->nw++] = w;
        }
        if (touched && *nt < ct) touched[(*nt)++] = key;
    }
    return 0;
}

/* Writes a GGUF holding only the vocabulary: tokens[n] (the first n_normal learned, the rest control tokens),
** merges, the Llama 3 pre-tokenizer and the special ids. Temporary file + rename (gguf_writer_write). */
int lc__write_bpe_vocab(const char *path, const char *const *tokens, const int32_t *types, int32_t n,
                        const char *const *merges, int32_t n_merges, int32_t n_normal) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return LC_ERR(LC_E_NOMEM, "out of memory");
    int r = 0;
#define SET(x) \
    if (!r) r = (x)
    SET(gguf_writer_set_str(w, "general.architecture", "llama"));
    SET(gguf_writer_set_str(w, "general.type", "vocab"));
    SET(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    SET(gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe"));
    SET(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, (uint64_t)n));
    SET(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, (uint64_t)n));
    SET(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)n_merges));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)n_normal));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)n_normal + 1));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)n_normal + 4));
    SET(gguf_writer_set_u32(w, "tokenizer.ggml.eom_token_id", (uint32_t)n_normal + 5));
    SET(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));
#undef SET
    if (!r) r = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return r;
}

int lc_train_tokenizer(const lc_train_tokenizer_params *p, const char *out_path) {
    if (!p || !out_path || !p->n_files) return LC_ERR(LC_E_INVALID, "train-tokenizer: give at least one text file");
    if (p->vocab_size < 256 + N_SPECIALS + 1)
        return LC_ERR(LC_E_INVALID, "train-tokenizer: a vocabulary of %u tokens is too small: the 256 bytes and %d "
                                    "control tokens need at least %d",
                      p->vocab_size, N_SPECIALS, 256 + N_SPECIALS + 1);
    wtab wt = {0};
    trainer tr = {0};
    int r = 0;
    size_t *ends = NULL, ends_cap = 0;
    /* 1. words */
    for (size_t f = 0; f < p->n_files && !r; f++) {
        char *text = NULL;
        size_t n = 0;
        if ((r = lc__read_file(p->files[f], (uint8_t **)&text, &n, (size_t)1 << 34))) break;
        for (size_t pos = 0; pos < n && !r;) { /* by lines, so the word list of a chunk stays small */
            size_t e = pos;
            while (e < n && text[e] != '\n' && e - pos < 65536) e++;
            if (e < n) e++;
            const size_t len = e - pos;
            if (len + 1 > ends_cap) {
                ends_cap = len + 1;
                size_t *ne = lc__realloc(ends, sizeof *ne * ends_cap);
                if (!ne) {
                    r = LC_ERR(LC_E_NOMEM, "out of memory");
                    break;
                }
                ends = ne;
            }
            const size_t nw = lc__llama3_split(text + pos, len, ends, ends_cap);
            size_t st = 0;
            for (size_t k = 0; k < nw && !r; k++) {
                r = wtab_add(&wt, text + pos + st, ends[k] - st);
                st = ends[k];
            }
            pos = e;
        }
        lc__free(text);
    }
    if (!r && !wt.n) r = LC_ERR(LC_E_INVALID, "train-tokenizer: the text files hold no text");
    /* 2. tokens: the 256 bytes */
    const int32_t n_learn = (int32_t)p->vocab_size - N_SPECIALS;
    tr.cap_tok = n_learn;
    tr.piece = lc__calloc((size_t)n_learn, sizeof *tr.piece);
    tr.plen = lc__calloc((size_t)n_learn, sizeof *tr.plen);
    int32_t *merge_a = lc__calloc((size_t)n_learn, sizeof *merge_a), *merge_b = lc__calloc((size_t)n_learn, sizeof *merge_b);
    if (!r && (!tr.piece || !tr.plen || !merge_a || !merge_b)) r = LC_ERR(LC_E_NOMEM, "out of memory");
    for (int b = 0; b < 256 && !r; b++) {
        tr.piece[b] = lc__malloc(1);
        if (!tr.piece[b]) r = LC_ERR(LC_E_NOMEM, "out of memory");
        else tr.piece[b][0] = (char)b, tr.plen[b] = 1;
    }
    tr.n_tok = 256;
    /* 3. pair counts */
    for (size_t w = 0; w < wt.n && !r; w++) r = count_pairs(&tr, &wt.words[w], (uint32_t)w, +1, NULL, NULL, 0);
    for (size_t i = 0; i < tr.pairs.cap && !r; i++)
        if (tr.pairs.s[i].used && tr.pairs.s[i].count > 0 && !heap_push(&tr, tr.pairs.s[i].count, tr.pairs.s[i].key))
            r = LC_ERR(LC_E_NOMEM, "out of memory");
    /* 4. merges */
    const int64_t min_freq = p->min_frequency > 0 ? p->min_frequency : 2;
    lc_progress prog;
    lc_progress_start(&prog, "train-tokenizer");
    uint64_t *touched = NULL;
    size_t touched_cap = 0;
    uint32_t *stamp = lc__calloc(wt.n ? wt.n : 1, sizeof *stamp);
    if (!r && !stamp) r = LC_ERR(LC_E_NOMEM, "out of memory");
    while (!r && tr.n_tok < n_learn && tr.nh) {
        const struct hent top = heap_pop(&tr);
        pstat *ps = ptab_get(&tr.pairs, top.key, false);
        if (!ps || ps->count != top.count) { /* stale: re-queue with its current count */
            if (ps && ps->count > 0 && ps->count < top.count && !heap_push(&tr, ps->count, top.key))
                r = LC_ERR(LC_E_NOMEM, "out of memory");
            continue;
        }
        if (top.count < min_freq) break;
        const int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffff), id = tr.n_tok;
        tr.plen[id] = tr.plen[a] + tr.plen[b];
        tr.piece[id] = lc__malloc(tr.plen[id]);
        merge_a[id] = a, merge_b[id] = b;
        if (!tr.piece[id]) {
            r = LC_ERR(LC_E_NOMEM, "out of memory");
            break;
        }
        memcpy(tr.piece[id], tr.piece[a], tr.plen[a]);
        memcpy(tr.piece[id] + tr.plen[a], tr.piece[b], tr.plen[b]);
        tr.n_tok++;
        /* the words holding (a, b): recount their pairs */
        const uint32_t nwords = ps->nw;
        uint32_t *wl = lc__malloc(sizeof *wl * (nwords ? nwords : 1));
        if (!wl) {
            r = LC_ERR(LC_E_NOMEM, "out of memory");
            break;
        }
        memcpy(wl, ps->words, sizeof *wl * nwords);
        for (uint32_t k = 0; k < nwords && !r; k++) {
            const uint32_t w = wl[k];
            if (stamp[w] == (uint32_t)id) continue;
            stamp[w] = (uint32_t)id;
            word *wd = &wt.words[w];
            bool has = false;
            for (int32_t i = 0; i + 1 < wd->n && !has; i++) has = wd->sym[i] == a && wd->sym[i + 1] == b;
            if (!has) continue;
            if (touched_cap < 2 * (size_t)wd->n + 2) {
                touched_cap = 2 * (size_t)wd->n + 2;
                lc__free(touched);
                touched = lc__malloc(sizeof *touched * touched_cap);
                if (!touched) {
                    r = LC_ERR(LC_E_NOMEM, "out of memory");
                    break;
                }
            }
            size_t nt = 0;
            count_pairs(&tr, wd, w, -1, NULL, NULL, 0);
            int32_t o = 0;
            for (int32_t i = 0; i < wd->n; i++) {
                if (i + 1 < wd->n && wd->sym[i] == a && wd->sym[i + 1] == b) {
                    wd->sym[o++] = id;
                    i++;
                } else {
                    wd->sym[o++] = wd->sym[i];
                }
            }
            wd->n = o;
            if ((r = count_pairs(&tr, wd, w, +1, touched, &nt, touched_cap))) break;
            for (size_t q = 0; q < nt && !r; q++) {
                pstat *t = ptab_get(&tr.pairs, touched[q], false);
                if (t && t->count > 0 && !heap_push(&tr, t->count, touched[q])) r = LC_ERR(LC_E_NOMEM, "out of memory");
            }
        }
        lc__free(wl);
        ps = ptab_get(&tr.pairs, top.key, false);
        if (ps) ps->count = 0;
        lc_progress_update(&prog, (double)(tr.n_tok - 256) / (double)(n_learn - 256));
    }
    lc_progress_end(&prog);
    lc__free(touched);
    lc__free(stamp);
    /* 5. the vocabulary as GGUF */
    if (!r) {
        const int32_t n = tr.n_tok + N_SPECIALS;
        char **texts = lc__calloc((size_t)n, sizeof *texts);
        int32_t *types = lc__calloc((size_t)n, sizeof *types);
        char **mtext = lc__calloc((size_t)(tr.n_tok > 256 ? tr.n_tok - 256 : 1), sizeof *mtext);
        if (!texts || !types || !mtext) r = LC_ERR(LC_E_NOMEM, "out of memory");
        for (int32_t t = 0; t < tr.n_tok && !r; t++) { /* bytes -> GPT-2 stand-in code points, UTF-8 */
            char *s = lc__malloc(4 * (size_t)tr.plen[t] + 1);
            if (!s) {
                r = LC_ERR(LC_E_NOMEM, "out of memory");
                break;
            }
            size_t k = 0;
            for (uint32_t i = 0; i < tr.plen[t]; i++) {
                const uint32_t cp = lc__bpe_byte_to_cp((uint8_t)tr.piece[t][i]);
                if (cp < 0x80) s[k++] = (char)cp;
                else if (cp < 0x800) s[k++] = (char)(0xC0 | cp >> 6), s[k++] = (char)(0x80 | (cp & 63));
                else s[k++] = (char)(0xE0 | cp >> 12), s[k++] = (char)(0x80 | ((cp >> 6) & 63)), s[k++] = (char)(0x80 | (cp & 63));
            }
            s[k] = 0;
            texts[t] = s;
            types[t] = LC_TOKTYPE_NORMAL;
        }
        for (int k = 0; k < N_SPECIALS && !r; k++) {
            texts[tr.n_tok + k] = (char *)k_specials[k];
            types[tr.n_tok + k] = LC_TOKTYPE_CONTROL;
        }
        /* merge t - 256 made token t: "left right" in the pieces' text */
        for (int32_t t = 256; t < tr.n_tok && !r; t++) {
            const char *l = texts[merge_a[t]], *rr = texts[merge_b[t]];
            const size_t ll = strlen(l), rl = strlen(rr);
            mtext[t - 256] = lc__malloc(ll + rl + 2);
            if (!mtext[t - 256]) {
                r = LC_ERR(LC_E_NOMEM, "out of memory");
                break;
            }
            memcpy(mtext[t - 256], l, ll);
            mtext[t - 256][ll] = ' ';
            memcpy(mtext[t - 256] + ll + 1, rr, rl + 1);
        }
        if (!r)
            r = lc__write_bpe_vocab(out_path, (const char *const *)texts, types, n, (const char *const *)mtext,
                                    tr.n_tok - 256, tr.n_tok);
        for (int32_t t = 256; t < tr.n_tok && mtext; t++) lc__free(mtext[t - 256]);
        lc__free(mtext);
        for (int32_t t = 0; t < tr.n_tok && texts; t++) lc__free(texts[t]);
        lc__free(texts);
        lc__free(types);
    }
    for (int32_t t = 0; t < tr.n_tok; t++) lc__free(tr.piece[t]);
    lc__free(tr.piece), lc__free(tr.plen), lc__free(merge_a), lc__free(merge_b);
    for (size_t i = 0; i < tr.pairs.cap; i++) lc__free(tr.pairs.s[i].words);
    lc__free(tr.pairs.s), lc__free(tr.heap), lc__free(ends);
    for (size_t w = 0; w < wt.n; w++) lc__free(wt.words[w].sym), lc__free(wt.text[w]);
    lc__free(wt.words), lc__free(wt.text), lc__free(wt.len), lc__free(wt.hash), lc__free(wt.slot);
    return r;
}
