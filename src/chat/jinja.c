/* jinja.c - a Jinja template engine for the subset chat templates use, rendering as Python's Jinja2 3.1 does with
** Hugging Face's settings: trim_blocks, lstrip_blocks, loop controls, no trailing newline kept, a tojson filter that
** is json.dumps(ensure_ascii=False, indent=...), a raise_exception global.
**
** Source -> segments (text, {{ }}, {% %}; whitespace control applied here) -> a tree of statements and expressions
** (parsed once, immutable: renders may run concurrently) -> a render into a byte buffer. Values follow Python: ints
** and floats apart, dicts in insertion order, str()/repr() printing, Jinja2's Undefined (prints "", iterates empty,
** fails on attribute access and arithmetic). Scoping as Jinja2: a for-loop body is a scope of its own per iteration
** (a {% set %} inside does not leak out), if-blocks are not; namespace() objects cross scopes.
** Anything unsupported or raised is an error "<name>:<line>:<col>: <what>", never a guessed render. Limits (nesting,
** output size, loop steps) keep hostile templates bounded.
*/
#include "chat.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200 /* expression/statement nesting, parse and render */
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define MAX_OUTPUT ((size_t)16 << 20) /* bytes a render (or a string in it) may have; 128K tokens are ~0.5 MiB */
#define MAX_STEPS 1000000LL           /* loop iterations + calls per render (chat templates take hundreds) */
#define MAX_MEMORY ((size_t)64 << 20) /* bytes of values a render may create */
#define MAX_WORK (256ull << 20)       /* bytes a render's operations may go through (compares, searches, filters; an
                                      ** item counts ITEM_WORK): a long conversation's template goes through a few MiB */
#else /* the fuzz targets (sanitizers, ~30x slower): the same limits, 16x lower, so every input ends within a second */
#define MAX_OUTPUT ((size_t)1 << 20)
#define MAX_STEPS 62500LL
#define MAX_MEMORY ((size_t)4 << 20)
#define MAX_WORK (16ull << 20)
#endif
#define ITEM_WORK 16

/* ---- tree ---- */

enum { E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_BIN, E_NOT, E_NEG, E_COND, E_AND, E_OR,
       E_LIST, E_DICT };
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT, OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT,
       OP_GE, OP_IN, OP_NOTIN };

typedef struct expr expr;
struct expr {
    int kind, op, line, col;
    bool negated;      /* E_TEST: "is not" */
    jv c;              /* E_CONST */
    const char *name;  /* E_NAME, E_ATTR, E_FILTER, E_TEST */
    expr *a, *b, *c3;  /* operands; E_SLICE: a[b:c3:step=args[0]] */
    expr **args;       /* E_CALL/E_FILTER/E_TEST arguments, E_LIST items, E_DICT keys then values */
    const char **kw;   /* keyword of each argument, NULL for positional */
    int nargs;
};

enum { N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_BREAK, N_CONTINUE };
typedef struct node node;
struct node {
    int kind, line, col;
    node *next;
    const char *text; /* N_TEXT */
    size_t text_n;
    expr *e;          /* N_OUT value, N_IF condition, N_FOR iterable, N_SET value */
    expr *cond;       /* N_FOR filter */
    node *body, *els; /* N_IF then/else, N_FOR body/else, N_SETBLOCK/N_MACRO body */
    node *elif;       /* N_IF: the next {% elif %} (an N_IF), tried before els */
    const char *tgt[8]; /* N_FOR targets, N_SET names (tgt[0]; attr for namespace assignment) */
    int ntgt;
    const char *attr;
    const char **params; /* N_MACRO */
    expr **defaults;
    int nparams;
};

struct lc_template {
    jv_arena arena;
    node *root;
    char *name;
    char *src; /* a copy: line/column of errors */
    size_t src_n;
};

/* ---- errors ---- */

static void line_col(const char *src, size_t off, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < off && src[i]; i++) {
        if (src[i] == '\n') l++, c = 1;
        else c++;
    }
    *line = l, *col = c;
}

/* ---- segmentation (lexing of the template level) ---- */

enum { S_TEXT, S_VAR, S_BLOCK };
typedef struct seg {
    int type;
    size_t off, len; /* content (between the delimiters, markers removed) or text */
} seg;

typedef struct ps {
    lc_template *t;
    const char *src;
    size_t n;
    seg *segs;
    size_t nseg, cap, is;
    /* expression tokens inside the current segment */
    size_t p, end;
    int tok;           /* T_* */
    size_t tok_off, tok_len;
    int depth;
    int err;
} ps;

enum { T_EOF, T_NAME, T_INT, T_FLOAT, T_STR, T_OP };

static int perr_at(ps *P, size_t off, const char *fmt, ...) {
    if (P->err) return P->err;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int l, c;
    line_col(P->src, off, &l, &c);
    return P->err = LC_ERR(LC_E_FORMAT, "%s:%d:%d: %s", P->t->name, l, c, msg);
}

static bool add_seg(ps *P, int type, size_t off, size_t len) {
    if (P->nseg == P->cap) {
        const size_t cap = P->cap ? 2 * P->cap : 64;
        seg *s = lc__realloc(P->segs, sizeof *s * cap);
        if (!s) return false;
        P->segs = s, P->cap = cap;
    }
    P->segs[P->nseg++] = (seg){type, off, len};
    return true;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Splits the source into text and tags, applying {%- -%} {{- -}}, trim_blocks (a newline right after a block or
** comment tag is dropped) and lstrip_blocks (spaces and tabs from the start of a line up to a block or comment tag
** are dropped, unless the tag opens with {%+). The last newline of the template is dropped (keep_trailing_newline
** off). */
static int segment(ps *P) {
    const char *s = P->src;
    size_t n = P->n;
    if (n && s[n - 1] == '\n') n--;
    size_t i = 0, text_start = 0;
    bool strip_next = false, line_start = true;
    while (i <= n) {
        size_t j = i;
        while (j + 1 < n && !(s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#'))) j++;
        const bool at_tag = j + 1 < n && s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#');
        size_t text_end = at_tag ? j : n;
        /* text [text_start, text_end) */
        size_t ts = text_start;
        if (strip_next)
            while (ts < text_end && is_space(s[ts])) ts++;
        if (at_tag) {
            const char kind = s[j + 1];
            const char mod = j + 2 < n ? s[j + 2] : 0;
            if (mod == '-') {
                while (text_end > ts && is_space(s[text_end - 1])) text_end--;
            } else if (kind != '{' && mod != '+') { /* lstrip_blocks */
                size_t k = text_end;
                while (k > ts && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
                /* only when the tag starts its line (after a newline in the text, or at a line start) */
                if ((k > ts && s[k - 1] == '\n') || (k == ts && (ts > text_start || line_start))) text_end = k;
            }
        }
        if (text_end > ts && !add_seg(P, S_TEXT, ts, text_end - ts)) return perr_at(P, i, "out of memory");
        if (!at_tag) break;
        /* the tag */
        const char kind = s[j + 1];
        size_t cs = j + 2;
        if (cs < n && (s[cs] == '-' || s[cs] == '+')) cs++;
        size_t k = cs;
        const char close = kind == '{' ? '}' : kind == '%' ? '%' : '#';
        char quote = 0;
        while (k + 1 < n) {
            if (kind != '#') {
                if (quote) {
                    if (s[k] == '\\') k++;
                    else if (s[k] == quote) quote = 0;
                    k++;
                    continue;
                }
                if (s[k] == '\'' || s[k] == '"') {
                    quote = s[k++];
                    continue;
                }
            }
            if (s[k] == close && s[k + 1] == '}') break;
            k++;
        }
        if (k + 1 >= n) return perr_at(P, j, "unclosed '%c%c' tag", '{', kind);
        size_t ce = k;
        bool strip_after = false;
        if (ce > cs && s[ce - 1] == '-') {
            strip_after = true;
            ce--;
        }
        if (kind != '#' && !add_seg(P, kind == '{' ? S_VAR : S_BLOCK, cs, ce - cs)) return perr_at(P, j, "out of memory");
        i = k + 2;
        line_start = false;
        if (!strip_after && kind != '{' && i < n && s[i] == '\n') { /* trim_blocks */
            i++;
            line_start = true;
        } else if (!strip_after && kind != '{' && i + 1 < n && s[i] == '\r' && s[i + 1] == '\n') {
            i += 2;
            line_start = true;
        }
        strip_next = strip_after;
        text_start = i;
        if (i > n) break;
    }
    return 0;
}

/* ---- expression tokens ---- */

static bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void next_tok(ps *P) {
    const char *s = P->src;
    while (P->p < P->end && is_space(s[P->p])) P->p++;
    P->tok_off = P->p;
    if (P->p >= P->end) {
        P->tok = T_EOF, P->tok_len = 0;
        return;
    }
    const char c = s[P->p];
    size_t q = P->p;
    if (is_name_start(c)) {
        while (q < P->end && (is_name_start(s[q]) || is_digit(s[q]))) q++;
        P->tok = T_NAME;
    } else if (is_digit(c)) {
        P->tok = T_INT;
        while (q < P->end && (is_digit(s[q]) || s[q] == '_')) q++;
        if (q + 1 < P->end && s[q] == '.' && is_digit(s[q + 1])) {
            P->tok = T_FLOAT;
            q++;
            while (q < P->end && is_digit(s[q])) q++;
        }
        if (q < P->end && (s[q] == 'e' || s[q] == 'E')) {
            size_t r = q + 1;
            if (r < P->end && (s[r] == '+' || s[r] == '-')) r++;
            if (r < P->end && is_digit(s[r])) {
                P->tok = T_FLOAT;
                q = r;
                while (q < P->end && is_digit(s[q])) q++;
            }
        }
    } else if (c == '\'' || c == '"') {
        q++;
        while (q < P->end && s[q] != c) q += s[q] == '\\' ? 2 : 1;
        if (q >= P->end) {
            perr_at(P, P->p, "unterminated string");
            P->tok = T_EOF;
            return;
        }
        q++;
        P->tok = T_STR;
    } else {
        static const char *const two[] = {"==", "!=", "<=", ">=", "//", "**"};
        P->tok = T_OP;
        q = P->p + 1;
        for (size_t k = 0; k < sizeof two / sizeof *two; k++)
            if (P->p + 1 < P->end && s[P->p] == two[k][0] && s[P->p + 1] == two[k][1]) q = P->p + 2;
        if (!strchr("+-*/%~=!<>()[]{},.:|", c)) {
            perr_at(P, P->p, "unexpected character '%c'", c);
            P->tok = T_EOF;
            return;
        }
    }
    P->tok_len = q - P->p;
    P->p = q;
}

static bool tok_is(ps *P, const char *t) {
    return (P->tok == T_OP || P->tok == T_NAME) && P->tok_len == strlen(t) && !memcmp(P->src + P->tok_off, t, P->tok_len);
}

static bool accept(ps *P, const char *t) {
    if (!tok_is(P, t)) return false;
    next_tok(P);
    return true;
}

static int expect(ps *P, const char *t) {
    if (accept(P, t)) return 0;
    return perr_at(P, P->tok_off, "expected '%s'%s%.*s%s", t, P->tok == T_EOF ? " at the end of the tag" : ", found '",
                   P->tok == T_EOF ? 0 : (int)P->tok_len, P->src + P->tok_off, P->tok == T_EOF ? "" : "'");
}

static const char *tok_name(ps *P) {
    char *s = jv_alloc(&P->t->arena, P->tok_len + 1);
    if (!s) return "";
    memcpy(s, P->src + P->tok_off, P->tok_len);
    s[P->tok_len] = 0;
    return s;
}

static expr *new_expr(ps *P, int kind, size_t off) {
    expr *e = jv_alloc(&P->t->arena, sizeof *e);
    if (!e) {
        perr_at(P, off, "out of memory");
        return NULL;
    }
    memset(e, 0, sizeof *e);
    e->kind = kind;
    line_col(P->src, off, &e->line, &e->col);
    return e;
}

/* The value of a string literal token, with Python's escapes. */
static jv str_literal(ps *P, size_t off, size_t len) {
    jbuf b = {0};
    const char *s = P->src + off + 1;
    const size_t n = len - 2;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            jbuf_put(&b, s + i, 1);
            continue;
        }
        const char e = s[++i];
        const char *r = NULL;
        switch (e) {
        case 'n': r = "\n"; break;
        case 't': r = "\t"; break;
        case 'r': r = "\r"; break;
        case '\\': r = "\\"; break;
        case '\'': r = "'"; break;
        case '"': r = "\""; break;
        case '0': r = ""; jbuf_put(&b, "\0", 1); break;
        default: jbuf_put(&b, s + i - 1, 2);
        }
        if (r) jbuf_puts(&b, r);
    }
    jv v = jv_str(&P->t->arena, b.p ? b.p : "", b.n);
    lc__free(b.p);
    return v;
}

static expr *parse_expr(ps *P);
static expr *parse_or(ps *P);
static expr *parse_unary(ps *P, bool with_filter);

static bool is_keyword(ps *P) {
    static const char *const kw[] = {"and", "or", "not", "in", "is", "if", "else", "elif", "for", "recursive"};
    if (P->tok != T_NAME) return false;
    for (size_t i = 0; i < sizeof kw / sizeof *kw; i++)
        if (tok_is(P, kw[i])) return true;
    return false;
}

/* Call arguments after '(': positional and name=value, up to ')'. */
static int parse_args(ps *P, expr *e) {
    expr *items[64];
    const char *kws[64];
    int n = 0;
    while (!tok_is(P, ")")) {
        if (n == 64) return perr_at(P, P->tok_off, "more than 64 arguments");
        const char *kw = NULL;
        if (P->tok == T_NAME) { /* name=value? */
            size_t save_p = P->p, save_off = P->tok_off, save_len = P->tok_len;
            const char *nm = tok_name(P);
            next_tok(P);
            if (tok_is(P, "=")) {
                next_tok(P);
                kw = nm;
            } else {
                P->p = save_p, P->tok_off = save_off, P->tok_len = save_len, P->tok = T_NAME;
            }
        }
        items[n] = parse_expr(P);
        kws[n++] = kw;
        if (P->err) return P->err;
        if (!accept(P, ",")) break;
    }
    if (expect(P, ")")) return P->err;
    e->nargs = n;
    e->args = jv_alloc(&P->t->arena, sizeof *e->args * (size_t)(n ? n : 1));
    e->kw = jv_alloc(&P->t->arena, sizeof *e->kw * (size_t)(n ? n : 1));
    if (!e->args || !e->kw) return perr_at(P, P->tok_off, "out of memory");
    memcpy(e->args, items, sizeof *items * (size_t)n);
    memcpy(e->kw, kws, sizeof *kws * (size_t)n);
    return 0;
}

static expr *parse_primary(ps *P) {
    const size_t off = P->tok_off;
    expr *e = NULL;
    if (P->tok == T_NAME) {
        static const char *const cn[] = {"true", "True", "false", "False", "none", "None"};
        for (int k = 0; k < 6; k++)
            if (tok_is(P, cn[k])) {
                e = new_expr(P, E_CONST, off);
                if (!e) return NULL;
                e->c.k = k < 4 ? JV_BOOL : JV_NONE;
                e->c.u.b = k < 2;
                next_tok(P);
                return e;
            }
        e = new_expr(P, E_NAME, off);
        if (!e) return NULL;
        e->name = tok_name(P);
        next_tok(P);
        return e;
    }
    if (P->tok == T_INT || P->tok == T_FLOAT) {
        e = new_expr(P, E_CONST, off);
        if (!e) return NULL;
        char buf[64];
        size_t k = 0;
        for (size_t i = 0; i < P->tok_len && k + 1 < sizeof buf; i++)
            if (P->src[P->tok_off + i] != '_') buf[k++] = P->src[P->tok_off + i];
        buf[k] = 0;
        if (P->tok == T_INT) {
            e->c.k = JV_INT;
            e->c.u.i = strtoll(buf, NULL, 10);
        } else {
            e->c.k = JV_FLOAT;
            e->c.u.f = strtod(buf, NULL);
        }
        next_tok(P);
        return e;
    }
    if (P->tok == T_STR) {
        e = new_expr(P, E_CONST, off);
        if (!e) return NULL;
        e->c = str_literal(P, P->tok_off, P->tok_len);
        next_tok(P);
        while (P->tok == T_STR) { /* adjacent literals concatenate */
            jv more = str_literal(P, P->tok_off, P->tok_len);
            char *s = jv_alloc(&P->t->arena, e->c.u.s.n + more.u.s.n + 1);
            if (!s) return NULL;
            memcpy(s, e->c.u.s.p, e->c.u.s.n);
            memcpy(s + e->c.u.s.n, more.u.s.p, more.u.s.n + 1);
            e->c.u.s.p = s, e->c.u.s.n += more.u.s.n;
            next_tok(P);
        }
        return e;
    }
    if (accept(P, "(")) {
        expr *first = parse_expr(P);
        if (P->err) return NULL;
        if (tok_is(P, ",")) { /* a tuple: a list here */
            e = new_expr(P, E_LIST, off);
            if (!e) return NULL;
            expr *items[256];
            int n = 0;
            items[n++] = first;
            while (accept(P, ",") && !tok_is(P, ")")) {
                if (n == 256) return perr_at(P, P->tok_off, "tuple too long"), NULL;
                items[n++] = parse_expr(P);
                if (P->err) return NULL;
            }
            e->nargs = n;
            e->args = jv_alloc(&P->t->arena, sizeof *e->args * (size_t)n);
            if (!e->args) return NULL;
            memcpy(e->args, items, sizeof *items * (size_t)n);
        } else {
            e = first;
        }
        if (expect(P, ")")) return NULL;
        return e;
    }
    if (accept(P, "[")) {
        e = new_expr(P, E_LIST, off);
        if (!e) return NULL;
        expr **items = NULL;
        int n = 0, cap = 0;
        while (!tok_is(P, "]")) {
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                expr **ni = jv_alloc(&P->t->arena, sizeof *ni * (size_t)cap);
                if (!ni) return NULL;
                if (n) memcpy(ni, items, sizeof *ni * (size_t)n);
                items = ni;
            }
            items[n++] = parse_expr(P);
            if (P->err) return NULL;
            if (!accept(P, ",")) break;
        }
        if (expect(P, "]")) return NULL;
        e->args = items, e->nargs = n;
        return e;
    }
    if (accept(P, "{")) {
        e = new_expr(P, E_DICT, off);
        if (!e) return NULL;
        expr **items = NULL;
        int n = 0, cap = 0;
        while (!tok_is(P, "}")) {
            if (n + 2 > cap) {
                cap = cap ? 2 * cap : 16;
                expr **ni = jv_alloc(&P->t->arena, sizeof *ni * (size_t)cap);
                if (!ni) return NULL;
                if (n) memcpy(ni, items, sizeof *ni * (size_t)n);
                items = ni;
            }
            items[n++] = parse_expr(P);
            if (P->err || expect(P, ":")) return NULL;
            items[n++] = parse_expr(P);
            if (P->err) return NULL;
            if (!accept(P, ",")) break;
        }
        if (expect(P, "}")) return NULL;
        e->args = items, e->nargs = n;
        return e;
    }
    perr_at(P, off, P->tok == T_EOF ? "expected an expression" : "unexpected '%.*s'", (int)P->tok_len,
            P->src + P->tok_off);
    return NULL;
}

static expr *parse_postfix(ps *P, expr *e) {
    while (!P->err) {
        const size_t off = P->tok_off;
        if (accept(P, ".")) {
            expr *a = new_expr(P, E_ATTR, off);
            if (!a) return NULL;
            if (P->tok != T_NAME && P->tok != T_INT) return perr_at(P, P->tok_off, "expected a name after '.'"), NULL;
            a->name = tok_name(P);
            a->a = e;
            if (P->tok == T_INT) { /* x.0 is x[0] */
                a->kind = E_ITEM;
                a->b = new_expr(P, E_CONST, off);
                if (!a->b) return NULL;
                a->b->c.k = JV_INT, a->b->c.u.i = strtoll(a->name, NULL, 10);
            }
            next_tok(P);
            e = a;
        } else if (accept(P, "[")) {
            expr *lo = NULL, *hi = NULL, *step = NULL;
            bool slice = false;
            if (!tok_is(P, ":")) lo = parse_expr(P);
            if (accept(P, ":")) {
                slice = true;
                if (!tok_is(P, "]") && !tok_is(P, ":")) hi = parse_expr(P);
                if (accept(P, ":") && !tok_is(P, "]")) step = parse_expr(P);
            }
            if (P->err || expect(P, "]")) return NULL;
            expr *a = new_expr(P, slice ? E_SLICE : E_ITEM, off);
            if (!a) return NULL;
            a->a = e, a->b = lo, a->c3 = hi;
            if (slice) {
                a->args = jv_alloc(&P->t->arena, sizeof *a->args);
                if (!a->args) return NULL;
                a->args[0] = step;
            }
            e = a;
        } else if (accept(P, "(")) {
            expr *a = new_expr(P, E_CALL, off);
            if (!a) return NULL;
            a->a = e;
            a->line = e->line, a->col = e->col; /* errors of a call point at what is called */
            if (parse_args(P, a)) return NULL;
            e = a;
        } else {
            break;
        }
    }
    return e;
}

static const char *const k_filters[] = {"abs", "capitalize", "count", "d", "default", "dictsort", "first", "float",
                                        "int", "items", "join", "last", "length", "list", "lower", "map", "max",
                                        "min", "reject", "rejectattr", "replace", "reverse", "round", "safe",
                                        "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
                                        "unique", "upper", "wordcount"};
static const char *const k_tests[] = {"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped",
                                      "even", "false", "float", "ge", "gt", "in", "integer", "iterable", "le",
                                      "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence",
                                      "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">="};

static bool known(const char *const *list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return true;
    return false;
}

static expr *parse_filters(ps *P, expr *e) {
    while (!P->err) {
        const size_t off = P->tok_off;
        if (accept(P, "|")) {
            if (P->tok != T_NAME) return perr_at(P, P->tok_off, "expected a filter name after '|'"), NULL;
            expr *f = new_expr(P, E_FILTER, P->tok_off);
            if (!f) return NULL;
            f->name = tok_name(P);
            if (!known(k_filters, sizeof k_filters / sizeof *k_filters, f->name))
                return perr_at(P, P->tok_off, "unsupported filter '%s'", f->name), NULL;
            next_tok(P);
            f->a = e;
            if (accept(P, "(") && parse_args(P, f)) return NULL;
            e = f;
        } else if (accept(P, "is")) {
            expr *t = new_expr(P, E_TEST, off);
            if (!t) return NULL;
            t->negated = accept(P, "not");
            if (P->tok != T_NAME && P->tok != T_OP) return perr_at(P, P->tok_off, "expected a test name after 'is'"), NULL;
            t->name = tok_is(P, "none") ? "none" : tok_name(P);
            if (!known(k_tests, sizeof k_tests / sizeof *k_tests, t->name))
                return perr_at(P, P->tok_off, "unsupported test '%s'", t->name), NULL;
            next_tok(P);
            t->a = e;
            if (accept(P, "(")) {
                if (parse_args(P, t)) return NULL;
            } else if ((P->tok == T_STR || P->tok == T_INT || P->tok == T_FLOAT || P->tok == T_NAME) && !is_keyword(P)) {
                expr *arg = parse_unary(P, false);
                if (P->err) return NULL;
                t->args = jv_alloc(&P->t->arena, sizeof *t->args);
                t->kw = jv_alloc(&P->t->arena, sizeof *t->kw);
                if (!t->args || !t->kw) return NULL;
                t->args[0] = arg, t->kw[0] = NULL, t->nargs = 1;
            }
            e = t;
        } else {
            break;
        }
    }
    return e;
}

static expr *parse_unary(ps *P, bool with_filter) {
    if (++P->depth > MAX_DEPTH) return perr_at(P, P->tok_off, "expression nested too deeply"), NULL;
    const size_t off = P->tok_off;
    expr *e;
    if (accept(P, "-")) {
        e = new_expr(P, E_NEG, off);
        if (e) e->a = parse_unary(P, false);
    } else if (accept(P, "+")) {
        e = parse_unary(P, false);
    } else {
        e = parse_primary(P);
        if (e) e = parse_postfix(P, e);
    }
    if (e && with_filter && !P->err) e = parse_filters(P, e);
    P->depth--;
    return P->err ? NULL : e;
}

static expr *bin(ps *P, int op, size_t off, expr *a, expr *b) {
    expr *e = new_expr(P, E_BIN, off);
    if (!e) return NULL;
    e->op = op, e->a = a, e->b = b;
    return e;
}

static expr *parse_pow(ps *P) {
    expr *a = parse_unary(P, true);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        if (!accept(P, "**")) break;
        a = bin(P, OP_POW, off, a, parse_unary(P, true));
    }
    return a;
}

static expr *parse_math2(ps *P) {
    expr *a = parse_pow(P);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        int op = tok_is(P, "*") ? OP_MUL : tok_is(P, "/") ? OP_DIV : tok_is(P, "//") ? OP_FLOORDIV : tok_is(P, "%") ? OP_MOD : 0;
        if (!op) break;
        next_tok(P);
        a = bin(P, op, off, a, parse_pow(P));
    }
    return a;
}

static expr *parse_concat(ps *P) {
    expr *a = parse_math2(P);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        if (!accept(P, "~")) break;
        a = bin(P, OP_CONCAT, off, a, parse_math2(P));
    }
    return a;
}

static expr *parse_math1(ps *P) {
    expr *a = parse_concat(P);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        int op = tok_is(P, "+") ? OP_ADD : tok_is(P, "-") ? OP_SUB : 0;
        if (!op) break;
        next_tok(P);
        a = bin(P, op, off, a, parse_concat(P));
    }
    return a;
}

static expr *parse_compare(ps *P) {
    expr *a = parse_math1(P);
    expr *result = NULL;
    while (a && !P->err) {
        const size_t off = P->tok_off;
        int op = tok_is(P, "==") ? OP_EQ : tok_is(P, "!=") ? OP_NE : tok_is(P, "<") ? OP_LT : tok_is(P, "<=") ? OP_LE
               : tok_is(P, ">") ? OP_GT : tok_is(P, ">=") ? OP_GE : tok_is(P, "in") ? OP_IN : 0;
        if (!op && tok_is(P, "not")) { /* "not in" */
            size_t save_p = P->p, so = P->tok_off, sl = P->tok_len;
            next_tok(P);
            if (tok_is(P, "in")) op = OP_NOTIN;
            else {
                P->p = save_p, P->tok_off = so, P->tok_len = sl, P->tok = T_NAME;
                break;
            }
        }
        if (!op) break;
        next_tok(P);
        expr *b = parse_math1(P);
        expr *cmp = bin(P, op, off, a, b);
        /* a < b < c is (a < b) and (b < c) */
        if (result) {
            expr *and_ = new_expr(P, E_AND, off);
            if (!and_) return NULL;
            and_->a = result, and_->b = cmp;
            result = and_;
        } else {
            result = cmp;
        }
        a = b;
    }
    return result ? result : a;
}

static expr *parse_not(ps *P) {
    const size_t off = P->tok_off;
    if (accept(P, "not")) {
        expr *e = new_expr(P, E_NOT, off);
        if (e) e->a = parse_not(P);
        return P->err ? NULL : e;
    }
    return parse_compare(P);
}

static expr *parse_and(ps *P) {
    expr *a = parse_not(P);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        if (!accept(P, "and")) break;
        expr *e = new_expr(P, E_AND, off);
        if (!e) return NULL;
        e->a = a, e->b = parse_not(P);
        a = e;
    }
    return a;
}

static expr *parse_or(ps *P) {
    expr *a = parse_and(P);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        if (!accept(P, "or")) break;
        expr *e = new_expr(P, E_OR, off);
        if (!e) return NULL;
        e->a = a, e->b = parse_and(P);
        a = e;
    }
    return a;
}

static expr *parse_expr(ps *P) {
    if (++P->depth > MAX_DEPTH) return perr_at(P, P->tok_off, "expression nested too deeply"), NULL;
    expr *a = parse_or(P);
    while (a && !P->err) {
        const size_t off = P->tok_off;
        if (!accept(P, "if")) break;
        expr *e = new_expr(P, E_COND, off);
        if (!e) return NULL;
        e->a = a;
        e->b = parse_or(P);
        if (accept(P, "else")) e->c3 = parse_expr(P);
        a = e;
    }
    P->depth--;
    return P->err ? NULL : a;
}

/* ---- statements ---- */

static void begin_seg(ps *P, const seg *s) {
    P->p = s->off, P->end = s->off + s->len;
    next_tok(P);
}

static node *new_node(ps *P, int kind, size_t off) {
    node *nd = jv_alloc(&P->t->arena, sizeof *nd);
    if (!nd) {
        perr_at(P, off, "out of memory");
        return NULL;
    }
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    line_col(P->src, off, &nd->line, &nd->col);
    return nd;
}

static int end_of_tag(ps *P) {
    if (P->tok != T_EOF)
        return perr_at(P, P->tok_off, "unexpected '%.*s' at the end of the tag", (int)P->tok_len, P->src + P->tok_off);
    return 0;
}

/* Parses statements until a block tag whose first word is one of stops (NULL-terminated); *stop gets its index
** (the tag's tokens are left current), -1 at the end of the template. */
static node *parse_body(ps *P, const char *const *stops, int *stop);

static node *parse_block_tag(ps *P, const seg *s) {
    const size_t off = s->off;
    if (P->tok != T_NAME) return perr_at(P, off, "expected a statement name"), NULL;
    if (accept(P, "if")) {
        node *nd = new_node(P, N_IF, off);
        if (!nd) return NULL;
        nd->e = parse_expr(P);
        if (P->err || end_of_tag(P)) return NULL;
        static const char *const stops[] = {"elif", "else", "endif", NULL};
        int st;
        nd->body = parse_body(P, stops, &st);
        if (P->err) return NULL;
        node *cur = nd;
        while (st == 0) { /* elif */
            node *el = new_node(P, N_IF, P->tok_off);
            if (!el) return NULL;
            next_tok(P);
            el->e = parse_expr(P);
            if (P->err || end_of_tag(P)) return NULL;
            el->body = parse_body(P, stops, &st);
            if (P->err) return NULL;
            cur->elif = el;
            cur = el;
        }
        if (st == 1) {
            next_tok(P);
            if (end_of_tag(P)) return NULL;
            static const char *const endif[] = {"endif", NULL};
            cur->els = parse_body(P, endif, &st);
            if (P->err) return NULL;
        }
        if (st < 0) return perr_at(P, off, "'if' without 'endif'"), NULL;
        next_tok(P);
        if (end_of_tag(P)) return NULL;
        return nd;
    }
    if (accept(P, "for")) {
        node *nd = new_node(P, N_FOR, off);
        if (!nd) return NULL;
        do {
            if (P->tok != T_NAME || nd->ntgt == 8) return perr_at(P, P->tok_off, "expected a loop variable name"), NULL;
            nd->tgt[nd->ntgt++] = tok_name(P);
            next_tok(P);
        } while (accept(P, ","));
        if (expect(P, "in")) return NULL;
        nd->e = parse_or(P);
        if (P->err) return NULL;
        if (accept(P, "if")) nd->cond = parse_or(P);
        if (P->err) return NULL;
        if (tok_is(P, "recursive")) return perr_at(P, P->tok_off, "unsupported: recursive loops"), NULL;
        if (end_of_tag(P)) return NULL;
        static const char *const stops[] = {"else", "endfor", NULL};
        int st;
        nd->body = parse_body(P, stops, &st);
        if (P->err) return NULL;
        if (st == 0) {
            next_tok(P);
            if (end_of_tag(P)) return NULL;
            static const char *const endfor[] = {"endfor", NULL};
            nd->els = parse_body(P, endfor, &st);
            if (P->err) return NULL;
        }
        if (st < 0) return perr_at(P, off, "'for' without 'endfor'"), NULL;
        next_tok(P);
        if (end_of_tag(P)) return NULL;
        return nd;
    }
    if (accept(P, "set")) {
        node *nd = new_node(P, N_SET, off);
        if (!nd) return NULL;
        if (P->tok != T_NAME) return perr_at(P, P->tok_off, "expected a variable name after 'set'"), NULL;
        nd->tgt[0] = tok_name(P);
        nd->ntgt = 1;
        next_tok(P);
        if (accept(P, ".")) {
            if (P->tok != T_NAME) return perr_at(P, P->tok_off, "expected an attribute name"), NULL;
            nd->attr = tok_name(P);
            next_tok(P);
        } else {
            while (accept(P, ",")) {
                if (P->tok != T_NAME || nd->ntgt == 8) return perr_at(P, P->tok_off, "expected a variable name"), NULL;
                nd->tgt[nd->ntgt++] = tok_name(P);
                next_tok(P);
            }
        }
        if (P->tok == T_EOF) { /* block set: {% set x %}...{% endset %} */
            if (nd->attr || nd->ntgt != 1) return perr_at(P, off, "a block 'set' takes one variable name"), NULL;
            nd->kind = N_SETBLOCK;
            static const char *const endset[] = {"endset", NULL};
            int st;
            nd->body = parse_body(P, endset, &st);
            if (P->err) return NULL;
            if (st < 0) return perr_at(P, off, "'set' without 'endset'"), NULL;
            next_tok(P);
            if (end_of_tag(P)) return NULL;
            return nd;
        }
        if (expect(P, "=")) return NULL;
        nd->e = parse_expr(P);
        if (P->err) return NULL;
        if (tok_is(P, ",")) { /* set a, b = x, y */
            expr *l = new_expr(P, E_LIST, P->tok_off);
            if (!l) return NULL;
            expr *items[8];
            int n = 0;
            items[n++] = nd->e;
            while (accept(P, ",") && n < 8) {
                items[n++] = parse_expr(P);
                if (P->err) return NULL;
            }
            l->args = jv_alloc(&P->t->arena, sizeof *items * (size_t)n);
            if (!l->args) return NULL;
            memcpy(l->args, items, sizeof *items * (size_t)n);
            l->nargs = n;
            nd->e = l;
        }
        if (end_of_tag(P)) return NULL;
        return nd;
    }
    if (accept(P, "macro")) {
        node *nd = new_node(P, N_MACRO, off);
        if (!nd) return NULL;
        if (P->tok != T_NAME) return perr_at(P, P->tok_off, "expected a macro name"), NULL;
        nd->tgt[0] = tok_name(P);
        next_tok(P);
        if (expect(P, "(")) return NULL;
        const char *params[32];
        expr *defs[32];
        int n = 0;
        while (!tok_is(P, ")")) {
            if (P->tok != T_NAME || n == 32) return perr_at(P, P->tok_off, "expected a parameter name"), NULL;
            params[n] = tok_name(P);
            defs[n] = NULL;
            next_tok(P);
            if (accept(P, "=")) defs[n] = parse_expr(P);
            if (P->err) return NULL;
            n++;
            if (!accept(P, ",")) break;
        }
        if (expect(P, ")") || end_of_tag(P)) return NULL;
        nd->params = jv_alloc(&P->t->arena, sizeof *params * (size_t)(n ? n : 1));
        nd->defaults = jv_alloc(&P->t->arena, sizeof *defs * (size_t)(n ? n : 1));
        if (!nd->params || !nd->defaults) return NULL;
        memcpy(nd->params, params, sizeof *params * (size_t)n);
        memcpy(nd->defaults, defs, sizeof *defs * (size_t)n);
        nd->nparams = n;
        static const char *const endmacro[] = {"endmacro", NULL};
        int st;
        nd->body = parse_body(P, endmacro, &st);
        if (P->err) return NULL;
        if (st < 0) return perr_at(P, off, "'macro' without 'endmacro'"), NULL;
        next_tok(P);
        if (end_of_tag(P)) return NULL;
        return nd;
    }
    if (tok_is(P, "break") || tok_is(P, "continue")) {
        const bool is_break = tok_is(P, "break");
        next_tok(P);
        node *nd = new_node(P, is_break ? N_BREAK : N_CONTINUE, off);
        if (!nd || end_of_tag(P)) return NULL;
        return nd;
    }
    return perr_at(P, P->tok_off, "unsupported statement '%.*s'", (int)P->tok_len, P->src + P->tok_off), NULL;
}

static node *parse_body(ps *P, const char *const *stops, int *stop) {
    node *head = NULL, **tail = &head;
    *stop = -1;
    if (++P->depth > MAX_DEPTH) return perr_at(P, P->is < P->nseg ? P->segs[P->is].off : 0, "blocks nested too deeply"), NULL;
    while (P->is < P->nseg && !P->err) {
        const seg *s = &P->segs[P->is++];
        node *nd = NULL;
        if (s->type == S_TEXT) {
            nd = new_node(P, N_TEXT, s->off);
            if (nd) nd->text = P->src + s->off, nd->text_n = s->len;
        } else if (s->type == S_VAR) {
            begin_seg(P, s);
            nd = new_node(P, N_OUT, s->off);
            if (nd) nd->e = parse_expr(P);
            if (!P->err) end_of_tag(P);
        } else {
            begin_seg(P, s);
            for (int k = 0; stops && stops[k]; k++)
                if (tok_is(P, stops[k])) {
                    *stop = k;
                    P->depth--;
                    return head;
                }
            static const char *const closers[] = {"endif", "endfor", "else", "elif", "endset", "endmacro", NULL};
            for (int k = 0; closers[k]; k++)
                if (tok_is(P, closers[k])) return perr_at(P, s->off, "unexpected '%s'", closers[k]), NULL;
            nd = parse_block_tag(P, s);
        }
        if (P->err) return NULL;
        if (nd) {
            *tail = nd;
            tail = &nd->next;
        }
    }
    P->depth--;
    return head;
}

int lc_template_parse(const char *src, size_t len, const char *name, lc_template **out) {
    *out = NULL;
    if (!src) return LC_ERR(LC_E_INVALID, "lc_template_parse: no source");
    lc_template *t = lc__calloc(1, sizeof *t);
    if (!t) return LC_ERR(LC_E_NOMEM, "out of memory");
    name = name && *name ? name : "template";
    t->name = lc__malloc(strlen(name) + 1);
    t->src = lc__malloc(len + 1);
    if (!t->name || !t->src) {
        lc_template_free(t);
        return LC_ERR(LC_E_NOMEM, "out of memory");
    }
    strcpy(t->name, name);
    memcpy(t->src, src, len);
    t->src[len] = 0;
    t->src_n = len;
    if (memchr(src, 0, len)) {
        lc_template_free(t);
        return LC_ERR(LC_E_FORMAT, "%s: the template contains a NUL byte", name);
    }
    ps P = {.t = t, .src = t->src, .n = len};
    int r = segment(&P);
    if (!r) {
        int st;
        t->root = parse_body(&P, NULL, &st);
        r = P.err;
        if (!r && t->arena.failed) r = LC_ERR(LC_E_NOMEM, "%s: out of memory", name);
    }
    lc__free(P.segs);
    if (r) {
        lc_template_free(t);
        return r;
    }
    *out = t;
    return 0;
}

void lc_template_free(lc_template *t) {
    if (!t) return;
    jv_arena_free(&t->arena);
    lc__free(t->name);
    lc__free(t->src);
    lc__free(t);
}

void lc_free(void *p) { lc__free(p); }

/* ---- rendering ---- */

typedef struct scope {
    jdict vars;
    struct scope *parent;
} scope;

typedef struct rc {
    const lc_template *t;
    jv_arena a;
    jbuf *out;
    scope *root, *sc;
    int err, depth;
    long long steps;
    unsigned long long work; /* bytes and items gone through, against MAX_WORK */
    int buf_failed;          /* a string buffer failed: 1 out of memory, 2 past MAX_OUTPUT */
    bool brk, cont;
} rc;

#define JBUF_INIT {.max = MAX_OUTPUT}

/* The size of v to go through: a string's bytes, a container's items. */
static size_t weight(jv v) {
    switch (v.k) {
    case JV_STR: return v.u.s.n;
    case JV_LIST: return v.u.l->n * ITEM_WORK;
    case JV_DICT: case JV_NS: return v.u.d->n * ITEM_WORK;
    default: return 1;
    }
}

/* A buffer's text as a new string value; a failed buffer sets R->buf_failed (reported where the expression is). */
static jv buf_value(rc *R, jbuf *b) {
    jv r = {.k = JV_UNDEF};
    if (b->failed) R->buf_failed = b->too_large ? 2 : 1;
    else r = jv_str(&R->a, b->p ? b->p : "", b->n);
    lc__free(b->p);
    b->p = NULL;
    return r;
}

enum { F_RAISE = 1, F_NAMESPACE, F_RANGE, F_DICT };

static jv UNDEF_V(void) { return (jv){.k = JV_UNDEF}; }
static jv NONE_V(void) { return (jv){.k = JV_NONE}; }
static jv BOOL_V(bool b) { return (jv){.k = JV_BOOL, .u.b = b}; }
static jv INT_V(int64_t i) { return (jv){.k = JV_INT, .u.i = i}; }

static int rfail(rc *R, int line, int col, const char *fmt, ...) {
    if (R->err) return R->err;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return R->err = LC_ERR(LC_E_FORMAT, "%s:%d:%d: %s", R->t->name, line, col, msg);
}
#define EFAIL(e, ...) (rfail(R, (e)->line, (e)->col, __VA_ARGS__), UNDEF_V())

static const char *kind_name(jv v) {
    static const char *const n[] = {"Undefined", "NoneType", "bool", "int", "float", "str", "list", "dict",
                                    "Namespace", "function", "macro"};
    return n[v.k];
}

static bool truthy(jv v) {
    switch (v.k) {
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n > 0;
    case JV_LIST: return v.u.l->n > 0;
    case JV_DICT: return v.u.d->n > 0;
    case JV_NS: case JV_FUNC: case JV_MACRO: return true;
    default: return false;
    }
}

static bool is_num(jv v) { return v.k == JV_INT || v.k == JV_FLOAT || v.k == JV_BOOL; }
static double num(jv v) { return v.k == JV_FLOAT ? v.u.f : v.k == JV_INT ? (double)v.u.i : (double)v.u.b; }
/* As an integer: floats truncate toward zero, saturating (NaN: 0), never undefined behaviour. */
static int64_t inum(jv v) {
    if (v.k == JV_INT) return v.u.i;
    if (v.k == JV_BOOL) return v.u.b;
    if (v.k != JV_FLOAT || isnan(v.u.f)) return 0;
    if (v.u.f >= 9.2e18) return INT64_MAX;
    if (v.u.f <= -9.2e18) return INT64_MIN;
    return (int64_t)v.u.f;
}

static bool equal_at(rc *R, jv a, jv b, int depth);
static bool equal(rc *R, jv a, jv b) { return equal_at(R, a, b, 0); }

/* Python's ==; containers compare item by item (a namespace can hold itself: past 64 levels, unequal). Each item
** and string byte counts against MAX_WORK (values that share parts can take exponential time otherwise); past it,
** unequal, and eval reports the limit. */
static bool equal_at(rc *R, jv a, jv b, int depth) {
    if (depth > 64 || R->work > MAX_WORK) return false;
    R->work += ITEM_WORK + (a.k == JV_STR ? a.u.s.n : 0);
    if (is_num(a) && is_num(b)) {
        if (a.k != JV_FLOAT && b.k != JV_FLOAT) return inum(a) == inum(b);
        return num(a) == num(b);
    }
    if (a.k != b.k) return false;
    switch (a.k) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!equal_at(R, a.u.l->a[i], b.u.l->a[i], depth + 1)) return false;
        return true;
    case JV_DICT: case JV_NS:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            const jv *o = jv_dict_get(b.u.d, a.u.d->keys[i].u.s.p, a.u.d->keys[i].u.s.n);
            if (!o || !equal_at(R, a.u.d->vals[i], *o, depth + 1)) return false;
        }
        return true;
    default: return a.u.macro == b.u.macro;
    }
}

/* str(v) as a new string value. */
static jv to_string(rc *R, jv v) {
    if (v.k == JV_STR) return v;
    jbuf b = JBUF_INIT;
    jv_to_str(&b, v);
    jv r = buf_value(R, &b);
    return r.k == JV_STR ? r : jv_str(&R->a, "", 0);
}

/* UTF-8 code points of a string (Python iterates and counts those). */
static size_t u8_next(const char *s, size_t n, size_t i) {
    const unsigned char c = (unsigned char)s[i];
    size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return i + l > n ? n : i + l;
}
static size_t u8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i = u8_next(s, n, i)) k++;
    return k;
}

/* The items a for-loop (or a filter) walks: lists as they are, dict keys, string characters; Undefined is empty. */
static bool iterate(rc *R, const expr *at, jv v, jlist **out) {
    static jlist empty;
    if (v.k == JV_LIST) return *out = v.u.l, true;
    if (v.k == JV_UNDEF) return *out = &empty, true;
    jv l = jv_new_list(&R->a);
    if (l.k != JV_LIST) return rfail(R, at->line, at->col, "out of memory"), false;
    if (v.k == JV_DICT || v.k == JV_NS) {
        for (size_t i = 0; i < v.u.d->n; i++) jv_list_push(&R->a, l.u.l, v.u.d->keys[i]);
    } else if (v.k == JV_STR) {
        for (size_t i = 0, j; i < v.u.s.n; i = j) {
            j = u8_next(v.u.s.p, v.u.s.n, i);
            jv_list_push(&R->a, l.u.l, jv_str(&R->a, v.u.s.p + i, j - i));
        }
    } else {
        return rfail(R, at->line, at->col, "'%s' object is not iterable", kind_name(v)), false;
    }
    *out = l.u.l;
    return !R->a.failed || (rfail(R, at->line, at->col, "out of memory"), false);
}

static jv lookup(rc *R, const char *name) {
    const size_t n = strlen(name);
    for (scope *s = R->sc; s; s = s->parent) {
        const jv *v = jv_dict_get(&s->vars, name, n);
        if (v) return *v;
    }
    jv f = {.k = JV_FUNC};
    if (!strcmp(name, "raise_exception")) return f.u.fn = F_RAISE, f;
    if (!strcmp(name, "namespace")) return f.u.fn = F_NAMESPACE, f;
    if (!strcmp(name, "range")) return f.u.fn = F_RANGE, f;
    if (!strcmp(name, "dict")) return f.u.fn = F_DICT, f;
    return UNDEF_V();
}

static bool set_var(rc *R, scope *s, const char *name, jv v) {
    return jv_dict_set(&R->a, &s->vars, name, strlen(name), v);
}

/* obj.name / obj[key] as Jinja2's environment.getattr/getitem: a missing member is Undefined; a member of
** Undefined is an error. */
static jv get_member(rc *R, const expr *at, jv obj, jv key) {
    if (obj.k == JV_UNDEF)
        return EFAIL(at, "cannot read %s%.*s%s of an undefined value", key.k == JV_STR ? "'" : "an item",
                     key.k == JV_STR ? (int)key.u.s.n : 0, key.k == JV_STR ? key.u.s.p : "", key.k == JV_STR ? "'" : "");
    if ((obj.k == JV_DICT || obj.k == JV_NS) && key.k == JV_STR) {
        const jv *v = jv_dict_get(obj.u.d, key.u.s.p, key.u.s.n);
        return v ? *v : UNDEF_V();
    }
    if (obj.k == JV_LIST && (key.k == JV_INT || key.k == JV_BOOL)) {
        int64_t i = inum(key);
        if (i < 0) i += (int64_t)obj.u.l->n;
        return i >= 0 && (size_t)i < obj.u.l->n ? obj.u.l->a[i] : UNDEF_V();
    }
    if (obj.k == JV_STR && (key.k == JV_INT || key.k == JV_BOOL)) {
        int64_t i = inum(key);
        const int64_t len = (int64_t)u8_count(obj.u.s.p, obj.u.s.n);
        if (i < 0) i += len;
        if (i < 0 || i >= len) return UNDEF_V();
        size_t p = 0;
        for (int64_t k = 0; k < i; k++) p = u8_next(obj.u.s.p, obj.u.s.n, p);
        return jv_str(&R->a, obj.u.s.p + p, u8_next(obj.u.s.p, obj.u.s.n, p) - p);
    }
    return UNDEF_V();
}

static jv eval(rc *R, const expr *e);

static int64_t slice_index(int64_t i, int64_t len) {
    if (i < 0) i += len;
    return i < 0 ? 0 : i > len ? len : i;
}

static jv do_slice(rc *R, const expr *e, jv obj, jv lo, jv hi, jv step) {
    int64_t st = step.k == JV_UNDEF || step.k == JV_NONE ? 1 : inum(step);
    if (st == 0) return EFAIL(e, "slice step cannot be zero");
    jlist *items;
    if (obj.k == JV_UNDEF) return EFAIL(e, "cannot slice an undefined value");
    if (obj.k != JV_LIST && obj.k != JV_STR) return EFAIL(e, "cannot slice a '%s'", kind_name(obj));
    if (!iterate(R, e, obj, &items)) return UNDEF_V();
    const int64_t len = (int64_t)items->n;
    int64_t a, b;
    if (st > 0) {
        a = lo.k == JV_UNDEF || lo.k == JV_NONE ? 0 : slice_index(inum(lo), len);
        b = hi.k == JV_UNDEF || hi.k == JV_NONE ? len : slice_index(inum(hi), len);
    } else {
        a = lo.k == JV_UNDEF || lo.k == JV_NONE ? len - 1 : inum(lo) < 0 ? inum(lo) + len : inum(lo);
        b = hi.k == JV_UNDEF || hi.k == JV_NONE ? -1 : inum(hi) < 0 ? inum(hi) + len : inum(hi);
        if (a >= len) a = len - 1;
        if (b < -1) b = -1;
    }
    jv r = jv_new_list(&R->a);
    for (int64_t i = a; st > 0 ? i < b : i > b;) {
        jv_list_push(&R->a, r.u.l, items->a[i]);
        if (st > 0 ? i > len - st : i < -1 - st) break; /* the next index would pass the end (no overflow) */
        i += st;
    }
    if (obj.k == JV_STR) {
        jbuf bb = JBUF_INIT;
        for (size_t i = 0; i < r.u.l->n; i++) jbuf_put(&bb, r.u.l->a[i].u.s.p, r.u.l->a[i].u.s.n);
        r = buf_value(R, &bb);
    }
    return r;
}

static int cmp_values(rc *R, const expr *e, jv a, jv b) {
    if (is_num(a) && is_num(b)) return num(a) < num(b) ? -1 : num(a) > num(b);
    if (a.k == JV_STR && b.k == JV_STR) {
        const size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        const int c = memcmp(a.u.s.p, b.u.s.p, n);
        R->work += n;
        return c ? (c < 0 ? -1 : 1) : (a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n);
    }
    rfail(R, e->line, e->col, "cannot compare '%s' with '%s'", kind_name(a), kind_name(b));
    return 0;
}

static bool contains(rc *R, const expr *e, jv item, jv in) {
    if (in.k == JV_STR) {
        if (item.k != JV_STR) return rfail(R, e->line, e->col, "'in <string>' requires a string"), false;
        if (!item.u.s.n) return true;
        return memmem(in.u.s.p, in.u.s.n, item.u.s.p, item.u.s.n) != NULL;
    }
    if (in.k == JV_DICT || in.k == JV_NS) return item.k == JV_STR && jv_dict_get(in.u.d, item.u.s.p, item.u.s.n);
    if (in.k == JV_LIST) {
        for (size_t i = 0; i < in.u.l->n; i++)
            if (equal(R, item, in.u.l->a[i])) return true;
        return false;
    }
    if (in.k == JV_UNDEF) return false;
    return rfail(R, e->line, e->col, "argument of type '%s' is not iterable", kind_name(in)), false;
}

static jv binop(rc *R, const expr *e, int op, jv a, jv b) {
    if (op == OP_EQ) return BOOL_V(equal(R, a, b));
    if (op == OP_NE) return BOOL_V(!equal(R, a, b));
    if (op == OP_IN || op == OP_NOTIN) {
        const bool c = contains(R, e, a, b);
        return BOOL_V(op == OP_IN ? c : !c);
    }
    if (op == OP_CONCAT) {
        jv sa = to_string(R, a), sb = to_string(R, b);
        char *p = jv_alloc(&R->a, sa.u.s.n + sb.u.s.n + 1);
        if (!p) return EFAIL(e, "out of memory");
        memcpy(p, sa.u.s.p, sa.u.s.n);
        memcpy(p + sa.u.s.n, sb.u.s.p, sb.u.s.n);
        p[sa.u.s.n + sb.u.s.n] = 0;
        return (jv){.k = JV_STR, .u.s = {p, sa.u.s.n + sb.u.s.n}};
    }
    if (a.k == JV_UNDEF || b.k == JV_UNDEF) return EFAIL(e, "an undefined value in an operation");
    if (op >= OP_LT && op <= OP_GE) {
        const int c = cmp_values(R, e, a, b);
        return BOOL_V(op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
    }
    if (op == OP_ADD && a.k == JV_STR && b.k == JV_STR) return binop(R, e, OP_CONCAT, a, b);
    if (op == OP_ADD && a.k == JV_LIST && b.k == JV_LIST) {
        jv r = jv_new_list(&R->a);
        for (size_t i = 0; i < a.u.l->n; i++) jv_list_push(&R->a, r.u.l, a.u.l->a[i]);
        for (size_t i = 0; i < b.u.l->n; i++) jv_list_push(&R->a, r.u.l, b.u.l->a[i]);
        return r;
    }
    if (op == OP_MUL && ((a.k == JV_STR && b.k == JV_INT) || (a.k == JV_INT && b.k == JV_STR))) {
        jv s = a.k == JV_STR ? a : b;
        const int64_t k = a.k == JV_INT ? a.u.i : b.u.i;
        if (k <= 0 || !s.u.s.n) return jv_str(&R->a, "", 0);
        if (s.u.s.n * (uint64_t)k > MAX_OUTPUT) return EFAIL(e, "string repetition too large");
        const size_t total = s.u.s.n * (size_t)k;
        char *p = jv_alloc(&R->a, total + 1);
        if (!p) return EFAIL(e, "out of memory");
        memcpy(p, s.u.s.p, s.u.s.n);
        for (size_t have = s.u.s.n; have < total; have *= 2) memcpy(p + have, p, LC_MIN(have, total - have));
        p[total] = 0;
        return (jv){.k = JV_STR, .u.s = {p, total}};
    }
    if (!is_num(a) || !is_num(b))
        return EFAIL(e, "unsupported operand types for %s: '%s' and '%s'",
                     op == OP_ADD ? "+" : op == OP_SUB ? "-" : op == OP_MUL ? "*" : op == OP_MOD ? "%" : "/",
                     kind_name(a), kind_name(b));
    const bool fl = a.k == JV_FLOAT || b.k == JV_FLOAT;
    const double x = num(a), y = num(b);
    const int64_t i = inum(a), j = inum(b);
    switch (op) {
    case OP_ADD: return fl ? (jv){.k = JV_FLOAT, .u.f = x + y} : INT_V((int64_t)((uint64_t)i + (uint64_t)j));
    case OP_SUB: return fl ? (jv){.k = JV_FLOAT, .u.f = x - y} : INT_V((int64_t)((uint64_t)i - (uint64_t)j));
    case OP_MUL: return fl ? (jv){.k = JV_FLOAT, .u.f = x * y} : INT_V((int64_t)((uint64_t)i * (uint64_t)j));
    case OP_DIV:
        if (y == 0) return EFAIL(e, "division by zero");
        return (jv){.k = JV_FLOAT, .u.f = x / y};
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0) return EFAIL(e, "integer division or modulo by zero");
        if (fl) {
            const double q = floor(x / y);
            return (jv){.k = JV_FLOAT, .u.f = op == OP_FLOORDIV ? q : x - q * y};
        } else {
            if (i == INT64_MIN && j == -1) return op == OP_MOD ? INT_V(0) : EFAIL(e, "integer overflow");
            int64_t q = i / j, m = i % j;
            if (m && ((m < 0) != (j < 0))) q--, m += j;
            return INT_V(op == OP_FLOORDIV ? q : m);
        }
    case OP_POW: return fl || j < 0 ? (jv){.k = JV_FLOAT, .u.f = pow(x, y)} : (jv){.k = JV_FLOAT, .u.f = pow(x, y)};
    }
    return EFAIL(e, "unsupported operator");
}

/* ---- filters, tests, methods ---- */

static jv arg_at(rc *R, const expr *e, int pos, const char *kw) {
    int p = 0;
    for (int i = 0; i < e->nargs; i++) {
        if (e->kw[i] ? (kw && !strcmp(e->kw[i], kw)) : p++ == pos) return eval(R, e->args[i]);
    }
    return UNDEF_V();
}

static bool py_space(const char *s, size_t n, size_t i, size_t *len) {
    const unsigned char c = (unsigned char)s[i];
    *len = 1;
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return true;
    if (c < 0x80) return false;
    /* multi-byte spaces: U+0085 U+00A0 U+1680 U+2000..200A U+2028 U+2029 U+202F U+205F U+3000 */
    if (i + 1 < n && c == 0xC2 && ((unsigned char)s[i + 1] == 0x85 || (unsigned char)s[i + 1] == 0xA0)) return *len = 2, true;
    if (i + 2 < n) {
        const unsigned char d = (unsigned char)s[i + 1], f = (unsigned char)s[i + 2];
        if ((c == 0xE1 && d == 0x9A && f == 0x80) || (c == 0xE2 && d == 0x80 && (f <= 0x8A || f == 0xA8 || f == 0xA9 || f == 0xAF)) ||
            (c == 0xE2 && d == 0x81 && f == 0x9F) || (c == 0xE3 && d == 0x80 && f == 0x80))
            return *len = 3, true;
    }
    return false;
}

/* Python str.strip()/lstrip()/rstrip() without arguments (which = 3, 1, 2), or of the characters in chars. */
static jv py_strip(rc *R, jv s, int which, jv chars) {
    size_t a = 0, b = s.u.s.n, l;
    if (chars.k == JV_STR) {
        if (which & 1)
            while (a < b && memchr(chars.u.s.p, s.u.s.p[a], chars.u.s.n)) a++;
        if (which & 2)
            while (b > a && memchr(chars.u.s.p, s.u.s.p[b - 1], chars.u.s.n)) b--;
    } else {
        if (which & 1)
            while (a < b && py_space(s.u.s.p, b, a, &l)) a += l;
        if (which & 2)
            while (b > a) {
                size_t k = b - 1;
                while (k > a && ((unsigned char)s.u.s.p[k] & 0xC0) == 0x80) k--;
                if (!py_space(s.u.s.p, b, k, &l) || k + l != b) break;
                b = k;
            }
    }
    return jv_str(&R->a, s.u.s.p + a, b - a);
}

static jv str_case(rc *R, jv s, int mode) { /* 0 upper, 1 lower, 2 capitalize, 3 title (ASCII letters) */
    jv r = jv_str(&R->a, s.u.s.p, s.u.s.n);
    char *p = (char *)r.u.s.p;
    bool start = true;
    for (size_t i = 0; p && i < r.u.s.n; i++) {
        const char c = p[i];
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool up = mode == 0 || ((mode == 2 && i == 0) || (mode == 3 && start));
        if (mode == 1 || (mode >= 2 && !up)) up = false;
        if (letter) p[i] = up ? (char)(c & ~0x20) : (char)(c | 0x20);
        if (mode == 3) start = !letter && !((unsigned char)c >= 0x80);
    }
    return r;
}

static jv py_split(rc *R, jv s, jv sep, jv maxsplit) {
    jv r = jv_new_list(&R->a);
    int64_t max = maxsplit.k == JV_INT ? maxsplit.u.i : -1;
    const char *p = s.u.s.p;
    const size_t n = s.u.s.n;
    if (sep.k == JV_STR && sep.u.s.n) {
        size_t st = 0;
        for (size_t i = 0; i + sep.u.s.n <= n;) {
            if (max != 0 && !memcmp(p + i, sep.u.s.p, sep.u.s.n)) {
                jv_list_push(&R->a, r.u.l, jv_str(&R->a, p + st, i - st));
                i += sep.u.s.n, st = i;
                if (max > 0) max--;
            } else {
                i++;
            }
        }
        jv_list_push(&R->a, r.u.l, jv_str(&R->a, p + st, n - st));
    } else {
        size_t i = 0, l;
        while (i < n) {
            while (i < n && py_space(p, n, i, &l)) i += l;
            if (i >= n) break;
            size_t st = i;
            if (max == 0) {
                jv t = py_strip(R, jv_str(&R->a, p + st, n - st), 2, UNDEF_V());
                jv_list_push(&R->a, r.u.l, t);
                break;
            }
            while (i < n && !py_space(p, n, i, &l)) i = u8_next(p, n, i);
            jv_list_push(&R->a, r.u.l, jv_str(&R->a, p + st, i - st));
            if (max > 0) max--;
        }
    }
    return r;
}

static jv py_replace(rc *R, jv s, jv a, jv b, jv count) {
    if (a.k != JV_STR || b.k != JV_STR) return s;
    int64_t max = count.k == JV_INT ? count.u.i : -1;
    jbuf bb = JBUF_INIT;
    size_t i = 0;
    if (!a.u.s.n) return s;
    while (i < s.u.s.n) {
        if (max != 0 && i + a.u.s.n <= s.u.s.n && !memcmp(s.u.s.p + i, a.u.s.p, a.u.s.n)) {
            jbuf_put(&bb, b.u.s.p, b.u.s.n);
            i += a.u.s.n;
            if (max > 0) max--;
        } else {
            jbuf_put(&bb, s.u.s.p + i, 1);
            i++;
        }
    }
    jv r = buf_value(R, &bb);
    return r;
}

static bool run_test(rc *R, const expr *e, const char *name, jv v, jv arg);

static jv length_of(rc *R, const expr *e, jv v) {
    switch (v.k) {
    case JV_STR: return INT_V((int64_t)u8_count(v.u.s.p, v.u.s.n));
    case JV_LIST: return INT_V((int64_t)v.u.l->n);
    case JV_DICT: case JV_NS: return INT_V((int64_t)v.u.d->n);
    case JV_UNDEF: return INT_V(0);
    default: return EFAIL(e, "object of type '%s' has no len()", kind_name(v));
    }
}

/* select/reject/selectattr/rejectattr: keep items whose test (default: truthiness) is true (select) or false. */
static jv filter_select(rc *R, const expr *e, jv v, bool attr, bool keep) {
    jlist *items;
    if (!iterate(R, e, v, &items)) return UNDEF_V();
    int p = 0;
    jv attr_name = attr ? arg_at(R, e, p++, NULL) : UNDEF_V();
    jv test = arg_at(R, e, p++, NULL), targ = arg_at(R, e, p, NULL);
    if (R->err) return UNDEF_V();
    if (attr && attr_name.k != JV_STR) return EFAIL(e, "%s needs an attribute name", e->name);
    if (test.k != JV_UNDEF && test.k != JV_STR) return EFAIL(e, "%s: the test must be a name", e->name);
    if (test.k == JV_STR && !known(k_tests, sizeof k_tests / sizeof *k_tests, test.u.s.p))
        return EFAIL(e, "unsupported test '%s'", test.u.s.p);
    jv r = jv_new_list(&R->a);
    for (size_t i = 0; i < items->n && !R->err; i++) {
        jv x = items->a[i];
        if (attr) x = x.k == JV_UNDEF ? x : get_member(R, e, x, attr_name);
        const bool t = test.k == JV_STR ? run_test(R, e, test.u.s.p, x, targ) : truthy(x);
        if (t == keep) jv_list_push(&R->a, r.u.l, items->a[i]);
    }
    return r;
}

static jv apply_filter(rc *R, const expr *e, jv v) {
    const char *f = e->name;
    if (!strcmp(f, "tojson")) {
        jv ind = arg_at(R, e, 0, "indent");
        jbuf b = JBUF_INIT;
        const char *bad = NULL;
        if (!jv_to_json(&b, v, ind.k == JV_INT ? (int)ind.u.i : -1, &bad)) {
            lc__free(b.p);
            return EFAIL(e, "tojson: %s is not JSON serializable", bad);
        }
        jv r = buf_value(R, &b);
        return r;
    }
    if (!strcmp(f, "trim")) {
        jv chars = arg_at(R, e, 0, "chars");
        return py_strip(R, to_string(R, v), 3, chars);
    }
    if (!strcmp(f, "length") || !strcmp(f, "count")) return length_of(R, e, v);
    if (!strcmp(f, "string")) return to_string(R, v);
    if (!strcmp(f, "safe")) return v;
    if (!strcmp(f, "upper")) return str_case(R, to_string(R, v), 0);
    if (!strcmp(f, "lower")) return str_case(R, to_string(R, v), 1);
    if (!strcmp(f, "capitalize")) return str_case(R, str_case(R, to_string(R, v), 1), 2);
    if (!strcmp(f, "title")) return str_case(R, to_string(R, v), 3);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        jv def = arg_at(R, e, 0, "default_value"), boolean = arg_at(R, e, 1, "boolean");
        if (v.k == JV_UNDEF || (truthy(boolean) && !truthy(v))) return def.k == JV_UNDEF ? jv_str(&R->a, "", 0) : def;
        return v;
    }
    if (!strcmp(f, "items")) {
        if (v.k == JV_UNDEF) return jv_new_list(&R->a);
        if (v.k != JV_DICT && v.k != JV_NS) return EFAIL(e, "items: can only get item pairs from a mapping, not a '%s'", kind_name(v));
        jv r = jv_new_list(&R->a);
        for (size_t i = 0; i < v.u.d->n; i++) {
            jv pair = jv_new_list(&R->a);
            jv_list_push(&R->a, pair.u.l, v.u.d->keys[i]);
            jv_list_push(&R->a, pair.u.l, v.u.d->vals[i]);
            jv_list_push(&R->a, r.u.l, pair);
        }
        return r;
    }
    if (!strcmp(f, "join")) {
        jv sep = arg_at(R, e, 0, "d"), attr = arg_at(R, e, 1, "attribute");
        jlist *items;
        if (!iterate(R, e, v, &items)) return UNDEF_V();
        jbuf b = JBUF_INIT;
        jv ss = sep.k == JV_UNDEF ? jv_str(&R->a, "", 0) : to_string(R, sep);
        for (size_t i = 0; i < items->n; i++) {
            if (i) jbuf_put(&b, ss.u.s.p, ss.u.s.n);
            jv x = attr.k != JV_UNDEF ? get_member(R, e, items->a[i], attr) : items->a[i];
            jv_to_str(&b, x);
        }
        jv r = buf_value(R, &b);
        return r;
    }
    if (!strcmp(f, "select") || !strcmp(f, "reject")) return filter_select(R, e, v, false, f[0] == 's');
    if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr")) return filter_select(R, e, v, true, f[0] == 's');
    if (!strcmp(f, "map")) {
        jlist *items;
        if (!iterate(R, e, v, &items)) return UNDEF_V();
        jv attr = arg_at(R, e, -1, "attribute"), def = arg_at(R, e, -1, "default");
        if (attr.k != JV_STR) return EFAIL(e, "map: only map(attribute=...) is supported");
        jv r = jv_new_list(&R->a);
        for (size_t i = 0; i < items->n && !R->err; i++) {
            jv x = get_member(R, e, items->a[i], attr);
            jv_list_push(&R->a, r.u.l, x.k == JV_UNDEF && def.k != JV_UNDEF ? def : x);
        }
        return r;
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        jlist *items;
        if (!iterate(R, e, v, &items)) return UNDEF_V();
        return items->n ? items->a[f[0] == 'f' ? 0 : items->n - 1] : UNDEF_V();
    }
    if (!strcmp(f, "list")) {
        jlist *items;
        if (!iterate(R, e, v, &items)) return UNDEF_V();
        jv r = jv_new_list(&R->a);
        for (size_t i = 0; i < items->n; i++) jv_list_push(&R->a, r.u.l, items->a[i]);
        return r;
    }
    if (!strcmp(f, "reverse")) {
        jlist *items;
        if (!iterate(R, e, v, &items)) return UNDEF_V();
        jv r = jv_new_list(&R->a);
        for (size_t i = items->n; i-- > 0;) jv_list_push(&R->a, r.u.l, items->a[i]);
        if (v.k == JV_STR) {
            jbuf b = JBUF_INIT;
            for (size_t i = 0; i < r.u.l->n; i++) jbuf_put(&b, r.u.l->a[i].u.s.p, r.u.l->a[i].u.s.n);
            r = buf_value(R, &b);
        }
        return r;
    }
    if (!strcmp(f, "unique")) {
        jlist *items;
        if (!iterate(R, e, v, &items)) return UNDEF_V();
        jv r = jv_new_list(&R->a);
        for (size_t i = 0; i < items->n; i++) {
            bool seen = false;
            for (size_t k = 0; k < r.u.l->n && !seen; k++) seen = equal(R, r.u.l->a[k], items->a[i]);
            if (!seen) jv_list_push(&R->a, r.u.l, items->a[i]);
        }
        return r;
    }
    if (!strcmp(f, "int")) {
        if (v.k == JV_STR) {
            char *end;
            const long long x = strtoll(v.u.s.p, &end, 10);
            return INT_V(end != v.u.s.p ? x : inum(arg_at(R, e, 0, "default")));
        }
        return is_num(v) ? INT_V(inum(v)) : INT_V(0);
    }
    if (!strcmp(f, "float")) {
        if (v.k == JV_STR) return (jv){.k = JV_FLOAT, .u.f = strtod(v.u.s.p, NULL)};
        return (jv){.k = JV_FLOAT, .u.f = is_num(v) ? num(v) : 0.0};
    }
    if (!strcmp(f, "abs")) {
        if (v.k == JV_INT) return INT_V(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.k == JV_FLOAT) return (jv){.k = JV_FLOAT, .u.f = fabs(v.u.f)};
        return EFAIL(e, "abs: bad operand type '%s'", kind_name(v));
    }
    if (!strcmp(f, "replace"))
        return py_replace(R, to_string(R, v), arg_at(R, e, 0, "old"), arg_at(R, e, 1, "new"), arg_at(R, e, 2, "count"));
    if (!strcmp(f, "wordcount")) return INT_V((int64_t)py_split(R, to_string(R, v), UNDEF_V(), UNDEF_V()).u.l->n);
    return EFAIL(e, "unsupported filter '%s'", f);
}

static bool run_test(rc *R, const expr *e, const char *t, jv v, jv arg) {
    if (!strcmp(t, "defined")) return v.k != JV_UNDEF;
    if (!strcmp(t, "undefined")) return v.k == JV_UNDEF;
    if (!strcmp(t, "none")) return v.k == JV_NONE;
    if (!strcmp(t, "string")) return v.k == JV_STR;
    if (!strcmp(t, "number")) return v.k == JV_INT || v.k == JV_FLOAT || v.k == JV_BOOL;
    if (!strcmp(t, "integer")) return v.k == JV_INT;
    if (!strcmp(t, "float")) return v.k == JV_FLOAT;
    if (!strcmp(t, "boolean")) return v.k == JV_BOOL;
    if (!strcmp(t, "true")) return v.k == JV_BOOL && v.u.b;
    if (!strcmp(t, "false")) return v.k == JV_BOOL && !v.u.b;
    if (!strcmp(t, "mapping")) return v.k == JV_DICT || v.k == JV_NS;
    if (!strcmp(t, "iterable")) return v.k == JV_LIST || v.k == JV_DICT || v.k == JV_STR || v.k == JV_UNDEF;
    if (!strcmp(t, "sequence")) return v.k == JV_LIST || v.k == JV_DICT || v.k == JV_STR;
    if (!strcmp(t, "callable")) return v.k == JV_FUNC || v.k == JV_MACRO;
    if (!strcmp(t, "escaped")) return false;
    if (!strcmp(t, "odd") || !strcmp(t, "even")) {
        if (v.k != JV_INT) return rfail(R, e->line, e->col, "test '%s' needs an integer", t), false;
        return (v.u.i % 2 != 0) == (t[0] == 'o');
    }
    if (!strcmp(t, "divisibleby")) {
        if (!is_num(v) || !is_num(arg) || inum(arg) == 0) return rfail(R, e->line, e->col, "divisibleby: bad operands"), false;
        return inum(v) % inum(arg) == 0;
    }
    if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        if (v.k != JV_STR) return false;
        jv c = str_case(R, v, t[0] == 'l' ? 1 : 0);
        return equal(R, c, v);
    }
    if (!strcmp(t, "in")) return contains(R, e, v, arg);
    if (!strcmp(t, "sameas")) return equal(R, v, arg) && v.k == arg.k;
    static const struct {
        const char *name;
        int op;
    } cmp[] = {{"eq", OP_EQ}, {"equalto", OP_EQ}, {"==", OP_EQ}, {"ne", OP_NE}, {"!=", OP_NE}, {"lt", OP_LT},
               {"<", OP_LT},  {"le", OP_LE},      {"<=", OP_LE}, {"gt", OP_GT}, {">", OP_GT},  {"ge", OP_GE},
               {">=", OP_GE}};
    for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++)
        if (!strcmp(t, cmp[i].name)) return truthy(binop(R, e, cmp[i].op, v, arg));
    rfail(R, e->line, e->col, "unsupported test '%s'", t);
    return false;
}

static jv call_macro(rc *R, const expr *e, const node *m);

/* obj.name(args) for the str, dict and list methods templates use. found = false: not such a method. */
static jv call_method(rc *R, const expr *e, jv obj, const char *name, bool *found) {
    *found = true;
    if (obj.k == JV_STR) {
        if (!strcmp(name, "strip")) return py_strip(R, obj, 3, arg_at(R, e, 0, NULL));
        if (!strcmp(name, "lstrip")) return py_strip(R, obj, 1, arg_at(R, e, 0, NULL));
        if (!strcmp(name, "rstrip")) return py_strip(R, obj, 2, arg_at(R, e, 0, NULL));
        if (!strcmp(name, "upper")) return str_case(R, obj, 0);
        if (!strcmp(name, "lower")) return str_case(R, obj, 1);
        if (!strcmp(name, "title")) return str_case(R, obj, 3);
        if (!strcmp(name, "capitalize")) return str_case(R, str_case(R, obj, 1), 2);
        if (!strcmp(name, "split")) return py_split(R, obj, arg_at(R, e, 0, "sep"), arg_at(R, e, 1, "maxsplit"));
        if (!strcmp(name, "replace"))
            return py_replace(R, obj, arg_at(R, e, 0, NULL), arg_at(R, e, 1, NULL), arg_at(R, e, 2, NULL));
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            jv x = arg_at(R, e, 0, NULL);
            if (x.k != JV_STR) return EFAIL(e, "%s needs a string", name);
            if (x.u.s.n > obj.u.s.n) return BOOL_V(false);
            const char *at = name[0] == 's' ? obj.u.s.p : obj.u.s.p + obj.u.s.n - x.u.s.n;
            return BOOL_V(!memcmp(at, x.u.s.p, x.u.s.n));
        }
        if (!strcmp(name, "join")) {
            jlist *items;
            if (!iterate(R, e, arg_at(R, e, 0, NULL), &items)) return UNDEF_V();
            jbuf b = JBUF_INIT;
            for (size_t i = 0; i < items->n; i++) {
                if (i) jbuf_put(&b, obj.u.s.p, obj.u.s.n);
                jv_to_str(&b, items->a[i]);
            }
            jv r = buf_value(R, &b);
            return r;
        }
    } else if (obj.k == JV_DICT) {
        if (!strcmp(name, "items")) {
            expr fake = *e;
            fake.name = "items", fake.nargs = 0;
            return apply_filter(R, &fake, obj);
        }
        if (!strcmp(name, "keys") || !strcmp(name, "values")) {
            jv r = jv_new_list(&R->a);
            for (size_t i = 0; i < obj.u.d->n; i++)
                jv_list_push(&R->a, r.u.l, name[0] == 'k' ? obj.u.d->keys[i] : obj.u.d->vals[i]);
            return r;
        }
        if (!strcmp(name, "get")) {
            jv k = arg_at(R, e, 0, NULL), def = arg_at(R, e, 1, NULL);
            const jv *v = k.k == JV_STR ? jv_dict_get(obj.u.d, k.u.s.p, k.u.s.n) : NULL;
            return v ? *v : def.k == JV_UNDEF ? NONE_V() : def;
        }
    } else if (obj.k == JV_LIST) {
        if (!strcmp(name, "append")) {
            jv x = arg_at(R, e, 0, NULL);
            jv_list_push(&R->a, obj.u.l, x);
            return NONE_V();
        }
    }
    *found = false;
    return UNDEF_V();
}

static jv call(rc *R, const expr *e) {
    if (++R->steps > MAX_STEPS) return EFAIL(e, "the template runs too long (more than %lld steps)", MAX_STEPS);
    if (R->a.used_total > MAX_MEMORY) return EFAIL(e, "the template runs too long: it made more than %zu MiB of values", MAX_MEMORY >> 20);
    if (e->a->kind == E_ATTR) {
        jv obj = eval(R, e->a->a);
        if (R->err) return UNDEF_V();
        if (obj.k == JV_UNDEF) return EFAIL(e, "cannot call method '%s' of an undefined value", e->a->name);
        bool found;
        jv r = call_method(R, e, obj, e->a->name, &found);
        if (found || R->err) return r;
    }
    jv fn = eval(R, e->a);
    if (R->err) return UNDEF_V();
    if (fn.k == JV_MACRO) return call_macro(R, e, fn.u.macro);
    if (fn.k != JV_FUNC) {
        if (e->a->kind == E_NAME) return EFAIL(e, "'%s' is undefined or not callable", e->a->name);
        if (e->a->kind == E_ATTR) return EFAIL(e, "'%s' is not callable on a '%s'", e->a->name, "value");
        return EFAIL(e, "'%s' object is not callable", kind_name(fn));
    }
    switch (fn.u.fn) {
    case F_RAISE: {
        jv msg = to_string(R, arg_at(R, e, 0, NULL));
        return EFAIL(e, "raise_exception: %.*s", (int)msg.u.s.n, msg.u.s.p);
    }
    case F_NAMESPACE:
    case F_DICT: {
        jv ns = jv_new_dict(&R->a, fn.u.fn == F_NAMESPACE ? JV_NS : JV_DICT);
        for (int i = 0; i < e->nargs && !R->err; i++) {
            if (!e->kw[i]) {
                jv d = eval(R, e->args[i]);
                if (d.k == JV_DICT || d.k == JV_NS)
                    for (size_t k = 0; k < d.u.d->n; k++)
                        jv_dict_set(&R->a, ns.u.d, d.u.d->keys[k].u.s.p, d.u.d->keys[k].u.s.n, d.u.d->vals[k]);
                continue;
            }
            jv_dict_set(&R->a, ns.u.d, e->kw[i], strlen(e->kw[i]), eval(R, e->args[i]));
        }
        return ns;
    }
    case F_RANGE: {
        jv a = arg_at(R, e, 0, NULL), b = arg_at(R, e, 1, NULL), c = arg_at(R, e, 2, NULL);
        int64_t lo = 0, hi, st = 1;
        if (b.k == JV_UNDEF) hi = inum(a);
        else lo = inum(a), hi = inum(b);
        if (c.k != JV_UNDEF) st = inum(c);
        if (st == 0) return EFAIL(e, "range() step must not be zero");
        const double span = st > 0 ? (double)hi - (double)lo : (double)lo - (double)hi;
        const double dcount = span > 0 ? ceil(span / fabs((double)st)) : 0;
        if (dcount > 1000000) return EFAIL(e, "range() of more than 1000000 items");
        const int64_t count = (int64_t)dcount;
        if (count > 1000000) return EFAIL(e, "range() of more than 1000000 items");
        jv r = jv_new_list(&R->a);
        for (int64_t i = 0; i < count; i++) jv_list_push(&R->a, r.u.l, INT_V(lo + i * st));
        return r;
    }
    }
    return EFAIL(e, "unknown function");
}

static jv eval(rc *R, const expr *e) {
    if (R->err) return UNDEF_V();
    if (++R->depth > MAX_DEPTH) {
        R->depth--;
        return EFAIL(e, "expression nested too deeply");
    }
    jv r = UNDEF_V();
    switch (e->kind) {
    case E_CONST: r = e->c; break;
    case E_NAME: r = lookup(R, e->name); break;
    case E_ATTR: {
        jv o = eval(R, e->a);
        if (!R->err) r = get_member(R, e, o, (jv){.k = JV_STR, .u.s = {e->name, strlen(e->name)}});
        break;
    }
    case E_ITEM: {
        jv o = eval(R, e->a), k = eval(R, e->b);
        if (!R->err) {
            if (o.k == JV_UNDEF) {
                char kb[64] = "";
                if (k.k == JV_INT) snprintf(kb, sizeof kb, " (no element %lld)", (long long)k.u.i);
                r = EFAIL(e, "cannot read an item of an undefined value%s", kb);
            } else {
                r = get_member(R, e, o, k);
            }
        }
        break;
    }
    case E_SLICE: {
        jv o = eval(R, e->a);
        jv lo = e->b ? eval(R, e->b) : UNDEF_V(), hi = e->c3 ? eval(R, e->c3) : UNDEF_V();
        jv st = e->args[0] ? eval(R, e->args[0]) : UNDEF_V();
        if (!R->err) r = do_slice(R, e, o, lo, hi, st);
        break;
    }
    case E_CALL: r = call(R, e); break;
    case E_FILTER: {
        jv v = eval(R, e->a);
        if (!R->err) r = apply_filter(R, e, v);
        break;
    }
    case E_TEST: {
        jv v = eval(R, e->a);
        jv arg = e->nargs ? eval(R, e->args[0]) : UNDEF_V();
        if (!R->err) {
            const bool t = run_test(R, e, e->name, v, arg);
            r = BOOL_V(e->negated ? !t : t);
        }
        break;
    }
    case E_BIN: {
        jv a = eval(R, e->a), b = eval(R, e->b);
        if (!R->err) r = binop(R, e, e->op, a, b);
        break;
    }
    case E_NOT: {
        jv a = eval(R, e->a);
        r = BOOL_V(!truthy(a));
        break;
    }
    case E_NEG: {
        jv a = eval(R, e->a);
        if (a.k == JV_INT) r = INT_V((int64_t)(0 - (uint64_t)a.u.i));
        else if (a.k == JV_FLOAT) r = (jv){.k = JV_FLOAT, .u.f = -a.u.f};
        else if (!R->err) r = EFAIL(e, "bad operand type for unary -: '%s'", kind_name(a));
        break;
    }
    case E_COND: r = truthy(eval(R, e->b)) ? eval(R, e->a) : e->c3 ? eval(R, e->c3) : UNDEF_V(); break;
    case E_AND: {
        jv a = eval(R, e->a);
        r = truthy(a) ? eval(R, e->b) : a;
        break;
    }
    case E_OR: {
        jv a = eval(R, e->a);
        r = truthy(a) ? a : eval(R, e->b);
        break;
    }
    case E_LIST: {
        r = jv_new_list(&R->a);
        for (int i = 0; i < e->nargs && !R->err; i++) jv_list_push(&R->a, r.u.l, eval(R, e->args[i]));
        break;
    }
    case E_DICT: {
        r = jv_new_dict(&R->a, JV_DICT);
        for (int i = 0; i + 1 < e->nargs && !R->err; i += 2) {
            jv k = eval(R, e->args[i]), v = eval(R, e->args[i + 1]);
            if (k.k != JV_STR) k = to_string(R, k);
            jv_dict_set(&R->a, r.u.d, k.u.s.p, k.u.s.n, v);
        }
        break;
    }
    }
    if (!R->err) {
        R->work += weight(r);
        if (R->a.failed || R->buf_failed == 1) rfail(R, e->line, e->col, "out of memory");
        else if (R->buf_failed) rfail(R, e->line, e->col, "a string longer than %zu MiB", MAX_OUTPUT >> 20);
        else if (R->work > MAX_WORK)
            rfail(R, e->line, e->col, "the template runs too long (it went through more than %llu MiB of text)",
                  MAX_WORK >> 20);
    }
    R->depth--;
    return R->err ? UNDEF_V() : r;
}

/* ---- statements ---- */

static void exec_body(rc *R, const node *nd);

static void out_check(rc *R, const node *nd) {
    if (R->out->too_large) rfail(R, nd->line, nd->col, "the output exceeds %zu bytes", MAX_OUTPUT);
    else if (R->out->failed) rfail(R, nd->line, nd->col, "out of memory");
}

static void out_value(rc *R, const node *nd, jv v) {
    jv_to_str(R->out, v);
    out_check(R, nd);
}

static scope *push_scope(rc *R, scope *parent) {
    scope *s = jv_alloc(&R->a, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->parent = parent;
    return s;
}

static jv call_macro(rc *R, const expr *e, const node *m) {
    if (R->depth > MAX_DEPTH) return EFAIL(e, "macro calls nested too deeply");
    scope *s = push_scope(R, R->root);
    if (!s) return EFAIL(e, "out of memory");
    int pos = 0;
    for (int i = 0; i < m->nparams; i++) {
        jv v = UNDEF_V();
        bool given = false;
        for (int k = 0; k < e->nargs; k++)
            if (e->kw[k] && !strcmp(e->kw[k], m->params[i])) v = eval(R, e->args[k]), given = true;
        if (!given) {
            int p = 0;
            for (int k = 0; k < e->nargs; k++)
                if (!e->kw[k] && p++ == pos) v = eval(R, e->args[k]), given = true;
            if (given) pos++;
        }
        if (!given && m->defaults[i]) {
            scope *save = R->sc;
            R->sc = s;
            v = eval(R, m->defaults[i]);
            R->sc = save;
        }
        set_var(R, s, m->params[i], v);
    }
    jbuf body = JBUF_INIT, *save_out = R->out;
    scope *save_sc = R->sc;
    R->out = &body, R->sc = s;
    R->depth++;
    exec_body(R, m->body);
    R->depth--;
    R->out = save_out, R->sc = save_sc;
    jv r = buf_value(R, &body);
    return R->err ? UNDEF_V() : r;
}

static void exec_for(rc *R, const node *nd) {
    jv it = eval(R, nd->e);
    if (R->err) return;
    jlist *items;
    if (!iterate(R, nd->e, it, &items)) return;
    /* the items that pass the filter, first: loop.length and loop.last count only those */
    size_t n = items->n;
    jv *keep = items->a;
    scope *outer = R->sc;
    if (nd->cond) {
        keep = jv_alloc(&R->a, sizeof *keep * (n ? n : 1));
        if (!keep) return (void)rfail(R, nd->line, nd->col, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < items->n && !R->err; i++) {
            scope *s = push_scope(R, outer);
            if (!s) return (void)rfail(R, nd->line, nd->col, "out of memory");
            R->sc = s;
            set_var(R, s, nd->tgt[0], items->a[i]);
            if (truthy(eval(R, nd->cond))) keep[k++] = items->a[i];
            R->sc = outer;
        }
        n = k;
    }
    for (size_t i = 0; i < n && !R->err; i++) {
        if (++R->steps > MAX_STEPS) return (void)rfail(R, nd->line, nd->col, "the template runs too long");
        if (R->a.used_total > MAX_MEMORY)
            return (void)rfail(R, nd->line, nd->col, "the template runs too long: it made more than %zu MiB of values",
                               MAX_MEMORY >> 20);
        scope *s = push_scope(R, outer);
        if (!s) return (void)rfail(R, nd->line, nd->col, "out of memory");
        jv x = keep[i];
        if (nd->ntgt == 1) {
            set_var(R, s, nd->tgt[0], x);
        } else {
            jlist *parts;
            if (!iterate(R, nd->e, x, &parts)) return;
            if ((int)parts->n != nd->ntgt)
                return (void)rfail(R, nd->line, nd->col, "cannot unpack %zu values into %d loop variables", parts->n,
                                   nd->ntgt);
            for (int k = 0; k < nd->ntgt; k++) set_var(R, s, nd->tgt[k], parts->a[k]);
        }
        jv loop = jv_new_dict(&R->a, JV_DICT);
        jv_dict_set(&R->a, loop.u.d, "index", 5, INT_V((int64_t)i + 1));
        jv_dict_set(&R->a, loop.u.d, "index0", 6, INT_V((int64_t)i));
        jv_dict_set(&R->a, loop.u.d, "revindex", 8, INT_V((int64_t)(n - i)));
        jv_dict_set(&R->a, loop.u.d, "revindex0", 9, INT_V((int64_t)(n - i - 1)));
        jv_dict_set(&R->a, loop.u.d, "first", 5, BOOL_V(i == 0));
        jv_dict_set(&R->a, loop.u.d, "last", 4, BOOL_V(i + 1 == n));
        jv_dict_set(&R->a, loop.u.d, "length", 6, INT_V((int64_t)n));
        jv_dict_set(&R->a, loop.u.d, "previtem", 8, i ? keep[i - 1] : UNDEF_V());
        jv_dict_set(&R->a, loop.u.d, "nextitem", 8, i + 1 < n ? keep[i + 1] : UNDEF_V());
        set_var(R, s, "loop", loop);
        R->sc = s;
        exec_body(R, nd->body);
        R->sc = outer;
        if (R->cont) R->cont = false;
        if (R->brk) {
            R->brk = false;
            break;
        }
    }
    if (!n && nd->els && !R->err) exec_body(R, nd->els);
}

static void exec_set(rc *R, const node *nd, jv v) {
    if (nd->attr) {
        jv ns = lookup(R, nd->tgt[0]);
        if (ns.k != JV_NS)
            return (void)rfail(R, nd->line, nd->col, "cannot assign attribute '%s' on '%s', which is not a namespace()",
                               nd->attr, nd->tgt[0]);
        jv_dict_set(&R->a, ns.u.d, nd->attr, strlen(nd->attr), v);
        return;
    }
    if (nd->ntgt == 1) {
        set_var(R, R->sc, nd->tgt[0], v);
        return;
    }
    jlist *parts;
    if (!iterate(R, nd->e, v, &parts)) return;
    if ((int)parts->n != nd->ntgt) return (void)rfail(R, nd->line, nd->col, "cannot unpack %zu values into %d names", parts->n, nd->ntgt);
    for (int k = 0; k < nd->ntgt; k++) set_var(R, R->sc, nd->tgt[k], parts->a[k]);
}

static void exec_body(rc *R, const node *nd) {
    for (; nd && !R->err && !R->brk && !R->cont; nd = nd->next) {
        switch (nd->kind) {
        case N_TEXT:
            jbuf_put(R->out, nd->text, nd->text_n);
            out_check(R, nd);
            break;
        case N_OUT: {
            jv v = eval(R, nd->e);
            if (!R->err) out_value(R, nd, v);
            break;
        }
        case N_IF: {
            const node *b = nd;
            while (b) {
                const jv c = eval(R, b->e);
                if (R->err) return;
                if (truthy(c)) {
                    exec_body(R, b->body);
                    break;
                }
                if (!b->elif) {
                    exec_body(R, b->els);
                    break;
                }
                b = b->elif;
            }
            break;
        }
        case N_FOR: exec_for(R, nd); break;
        case N_SET: {
            jv v = eval(R, nd->e);
            if (!R->err) exec_set(R, nd, v);
            break;
        }
        case N_SETBLOCK: {
            jbuf body = JBUF_INIT, *save = R->out;
            R->out = &body;
            exec_body(R, nd->body);
            R->out = save;
            jv v = buf_value(R, &body);
            if (!R->err) set_var(R, R->sc, nd->tgt[0], v);
            break;
        }
        case N_MACRO: set_var(R, R->sc, nd->tgt[0], (jv){.k = JV_MACRO, .u.macro = nd}); break;
        case N_BREAK: R->brk = true; break;
        case N_CONTINUE: R->cont = true; break;
        }
        if (R->a.failed && !R->err) rfail(R, nd->line, nd->col, "out of memory");
        if (R->buf_failed == 1 && !R->err) rfail(R, nd->line, nd->col, "out of memory");
        if (R->buf_failed && !R->err) rfail(R, nd->line, nd->col, "a text longer than %zu MiB", MAX_OUTPUT >> 20);
    }
}

int lc_template_render(const lc_template *t, const char *vars_json, size_t vars_len, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return LC_ERR(LC_E_INVALID, "lc_template_render: no template");
    rc R = {.t = t};
    jbuf buf = JBUF_INIT;
    R.out = &buf;
    R.root = push_scope(&R, NULL);
    if (!R.root) return LC_ERR(LC_E_NOMEM, "out of memory");
    R.sc = R.root;
    if (vars_json && vars_len) {
        jv vars;
        int r = jv_parse_json(&R.a, vars_json, vars_len, "template variables", &vars);
        if (r) {
            jv_arena_free(&R.a);
            return r;
        }
        if (vars.k != JV_DICT) {
            jv_arena_free(&R.a);
            return LC_ERR(LC_E_INVALID, "template variables: expected a JSON object");
        }
        for (size_t i = 0; i < vars.u.d->n; i++)
            set_var(&R, R.root, vars.u.d->keys[i].u.s.p, vars.u.d->vals[i]);
    }
    exec_body(&R, t->root);
    int r = R.err;
    if (!r && buf.too_large) r = LC_ERR(LC_E_FORMAT, "%s: the output exceeds %zu bytes", t->name, MAX_OUTPUT);
    if (!r && (buf.failed || R.a.failed)) r = LC_ERR(LC_E_NOMEM, "%s: out of memory", t->name);
    jv_arena_free(&R.a);
    if (r) {
        lc__free(buf.p);
        return r;
    }
    if (!buf.p) {
        buf.p = lc__malloc(1);
        if (!buf.p) return LC_ERR(LC_E_NOMEM, "out of memory");
        buf.p[0] = 0;
    }
    *out = buf.p;
    if (out_len) *out_len = buf.n;
    return 0;
}
