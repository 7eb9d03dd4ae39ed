/* value.c - the Jinja engine's values: arena, lists and insertion-ordered dicts, JSON parsing, and the three ways
** Python prints a value: str() (what {{ x }} writes), repr() (inside containers) and json.dumps (the tojson filter as
** Hugging Face defines it). Floats print as Python's repr: the shortest digits that read back to the same double.
*/
#include "chat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

typedef struct jv_chunk {
    struct jv_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} jv_chunk;

void *jv_alloc(jv_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        const size_t cap = n > 65536 ? n : 65536;
        jv_chunk *c = lc__malloc(sizeof *c + cap);
        if (!c) {
            a->failed = true;
            return NULL;
        }
        c->next = a->head, c->used = 0, c->cap = cap;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    a->used_total += n;
    return p;
}

void jv_arena_free(jv_arena *a) {
    for (jv_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        lc__free(c);
    }
    a->head = NULL;
    a->used_total = 0;
}

jv jv_str(jv_arena *a, const char *p, size_t n) {
    char *s = jv_alloc(a, n + 1);
    jv v = {.k = JV_STR};
    if (!s) return v;
    if (n) memcpy(s, p, n);
    s[n] = 0;
    v.u.s.p = s, v.u.s.n = n;
    return v;
}

jv jv_new_list(jv_arena *a) {
    jv v = {.k = JV_LIST};
    v.u.l = jv_alloc(a, sizeof *v.u.l);
    if (v.u.l) memset(v.u.l, 0, sizeof *v.u.l);
    else v.k = JV_NONE;
    return v;
}

jv jv_new_dict(jv_arena *a, jv_kind kind) {
    jv v = {.k = kind};
    v.u.d = jv_alloc(a, sizeof *v.u.d);
    if (v.u.d) memset(v.u.d, 0, sizeof *v.u.d);
    else v.k = JV_NONE;
    return v;
}

bool jv_list_push(jv_arena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 4;
        jv *na = jv_alloc(a, sizeof *na * cap);
        if (!na) return false;
        if (l->n) memcpy(na, l->a, sizeof *na * l->n);
        l->a = na, l->cap = cap;
    }
    l->a[l->n++] = v;
    return true;
}

const jv *jv_dict_get(const jdict *d, const char *k, size_t kn) {
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].u.s.n == kn && memcmp(d->keys[i].u.s.p, k, kn) == 0) return &d->vals[i];
    return NULL;
}

bool jv_dict_set(jv_arena *a, jdict *d, const char *k, size_t kn, jv v) {
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].u.s.n == kn && memcmp(d->keys[i].u.s.p, k, kn) == 0) {
            d->vals[i] = v;
            return true;
        }
    if (d->n == d->cap) {
        const size_t cap = d->cap ? 2 * d->cap : 4;
        jv *nk = jv_alloc(a, sizeof *nk * cap), *nv = jv_alloc(a, sizeof *nv * cap);
        if (!nk || !nv) return false;
        if (d->n) {
            memcpy(nk, d->keys, sizeof *nk * d->n);
            memcpy(nv, d->vals, sizeof *nv * d->n);
        }
        d->keys = nk, d->vals = nv, d->cap = cap;
    }
    d->keys[d->n] = jv_str(a, k, kn);
    if (a->failed) return false;
    d->vals[d->n++] = v;
    return true;
}

/* ---- buffer ---- */

void jbuf_put(jbuf *b, const char *s, size_t n) {
    if (b->failed || !n) return;
    if (b->max && n > b->max - b->n) {
        b->failed = b->too_large = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = lc__realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jbuf_puts(jbuf *b, const char *s) { jbuf_put(b, s, strlen(s)); }

/* ---- JSON ---- */

typedef struct jp {
    jv_arena *a;
    const char *s, *name;
    size_t n, i;
    int depth;
    int err;
} jp;

static int jp_fail(jp *p, const char *what) {
    if (!p->err) p->err = LC_ERR(LC_E_INVALID, "%s: byte %zu: %s", p->name, p->i, what);
    return p->err;
}

static void jp_ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int hex4(const char *s) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        const char c = s[k];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -100000);
    }
    return v < 0 ? -1 : v;
}

static size_t utf8_put(char *o, uint32_t c) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 63)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | ((c >> 6) & 63)), o[2] = (char)(0x80 | (c & 63)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | ((c >> 12) & 63)), o[2] = (char)(0x80 | ((c >> 6) & 63));
    o[3] = (char)(0x80 | (c & 63));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

static int jp_string(jp *p, jv *out) {
    p->i++; /* opening quote */
    jbuf b = {0};
    while (1) {
        if (p->i >= p->n) {
            lc__free(b.p);
            return jp_fail(p, "unterminated string");
        }
        const unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') break;
        if (c < 0x20) {
            lc__free(b.p);
            return jp_fail(p, "control character in a string (escape it)");
        }
        if (c == '\\') {
            if (p->i + 1 >= p->n) break;
            const char e = p->s[p->i + 1];
            char o[8];
            size_t on = 1;
            switch (e) {
            case '"': o[0] = '"'; break;
            case '\\': o[0] = '\\'; break;
            case '/': o[0] = '/'; break;
            case 'b': o[0] = '\b'; break;
            case 'f': o[0] = '\f'; break;
            case 'n': o[0] = '\n'; break;
            case 'r': o[0] = '\r'; break;
            case 't': o[0] = '\t'; break;
            case 'u': {
                int h = p->i + 6 <= p->n ? hex4(p->s + p->i + 2) : -1;
                if (h < 0) {
                    lc__free(b.p);
                    return jp_fail(p, "bad \\u escape");
                }
                uint32_t cp = (uint32_t)h;
                size_t used = 6;
                if (cp >= 0xD800 && cp <= 0xDBFF && p->i + 12 <= p->n && p->s[p->i + 6] == '\\' &&
                    p->s[p->i + 7] == 'u') {
                    const int lo = hex4(p->s + p->i + 8);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                        used = 12;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* a lone surrogate (Python keeps it; UTF-8 cannot) */
                on = utf8_put(o, cp);
                jbuf_put(&b, o, on);
                p->i += used;
                continue;
            }
            default: lc__free(b.p); return jp_fail(p, "bad escape in a string");
            }
            jbuf_put(&b, o, on);
            p->i += 2;
            continue;
        }
        const size_t l = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
        if (!l) {
            lc__free(b.p);
            return jp_fail(p, "invalid UTF-8 in a string");
        }
        jbuf_put(&b, p->s + p->i, l);
        p->i += l;
    }
    p->i++;
    if (b.failed) {
        lc__free(b.p);
        return jp_fail(p, "out of memory");
    }
    *out = jv_str(p->a, b.p ? b.p : "", b.n);
    lc__free(b.p);
    return 0;
}

static int jp_value(jp *p, jv *out);

static int jp_number(jp *p, jv *out) {
    const size_t st = p->i;
    bool is_float = false;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9')) return jp_fail(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        is_float = true;
        p->i++;
        if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9')) return jp_fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_float = true;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || !(p->s[p->i] >= '0' && p->s[p->i] <= '9')) return jp_fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    char tmp[64];
    const size_t len = p->i - st;
    char *num = len < sizeof tmp ? tmp : jv_alloc(p->a, len + 1);
    if (!num) return jp_fail(p, "out of memory");
    memcpy(num, p->s + st, len);
    num[len] = 0;
    if (!is_float) {
        char *end;
        errno = 0;
        const long long v = strtoll(num, &end, 10);
        if (errno == 0) {
            out->k = JV_INT, out->u.i = v;
            return 0;
        }
    }
    out->k = JV_FLOAT, out->u.f = strtod(num, NULL);
    return 0;
}

static int jp_value(jp *p, jv *out) {
    jp_ws(p);
    if (p->i >= p->n) return jp_fail(p, "unexpected end of the text");
    if (++p->depth > 256) return jp_fail(p, "nested deeper than 256 levels");
    const char c = p->s[p->i];
    int r = 0;
    if (c == '{') {
        *out = jv_new_dict(p->a, JV_DICT);
        p->i++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') p->i++;
        else
            while (!r) {
                jp_ws(p);
                jv k, v;
                if (p->i >= p->n || p->s[p->i] != '"') return jp_fail(p, "expected a string key");
                if ((r = jp_string(p, &k))) break;
                jp_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') return jp_fail(p, "expected ':'");
                p->i++;
                if ((r = jp_value(p, &v))) break;
                if (!jv_dict_set(p->a, out->u.d, k.u.s.p, k.u.s.n, v)) return jp_fail(p, "out of memory");
                jp_ws(p);
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    continue;
                }
                if (p->i < p->n && p->s[p->i] == '}') {
                    p->i++;
                    break;
                }
                return jp_fail(p, "expected ',' or '}'");
            }
    } else if (c == '[') {
        *out = jv_new_list(p->a);
        p->i++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ']') p->i++;
        else
            while (!r) {
                jv v;
                if ((r = jp_value(p, &v))) break;
                if (!jv_list_push(p->a, out->u.l, v)) return jp_fail(p, "out of memory");
                jp_ws(p);
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    continue;
                }
                if (p->i < p->n && p->s[p->i] == ']') {
                    p->i++;
                    break;
                }
                return jp_fail(p, "expected ',' or ']'");
            }
    } else if (c == '"') {
        r = jp_string(p, out);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        r = jp_number(p, out);
    } else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4)) {
        out->k = JV_BOOL, out->u.b = true, p->i += 4;
    } else if (p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5)) {
        out->k = JV_BOOL, out->u.b = false, p->i += 5;
    } else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) {
        out->k = JV_NONE, p->i += 4;
    } else {
        r = jp_fail(p, "unexpected character");
    }
    if (p->a->failed && !r) r = jp_fail(p, "out of memory");
    p->depth--;
    return r;
}

int jv_parse_json(jv_arena *a, const char *text, size_t len, const char *name, jv *out) {
    jp p = {.a = a, .s = text, .n = len, .name = name ? name : "JSON"};
    memset(out, 0, sizeof *out);
    int r = jp_value(&p, out);
    if (r) return r;
    jp_ws(&p);
    if (p.i != p.n) return jp_fail(&p, "text after the JSON value");
    return 0;
}

/* ---- printing ---- */

/* Python's repr(float): the shortest decimal that reads back exactly; fixed notation for exponents in [-4, 16),
** otherwise d.ddde+XX. */
static void put_float(jbuf *b, double f) {
    if (isnan(f)) return jbuf_puts(b, "nan");
    if (isinf(f)) return jbuf_puts(b, f > 0 ? "inf" : "-inf");
    char s[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*e", prec - 1, f);
        if (strtod(s, NULL) == f) break;
    }
    /* s = [-]d[.ddd]e[+-]XX: digits and exponent */
    char digits[24];
    int nd = 0, neg = s[0] == '-';
    const char *q = s + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    const int e = atoi(q + 1);
    char o[64];
    int on = 0;
    if (neg) o[on++] = '-';
    if (e >= -5 + 1 && e < 16) { /* Python: exponent in [-4, 16) prints fixed */
        if (e < 0) {
            o[on++] = '0', o[on++] = '.';
            for (int k = 0; k < -e - 1; k++) o[on++] = '0';
            for (int k = 0; k < nd; k++) o[on++] = digits[k];
        } else {
            for (int k = 0; k <= e; k++) o[on++] = k < nd ? digits[k] : '0';
            o[on++] = '.';
            if (nd > e + 1)
                for (int k = e + 1; k < nd; k++) o[on++] = digits[k];
            else
                o[on++] = '0';
        }
    } else {
        o[on++] = digits[0];
        if (nd > 1) {
            o[on++] = '.';
            for (int k = 1; k < nd; k++) o[on++] = digits[k];
        }
        on += snprintf(o + on, sizeof o - (size_t)on, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    jbuf_put(b, o, (size_t)on);
}

/* Whether Python's str.isprintable() is false for code point c (escaped by repr): control characters, format
** characters and separators other than the space - the ones chat text can carry (Unicode 15 ranges). */
static bool py_nonprintable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) return true;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x2064) ||
        (c >= 0x2066 && c <= 0x206f) || c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb))
        return true;
    if ((c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f || c == 0x180e || c == 0x8e2) return true;
    if ((c >= 0xe000 && c <= 0xf8ff) || c >= 0xf0000 || (c >= 0xe0000 && c <= 0xe0fff)) return true;
    if ((c & 0xfffe) == 0xfffe) return true; /* noncharacters */
    return false;
}

/* Python's repr(str): single quotes unless the text has ' and no ", escapes for \\, the quote, \n \r \t, other
** non-printable characters as \xhh, \uhhhh or \Uhhhhhhhh; printable non-ASCII kept. */
static void put_repr_str(jbuf *b, const char *s, size_t n) {
    const bool dq = memchr(s, '\'', n) && !memchr(s, '"', n);
    const char qc = dq ? '"' : '\'';
    jbuf_put(b, &qc, 1);
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f && s[i] != '\\' && s[i] != qc)
            i++; /* printable ASCII: as it is */
        if (i == n) break;
        const unsigned char c = (unsigned char)s[i];
        size_t l = 1;
        uint32_t cp = c;
        if (c >= 0x80) {
            l = utf8_len((const unsigned char *)s + i, n - i);
            if (!l) l = 1; /* not UTF-8 (cannot come from JSON): kept as it is */
            else {
                cp = l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
                for (size_t k = 1; k < l; k++) cp = cp << 6 | ((unsigned char)s[i + k] & 0x3F);
            }
        }
        const char *esc = NULL;
        char hx[16];
        if (c == '\\') esc = "\\\\";
        else if (c == (unsigned char)qc) esc = dq ? "\\\"" : "\\'";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (py_nonprintable(cp) && !(c >= 0x80 && l == 1)) {
            snprintf(hx, sizeof hx, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x", (unsigned)cp);
            esc = hx;
        }
        if (esc) {
            jbuf_put(b, s + run, i - run);
            jbuf_puts(b, esc);
            run = i + l;
        }
        i += l;
    }
    jbuf_put(b, s + run, n - run);
    jbuf_put(b, &qc, 1);
}

/* anc: the containers being printed around v (depth of them), to print a container inside itself as Python does */
#define PRINT_DEPTH 64
static void to_str(jbuf *b, jv v, const void **anc, int depth);

static void put_repr(jbuf *b, jv v, const void **anc, int depth) {
    if (v.k == JV_STR) return put_repr_str(b, v.u.s.p, v.u.s.n);
    if (v.k == JV_UNDEF) return jbuf_puts(b, "Undefined");
    to_str(b, v, anc, depth);
}

void jv_to_str(jbuf *b, jv v) {
    const void *anc[PRINT_DEPTH];
    to_str(b, v, anc, 0);
}

static bool inside_itself(const void *c, const void **anc, int depth) {
    for (int i = 0; i < depth; i++)
        if (anc[i] == c) return true;
    return false;
}

/* past PRINT_DEPTH nested containers "..." is printed */
static void to_str(jbuf *b, jv v, const void **anc, int depth) {
    const bool container = v.k == JV_LIST || v.k == JV_DICT || v.k == JV_NS;
    if (container && depth >= PRINT_DEPTH) return jbuf_puts(b, "...");
    char t[32];
    switch (v.k) {
    case JV_UNDEF: return;
    case JV_NONE: return jbuf_puts(b, "None");
    case JV_BOOL: return jbuf_puts(b, v.u.b ? "True" : "False");
    case JV_INT: snprintf(t, sizeof t, "%lld", (long long)v.u.i); return jbuf_puts(b, t);
    case JV_FLOAT: return put_float(b, v.u.f);
    case JV_STR: return jbuf_put(b, v.u.s.p, v.u.s.n);
    case JV_LIST:
        if (inside_itself(v.u.l, anc, depth)) return jbuf_puts(b, "[...]");
        anc[depth] = v.u.l;
        jbuf_puts(b, "[");
        for (size_t i = 0; i < v.u.l->n && !b->failed; i++) {
            if (i) jbuf_puts(b, ", ");
            put_repr(b, v.u.l->a[i], anc, depth + 1);
        }
        return jbuf_puts(b, "]");
    case JV_DICT:
    case JV_NS:
        if (inside_itself(v.u.d, anc, depth)) return jbuf_puts(b, v.k == JV_NS ? "<Namespace {...}>" : "{...}");
        anc[depth] = v.u.d;
        jbuf_puts(b, v.k == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v.u.d->n && !b->failed; i++) {
            if (i) jbuf_puts(b, ", ");
            put_repr(b, v.u.d->keys[i], anc, depth + 1);
            jbuf_puts(b, ": ");
            put_repr(b, v.u.d->vals[i], anc, depth + 1);
        }
        return jbuf_puts(b, v.k == JV_NS ? "}>" : "}");
    case JV_FUNC: return jbuf_puts(b, "<built-in function>");
    case JV_MACRO: return jbuf_puts(b, "<Macro>");
    }
}

static void put_json_str(jbuf *b, const char *s, size_t n) {
    jbuf_puts(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hx[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(hx, sizeof hx, "\\u%04x", c);
                esc = hx;
            }
        }
        if (esc) {
            jbuf_put(b, s + run, i - run);
            jbuf_puts(b, esc);
            run = i + 1;
        }
    }
    jbuf_put(b, s + run, n - run);
    jbuf_puts(b, "\"");
}

static void newline_indent(jbuf *b, int indent, int level) {
    static const char sp[64] = "                                                                ";
    jbuf_puts(b, "\n");
    for (long long k = (long long)indent * level; k > 0 && !b->failed; k -= 64) jbuf_put(b, sp, k < 64 ? (size_t)k : 64);
}

/* anc: the containers around v (level of them); Python's json refuses a container inside itself */
#define JSON_DEPTH 200
static bool to_json(jbuf *b, jv v, int indent, int level, const void **anc, const char **bad) {
    if (level >= JSON_DEPTH) return *bad = "a value nested deeper than 200 levels", false;
    if (b->failed) return *bad = "a value whose JSON is too large", false;
    switch (v.k) {
    case JV_NONE: jbuf_puts(b, "null"); return true;
    case JV_BOOL: jbuf_puts(b, v.u.b ? "true" : "false"); return true;
    case JV_INT: jv_to_str(b, v); return true;
    case JV_FLOAT:
        if (isnan(v.u.f)) jbuf_puts(b, "NaN");
        else if (isinf(v.u.f)) jbuf_puts(b, v.u.f > 0 ? "Infinity" : "-Infinity");
        else put_float(b, v.u.f);
        return true;
    case JV_STR: put_json_str(b, v.u.s.p, v.u.s.n); return true;
    case JV_LIST:
        if (!v.u.l->n) return jbuf_puts(b, "[]"), true;
        if (inside_itself(v.u.l, anc, level)) return *bad = "a list inside itself", false;
        anc[level] = v.u.l;
        jbuf_puts(b, "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jbuf_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) newline_indent(b, indent, level + 1);
            if (!to_json(b, v.u.l->a[i], indent, level + 1, anc, bad)) return false;
        }
        if (indent >= 0) newline_indent(b, indent, level);
        jbuf_puts(b, "]");
        return true;
    case JV_DICT:
    case JV_NS:
        if (!v.u.d->n) return jbuf_puts(b, "{}"), true;
        if (inside_itself(v.u.d, anc, level)) return *bad = "a mapping inside itself", false;
        anc[level] = v.u.d;
        jbuf_puts(b, "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) jbuf_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) newline_indent(b, indent, level + 1);
            put_json_str(b, v.u.d->keys[i].u.s.p, v.u.d->keys[i].u.s.n);
            jbuf_puts(b, ": ");
            if (!to_json(b, v.u.d->vals[i], indent, level + 1, anc, bad)) return false;
        }
        if (indent >= 0) newline_indent(b, indent, level);
        jbuf_puts(b, "}");
        return true;
    case JV_UNDEF: *bad = "an undefined value"; return false;
    default: *bad = "a function"; return false;
    }
}

bool jv_to_json(jbuf *b, jv v, int indent, const char **bad) {
    const void *anc[JSON_DEPTH];
    if (!to_json(b, v, indent, 0, anc, bad)) return false;
    if (b->too_large) return *bad = "a value whose JSON is too large", false;
    return true;
}
