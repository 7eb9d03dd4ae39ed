/* finetune_data.c - fine-tuning data: plain text (the pre-training's token streams, train_data.c) or chat JSONL,
** one conversation per line ({"messages": [...]} or a bare list of OpenAI-style messages).
**
** A conversation is rendered with the model's own chat template through a rendering-only lc_chat session and
** tokenized as lc_chat tokenizes a prompt (control tokens parsed; BOS when the tokenizer adds one and the template did
** not write it). The assistant's tokens are found from the template itself: for assistant message i, the text of
** messages [0, i) with the generation prompt and the text of messages [0, i] are prefixes of the whole rendering, and
** the bytes between them are the assistant's turn (its content and the end-of-turn marker the template writes).
** Tokens are mapped back to bytes of the rendering (control tokens written in the text take their bytes; an added
** BOS none; SentencePiece's inserted leading space is allowed for), and a token is an assistant token when it starts
** inside such a span. Only those carry a loss. Each conversation is one sequence (truncated at T+1 tokens, padded).
*/
#include "finetune.h"

#include "../chat/chat.h"
#include "../tokenizer/tokenizer.h"

#include <stdio.h>

#define MAX_FILE ((size_t)1 << 32)

typedef struct span {
    size_t a, b;
} span;

/* Renders ch's messages (with or without the generation prompt); checks that the text is a prefix of full. */
static int render_prefix(lc_chat *ch, bool gen, const char *full, size_t full_n, size_t i, size_t *len) {
    char *s = NULL;
    size_t n = 0;
    int r = lc_chat_render(ch, gen, &s, &n);
    if (!r && (n > full_n || memcmp(s, full, n)))
        r = LC_ERR(LC_E_INVALID, "the chat template does not render the conversation up to message %zu%s as the start "
                   "of the whole conversation, so the assistant's tokens cannot be told apart", i,
                   gen ? " (with the generation prompt)" : "");
    lc_free(s);
    *len = n;
    return r;
}

/* Byte spans [start, end) of the tokens in text (see the file comment); LC_E_INVALID when they do not line up. */
static int token_starts(const lc_tokenizer *t, const int32_t *ids, size_t n, const char *text, size_t len,
                        size_t *start) {
    char buf[1024];
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const int k = lc_tokenizer_token_bytes(t, ids[i], buf, sizeof buf);
        if (k < 0) return LC_ERR(LC_E_INVALID, "token %d has a piece too long to align with the text", ids[i]);
        const size_t kn = (size_t)k;
        start[i] = pos;
        if (kn <= len - pos && !memcmp(text + pos, buf, kn)) pos += kn;
        else if (kn && buf[0] == ' ' && kn - 1 <= len - pos && !memcmp(text + pos, buf + 1, kn - 1)) pos += kn - 1;
        else if (!lc_tokenizer_is_control(t, ids[i]))
            return LC_ERR(LC_E_INVALID, "the tokens do not line up with the rendered text at byte %zu", pos);
    }
    return LC_OK;
}

int ft_chat_encode(const lc_model *m, lc_chat *ch, const char *line, size_t len, int32_t **tok, uint8_t **mask,
                   size_t *n_out) {
    *tok = NULL, *mask = NULL, *n_out = 0;
    jv_arena a = {0};
    jv v;
    int r = jv_parse_json(&a, line, len, "conversation", &v);
    const jv *msgs = r ? NULL : v.k == JV_LIST ? &v : v.k == JV_DICT ? jv_dict_get(v.u.d, "messages", 8) : NULL;
    if (!r && (!msgs || msgs->k != JV_LIST))
        r = LC_ERR(LC_E_INVALID, "expected {\"messages\": [...]} or a list of messages");
    jbuf js = {0};
    const char *bad = NULL;
    if (!r && !jv_to_json(&js, *msgs, -1, &bad)) r = LC_ERR(LC_E_INVALID, "the messages hold %s", bad);
    if (!r && js.failed) r = LC_ERR(LC_E_NOMEM, "out of memory");
    if (!r) r = lc_chat_set_messages(ch, js.p, js.n);
    lc__free(js.p);
    const size_t n_msg = r ? 0 : msgs->u.l->n;
    bool *is_asst = r ? NULL : lc__calloc(n_msg + 1, sizeof *is_asst);
    if (!r && !is_asst) r = LC_ERR(LC_E_NOMEM, "out of memory");
    for (size_t i = 0; !r && i < n_msg; i++) {
        const jv *role = jv_dict_get(msgs->u.l->a[i].u.d, "role", 4); /* a string: lc_chat_set_messages checked */
        is_asst[i] = role->u.s.n == 9 && !memcmp(role->u.s.p, "assistant", 9);
    }
    jv_arena_free(&a);
    char *full = NULL;
    size_t full_n = 0, n_span = 0;
    span *sp = r ? NULL : lc__calloc(n_msg + 1, sizeof *sp);
    if (!r && !sp) r = LC_ERR(LC_E_NOMEM, "out of memory");
    if (!r) r = lc_chat_render(ch, false, &full, &full_n);
    for (size_t i = n_msg; !r && i-- > 0;) { /* descending: each truncation only shortens the list */
        if (!is_asst[i]) continue;
        size_t q = 0, p = 0;
        lc_chat_truncate(ch, i + 1);
        r = render_prefix(ch, false, full, full_n, i, &q);
        lc_chat_truncate(ch, i);
        if (!r) r = render_prefix(ch, true, full, full_n, i, &p);
        if (!r && p < q) sp[n_span++] = (span){p, q};
    }
    lc__free(is_asst);
    /* tokens as lc_chat makes them */
    int32_t *ids = NULL;
    size_t *st = NULL, need = 0, n = 0;
    if (!r) {
        lc_tokenize(m, full, full_n, LC_TOK_PARSE_SPECIAL, NULL, 0, &need);
        ids = lc__malloc((need + 1) * sizeof *ids);
        st = lc__malloc((need + 1) * sizeof *st);
        if (!ids || !st) r = LC_ERR(LC_E_NOMEM, "out of memory");
    }
    if (!r) r = lc_tokenize(m, full, full_n, LC_TOK_PARSE_SPECIAL, ids + 1, need, &need);
    if (!r) {
        const int32_t bos = lc_token_bos(m);
        const bool add = bos >= 0 && lc_token_add_bos(m) && (need == 0 || ids[1] != bos);
        if (add) ids[0] = bos;
        else memmove(ids, ids + 1, need * sizeof *ids);
        n = need + add;
        r = token_starts(lc_model_tokenizer(m), ids + add, need, full, full_n, st + add);
        if (add) st[0] = SIZE_MAX; /* no bytes: never an assistant token */
    }
    uint8_t *mk = r ? NULL : lc__calloc(n + 1, 1);
    if (!r && !mk) r = LC_ERR(LC_E_NOMEM, "out of memory");
    for (size_t i = 0; !r && i < n; i++)
        for (size_t s = 0; s < n_span; s++)
            if (st[i] >= sp[s].a && st[i] < sp[s].b) mk[i] = 1;
    lc_free(full);
    lc__free(sp);
    lc__free(st);
    if (r) {
        lc__free(ids);
        lc__free(mk);
        return r;
    }
    *tok = ids, *mask = mk, *n_out = n;
    return LC_OK;
}

/* ---- the samples ---- */

typedef struct conv {
    int32_t *tok;
    uint8_t *mask;
    size_t n;
} conv;

typedef struct conv_list {
    conv *c;
    size_t n, cap;
} conv_list;

static void conv_list_free(conv_list *l) {
    for (size_t i = 0; i < l->n; i++) lc__free(l->c[i].tok), lc__free(l->c[i].mask);
    lc__free(l->c);
}

static int read_chat_file(conv_list *l, const lc_model *m, lc_chat *ch, const char *path, size_t *n_skipped) {
    uint8_t *buf = NULL;
    size_t size = 0;
    int r = lc__read_file(path, &buf, &size, MAX_FILE);
    if (r) return r;
    const char *t = (const char *)buf;
    size_t line_no = 0;
    for (size_t pos = 0; !r && pos < size; line_no++) {
        const char *nl = memchr(t + pos, '\n', size - pos);
        const size_t end = nl ? (size_t)(nl - t) : size, ll = end - pos;
        const char *s = t + pos;
        pos = nl ? end + 1 : size;
        size_t k = 0;
        while (k < ll && strchr(" \t\r", s[k])) k++;
        if (k == ll) continue; /* blank line */
        if (l->n == l->cap) {
            const size_t cap = l->cap ? 2 * l->cap : 64;
            conv *c = lc__realloc(l->c, cap * sizeof *c);
            if (!c) return lc__free(buf), LC_ERR(LC_E_NOMEM, "finetune: out of memory");
            l->c = c, l->cap = cap;
        }
        conv *c = &l->c[l->n];
        r = ft_chat_encode(m, ch, s, ll, &c->tok, &c->mask, &c->n);
        if (r) {
            lc__error_prefix(r, "finetune: %s:%zu: ", path, line_no + 1);
            break;
        }
        bool any = false;
        for (size_t i = 1; i < c->n; i++) any |= c->mask[i] != 0;
        if (any) l->n++;
        else (*n_skipped)++, lc__free(c->tok), lc__free(c->mask);
    }
    lc__free(buf);
    return r;
}

int ft_data_load(ft_data *d, const lc_model *m, const char *const *paths, size_t n_paths, bool chat,
                 const char *doc_sep, int max_T, double val_frac) {
    memset(d, 0, sizeof *d);
    d->chat = chat;
    if (n_paths == 0) return LC_ERR(LC_E_INVALID, "finetune: no data file given");
    if (!(val_frac >= 0.0 && val_frac < 1.0))
        return LC_ERR(LC_E_INVALID, "finetune: validation fraction %g must be in [0, 1)", val_frac);
    const lc_tokenizer *tok = lc_model_tokenizer(m);
    if (!tok) return LC_ERR(LC_E_INVALID, "finetune: the model has no tokenizer");
    if (!chat) {
        d->T = max_T;
        int r = tr_data_load(&d->text, paths, n_paths, doc_sep, tok, max_T, val_frac);
        d->n_train_tokens = d->text.n_train, d->n_val_tokens = d->text.n_val, d->hash = d->text.hash;
        return r;
    }
    lc_chat *ch = NULL;
    int r = lc_chat_new(m, NULL, NULL, &ch);
    conv_list l = {0};
    for (size_t i = 0; !r && i < n_paths; i++) r = read_chat_file(&l, m, ch, paths[i], &d->n_skipped);
    lc_chat_free(ch);
    if (!r && l.n == 0)
        r = LC_ERR(LC_E_INVALID, "finetune: no conversation with an assistant turn in the data (%zu without one)",
                   d->n_skipped);
    size_t longest = 2;
    for (size_t i = 0; i < l.n; i++) longest = LC_MAX(longest, l.c[i].n);
    const int T = d->T = (int)LC_MIN((size_t)max_T, longest - 1);
    bool *held = r ? NULL : lc__calloc(l.n, sizeof *held);
    d->seq = r ? NULL : lc__malloc(l.n * 2 * (size_t)T * sizeof(int32_t));
    if (!r && (!held || !d->seq)) r = LC_ERR(LC_E_NOMEM, "finetune: out of memory for %zu conversations", l.n);
    size_t n_held = 0;
    for (size_t c = 0; !r && c < l.n; c++) {
        held[c] = (size_t)((double)(c + 1) * val_frac) > (size_t)((double)c * val_frac);
        n_held += held[c];
    }
    if (!r && val_frac > 0.0 && n_held == 0 && l.n >= 2) held[l.n - 1] = true, n_held = 1;
    if (!r && n_held == l.n) held[0] = false, n_held--; /* keep one for training */
    const int32_t pad = lc_token_eos(m) >= 0 ? lc_token_eos(m) : 0;
    for (size_t pass = 0, k = 0; !r && pass < 2; pass++) /* training conversations, then validation ones */
        for (size_t c = 0; c < l.n; c++) {
            if (held[c] != (pass == 1)) continue;
            const conv *cv = &l.c[c];
            int32_t *in = d->seq + k * 2 * (size_t)T, *tg = in + T;
            for (int t = 0; t < T; t++) {
                const size_t nx = (size_t)t + 1;
                in[t] = (size_t)t < cv->n ? cv->tok[t] : pad;
                tg[t] = nx < cv->n && cv->mask[nx] ? cv->tok[nx] : -1;
                if (tg[t] >= 0) *(pass ? &d->n_val_tokens : &d->n_train_tokens) += 1;
            }
            d->n_truncated += cv->n > (size_t)T + 1;
            k++;
        }
    d->n_train = l.n - n_held, d->n_val = n_held;
    uint64_t h = 0xCBF29CE484222325ull ^ (uint64_t)T ^ ((uint64_t)d->n_train << 32);
    for (size_t i = 0; !r && i < l.n * 2 * (size_t)T; i++) h = (h ^ (uint32_t)d->seq[i]) * 0x100000001B3ull;
    d->hash = h;
    lc__free(held);
    conv_list_free(&l);
    if (r) ft_data_free(d);
    return r;
}

void ft_data_free(ft_data *d) {
    tr_data_free(&d->text);
    lc__free(d->seq);
    memset(d, 0, sizeof *d);
}
