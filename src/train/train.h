/* train.h - internals of src/train: tokenizer training (bpe_train.c). */
#ifndef LC_TRAIN_H
#define LC_TRAIN_H

#include "llamac.h"

#include "../base/base.h"

/* Writes a byte-level BPE vocabulary GGUF (see bpe_train.c). */
int lc__write_bpe_vocab(const char *path, const char *const *tokens, const int32_t *types, int32_t n,
                        const char *const *merges, int32_t n_merges, int32_t n_normal);

#endif /* LC_TRAIN_H */
