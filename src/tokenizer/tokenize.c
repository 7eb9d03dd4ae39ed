/* tokenize.c - text to ids: special tokens are split out of the raw text first, then each remaining fragment goes
** through the vocabulary's BPE.
**
** As llama.cpp (llama_vocab::impl::tokenize and tokenizer_st_partition): special pieces are tried longest first,
** each splitting every raw fragment at its leftmost non-overlapping occurrences; control and unknown pieces only
** with LC_TOK_PARSE_SPECIAL, user-defined pieces always. For SentencePiece, a fragment that starts the text or follows
** a special token gets a space prefix (add_space_prefix), and spaces become U+2581 before BPE; byte-level BPE
** (bpe.c) pre-tokenizes each fragment itself.
*/
#include "vocab_impl.h"

typedef struct fragment {
    size_t off, len; /* raw text bytes, when id < 0 */
    int32_t id;      /* a special token, or -1 */
} fragment;

typedef struct frag_list {
    fragment *a;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, fragment f) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        fragment *a = lc__realloc(l->a, cap * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "tokenizer: out of memory for %zu text fragments", cap);
        l->a = a, l->cap = cap;
    }
    l->a[l->n++] = f;
    return LC_OK;
}

/* Splits the raw fragments of *l at every occurrence of special token id; *tmp is swapped in as the new list. */
static int split_special(const lc_vocab *v, const char *text, int32_t id, frag_list *l, frag_list *tmp) {
    const char *s = lc__vocab_text(v, id);
    size_t sl = v->len[id];
    bool found = false;
    for (size_t i = 0; i < l->n && !found; i++)
        found = l->a[i].id < 0 && l->a[i].len >= sl && memmem(text + l->a[i].off, l->a[i].len, s, sl);
    if (!found) return LC_OK;
    tmp->n = 0;
    int r = LC_OK;
    for (size_t i = 0; i < l->n && r == LC_OK; i++) {
        fragment f = l->a[i];
        if (f.id >= 0) {
            r = frag_push(tmp, f);
            continue;
        }
        while (r == LC_OK && f.len) {
            const char *m = f.len >= sl ? memmem(text + f.off, f.len, s, sl) : NULL;
            if (!m) {
                r = frag_push(tmp, f);
                break;
            }
            size_t at = (size_t)(m - text);
            if (at > f.off) r = frag_push(tmp, (fragment){.off = f.off, .len = at - f.off, .id = -1});
            if (r == LC_OK) r = frag_push(tmp, (fragment){.off = at, .len = sl, .id = id});
            f.len -= at + sl - f.off;
            f.off = at + sl;
        }
    }
    frag_list t = *l;
    *l = *tmp;
    *tmp = t;
    return r;
}

/* SentencePiece: optional leading space, then every ' ' as U+2581 (E2 96 81). */
static size_t spm_escape(const char *s, size_t n, bool prefix, char *out) {
    size_t o = 0;
    if (prefix) out[o++] = '\xE2', out[o++] = '\x96', out[o++] = '\x81';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') out[o++] = '\xE2', out[o++] = '\x96', out[o++] = '\x81';
        else out[o++] = s[i];
    }
    return o;
}

int lc_vocab_tokenize(const lc_vocab *v, const char *text, size_t len, unsigned flags, int32_t *ids, size_t cap,
                      size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!v || !n_out || (!text && len) || (!ids && cap))
        return LC_ERR(LC_E_INVALID, "lc_tokenize: NULL argument (text %p with %zu bytes, ids %p with cap %zu)",
                      (const void *)text, len, (void *)ids, cap);
    if (len > ((size_t)1 << 30))
        return LC_ERR(LC_E_RANGE, "lc_tokenize: %zu bytes of text; at most 1 GiB at a time", len);
    bool parse_special = flags & LC_TOK_PARSE_SPECIAL;
    frag_list l = {0}, tmp = {0};
    int32_t *out = NULL;
    size_t n = 0, out_cap = 0;
    char *esc = NULL;
    int r = LC_OK;

    if (flags & LC_TOK_ADD_BOS) {
        if (v->bos < 0) {
            r = LC_ERR(LC_E_UNSUPPORTED, "%s: BOS asked for, but the vocabulary has no BOS token", v->name);
            goto done;
        }
        if ((r = lc__spm_push_id(&out, &n, &out_cap, v->bos))) goto done;
    }
    if (len && (r = frag_push(&l, (fragment){.off = 0, .len = len, .id = -1}))) goto done;
    for (uint32_t k = 0; k < v->n_special && r == LC_OK && len; k++) {
        int32_t id = v->special[k];
        if (!parse_special && v->type[id] != LC_TOKTYPE_USER_DEFINED) continue;
        r = split_special(v, text, id, &l, &tmp);
    }
    if (r) goto done;

    size_t longest = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.a[i].id < 0) longest = LC_MAX(longest, l.a[i].len);
    if (longest && v->kind == LC_VOCAB_SPM && !(esc = lc__malloc(3 * (longest + 1)))) {
        r = LC_ERR(LC_E_NOMEM, "lc_tokenize: out of memory for %zu bytes of text", longest);
        goto done;
    }
    bool prev_special = true; /* the start of the text counts as following a special token */
    for (size_t i = 0; i < l.n && r == LC_OK; i++) {
        if (l.a[i].id >= 0) {
            r = lc__spm_push_id(&out, &n, &out_cap, l.a[i].id);
            prev_special = true;
            continue;
        }
        if (v->kind == LC_VOCAB_BPE) {
            r = lc__bpe_encode(v, text + l.a[i].off, l.a[i].len, &out, &n, &out_cap);
            continue;
        }
        size_t el = spm_escape(text + l.a[i].off, l.a[i].len, v->add_space_prefix && prev_special, esc);
        r = lc__spm_encode(v, esc, el, &out, &n, &out_cap);
        prev_special = false;
    }
    if (r) goto done;

    *n_out = n;
    if (n && cap) memcpy(ids, out, LC_MIN(n, cap) * sizeof *ids);
    if (n > cap) r = LC_ERR(LC_E_RANGE, "lc_tokenize: the text needs %zu ids but the buffer holds %zu", n, cap);
done:
    lc__free(l.a);
    lc__free(tmp.a);
    lc__free(out);
    lc__free(esc);
    return r;
}
