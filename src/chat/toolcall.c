/* toolcall.c - Llama 3.1 tool calls in generated text, found while the text streams.
**
** Formats (Meta's Llama 3.1 prompt format): a custom tool call is the whole answer as JSON
** {"name": ..., "parameters": {...}} (also accepted: "arguments"), possibly after <|python_tag|>; a built-in call is
** <|python_tag|>tool.call(key="value", ...) (brave_search, wolfram_alpha, ...); anything else after <|python_tag|>
** is code for the ipython environment (code_interpreter). The parser shows text as soon as it cannot be the start of
** a call and holds back anything that may be one, so a half-generated call never reaches the screen as text; at the
** end of the answer a held text that is not a well-formed call is shown after all.
*/
#include "chat.h"

#include <string.h>

#define PYTHON_TAG "<|python_tag|>"

struct lc_toolcall_parser {
    jbuf text;     /* everything fed since the last reset */
    size_t shown;  /* bytes of text released to the caller */
    size_t held;   /* start of the held tool call (when calling) */
    bool plain;    /* the answer is text (but a python tag may still come) */
    bool calling;  /* a call started at held */
    jbuf out;      /* what the last call returns to show */
    jv_arena a;    /* the calls' strings */
    lc_tool_call calls[1];
    size_t n_calls;
};

int lc_toolcall_parser_new(lc_toolcall_parser **out) {
    *out = lc__calloc(1, sizeof **out);
    return *out ? 0 : LC_ERR(LC_E_NOMEM, "out of memory");
}

void lc_toolcall_reset(lc_toolcall_parser *p) {
    p->text.n = p->shown = p->held = p->out.n = p->n_calls = 0;
    p->plain = p->calling = false;
    jv_arena_free(&p->a);
}

void lc_toolcall_parser_free(lc_toolcall_parser *p) {
    if (!p) return;
    lc_toolcall_reset(p);
    lc__free(p->text.p);
    lc__free(p->out.p);
    lc__free(p);
}

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Length of the longest suffix of s[0..n) that is a proper prefix of PYTHON_TAG (text that may become the tag). */
static size_t tag_prefix_suffix(const char *s, size_t n) {
    const size_t tl = sizeof PYTHON_TAG - 1;
    for (size_t k = n < tl - 1 ? n : tl - 1; k > 0; k--)
        if (!memcmp(s + n - k, PYTHON_TAG, k)) return k;
    return 0;
}

static void release(lc_toolcall_parser *p, size_t upto) {
    if (upto > p->shown) jbuf_put(&p->out, p->text.p + p->shown, upto - p->shown);
    if (upto > p->shown) p->shown = upto;
}

int lc_toolcall_feed(lc_toolcall_parser *p, const char *text, size_t n, const char **show, size_t *show_n) {
    p->out.n = 0;
    jbuf_put(&p->text, text, n);
    if (p->text.failed) return LC_ERR(LC_E_NOMEM, "out of memory");
    const char *s = p->text.p;
    const size_t len = p->text.n;
    if (!p->calling) {
        if (!p->plain) { /* the start of the answer: a call, or text? */
            size_t i = 0;
            while (i < len && ws(s[i])) i++;
            const size_t rest = len - i, tl = sizeof PYTHON_TAG - 1;
            if (rest && (s[i] == '{' || (rest >= tl && !memcmp(s + i, PYTHON_TAG, tl)))) {
                p->calling = true, p->held = i;
            } else if (rest && !(rest < tl && !memcmp(s + i, PYTHON_TAG, rest))) {
                p->plain = true;
            }
        }
        if (p->plain) { /* text; a python tag later in the answer starts a built-in call */
            const char *tag = len > p->shown ? memmem(s + p->shown, len - p->shown, PYTHON_TAG, sizeof PYTHON_TAG - 1) : NULL;
            if (tag) {
                release(p, (size_t)(tag - s));
                p->calling = true, p->held = (size_t)(tag - s);
            } else {
                release(p, len - tag_prefix_suffix(s + p->shown, len - p->shown));
            }
        }
    }
    *show = p->out.p ? p->out.p : "";
    *show_n = p->out.n;
    return 0;
}

/* name.call(k="v", k2=3) -> name and a JSON object of the arguments; false if body is not that. */
static bool parse_builtin_call(lc_toolcall_parser *p, const char *b, size_t n, lc_tool_call *c) {
    size_t i = 0;
    while (i < n && ws(b[i])) i++;
    const size_t ns = i;
    while (i < n && (b[i] == '_' || (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z') || (i > ns && b[i] >= '0' && b[i] <= '9'))) i++;
    const size_t ne = i;
    if (ne == ns || n - i < 6 || memcmp(b + i, ".call(", 6)) return false;
    i += 6;
    jbuf args = {0};
    jbuf_puts(&args, "{");
    bool ok = true, first = true;
    while (ok) {
        while (i < n && ws(b[i])) i++;
        if (i < n && b[i] == ')') {
            i++;
            break;
        }
        if (!first) {
            if (i >= n || b[i] != ',') { ok = false; break; }
            i++;
            while (i < n && ws(b[i])) i++;
        }
        const size_t ks = i;
        while (i < n && (b[i] == '_' || (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z') || (i > ks && b[i] >= '0' && b[i] <= '9'))) i++;
        if (i == ks || i >= n || b[i] != '=') { ok = false; break; }
        const size_t ke = i++;
        if (!first) jbuf_puts(&args, ", ");
        first = false;
        jbuf_puts(&args, "\"");
        jbuf_put(&args, b + ks, ke - ks);
        jbuf_puts(&args, "\": ");
        if (i < n && (b[i] == '"' || b[i] == '\'')) { /* a Python string literal -> a JSON string */
            const char q = b[i++];
            jbuf str = {0};
            while (i < n && b[i] != q) {
                char ch = b[i];
                if (ch == '\\' && i + 1 < n) {
                    ch = b[++i];
                    ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
                }
                jbuf_put(&str, &ch, 1);
                i++;
            }
            if (i >= n) { lc__free(str.p); ok = false; break; }
            i++;
            const jv sv = jv_str(&p->a, str.p ? str.p : "", str.n);
            lc__free(str.p);
            const char *bad;
            jv_to_json(&args, sv, -1, &bad);
        } else { /* a number, True/False/None */
            const size_t vs = i;
            while (i < n && b[i] != ',' && b[i] != ')' && !ws(b[i])) i++;
            jv v;
            jv_arena tmp = {0};
            const size_t vl = i - vs;
            if (vl == 4 && !memcmp(b + vs, "True", 4)) jbuf_puts(&args, "true");
            else if (vl == 5 && !memcmp(b + vs, "False", 5)) jbuf_puts(&args, "false");
            else if (vl == 4 && !memcmp(b + vs, "None", 4)) jbuf_puts(&args, "null");
            else if (vl && !jv_parse_json(&tmp, b + vs, vl, "argument", &v) && (v.k == JV_INT || v.k == JV_FLOAT))
                jbuf_put(&args, b + vs, vl);
            else ok = false;
            jv_arena_free(&tmp);
        }
    }
    while (ok && i < n && ws(b[i])) i++;
    ok = ok && i == n && !args.failed;
    if (ok) {
        jbuf_puts(&args, "}");
        c->name = jv_str(&p->a, b + ns, ne - ns).u.s.p;
        c->arguments = jv_str(&p->a, args.p, args.n).u.s.p;
        c->kind = LC_TOOL_BUILTIN;
    }
    lc__free(args.p);
    return ok && !p->a.failed;
}

/* {"name": ..., "parameters"|"arguments": {...}} */
static bool parse_json_call(lc_toolcall_parser *p, const char *b, size_t n, lc_tool_call *c) {
    jv v;
    if (jv_parse_json(&p->a, b, n, "tool call", &v) || v.k != JV_DICT) return false;
    const jv *name = jv_dict_get(v.u.d, "name", 4), *args = jv_dict_get(v.u.d, "parameters", 10);
    if (!args) args = jv_dict_get(v.u.d, "arguments", 9);
    if (!name || name->k != JV_STR || (args && args->k != JV_DICT)) return false;
    jbuf j = {0};
    const char *bad;
    if (args) jv_to_json(&j, *args, -1, &bad);
    else jbuf_puts(&j, "{}");
    c->name = name->u.s.p;
    c->arguments = jv_str(&p->a, j.p ? j.p : "{}", j.p ? j.n : 2).u.s.p;
    c->kind = LC_TOOL_CUSTOM;
    lc__free(j.p);
    return !p->a.failed;
}

int lc_toolcall_finish(lc_toolcall_parser *p, const char **show, size_t *show_n, const lc_tool_call **calls,
                       size_t *n_calls) {
    p->out.n = 0;
    p->n_calls = 0;
    jv_arena_free(&p->a);
    if (p->calling) {
        const size_t tl = sizeof PYTHON_TAG - 1;
        const char *b = p->text.p + p->held;
        size_t n = p->text.n - p->held;
        while (n && ws(b[n - 1])) n--;
        lc_tool_call *c = &p->calls[0];
        memset(c, 0, sizeof *c);
        bool ok;
        if (n >= tl && !memcmp(b, PYTHON_TAG, tl)) {
            b += tl, n -= tl;
            while (n && ws(*b)) b++, n--;
            ok = parse_builtin_call(p, b, n, c) || parse_json_call(p, b, n, c);
            if (!ok && n) { /* code for the ipython environment */
                jbuf j = {0};
                const char *bad;
                jbuf_puts(&j, "{\"code\": ");
                jv_to_json(&j, jv_str(&p->a, b, n), -1, &bad);
                jbuf_puts(&j, "}");
                c->name = "code_interpreter";
                c->arguments = jv_str(&p->a, j.p ? j.p : "{}", j.p ? j.n : 2).u.s.p;
                c->kind = LC_TOOL_CODE;
                ok = !j.failed && !p->a.failed;
                lc__free(j.p);
            }
        } else {
            ok = parse_json_call(p, b, n, c);
        }
        if (ok) p->n_calls = 1;
        else release(p, p->text.n); /* not a call after all: it is text */
    } else {
        release(p, p->text.n);
    }
    if (p->text.failed || p->out.failed || p->a.failed) return LC_ERR(LC_E_NOMEM, "out of memory");
    *show = p->out.p ? p->out.p : "";
    *show_n = p->out.n;
    *calls = p->calls;
    *n_calls = p->n_calls;
    return 0;
}
