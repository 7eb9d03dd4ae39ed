/* toolcall.c - Llama 3.1 tool calls in generated text, found while the text streams.
**
** Formats (Meta's Llama 3.1 prompt format): a custom tool call is the whole answer as JSON {"name": ...,
** "parameters": {...}} ("arguments" accepted too; several separated by ';' tolerated), possibly after <|python_tag|>,
** or <function=NAME>{...}</function>; a built-in call is <|python_tag|>tool.call(key="value", ...); anything else
** after <|python_tag|> is code for the ipython environment. <|eom_id|> or <|eot_id|> written as text ends the answer.
** Invariant: what feed returns is always a prefix of the text (up to an end marker) that can no longer become part of
** a call; a JSON answer is checked byte by byte (a small pushdown scanner), so ordinary text that starts with '{' is
** shown as soon as it stops being JSON. Held text that is not a well-formed call is shown at finish after all.
*/
#include "chat.h"

#include <stdio.h>
#include <string.h>

#define PYTHON_TAG "<|python_tag|>"
#define FUNC_OPEN "<function="
#define FUNC_CLOSE "</function>"
#define JSON_MAX_DEPTH 64

static const char *const k_end_markers[2] = {"<|eom_id|>", "<|eot_id|>"};

enum { M_START, M_PLAIN, M_JSON, M_TAG, M_FUNC };

/* States of the JSON scanner: enough of RFC 8259 to tell "still a possible JSON object" from "not JSON". Numbers
** are only checked for their alphabet; the full parse at the object's end is the judge. */
enum {
    J_VALUE,       /* a value */
    J_VALUE_CLOSE, /* after '[': a value or ']' */
    J_KEY_CLOSE,   /* after '{': a key or '}' */
    J_KEY,         /* after ',' in an object */
    J_COLON,
    J_AFTER,       /* after a value: ',' or the closing bracket */
    J_STR,
    J_STR_ESC,
    J_STR_HEX,
    J_NUM,
    J_LIT,
    J_BETWEEN,     /* between top-level call objects: whitespace, ';' or ',', then '{' */
};

struct lc_toolcall_parser {
    jbuf text;     /* everything fed since the last reset, up to an end marker */
    size_t shown;  /* bytes of text released to the caller */
    size_t scan;   /* bytes of text examined by the mode's scanner */
    int mode;      /* M_* */
    int end;       /* LC_TOOL_END_* marker seen */
    /* JSON scanner */
    int js, depth, lit_i, hex_n;
    bool str_is_key;
    const char *lit;
    char stack[JSON_MAX_DEPTH];
    size_t obj_start;
    /* output */
    jbuf out;       /* what the last feed/finish returns to show */
    jv_arena a;     /* the calls' strings */
    lc_tool_call *calls;
    size_t n_calls, cap_calls;
    char note[256]; /* why held text turned out not to be a call */
    bool oom;       /* an allocation failed: the answer's result is unknown, feed/finish say LC_E_NOMEM */
};

int lc_toolcall_parser_new(lc_toolcall_parser **out) {
    *out = lc__calloc(1, sizeof **out);
    return *out ? 0 : LC_ERR(LC_E_NOMEM, "lc_toolcall_parser_new: out of memory");
}

void lc_toolcall_reset(lc_toolcall_parser *p) {
    p->text.n = p->shown = p->scan = p->out.n = p->n_calls = 0;
    p->mode = M_START, p->end = LC_TOOL_END_NONE;
    p->note[0] = 0;
    p->oom = false;
    jv_arena_free(&p->a);
}

void lc_toolcall_parser_free(lc_toolcall_parser *p) {
    if (!p) return;
    jv_arena_free(&p->a);
    lc__free(p->text.p);
    lc__free(p->out.p);
    lc__free(p->calls);
    lc__free(p);
}

int lc_toolcall_end_marker(const lc_toolcall_parser *p) { return p->end; }
const char *lc_toolcall_note(const lc_toolcall_parser *p) { return p->note[0] ? p->note : NULL; }

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool ident_char(char c, bool first) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

/* Whether s[0..n) is a proper prefix of the NUL-terminated word (more bytes may complete it). */
static bool proper_prefix(const char *s, size_t n, const char *word) {
    const size_t wl = strlen(word);
    return n < wl && !memcmp(s, word, n);
}

/* Length of the longest suffix of s[0..n) that may still grow into one of the markers (the end markers, and the
** python tag too when with_tag). */
static size_t marker_prefix_suffix(const char *s, size_t n, bool with_tag) {
    const char *const words[] = {k_end_markers[0], k_end_markers[1], PYTHON_TAG};
    size_t best = 0;
    for (size_t w = 0; w < (with_tag ? 3u : 2u); w++) {
        const size_t wl = strlen(words[w]);
        for (size_t k = n < wl - 1 ? n : wl - 1; k > best; k--)
            if (!memcmp(s + n - k, words[w], k)) {
                best = k;
                break;
            }
    }
    return best;
}

static void release(lc_toolcall_parser *p, size_t upto) {
    if (upto <= p->shown) return;
    jbuf_put(&p->out, p->text.p + p->shown, upto - p->shown);
    p->shown = upto;
}

static void set_note(lc_toolcall_parser *p, const char *what, size_t at) {
    snprintf(p->note, sizeof p->note, "not a tool call (%s at byte %zu of the answer); shown as text", what, at);
}

/* ---- building the calls ---- */

/* Whether a failed jv_parse_json ran out of memory (it reports that as LC_E_INVALID "out of memory"), rather than
** meeting text that is not JSON: the answer is then unknown, not text. */
static bool parse_oom(int r, const jv_arena *a) {
    return r == LC_E_NOMEM || a->failed || strstr(lc_last_error(), "out of memory") != NULL;
}

static lc_tool_call *call_push(lc_toolcall_parser *p) {
    if (p->n_calls == p->cap_calls) {
        const size_t cap = p->cap_calls ? 2 * p->cap_calls : 4;
        lc_tool_call *c = lc__realloc(p->calls, sizeof *c * cap);
        if (!c) return p->oom = true, NULL;
        p->calls = c, p->cap_calls = cap;
    }
    lc_tool_call *c = &p->calls[p->n_calls];
    memset(c, 0, sizeof *c);
    return c;
}

/* A JSON value as compact Python-json.dumps text in the arena (NULL on failure). */
static const char *json_text(lc_toolcall_parser *p, jv v) {
    jbuf j = {0};
    const char *bad;
    const bool ok = jv_to_json(&j, v, -1, &bad) && !j.failed;
    const char *s = ok ? jv_str(&p->a, j.p ? j.p : "", j.n).u.s.p : NULL;
    if (j.failed || p->a.failed) p->oom = true;
    lc__free(j.p);
    return s;
}

/* {"name": "...", "parameters"|"arguments": {...}} (arguments may also be a JSON string holding the object, as in
** OpenAI's API) -> a custom call. false, with a note, if b is not one. */
static bool json_call(lc_toolcall_parser *p, const char *b, size_t n, size_t at) {
    jv v;
    int r = jv_parse_json(&p->a, b, n, "tool call", &v);
    if (r) return p->oom |= parse_oom(r, &p->a), set_note(p, "invalid JSON", at), false;
    if (v.k != JV_DICT) return set_note(p, "JSON that is not an object", at), false;
    const jv *name = jv_dict_get(v.u.d, "name", 4), *args = jv_dict_get(v.u.d, "parameters", 10);
    if (!args) args = jv_dict_get(v.u.d, "arguments", 9);
    if (!name || name->k != JV_STR || !name->u.s.n) return set_note(p, "no \"name\" string", at), false;
    jv argv = args ? *args : (jv){.k = JV_UNDEF};
    if (argv.k == JV_STR && (r = jv_parse_json(&p->a, argv.u.s.p, argv.u.s.n, "arguments", &argv)))
        argv.k = JV_UNDEF, p->oom |= parse_oom(r, &p->a);
    if (argv.k != JV_DICT) return set_note(p, "no \"parameters\" object", at), false;
    lc_tool_call *c = call_push(p);
    if (!c) return false;
    c->kind = LC_TOOL_CUSTOM;
    c->name = name->u.s.p;
    c->arguments = json_text(p, argv);
    if (!c->arguments) return false;
    p->n_calls++;
    return true;
}

/* A sequence of JSON call objects separated by whitespace, ';' or ',' (the non-streaming path, after a tag). */
static bool json_calls(lc_toolcall_parser *p, const char *b, size_t n, size_t at) {
    size_t i = 0, found = 0;
    while (i < n) {
        while (i < n && (ws(b[i]) || (found && (b[i] == ';' || b[i] == ',')))) i++;
        if (i == n) break;
        if (b[i] != '{') return set_note(p, "text that is not a JSON object", at + i), false;
        /* the object's end: the matching brace outside strings */
        size_t j = i, depth = 0;
        bool in_str = false;
        for (; j < n; j++) {
            const char ch = b[j];
            if (in_str) {
                if (ch == '\\') j++;
                else if (ch == '"') in_str = false;
            } else if (ch == '"') {
                in_str = true;
            } else if (ch == '{' || ch == '[') {
                depth++;
            } else if ((ch == '}' || ch == ']') && --depth == 0) {
                break;
            }
        }
        if (j >= n) return set_note(p, "unfinished JSON", at + i), false;
        if (!json_call(p, b + i, j + 1 - i, at + i)) return false;
        found++;
        i = j + 1;
    }
    return found > 0;
}

/* A Python literal at b[*i] (string with escapes, number, True/False/None) appended to args as JSON. */
static bool python_literal(lc_toolcall_parser *p, const char *b, size_t n, size_t *i, jbuf *args) {
    size_t k = *i;
    if (k < n && (b[k] == '"' || b[k] == '\'')) {
        const char q = b[k++];
        jbuf s = {0};
        bool ok = false;
        while (k < n) {
            char ch = b[k++];
            if (ch == q) {
                ok = true;
                break;
            }
            if (ch == '\n') break; /* a short string literal cannot span lines */
            if (ch != '\\' || k >= n) {
                jbuf_put(&s, &ch, 1);
                continue;
            }
            ch = b[k++];
            static const char k_esc[] = "nrtabfv0", k_val[] = "\n\r\t\a\b\f\v";
            const char *simple = ch ? strchr(k_esc, ch) : NULL;
            if (simple) {
                const char out = k_val[simple - k_esc]; /* '0' maps to the terminating NUL: a NUL byte */
                jbuf_put(&s, &out, 1);
            } else if (ch == 'x' || ch == 'u' || ch == 'U') {
                const int nd = ch == 'x' ? 2 : ch == 'u' ? 4 : 8;
                uint32_t cp = 0;
                int d = 0;
                for (; d < nd && k < n; d++, k++) {
                    const char h = b[k];
                    const int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                                       : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (v < 0) break;
                    cp = cp * 16 + (uint32_t)v;
                }
                if (d < nd || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) break; /* not a valid escape */
                char u[4];
                int un;
                if (cp < 0x80) u[0] = (char)cp, un = 1;
                else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), un = 2;
                else if (cp < 0x10000)
                    u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 63)), u[2] = (char)(0x80 | (cp & 63)), un = 3;
                else
                    u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 63)), u[2] = (char)(0x80 | (cp >> 6 & 63)),
                    u[3] = (char)(0x80 | (cp & 63)), un = 4;
                jbuf_put(&s, u, (size_t)un);
            } else if (ch == '\\' || ch == '\'' || ch == '"' || ch == '\n') {
                if (ch != '\n') jbuf_put(&s, &ch, 1); /* backslash-newline continues the literal */
            } else {
                jbuf_put(&s, "\\", 1), jbuf_put(&s, &ch, 1); /* Python keeps unknown escapes as written */
            }
        }
        const char *t = NULL;
        if (s.failed) p->oom = true;
        if (ok && !s.failed) t = json_text(p, jv_str(&p->a, s.p ? s.p : "", s.n));
        lc__free(s.p);
        if (!t) return false;
        jbuf_puts(args, t);
        *i = k;
        return true;
    }
    const size_t vs = k;
    while (k < n && b[k] != ',' && b[k] != ')' && !ws(b[k])) k++;
    const size_t vl = k - vs;
    jv v;
    jv_arena tmp = {0};
    bool ok = true;
    int r = 0;
    if (vl == 4 && !memcmp(b + vs, "True", 4)) jbuf_puts(args, "true");
    else if (vl == 5 && !memcmp(b + vs, "False", 5)) jbuf_puts(args, "false");
    else if (vl == 4 && !memcmp(b + vs, "None", 4)) jbuf_puts(args, "null");
    else if (vl && !(r = jv_parse_json(&tmp, b + vs, vl, "argument", &v)) && (v.k == JV_INT || v.k == JV_FLOAT))
        jbuf_put(args, b + vs, vl);
    else ok = false;
    if (r && parse_oom(r, &tmp)) p->oom = true;
    jv_arena_free(&tmp);
    *i = k;
    return ok;
}

/* name.call(k="v", k2=3) -> a built-in call with a JSON object of the arguments; false if b is not that. */
static bool builtin_call(lc_toolcall_parser *p, const char *b, size_t n) {
    size_t i = 0;
    while (i < n && ident_char(b[i], i == 0)) i++;
    const size_t ne = i;
    if (!ne || n - i < 6 || memcmp(b + i, ".call(", 6)) return false;
    i += 6;
    jbuf args = {0};
    jbuf_puts(&args, "{");
    bool ok = true, first = true;
    for (;;) {
        while (i < n && ws(b[i])) i++;
        if (i < n && b[i] == ')') {
            i++;
            break;
        }
        if (!first) {
            if (i >= n || b[i] != ',') { ok = false; break; }
            i++;
            while (i < n && ws(b[i])) i++;
            if (i < n && b[i] == ')') { i++; break; } /* a trailing comma */
        }
        const size_t ks = i;
        while (i < n && ident_char(b[i], i == ks)) i++;
        const size_t ke = i;
        while (i < n && ws(b[i])) i++;
        if (ke == ks || i >= n || b[i] != '=') { ok = false; break; }
        i++;
        while (i < n && ws(b[i])) i++;
        if (!first) jbuf_puts(&args, ", ");
        first = false;
        jbuf_puts(&args, "\"");
        jbuf_put(&args, b + ks, ke - ks);
        jbuf_puts(&args, "\": ");
        if (!python_literal(p, b, n, &i, &args)) { ok = false; break; }
    }
    while (ok && i < n && (ws(b[i]) || b[i] == ';')) i++;
    if (args.failed) p->oom = true;
    ok = ok && i == n && !args.failed;
    if (ok) {
        jbuf_puts(&args, "}");
        lc_tool_call *c = call_push(p);
        ok = c && !args.failed;
        if (ok) {
            c->kind = LC_TOOL_BUILTIN;
            c->name = jv_str(&p->a, b, ne).u.s.p;
            c->arguments = jv_str(&p->a, args.p, args.n).u.s.p;
            ok = !p->a.failed;
            if (ok) p->n_calls++;
        }
    }
    lc__free(args.p);
    return ok;
}

/* <function=NAME>{...}</function>, one or more. */
static bool function_tags(lc_toolcall_parser *p, const char *b, size_t n, size_t at) {
    const size_t ol = sizeof FUNC_OPEN - 1, cl = sizeof FUNC_CLOSE - 1;
    size_t i = 0, found = 0;
    while (i < n) {
        while (i < n && (ws(b[i]) || (found && b[i] == ';'))) i++;
        if (i == n) break;
        if (n - i < ol || memcmp(b + i, FUNC_OPEN, ol)) return set_note(p, "text outside <function=...>", at + i), false;
        i += ol;
        const size_t ns = i;
        while (i < n && b[i] != '>' && (ident_char(b[i], false) || b[i] == '-' || b[i] == '.')) i++;
        if (i == ns || i >= n || b[i] != '>') return set_note(p, "no function name", at + i), false;
        const size_t ne = i++;
        const char *close = memmem(b + i, n - i, FUNC_CLOSE, cl);
        if (!close) return set_note(p, "no </function>", at + i), false;
        jv v;
        const size_t al = (size_t)(close - (b + i));
        const int r = jv_parse_json(&p->a, b + i, al, "function arguments", &v);
        if (r) p->oom |= parse_oom(r, &p->a);
        if (r || v.k != JV_DICT) return set_note(p, "arguments that are not a JSON object", at + i), false;
        lc_tool_call *c = call_push(p);
        if (!c) return false;
        c->kind = LC_TOOL_CUSTOM;
        c->name = jv_str(&p->a, b + ns, ne - ns).u.s.p;
        c->arguments = json_text(p, v);
        if (!c->arguments || p->a.failed) return false;
        p->n_calls++, found++;
        i = (size_t)(close - b) + cl;
    }
    return found > 0;
}

/* ---- streaming ---- */

static void json_start(lc_toolcall_parser *p, size_t at) {
    p->mode = M_JSON;
    p->js = J_VALUE, p->depth = 0, p->obj_start = at;
}

/* Advances the JSON scanner over byte ch at offset i. Returns false when the text can no longer be JSON calls. */
static bool json_step(lc_toolcall_parser *p, char ch, size_t i) {
    for (;;) {
        switch (p->js) {
        case J_BETWEEN:
            if (ws(ch) || ch == ';' || ch == ',') return true;
            if (ch != '{') return false;
            p->obj_start = i, p->js = J_VALUE;
            continue;
        case J_VALUE:
        case J_VALUE_CLOSE:
            if (ws(ch)) return true;
            if (ch == ']' && p->js == J_VALUE_CLOSE) goto close;
            if (ch == '{' || ch == '[') {
                if (p->depth == JSON_MAX_DEPTH) return false;
                p->stack[p->depth++] = ch;
                p->js = ch == '{' ? J_KEY_CLOSE : J_VALUE_CLOSE;
                return true;
            }
            if (p->depth == 0) return false; /* a call is an object */
            if (ch == '"') { p->js = J_STR, p->str_is_key = false; return true; }
            if (ch == '-' || (ch >= '0' && ch <= '9')) { p->js = J_NUM; return true; }
            p->lit = ch == 't' ? "true" : ch == 'f' ? "false" : ch == 'n' ? "null" : NULL;
            if (!p->lit) return false;
            p->js = J_LIT, p->lit_i = 1;
            return true;
        case J_KEY_CLOSE:
        case J_KEY:
            if (ws(ch)) return true;
            if (ch == '}' && p->js == J_KEY_CLOSE) goto close;
            if (ch != '"') return false;
            p->js = J_STR, p->str_is_key = true;
            return true;
        case J_COLON:
            if (ws(ch)) return true;
            if (ch != ':') return false;
            p->js = J_VALUE;
            return true;
        case J_AFTER:
            if (ws(ch)) return true;
            if (ch == ',') { p->js = p->stack[p->depth - 1] == '{' ? J_KEY : J_VALUE; return true; }
            if (ch == '}' || ch == ']') goto close;
            return false;
        case J_STR:
            if ((unsigned char)ch < 0x20) return false;
            if (ch == '\\') p->js = J_STR_ESC;
            else if (ch == '"') p->js = p->str_is_key ? J_COLON : J_AFTER;
            return true;
        case J_STR_ESC:
            if (ch == 'u') { p->js = J_STR_HEX, p->hex_n = 0; return true; }
            if (!strchr("\"\\/bfnrt", ch) || !ch) return false;
            p->js = J_STR;
            return true;
        case J_STR_HEX:
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return false;
            if (++p->hex_n == 4) p->js = J_STR;
            return true;
        case J_NUM:
            if ((ch >= '0' && ch <= '9') || ch == '.' || ch == 'e' || ch == 'E' || ch == '+' || ch == '-') return true;
            p->js = J_AFTER;
            continue;
        case J_LIT:
            if (ch != p->lit[p->lit_i]) return false;
            if (!p->lit[++p->lit_i]) p->js = J_AFTER;
            return true;
        }
        return false;
    close:
        if ((ch == '}') != (p->stack[p->depth - 1] == '{')) return false;
        if (--p->depth > 0) {
            p->js = J_AFTER;
            return true;
        }
        /* a whole top-level object: it must be a call */
        if (!json_call(p, p->text.p + p->obj_start, i + 1 - p->obj_start, p->obj_start)) return false;
        p->js = J_BETWEEN;
        return true;
    }
}

/* The held text is not a call: it becomes text from where showing stopped, watched for a python tag. */
static void to_plain(lc_toolcall_parser *p) {
    p->mode = M_PLAIN;
    p->n_calls = 0;
    p->scan = p->shown;
}

/* Runs the JSON scanner up to byte upto; the answer turns to text at the first byte that cannot be a call's. */
static void json_scan(lc_toolcall_parser *p, size_t upto) {
    for (; p->scan < upto; p->scan++)
        if (!json_step(p, p->text.p[p->scan], p->scan)) {
            if (!p->note[0]) set_note(p, "not JSON", p->scan);
            to_plain(p);
            return;
        }
}

/* Runs the mode's scanner over the bytes not yet examined and releases what can no longer be part of a call. */
static void advance(lc_toolcall_parser *p) {
    const char *s = p->text.p;
    const size_t len = p->text.n;
    const size_t tl = sizeof PYTHON_TAG - 1;
    if (p->mode == M_START) {
        size_t i = p->scan;
        while (i < len && ws(s[i])) i++;
        p->scan = i;
        const size_t rest = len - i;
        if (!rest) return;
        if (rest >= tl && !memcmp(s + i, PYTHON_TAG, tl)) {
            p->mode = M_TAG;
        } else if (rest >= sizeof FUNC_OPEN - 1 && !memcmp(s + i, FUNC_OPEN, sizeof FUNC_OPEN - 1)) {
            p->mode = M_FUNC;
        } else if (s[i] == '{') {
            json_start(p, i);
        } else if (proper_prefix(s + i, rest, PYTHON_TAG) || proper_prefix(s + i, rest, FUNC_OPEN)) {
            return; /* wait for more */
        } else {
            p->mode = M_PLAIN;
        }
    }
    /* bytes that may be the start of an end marker wait: the marker ends the answer, it does not break the JSON */
    if (p->mode == M_JSON) json_scan(p, len - marker_prefix_suffix(s + p->scan, len - p->scan, false));
    if (p->mode == M_PLAIN) {
        const char *tag = len > p->shown ? memmem(s + p->shown, len - p->shown, PYTHON_TAG, tl) : NULL;
        if (tag) { /* text, then a built-in call or code */
            release(p, (size_t)(tag - s));
            p->mode = M_TAG;
        } else {
            release(p, len - marker_prefix_suffix(s + p->shown, len - p->shown, true));
        }
        p->scan = len;
    }
}

int lc_toolcall_feed(lc_toolcall_parser *p, const char *text, size_t n, const char **show, size_t *show_n) {
    p->out.n = 0;
    *show = "", *show_n = 0;
    if (p->end || !n) return 0;
    const size_t old = p->text.n;
    jbuf_put(&p->text, text, n);
    if (p->text.failed) return LC_ERR(LC_E_NOMEM, "lc_toolcall_feed: out of memory (%zu bytes of answer)", old + n);
    /* an end marker written as text ends the answer; what follows it is not part of it */
    const size_t from = old > 10 ? old - 10 : 0;
    size_t cut = p->text.n;
    for (int k = 0; k < 2; k++) {
        const char *e = memmem(p->text.p + from, p->text.n - from, k_end_markers[k], strlen(k_end_markers[k]));
        if (e && (size_t)(e - p->text.p) < cut) cut = (size_t)(e - p->text.p), p->end = k + 1;
    }
    p->text.n = cut;
    advance(p);
    if (p->out.failed || p->a.failed || p->oom) return LC_ERR(LC_E_NOMEM, "lc_toolcall_feed: out of memory");
    *show = p->out.p ? p->out.p : "";
    *show_n = p->out.n;
    return 0;
}

int lc_toolcall_finish(lc_toolcall_parser *p, const char **show, size_t *show_n, const lc_tool_call **calls,
                       size_t *n_calls) {
    p->out.n = 0;
    const char *s = p->text.p;
    const size_t len = p->text.n, tl = sizeof PYTHON_TAG - 1;
    if (p->mode == M_JSON) json_scan(p, len); /* bytes held back as a possible end marker */
    if (p->mode == M_JSON && p->js != J_BETWEEN) {
        set_note(p, "unfinished JSON", p->obj_start);
        to_plain(p);
    } else if (p->mode == M_TAG || p->mode == M_FUNC) {
        size_t b = p->shown, n = len;
        while (b < n && ws(s[b])) b++;
        while (n > b && ws(s[n - 1])) n--;
        bool ok;
        if (p->mode == M_FUNC) {
            ok = function_tags(p, s + b, n - b, b);
        } else {
            b += tl;
            while (b < n && ws(s[b])) b++;
            ok = b < n && (builtin_call(p, s + b, n - b) || (p->n_calls = 0, s[b] == '{' && json_calls(p, s + b, n - b, b)));
            if (!ok && b < n) { /* code for the ipython environment */
                p->n_calls = 0;
                lc_tool_call *c = call_push(p);
                jbuf j = {0};
                jbuf_puts(&j, "{\"code\": ");
                const char *code = c ? json_text(p, jv_str(&p->a, s + b, n - b)) : NULL;
                if (code) jbuf_puts(&j, code), jbuf_puts(&j, "}");
                ok = code && !j.failed;
                if (j.failed) p->oom = true;
                if (ok) {
                    c->kind = LC_TOOL_CODE;
                    c->name = "code_interpreter";
                    c->code = jv_str(&p->a, s + b, n - b).u.s.p;
                    c->arguments = jv_str(&p->a, j.p, j.n).u.s.p;
                    ok = !p->a.failed;
                    if (ok) p->n_calls = 1, p->note[0] = 0;
                }
                lc__free(j.p);
            } else if (!ok) {
                set_note(p, "nothing after <|python_tag|>", b);
            }
        }
        if (!ok) p->n_calls = 0, p->mode = M_PLAIN;
    }
    if (p->mode != M_JSON && p->mode != M_TAG && p->mode != M_FUNC) release(p, len); /* text, all of it */
    if (p->n_calls) p->note[0] = 0;
    if (p->text.failed || p->out.failed || p->a.failed || p->oom)
        return LC_ERR(LC_E_NOMEM, "lc_toolcall_finish: out of memory");
    *show = p->out.p ? p->out.p : "";
    *show_n = p->out.n;
    *calls = p->calls;
    *n_calls = p->n_calls;
    return 0;
}
