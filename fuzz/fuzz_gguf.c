/* fuzz_gguf.c - libFuzzer target for the GGUF reader (gguf_parse on the fuzzer's exact-size buffer).
**
** On success it walks every key (formatting each value, calling every typed getter, reading every array element) and
** touches every byte of every tensor, so ASan sees any pointer the reader got wrong; every value read must also be
** accepted by the writer (gguf_writer_set_value). On failure the message must name the file and an offset (or be an
** out-of-memory). Any violation traps, which libFuzzer reports as a crash. Build and run: fuzz/Makefile.
*/
#include "../src/gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>

static volatile uint64_t sink;

static void walk_value(const gguf_value *v, int depth) {
    if (v->type != GGUF_T_ARRAY) return;
    if (depth > GGUF_MAX_DEPTH) __builtin_trap();
    for (uint64_t i = 0; i < v->v.arr.n; i++) {
        switch (v->v.arr.type) {
        case GGUF_T_STRING:
            if (v->v.arr.strs[i].len) sink += (uint8_t)v->v.arr.strs[i].ptr[v->v.arr.strs[i].len - 1];
            break;
        case GGUF_T_ARRAY: walk_value(&v->v.arr.items[i], depth + 1); break;
        default: sink += (uint64_t)gguf_arr_i64(v, i) + (uint64_t)(gguf_arr_f64(v, i) != 0); break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    int r = gguf_parse(data, size, "fuzz.gguf", &f);
    if (r) {
        const char *m = lc_last_error();
        if (f) __builtin_trap();
        if (r != LC_E_NOMEM && (r != LC_E_FORMAT || !strstr(m, "fuzz.gguf: offset "))) {
            fprintf(stderr, "bad rejection (status %d): %s\n", r, m);
            __builtin_trap();
        }
        return 0;
    }
    char buf[512];
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        gguf_value_format(&kv->val, buf, sizeof buf, 16);
        if (strlen(buf) >= sizeof buf) __builtin_trap();
        gguf_value_format(&kv->val, buf, 5, 1);
        walk_value(&kv->val, 0);
        if (gguf_find(f, kv->key) != kv) __builtin_trap(); /* keys are unique */
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f32;
        bool b;
        gguf_str s;
        const gguf_value *a;
        sink += (uint64_t)(gguf_get_u32(f, kv->key, &u32) + gguf_get_i32(f, kv->key, &i32) +
                           gguf_get_u64(f, kv->key, &u64) + gguf_get_f32(f, kv->key, &f32) +
                           gguf_get_bool(f, kv->key, &b) + gguf_get_str(f, kv->key, &s) +
                           gguf_get_arr(f, kv->key, kv->val.type == GGUF_T_ARRAY ? kv->val.v.arr.type : GGUF_T_UINT8, &a));
        if (w && gguf_writer_set_value(w, kv->key, &kv->val) == LC_E_INVALID) {
            fprintf(stderr, "writer refuses a value the reader accepted: %s\n", lc_last_error());
            __builtin_trap();
        }
    }
    gguf_writer_free(w);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        if (gguf_find_tensor(f, t->name) != t || t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) __builtin_trap();
        if (p < f->base || (uint64_t)(p - f->base) + t->size > f->size) __builtin_trap();
        for (uint64_t k = 0; k < t->size; k++) sink += p[k];
    }
    gguf_close(f);
    return 0;
}
