/* lora_util.h - test helper: writes LoRA adapters in llama.cpp's GGUF format with random A and B for a base model
** file (test_lora.c, test_serve.c). Include once per test program. */
#ifndef LC_TESTS_LORA_UTIL_H
#define LC_TESTS_LORA_UTIL_H
#include "llamac.h"

#include "../src/gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t lu_rng = 88172645463325252ull;
static float lu_frand(void) {
    lu_rng ^= lu_rng << 13, lu_rng ^= lu_rng >> 7, lu_rng ^= lu_rng << 17;
    return (float)((double)(lu_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Writes an adapter for the model file base: the projections whose kind is in kinds ("qkvogud" letters; 'x' the
** output matrix), rank r, alpha (0: unset), A and B uniform in +-amp. bad: 0 valid, 1 wrong B shape, 2 no lora_b,
** 3 general.type "model", 4 an unknown tensor. */
static int write_adapter(const char *path, const char *base, const char *kinds, int r, float alpha, float amp, int bad) {
    gguf_file *f;
    if (gguf_open(base, &f)) return -1;
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.type", bad == 3 ? "model" : "adapter");
    gguf_writer_set_str(w, "adapter.type", "lora");
    if (alpha != 0) gguf_writer_set_f32(w, "adapter.lora.alpha", alpha);
    static const struct {
        char k;
        const char *name;
    } proj[] = {{'q', ".attn_q."}, {'k', ".attn_k."}, {'v', ".attn_v."}, {'o', ".attn_output."},
                {'g', ".ffn_gate."}, {'u', ".ffn_up."}, {'d', ".ffn_down."}};
    float *bufs[256];
    int nb = 0, rc = 0;
    for (uint64_t i = 0; i < f->n_tensors && !rc; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char kind = !strcmp(t->name, "output.weight") ? 'x' : 0;
        for (int k = 0; k < 7 && !kind; k++)
            if (strstr(t->name, proj[k].name)) kind = proj[k].k;
        const bool want = kind && strchr(kinds, kind);
        if (!want || t->n_dims != 2 || nb + 2 > 256) continue;
        const uint64_t n_in = t->ne[0], n_out = t->ne[1];
        float *a = malloc(sizeof *a * n_in * (size_t)r), *b = malloc(sizeof *b * (size_t)r * n_out);
        for (uint64_t j = 0; j < n_in * (uint64_t)r; j++) a[j] = amp * lu_frand();
        for (uint64_t j = 0; j < n_out * (uint64_t)r; j++) b[j] = amp * lu_frand();
        bufs[nb++] = a, bufs[nb++] = b;
        char name[256];
        const uint64_t ane[2] = {n_in, (uint64_t)r}, bne[2] = {(uint64_t)r + (bad == 1), n_out};
        snprintf(name, sizeof name, "%s.lora_a", t->name);
        rc = gguf_writer_add_tensor(w, name, LC_TYPE_F32, 2, ane, a, sizeof *a * n_in * (size_t)r);
        if (bad != 2) {
            snprintf(name, sizeof name, "%s.lora_b", t->name);
            const uint64_t bsz = sizeof *b * bne[0] * bne[1];
            float *bb = bad == 1 ? calloc(1, bsz) : b;
            if (bad == 1) bufs[nb++] = bb;
            if (!rc) rc = gguf_writer_add_tensor(w, name, LC_TYPE_F32, 2, bne, bb, bsz);
        }
    }
    if (bad == 4 && !rc) {
        static float z[8];
        const uint64_t ne[2] = {8, 1};
        rc = gguf_writer_add_tensor(w, "blk.0.attn_q.weight.lora_c", LC_TYPE_F32, 2, ne, z, sizeof z);
    }
    if (!rc) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    gguf_close(f);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

#endif
