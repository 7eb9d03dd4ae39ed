/* fuzz_tokenizer.c - libFuzzer target for text -> ids -> text: tokenize.c, spm.c, bpe.c, detok.c.
**
** Vocabularies: the small fixtures of tok_fixtures.h (SentencePiece-style with and without byte fallback, byte-level
** BPE with the Llama 3 pre-tokenizer), and Meta's Llama 2 tokenizer.model and Llama 3.1 tokenizer.json when
** ../shared/data (or LLAMAC_SHARED_DATA) is there. Input byte 0: bits 0-2 the vocabulary, bit 3 parse special,
** bit 4 add BOS, bit 5 decode mode (the rest is token ids, not text), bit 6 show special, bit 7 small output buffers.
** Checks (each violation traps):
**   encode: the sizing contract (cap 0, exact cap, cap - 1 gives LC_E_RANGE and the same prefix), ids in range, BOS
**     first when asked; lossless: the bytes of the ids are the text (plus SentencePiece's space prefix) when the
**     vocabulary has byte fallback; detok(tokenize(text)) == text for valid UTF-8; the fixtures' BPE cores equal
**     naive reference encoders (highest score / lowest rank first, leftmost on ties) written here.
**   decode: streaming output, with buffers too small at random (which must leave the state unchanged), equals a
**     reference built here: each shown token's bytes, the first shown piece's leading space dropped, then ill-formed
**     UTF-8 replaced by U+FFFD per maximal subpart.
*/
#include "tok_fixtures.h"
#include "../src/tokenizer/unicode.h"

#include <stdarg.h>

enum { V_SPM, V_SPM_NOBYTES, V_BPE, V_LLAMA2, V_LLAMA3, V_COUNT };
static lc_vocab *g_vocab[V_COUNT];
static int g_n_vocabs; /* the real ones only when the data is there */
static fx_bpe g_bpe;   /* the BPE fixture's arrays: the merge ranks of the naive reference */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    lc__log_level = 0;
    g_vocab[V_SPM] = fx_spm_vocab(true);
    g_vocab[V_SPM_NOBYTES] = fx_spm_vocab(false);
    g_vocab[V_BPE] = fx_bpe_vocab();
    if (!g_vocab[V_SPM] || !g_vocab[V_SPM_NOBYTES] || !g_vocab[V_BPE]) die("fixture vocabularies failed");
    fx_bpe_build(&g_bpe);
    g_n_vocabs = V_LLAMA2;
    const char *dir = getenv("LLAMAC_SHARED_DATA");
    if (!dir) dir = "../shared/data";
    char p1[4096], p2[4096], p3[4096];
    snprintf(p1, sizeof p1, "%s/tokenizer/llama2.tokenizer.model", dir);
    snprintf(p2, sizeof p2, "%s/tokenizer/llama3_1.tokenizer.json", dir);
    snprintf(p3, sizeof p3, "%s/tokenizer/llama3_1.tokenizer_config.json", dir);
    if (!lc_vocab_from_spm_model(p1, &g_vocab[V_LLAMA2]) && !lc_vocab_from_hf_json(p2, p3, &g_vocab[V_LLAMA3]))
        g_n_vocabs = V_COUNT;
    else
        fprintf(stderr, "fuzz_tokenizer: %s/tokenizer not usable (%s); fixtures only\n", dir, lc_last_error());
    return 0;
}

/* ---- references ---- */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = realloc(b->p, b->cap);
        if (!b->p) die("out of memory");
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* Length of the well-formed UTF-8 character at s (1-4), or 0; written from the Unicode tables (Table 3-7), not the
** library's decoder. */
static size_t wf_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    if (n < k) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

/* Bytes of the maximal subpart at s (a prefix of a well-formed sequence that cannot be completed): at least 1. */
static size_t subpart_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    if (k == 1) return 1;
    uint8_t lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    size_t m = 1;
    while (m < k && m < n && s[m] >= (m == 1 ? lo : 0x80) && s[m] <= (m == 1 ? hi : 0xBF)) m++;
    return m;
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = wf_len(s + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

static void sanitize(const uint8_t *s, size_t n, buf *out) {
    for (size_t i = 0; i < n;) {
        size_t k = wf_len(s + i, n - i);
        if (k) {
            put(out, s + i, k);
            i += k;
        } else {
            put(out, "\xEF\xBF\xBD", 3);
            i += subpart_len(s + i, n - i);
        }
    }
}

static int hexv(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The bytes of one token as the detokenizer should render it, written from the rules (SentencePiece: U+2581 is a
** space, <0xNN> a byte; byte-level BPE: each stand-in character its byte). Returns false when the token is hidden. */
static bool ref_token(const lc_vocab *v, int32_t id, bool show_special, buf *out) {
    const char *p = lc_vocab_piece(v, id);
    size_t n = lc_vocab_piece_len(v, id);
    int t = lc_vocab_type(v, id);
    if (t == LC_TOKTYPE_UNUSED || t == LC_TOKTYPE_UNDEFINED) return false;
    if (t == LC_TOKTYPE_CONTROL || t == LC_TOKTYPE_UNKNOWN) {
        if (!show_special) return false;
        put(out, p, n);
        return true;
    }
    if (t == LC_TOKTYPE_USER_DEFINED) {
        put(out, p, n);
        return true;
    }
    if (t == LC_TOKTYPE_BYTE) {
        if (n == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' && hexv(p[3]) >= 0 && hexv(p[4]) >= 0) {
            uint8_t b = (uint8_t)(hexv(p[3]) * 16 + hexv(p[4]));
            put(out, &b, 1);
        } else {
            put(out, p, n);
        }
        return true;
    }
    for (size_t i = 0; i < n;) {
        if (lc_vocab_get_kind(v) == LC_VOCAB_SPM) {
            if (n - i >= 3 && !memcmp(p + i, "\xE2\x96\x81", 3)) put(out, " ", 1), i += 3;
            else put(out, p + i, 1), i++;
            continue;
        }
        size_t k = wf_len((const uint8_t *)p + i, n - i);
        uint32_t cp = 0;
        if (k == 2) cp = ((uint32_t)p[i] & 0x1F) << 6 | ((uint32_t)p[i + 1] & 0x3F);
        else if (k == 1) cp = (uint8_t)p[i];
        int b = k && k <= 2 ? lc__bpe_cp_to_byte(cp) : -1;
        if (b >= 0) {
            uint8_t c = (uint8_t)b;
            put(out, &c, 1);
        } else {
            put(out, p + i, k ? k : 1);
        }
        i += k ? k : 1;
    }
    return true;
}

/* Expected detokenizer output of ids (lc_detok_init(show_special), then flush). */
static void ref_decode(const lc_vocab *v, const int32_t *ids, size_t n, bool show_special, buf *out) {
    buf raw = {0};
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        size_t before = raw.n;
        if (!ref_token(v, ids[i], show_special, &raw)) continue;
        if (first && lc_vocab_add_space_prefix(v) && raw.n > before && raw.p[before] == ' ') {
            memmove(raw.p + before, raw.p + before + 1, raw.n - before - 1);
            raw.n--;
        }
        first = false;
    }
    sanitize((const uint8_t *)raw.p, raw.n, out);
    free(raw.p);
}

/* Naive SentencePiece BPE over escaped text: merge the adjacent pair forming the highest-scoring piece, leftmost on
** ties, until none forms a piece; symbols start as the characters the lead bytes announce. */
static void ref_spm(const lc_vocab *v, const char *s, size_t n, int32_t **ids, size_t *n_ids) {
    size_t *start = malloc((n + 1) * sizeof *start), *len = malloc((n + 1) * sizeof *len), m = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        size_t k = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (k > n - i) k = n - i;
        start[m] = i, len[m++] = k;
        i += k;
    }
    for (;;) {
        size_t best = SIZE_MAX;
        float best_score = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t id = lc_vocab_find(v, s + start[i], len[i] + len[i + 1]);
            if (id >= 0 && (best == SIZE_MAX || lc_vocab_score(v, id) > best_score))
                best = i, best_score = lc_vocab_score(v, id);
        }
        if (best == SIZE_MAX) break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (m - best - 2) * sizeof *start);
        memmove(len + best + 1, len + best + 2, (m - best - 2) * sizeof *len);
        m--;
    }
    *ids = malloc((n + 1) * sizeof **ids);
    *n_ids = 0;
    for (size_t i = 0; i < m; i++) {
        int32_t id = lc_vocab_find(v, s + start[i], len[i]);
        if (id >= 0) {
            (*ids)[(*n_ids)++] = id;
            continue;
        }
        bool all = true;
        for (size_t k = 0; k < len[i]; k++) all &= lc_vocab_byte_token(v, (uint8_t)s[start[i] + k]) >= 0;
        if (all)
            for (size_t k = 0; k < len[i]; k++) (*ids)[(*n_ids)++] = lc_vocab_byte_token(v, (uint8_t)s[start[i] + k]);
        else
            (*ids)[(*n_ids)++] = lc_vocab_unk(v);
    }
    free(start), free(len);
}

/* Naive byte-level BPE of one word with the fixture's merge list: the whole word if it is a piece, else merge the
** adjacent pair of lowest rank, leftmost on ties. */

static int32_t merge_rank(const lc_vocab *v, int32_t a, int32_t b, int32_t *res) {
    const char *pa = lc_vocab_piece(v, a), *pb = lc_vocab_piece(v, b);
    char key[256];
    snprintf(key, sizeof key, "%s %s", pa, pb);
    for (uint32_t r = 0; r < g_bpe.n_merges; r++)
        if (!strcmp(g_bpe.merge[r], key)) {
            char both[256];
            snprintf(both, sizeof both, "%s%s", pa, pb);
            *res = lc_vocab_find(v, both, strlen(both));
            return (int32_t)r;
        }
    return -1;
}

static void ref_bpe_word(const lc_vocab *v, const char *s, size_t n, int32_t *ids, size_t *n_ids) {
    char *mapped = malloc(2 * n + 1);
    size_t ml = fx_bpe_map(s, n, mapped);
    int32_t whole = lc_vocab_find(v, mapped, ml);
    free(mapped);
    if (whole >= 0) {
        ids[(*n_ids)++] = whole;
        return;
    }
    int32_t *sym = malloc(n * sizeof *sym);
    size_t m = n;
    for (size_t i = 0; i < n; i++) {
        char one[3];
        size_t l = fx_bpe_map(s + i, 1, one);
        sym[i] = lc_vocab_find(v, one, l);
    }
    for (;;) {
        int32_t best_rank = -1, best_res = -1;
        size_t best = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t res, r = merge_rank(v, sym[i], sym[i + 1], &res);
            if (r >= 0 && (best_rank < 0 || r < best_rank)) best_rank = r, best = i, best_res = res;
        }
        if (best_rank < 0) break;
        sym[best] = best_res;
        memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof *sym);
        m--;
    }
    for (size_t i = 0; i < m; i++) ids[(*n_ids)++] = sym[i];
    free(sym);
}

/* ---- the checks ---- */

static void check_ids_equal(const char *what, const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    if (na == nb && (!na || !memcmp(a, b, na * sizeof *a))) return;
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    die("%s: %zu vs %zu ids, first difference at %zu: %d vs %d", what, na, nb, i, i < na ? a[i] : -1,
        i < nb ? b[i] : -1);
}

static void check_encode(int vi, const lc_vocab *v, const char *text, size_t len, unsigned flags) {
    size_t need = 0, n = 0;
    int r = lc_vocab_tokenize(v, text, len, flags, NULL, 0, &need);
    if (!(r == LC_OK && need == 0) && !(r == LC_E_RANGE && need > 0)) die("sizing call: status %d need %zu: %s", r, need, lc_last_error());
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    if ((r = lc_vocab_tokenize(v, text, len, flags, ids, need, &n)) || n != need)
        die("exact cap: status %d, %zu of %zu ids: %s", r, n, need, lc_last_error());
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= lc_vocab_n(v)) die("id %d at %zu out of range", ids[i], i);
    if ((flags & LC_TOK_ADD_BOS) && (n == 0 || ids[0] != lc_vocab_bos(v))) die("BOS missing");
    if (need) {
        int32_t *short_ids = malloc(need * sizeof *short_ids);
        size_t n2 = 0;
        r = lc_vocab_tokenize(v, text, len, flags, short_ids, need - 1, &n2);
        if (r != LC_E_RANGE || n2 != need) die("cap - 1: status %d, n %zu (need %zu)", r, n2, need);
        if (need > 1 && memcmp(short_ids, ids, (need - 1) * sizeof *ids)) die("cap - 1: different prefix");
        free(short_ids);
    }

    /* lossless: every byte of the text is in the ids (control tokens parsed from the text count as their text) */
    size_t skip = (flags & LC_TOK_ADD_BOS) ? 1 : 0;
    bool has_special = false;
    for (size_t i = skip; i < n; i++) has_special |= lc_vocab_type(v, ids[i]) != LC_TOKTYPE_NORMAL &&
                                                     lc_vocab_type(v, ids[i]) != LC_TOKTYPE_BYTE;
    bool spm = lc_vocab_get_kind(v) == LC_VOCAB_SPM;
    if (vi != V_SPM_NOBYTES && (!spm || !has_special)) {
        /* SentencePiece partitions the escaped text (U+2581 for spaces): a space right after a lead byte whose
        ** character is cut short goes into that symbol and comes out as the bytes of U+2581, as in llama.cpp */
        buf raw = {0}, want = {0};
        for (size_t i = skip; i < n; i++) {
            char tb[4096];
            int k = spm && lc_vocab_type(v, ids[i]) == LC_TOKTYPE_NORMAL
                        ? (int)lc_vocab_piece_len(v, ids[i])
                        : lc_vocab_token_bytes(v, ids[i], tb, sizeof tb);
            if (k < 0) die("token_bytes(%d): %s", ids[i], lc_last_error());
            put(&raw, spm && lc_vocab_type(v, ids[i]) == LC_TOKTYPE_NORMAL ? lc_vocab_piece(v, ids[i]) : tb, (size_t)k);
        }
        if (spm && lc_vocab_add_space_prefix(v) && len) put(&want, "\xE2\x96\x81", 3);
        for (size_t i = 0; i < len; i++) {
            if (spm && text[i] == ' ') put(&want, "\xE2\x96\x81", 3);
            else put(&want, text + i, 1);
        }
        if (raw.n != want.n || (raw.n && memcmp(raw.p, want.p, raw.n)))
            die("lossless: the ids' bytes (%zu) are not the text (%zu bytes)", raw.n, want.n);
        free(raw.p), free(want.p);
        /* and the detokenizer gives the text back when it is valid UTF-8 (control tokens shown as their text) and,
        ** for SentencePiece, holds no U+2581 of its own (which decodes as a space, as in SentencePiece) */
        if (valid_utf8((const uint8_t *)text, len) && !(spm && memmem(text, len, "\xE2\x96\x81", 3))) {
            lc_detok d;
            lc_detok_init(&d, true);
            buf out = {0};
            for (size_t i = skip; i <= n; i++) {
                char ob[4096];
                int k = i < n ? lc_vocab_detok_push(v, &d, ids[i], ob, sizeof ob) : lc_detok_flush(&d, ob, sizeof ob);
                if (k < 0) die("detok: %s", lc_last_error());
                put(&out, ob, (size_t)k);
            }
            if (out.n != len || (len && memcmp(out.p, text, len))) die("round trip: %zu bytes back for %zu", out.n, len);
            free(out.p);
        }
    }

    /* the fixtures' BPE cores against the naive encoders (short texts: the references are quadratic) */
    if ((vi == V_SPM || vi == V_SPM_NOBYTES) && len <= 512) {
        char *esc = malloc(3 * len + 4);
        size_t el = 0;
        memcpy(esc, "\xE2\x96\x81", 3), el = 3;
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') memcpy(esc + el, "\xE2\x96\x81", 3), el += 3;
            else esc[el++] = text[i];
        }
        int32_t *got = NULL, *want = NULL;
        size_t n_got = 0, cap_got = 0, n_want = 0;
        if (lc__spm_encode(v, esc, el, &got, &n_got, &cap_got)) die("lc__spm_encode: %s", lc_last_error());
        ref_spm(v, esc, el, &want, &n_want);
        check_ids_equal("SentencePiece BPE vs the naive reference", got, n_got, want, n_want);
        lc__free(got), free(want), free(esc);
    }
    if (vi == V_BPE && len <= 512) {
        int32_t *got = NULL, *want = malloc((len + 1) * sizeof *want);
        size_t n_got = 0, cap_got = 0, n_want = 0, ends[513];
        if (lc__bpe_encode(v, text, len, &got, &n_got, &cap_got)) die("lc__bpe_encode: %s", lc_last_error());
        size_t n_words = lc__llama3_split(text, len, ends, 513), start = 0;
        for (size_t w = 0; w < n_words; w++) {
            if (ends[w] <= start || ends[w] > len) die("pre-tokenizer: word %zu ends at %zu after %zu", w, ends[w], start);
            ref_bpe_word(v, text + start, ends[w] - start, want, &n_want);
            start = ends[w];
        }
        if (start != len) die("pre-tokenizer: words end at %zu of %zu", start, len);
        check_ids_equal("byte-level BPE vs the naive reference", got, n_got, want, n_want);
        lc__free(got), free(want);
    }
    free(ids);
}

static void check_decode(const lc_vocab *v, const uint8_t *data, size_t size, bool show_special, bool small) {
    const uint32_t nv = lc_vocab_n(v);
    const size_t w = nv > 65536 ? 3 : 2;
    size_t n = size / w;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        uint32_t x = data[i * w] | (uint32_t)data[i * w + 1] << 8 | (w == 3 ? (uint32_t)data[i * w + 2] << 16 : 0);
        ids[i] = (int32_t)(x % nv);
    }
    lc_detok d;
    lc_detok_init(&d, show_special);
    buf out = {0};
    char ob[8192];
    for (size_t i = 0; i <= n; i++) {
        size_t cap = small && size ? (size_t)(data[i % size] % 8) : sizeof ob;
        lc_detok saved = d;
        int k = i < n ? lc_vocab_detok_push(v, &d, ids[i], ob, cap) : lc_detok_flush(&d, ob, cap);
        if (k == LC_E_RANGE) {
            if (memcmp(&saved, &d, sizeof d)) die("a too-small buffer changed the detokenizer state");
            k = i < n ? lc_vocab_detok_push(v, &d, ids[i], ob, sizeof ob) : lc_detok_flush(&d, ob, sizeof ob);
        }
        if (k < 0) die("detok: status %d: %s", k, lc_last_error());
        if (i < n && (size_t)k > 4 * ((size_t)lc_vocab_piece_len(v, ids[i]) + 1)) die("detok: %d bytes exceed the bound", k);
        put(&out, ob, (size_t)k);
    }
    if (d.n_pending) die("pending bytes after flush");
    buf want = {0};
    ref_decode(v, ids, n, show_special, &want);
    if (out.n != want.n || (out.n && memcmp(out.p, want.p, out.n))) {
        size_t i = 0;
        while (i < out.n && i < want.n && out.p[i] == want.p[i]) i++;
        die("decode of %zu ids: %zu bytes, reference %zu; first difference at byte %zu", n, out.n, want.n, i);
    }
    free(out.p), free(want.p), free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    int vi = (ctl & 7) % g_n_vocabs;
    const lc_vocab *v = g_vocab[vi];
    data++, size--;
    if (ctl & 0x20) {
        check_decode(v, data, size, ctl & 0x40, ctl & 0x80);
        return 0;
    }
    unsigned flags = ((ctl & 0x08) ? LC_TOK_PARSE_SPECIAL : 0) | ((ctl & 0x10) ? LC_TOK_ADD_BOS : 0);
    check_encode(vi, v, (const char *)data, size, flags);
    return 0;
}
