/* test_gguf.c - the GGUF reader and writer against independent references.
**
** References: files written by llama.cpp / gguf-py in ../shared/data (our writer must reproduce them byte for byte
** from what our reader read; tensor types must match manifest.json; F16/BF16 tensors must be the IEEE roundings of
** the F32 base model); llama.cpp's own GGUF reader (libggml-base.so of the oracle, via dlopen) on files we write;
** byte layouts built by hand here from the spec (ggml/docs/gguf.md). The malformed corpus (every truncation, huge
** counts and lengths, bad types, overflow classes of past llama.cpp GGUF CVEs) must be rejected with LC_E_FORMAT and
** a message naming the file and the byte offset of the bad field.
*/
#include "../src/gguf/gguf.h"
#include "../src/quant/types.h"
#include "harness.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

/* ---- a byte builder: the spec, written out independently of the library ---- */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_raw(bb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void bb_le(bb *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    bb_raw(b, t, (size_t)bytes);
}
static void bb_u8(bb *b, uint8_t v) { bb_le(b, v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, GGUF_T_UINT32);
    bb_u32(b, v);
}
static void bb_kv_str(bb *b, const char *key, const char *v) {
    bb_str(b, key);
    bb_u32(b, GGUF_T_STRING);
    bb_str(b, v);
}
static void bb_tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static void bb_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) bb_u8(b, (uint8_t)(i * 7 + 1));
}

/* ---- temp directory ---- */
static char tmpdir[256];
static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}
static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}
static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)sz + 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) p[sz] = 0;
    *n = (size_t)sz;
    return p;
}

/* Parses a private exact-size copy (so ASan sees any read past the end). */
static int parse_copy(const uint8_t *p, size_t n, gguf_file **out) {
    uint8_t *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    int r = gguf_parse(c, n, "corpus.gguf", out);
    if (*out) { /* keep the copy alive with the file: the caller closes both through close_copy */
        (*out)->mapped = false;
        return r;
    }
    free(c);
    return r;
}
static void close_copy(gguf_file *f) {
    if (!f) return;
    void *c = (void *)(uintptr_t)f->base;
    gguf_close(f);
    free(c);
}

/* The error message names the file and "offset N:" (N the byte offset of the bad field, when expect_at >= 0). */
static int message_ok(const char *name, long long expect_at, const char *expect_sub) {
    const char *m = lc_last_error();
    if (!strstr(m, name) || !strstr(m, "offset ")) return 0;
    if (expect_at >= 0) {
        char want[64];
        snprintf(want, sizeof want, "offset %lld:", expect_at);
        if (!strstr(m, want)) return 0;
    }
    return !expect_sub || strstr(m, expect_sub) != NULL;
}

/* ---- a small valid file, built by hand; its last tensor ends exactly at the end of the file ---- */
static void build_small(bb *b) {
    bb_hdr(b, 3, 3, 6);
    bb_kv_str(b, "general.architecture", "llama");
    bb_str(b, "a.u8");
    bb_u32(b, GGUF_T_UINT8);
    bb_u8(b, 7);
    bb_str(b, "a.bool");
    bb_u32(b, GGUF_T_BOOL);
    bb_u8(b, 1);
    bb_str(b, "a.f64");
    bb_u32(b, GGUF_T_FLOAT64);
    double h = 0.5;
    bb_raw(b, &h, 8);
    bb_str(b, "a.strs");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_STRING);
    bb_u64(b, 2);
    bb_str(b, "x");
    bb_str(b, "yz");
    bb_str(b, "a.nested");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_ARRAY);
    bb_u64(b, 2);
    bb_u32(b, GGUF_T_INT32);
    bb_u64(b, 2);
    bb_u32(b, 1);
    bb_u32(b, (uint32_t)-2);
    bb_u32(b, GGUF_T_UINT8);
    bb_u64(b, 0);
    bb_tinfo(b, "t0", 2, (const uint64_t[]){4, 2}, LC_TYPE_F32, 0);
    bb_tinfo(b, "t1", 1, (const uint64_t[]){32}, LC_TYPE_Q8_0, 32);
    bb_tinfo(b, "t2", 1, (const uint64_t[]){3}, LC_TYPE_F16, 96);
    bb_pad(b, 32);
    bb_zeros(b, 32);
    bb_zeros(b, 34);
    bb_pad(b, 32);
    bb_zeros(b, 6);
}

TEST(small_file_parses) {
    bb b = {0};
    build_small(&b);
    gguf_file *f = NULL;
    int r = parse_copy(b.p, b.n, &f);
    free(b.p);
    CHECK_OK(r);
    CHECK_EQ_INT(f->version, 3);
    CHECK_EQ_INT(f->n_kv, 6);
    CHECK_EQ_INT(f->n_tensors, 3);
    CHECK_EQ_INT(f->alignment, 32);
    CHECK(f->data_offset % 32 == 0);
    gguf_str s;
    CHECK_EQ_INT(gguf_get_str(f, "general.architecture", &s), 1);
    CHECK(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);
    uint32_t u;
    CHECK_EQ_INT(gguf_get_u32(f, "a.u8", &u), 1);
    CHECK_EQ_INT(u, 7);
    const gguf_value *a;
    CHECK_EQ_INT(gguf_get_arr(f, "a.nested", GGUF_T_ARRAY, &a), 1);
    CHECK_EQ_INT(a->v.arr.n, 2);
    CHECK_EQ_INT(gguf_arr_i64(&a->v.arr.items[0], 1), -2);
    CHECK_EQ_INT(a->v.arr.items[1].v.arr.n, 0);
    const gguf_tensor *t = gguf_find_tensor(f, "t2");
    CHECK(t && t->type == LC_TYPE_F16 && t->size == 6 && t->offset == 96);
    CHECK((const uint8_t *)t->data + t->size == f->base + f->size);
    CHECK(gguf_find_tensor(f, "t1")->size == 34);
    close_copy(f);
}

/* Every proper prefix of a valid file is rejected cleanly. */
TEST(every_truncation_rejected) {
    bb b = {0};
    build_small(&b);
    for (size_t n = 0; n < b.n; n++) {
        gguf_file *f = NULL;
        int r = parse_copy(b.p, n, &f);
        if (r != LC_E_FORMAT || f) {
            close_copy(f);
            free(b.p);
            FAILF("prefix of %zu bytes: status %d (%s)", n, r, lc_last_error());
        }
        if (!message_ok("corpus.gguf", -1, NULL)) {
            free(b.p);
            FAILF("prefix of %zu bytes: message lacks file or offset: %s", n, lc_last_error());
        }
    }
    /* and on disk through gguf_open: the message names the path */
    const char *path = tmp_path("truncated.gguf");
    CHECK(write_file(path, b.p, b.n - 1) == 0);
    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(path, &f), LC_E_FORMAT);
    CHECK(f == NULL);
    CHECKF(message_ok(path, -1, "truncated"), "%s", lc_last_error());
    CHECK(write_file(path, b.p, b.n) == 0);
    CHECK_OK(gguf_open(path, &f));
    CHECK(f->mapped);
    gguf_close(f);
    unlink(path);
    free(b.p);
}

/* One malformed case: builds the bytes, tells the expected offset of the bad field and a word of the message. */
typedef struct mcase {
    const char *what, *expect;
    long long at;
} mcase;

/* Header + n_kv key/values built by kv(), no tensors. */
static bool make_case(int i, bb *b, mcase *c) {
    uint64_t ne2[2] = {32, 1};
#define CASE(n, desc, sub) case n: c->what = desc; c->expect = sub;
#define AT() (c->at = (long long)b->n)
    c->at = -1;
    switch (i) {
    CASE(0, "bad magic", "magic") bb_raw(b, "GGML", 4); bb_u32(b, 3); AT(); c->at = 0; break;
    CASE(1, "version 0", "version 0") bb_raw(b, "GGUF", 4); AT(); bb_u32(b, 0); bb_u64(b, 0); bb_u64(b, 0); break;
    CASE(2, "version 1", "version 1") bb_raw(b, "GGUF", 4); AT(); bb_u32(b, 1); bb_u64(b, 0); bb_u64(b, 0); break;
    CASE(3, "version 4", "version 4") bb_raw(b, "GGUF", 4); AT(); bb_u32(b, 4); bb_u64(b, 0); bb_u64(b, 0); break;
    CASE(4, "big-endian v3", "big-endian") bb_raw(b, "GGUF", 4); AT(); bb_raw(b, "\0\0\0\3", 4); bb_u64(b, 0); bb_u64(b, 0); break;
    CASE(5, "n_tensors UINT64_MAX", "tensor count") bb_raw(b, "GGUF", 4); bb_u32(b, 3); AT(); bb_u64(b, UINT64_MAX); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(6, "n_tensors*sizeof overflow", "tensor count") bb_raw(b, "GGUF", 4); bb_u32(b, 2); AT(); bb_u64(b, (1ull << 59) + 1); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(7, "n_kv UINT64_MAX", "key count") bb_hdr(b, 3, 0, UINT64_MAX); c->at = 16; bb_zeros(b, 64); break;
    CASE(8, "n_kv 2^60", "key count") bb_hdr(b, 3, 0, 1ull << 60); c->at = 16; bb_zeros(b, 64); break;
    CASE(9, "key length UINT64_MAX (len+1 overflow)", "key length") bb_hdr(b, 3, 0, 1); AT(); bb_u64(b, UINT64_MAX); bb_zeros(b, 16); break;
    CASE(10, "key length past the end", "runs past") bb_hdr(b, 3, 0, 1); AT(); bb_u64(b, 15); bb_zeros(b, 14); break;
    CASE(11, "empty key", "empty key") bb_hdr(b, 3, 0, 1); AT(); bb_u64(b, 0); bb_u32(b, GGUF_T_UINT8); bb_u8(b, 1); bb_zeros(b, 8); break;
    CASE(12, "key with NUL", "NUL") bb_hdr(b, 3, 0, 1); AT(); bb_u64(b, 3); bb_raw(b, "a\0b", 3); bb_u32(b, GGUF_T_UINT8); bb_u8(b, 1); break;
    CASE(13, "value type 13", "unknown value type") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); AT(); bb_u32(b, 13); bb_zeros(b, 8); break;
    CASE(14, "value type 0xffffffff", "unknown value type") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); AT(); bb_u32(b, UINT32_MAX); bb_zeros(b, 8); break;
    CASE(15, "string length UINT64_MAX", "string value length") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_STRING); AT(); bb_u64(b, UINT64_MAX); bb_zeros(b, 8); break;
    CASE(16, "string length 2^63", "string value length") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_STRING); AT(); bb_u64(b, 1ull << 63); bb_zeros(b, 8); break;
    CASE(17, "string length one past the end", "runs past") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_STRING); AT(); bb_u64(b, 9); bb_zeros(b, 8); break;
    CASE(18, "array element type 13", "element type") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); AT(); bb_u32(b, 13); bb_u64(b, 1); bb_zeros(b, 8); break;
    CASE(19, "u8 array length UINT64_MAX", "exceeds the limit") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); bb_u32(b, GGUF_T_UINT8); AT(); bb_u64(b, UINT64_MAX); bb_zeros(b, 8); break;
    CASE(20, "u32 array of 2^29 without data", "bytes are left") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); bb_u32(b, GGUF_T_UINT32); AT(); bb_u64(b, 1ull << 29); bb_zeros(b, 64); break;
    CASE(21, "string array of 2^29 without data", "bytes are left") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); bb_u32(b, GGUF_T_STRING); AT(); bb_u64(b, 1ull << 29); bb_zeros(b, 64); break;
    CASE(22, "string array n*8 overflow", "exceeds the limit") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); bb_u32(b, GGUF_T_STRING); AT(); bb_u64(b, 1ull << 61); bb_zeros(b, 64); break;
    CASE(23, "array of 1000 arrays without data", "bytes are left") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); bb_u32(b, GGUF_T_ARRAY); AT(); bb_u64(b, 1000); bb_zeros(b, 64); break;
    CASE(24, "arrays nested 9 deep", "nested deeper") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY);
        for (int d = 0; d < 8; d++) { bb_u32(b, GGUF_T_ARRAY); bb_u64(b, 1); }
        AT(); bb_u32(b, GGUF_T_UINT8); bb_u64(b, 0); break;
    CASE(25, "bool 2", "bool value") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_BOOL); AT(); bb_u8(b, 2); break;
    CASE(26, "bool array element 255", "bool array element") bb_hdr(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_T_ARRAY); bb_u32(b, GGUF_T_BOOL); bb_u64(b, 3); bb_u8(b, 0); bb_u8(b, 1); AT(); bb_u8(b, 255); break;
    CASE(27, "duplicate key", "duplicate key") bb_hdr(b, 3, 0, 2); bb_kv_u32(b, "a.b", 1); AT(); bb_kv_u32(b, "a.b", 2); break;
    CASE(28, "alignment 0", "power of two") bb_hdr(b, 3, 0, 1); AT(); bb_kv_u32(b, "general.alignment", 0); break;
    CASE(29, "alignment 48", "power of two") bb_hdr(b, 3, 0, 1); AT(); bb_kv_u32(b, "general.alignment", 48); break;
    CASE(30, "alignment u64", "type u32") bb_hdr(b, 3, 0, 1); AT(); bb_str(b, "general.alignment"); bb_u32(b, GGUF_T_UINT64); bb_u64(b, 32); break;
    CASE(31, "alignment string", "type u32") bb_hdr(b, 3, 0, 1); AT(); bb_kv_str(b, "general.alignment", "32"); break;
    CASE(32, "n_dims 0", "number of dimensions") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); AT(); bb_u32(b, 0); bb_u32(b, 0); bb_u64(b, 0); bb_zeros(b, 32); break;
    CASE(33, "n_dims 5", "number of dimensions") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); AT(); bb_u32(b, 5); for (int d = 0; d < 5; d++) bb_u64(b, 1); bb_u32(b, 0); bb_u64(b, 0); bb_zeros(b, 32); break;
    CASE(34, "n_dims 0xffffffff", "number of dimensions") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); AT(); bb_u32(b, UINT32_MAX); bb_zeros(b, 64); break;
    CASE(35, "ne beyond INT64_MAX", "INT64_MAX") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 2); bb_u64(b, 32); AT(); bb_u64(b, 1ull << 63); bb_u32(b, 0); bb_u64(b, 0); bb_zeros(b, 32); break;
    CASE(36, "ne product overflow (2^32 x 2^32)", "overflows") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 2); bb_u64(b, 1ull << 32); AT(); bb_u64(b, 1ull << 32); bb_u32(b, 0); bb_u64(b, 0); bb_zeros(b, 32); break;
    CASE(37, "ne product overflow (4 x 2^16)", "overflows") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 4); bb_u64(b, 1 << 16); bb_u64(b, 1 << 16); bb_u64(b, 1 << 16); AT(); bb_u64(b, 1 << 16); bb_u32(b, 0); bb_u64(b, 0); bb_zeros(b, 32); break;
    CASE(38, "tensor type 4 (removed Q4_2)", "unknown tensor type") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 32); AT(); bb_u32(b, 4); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(39, "tensor type 43", "unknown tensor type") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 32); AT(); bb_u32(b, 43); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(40, "tensor type 0xffffffff", "unknown tensor type") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 32); AT(); bb_u32(b, UINT32_MAX); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(41, "Q8_0 row of 33", "block size") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 33); AT(); bb_u32(b, LC_TYPE_Q8_0); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(42, "F32 bytes overflow (ne 2^62)", "size in bytes overflows") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 1ull << 62); AT(); bb_u32(b, LC_TYPE_F32); bb_u64(b, 0); bb_zeros(b, 64); break;
    CASE(43, "offset not aligned", "alignment") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 8); bb_u32(b, LC_TYPE_F32); AT(); bb_u64(b, 4); bb_pad(b, 32); bb_zeros(b, 64); break;
    CASE(44, "offset+size overflow", "outside") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 32); bb_u32(b, LC_TYPE_F32); AT(); bb_u64(b, UINT64_MAX - 31); bb_pad(b, 32); bb_zeros(b, 128); break;
    CASE(45, "offset 2^40", "outside") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 32); bb_u32(b, LC_TYPE_F32); AT(); bb_u64(b, 1ull << 40); bb_pad(b, 32); bb_zeros(b, 128); break;
    CASE(46, "data one byte past the end", "outside") bb_hdr(b, 3, 1, 0); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 32); bb_u32(b, LC_TYPE_F32); AT(); bb_u64(b, 0); bb_pad(b, 32); bb_zeros(b, 127); break;
    CASE(47, "overlapping tensors", "overlaps") bb_hdr(b, 3, 2, 0); bb_tinfo(b, "a", 2, ne2, LC_TYPE_F32, 0); bb_str(b, "b"); bb_u32(b, 1); bb_u64(b, 32); bb_u32(b, LC_TYPE_F32); AT(); bb_u64(b, 64); bb_pad(b, 32); bb_zeros(b, 256); break;
    CASE(48, "same offset", "overlaps") bb_hdr(b, 3, 2, 0); bb_tinfo(b, "a", 2, ne2, LC_TYPE_F32, 0); bb_tinfo(b, "b", 1, ne2, LC_TYPE_F32, 0); bb_pad(b, 32); bb_zeros(b, 256); break; /* which one is named is unspecified */
    CASE(49, "duplicate tensor name", "duplicate tensor") bb_hdr(b, 3, 2, 0); bb_tinfo(b, "a", 1, ne2, LC_TYPE_F32, 0); AT(); bb_tinfo(b, "a", 1, ne2, LC_TYPE_F32, 128); bb_pad(b, 32); bb_zeros(b, 256); break;
    CASE(50, "empty tensor name", "empty tensor name") bb_hdr(b, 3, 1, 0); AT(); bb_tinfo(b, "", 1, ne2, LC_TYPE_F32, 0); bb_pad(b, 32); bb_zeros(b, 128); break;
    CASE(51, "tensor name of 64 bytes", "exceeds the limit") bb_hdr(b, 3, 1, 0); AT(); bb_tinfo(b, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne2, LC_TYPE_F32, 0); bb_pad(b, 32); bb_zeros(b, 128); break;
    CASE(52, "tensor name length UINT64_MAX", "exceeds the limit") bb_hdr(b, 3, 1, 0); AT(); bb_u64(b, UINT64_MAX); bb_zeros(b, 64); break;
    CASE(53, "fewer tensor infos than counted", "file ends") bb_hdr(b, 3, 2, 0); bb_tinfo(b, "a", 1, ne2, LC_TYPE_F32, 0); bb_str(b, "a-long-enough-name-for-the-count-check"); AT(); break;
    CASE(54, "data section past the end", "past the end") bb_hdr(b, 3, 1, 0); bb_tinfo(b, "a", 1, (const uint64_t[]){0}, LC_TYPE_F32, 0); AT(); break; /* infos end at 57, not aligned */
    CASE(55, "fewer keys than counted", "file ends") bb_hdr(b, 3, 0, 3); bb_kv_str(b, "a", "a string long enough for the count check"); AT(); break;
    CASE(56, "offset aligned to 32 but alignment 64", "alignment") bb_hdr(b, 3, 1, 1); bb_kv_u32(b, "general.alignment", 64); bb_str(b, "t"); bb_u32(b, 1); bb_u64(b, 8); bb_u32(b, LC_TYPE_F32); AT(); bb_u64(b, 32); bb_pad(b, 64); bb_zeros(b, 128); break;
    CASE(57, "tensor count beyond the file", "tensor count") bb_hdr(b, 3, 1000, 0); c->at = 8; bb_zeros(b, 100); break;
    CASE(58, "empty file", "too short") c->at = 0; break;
    default: return false;
    }
#undef CASE
#undef AT
    return true;
}

TEST(malformed_corpus_rejected) {
    int n = 0;
    for (int i = 0;; i++) {
        bb b = {0};
        mcase c;
        if (!make_case(i, &b, &c)) {
            free(b.p);
            break;
        }
        gguf_file *f = NULL;
        int r = parse_copy(b.p, b.n, &f);
        free(b.p);
        if (r != LC_E_FORMAT || f) {
            close_copy(f);
            FAILF("case %d (%s): status %d, message: %s", i, c.what, r, lc_last_error());
        }
        if (!message_ok("corpus.gguf", c.at, c.expect))
            FAILF("case %d (%s): want 'offset %lld:' and '%s' in: %s", i, c.what, c.at, c.expect, lc_last_error());
        if (getenv("LLAMAC_VERBOSE")) printf("    %-40s %s\n", c.what, lc_last_error());
        n++;
    }
    CHECK(n >= 59);
}

/* Things that look odd but are valid GGUF (llama.cpp accepts them): must not be rejected. */
TEST(odd_but_valid) {
    bb b = {0};
    /* zero-element tensor, empty arrays and strings, v2, u8 with every value, alignment 1 */
    bb_hdr(&b, 2, 2, 4);
    bb_kv_u32(&b, "general.alignment", 1);
    bb_kv_str(&b, "empty", "");
    bb_str(&b, "e.arr");
    bb_u32(&b, GGUF_T_ARRAY);
    bb_u32(&b, GGUF_T_STRING);
    bb_u64(&b, 0);
    bb_str(&b, "utf8 key \xc3\xa9");
    bb_u32(&b, GGUF_T_INT64);
    bb_u64(&b, (uint64_t)INT64_MIN);
    bb_tinfo(&b, "z", 2, (const uint64_t[]){0, 5}, LC_TYPE_Q4_K, 0);
    bb_tinfo(&b, "one", 1, (const uint64_t[]){1}, 24 /* I8 */, 0);
    bb_u8(&b, 42);
    gguf_file *f = NULL;
    int r = parse_copy(b.p, b.n, &f);
    free(b.p);
    CHECK_OK(r);
    CHECK_EQ_INT(f->version, 2);
    CHECK_EQ_INT(f->alignment, 1);
    CHECK_EQ_INT(gguf_find_tensor(f, "z")->size, 0);
    CHECK_EQ_INT(*(const uint8_t *)gguf_find_tensor(f, "one")->data, 42);
    CHECK_EQ_INT(gguf_find(f, "utf8 key \xc3\xa9")->val.v.i, INT64_MIN);
    close_copy(f);
}

/* ---- writer ---- */
/* The writer's bytes for a minimal file equal the spec's layout written by hand. */
TEST(writer_bytes_match_spec) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    float data[3] = {1.0f, -2.0f, 0.5f};
    CHECK_OK(gguf_writer_set_u32(w, "a", 7));
    CHECK_OK(gguf_writer_set_str(w, "s", "hi"));
    CHECK_OK(gguf_writer_add_tensor(w, "w", LC_TYPE_F32, 1, (const uint64_t[]){3}, data, 12));
    CHECK_OK(gguf_writer_add_tensor(w, "v", LC_TYPE_F32, 1, (const uint64_t[]){1}, data, 4));
    const char *path = tmp_path("spec.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    bb b = {0};
    bb_hdr(&b, 3, 2, 2);
    bb_kv_u32(&b, "a", 7);
    bb_kv_str(&b, "s", "hi");
    bb_tinfo(&b, "w", 1, (const uint64_t[]){3}, LC_TYPE_F32, 0);
    bb_tinfo(&b, "v", 1, (const uint64_t[]){1}, LC_TYPE_F32, 32);
    bb_pad(&b, 32);
    uint32_t bits[3];
    memcpy(bits, data, sizeof bits);
    for (int i = 0; i < 3; i++) bb_le(&b, bits[i], 4);
    bb_pad(&b, 32);
    bb_le(&b, bits[0], 4);
    bb_pad(&b, 32);
    size_t n;
    uint8_t *got = read_file(path, &n);
    CHECK(got);
    bool same = n == b.n && memcmp(got, b.p, n) == 0;
    free(got);
    free(b.p);
    CHECKF(same, "written file (%zu bytes) differs from the hand-built layout", n);
    unlink(path);
}

/* Every value type, nested arrays and tensors of several types survive write + read, at alignment 32 and 64. */
static const char *const strs[] = {"", "a", "h\xc3\xa9llo", "tab\there"};

static int write_all_types(const char *path, uint32_t alignment, uint8_t *tdata[5]) {
    gguf_writer *w = gguf_writer_new();
    int r = 0;
#define W(x)                                                                                                       \
    do {                                                                                                           \
        if ((r = (x))) goto out;                                                                                   \
    } while (0)
    if (alignment) W(gguf_writer_set_u32(w, "general.alignment", alignment));
    W(gguf_writer_set_u32(w, "v.u32", 4000000000u));
    W(gguf_writer_set_i32(w, "v.i32", -2000000000));
    W(gguf_writer_set_u64(w, "v.u64", 0xfedcba9876543210ull));
    W(gguf_writer_set_f32(w, "v.f32", 1e-5f));
    W(gguf_writer_set_bool(w, "v.bool", true));
    W(gguf_writer_set_str(w, "v.str", "h\xc3\xa9llo \"world\"\n"));
    gguf_value v = {.type = GGUF_T_UINT8, .v.u = 255};
    W(gguf_writer_set_value(w, "v.u8", &v));
    v = (gguf_value){.type = GGUF_T_INT8, .v.i = -128};
    W(gguf_writer_set_value(w, "v.i8", &v));
    v = (gguf_value){.type = GGUF_T_UINT16, .v.u = 65535};
    W(gguf_writer_set_value(w, "v.u16", &v));
    v = (gguf_value){.type = GGUF_T_INT16, .v.i = -32768};
    W(gguf_writer_set_value(w, "v.i16", &v));
    v = (gguf_value){.type = GGUF_T_INT64, .v.i = INT64_MIN};
    W(gguf_writer_set_value(w, "v.i64", &v));
    v = (gguf_value){.type = GGUF_T_FLOAT64, .v.f = -0.1};
    W(gguf_writer_set_value(w, "v.f64", &v));
    /* arrays of every fixed type */
    uint8_t au8[] = {0, 1, 255};
    int8_t ai8[] = {-128, 0, 127};
    uint16_t au16[] = {1, 65535};
    int16_t ai16[] = {-32768, 32767};
    uint32_t au32[] = {0, 4294967295u, 7};
    int32_t ai32[] = {INT32_MIN, -1, INT32_MAX};
    float af32[] = {0.25f, -3.5f, 1e30f};
    bool ab[] = {true, false, true};
    uint64_t au64[] = {UINT64_MAX, 0};
    int64_t ai64[] = {INT64_MIN, INT64_MAX};
    double af64[] = {1.0 / 3.0, -1e300};
    W(gguf_writer_set_arr(w, "a.u8", GGUF_T_UINT8, au8, 3));
    W(gguf_writer_set_arr(w, "a.i8", GGUF_T_INT8, ai8, 3));
    W(gguf_writer_set_arr(w, "a.u16", GGUF_T_UINT16, au16, 2));
    W(gguf_writer_set_arr(w, "a.i16", GGUF_T_INT16, ai16, 2));
    W(gguf_writer_set_arr(w, "a.u32", GGUF_T_UINT32, au32, 3));
    W(gguf_writer_set_arr(w, "a.i32", GGUF_T_INT32, ai32, 3));
    W(gguf_writer_set_arr(w, "a.f32", GGUF_T_FLOAT32, af32, 3));
    W(gguf_writer_set_arr(w, "a.bool", GGUF_T_BOOL, ab, 3));
    W(gguf_writer_set_arr(w, "a.u64", GGUF_T_UINT64, au64, 2));
    W(gguf_writer_set_arr(w, "a.i64", GGUF_T_INT64, ai64, 2));
    W(gguf_writer_set_arr(w, "a.f64", GGUF_T_FLOAT64, af64, 2));
    W(gguf_writer_set_arr(w, "a.empty", GGUF_T_UINT32, NULL, 0));
    W(gguf_writer_set_arr_str(w, "a.str", strs, 4));
    /* replaced: the second set wins and keeps no duplicate */
    W(gguf_writer_set_u32(w, "v.replaced", 1));
    W(gguf_writer_set_str(w, "v.replaced", "second"));
    /* nested: [[1, 2, 3], [], [["x", "y"]]] built as reader-shaped values */
    uint8_t i32s[12];
    for (int i = 0; i < 3; i++) {
        uint32_t x = (uint32_t)(i + 1);
        for (int k = 0; k < 4; k++) i32s[4 * i + k] = (uint8_t)(x >> (8 * k));
    }
    gguf_str xy[2] = {{"x", 1}, {"y", 1}};
    gguf_value inner2 = {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_STRING, .n = 2, .strs = xy}};
    gguf_value items[3] = {
        {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_INT32, .n = 3, .data = i32s}},
        {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_FLOAT32, .n = 0}},
        {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_ARRAY, .n = 1, .items = &inner2}},
    };
    gguf_value nested = {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_ARRAY, .n = 3, .items = items}};
    W(gguf_writer_set_value(w, "a.nested", &nested));
    /* tensors: F32 2-D, F16 1-D, BF16 3-D, Q8_0 2-D, Q4_K 4-D; data deterministic bytes */
    static const struct { const char *name; uint32_t type, n_dims; uint64_t ne[4]; } T[5] = {
        {"f32", LC_TYPE_F32, 2, {7, 3, 1, 1}},      {"f16", LC_TYPE_F16, 1, {5, 1, 1, 1}},
        {"bf16", LC_TYPE_BF16, 3, {2, 3, 4, 1}},    {"q8_0", LC_TYPE_Q8_0, 2, {64, 3, 1, 1}},
        {"q4_k", LC_TYPE_Q4_K, 4, {256, 1, 2, 1}},
    };
    for (int i = 0; i < 5; i++) {
        const lc_type_traits *tr = lc_type_traits_of((int)T[i].type);
        uint64_t size = T[i].ne[0] / tr->blck_size * tr->type_size * T[i].ne[1] * T[i].ne[2] * T[i].ne[3];
        tdata[i] = malloc(size);
        for (uint64_t k = 0; k < size; k++) tdata[i][k] = (uint8_t)(k * 31 + i);
        W(gguf_writer_add_tensor(w, T[i].name, T[i].type, T[i].n_dims, T[i].ne, tdata[i], size));
    }
    W(gguf_writer_write(w, path));
out:
    gguf_writer_free(w);
    return r;
#undef W
}

static bool value_is(const gguf_file *f, const char *key, const char *want) {
    const gguf_kv *kv = gguf_find(f, key);
    char buf[256];
    if (!kv) return false;
    gguf_value_format(&kv->val, buf, sizeof buf, 8);
    if (strcmp(buf, want) != 0) {
        printf("    %s: got %s, want %s\n", key, buf, want);
        return false;
    }
    return true;
}

static void check_all_types(const char *path, uint32_t alignment) {
    uint8_t *tdata[5] = {0};
    CHECK_OK(write_all_types(path, alignment, tdata));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    uint64_t al = alignment ? alignment : 32;
    CHECK_EQ_INT(f->alignment, al);
    CHECK_EQ_INT(f->data_offset % al, 0);
    CHECK_EQ_INT(f->n_kv, 27 + (alignment ? 1 : 0));
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    bool b;
    gguf_str s;
    CHECK(gguf_get_u32(f, "v.u32", &u32) == 1 && u32 == 4000000000u);
    CHECK(gguf_get_i32(f, "v.i32", &i32) == 1 && i32 == -2000000000);
    CHECK(gguf_get_u64(f, "v.u64", &u64) == 1 && u64 == 0xfedcba9876543210ull);
    CHECK(gguf_get_f32(f, "v.f32", &f32) == 1 && f32 == 1e-5f);
    CHECK(gguf_get_bool(f, "v.bool", &b) == 1 && b);
    CHECK(gguf_get_str(f, "v.str", &s) == 1 && s.len == 15 && memcmp(s.ptr, "h\xc3\xa9llo \"world\"\n", 15) == 0);
    CHECK(value_is(f, "v.u8", "255") && value_is(f, "v.i8", "-128") && value_is(f, "v.u16", "65535"));
    CHECK(value_is(f, "v.i16", "-32768") && value_is(f, "v.i64", "-9223372036854775808"));
    CHECK(value_is(f, "v.f64", "-0.1") && value_is(f, "v.f32", "1e-05") && value_is(f, "v.bool", "true"));
    CHECK(value_is(f, "v.str", "\"h\xc3\xa9llo \\\"world\\\"\\n\""));
    CHECK(value_is(f, "v.replaced", "\"second\""));
    CHECK(value_is(f, "a.u8", "[0, 1, 255]") && value_is(f, "a.i8", "[-128, 0, 127]"));
    CHECK(value_is(f, "a.u16", "[1, 65535]") && value_is(f, "a.i16", "[-32768, 32767]"));
    CHECK(value_is(f, "a.u32", "[0, 4294967295, 7]") && value_is(f, "a.i32", "[-2147483648, -1, 2147483647]"));
    CHECK(value_is(f, "a.f32", "[0.25, -3.5, 1e+30]") && value_is(f, "a.bool", "[true, false, true]"));
    CHECK(value_is(f, "a.u64", "[18446744073709551615, 0]"));
    CHECK(value_is(f, "a.i64", "[-9223372036854775808, 9223372036854775807]"));
    CHECK(value_is(f, "a.f64", "[0.3333333333333333, -1e+300]") && value_is(f, "a.empty", "[]"));
    CHECK(value_is(f, "a.str", "[\"\", \"a\", \"h\xc3\xa9llo\", \"tab\\there\"]"));
    CHECK(value_is(f, "a.nested", "[[1, 2, 3], [], [[\"x\", \"y\"]]]"));
    const gguf_value *arr;
    CHECK(gguf_get_arr(f, "a.f64", GGUF_T_FLOAT64, &arr) == 1 && gguf_arr_f64(arr, 0) == 1.0 / 3.0);
    CHECK(gguf_get_arr(f, "a.u64", GGUF_T_UINT64, &arr) == 1 && gguf_arr_i64(arr, 0) == INT64_MAX);
    CHECK(gguf_get_arr(f, "a.str", GGUF_T_STRING, &arr) == 1 && arr->v.arr.strs[2].len == 6);
    CHECK_EQ_INT(f->n_tensors, 5);
    static const char *const names[5] = {"f32", "f16", "bf16", "q8_0", "q4_k"};
    static const uint32_t types[5] = {LC_TYPE_F32, LC_TYPE_F16, LC_TYPE_BF16, LC_TYPE_Q8_0, LC_TYPE_Q4_K};
    static const uint64_t sizes[5] = {84, 10, 48, 204, 288};
    uint64_t expect_off = 0;
    for (int i = 0; i < 5; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, names[i]);
        CHECK(t && t->type == types[i] && t->size == sizes[i]);
        CHECK_EQ_INT(t->offset, expect_off); /* consecutive, each padded: what llama.cpp requires */
        CHECK((uintptr_t)t->data % al == 0);
        CHECK(memcmp(t->data, tdata[i], t->size) == 0);
        expect_off += (t->size + al - 1) / al * al;
    }
    CHECK_EQ_INT(gguf_find_tensor(f, "bf16")->n_dims, 3);
    CHECK_EQ_INT(gguf_find_tensor(f, "bf16")->ne[2], 4);
    CHECK_EQ_INT(gguf_find_tensor(f, "q4_k")->n_dims, 4);
    /* copying every value back through gguf_writer_set_value reproduces the file byte for byte */
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++) CHECK_OK(gguf_writer_set_value(w, f->kv[i].key, &f->kv[i].val));
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        CHECK_OK(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size));
    }
    const char *copy = tmp_path("copy.gguf");
    CHECK_OK(gguf_writer_write(w, copy));
    gguf_writer_free(w);
    size_t n1, n2;
    uint8_t *a = read_file(path, &n1), *c = read_file(copy, &n2);
    bool same = a && c && n1 == n2 && memcmp(a, c, n1) == 0;
    free(a);
    free(c);
    CHECK(same);
    gguf_close(f);
    for (int i = 0; i < 5; i++) free(tdata[i]);
    unlink(copy);
    unlink(path);
}

TEST(roundtrip_all_types_align32) { check_all_types(tmp_path("all32.gguf"), 0); }
TEST(roundtrip_all_types_align64) { check_all_types(tmp_path("all64.gguf"), 64); }

TEST(writer_rejects_bad_input) {
    gguf_writer *w = gguf_writer_new();
    float x[33] = {0};
    CHECK_EQ_INT(gguf_writer_set_u32(w, "", 1), LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "k", GGUF_T_STRING, x, 1), LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_set_arr(w, "k", GGUF_T_BOOL, (const uint8_t[]){0, 2}, 2), LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", LC_TYPE_F32, 1, (const uint64_t[]){4}, x, 12), LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", LC_TYPE_Q8_0, 1, (const uint64_t[]){33}, x, 34), LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", 4, 1, (const uint64_t[]){32}, x, 18), LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", LC_TYPE_F32, 5, (const uint64_t[]){1, 1, 1, 1, 1}, x, 4),
                 LC_E_INVALID);
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                        LC_TYPE_F32, 1, (const uint64_t[]){1}, x, 4),
                 LC_E_INVALID);
    CHECK_OK(gguf_writer_add_tensor(w, "t", LC_TYPE_F32, 1, (const uint64_t[]){4}, x, 16));
    CHECK_EQ_INT(gguf_writer_add_tensor(w, "t", LC_TYPE_F32, 1, (const uint64_t[]){4}, x, 16), LC_E_INVALID);
    /* deeper nesting than the reader accepts */
    gguf_value lv[GGUF_MAX_DEPTH + 1];
    for (int i = 0; i <= GGUF_MAX_DEPTH; i++)
        lv[i] = (gguf_value){.type = GGUF_T_ARRAY,
                             .v.arr = {.type = i == GGUF_MAX_DEPTH ? GGUF_T_UINT8 : GGUF_T_ARRAY,
                                       .n = i == GGUF_MAX_DEPTH ? 0 : 1,
                                       .items = i == GGUF_MAX_DEPTH ? NULL : &lv[i + 1]}};
    CHECK_EQ_INT(gguf_writer_set_value(w, "deep", &lv[0]), LC_E_INVALID);
    CHECK_OK(gguf_writer_set_value(w, "deep", &lv[1])); /* exactly GGUF_MAX_DEPTH levels */
    /* a bad general.alignment fails the write and leaves no file and no temporary behind */
    CHECK_OK(gguf_writer_set_u32(w, "general.alignment", 48));
    const char *path = tmp_path("bad-align.gguf");
    CHECK_EQ_INT(gguf_writer_write(w, path), LC_E_INVALID);
    CHECK(access(path, F_OK) != 0);
    /* a directory that does not exist: LC_E_IO */
    CHECK_OK(gguf_writer_set_u32(w, "general.alignment", 64));
    CHECK_EQ_INT(gguf_writer_write(w, tmp_path("no/such/dir.gguf")), LC_E_IO);
    /* the nesting at the cap round-trips */
    CHECK_OK(gguf_writer_write(w, path));
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    CHECK(gguf_find(f, "deep") != NULL);
    gguf_close(f);
    gguf_writer_free(w);
    unlink(path);
    DIR *d = opendir(tmpdir);
    CHECK(d);
    struct dirent *e;
    int leftovers = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) leftovers++;
    closedir(d);
    CHECK_EQ_INT(leftovers, 0);
}

/* Writing over an existing file replaces it atomically (readers holding the old mapping keep the old bytes). */
TEST(writer_replaces_atomically) {
    const char *path = tmp_path("replace.gguf");
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(gguf_writer_set_u32(w, "gen", 1));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_file *old = NULL;
    CHECK_OK(gguf_open(path, &old));
    CHECK_OK(gguf_writer_set_u32(w, "gen", 2));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    gguf_file *neu = NULL;
    CHECK_OK(gguf_open(path, &neu));
    uint32_t a = 0, b = 0;
    CHECK(gguf_get_u32(old, "gen", &a) == 1 && gguf_get_u32(neu, "gen", &b) == 1);
    CHECK_EQ_INT(a, 1);
    CHECK_EQ_INT(b, 2);
    gguf_close(old);
    gguf_close(neu);
    unlink(path);
}

TEST(getters_check_types_and_ranges) {
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(gguf_writer_set_i32(w, "neg", -1));
    CHECK_OK(gguf_writer_set_u64(w, "big", 1ull << 40));
    CHECK_OK(gguf_writer_set_str(w, "s", "x"));
    gguf_value d = {.type = GGUF_T_FLOAT64, .v.f = 1e300};
    CHECK_OK(gguf_writer_set_value(w, "huge", &d));
    const char *path = tmp_path("getters.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    uint32_t u;
    int32_t i;
    uint64_t u64;
    float fl;
    bool b;
    gguf_str s;
    const gguf_value *arr;
    CHECK_EQ_INT(gguf_get_u32(f, "absent", &u), 0);
    CHECK_EQ_INT(gguf_get_u32(f, "neg", &u), LC_E_FORMAT);
    CHECKF(strstr(lc_last_error(), "neg") && strstr(lc_last_error(), path) && strstr(lc_last_error(), "offset"),
           "%s", lc_last_error());
    CHECK(gguf_get_i32(f, "neg", &i) == 1 && i == -1);
    CHECK_EQ_INT(gguf_get_i32(f, "big", &i), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_u32(f, "big", &u), LC_E_FORMAT);
    CHECK(gguf_get_u64(f, "big", &u64) == 1 && u64 == 1ull << 40);
    CHECK_EQ_INT(gguf_get_u64(f, "neg", &u64), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_u32(f, "s", &u), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_f32(f, "s", &fl), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_f32(f, "huge", &fl), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_bool(f, "neg", &b), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_str(f, "neg", &s), LC_E_FORMAT);
    CHECK_EQ_INT(gguf_get_arr(f, "s", GGUF_T_UINT8, &arr), LC_E_FORMAT);
    gguf_close(f);
    unlink(path);
}

TEST(value_format_truncates) {
    char buf[16];
    gguf_value v = {.type = GGUF_T_STRING, .v.s = {"0123456789abcdefghij", 20}};
    gguf_value_format(&v, buf, sizeof buf, 4);
    CHECK(strcmp(buf, "\"0123456789a...") == 0);
    v.v.s = (gguf_str){"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 15}; /* euro signs */
    gguf_value_format(&v, buf, sizeof buf, 4);
    CHECK(strcmp(buf, "\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac...") == 0); /* cut on a boundary */
    v.v.s = (gguf_str){"a\0\xff", 3};
    gguf_value_format(&v, buf, sizeof buf, 4);
    CHECK(strcmp(buf, "\"a\\x00\\xff\"") == 0);
    uint8_t bytes[5] = {1, 2, 3, 4, 5};
    gguf_value a = {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_UINT8, .n = 5, .data = bytes}};
    char big[64];
    gguf_value_format(&a, big, sizeof big, 2);
    CHECK(strcmp(big, "[1, 2, ... (5 items)]") == 0);
    gguf_value_format(&a, big, sizeof big, 0);
    CHECK(strcmp(big, "[... (5 items)]") == 0);
}

/* Out-of-memory at every allocation of a parse: a clean LC_E_NOMEM, nothing leaked (ASan checks). */
TEST(parse_survives_allocation_failures) {
    bb b = {0};
    build_small(&b);
    int nomem = 0;
    for (long k = 1; k < 64; k++) {
        gguf_file *f = NULL;
        lc__alloc_fail_after(k);
        int r = parse_copy(b.p, b.n, &f);
        lc__alloc_fail_after(0);
        if (r == 0) {
            close_copy(f);
            break;
        }
        if (r != LC_E_NOMEM) {
            free(b.p);
            FAILF("allocation %ld failing gave status %d: %s", k, r, lc_last_error());
        }
        nomem++;
    }
    free(b.p);
    CHECK(nomem >= 5);
}

/* ---- shared files written by llama.cpp and gguf-py ---- */
static const char *quant_types[] = {"F16",    "BF16",   "Q8_0",   "Q4_0",   "Q4_1",  "Q5_0",   "Q5_1",
                                    "Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                                    "Q5_K_M", "Q6_K",   "IQ4_NL", "IQ4_XS"};

/* Finds the "tensor_types" object of file `fname` in manifest.json and checks every pair against f. */
static int check_manifest_types(const char *manifest, const char *fname, const gguf_file *f, char *why, size_t cap) {
    char key[128];
    snprintf(key, sizeof key, "\"file\": \"%s\"", fname);
    const char *p = manifest, *hit = NULL;
    while ((p = strstr(p, key))) hit = p++; /* the last mention is the files[] entry */
    if (!hit) return snprintf(why, cap, "%s not in manifest", fname), 0;
    const char *tt = strstr(hit, "\"tensor_types\": {");
    if (!tt) return snprintf(why, cap, "no tensor_types for %s", fname), 0;
    p = tt + strlen("\"tensor_types\": {");
    int n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == ',') p++;
        if (*p == '}') break;
        char name[128], type[32];
        if (sscanf(p, "\"%127[^\"]\": \"%31[^\"]\"", name, type) != 2) return snprintf(why, cap, "bad manifest"), 0;
        const gguf_tensor *t = gguf_find_tensor(f, name);
        if (!t) return snprintf(why, cap, "%s: tensor %s missing", fname, name), 0;
        if (strcmp(lc_type_name((int)t->type), type) != 0)
            return snprintf(why, cap, "%s: %s is %s, manifest says %s", fname, name, lc_type_name((int)t->type), type),
                   0;
        n++;
        p = strchr(p, '\n');
        if (!p) return snprintf(why, cap, "bad manifest"), 0;
    }
    if ((uint64_t)n != f->n_tensors) return snprintf(why, cap, "%s: %d in manifest, %llu in file", fname, n, (ull)f->n_tensors), 0;
    return 1;
}

/* Copying every key and tensor of a file through our writer must give the same bytes (llama.cpp's writer layout). */
static int copy_is_identical(const gguf_file *f, const char *path) {
    gguf_writer *w = gguf_writer_new();
    int ok = 1;
    for (uint64_t i = 0; i < f->n_kv && ok; i++) ok = gguf_writer_set_value(w, f->kv[i].key, &f->kv[i].val) == 0;
    for (uint64_t i = 0; i < f->n_tensors && ok; i++) {
        const gguf_tensor *t = &f->tensors[i];
        ok = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size) == 0;
    }
    const char *out = tmp_path("copy-shared.gguf");
    ok = ok && gguf_writer_write(w, out) == 0;
    gguf_writer_free(w);
    size_t n1, n2;
    uint8_t *a = ok ? read_file(path, &n1) : NULL, *b = ok ? read_file(out, &n2) : NULL;
    ok = ok && a && b && n1 == n2 && memcmp(a, b, n1) == 0;
    free(a);
    free(b);
    unlink(out);
    return ok;
}

TEST(shared_files_read_and_copy_exactly) {
    const char *dir = th_shared_dir();
    if (!dir) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char path[4200], why[256];
    snprintf(path, sizeof path, "%s/quant/manifest.json", dir);
    size_t mn;
    char *manifest = (char *)read_file(path, &mn);
    CHECK(manifest);
    gguf_file *base = NULL;
    snprintf(path, sizeof path, "%s/quant/base-F32.gguf", dir);
    CHECK_OK(gguf_open(path, &base));
    CHECKF(check_manifest_types(manifest, "base-F32.gguf", base, why, sizeof why), "%s", why);
    CHECK(copy_is_identical(base, path));
    size_t n_types = sizeof quant_types / sizeof *quant_types;
    for (size_t k = 0; k < n_types; k++) {
        bool quick = getenv("LLAMAC_QUICK") && atoi(getenv("LLAMAC_QUICK")) && k % 4 != 0;
        char fname[64];
        snprintf(fname, sizeof fname, "quant-%s.gguf", quant_types[k]);
        snprintf(path, sizeof path, "%s/quant/%s", dir, fname);
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, &f));
        if (!check_manifest_types(manifest, fname, f, why, sizeof why)) {
            gguf_close(f);
            gguf_close(base);
            free(manifest);
            FAILF("%s", why);
        }
        if (!quick && !copy_is_identical(f, path)) {
            gguf_close(f);
            gguf_close(base);
            free(manifest);
            FAILF("%s: copy through our writer differs", fname);
        }
        /* F16 and BF16 tensors are the round-to-nearest-even of the base model's F32 values */
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i], *src = gguf_find_tensor(base, t->name);
            CHECK(src && src->ne[0] == t->ne[0] && src->ne[1] == t->ne[1]);
            if (t->type != LC_TYPE_F16 && t->type != LC_TYPE_BF16) continue;
            const float *x = src->data;
            const uint16_t *h = t->data;
            for (uint64_t j = 0; j < t->size / 2; j++) {
                uint16_t want = t->type == LC_TYPE_F16 ? lc_fp32_to_fp16(x[j]) : lc_fp32_to_bf16(x[j]);
                if (h[j] != want) {
                    gguf_close(f);
                    gguf_close(base);
                    free(manifest);
                    FAILF("%s: %s[%llu] = 0x%04x, want 0x%04x", fname, t->name, (ull)j, h[j], want);
                }
            }
        }
        gguf_close(f);
    }
    gguf_close(base);
    free(manifest);
    /* stories260K.gguf (llama.cpp's llama2.c converter) */
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", dir);
    gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    CHECK_EQ_INT(f->n_tensors, 48);
    const gguf_value *tokens;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_T_STRING, &tokens) == 1 && tokens->v.arr.n == 512);
    CHECK(tokens->v.arr.strs[1].len == 3 && memcmp(tokens->v.arr.strs[1].ptr, "<s>", 3) == 0);
    CHECK(copy_is_identical(f, path));
    gguf_close(f);
}

/* ---- llama.cpp's own reader on files we write (libggml-base.so of the oracle) ---- */
struct ll_gguf_init_params {
    bool no_alloc;
    void **ctx;
};
typedef void *(*ll_init_t)(const char *, struct ll_gguf_init_params);
typedef void (*ll_free_t)(void *);
typedef int64_t (*ll_i64_ctx_t)(const void *);
typedef int64_t (*ll_find_t)(const void *, const char *);
typedef int (*ll_type_t)(const void *, int64_t);
typedef uint32_t (*ll_u32_t)(const void *, int64_t);
typedef const char *(*ll_str_t)(const void *, int64_t);
typedef size_t (*ll_size_t)(const void *, int64_t);
typedef size_t (*ll_size_ctx_t)(const void *);
typedef const char *(*ll_arr_str_t)(const void *, int64_t, size_t);

static void *open_ggml_base(void) {
    const char *cands[4];
    char buf[3][1024];
    int n = 0;
    const char *e = getenv("LC_ORACLE_LIBDIR");
    if (e && *e) {
        snprintf(buf[0], sizeof buf[0], "%s/libggml-base.so", e);
        cands[n++] = buf[0];
    }
    snprintf(buf[1], sizeof buf[1], ".oracle/npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so");
    cands[n++] = buf[1];
    snprintf(buf[2], sizeof buf[2], "/tmp/nlc/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so");
    cands[n++] = buf[2];
    for (int i = 0; i < n; i++) {
        void *h = dlopen(cands[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    return NULL;
}

TEST(llamacpp_reads_our_files) {
    void *h = open_ggml_base();
    if (!h) SKIP("llama.cpp's libggml-base.so not found (tests/oracle/build-oracle.sh installs it)");
    ll_init_t init = (ll_init_t)dlsym(h, "gguf_init_from_file");
    ll_free_t fr = (ll_free_t)dlsym(h, "gguf_free");
    ll_i64_ctx_t n_kv = (ll_i64_ctx_t)dlsym(h, "gguf_get_n_kv"), n_t = (ll_i64_ctx_t)dlsym(h, "gguf_get_n_tensors");
    ll_find_t find_key = (ll_find_t)dlsym(h, "gguf_find_key"), find_t = (ll_find_t)dlsym(h, "gguf_find_tensor");
    ll_type_t kv_type = (ll_type_t)dlsym(h, "gguf_get_kv_type"), t_type = (ll_type_t)dlsym(h, "gguf_get_tensor_type");
    ll_u32_t get_u32 = (ll_u32_t)dlsym(h, "gguf_get_val_u32");
    ll_str_t get_str = (ll_str_t)dlsym(h, "gguf_get_val_str");
    ll_size_t t_off = (ll_size_t)dlsym(h, "gguf_get_tensor_offset"), arr_n = (ll_size_t)dlsym(h, "gguf_get_arr_n");
    ll_size_ctx_t data_off = (ll_size_ctx_t)dlsym(h, "gguf_get_data_offset");
    ll_arr_str_t arr_str = (ll_arr_str_t)dlsym(h, "gguf_get_arr_str");
    if (!init || !fr || !n_kv || !n_t || !find_key || !find_t || !kv_type || !t_type || !get_u32 || !get_str ||
        !t_off || !arr_n || !data_off || !arr_str) {
        dlclose(h);
        FAILF("libggml-base.so lacks a gguf_* symbol");
    }
    for (int align = 0; align <= 64; align += 64) {
        /* llama.cpp reads no nested arrays: write the file without them */
        gguf_writer *w = gguf_writer_new();
        if (align) CHECK_OK(gguf_writer_set_u32(w, "general.alignment", (uint32_t)align));
        CHECK_OK(gguf_writer_set_u32(w, "x.u32", 123456));
        CHECK_OK(gguf_writer_set_str(w, "x.str", "h\xc3\xa9llo"));
        CHECK_OK(gguf_writer_set_arr_str(w, "x.strs", strs, 4));
        float af[3] = {1, 2, 3};
        CHECK_OK(gguf_writer_set_arr(w, "x.f32", GGUF_T_FLOAT32, af, 3));
        uint8_t q[2 * 34], f16[2 * 7];
        memset(q, 1, sizeof q);
        memset(f16, 2, sizeof f16);
        CHECK_OK(gguf_writer_add_tensor(w, "q", LC_TYPE_Q8_0, 2, (const uint64_t[]){32, 2}, q, sizeof q));
        CHECK_OK(gguf_writer_add_tensor(w, "h", LC_TYPE_F16, 1, (const uint64_t[]){7}, f16, sizeof f16));
        const char *path = tmp_path("for-llamacpp.gguf");
        CHECK_OK(gguf_writer_write(w, path));
        gguf_writer_free(w);
        void *ctx = init(path, (struct ll_gguf_init_params){true, NULL});
        CHECKF(ctx, "llama.cpp's gguf_init_from_file rejected our file (alignment %d)", align);
        gguf_file *f = NULL;
        CHECK_OK(gguf_open(path, &f));
        CHECK_EQ_INT(n_kv(ctx), (int64_t)f->n_kv);
        CHECK_EQ_INT(n_t(ctx), 2);
        CHECK_EQ_INT(data_off(ctx), f->data_offset);
        int64_t k = find_key(ctx, "x.u32");
        CHECK(k >= 0 && kv_type(ctx, k) == GGUF_T_UINT32 && get_u32(ctx, k) == 123456);
        k = find_key(ctx, "x.str");
        CHECK(k >= 0 && strcmp(get_str(ctx, k), "h\xc3\xa9llo") == 0);
        k = find_key(ctx, "x.strs");
        CHECK(k >= 0 && arr_n(ctx, k) == 4 && strcmp(arr_str(ctx, k, 3), "tab\there") == 0);
        int64_t t = find_t(ctx, "h");
        CHECK(t >= 0 && t_type(ctx, t) == LC_TYPE_F16 && t_off(ctx, t) == gguf_find_tensor(f, "h")->offset);
        fr(ctx);
        gguf_close(f);
        unlink(path);
    }
    dlclose(h);
}

TEST(open_errors) {
    gguf_file *f = NULL;
    CHECK_EQ_INT(gguf_open(tmp_path("does-not-exist.gguf"), &f), LC_E_IO);
    CHECK(strstr(lc_last_error(), "does-not-exist.gguf"));
    CHECK_EQ_INT(gguf_open(tmpdir, &f), LC_E_IO);
    const char *empty = tmp_path("empty.gguf");
    CHECK(write_file(empty, "", 0) == 0);
    CHECK_EQ_INT(gguf_open(empty, &f), LC_E_FORMAT);
    CHECKF(message_ok(empty, 0, "empty"), "%s", lc_last_error());
    unlink(empty);
    CHECK(f == NULL);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/llamac-test-gguf-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(small_file_parses);
    RUN(every_truncation_rejected);
    RUN(malformed_corpus_rejected);
    RUN(odd_but_valid);
    RUN(writer_bytes_match_spec);
    RUN(roundtrip_all_types_align32);
    RUN(roundtrip_all_types_align64);
    RUN(writer_rejects_bad_input);
    RUN(writer_replaces_atomically);
    RUN(getters_check_types_and_ranges);
    RUN(value_format_truncates);
    RUN(parse_survives_allocation_failures);
    RUN(shared_files_read_and_copy_exactly);
    RUN(llamacpp_reads_our_files);
    RUN(open_errors);
    rmdir(tmpdir);
    return TEST_SUMMARY();
}
