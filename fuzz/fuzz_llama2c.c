/* fuzz_llama2c.c - libFuzzer target for the llama2.c checkpoint reader (llama2c_parse on the fuzzer's buffer).
**
** On success it touches every byte of every tensor and checks the tensors tile the file without overlap; on failure
** the message must name the file and an offset. Violations trap. Build and run: fuzz/Makefile.
*/
#include "../src/gguf/gguf.h"

#include <stdio.h>

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    int r = llama2c_parse(data, size, "fuzz.bin", &f);
    if (r) {
        if (f) __builtin_trap();
        if (r != LC_E_NOMEM && (r != LC_E_FORMAT || !strstr(lc_last_error(), "fuzz.bin: offset "))) {
            fprintf(stderr, "bad rejection (status %d): %s\n", r, lc_last_error());
            __builtin_trap();
        }
        return 0;
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        if (t->type != LC_TYPE_F32 || t->size != t->ne[0] * t->ne[1] * 4) __builtin_trap();
        if ((uint64_t)(p - f->base) + t->size > f->size) __builtin_trap();
        for (uint64_t k = 0; k < t->size; k++) sink += p[k];
        total += t->size;
    }
    if (total > f->size) __builtin_trap();
    uint32_t u;
    if (gguf_get_u32(f, "llama.embedding_length", &u) != 1) __builtin_trap();
    gguf_close(f);
    return 0;
}
