/* json.c - the JSON reader of json.h: recursive descent over the text, nodes appended to a growing array.
** Strict: no trailing commas, no comments, no leading zeros, control characters must be escaped, strings must be
** valid UTF-8 (unpaired surrogate escapes become U+FFFD, as most decoders do). */
#include "json.h"

#include <math.h>
#include <stdlib.h>

#define JSON_MAX_DEPTH 128

typedef struct jparser {
    const char *s;
    size_t n, pos;
    const char *name;
    lc_json *j;
} jparser;

static int jerr(const jparser *p, const char *what) {
    return LC_ERR(LC_E_FORMAT, "%s: byte offset %zu: %s (invalid JSON)", p->name, p->pos, what);
}

static void skip_ws(jparser *p) {
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int new_node(jparser *p, lc_jtype t, uint32_t *idx) {
    lc_json *j = p->j;
    if (j->n_nodes == j->cap_nodes) {
        uint32_t cap = j->cap_nodes ? j->cap_nodes * 2 : 1024;
        if (cap < j->cap_nodes || cap > (1u << 30)) return jerr(p, "too many values");
        lc_jnode *a = lc__realloc(j->nodes, (size_t)cap * sizeof *a);
        if (!a) return LC_ERR(LC_E_NOMEM, "%s: out of memory for %u JSON values", p->name, cap);
        j->nodes = a, j->cap_nodes = cap;
    }
    *idx = j->n_nodes++;
    j->nodes[*idx] = (lc_jnode){.type = t};
    return LC_OK;
}

static int str_reserve(jparser *p, uint64_t more) {
    lc_json *j = p->j;
    if (j->n_strs + more <= j->cap_strs) return LC_OK;
    uint64_t cap = j->cap_strs ? j->cap_strs : 4096;
    while (cap < j->n_strs + more) cap *= 2;
    char *a = cap <= SIZE_MAX ? lc__realloc(j->strs, (size_t)cap) : NULL;
    if (!a) return LC_ERR(LC_E_NOMEM, "%s: out of memory for JSON strings", p->name);
    j->strs = a, j->cap_strs = cap;
    return LC_OK;
}

static int hex4(jparser *p, unsigned *v) {
    if (p->n - p->pos < 4) return jerr(p, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
        if (d == 16) return jerr(p, "bad \\u escape");
        *v = *v << 4 | d;
    }
    return LC_OK;
}

/* Parses a string at p->pos (on the opening quote); *off and *len locate the decoded bytes. */
static int parse_string(jparser *p, uint64_t *off, uint32_t *len) {
    p->pos++; /* the quote */
    size_t start = p->pos, end = start;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) return jerr(p, "unterminated string");
    int r = str_reserve(p, (uint64_t)(end - start) + 1); /* decoding never grows a string */
    if (r) return r;
    char *o = p->j->strs + p->j->n_strs;
    *off = p->j->n_strs;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) return jerr(p, "control character in a string");
        if (c >= 0x80) { /* copy one well-formed UTF-8 sequence */
            size_t k = c >= 0xF5 ? 0 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            if (!k || p->pos + k > end) return jerr(p, "invalid UTF-8 in a string");
            for (size_t i = 1; i < k; i++)
                if (((unsigned char)p->s[p->pos + i] & 0xC0) != 0x80) return jerr(p, "invalid UTF-8 in a string");
            memcpy(o, p->s + p->pos, k);
            o += k, p->pos += k;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            p->pos++;
            continue;
        }
        char e = p->s[++p->pos];
        p->pos++;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if ((r = hex4(p, &cp))) return r;
            if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                size_t save = p->pos;
                p->pos += 2;
                if ((r = hex4(p, &lo))) return r;
                if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else p->pos = save; /* not a pair: the high half alone becomes U+FFFD below */
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            if (cp < 0x80) *o++ = (char)cp;
            else if (cp < 0x800) *o++ = (char)(0xC0 | cp >> 6), *o++ = (char)(0x80 | (cp & 0x3F));
            else if (cp < 0x10000)
                *o++ = (char)(0xE0 | cp >> 12), *o++ = (char)(0x80 | (cp >> 6 & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
            else
                *o++ = (char)(0xF0 | cp >> 18), *o++ = (char)(0x80 | (cp >> 12 & 0x3F)),
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
            break;
        }
        default: p->pos--; return jerr(p, "bad escape");
        }
    }
    p->pos = end + 1;
    *o = 0;
    uint64_t l = (uint64_t)(o - (p->j->strs + *off));
    if (l > UINT32_MAX) return jerr(p, "string longer than 4 GiB");
    *len = (uint32_t)l;
    p->j->n_strs += l + 1;
    return LC_OK;
}

static int parse_value(jparser *p, int depth, uint32_t *idx);

static int parse_container(jparser *p, int depth, bool obj, uint32_t self) {
    p->pos++; /* [ or { */
    skip_ws(p);
    char close = obj ? '}' : ']';
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return LC_OK;
    }
    uint32_t prev = 0, count = 0;
    for (;;) {
        uint64_t key = 0;
        uint32_t key_len = 0, item;
        int r;
        skip_ws(p);
        if (obj) {
            if (p->pos >= p->n || p->s[p->pos] != '"') return jerr(p, "expected a member name");
            if ((r = parse_string(p, &key, &key_len))) return r;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') return jerr(p, "expected ':'");
            p->pos++;
        }
        if ((r = parse_value(p, depth + 1, &item))) return r;
        lc_jnode *it = &p->j->nodes[item];
        it->key = key, it->key_len = key_len;
        if (prev) p->j->nodes[prev].next = item;
        else p->j->nodes[self].child = item;
        prev = item;
        count++;
        skip_ws(p);
        if (p->pos >= p->n) return jerr(p, obj ? "unterminated object" : "unterminated array");
        char c = p->s[p->pos++];
        if (c == close) break;
        if (c != ',') {
            p->pos--;
            return jerr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    p->j->nodes[self].n = count;
    return LC_OK;
}

static int parse_number(jparser *p, uint32_t idx) {
    size_t s = p->pos;
    if (p->pos < p->n && p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->n || !(p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return jerr(p, "bad number");
    if (p->s[p->pos] == '0' && p->pos + 1 < p->n && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
        return jerr(p, "leading zero in a number");
    while (p->pos < p->n && ((p->s[p->pos] >= '0' && p->s[p->pos] <= '9') || p->s[p->pos] == '.' ||
                             p->s[p->pos] == 'e' || p->s[p->pos] == 'E' || p->s[p->pos] == '+' || p->s[p->pos] == '-'))
        p->pos++;
    char buf[64];
    size_t l = p->pos - s;
    if (l >= sizeof buf) return jerr(p, "number too long");
    memcpy(buf, p->s + s, l);
    buf[l] = 0;
    char *e;
    double v = strtod(buf, &e);
    if (*e) {
        p->pos = s;
        return jerr(p, "bad number");
    }
    p->j->nodes[idx].num = v;
    return LC_OK;
}

static int parse_value(jparser *p, int depth, uint32_t *idx) {
    if (depth > JSON_MAX_DEPTH) return jerr(p, "nesting deeper than 128 levels");
    skip_ws(p);
    if (p->pos >= p->n) return jerr(p, "expected a value");
    char c = p->s[p->pos];
    int r;
    if (c == '{' || c == '[') {
        if ((r = new_node(p, c == '{' ? LC_J_OBJ : LC_J_ARR, idx))) return r;
        return parse_container(p, depth, c == '{', *idx);
    }
    if (c == '"') {
        uint64_t off;
        uint32_t len;
        if ((r = new_node(p, LC_J_STR, idx))) return r;
        if ((r = parse_string(p, &off, &len))) return r;
        p->j->nodes[*idx].str = off, p->j->nodes[*idx].n = len;
        return LC_OK;
    }
    static const struct { const char *word; lc_jtype t; } lits[] = {
        {"true", LC_J_TRUE}, {"false", LC_J_FALSE}, {"null", LC_J_NULL}};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lits[k].word);
        if (p->n - p->pos >= l && !memcmp(p->s + p->pos, lits[k].word, l)) {
            p->pos += l;
            return new_node(p, lits[k].t, idx);
        }
    }
    if ((r = new_node(p, LC_J_NUM, idx))) return r;
    return parse_number(p, *idx);
}

int lc__json_parse(const char *text, size_t len, const char *name, lc_json **out) {
    *out = NULL;
    lc_json *j = lc__calloc(1, sizeof *j);
    if (!j) return LC_ERR(LC_E_NOMEM, "%s: out of memory", name);
    jparser p = {.s = text, .n = len, .name = name, .j = j};
    uint32_t root;
    int r = str_reserve(&p, 1);
    if (!r) j->strs[j->n_strs++] = 0; /* offset 0: the empty key of values outside objects */
    if (!r) r = parse_value(&p, 0, &root);
    if (!r) {
        skip_ws(&p);
        if (p.pos != len) r = jerr(&p, "trailing characters after the document");
    }
    if (r) {
        lc__json_free(j);
        return r;
    }
    *out = j;
    return LC_OK;
}

void lc__json_free(lc_json *j) {
    if (!j) return;
    lc__free(j->nodes);
    lc__free(j->strs);
    lc__free(j);
}

const lc_jnode *lc__json_get(const lc_json *j, const lc_jnode *o, const char *key) {
    if (!o || o->type != LC_J_OBJ) return NULL;
    size_t kl = strlen(key);
    for (const lc_jnode *m = lc__json_first(j, o); m; m = lc__json_next(j, m))
        if (m->key_len == kl && !memcmp(lc__json_key(j, m), key, kl)) return m;
    return NULL;
}

const char *lc__json_get_str(const lc_json *j, const lc_jnode *o, const char *key) {
    const lc_jnode *m = lc__json_get(j, o, key);
    return m && m->type == LC_J_STR ? lc__json_str(j, m) : NULL;
}
