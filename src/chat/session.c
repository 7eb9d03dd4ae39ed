/* session.c - a conversation with a model through its chat template, keeping the KV cache across turns.
**
** Every turn renders the whole message list with the template, tokenizes it (control tokens parsed, BOS only when
** the tokenizer wants one and the template did not write it) and decodes only the tokens after the longest common
** prefix with what this session's sequence holds in the KV cache. Invariant: kv[0..n_kv) are exactly the tokens of
** the session's sequence in the cache, so a turn with reuse sees the same tokens as a fresh context given the full
** prompt. An answer is appended to the history in the form the template renders back to what the model wrote (text,
** or tool_calls for Llama 3.1 calls), so the next turn's prefix matches. Nothing is ever cut to fit: a conversation
** longer than the context is refused (LC_E_RANGE) and the caller chooses (lc_chat_drop_oldest, clear, bigger context).
*/
#include "chat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define PYTHON_TAG "<|python_tag|>"

typedef struct chat_msg {
    char *json; /* one message object, compact JSON */
    char *role;
} chat_msg;

struct lc_chat {
    const lc_model *m;
    lc_context *c;
    lc_chat_params p;
    lc_template *tpl;
    char *tools;     /* JSON list or NULL */
    char *defaults;  /* ", \"bos_token\": ..." members added to every render (caller's vars last, so they win) */
    char *builtin;   /* names of vars' builtin_tools, each followed by NUL; empty list: NULL */
    size_t n_builtin;
    chat_msg *msgs;
    size_t n_msgs, cap_msgs;
    /* the KV cache of sequence p.seq_id */
    int32_t *kv, n_kv, n_ctx;
    int32_t *seq;    /* p.n_batch copies of the sequence id, for lc_decode */
    /* the answer being generated */
    bool in_turn, ended;
    int32_t logits_row;
    lc_detok detok;
    lc_toolcall_parser *tp;
    jbuf answer;     /* raw text of the answer (a python tag as its text) */
    jbuf shown;      /* what the last step or end returns */
    int last_call_kind;
    lc_chat_stats st;
    char piece[4096];
};

lc_chat_params lc_chat_default_params(void) {
    lc_chat_params p;
    memset(&p, 0, sizeof p);
    p.n_batch = 512;
    return p;
}

/* ---- JSON text helpers ---- */

/* Whether a failed jv_parse_json ran out of memory (it reports that as LC_E_INVALID "out of memory"). */
static bool parse_oom(int r, const jv_arena *a) {
    return r == LC_E_NOMEM || a->failed || strstr(lc_last_error(), "out of memory") != NULL;
}

/* s[0..n) as a JSON string (UTF-8 kept, control characters escaped, invalid bytes as U+FFFD). */
static void put_json_str(jbuf *b, const char *s, size_t n) {
    jbuf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            jbuf_put(b, "\\", 1), jbuf_put(b, (const char *)&s[i], 1), i++;
        } else if (c < 0x20) {
            char e[8];
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (!named) snprintf(e, sizeof e, "\\u%04x", c), named = e;
            jbuf_puts(b, named), i++;
        } else if (c < 0x80) {
            jbuf_put(b, (const char *)&s[i], 1), i++;
        } else { /* a whole valid UTF-8 sequence, or U+FFFD for one bad byte */
            const int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            bool ok = len > 0 && i + (size_t)len <= n;
            for (int k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + (size_t)k] & 0xC0) == 0x80;
            if (ok && len == 3) {
                const unsigned c1 = (unsigned char)s[i + 1];
                ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
            }
            if (ok && len == 4) {
                const unsigned c1 = (unsigned char)s[i + 1];
                ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
            }
            if (ok) jbuf_put(b, s + i, (size_t)len), i += (size_t)len;
            else jbuf_puts(b, "\xEF\xBF\xBD"), i++;
        }
    }
    jbuf_put(b, "\"", 1);
}

/* Checks that text[0..n) is JSON of the kind wanted (JV_LIST, JV_DICT, or JV_UNDEF: any) and returns a copy. */
static int json_copy(const char *text, size_t n, jv_kind want, const char *what, char **out) {
    jv_arena a = {0};
    jv v;
    int r = jv_parse_json(&a, text, n, what, &v);
    if (!r && want != JV_UNDEF && v.k != want)
        r = LC_ERR(LC_E_INVALID, "%s: expected a JSON %s", what, want == JV_LIST ? "list" : "object");
    jv_arena_free(&a);
    if (r) return r;
    *out = lc__strndup(text, n);
    return *out ? 0 : LC_ERR(LC_E_NOMEM, "%s: out of memory", what);
}

/* ---- messages ---- */

static int msg_insert(lc_chat *ch, size_t at, const char *json, size_t n, const char *role) {
    if (ch->n_msgs == ch->cap_msgs) {
        const size_t cap = ch->cap_msgs ? 2 * ch->cap_msgs : 16;
        chat_msg *m = lc__realloc(ch->msgs, sizeof *m * cap);
        if (!m) return LC_ERR(LC_E_NOMEM, "chat: out of memory for %zu messages", cap);
        ch->msgs = m, ch->cap_msgs = cap;
    }
    chat_msg m = {lc__strndup(json, n), lc__strdup(role)};
    if (!m.json || !m.role) {
        lc__free(m.json), lc__free(m.role);
        return LC_ERR(LC_E_NOMEM, "chat: out of memory for a message of %zu bytes", n);
    }
    memmove(ch->msgs + at + 1, ch->msgs + at, sizeof *ch->msgs * (ch->n_msgs - at));
    ch->msgs[at] = m;
    ch->n_msgs++;
    return 0;
}

static void msg_remove(lc_chat *ch, size_t at, size_t count) {
    if (!count) return;
    for (size_t i = at; i < at + count; i++) lc__free(ch->msgs[i].json), lc__free(ch->msgs[i].role);
    memmove(ch->msgs + at, ch->msgs + at + count, sizeof *ch->msgs * (ch->n_msgs - at - count));
    ch->n_msgs -= count;
}

/* Appends a message built in b (a JSON object) with its role. */
static int msg_append_buf(lc_chat *ch, jbuf *b, const char *role) {
    if (b->failed) {
        lc__free(b->p);
        return LC_ERR(LC_E_NOMEM, "chat: out of memory");
    }
    const int r = msg_insert(ch, ch->n_msgs, b->p, b->n, role);
    lc__free(b->p);
    return r;
}

int lc_chat_add(lc_chat *ch, const char *role, const char *content) {
    if (!role || !content) return LC_ERR(LC_E_INVALID, "lc_chat_add: role and content are required");
    jbuf b = {0};
    jbuf_puts(&b, "{\"role\": ");
    put_json_str(&b, role, strlen(role));
    jbuf_puts(&b, ", \"content\": ");
    put_json_str(&b, content, strlen(content));
    jbuf_puts(&b, "}");
    return msg_append_buf(ch, &b, role);
}

/* Checks one message (a JSON object with a string "role") and appends its compact JSON. */
static int add_value(lc_chat *ch, jv v, size_t index) {
    const jv *role = v.k == JV_DICT ? jv_dict_get(v.u.d, "role", 4) : NULL;
    if (!role || role->k != JV_STR)
        return LC_ERR(LC_E_INVALID, "chat: message %zu is not an object with a \"role\" string", index);
    jbuf b = {0};
    const char *bad;
    if (!jv_to_json(&b, v, -1, &bad)) {
        lc__free(b.p);
        return LC_ERR(LC_E_INVALID, "chat: message %zu holds %s", index, bad);
    }
    char *r = lc__strndup(role->u.s.p, role->u.s.n);
    if (!r) {
        lc__free(b.p);
        return LC_ERR(LC_E_NOMEM, "chat: out of memory");
    }
    const int st = msg_append_buf(ch, &b, r);
    lc__free(r);
    return st;
}

int lc_chat_add_json(lc_chat *ch, const char *message, size_t len) {
    jv_arena a = {0};
    jv v;
    int r = jv_parse_json(&a, message, len, "message", &v);
    if (!r) r = add_value(ch, v, ch->n_msgs);
    jv_arena_free(&a);
    return r;
}

int lc_chat_add_tool_result(lc_chat *ch, const char *content, size_t len) {
    const char *role = ch->last_call_kind == LC_TOOL_CUSTOM ? "tool" : "ipython";
    jbuf b = {0};
    jbuf_puts(&b, "{\"role\": \"");
    jbuf_puts(&b, role);
    jbuf_puts(&b, "\", \"content\": ");
    jv_arena a = {0};
    jv v;
    size_t s = 0, e = len;
    while (s < e && strchr(" \t\r\n", content[s])) s++;
    while (e > s && strchr(" \t\r\n", content[e - 1])) e--;
    const char *bad;
    const int r = e > s ? jv_parse_json(&a, content + s, e - s, "tool result", &v) : LC_E_INVALID;
    if (!r) jv_to_json(&b, v, -1, &bad);
    else if (parse_oom(r, &a)) b.failed = true;
    else put_json_str(&b, content, len); /* not JSON: the text as a string */
    jv_arena_free(&a);
    jbuf_puts(&b, "}");
    return msg_append_buf(ch, &b, role);
}

int lc_chat_set_system(lc_chat *ch, const char *text) {
    const bool has = ch->n_msgs && !strcmp(ch->msgs[0].role, "system");
    if (has) msg_remove(ch, 0, 1);
    if (!text || !*text) return 0;
    jbuf b = {0};
    jbuf_puts(&b, "{\"role\": \"system\", \"content\": ");
    put_json_str(&b, text, strlen(text));
    jbuf_puts(&b, "}");
    if (b.failed) {
        lc__free(b.p);
        return LC_ERR(LC_E_NOMEM, "chat: out of memory");
    }
    const int r = msg_insert(ch, 0, b.p, b.n, "system");
    lc__free(b.p);
    return r;
}

void lc_chat_clear(lc_chat *ch, bool keep_system) {
    const size_t keep = keep_system && ch->n_msgs && !strcmp(ch->msgs[0].role, "system") ? 1 : 0;
    msg_remove(ch, keep, ch->n_msgs - keep);
}

size_t lc_chat_n_messages(const lc_chat *ch) { return ch->n_msgs; }

void lc_chat_truncate(lc_chat *ch, size_t n) {
    if (n < ch->n_msgs) msg_remove(ch, n, ch->n_msgs - n);
}

int lc_chat_drop_oldest(lc_chat *ch, size_t *n_dropped) {
    size_t u = 0;
    while (u < ch->n_msgs && strcmp(ch->msgs[u].role, "user")) u++;
    if (u == ch->n_msgs) return LC_ERR(LC_E_RANGE, "chat: no exchange to drop (no user message)");
    size_t v = u + 1;
    while (v < ch->n_msgs && strcmp(ch->msgs[v].role, "user")) v++;
    /* messages before the first user message other than the system prompt go with it */
    const size_t from = ch->n_msgs && !strcmp(ch->msgs[0].role, "system") ? 1 : 0;
    if (n_dropped) *n_dropped = v - from;
    msg_remove(ch, from, v - from);
    return 0;
}

static void messages_to(const lc_chat *ch, jbuf *b, const char *sep) {
    jbuf_puts(b, "[");
    for (size_t i = 0; i < ch->n_msgs; i++) {
        if (i) jbuf_puts(b, sep);
        jbuf_puts(b, ch->msgs[i].json);
    }
    jbuf_puts(b, "]");
}

int lc_chat_get_messages(const lc_chat *ch, char **out, size_t *len) {
    jbuf b = {0};
    jbuf_puts(&b, "[\n  ");
    for (size_t i = 0; i < ch->n_msgs; i++) {
        if (i) jbuf_puts(&b, ",\n  ");
        jbuf_puts(&b, ch->msgs[i].json);
    }
    jbuf_puts(&b, ch->n_msgs ? "\n]\n" : "]\n");
    if (b.failed) {
        lc__free(b.p);
        return LC_ERR(LC_E_NOMEM, "chat: out of memory");
    }
    *out = b.p;
    if (len) *len = b.n;
    return 0;
}

/* ---- rendering and tokens ---- */

int lc_chat_render(const lc_chat *ch, bool add_generation_prompt, char **out, size_t *len) {
    jbuf v = {0};
    jbuf_puts(&v, "{\"messages\": ");
    messages_to(ch, &v, ", ");
    jbuf_puts(&v, ", \"tools\": ");
    jbuf_puts(&v, ch->tools ? ch->tools : "null");
    jbuf_puts(&v, add_generation_prompt ? ", \"add_generation_prompt\": true" : ", \"add_generation_prompt\": false");
    jbuf_puts(&v, ch->defaults);
    if (ch->p.vars_json) { /* the caller's variables come last and win (a repeated key: the last one counts) */
        const char *s = ch->p.vars_json;
        size_t n = strlen(s);
        while (n && strchr(" \t\r\n", s[n - 1])) n--;
        while (*s && strchr(" \t\r\n", *s)) s++, n--;
        s++, n -= 2; /* inside the braces (checked an object at creation) */
        while (n && strchr(" \t\r\n", *s)) s++, n--;
        if (n) jbuf_puts(&v, ", "), jbuf_put(&v, s, n);
    }
    jbuf_puts(&v, "}");
    int r = v.failed ? LC_ERR(LC_E_NOMEM, "chat: out of memory") : lc_template_render(ch->tpl, v.p, v.n, out, len);
    lc__free(v.p);
    return r;
}

/* The rendered conversation as tokens (malloc'd, *n of them). */
static int prompt_tokens(const lc_chat *ch, int32_t **ids, int32_t *n) {
    char *text = NULL;
    size_t tlen = 0, need = 0;
    int r = lc_chat_render(ch, true, &text, &tlen);
    if (r) return r;
    lc_tokenize(ch->m, text, tlen, LC_TOK_PARSE_SPECIAL, NULL, 0, &need);
    const int32_t bos = lc_token_bos(ch->m);
    int32_t *t = lc__malloc(sizeof *t * (need + 2));
    if (!t) {
        lc_free(text);
        return LC_ERR(LC_E_NOMEM, "chat: out of memory for %zu prompt tokens", need);
    }
    r = lc_tokenize(ch->m, text, tlen, LC_TOK_PARSE_SPECIAL, t + 1, need + 1, &need);
    lc_free(text);
    if (r) {
        lc__free(t);
        return r;
    }
    /* BOS when the tokenizer adds one and the template did not write it */
    const bool add = bos >= 0 && lc_token_add_bos(ch->m) && (need == 0 || t[1] != bos);
    if (add) t[0] = bos;
    else memmove(t, t + 1, sizeof *t * need);
    *ids = t;
    *n = (int32_t)need + (add ? 1 : 0);
    return 0;
}

/* ---- lifecycle ---- */

int lc_chat_new(const lc_model *m, lc_context *c, const lc_chat_params *p, lc_chat **out) {
    *out = NULL;
    if (!m) return LC_ERR(LC_E_INVALID, "lc_chat_new: no model");
    lc_chat *ch = lc__calloc(1, sizeof *ch);
    if (!ch) return LC_ERR(LC_E_NOMEM, "lc_chat_new: out of memory");
    ch->m = m, ch->c = c;
    ch->p = p ? *p : lc_chat_default_params();
    ch->p.vars_json = NULL, ch->p.tools_json = NULL, ch->p.template_src = NULL;
    if (!ch->p.n_batch) ch->p.n_batch = 512;
    int r = 0;
    /* the template */
    const char *src = p ? p->template_src : NULL, *name = p && p->template_name ? p->template_name : NULL;
    size_t slen = p ? p->template_len : 0;
    if (!src) {
        bool builtin;
        r = lc_model_chat_template(m, &src, &slen, &builtin);
        if (!name) name = builtin ? "llamac's built-in template" : "tokenizer.chat_template";
    }
    if (!r) r = lc_template_parse(src, slen, name ? name : "template", &ch->tpl);
    /* tools and variables, checked once */
    char *vars = NULL;
    if (!r && p && p->tools_json) r = json_copy(p->tools_json, strlen(p->tools_json), JV_LIST, "tools", &ch->tools);
    if (!r && p && p->vars_json) r = json_copy(p->vars_json, strlen(p->vars_json), JV_DICT, "template variables", &vars);
    ch->p.vars_json = vars;
    if (!r && vars) { /* builtin_tools: which built-in calls the template writes back as calls */
        jv_arena a = {0};
        jv v;
        r = jv_parse_json(&a, vars, strlen(vars), "template variables", &v);
        const jv *bt = r ? NULL : jv_dict_get(v.u.d, "builtin_tools", 13);
        jbuf names = {0};
        if (bt && bt->k == JV_LIST)
            for (size_t i = 0; i < bt->u.l->n; i++)
                if (bt->u.l->a[i].k == JV_STR) jbuf_put(&names, bt->u.l->a[i].u.s.p, bt->u.l->a[i].u.s.n + 1), ch->n_builtin++;
        jv_arena_free(&a);
        if (names.failed) r = LC_ERR(LC_E_NOMEM, "lc_chat_new: out of memory");
        ch->builtin = names.p;
    }
    if (!r) { /* bos_token, eos_token and today's date, as the template variables Hugging Face passes */
        jbuf d = {0};
        const char *bos = lc_token_bos(m) >= 0 ? lc_token_piece(m, lc_token_bos(m)) : NULL;
        const char *eos = lc_token_eos(m) >= 0 ? lc_token_piece(m, lc_token_eos(m)) : NULL;
        jbuf_puts(&d, ", \"bos_token\": ");
        put_json_str(&d, bos ? bos : "", bos ? strlen(bos) : 0);
        jbuf_puts(&d, ", \"eos_token\": ");
        put_json_str(&d, eos ? eos : "", eos ? strlen(eos) : 0);
        char date[64];
        const time_t now = time(NULL);
        struct tm tmv;
        if (localtime_r(&now, &tmv) && strftime(date, sizeof date, "%d %b %Y", &tmv)) {
            jbuf_puts(&d, ", \"date_string\": ");
            put_json_str(&d, date, strlen(date));
        }
        if (d.failed) r = LC_ERR(LC_E_NOMEM, "lc_chat_new: out of memory");
        ch->defaults = d.p;
    }
    if (!r && p && p->parse_tool_calls) r = lc_toolcall_parser_new(&ch->tp);
    if (!r && c) {
        ch->n_ctx = (int32_t)lc_context_n_ctx(c);
        ch->kv = lc__malloc(sizeof *ch->kv * (size_t)ch->n_ctx);
        ch->seq = lc__malloc(sizeof *ch->seq * ch->p.n_batch);
        if (!ch->kv || !ch->seq) r = LC_ERR(LC_E_NOMEM, "lc_chat_new: out of memory for %d tokens", (int)ch->n_ctx);
        for (uint32_t i = 0; !r && i < ch->p.n_batch; i++) ch->seq[i] = ch->p.seq_id;
        if (!r) lc_kv_remove(c, ch->p.seq_id, 0, -1); /* the cache starts empty for this sequence */
    }
    if (r) {
        lc_chat_free(ch);
        return r;
    }
    ch->st.n_ctx = ch->n_ctx;
    *out = ch;
    return 0;
}

void lc_chat_free(lc_chat *ch) {
    if (!ch) return;
    lc_chat_clear(ch, false);
    lc__free(ch->msgs);
    lc_template_free(ch->tpl);
    lc_toolcall_parser_free(ch->tp);
    lc__free(ch->tools);
    lc__free((char *)ch->p.vars_json);
    lc__free(ch->defaults);
    lc__free(ch->builtin);
    lc__free(ch->kv);
    lc__free(ch->seq);
    lc__free(ch->answer.p);
    lc__free(ch->shown.p);
    lc__free(ch);
}

/* ---- a turn ---- */

int lc_chat_prompt(lc_chat *ch, lc_chat_stats *st) {
    if (!ch->c) return LC_ERR(LC_E_INVALID, "lc_chat_prompt: the session has no context");
    ch->in_turn = false;
    int32_t *ids = NULL, n = 0;
    int r = prompt_tokens(ch, &ids, &n);
    if (r) return r;
    if (n == 0) {
        lc__free(ids);
        return LC_ERR(LC_E_FORMAT, "chat: the template rendered an empty prompt");
    }
    if (n >= ch->n_ctx) {
        lc__free(ids);
        return LC_ERR(LC_E_RANGE,
                      "the conversation needs %d tokens but the context holds %d (and the answer needs room too): drop "
                      "the oldest exchanges, start over, or use a larger context",
                      (int)n, (int)ch->n_ctx);
    }
    int32_t common = 0;
    if (!ch->p.no_reuse)
        while (common < ch->n_kv && common < n && ch->kv[common] == ids[common]) common++;
    if (common == n) common = n - 1; /* the last prompt token is decoded again for its logits */
    lc_kv_remove(ch->c, ch->p.seq_id, common, -1);
    ch->n_kv = common;
    for (int32_t i = common; i < n; i += (int32_t)ch->p.n_batch) {
        const int32_t nb = n - i < (int32_t)ch->p.n_batch ? n - i : (int32_t)ch->p.n_batch;
        const lc_batch b = {.n_tokens = nb, .token = ids + i, .seq_id = ch->seq};
        r = lc_decode(ch->c, &b);
        if (r) { /* what was decoded of this batch is unknown: forget the sequence */
            lc_kv_remove(ch->c, ch->p.seq_id, 0, -1);
            ch->n_kv = 0;
            lc__free(ids);
            return r;
        }
        memcpy(ch->kv + i, ids + i, sizeof *ids * (size_t)nb);
        ch->n_kv = i + nb;
        ch->logits_row = nb - 1;
    }
    lc__free(ids);
    ch->st = (lc_chat_stats){.n_prompt = n, .n_reused = common, .n_decoded = n - common, .n_ctx = ch->n_ctx};
    if (st) *st = ch->st;
    lc_detok_init(&ch->detok, false);
    if (ch->tp) lc_toolcall_reset(ch->tp);
    ch->answer.n = 0;
    ch->in_turn = true, ch->ended = false;
    return 0;
}

/* Shows text (through the tool-call parser when there is one) into ch->shown. */
static int show_text(lc_chat *ch, const char *s, size_t n, bool visible) {
    jbuf_put(&ch->answer, s, n);
    if (ch->tp) {
        const char *out;
        size_t on;
        const int r = lc_toolcall_feed(ch->tp, s, n, &out, &on);
        if (r) return r;
        jbuf_put(&ch->shown, out, on);
    } else if (visible) {
        jbuf_put(&ch->shown, s, n);
    }
    return ch->answer.failed || ch->shown.failed ? LC_ERR(LC_E_NOMEM, "chat: out of memory") : 0;
}

int lc_chat_step(lc_chat *ch, lc_sampler *s, const char **text, size_t *n, int *state) {
    ch->shown.n = 0;
    *text = "", *n = 0;
    if (!ch->in_turn) return LC_ERR(LC_E_INVALID, "lc_chat_step: no answer under way (call lc_chat_prompt first)");
    if (ch->ended) {
        *state = LC_CHAT_END;
        return 0;
    }
    *state = LC_CHAT_GOING;
    if (ch->n_kv >= ch->n_ctx) {
        *state = LC_CHAT_FULL;
        return 0;
    }
    const float *logits = lc_get_logits(ch->c, ch->logits_row);
    if (!logits) return LC_ERR(LC_E_INVALID, "lc_chat_step: no logits (was the context used by someone else?)");
    const int32_t id = lc_sampler_sample(s, logits);
    lc_sampler_accept(s, id);
    if (lc_token_is_eog(ch->m, id)) {
        ch->ended = true;
        *state = LC_CHAT_END;
        return 0;
    }
    const lc_tokenizer *tok = lc_model_tokenizer(ch->m);
    const char *piece = tok && lc_tokenizer_is_control(tok, id) ? lc_token_piece(ch->m, id) : NULL;
    int r;
    if (piece && !strcmp(piece, PYTHON_TAG)) { /* the start of a tool call: the parser sees it as text */
        r = show_text(ch, PYTHON_TAG, sizeof PYTHON_TAG - 1, false);
    } else {
        const int k = lc_detok_push(ch->m, &ch->detok, id, ch->piece, sizeof ch->piece);
        r = k < 0 ? k : show_text(ch, ch->piece, (size_t)k, true);
    }
    if (r) return r;
    ch->st.n_generated++;
    if (ch->tp && lc_toolcall_end_marker(ch->tp)) ch->ended = true; /* the model wrote an end marker as text */
    const lc_batch b = {.n_tokens = 1, .token = &id, .seq_id = ch->seq};
    r = lc_decode(ch->c, &b);
    if (r == LC_E_RANGE) { /* the cache is full (other sequences share it): the answer ends here */
        ch->ended = true;
        *state = LC_CHAT_FULL;
    } else if (r) {
        return r;
    } else {
        ch->kv[ch->n_kv++] = id;
        ch->logits_row = 0;
    }
    *text = ch->shown.p ? ch->shown.p : "";
    *n = ch->shown.n;
    return 0;
}

static bool in_builtin(const lc_chat *ch, const char *name) {
    const char *s = ch->builtin;
    for (size_t i = 0; i < ch->n_builtin; i++, s += strlen(s) + 1)
        if (!strcmp(s, name)) return true;
    return false;
}

/* Whether every value of the JSON object args is a string (the Llama 3.1 template writes built-in calls as
** name.call(k="v"), which only strings survive). *oom: the check ran out of memory. */
static bool all_string_args(const char *args, bool *oom) {
    jv_arena a = {0};
    jv v;
    const int r = jv_parse_json(&a, args, strlen(args), "arguments", &v);
    bool ok = !r && v.k == JV_DICT;
    for (size_t i = 0; ok && i < v.u.d->n; i++) ok = v.u.d->vals[i].k == JV_STR;
    if (r && parse_oom(r, &a)) *oom = true;
    jv_arena_free(&a);
    return ok;
}

/* Bytes of t[0..n) before an end marker written as text (the parser ends the answer there). */
static size_t before_end_marker(const char *t, size_t n) {
    const char *e1 = memmem(t, n, "<|eom_id|>", 10), *e2 = memmem(t, n, "<|eot_id|>", 10);
    const char *e = e1 && (!e2 || e1 < e2) ? e1 : e2;
    return e ? (size_t)(e - t) : n;
}

/* Bytes of the text before the calls of an answer: what precedes a python tag, without trailing blanks. */
static size_t before_calls(const char *t, size_t n) {
    const char *tag = memmem(t, n, PYTHON_TAG, sizeof PYTHON_TAG - 1);
    size_t k = tag ? (size_t)(tag - t) : 0;
    while (k && strchr(" \t\r\n", t[k - 1])) k--;
    return k;
}

/* Appends the assistant's answer: raw is what the model wrote; pre the text shown before its calls. */
static int append_answer(lc_chat *ch, const char *raw, size_t raw_n, const char *pre, size_t pre_n,
                         const lc_tool_call *calls, size_t n_calls) {
    jbuf b = {0};
    if (!n_calls) {
        jbuf_puts(&b, "{\"role\": \"assistant\", \"content\": ");
        put_json_str(&b, raw, raw_n);
        jbuf_puts(&b, "}");
        return msg_append_buf(ch, &b, "assistant");
    }
    int r = 0;
    for (size_t i = 0; !r && i < n_calls; i++) {
        const lc_tool_call *c = &calls[i];
        ch->last_call_kind = c->kind;
        b = (jbuf){0};
        jbuf_puts(&b, "{\"role\": \"assistant\", ");
        bool oom = false;
        const bool structured = c->kind == LC_TOOL_CUSTOM || (c->kind == LC_TOOL_BUILTIN && in_builtin(ch, c->name) &&
                                                              all_string_args(c->arguments, &oom));
        if (oom) {
            lc__free(b.p);
            return LC_ERR(LC_E_NOMEM, "chat: out of memory");
        }
        if (!structured) { /* as the model wrote it, which the template writes back unchanged */
            jbuf_puts(&b, "\"content\": ");
            put_json_str(&b, raw, raw_n);
            jbuf_puts(&b, "}");
            r = msg_append_buf(ch, &b, "assistant");
            break; /* the raw text holds every call */
        }
        if (i == 0 && pre_n) {
            jbuf_puts(&b, "\"content\": ");
            put_json_str(&b, pre, pre_n);
            jbuf_puts(&b, ", ");
        }
        jbuf_puts(&b, "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": ");
        put_json_str(&b, c->name, strlen(c->name));
        jbuf_puts(&b, ", \"arguments\": ");
        jbuf_puts(&b, c->arguments);
        jbuf_puts(&b, "}}]}");
        r = msg_append_buf(ch, &b, "assistant");
    }
    return r;
}

int lc_chat_add_answer(lc_chat *ch, const char *text, size_t len, const lc_tool_call **calls, size_t *n_calls) {
    const lc_tool_call *cl = NULL;
    size_t nc = 0;
    if (ch->in_turn) return LC_ERR(LC_E_INVALID, "lc_chat_add_answer: an answer is under way (lc_chat_end first)");
    if (ch->tp) {
        const char *show;
        size_t sn;
        lc_toolcall_reset(ch->tp);
        int r = lc_toolcall_feed(ch->tp, text, len, &show, &sn);
        if (!r) r = lc_toolcall_finish(ch->tp, &show, &sn, &cl, &nc);
        if (r) return r;
        len = before_end_marker(text, len); /* what follows an end marker is not part of the answer */
    }
    if (calls) *calls = cl;
    if (n_calls) *n_calls = nc;
    return append_answer(ch, text, len, text, nc ? before_calls(text, len) : len, cl, nc);
}

int lc_chat_end(lc_chat *ch, const char **text, size_t *n, const lc_tool_call **calls, size_t *n_calls) {
    ch->shown.n = 0;
    *text = "", *n = 0, *calls = NULL, *n_calls = 0;
    if (!ch->in_turn) return LC_ERR(LC_E_INVALID, "lc_chat_end: no answer under way");
    ch->in_turn = false;
    const int k = lc_detok_flush(&ch->detok, ch->piece, sizeof ch->piece);
    int r = k < 0 ? k : show_text(ch, ch->piece, (size_t)k, true);
    const lc_tool_call *cl = NULL;
    size_t nc = 0;
    const char *raw = ch->answer.p ? ch->answer.p : "";
    size_t raw_n = ch->answer.n;
    if (!r && ch->tp) {
        const char *show;
        size_t sn;
        r = lc_toolcall_finish(ch->tp, &show, &sn, &cl, &nc);
        if (!r) jbuf_put(&ch->shown, show, sn);
        raw_n = before_end_marker(raw, raw_n);
    }
    if (!r && ch->shown.failed) r = LC_ERR(LC_E_NOMEM, "chat: out of memory");
    if (!r) r = append_answer(ch, raw, raw_n, raw, nc ? before_calls(raw, raw_n) : raw_n, cl, nc);
    if (r) return r;
    *text = ch->shown.p ? ch->shown.p : "";
    *n = ch->shown.n;
    *calls = cl;
    *n_calls = nc;
    return 0;
}

void lc_chat_get_stats(const lc_chat *ch, lc_chat_stats *st) { *st = ch->st; }

int32_t lc_chat_n_cached(const lc_chat *ch) { return ch->n_kv; }

const char *lc_chat_tool_note(const lc_chat *ch) { return ch->tp ? lc_toolcall_note(ch->tp) : NULL; }

int lc_chat_set_messages(lc_chat *ch, const char *json, size_t len) {
    jv_arena a = {0};
    jv v;
    int r = jv_parse_json(&a, json, len, "messages", &v);
    if (!r && v.k != JV_LIST) r = LC_ERR(LC_E_INVALID, "messages: expected a JSON list of message objects");
    if (r) {
        jv_arena_free(&a);
        return r;
    }
    chat_msg *old = ch->msgs;
    const size_t old_n = ch->n_msgs, old_cap = ch->cap_msgs;
    ch->msgs = NULL, ch->n_msgs = ch->cap_msgs = 0;
    for (size_t i = 0; !r && i < v.u.l->n; i++) r = add_value(ch, v.u.l->a[i], i);
    jv_arena_free(&a);
    char *probe = NULL;
    if (!r) r = lc_chat_render(ch, true, &probe, NULL); /* the template must accept the conversation */
    lc_free(probe);
    chat_msg *drop = r ? ch->msgs : old;
    const size_t drop_n = r ? ch->n_msgs : old_n;
    if (r) ch->msgs = old, ch->n_msgs = old_n, ch->cap_msgs = old_cap;
    for (size_t i = 0; i < drop_n; i++) lc__free(drop[i].json), lc__free(drop[i].role);
    lc__free(drop);
    return r;
}
