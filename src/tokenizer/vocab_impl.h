/* vocab_impl.h - the inside of lc_vocab, shared by the files of src/tokenizer/ only.
**
** Pieces live in one blob (each NUL-terminated); an open-addressing hash table maps piece bytes to ids. The special
** list holds the ids llama.cpp splits out of raw text before BPE (CONTROL, USER_DEFINED, UNKNOWN), longest first.
*/
#ifndef LC_VOCAB_IMPL_H
#define LC_VOCAB_IMPL_H

#include "tokenizer.h"

#define LC_VOCAB_MAX_EOG 16
#define LC_MERGE_EMPTY UINT64_MAX
#define LC_BPE_CP_MAX 0x144 /* GPT-2's byte stand-ins are below this code point */

struct lc_vocab {
    char *name; /* owned, for messages */
    lc_vocab_kind kind;
    uint32_t n;
    char *blob;        /* owned: all pieces, each NUL-terminated */
    uint64_t *off;     /* [n] offset of each piece in blob */
    uint32_t *len;     /* [n] piece byte lengths */
    float *score;      /* [n] */
    uint8_t *type;     /* [n] LC_TOKTYPE_* */
    uint32_t max_len;  /* longest piece in bytes */
    int32_t *table;    /* [table_mask + 1] ids, -1 empty */
    uint32_t table_mask;
    int32_t byte_tok[256];
    int32_t *special; /* [n_special] ids tried in raw text, longest text first (ties: lower id first) */
    uint32_t n_special;
    int32_t eog[LC_VOCAB_MAX_EOG];
    uint32_t n_eog;
    int32_t bos, eos, unk, pad, eot, eom;
    bool add_bos, add_eos, add_space_prefix;
    bool spm_word_split; /* SPM: no piece has U+2581 after another character, so text may be cut before such marks */
    /* byte-level BPE only */
    lc_pretok pre;
    bool ignore_merges;          /* a word that is a piece as a whole is not merged (Llama 3) */
    uint64_t *merge_key;         /* [merge_mask + 1] (left id << 32 | right id), LC_MERGE_EMPTY when free */
    int32_t *merge_rank, *merge_id;
    uint32_t merge_mask;
    int32_t byte_sym[256];       /* id of the piece that is byte b's stand-in character */
    int16_t cp_byte[LC_BPE_CP_MAX]; /* stand-in code point -> byte, -1 if none */
};

static inline const char *lc__vocab_text(const lc_vocab *v, int32_t id) { return v->blob + v->off[id]; }

#endif /* LC_VOCAB_IMPL_H */
