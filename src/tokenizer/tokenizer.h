/* tokenizer.h - vocabularies and tokenizers (SentencePiece-style BPE of Llama 2; byte-level BPE of Llama 3 later),
** and the streaming detokenizer behind lc_detok_push.
**
** A vocab is immutable after construction and shareable across threads. Piece strings are NUL-terminated copies
** owned by the vocab.
*/
#ifndef LC_TOKENIZER_H
#define LC_TOKENIZER_H

#include "../base/base.h"
#include "../gguf/gguf.h"

typedef struct lc_vocab lc_vocab;

/* Token types as in GGUF tokenizer.ggml.token_type (SentencePiece's). */
enum { LC_TOKTYPE_UNDEFINED = 0, LC_TOKTYPE_NORMAL = 1, LC_TOKTYPE_UNKNOWN = 2, LC_TOKTYPE_CONTROL = 3,
       LC_TOKTYPE_USER_DEFINED = 4, LC_TOKTYPE_UNUSED = 5, LC_TOKTYPE_BYTE = 6 };

/* From GGUF metadata (tokenizer.ggml.*). Errors name the file and the key. */
int lc_vocab_from_gguf(const gguf_file *f, lc_vocab **out);
/* From a llama2.c tokenizer.bin; n_vocab is the model's vocabulary size (the file does not store it). */
int lc_vocab_from_llama2c(const char *path, uint32_t n_vocab, lc_vocab **out);
void lc_vocab_free(lc_vocab *v);

uint32_t lc_vocab_n(const lc_vocab *v);
int32_t lc_vocab_bos(const lc_vocab *v);
int32_t lc_vocab_eos(const lc_vocab *v);
bool lc_vocab_is_eog(const lc_vocab *v, int32_t id);
bool lc_vocab_add_bos(const lc_vocab *v); /* whether BOS is added by default */
const char *lc_vocab_piece(const lc_vocab *v, int32_t id);

/* Same contract as lc_tokenize in llamac.h. */
int lc_vocab_tokenize(const lc_vocab *v, const char *text, size_t len, unsigned flags, int32_t *ids, size_t cap,
                      size_t *n_out);
/* Same contract as lc_detok_push in llamac.h. */
int lc_vocab_detok_push(const lc_vocab *v, lc_detok *d, int32_t id, char *out, size_t cap);

#endif /* LC_TOKENIZER_H */
