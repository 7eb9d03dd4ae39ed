/* types.c - the GGML type table: name, elements per block, bytes per block, and whether llamac computes with it.
** Sizes are facts of the GGUF format (ggml-common.h block structs); `supported` grows as formats are implemented. */
#include "types.h"

#define T(id, nm, bs, ts, sup) [id] = {nm, bs, ts, sup}
static const lc_type_traits traits[LC_TYPE_COUNT] = {
    T(0, "F32", 1, 4, true),
    T(1, "F16", 1, 2, true),
    T(2, "Q4_0", 32, 18, true),
    T(3, "Q4_1", 32, 20, true),
    T(6, "Q5_0", 32, 22, true),
    T(7, "Q5_1", 32, 24, true),
    T(8, "Q8_0", 32, 34, true),
    T(9, "Q8_1", 32, 36, false),
    T(10, "Q2_K", 256, 84, true),
    T(11, "Q3_K", 256, 110, true),
    T(12, "Q4_K", 256, 144, true),
    T(13, "Q5_K", 256, 176, true),
    T(14, "Q6_K", 256, 210, true),
    T(15, "Q8_K", 256, 292, false),
    T(16, "IQ2_XXS", 256, 66, false),
    T(17, "IQ2_XS", 256, 74, false),
    T(18, "IQ3_XXS", 256, 98, false),
    T(19, "IQ1_S", 256, 50, false),
    T(20, "IQ4_NL", 32, 18, true),
    T(21, "IQ3_S", 256, 110, false),
    T(22, "IQ2_S", 256, 82, false),
    T(23, "IQ4_XS", 256, 136, true),
    T(24, "I8", 1, 1, false),
    T(25, "I16", 1, 2, false),
    T(26, "I32", 1, 4, false),
    T(27, "I64", 1, 8, false),
    T(28, "F64", 1, 8, false),
    T(29, "IQ1_M", 256, 56, false),
    T(30, "BF16", 1, 2, true),
    T(34, "TQ1_0", 256, 54, false),
    T(35, "TQ2_0", 256, 66, false),
    T(39, "MXFP4", 32, 17, false),
    T(40, "NVFP4", 64, 36, false),
    T(41, "Q1_0", 128, 18, false),
    T(42, "Q2_0", 64, 18, false),
};
#undef T

static const lc_type_traits unknown = {NULL, 0, 0, false};

const lc_type_traits *lc_type_traits_of(int type) {
    if (type < 0 || type >= LC_TYPE_COUNT || !traits[type].name) return &unknown;
    return &traits[type];
}

const char *lc_type_name(int type) { return lc_type_traits_of(type)->name; }

bool lc_type_row_bytes(int type, uint64_t n, uint64_t *out) {
    const lc_type_traits *t = lc_type_traits_of(type);
    if (!t->name || n % t->blck_size) return false;
    return lc__mul_ok(n / t->blck_size, t->type_size, out);
}
