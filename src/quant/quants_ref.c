/* quants_ref.c - the reference functions of quants.h by GGML type id: quantize, dequantize, dot and vec-dot type.
**
** The vec-dot types are those of ggml-cpu.c's type_traits_cpu (what llama.cpp converts activations to before the dot
** product of each weight type), so results stay comparable with llama.cpp.
*/
#include "quants.h"

static const lc_quant_ref refs[LC_TYPE_COUNT] = {
    [LC_TYPE_Q4_0] = {lc__quantize_row_q4_0_ref, lc__dequantize_row_q4_0, lc__vec_dot_q4_0_ref, LC_TYPE_Q8_0},
    [LC_TYPE_Q4_1] = {lc__quantize_row_q4_1_ref, lc__dequantize_row_q4_1, lc__vec_dot_q4_1_ref, LC_TYPE_Q8_1},
    [LC_TYPE_Q5_0] = {lc__quantize_row_q5_0_ref, lc__dequantize_row_q5_0, lc__vec_dot_q5_0_ref, LC_TYPE_Q8_0},
    [LC_TYPE_Q5_1] = {lc__quantize_row_q5_1_ref, lc__dequantize_row_q5_1, lc__vec_dot_q5_1_ref, LC_TYPE_Q8_1},
    [LC_TYPE_Q8_1] = {lc__quantize_row_q8_1_ref, lc__dequantize_row_q8_1, NULL, -1},
    [LC_TYPE_Q2_K] = {lc__quantize_row_q2_K_ref, lc__dequantize_row_q2_K, lc__vec_dot_q2_K_ref, LC_TYPE_Q8_K},
    [LC_TYPE_Q3_K] = {lc__quantize_row_q3_K_ref, lc__dequantize_row_q3_K, lc__vec_dot_q3_K_ref, LC_TYPE_Q8_K},
    [LC_TYPE_Q4_K] = {lc__quantize_row_q4_K_ref, lc__dequantize_row_q4_K, lc__vec_dot_q4_K_ref, LC_TYPE_Q8_K},
    [LC_TYPE_Q5_K] = {lc__quantize_row_q5_K_ref, lc__dequantize_row_q5_K, lc__vec_dot_q5_K_ref, LC_TYPE_Q8_K},
    [LC_TYPE_Q6_K] = {lc__quantize_row_q6_K_ref, lc__dequantize_row_q6_K, lc__vec_dot_q6_K_ref, LC_TYPE_Q8_K},
    [LC_TYPE_Q8_K] = {lc__quantize_row_q8_K_ref, lc__dequantize_row_q8_K, NULL, -1},
    [LC_TYPE_IQ4_NL] = {lc__quantize_row_iq4_nl_ref, lc__dequantize_row_iq4_nl, lc__vec_dot_iq4_nl_ref, LC_TYPE_Q8_0},
    [LC_TYPE_IQ4_XS] = {lc__quantize_row_iq4_xs_ref, lc__dequantize_row_iq4_xs, lc__vec_dot_iq4_xs_ref, LC_TYPE_Q8_K},
};

const lc_quant_ref *lc__quant_ref(int type) {
    if (type < 0 || type >= LC_TYPE_COUNT || !refs[type].dequantize) return NULL;
    return &refs[type];
}

bool lc__quant_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const lc_quant_ref *r = lc__quant_ref(type);
    if (!r) return false;
    r->dequantize(src, dst, n);
    return true;
}

bool lc__quant_quantize_row(int type, const float *src, void *dst, int64_t n) {
    const lc_quant_ref *r = lc__quant_ref(type);
    if (!r) return false;
    r->quantize(src, dst, n);
    return true;
}
