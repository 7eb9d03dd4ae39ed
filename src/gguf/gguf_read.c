/* gguf_read.c - GGUF v2/v3 reader: maps a file read-only and validates every field before trusting it.
**
** Layout (ggml/docs/gguf.md; v2 and v3 are the same on little-endian machines): "GGUF", u32 version, u64 n_tensors,
** u64 n_kv; n_kv x (string key, u32 type, value); n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 type,
** u64 offset); padding to the alignment; tensor data. A string is a u64 length and that many bytes. All little-endian.
** Invariants after a successful parse: every pointer into the buffer is in bounds; every count was bounded by the bytes
** left before anything was allocated for it; keys and tensor names are unique; tensors are aligned, inside the file
** and pairwise disjoint. The typed getters and the value formatter of `llamac info` live here too.
*/
#include "gguf.h"

#include "../quant/types.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull; /* for printf */

/* ---- little-endian decoding, independent of the host's byte order ---- */
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double f64_of(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Bytes of one element of a fixed-size type; 0 for STRING, ARRAY and unknown ids. */
static const uint8_t vtype_size[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static size_t fixed_size(uint32_t t) { return t < GGUF_T_COUNT ? vtype_size[t] : 0; }
static bool is_unsigned(uint32_t t) {
    return t == GGUF_T_UINT8 || t == GGUF_T_UINT16 || t == GGUF_T_UINT32 || t == GGUF_T_UINT64;
}
static bool is_signed(uint32_t t) {
    return t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 || t == GGUF_T_INT64;
}

const char *gguf_vtype_name(int t) {
    static const char *const names[GGUF_T_COUNT] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                                    "bool", "str", "arr", "u64", "i64", "f64"};
    return t >= 0 && t < GGUF_T_COUNT ? names[t] : "unknown";
}

/* Copies s[0..n) into dst as printable text for messages (control and non-ASCII bytes as \xNN, long names cut). */
static void quote_name(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o > 80) {
            o += (size_t)snprintf(dst + o, cap - o, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'') dst[o++] = (char)c;
        else o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
    }
    dst[o < cap ? o : cap - 1] = 0;
}

/* ---- the parser's cursor ---- */
typedef struct reader {
    const uint8_t *p;
    uint64_t size, pos; /* pos <= size always */
    const char *name;   /* file name for messages */
    char where[160];    /* what is being read: "key 'x'", "tensor 'y'" (may be empty) */
} reader;

static int fail(const reader *r, uint64_t off, const char *fmt, ...) LC_PRINTF(3, 4);
static int fail(const reader *r, uint64_t off, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return LC_ERR(LC_E_FORMAT, "%s: offset %llu: %s%s%s", r->name, (ull)off, r->where, r->where[0] ? ": " : "", msg);
}

static uint64_t left(const reader *r) { return r->size - r->pos; }

static int need(const reader *r, uint64_t n, const char *what) {
    if (left(r) >= n) return 0;
    return fail(r, r->pos, "file ends inside the %s (%llu bytes needed, %llu left): the file is truncated or corrupt",
                what, (ull)n, (ull)left(r));
}

static int read_u32(reader *r, const char *what, uint32_t *out) {
    int e = need(r, 4, what);
    if (e) return e;
    *out = le32(r->p + r->pos);
    r->pos += 4;
    return 0;
}

static int read_u64(reader *r, const char *what, uint64_t *out) {
    int e = need(r, 8, what);
    if (e) return e;
    *out = le64(r->p + r->pos);
    r->pos += 8;
    return 0;
}

/* A string: u64 length (at most max) and that many bytes, which must all be in the file. */
static int read_string(reader *r, const char *what, uint64_t max, gguf_str *out) {
    uint64_t at = r->pos, len;
    char w[64];
    snprintf(w, sizeof w, "length of the %s", what);
    int e = read_u64(r, w, &len);
    if (e) return e;
    if (len > max) return fail(r, at, "%s length %llu exceeds the limit of %llu bytes", what, (ull)len, (ull)max);
    if (len > left(r))
        return fail(r, at, "%s length %llu runs past the end of the file (%llu bytes left): truncated or corrupt",
                    what, (ull)len, (ull)left(r));
    out->ptr = (const char *)r->p + r->pos;
    out->len = len;
    r->pos += len;
    return 0;
}

/* ---- values ---- */
static void value_free(gguf_value *v) {
    if (v->type != GGUF_T_ARRAY) return;
    lc__free(v->v.arr.strs);
    if (v->v.arr.items) {
        for (uint64_t i = 0; i < v->v.arr.n; i++) value_free(&v->v.arr.items[i]);
        lc__free(v->v.arr.items);
    }
    v->v.arr.strs = NULL;
    v->v.arr.items = NULL;
}

static int read_array(reader *r, int depth, gguf_value *v);

/* A value of the given type (the type id was read at at_type). */
static int read_value(reader *r, uint32_t type, uint64_t at_type, int depth, gguf_value *v) {
    size_t sz = fixed_size(type);
    memset(v, 0, sizeof *v);
    if (type == GGUF_T_STRING) {
        v->type = GGUF_T_STRING;
        return read_string(r, "string value", UINT64_MAX, &v->v.s);
    }
    if (type == GGUF_T_ARRAY) {
        v->type = GGUF_T_ARRAY;
        return read_array(r, depth, v);
    }
    if (!sz) return fail(r, at_type, "unknown value type %u (valid: 0..12)", type);
    int e = need(r, sz, "value");
    if (e) return e;
    const uint8_t *p = r->p + r->pos;
    v->type = (gguf_vtype)type;
    switch (type) {
    case GGUF_T_UINT8: v->v.u = p[0]; break;
    case GGUF_T_INT8: v->v.i = (int8_t)p[0]; break;
    case GGUF_T_UINT16: v->v.u = le16(p); break;
    case GGUF_T_INT16: v->v.i = (int16_t)le16(p); break;
    case GGUF_T_UINT32: v->v.u = le32(p); break;
    case GGUF_T_INT32: v->v.i = (int32_t)le32(p); break;
    case GGUF_T_UINT64: v->v.u = le64(p); break;
    case GGUF_T_INT64: v->v.i = (int64_t)le64(p); break;
    case GGUF_T_FLOAT32: v->v.f = f32_of(le32(p)); break;
    case GGUF_T_FLOAT64: v->v.f = f64_of(le64(p)); break;
    case GGUF_T_BOOL:
        if (p[0] > 1) return fail(r, r->pos, "bool value is %u, not 0 or 1", p[0]);
        v->v.b = p[0];
        break;
    }
    r->pos += sz;
    return 0;
}

/* An array body: u32 element type, u64 count, elements. Nothing is allocated before the count is known to fit. */
static int read_array(reader *r, int depth, gguf_value *v) {
    uint64_t at = r->pos, n;
    uint32_t et;
    int e;
    if (depth >= GGUF_MAX_DEPTH) return fail(r, at, "arrays nested deeper than %d levels", GGUF_MAX_DEPTH);
    if ((e = read_u32(r, "array element type", &et))) return e;
    if (et >= GGUF_T_COUNT) return fail(r, at, "array element type %u is unknown (valid: 0..12)", et);
    uint64_t at_n = r->pos;
    if ((e = read_u64(r, "array length", &n))) return e;
    uint64_t min = et == GGUF_T_STRING ? 8 : et == GGUF_T_ARRAY ? 12 : fixed_size(et);
    if (n > GGUF_MAX_ARRAY)
        return fail(r, at_n, "array of %llu elements exceeds the limit of %llu", (ull)n, (ull)GGUF_MAX_ARRAY);
    if (n > left(r) / min)
        return fail(r, at_n,
                    "array of %llu %s elements needs at least %llu bytes each but only %llu bytes are left: "
                    "truncated or corrupt",
                    (ull)n, gguf_vtype_name((int)et), (ull)min, (ull)left(r));
    v->type = GGUF_T_ARRAY;
    v->v.arr.type = (gguf_vtype)et;
    v->v.arr.n = n;
    if (et == GGUF_T_STRING) {
        if (n && !(v->v.arr.strs = lc__calloc(n, sizeof(gguf_str))))
            return LC_ERR(LC_E_NOMEM, "%s: out of memory for an array of %llu strings", r->name, (ull)n);
        for (uint64_t i = 0; i < n; i++)
            if ((e = read_string(r, "array string", UINT64_MAX, &v->v.arr.strs[i]))) return e;
    } else if (et == GGUF_T_ARRAY) {
        if (n && !(v->v.arr.items = lc__calloc(n, sizeof(gguf_value))))
            return LC_ERR(LC_E_NOMEM, "%s: out of memory for an array of %llu arrays", r->name, (ull)n);
        for (uint64_t i = 0; i < n; i++) {
            v->v.arr.items[i].type = GGUF_T_ARRAY; /* so that value_free walks it even if it fails half-read */
            if ((e = read_array(r, depth + 1, &v->v.arr.items[i]))) return e;
        }
    } else {
        v->v.arr.data = r->p + r->pos;
        if (et == GGUF_T_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (r->p[r->pos + i] > 1)
                    return fail(r, r->pos + i, "bool array element %llu is %u, not 0 or 1", (ull)i, r->p[r->pos + i]);
        r->pos += n * min; /* fits: n <= left / min */
    }
    return 0;
}

/* ---- duplicate detection: an open-addressing set of names (indices into a names array) ---- */
typedef struct strset {
    uint32_t *slot; /* index + 1, 0 = empty */
    uint64_t mask;
    const char **names;
} strset;

static int strset_init(strset *s, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    s->mask = cap - 1;
    s->slot = lc__calloc(cap, sizeof *s->slot);
    s->names = lc__calloc(n ? n : 1, sizeof *s->names);
    return s->slot && s->names ? 0 : LC_E_NOMEM;
}

static void strset_free(strset *s) {
    lc__free(s->slot);
    lc__free(s->names);
}

/* Adds name as index idx; false (and *dup = the earlier index) if the name is already there. */
static bool strset_add(strset *s, const char *name, uint32_t idx, uint32_t *dup) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 1099511628211ull;
    for (uint64_t i = h & s->mask;; i = (i + 1) & s->mask) {
        if (!s->slot[i]) {
            s->slot[i] = idx + 1;
            s->names[idx] = name;
            return true;
        }
        if (strcmp(s->names[s->slot[i] - 1], name) == 0) {
            *dup = s->slot[i] - 1;
            return false;
        }
    }
}

/* ---- the file ---- */
gguf_file *gguf__new(const char *name, const void *buf, size_t size) {
    gguf_file *f = lc__calloc(1, sizeof *f);
    if (!f) return NULL;
    if (!(f->path = lc__strdup(name ? name : "<buffer>"))) {
        lc__free(f);
        return NULL;
    }
    f->base = buf;
    f->size = size;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    return f;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        lc__free(f->kv[i].key);
        value_free(&f->kv[i].val);
    }
    lc__free(f->kv);
    for (uint64_t i = 0; i < f->n_tensors; i++) lc__free(f->tensors[i].name);
    lc__free(f->tensors);
    if (f->mapped) gguf__unmap(f->base, f->size);
    lc__free(f->path);
    lc__free(f);
}

static int parse_header(reader *r, gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv) {
    int e;
    if (r->size < 4)
        return fail(r, 0, "file is %llu bytes, too short to hold the GGUF magic: truncated or not a GGUF file",
                    (ull)r->size);
    if (memcmp(r->p, "GGUF", 4) != 0) {
        char m[40];
        quote_name(m, sizeof m, (const char *)r->p, 4);
        return fail(r, 0, "bad magic '%s' (expected 'GGUF'): not a GGUF file", m);
    }
    r->pos = 4;
    uint32_t v;
    if ((e = read_u32(r, "version", &v))) return e;
    if (v == 0) return fail(r, 4, "GGUF version 0 is invalid");
    if ((v & 0xffff) == 0) {
        uint32_t sw = (v >> 24) | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | (v << 24);
        return fail(r, 4,
                    "version field reads 0x%08x, which is version %u byte-swapped: this is a big-endian GGUF file; "
                    "only little-endian files are supported (convert it on a little-endian machine)",
                    v, sw);
    }
    if (v == 1)
        return fail(r, 4, "GGUF version 1 is no longer supported (only 2 and 3): re-convert the model with a current "
                          "llama.cpp or gguf-py");
    if (v > 3) return fail(r, 4, "GGUF version %u is unknown (this reader supports versions 2 and 3)", v);
    f->version = v;
    if ((e = read_u64(r, "tensor count", n_tensors))) return e;
    if ((e = read_u64(r, "metadata key count", n_kv))) return e;
    /* A tensor info is at least 8+1+4+8+4+8 bytes, a key/value at least 8+1+4+1: counts beyond what the bytes left
    ** can hold are rejected before anything is allocated for them. */
    if (*n_tensors > GGUF_MAX_COUNT || *n_tensors > left(r) / 33)
        return fail(r, 8, "tensor count %llu is impossible: the %llu bytes left hold at most %llu tensor infos",
                    (ull)*n_tensors, (ull)left(r), (ull)LC_MIN(left(r) / 33, GGUF_MAX_COUNT));
    if (*n_kv > GGUF_MAX_COUNT || *n_kv > left(r) / 14)
        return fail(r, 16, "metadata key count %llu is impossible: the %llu bytes left hold at most %llu keys",
                    (ull)*n_kv, (ull)left(r), (ull)LC_MIN(left(r) / 14, GGUF_MAX_COUNT));
    return 0;
}

static int parse_kvs(reader *r, gguf_file *f, uint64_t n_kv) {
    int e;
    if (!n_kv) return 0;
    if (!(f->kv = lc__calloc(n_kv, sizeof *f->kv)))
        return LC_ERR(LC_E_NOMEM, "%s: out of memory for %llu metadata keys", r->name, (ull)n_kv);
    strset seen;
    if (strset_init(&seen, n_kv)) {
        strset_free(&seen);
        return LC_ERR(LC_E_NOMEM, "%s: out of memory for %llu metadata keys", r->name, (ull)n_kv);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t at = r->pos;
        gguf_str k;
        snprintf(r->where, sizeof r->where, "metadata key #%llu", (ull)i);
        if ((e = read_string(r, "key", GGUF_MAX_KEY, &k))) goto out;
        if (k.len == 0) {
            e = fail(r, at, "empty key");
            goto out;
        }
        if (memchr(k.ptr, 0, k.len)) {
            e = fail(r, at, "key contains a NUL byte");
            goto out;
        }
        gguf_kv *kv = &f->kv[i];
        if (!(kv->key = lc__strndup(k.ptr, k.len))) {
            e = LC_ERR(LC_E_NOMEM, "%s: out of memory", r->name);
            goto out;
        }
        kv->offset = at;
        f->n_kv = i + 1;
        char q[128];
        quote_name(q, sizeof q, k.ptr, k.len);
        snprintf(r->where, sizeof r->where, "key '%s'", q);
        uint32_t dup;
        if (!strset_add(&seen, kv->key, (uint32_t)i, &dup)) {
            e = fail(r, at, "duplicate key (first defined at offset %llu)", (ull)f->kv[dup].offset);
            goto out;
        }
        uint64_t at_type = r->pos;
        uint32_t type;
        if ((e = read_u32(r, "value type", &type))) goto out;
        if ((e = read_value(r, type, at_type, 0, &kv->val))) goto out;
    }
    e = 0;
out:
    strset_free(&seen);
    return e;
}

/* general.alignment: optional, u32, a nonzero power of two. */
static int parse_alignment(reader *r, gguf_file *f) {
    const gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv) return 0;
    snprintf(r->where, sizeof r->where, "key 'general.alignment'");
    if (kv->val.type != GGUF_T_UINT32)
        return fail(r, kv->offset, "must be of type u32, not %s", gguf_vtype_name(kv->val.type));
    uint64_t a = kv->val.v.u;
    if (a == 0 || (a & (a - 1)))
        return fail(r, kv->offset, "alignment %llu is not a nonzero power of two", (ull)a);
    f->alignment = a;
    return 0;
}

static int parse_tensor_info(reader *r, gguf_file *f, strset *seen, uint64_t i, uint64_t *at_offset) {
    int e;
    uint64_t at = r->pos;
    gguf_str nm;
    gguf_tensor *t = &f->tensors[i];
    snprintf(r->where, sizeof r->where, "tensor #%llu", (ull)i);
    if ((e = read_string(r, "tensor name", GGUF_MAX_NAME - 1, &nm))) return e;
    if (nm.len == 0) return fail(r, at, "empty tensor name");
    if (memchr(nm.ptr, 0, nm.len)) return fail(r, at, "tensor name contains a NUL byte");
    if (!(t->name = lc__strndup(nm.ptr, nm.len))) return LC_ERR(LC_E_NOMEM, "%s: out of memory", r->name);
    t->info_offset = at;
    f->n_tensors = i + 1;
    char q[128];
    quote_name(q, sizeof q, nm.ptr, nm.len);
    snprintf(r->where, sizeof r->where, "tensor '%s'", q);
    uint32_t dup;
    if (!strset_add(seen, t->name, (uint32_t)i, &dup))
        return fail(r, at, "duplicate tensor name (first defined at offset %llu)", (ull)f->tensors[dup].info_offset);

    uint64_t at_nd = r->pos;
    if ((e = read_u32(r, "number of dimensions", &t->n_dims))) return e;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return fail(r, at_nd, "number of dimensions is %u, not in 1..%d", t->n_dims, GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        uint64_t at_d = r->pos;
        if ((e = read_u64(r, "dimensions", &t->ne[d]))) return e;
        if (t->ne[d] > (uint64_t)INT64_MAX)
            return fail(r, at_d, "dimension %u is %llu, beyond INT64_MAX", d, (ull)t->ne[d]);
        if (!lc__mul_ok(nel, t->ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return fail(r, at_d, "the element count overflows (product of the dimensions beyond INT64_MAX)");
    }
    uint64_t at_ty = r->pos;
    if ((e = read_u32(r, "tensor type", &t->type))) return e;
    const lc_type_traits *tr = lc_type_traits_of((int)t->type);
    if (!tr->name) return fail(r, at_ty, "unknown tensor type id %u", t->type);
    uint64_t row;
    if (t->ne[0] % tr->blck_size)
        return fail(r, at_ty, "rows of %llu elements are not a multiple of the %s block size %u", (ull)t->ne[0],
                    tr->name, tr->blck_size);
    if (!lc_type_row_bytes((int)t->type, t->ne[0], &row) || !lc__mul_ok(row, t->ne[1], &t->size) ||
        !lc__mul_ok(t->size, t->ne[2], &t->size) || !lc__mul_ok(t->size, t->ne[3], &t->size))
        return fail(r, at_ty, "the size in bytes overflows");
    *at_offset = r->pos;
    if ((e = read_u64(r, "tensor data offset", &t->offset))) return e;
    if (t->offset % f->alignment)
        return fail(r, *at_offset, "data offset %llu is not a multiple of the alignment %llu", (ull)t->offset,
                    (ull)f->alignment);
    return 0;
}

typedef struct span {
    uint64_t start, end;
    uint32_t idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Places the data section after the infos and checks every tensor lies inside the file and overlaps no other. */
static int place_tensors(reader *r, gguf_file *f, const uint64_t *at_offset) {
    uint64_t end_info = r->pos, pad = (f->alignment - end_info % f->alignment) % f->alignment;
    if (!lc__add_ok(end_info, pad, &f->data_offset) || f->data_offset > r->size) {
        if (f->n_tensors) {
            r->where[0] = 0;
            return fail(r, end_info,
                        "the tensor data section (aligned to %llu) would start past the end of the file (%llu "
                        "bytes): truncated",
                        (ull)f->alignment, (ull)r->size);
        }
        f->data_offset = r->size;
    }
    uint64_t avail = r->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > avail || t->size > avail - t->offset) {
            char q[128];
            quote_name(q, sizeof q, t->name, strlen(t->name));
            snprintf(r->where, sizeof r->where, "tensor '%s'", q);
            return fail(r, at_offset[i],
                        "data at %llu + %llu bytes lies outside the %llu bytes of tensor data (data section at file "
                        "offset %llu): truncated or corrupt",
                        (ull)t->offset, (ull)t->size, (ull)avail, (ull)f->data_offset);
        }
        t->data = f->base + f->data_offset + t->offset;
    }
    if (f->n_tensors < 2) return 0;
    span *s = lc__malloc(f->n_tensors * sizeof *s);
    if (!s) return LC_ERR(LC_E_NOMEM, "%s: out of memory", r->name);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        s[i] = (span){f->tensors[i].offset, f->tensors[i].offset + f->tensors[i].size, (uint32_t)i};
    qsort(s, f->n_tensors, sizeof *s, span_cmp);
    int e = 0;
    uint64_t max_end = 0;
    uint32_t max_idx = 0;
    for (uint64_t i = 0; i < f->n_tensors && !e; i++) {
        if (s[i].end == s[i].start) continue; /* an empty tensor overlaps nothing */
        if (s[i].start < max_end) {
            const gguf_tensor *t = &f->tensors[s[i].idx], *o = &f->tensors[max_idx];
            char q[128], qo[128];
            quote_name(q, sizeof q, t->name, strlen(t->name));
            quote_name(qo, sizeof qo, o->name, strlen(o->name));
            snprintf(r->where, sizeof r->where, "tensor '%s'", q);
            e = fail(r, at_offset[s[i].idx], "data [%llu, %llu) overlaps tensor '%s' [%llu, %llu)",
                     (ull)t->offset, (ull)(t->offset + t->size), qo, (ull)o->offset, (ull)(o->offset + o->size));
        }
        if (s[i].end > max_end) {
            max_end = s[i].end;
            max_idx = s[i].idx;
        }
    }
    lc__free(s);
    return e;
}

static int parse(gguf_file *f) {
    reader r = {.p = f->base, .size = f->size, .name = f->path};
    uint64_t n_tensors, n_kv;
    int e;
    f->format = "GGUF";
    if ((e = parse_header(&r, f, &n_tensors, &n_kv))) return e;
    if ((e = parse_kvs(&r, f, n_kv))) return e;
    if ((e = parse_alignment(&r, f))) return e;
    if (n_tensors) {
        if (!(f->tensors = lc__calloc(n_tensors, sizeof *f->tensors)))
            return LC_ERR(LC_E_NOMEM, "%s: out of memory for %llu tensors", r.name, (ull)n_tensors);
        uint64_t *at_offset = lc__malloc(n_tensors * sizeof *at_offset);
        strset seen;
        e = strset_init(&seen, n_tensors);
        if (!at_offset || e) e = LC_ERR(LC_E_NOMEM, "%s: out of memory for %llu tensors", r.name, (ull)n_tensors);
        for (uint64_t i = 0; i < n_tensors && !e; i++) e = parse_tensor_info(&r, f, &seen, i, &at_offset[i]);
        strset_free(&seen);
        if (!e) e = place_tensors(&r, f, at_offset);
        lc__free(at_offset);
        if (e) return e;
    } else {
        e = place_tensors(&r, f, NULL);
    }
    return e;
}

int gguf_parse(const void *buf, size_t size, const char *name, gguf_file **out) {
    *out = NULL;
    if (!buf && size) return LC_ERR(LC_E_INVALID, "gguf_parse: NULL buffer");
    gguf_file *f = gguf__new(name, buf, size);
    if (!f) return LC_ERR(LC_E_NOMEM, "%s: out of memory", name ? name : "<buffer>");
    int e = parse(f);
    if (e) {
        gguf_close(f);
        return e;
    }
    *out = f;
    return 0;
}

/* MemAvailable from /proc/meminfo in bytes (0 when unknown). */
static uint64_t mem_available(void) {
    FILE *fp = fopen("/proc/meminfo", "r");
    if (!fp) return 0;
    char line[128];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(fp);
    return (uint64_t)kb * 1024;
}

/* Reads the open file fd (size bytes) into anonymous memory aligned to 2 MiB and advised for huge pages, then makes
** it read-only. NULL (errno set) on failure: the caller maps the file instead. */
static void *copy_file(int fd, size_t size, const char *path, const gguf_load *how) {
    const size_t huge = (size_t)2 << 20;
    if (size > SIZE_MAX - huge) return NULL;
    uint8_t *raw = mmap(NULL, size + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    const size_t len = (size + 4095) & ~(size_t)4095; /* what munmap(p, size) releases */
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (raw + size + huge > p + len) munmap(p + len, (size_t)(raw + size + huge - (p + len)));
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, (off_t)size, POSIX_FADV_SEQUENTIAL);
#endif
    const size_t chunk = (size_t)64 << 20;
    size_t done = 0;
    while (done < size) {
        ssize_t k = pread(fd, p + done, LC_MIN(chunk, size - done), (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int err = k < 0 ? errno : EIO;
            LC_WARN("%s: reading at offset %llu: %s; mapping the file instead", path, (ull)done,
                    k < 0 ? strerror(err) : "the file shrank");
            munmap(p, size);
            errno = err;
            return NULL;
        }
        done += (size_t)k;
        if (how->progress) how->progress((float)done / (float)size, how->progress_user);
    }
    mprotect(p, size, PROT_READ);
    return p;
}

int gguf__map(const char *path, const gguf_load *how, const uint8_t **base, size_t *size, bool *copied) {
    *base = NULL;
    *size = 0;
    *copied = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LC_ERR(LC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return LC_ERR(LC_E_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return LC_ERR(LC_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LC_ERR(LC_E_FORMAT, "%s: offset 0: the file is empty", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return LC_ERR(LC_E_NOMEM, "%s: %llu bytes cannot be mapped on this machine", path, (ull)st.st_size);
    }
    void *p = NULL;
    if (how && how->copy) {
        const uint64_t avail = mem_available();
        if ((uint64_t)st.st_size <= avail - avail / 8) {
            p = copy_file(fd, (size_t)st.st_size, path, how);
            *copied = p != NULL;
        } else if (avail) { /* unknown (no /proc): map quietly */
            LC_WARN("%s: %.2f GiB do not fit in the %.2f GiB of memory available; mapping the file instead", path,
                    (double)st.st_size / (1 << 30), (double)avail / (1 << 30));
        }
    }
    if (!p) p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) return LC_ERR(LC_E_IO, "%s: cannot map %llu bytes: %s", path, (ull)st.st_size, strerror(err));
    *base = p;
    *size = (size_t)st.st_size;
    return 0;
}

void gguf__unmap(const uint8_t *base, size_t size) {
    if (base) munmap((void *)(uintptr_t)base, size);
}

int gguf_open(const char *path, gguf_file **out) { return gguf_open_ex(path, NULL, out); }

int gguf_open_ex(const char *path, const gguf_load *how, gguf_file **out) {
    *out = NULL;
    if (!path) return LC_ERR(LC_E_INVALID, "gguf_open: no path given");
    const uint8_t *base;
    size_t size;
    bool copied;
    int e = gguf__map(path, how, &base, &size, &copied);
    if (e) return e;
    if ((e = gguf_parse(base, size, path, out))) {
        gguf__unmap(base, size);
        return e;
    }
    (*out)->mapped = true;
    (*out)->copied = copied;
    return 0;
}

/* ---- lookups and typed getters ---- */
const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static int type_error(const gguf_file *f, const gguf_kv *kv, const char *want) {
    const char *have = gguf_vtype_name(kv->val.type);
    char arr[48] = "";
    if (kv->val.type == GGUF_T_ARRAY) snprintf(arr, sizeof arr, " of %s", gguf_vtype_name(kv->val.v.arr.type));
    return LC_ERR(LC_E_FORMAT, "%s: offset %llu: key '%s': expected %s, found %s%s", f->path, (ull)kv->offset, kv->key,
                  want, have, arr);
}

static int range_error(const gguf_file *f, const gguf_kv *kv, const char *want) {
    char val[64];
    gguf_value_format(&kv->val, val, sizeof val, 0);
    return LC_ERR(LC_E_FORMAT, "%s: offset %llu: key '%s': value %s is out of range for %s", f->path, (ull)kv->offset,
                  kv->key, val, want);
}

/* An integer value as (negative?, magnitude) so every range check is exact. */
static int get_int(const gguf_file *f, const char *key, const char *want, int64_t lo, uint64_t hi, uint64_t *u,
                   int64_t *i) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    uint32_t t = kv->val.type;
    if (is_unsigned(t)) {
        if (kv->val.v.u > hi) return range_error(f, kv, want);
        *u = kv->val.v.u;
        *i = (int64_t)kv->val.v.u; /* only used when it fits */
        return 1;
    }
    if (is_signed(t)) {
        int64_t v = kv->val.v.i;
        if (v < lo || (v >= 0 && (uint64_t)v > hi)) return range_error(f, kv, want);
        *i = v;
        *u = (uint64_t)v;
        return 1;
    }
    return type_error(f, kv, want);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    uint64_t u;
    int64_t i;
    int r = get_int(f, key, "u32", 0, UINT32_MAX, &u, &i);
    if (r == 1) *out = (uint32_t)u;
    return r;
}

int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out) {
    uint64_t u;
    int64_t i;
    int r = get_int(f, key, "i32", INT32_MIN, INT32_MAX, &u, &i);
    if (r == 1) *out = (int32_t)i;
    return r;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    uint64_t u;
    int64_t i;
    int r = get_int(f, key, "u64", 0, UINT64_MAX, &u, &i);
    if (r == 1) *out = u;
    return r;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->val.type != GGUF_T_FLOAT32 && kv->val.type != GGUF_T_FLOAT64) return type_error(f, kv, "f32");
    double d = kv->val.v.f;
    if (isfinite(d) && fabs(d) > FLT_MAX) return range_error(f, kv, "f32");
    *out = (float)d;
    return 1;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->val.type != GGUF_T_BOOL) return type_error(f, kv, "bool");
    *out = kv->val.v.b;
    return 1;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->val.type != GGUF_T_STRING) return type_error(f, kv, "str");
    *out = kv->val.v.s;
    return 1;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype elem, const gguf_value **out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 0;
    if (kv->val.type != GGUF_T_ARRAY || kv->val.v.arr.type != elem) {
        char want[32];
        snprintf(want, sizeof want, "arr of %s", gguf_vtype_name(elem));
        return type_error(f, kv, want);
    }
    *out = &kv->val;
    return 1;
}

double gguf_arr_f64(const gguf_value *arr, uint64_t i) {
    if (arr->type != GGUF_T_ARRAY || !fixed_size(arr->v.arr.type)) return NAN;
    const uint8_t *p = (const uint8_t *)arr->v.arr.data + i * fixed_size(arr->v.arr.type);
    switch (arr->v.arr.type) {
    case GGUF_T_UINT8: return p[0];
    case GGUF_T_INT8: return (int8_t)p[0];
    case GGUF_T_UINT16: return le16(p);
    case GGUF_T_INT16: return (int16_t)le16(p);
    case GGUF_T_UINT32: return le32(p);
    case GGUF_T_INT32: return (int32_t)le32(p);
    case GGUF_T_UINT64: return (double)le64(p);
    case GGUF_T_INT64: return (double)(int64_t)le64(p);
    case GGUF_T_FLOAT32: return f32_of(le32(p));
    case GGUF_T_FLOAT64: return f64_of(le64(p));
    case GGUF_T_BOOL: return p[0];
    default: return NAN;
    }
}

int64_t gguf_arr_i64(const gguf_value *arr, uint64_t i) {
    if (arr->type != GGUF_T_ARRAY || !fixed_size(arr->v.arr.type)) return 0;
    const uint8_t *p = (const uint8_t *)arr->v.arr.data + i * fixed_size(arr->v.arr.type);
    switch (arr->v.arr.type) {
    case GGUF_T_UINT64: {
        uint64_t u = le64(p);
        return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    }
    case GGUF_T_INT64: return (int64_t)le64(p);
    case GGUF_T_FLOAT32:
    case GGUF_T_FLOAT64: { /* truncated toward zero, saturated, NaN as 0 */
        double d = gguf_arr_f64(arr, i);
        if (d != d) return 0;
        if (d >= 9223372036854775807.0) return INT64_MAX;
        if (d <= -9223372036854775808.0) return INT64_MIN;
        return (int64_t)d;
    }
    default: return (int64_t)gguf_arr_f64(arr, i); /* every other type is exact in a double */
    }
}

/* ---- formatting for `llamac info` ---- */
typedef struct sbuf {
    char *buf;
    size_t cap, len;
    bool full;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->full) return;
    size_t room = b->cap - 1 - b->len;
    if (n > room) {
        n = room;
        b->full = true;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) LC_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The shortest %g rendering that reads back as the same value (float or double). */
static void sb_float(sbuf *b, double d, bool single) {
    char tmp[40];
    if (isnan(d)) {
        sb_put(b, "nan", 3);
        return;
    }
    if (isinf(d)) {
        sb_put(b, d < 0 ? "-inf" : "inf", d < 0 ? 4 : 3);
        return;
    }
    for (int p = 6; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (single ? strtof(tmp, NULL) == (float)d : strtod(tmp, NULL) == d) break;
    }
    sb_put(b, tmp, strlen(tmp));
}

/* Length of a valid UTF-8 sequence at s (n bytes available), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static void sb_string(sbuf *b, const char *s, uint64_t n) {
    sb_put(b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    for (uint64_t i = 0; i < n && !b->full;) {
        unsigned c = u[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
        if (esc) {
            sb_put(b, esc, 2);
            i++;
            continue;
        }
        size_t l = c < 0x20 || c == 0x7f ? 0 : utf8_len(u + i, (size_t)LC_MIN(n - i, 4));
        if (!l) {
            sb_printf(b, "\\x%02x", c);
            i++;
        } else {
            sb_put(b, s + i, l);
            i += l;
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_value(sbuf *b, const gguf_value *v, size_t max_items);

static void sb_array(sbuf *b, const gguf_value *v, size_t max_items) {
    uint64_t n = v->v.arr.n, shown = LC_MIN(n, (uint64_t)max_items);
    sb_put(b, "[", 1);
    for (uint64_t i = 0; i < shown && !b->full; i++) {
        if (i) sb_put(b, ", ", 2);
        switch (v->v.arr.type) {
        case GGUF_T_STRING: sb_string(b, v->v.arr.strs[i].ptr, v->v.arr.strs[i].len); break;
        case GGUF_T_ARRAY: sb_array(b, &v->v.arr.items[i], max_items); break;
        case GGUF_T_FLOAT32: sb_float(b, gguf_arr_f64(v, i), true); break;
        case GGUF_T_FLOAT64: sb_float(b, gguf_arr_f64(v, i), false); break;
        case GGUF_T_BOOL: sb_printf(b, "%s", gguf_arr_f64(v, i) != 0 ? "true" : "false"); break;
        case GGUF_T_UINT64: sb_printf(b, "%llu", (ull)le64((const uint8_t *)v->v.arr.data + 8 * i)); break;
        default: sb_printf(b, "%lld", (long long)gguf_arr_i64(v, i)); break;
        }
    }
    if (shown < n) sb_printf(b, "%s... (%llu items)", shown ? ", " : "", (ull)n);
    sb_put(b, "]", 1);
}

static void sb_value(sbuf *b, const gguf_value *v, size_t max_items) {
    switch (v->type) {
    case GGUF_T_UINT8:
    case GGUF_T_UINT16:
    case GGUF_T_UINT32:
    case GGUF_T_UINT64: sb_printf(b, "%llu", (ull)v->v.u); break;
    case GGUF_T_INT8:
    case GGUF_T_INT16:
    case GGUF_T_INT32:
    case GGUF_T_INT64: sb_printf(b, "%lld", (long long)v->v.i); break;
    case GGUF_T_FLOAT32: sb_float(b, v->v.f, true); break;
    case GGUF_T_FLOAT64: sb_float(b, v->v.f, false); break;
    case GGUF_T_BOOL: sb_printf(b, "%s", v->v.b ? "true" : "false"); break;
    case GGUF_T_STRING: sb_string(b, v->v.s.ptr, v->v.s.len); break;
    case GGUF_T_ARRAY: sb_array(b, v, max_items); break;
    default: sb_printf(b, "<type %d>", (int)v->type); break;
    }
}

void gguf_value_format(const gguf_value *v, char *buf, size_t cap, size_t max_items) {
    if (!cap) return;
    sbuf b = {buf, cap, 0, false};
    buf[0] = 0;
    sb_value(&b, v, max_items);
    if (b.full && cap >= 4) { /* mark the cut, on a UTF-8 character boundary */
        size_t at = LC_MIN(b.len, cap - 4);
        while (at > 0 && ((unsigned char)buf[at] & 0xc0) == 0x80) at--;
        memcpy(buf + at, "...", 4);
    }
}
