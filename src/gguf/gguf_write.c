/* gguf_write.c - GGUF v3 writer: metadata of every type (nested arrays included) and tensors, aligned.
**
** Metadata values are encoded to their little-endian file bytes when set (so the writer owns copies and a key set
** twice is simply replaced); tensor data stays borrowed until gguf_writer_write returns. The output is what
** llama.cpp's gguf writer produces: tensor data offsets are consecutive, each tensor padded to the alignment
** (general.alignment when set, else 32). The file is written to a temporary file in the same directory, fsync'd and
** renamed over the target, so a reader never sees a half-written file. Everything written here passes gguf_read.c.
*/
#include "gguf.h"

#include "../quant/types.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} wbuf;

static void wb_put(wbuf *b, const void *src, size_t n) {
    if (b->oom || !n) return;
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = lc__realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* Little-endian integer of `bytes` bytes. */
static void wb_le(wbuf *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    wb_put(b, t, (size_t)bytes);
}

typedef struct wkv {
    char *key;
    wbuf val; /* u32 type + value, as in the file */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    const void *data; /* borrowed */
    uint64_t size, offset;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

gguf_writer *gguf_writer_new(void) { return lc__calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        lc__free(w->kv[i].key);
        lc__free(w->kv[i].val.p);
    }
    lc__free(w->kv);
    for (size_t i = 0; i < w->n_t; i++) lc__free(w->t[i].name);
    lc__free(w->t);
    lc__free(w);
}

static const uint8_t vsize[GGUF_T_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Takes ownership of val (freed on failure too). */
static int set_encoded(gguf_writer *w, const char *key, wbuf *val) {
    int e = LC_OK;
    if (!w || !key || !*key || strlen(key) > GGUF_MAX_KEY) {
        e = LC_ERR(LC_E_INVALID, "gguf writer: key must be 1..%d bytes", GGUF_MAX_KEY);
        goto fail;
    }
    if (val->oom) {
        e = LC_ERR(LC_E_NOMEM, "gguf writer: out of memory for the value of key '%s'", key);
        goto fail;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) { /* replace: keeps the key's position */
            lc__free(w->kv[i].val.p);
            w->kv[i].val = *val;
            return LC_OK;
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        wkv *kv = lc__realloc(w->kv, cap * sizeof *kv);
        if (!kv) goto nomem;
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = lc__strdup(key);
    if (!k) goto nomem;
    w->kv[w->n_kv++] = (wkv){k, *val};
    return LC_OK;
nomem:
    e = LC_ERR(LC_E_NOMEM, "gguf writer: out of memory for key '%s'", key);
fail:
    lc__free(val->p);
    return e;
}

static int set_scalar(gguf_writer *w, const char *key, gguf_vtype t, uint64_t bits) {
    wbuf b = {0};
    wb_le(&b, t, 4);
    wb_le(&b, bits, vsize[t]);
    return set_encoded(w, key, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { return set_scalar(w, key, GGUF_T_UINT32, v); }
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, GGUF_T_INT32, (uint32_t)v);
}
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, GGUF_T_UINT64, v); }
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return set_scalar(w, key, GGUF_T_FLOAT32, u);
}
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) { return set_scalar(w, key, GGUF_T_BOOL, v ? 1 : 0); }

static void wb_str(wbuf *b, const char *s, uint64_t n) {
    wb_le(b, n, 8);
    wb_put(b, s, (size_t)n);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!v) return LC_ERR(LC_E_INVALID, "gguf writer: NULL string for key '%s'", key ? key : "");
    wbuf b = {0};
    wb_le(&b, GGUF_T_STRING, 4);
    wb_str(&b, v, strlen(v));
    return set_encoded(w, key, &b);
}

/* n fixed-size elements from host memory, each written little-endian. */
static int enc_fixed(wbuf *b, gguf_vtype elem, const void *data, uint64_t n) {
    size_t sz = vsize[elem];
    const uint8_t *p = data;
    for (uint64_t i = 0; i < n && !b->oom; i++, p += sz) {
        uint64_t v = 0;
        switch (sz) {
        case 1: v = p[0]; break;
        case 2: { uint16_t x; memcpy(&x, p, 2); v = x; } break;
        case 4: { uint32_t x; memcpy(&x, p, 4); v = x; } break;
        case 8: memcpy(&v, p, 8); break;
        }
        if (elem == GGUF_T_BOOL && v > 1) return LC_E_INVALID;
        wb_le(b, v, (int)sz);
    }
    return LC_OK;
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype elem, const void *data, uint64_t n) {
    if ((unsigned)elem >= GGUF_T_COUNT || !vsize[elem])
        return LC_ERR(LC_E_INVALID, "gguf writer: key '%s': gguf_writer_set_arr takes fixed-size elements, not %s",
                      key ? key : "", gguf_vtype_name(elem));
    if ((n && !data) || n > GGUF_MAX_ARRAY)
        return LC_ERR(LC_E_INVALID, "gguf writer: key '%s': bad array (%llu elements)", key ? key : "", (ull)n);
    wbuf b = {0};
    wb_le(&b, GGUF_T_ARRAY, 4);
    wb_le(&b, elem, 4);
    wb_le(&b, n, 8);
    if (enc_fixed(&b, elem, data, n)) {
        lc__free(b.p);
        return LC_ERR(LC_E_INVALID, "gguf writer: key '%s': bool array element is neither 0 nor 1", key ? key : "");
    }
    return set_encoded(w, key, &b);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    if ((n && !strs) || n > GGUF_MAX_ARRAY)
        return LC_ERR(LC_E_INVALID, "gguf writer: key '%s': bad string array", key ? key : "");
    wbuf b = {0};
    wb_le(&b, GGUF_T_ARRAY, 4);
    wb_le(&b, GGUF_T_STRING, 4);
    wb_le(&b, n, 8);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        if (!strs[i]) {
            lc__free(b.p);
            return LC_ERR(LC_E_INVALID, "gguf writer: key '%s': string %llu is NULL", key ? key : "", (ull)i);
        }
        wb_str(&b, strs[i], strlen(strs[i]));
    }
    return set_encoded(w, key, &b);
}

/* The body of a value as in the file (without the leading type of a key/value pair). */
static int enc_value(wbuf *b, const gguf_value *v, int depth) {
    switch (v->type) {
    case GGUF_T_UINT8: if (v->v.u > UINT8_MAX) return LC_E_INVALID; break;
    case GGUF_T_UINT16: if (v->v.u > UINT16_MAX) return LC_E_INVALID; break;
    case GGUF_T_UINT32: if (v->v.u > UINT32_MAX) return LC_E_INVALID; break;
    case GGUF_T_INT8: if (v->v.i < INT8_MIN || v->v.i > INT8_MAX) return LC_E_INVALID; break;
    case GGUF_T_INT16: if (v->v.i < INT16_MIN || v->v.i > INT16_MAX) return LC_E_INVALID; break;
    case GGUF_T_INT32: if (v->v.i < INT32_MIN || v->v.i > INT32_MAX) return LC_E_INVALID; break;
    default: break;
    }
    switch (v->type) {
    case GGUF_T_UINT8:
    case GGUF_T_UINT16:
    case GGUF_T_UINT32:
    case GGUF_T_UINT64: wb_le(b, v->v.u, vsize[v->type]); return LC_OK;
    case GGUF_T_INT8:
    case GGUF_T_INT16:
    case GGUF_T_INT32:
    case GGUF_T_INT64: wb_le(b, (uint64_t)v->v.i, vsize[v->type]); return LC_OK;
    case GGUF_T_BOOL: wb_le(b, v->v.b ? 1 : 0, 1); return LC_OK;
    case GGUF_T_FLOAT32: {
        float f = (float)v->v.f;
        uint32_t u;
        memcpy(&u, &f, 4);
        wb_le(b, u, 4);
        return LC_OK;
    }
    case GGUF_T_FLOAT64: {
        uint64_t u;
        memcpy(&u, &v->v.f, 8);
        wb_le(b, u, 8);
        return LC_OK;
    }
    case GGUF_T_STRING:
        if (v->v.s.len && !v->v.s.ptr) return LC_E_INVALID;
        wb_str(b, v->v.s.ptr, v->v.s.len);
        return LC_OK;
    case GGUF_T_ARRAY: {
        gguf_vtype et = v->v.arr.type;
        uint64_t n = v->v.arr.n;
        if (depth >= GGUF_MAX_DEPTH || (unsigned)et >= GGUF_T_COUNT || n > GGUF_MAX_ARRAY) return LC_E_INVALID;
        wb_le(b, et, 4);
        wb_le(b, n, 8);
        if (et == GGUF_T_STRING) {
            if (n && !v->v.arr.strs) return LC_E_INVALID;
            for (uint64_t i = 0; i < n && !b->oom; i++) {
                if (v->v.arr.strs[i].len && !v->v.arr.strs[i].ptr) return LC_E_INVALID;
                wb_str(b, v->v.arr.strs[i].ptr, v->v.arr.strs[i].len);
            }
        } else if (et == GGUF_T_ARRAY) {
            if (n && !v->v.arr.items) return LC_E_INVALID;
            for (uint64_t i = 0; i < n && !b->oom; i++) {
                if (v->v.arr.items[i].type != GGUF_T_ARRAY) return LC_E_INVALID;
                int e = enc_value(b, &v->v.arr.items[i], depth + 1);
                if (e) return e;
            }
        } else {
            /* Raw little-endian bytes, as the reader keeps them; bools must still be 0/1. */
            if (n && !v->v.arr.data) return LC_E_INVALID;
            const uint8_t *p = v->v.arr.data;
            if (et == GGUF_T_BOOL)
                for (uint64_t i = 0; i < n; i++)
                    if (p[i] > 1) return LC_E_INVALID;
            if (n > SIZE_MAX / vsize[et]) return LC_E_INVALID;
            wb_put(b, p, (size_t)(n * vsize[et]));
        }
        return LC_OK;
    }
    default: return LC_E_INVALID;
    }
}

int gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v) {
    if (!v || (unsigned)v->type >= GGUF_T_COUNT)
        return LC_ERR(LC_E_INVALID, "gguf writer: key '%s': bad value", key ? key : "");
    wbuf b = {0};
    wb_le(&b, v->type, 4);
    if (enc_value(&b, v, 0)) {
        lc__free(b.p);
        return LC_ERR(LC_E_INVALID,
                      "gguf writer: key '%s': malformed value (type out of range, NULL data, bool not 0/1, or arrays "
                      "nested deeper than %d)",
                      key ? key : "", GGUF_MAX_DEPTH);
    }
    return set_encoded(w, key, &b);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                           const void *data, uint64_t size) {
    if (!w || !name || !*name || strlen(name) >= GGUF_MAX_NAME)
        return LC_ERR(LC_E_INVALID, "gguf writer: tensor name must be 1..%d bytes", GGUF_MAX_NAME - 1);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return LC_ERR(LC_E_INVALID, "gguf writer: duplicate tensor '%s'", name);
    const lc_type_traits *tr = lc_type_traits_of((int)type);
    if (!tr->name) return LC_ERR(LC_E_INVALID, "gguf writer: tensor '%s': unknown type id %u", name, type);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS || !ne)
        return LC_ERR(LC_E_INVALID, "gguf writer: tensor '%s': n_dims %u not in 1..%d", name, n_dims, GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims, .data = data, .size = size};
    uint64_t nel = 1, row, want;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] > (uint64_t)INT64_MAX || !lc__mul_ok(nel, t.ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return LC_ERR(LC_E_INVALID, "gguf writer: tensor '%s': element count overflows", name);
    }
    if (!lc_type_row_bytes((int)type, t.ne[0], &row) || !lc__mul_ok(row, t.ne[1], &want) ||
        !lc__mul_ok(want, t.ne[2], &want) || !lc__mul_ok(want, t.ne[3], &want))
        return LC_ERR(LC_E_INVALID, "gguf writer: tensor '%s': rows of %llu elements are not a multiple of the %s block "
                      "size %u (or the size overflows)", name, (ull)t.ne[0], tr->name, tr->blck_size);
    if (want != size || (size && !data))
        return LC_ERR(LC_E_INVALID, "gguf writer: tensor '%s': %llu bytes given, the type and shape need %llu", name,
                      (ull)size, (ull)want);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *nt = lc__realloc(w->t, cap * sizeof *nt);
        if (!nt) return LC_ERR(LC_E_NOMEM, "gguf writer: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    if (!(t.name = lc__strdup(name))) return LC_ERR(LC_E_NOMEM, "gguf writer: out of memory");
    w->t[w->n_t++] = t;
    return LC_OK;
}

/* ---- output ---- */
typedef struct out {
    FILE *fp;
    uint64_t pos;
    bool err;
} out;

static void out_put(out *o, const void *p, size_t n) {
    if (o->err || !n) return;
    if (fwrite(p, 1, n, o->fp) != n) o->err = true;
    o->pos += n;
}

static void out_le(out *o, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    out_put(o, t, (size_t)bytes);
}

static void out_pad(out *o, uint64_t alignment) {
    static const uint8_t zeros[256];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad) {
        size_t n = (size_t)LC_MIN(pad, sizeof zeros);
        out_put(o, zeros, n);
        pad -= n;
    }
}

static uint64_t writer_alignment(const gguf_writer *w, int *e) {
    *e = 0;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        const uint8_t *p = w->kv[i].val.p;
        uint32_t type = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint32_t a = type == GGUF_T_UINT32 ? (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                                                 (uint32_t)p[7] << 24
                                           : 0;
        if (type != GGUF_T_UINT32 || a == 0 || (a & (a - 1))) {
            *e = LC_ERR(LC_E_INVALID, "gguf writer: general.alignment must be a u32 nonzero power of two");
            return 0;
        }
        return a;
    }
    return GGUF_DEFAULT_ALIGNMENT;
}

static void write_all(const gguf_writer *w, out *o, uint64_t alignment) {
    out_put(o, "GGUF", 4);
    out_le(o, 3, 4);
    out_le(o, w->n_t, 8);
    out_le(o, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        size_t n = strlen(w->kv[i].key);
        out_le(o, n, 8);
        out_put(o, w->kv[i].key, n);
        out_put(o, w->kv[i].val.p, w->kv[i].val.n);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t n = strlen(t->name);
        out_le(o, n, 8);
        out_put(o, t->name, n);
        out_le(o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) out_le(o, t->ne[d], 8);
        out_le(o, t->type, 4);
        out_le(o, t->offset, 8);
    }
    out_pad(o, alignment);
    for (size_t i = 0; i < w->n_t && !o->err; i++) {
        const uint8_t *p = w->t[i].data;
        for (uint64_t done = 0; done < w->t[i].size && !o->err;) { /* in chunks: size_t may be narrower */
            size_t n = (size_t)LC_MIN(w->t[i].size - done, (uint64_t)1 << 30);
            out_put(o, p + done, n);
            done += n;
        }
        out_pad(o, alignment);
    }
}

/* fsync of the directory holding path, so the rename itself is durable (best effort). */
static void sync_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int gguf_writer_write(gguf_writer *w, const char *path) {
    if (!w || !path || !*path) return LC_ERR(LC_E_INVALID, "gguf_writer_write: no writer or path");
    int e;
    uint64_t alignment = writer_alignment(w, &e);
    if (e) return e;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded = w->t[i].size + (alignment - w->t[i].size % alignment) % alignment;
        if (!lc__add_ok(off, padded, &off)) return LC_ERR(LC_E_INVALID, "%s: tensor data size overflows", path);
    }
    size_t plen = strlen(path);
    char *tmp = lc__malloc(plen + 16);
    if (!tmp) return LC_ERR(LC_E_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        e = LC_ERR(LC_E_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        lc__free(tmp);
        return e;
    }
    fchmod(fd, 0644);
    out o = {fdopen(fd, "wb"), 0, false};
    if (!o.fp) {
        e = LC_ERR(LC_E_IO, "%s: %s", tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    write_all(w, &o, alignment);
    int err = o.err ? errno : 0;
    if (!o.err && (fflush(o.fp) != 0 || fsync(fd) != 0)) err = errno, o.err = true;
    if (fclose(o.fp) != 0 && !o.err) err = errno, o.err = true;
    if (o.err) {
        e = LC_ERR(LC_E_IO, "%s: writing failed: %s (nothing was written to %s)", tmp, strerror(err ? err : EIO), path);
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        e = LC_ERR(LC_E_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    sync_dir(path);
    lc__free(tmp);
    return LC_OK;
fail:
    unlink(tmp);
    lc__free(tmp);
    return e;
}
