/* gen_seeds.c - writes small valid inputs for the fuzz targets: GGUF files of every value type (nested arrays,
** alignments 1/32/64, tensors of several types) through the library's writer, and llama2.c checkpoints (v0 shared and
** unshared, v1) laid out as run.c / export.py do. Usage: gen_seeds GGUF_DIR LLAMA2C_DIR. Not part of libllamac.
*/
#include "../src/gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>

static int gguf_seed(const char *dir, int k) {
    char path[1024];
    snprintf(path, sizeof path, "%s/seed%d.gguf", dir, k);
    gguf_writer *w = gguf_writer_new();
    if (!w) return 1;
    if (k == 1) gguf_writer_set_u32(w, "general.alignment", 64);
    if (k == 2) gguf_writer_set_u32(w, "general.alignment", 1);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 2);
    gguf_writer_set_i32(w, "i32", -3);
    gguf_writer_set_u64(w, "u64", 1ull << 40);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_bool(w, "b", true);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "\xc3\xa9"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    float scores[5] = {0, 0, 0, -1.5f, -2.5f};
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, scores, 5);
    int32_t types[5] = {2, 3, 3, 1, 1};
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, 5);
    uint8_t u8s[3] = {1, 0, 1};
    gguf_writer_set_arr(w, "bools", GGUF_T_BOOL, u8s, 3);
    double f64[2] = {0.5, -1e300};
    gguf_writer_set_arr(w, "f64s", GGUF_T_FLOAT64, f64, 2);
    gguf_str xy[2] = {{"x", 1}, {"yz", 2}};
    uint8_t i16[4] = {1, 0, 0xff, 0xff};
    gguf_value items[2] = {{.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_STRING, .n = 2, .strs = xy}},
                           {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_INT16, .n = 2, .data = i16}}};
    gguf_value nested = {.type = GGUF_T_ARRAY, .v.arr = {.type = GGUF_T_ARRAY, .n = 2, .items = items}};
    gguf_writer_set_value(w, "nested", &nested);
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 13);
    gguf_writer_add_tensor(w, "token_embd.weight", LC_TYPE_F32, 2, (const uint64_t[]){4, 5}, data, 80);
    gguf_writer_add_tensor(w, "blk.0.attn_q.weight", LC_TYPE_Q8_0, 2, (const uint64_t[]){32, 2}, data, 68);
    gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", LC_TYPE_Q4_K, 1, (const uint64_t[]){256}, data, 144);
    gguf_writer_add_tensor(w, "h", LC_TYPE_F16, 3, (const uint64_t[]){3, 1, 2}, data, 12);
    gguf_writer_add_tensor(w, "empty", LC_TYPE_BF16, 2, (const uint64_t[]){0, 4}, data, 0);
    int r = gguf_writer_write(w, path);
    gguf_writer_free(w);
    if (r) fprintf(stderr, "%s\n", lc_last_error());
    return r != 0;
}

static int l2c_seed(const char *dir, int version, int shared) {
    enum { DIM = 8, HID = 12, NL = 2, NH = 2, NKV = 1, VOCAB = 5, SEQ = 4 };
    size_t hdr = version ? 256 : 28, floats = version ? 1040 : 1056;
    if (!shared) floats += VOCAB * DIM;
    size_t n = hdr + 4 * floats;
    unsigned char *p = calloc(1, n);
    int32_t cfg[7] = {DIM, HID, NL, NH, NKV, version || shared ? VOCAB : -VOCAB, SEQ};
    if (version) {
        uint32_t magic = 0x616b3432, v = 1;
        memcpy(p, &magic, 4);
        memcpy(p + 4, &v, 4);
        memcpy(p + 8, cfg, sizeof cfg);
        p[36] = (unsigned char)shared;
    } else {
        memcpy(p, cfg, sizeof cfg);
    }
    for (size_t i = 0; i < floats; i++) {
        float x = (float)i / 64;
        memcpy(p + hdr + 4 * i, &x, 4);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/v%d-%s.bin", dir, version, shared ? "shared" : "unshared");
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(p, 1, n, f) != n;
    if (f) fclose(f);
    free(p);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds GGUF_DIR LLAMA2C_DIR\n");
        return 2;
    }
    int bad = 0;
    for (int k = 0; k < 3; k++) bad |= gguf_seed(argv[1], k);
    bad |= l2c_seed(argv[2], 0, 1) | l2c_seed(argv[2], 0, 0) | l2c_seed(argv[2], 1, 1) | l2c_seed(argv[2], 1, 0);
    return bad;
}
