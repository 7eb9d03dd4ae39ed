/* tokenizer.h - vocabularies and tokenizers (SentencePiece-style BPE of Llama 2 in spm.c; byte-level BPE with the
** Llama 3 pre-tokenizer in bpe.c), and the streaming detokenizer behind lc_detok_push (detok.c).
**
** A vocab is immutable after construction and shareable across threads. Piece strings are NUL-terminated copies
** owned by the vocab. Ids are int32 in [0, n); -1 means "none" (e.g. a vocabulary without a padding token).
** Every loader (GGUF tokenizer.ggml.*, llama2.c tokenizer.bin, SentencePiece tokenizer.model, Hugging Face
** tokenizer.json) ends in lc_vocab_from_arrays, the one constructor.
*/
#ifndef LC_TOKENIZER_H
#define LC_TOKENIZER_H

#include "../base/base.h"
#include "../gguf/gguf.h"

typedef struct lc_vocab lc_vocab;

/* Token types as in GGUF tokenizer.ggml.token_type (SentencePiece's). */
enum { LC_TOKTYPE_UNDEFINED = 0, LC_TOKTYPE_NORMAL = 1, LC_TOKTYPE_UNKNOWN = 2, LC_TOKTYPE_CONTROL = 3,
       LC_TOKTYPE_USER_DEFINED = 4, LC_TOKTYPE_UNUSED = 5, LC_TOKTYPE_BYTE = 6 };

/* Tokenizer algorithms. */
typedef enum lc_vocab_kind {
    LC_VOCAB_SPM = 1, /* tokenizer.ggml.model "llama": SentencePiece-style BPE over scores, byte fallback */
    LC_VOCAB_BPE = 2, /* tokenizer.ggml.model "gpt2": byte-level BPE over merge ranks (Llama 3) */
} lc_vocab_kind;

/* Pre-tokenizers of byte-level BPE vocabularies (tokenizer.ggml.pre). */
typedef enum lc_pretok {
    LC_PRETOK_NONE = 0,
    LC_PRETOK_LLAMA3 = 1, /* "llama-bpe" / "llama3" / "llama-v3": the Llama 3 regex */
} lc_pretok;

/* Everything a vocabulary is made of; borrowed by lc_vocab_from_arrays, which copies it. */
typedef struct lc_vocab_desc {
    const char *name;         /* for messages (file path); may be NULL */
    lc_vocab_kind kind;
    uint32_t n;               /* number of tokens */
    const char *const *piece; /* [n] piece texts (raw, '▁' for spaces in SPM vocabularies) */
    const uint32_t *piece_len;/* [n] byte lengths, or NULL: pieces are NUL-terminated */
    const float *score;       /* [n] or NULL (all 0) */
    const int32_t *type;      /* [n] LC_TOKTYPE_*, or NULL (all NORMAL) */
    int32_t bos, eos, unk, pad, eot, eom; /* -1: none */
    bool add_bos, add_eos;    /* what the model asks for by default (lc_vocab_add_bos) */
    bool add_space_prefix;    /* SPM: prepend a space to text that starts the input or follows a special token */
    /* BPE only: merges as "left right" (pieces cannot hold a space), rank = index; the pre-tokenizer */
    const char *const *merges;
    const uint32_t *merge_len; /* [n_merges] byte lengths, or NULL: NUL-terminated */
    uint32_t n_merges;
    lc_pretok pre;
    bool ignore_merges;
} lc_vocab_desc;

/* Builds a vocabulary from arrays (copied). Errors (LC_E_FORMAT, naming d->name and the token): a duplicate piece,
** an out-of-range special id. A type outside LC_TOKTYPE_* becomes UNDEFINED (as in llama.cpp). *out owned by the
** caller: lc_vocab_free. */
int lc_vocab_from_arrays(const lc_vocab_desc *d, lc_vocab **out);
/* From GGUF metadata (tokenizer.ggml.*). Errors name the file and the key. The caller checks lc_vocab_n against the
** model's n_vocab. */
int lc_vocab_from_gguf(const gguf_file *f, lc_vocab **out);
/* From a llama2.c tokenizer.bin; n_vocab is the model's vocabulary size (the file does not store it). Pieces are
** converted as llama.cpp's convert-llama2c-to-ggml does (' ' -> '▁', ids 0/1/2 are <unk>/<s>/</s>), so the result
** equals the vocabulary of the converted GGUF. */
int lc_vocab_from_llama2c(const char *path, uint32_t n_vocab, lc_vocab **out);
/* The same from a buffer (borrowed); name is used in messages. For tests and the fuzzer. */
int lc_vocab_from_llama2c_buf(const void *buf, size_t size, const char *name, uint32_t n_vocab, lc_vocab **out);
/* From a SentencePiece tokenizer.model (protobuf ModelProto: pieces, scores, types, trainer/normalizer flags). */
int lc_vocab_from_spm_model(const char *path, lc_vocab **out);
int lc_vocab_from_spm_model_buf(const void *buf, size_t size, const char *name, lc_vocab **out);
/* From a Hugging Face tokenizer.json and, optionally (NULL), its tokenizer_config.json (BOS/EOS rules). Byte-level
** BPE with the Llama 3 pre-tokenizer only; anything else is LC_E_UNSUPPORTED. */
int lc_vocab_from_hf_json(const char *tokenizer_json, const char *config_json, lc_vocab **out);
int lc_vocab_from_hf_json_buf(const char *tok_json, size_t tok_len, const char *config_json, size_t config_len,
                              const char *name, lc_vocab **out);
/* The same with the config's own name (config_name) in messages about it. */
int lc__vocab_from_hf_json_named(const char *tok_json, size_t tok_len, const char *name, const char *config_json,
                                 size_t config_len, const char *config_name, lc_vocab **out);
void lc_vocab_free(lc_vocab *v);

uint32_t lc_vocab_n(const lc_vocab *v);
lc_vocab_kind lc_vocab_get_kind(const lc_vocab *v);
int32_t lc_vocab_bos(const lc_vocab *v);
int32_t lc_vocab_eos(const lc_vocab *v);
int32_t lc_vocab_unk(const lc_vocab *v);
int32_t lc_vocab_pad(const lc_vocab *v);
int32_t lc_vocab_eot(const lc_vocab *v);
int32_t lc_vocab_eom(const lc_vocab *v);
bool lc_vocab_is_eog(const lc_vocab *v, int32_t id); /* eos, eot, eom and end-of-turn pieces such as <|eot_id|> */
bool lc_vocab_add_bos(const lc_vocab *v); /* whether BOS is added by default */
bool lc_vocab_add_eos(const lc_vocab *v); /* whether EOS is appended by default */
bool lc_vocab_add_space_prefix(const lc_vocab *v);
/* Piece text of id (NUL-terminated, valid while v lives), or NULL when out of range. */
const char *lc_vocab_piece(const lc_vocab *v, int32_t id);
uint32_t lc_vocab_piece_len(const lc_vocab *v, int32_t id); /* bytes; 0 when out of range */
float lc_vocab_score(const lc_vocab *v, int32_t id);
int lc_vocab_type(const lc_vocab *v, int32_t id); /* LC_TOKTYPE_*; LC_TOKTYPE_UNDEFINED when out of range */
/* Id of the piece with exactly these bytes, or -1. */
int32_t lc_vocab_find(const lc_vocab *v, const char *text, size_t len);
/* Id of the byte-fallback token of byte b (<0xNN>, else the one-byte piece), or -1. */
int32_t lc_vocab_byte_token(const lc_vocab *v, uint8_t b);

/* Same contract as lc_tokenize in llamac.h. LC_TOK_ADD_BOS prepends BOS (LC_E_UNSUPPORTED if the vocabulary has
** none); EOS is never appended. Invalid UTF-8 is accepted: bytes are grouped by the length their lead byte claims
** (as llama.cpp does) and what matches no piece becomes byte-fallback tokens. Allocates scratch per call; thread-safe. */
int lc_vocab_tokenize(const lc_vocab *v, const char *text, size_t len, unsigned flags, int32_t *ids, size_t cap,
                      size_t *n_out);
/* Same contract as lc_detok_push in llamac.h. If the output does not fit in cap bytes the call returns LC_E_RANGE
** and d is left unchanged (retry with a larger buffer); 4 * (longest piece + 1) bytes always suffice. */
int lc_vocab_detok_push(const lc_vocab *v, lc_detok *d, int32_t id, char *out, size_t cap);
/* Same contract as lc_tokenizer_token_bytes in llamac.h. */
int lc_vocab_token_bytes(const lc_vocab *v, int32_t id, char *out, size_t cap);

/* ---- internal, shared by the tokenizer files ---- */
/* SentencePiece-style BPE of one fragment (already escaped: spaces as '▁'), appending ids to *ids (grown with
** lc__realloc; *n used, *cap allocated). */
int lc__spm_encode(const lc_vocab *v, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap);
/* Appends id to that growable array. */
int lc__spm_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id);

/* Byte-level BPE of one fragment of raw text (pre-tokenized here), appending ids like lc__spm_encode. */
int lc__bpe_encode(const lc_vocab *v, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap);
/* GPT-2's byte <-> stand-in code point mapping. */
uint32_t lc__bpe_byte_to_cp(uint8_t b);
int lc__bpe_cp_to_byte(uint32_t cp); /* -1 if cp stands for no byte */
/* Adds merge (a, b) -> id with rank to v's table (sized by the caller); 0 if the pair was there already. */
int lc__merge_insert(lc_vocab *v, int32_t a, int32_t b, int32_t rank, int32_t id);
/* The Llama 3 pre-tokenizer alone: end offsets of the words of text (at most cap stored); returns the word count. */
size_t lc__llama3_split(const char *text, size_t len, size_t *ends, size_t cap);

/* lc_tokenizer_load on a buffer (borrowed): the format told by content (GGUF, JSON, llama2.c tokenizer.bin,
** SentencePiece protobuf); name in messages (a name ending in ".bin" is taken as a tokenizer.bin). config (may be
** NULL) is the tokenizer_config.json of a tokenizer.json, config_name its name. For lc_tokenizer_load and fuzzing. */
int lc__tokenizer_from_buf(const uint8_t *buf, size_t size, const char *name, const char *config, size_t config_len,
                           const char *config_name, lc_vocab **out);

/* Reads a whole file of at most max_size bytes into *buf (owned: lc__free). LC_E_IO / LC_E_FORMAT naming path. */
int lc__read_file(const char *path, uint8_t **buf, size_t *size, size_t max_size);

#endif /* LC_TOKENIZER_H */
