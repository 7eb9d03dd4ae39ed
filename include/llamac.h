/* llamac.h - the one public header of libllamac.
**
** llamac runs Meta's Llama models (GGUF files, llama2.c checkpoints) on the CPU. Front ends (the `llamac` tool, the
** server) use only this header. Conventions: every fallible function returns 0 (LC_OK) or a negative LC_E_* status
** and sets a thread-local message readable with lc_last_error(); results come back through out-parameters; freeing
** NULL is a no-op; a model is immutable after loading and may be shared by threads; a context is used by one thread
** at a time.
*/
#ifndef LLAMAC_H
#define LLAMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LC_VERSION "0.1.0"

/* ---- status codes ------------------------------------------------------------------------------------------- */
enum {
    LC_OK = 0,
    LC_E_IO = -1,          /* open/read/write/mmap failed */
    LC_E_FORMAT = -2,      /* malformed file or input */
    LC_E_NOMEM = -3,       /* allocation failed or a size is beyond a sane cap */
    LC_E_INVALID = -4,     /* bad argument from the caller */
    LC_E_UNSUPPORTED = -5, /* valid but not implemented (e.g. a weight type) */
    LC_E_RANGE = -6,       /* index, position or size out of range (e.g. context full) */
};

/* Static name of a status code ("format error", ...). */
const char *lc_strerror(int status);
/* The calling thread's last error message (what, where, what to do). Valid until the next failing call on this
** thread. Never NULL. */
const char *lc_last_error(void);

/* ---- tensor / weight types: the numeric ids are GGML's, as stored in GGUF files ----------------------------- */
typedef enum lc_type {
    LC_TYPE_F32 = 0,
    LC_TYPE_F16 = 1,
    LC_TYPE_Q4_0 = 2,
    LC_TYPE_Q4_1 = 3,
    LC_TYPE_Q5_0 = 6,
    LC_TYPE_Q5_1 = 7,
    LC_TYPE_Q8_0 = 8,
    LC_TYPE_Q8_1 = 9,
    LC_TYPE_Q2_K = 10,
    LC_TYPE_Q3_K = 11,
    LC_TYPE_Q4_K = 12,
    LC_TYPE_Q5_K = 13,
    LC_TYPE_Q6_K = 14,
    LC_TYPE_Q8_K = 15,
    LC_TYPE_IQ4_NL = 20,
    LC_TYPE_IQ4_XS = 23,
    LC_TYPE_BF16 = 30,
    LC_TYPE_COUNT = 43, /* one past the largest id GGML defines today */
} lc_type;

/* Name of a type ("Q8_0"), or NULL for an id that is not a known GGML type. */
const char *lc_type_name(int type);

/* ---- model -------------------------------------------------------------------------------------------------- */
typedef struct lc_model lc_model;
typedef struct lc_context lc_context;

typedef struct lc_model_params {
    const char *tokenizer_path; /* llama2.c checkpoints only: tokenizer.bin (NULL: "tokenizer.bin" beside it) */
    void (*progress)(float fraction, void *user); /* optional load progress, 0..1 */
    void *progress_user;
    bool metadata_only; /* read metadata and tensor infos only (any GGUF, e.g. for `info`); no context can be made */
    bool use_mmap;      /* map the file instead of reading it into memory backed by huge pages (the default when it
                        ** fits in the available memory; decode streams the weights 4-10% faster, and Q4_0
                        ** matrices are repacked for the CPU's kernels): loads at once, uses the weights as stored,
                        ** and lets the kernel evict weights under memory pressure */
} lc_model_params;

lc_model_params lc_model_default_params(void);

/* Loads a GGUF file (v2/v3) or a llama2.c checkpoint (.bin, with its tokenizer.bin). The weights are read into
** anonymous memory (huge pages) or, with use_mmap or when they do not fit in the available memory, mapped.
** *out is owned by the caller; free with lc_model_free. */
int lc_model_load(const char *path, const lc_model_params *params, lc_model **out);
void lc_model_free(lc_model *m);

typedef struct lc_hparams {
    uint32_t n_vocab, n_ctx_train, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot;
    float rope_theta, rms_eps;
    bool has_rope_freqs; /* rope_freqs.weight present (Llama 3.1/3.2 RoPE scaling) */
    bool tied_output;    /* output.weight absent: token_embd is used for the logits */
    int ftype;           /* dominant weight type (lc_type) */
} lc_hparams;

const lc_hparams *lc_model_hparams(const lc_model *m);
uint64_t lc_model_size_bytes(const lc_model *m);   /* bytes of all tensors */
uint64_t lc_model_n_params(const lc_model *m);
/* Short description, e.g. "llama 1B F16", written into buf (always NUL-terminated). */
void lc_model_desc(const lc_model *m, char *buf, size_t cap);

/* Metadata, for `llamac info`. Index i in [0, lc_model_meta_count). The value is rendered as text (arrays
** abbreviated after max_items items) into buf, always NUL-terminated. Returns the key (valid while m lives). */
size_t lc_model_meta_count(const lc_model *m);
const char *lc_model_meta_get(const lc_model *m, size_t i, char *buf, size_t cap, size_t max_items);
/* Metadata string value by key, or NULL. Copied into a thread-local buffer (at most 4095 bytes): valid until the
** next call on this thread. */
const char *lc_model_meta_str(const lc_model *m, const char *key);

typedef struct lc_tensor_info {
    const char *name; /* valid while m lives */
    int type;         /* lc_type */
    uint32_t n_dims;
    uint64_t ne[4]; /* ne[0] is the contiguous (row) dimension, as in GGML */
    uint64_t n_bytes;
    uint64_t offset; /* byte offset of the data in the file */
} lc_tensor_info;

size_t lc_model_tensor_count(const lc_model *m);
int lc_model_tensor_get(const lc_model *m, size_t i, lc_tensor_info *out);

/* ---- tokens ------------------------------------------------------------------------------------------------- */
enum {
    LC_TOK_ADD_BOS = 1u << 0,       /* prepend BOS */
    LC_TOK_PARSE_SPECIAL = 1u << 1, /* control tokens written in the text become single ids */
};

/* Tokenizes len bytes of UTF-8 text. Writes at most cap ids; *n_out is the number of ids the whole text needs (so
** a call with cap 0 sizes the buffer). Returns LC_E_RANGE if cap was too small. */
int lc_tokenize(const lc_model *m, const char *text, size_t len, unsigned flags, int32_t *ids, size_t cap,
                size_t *n_out);
int32_t lc_token_bos(const lc_model *m);
int32_t lc_token_eos(const lc_model *m);
bool lc_token_is_eog(const lc_model *m, int32_t id); /* end of generation: eos, eot, eom */
/* Whether the model's tokenizer adds BOS to a text by default (tokenizer.ggml.add_bos_token, else the tokenizer
** family's rule). Pass LC_TOK_ADD_BOS to lc_tokenize when true. */
bool lc_token_add_bos(const lc_model *m);
/* The raw piece text of a token as stored in the vocabulary (NUL-terminated, valid while m lives), or NULL. */
const char *lc_token_piece(const lc_model *m, int32_t id);

/* Streaming detokenizer: turns ids into UTF-8 bytes and never splits a character; an invalid sequence comes out as
** U+FFFD. Plain struct, caller-owned; zero it (or call lc_detok_init) before use. lc_detok_init starts a text: the
** leading space of the first shown piece is dropped, as SentencePiece decodes (so detok(tokenize(s)) == s); a zeroed
** struct continues a text (e.g. after an echoed prompt) and drops nothing. */
typedef struct lc_detok {
    unsigned char pending[8];
    int n_pending;
    bool first;          /* next piece is the first of the text (SentencePiece drops its leading space) */
    bool show_special;   /* render control tokens as their text */
} lc_detok;

void lc_detok_init(lc_detok *d, bool show_special);
/* Appends the bytes of token id to out (at most cap bytes, NUL-terminated when room). Returns the number of bytes
** written, or a negative status. Bytes of an incomplete UTF-8 character are held back until it completes. */
int lc_detok_push(const lc_model *m, lc_detok *d, int32_t id, char *out, size_t cap);
/* Flushes held bytes (as U+FFFD if incomplete). Same return convention. */
int lc_detok_flush(lc_detok *d, char *out, size_t cap);

/* ---- standalone tokenizers ---------------------------------------------------------------------------------- */
/* A vocabulary with its rules, without a model: opaque, immutable, shareable across threads. A loaded model has
** one too (lc_model_tokenizer), so one code path serves both. */
typedef struct lc_vocab lc_tokenizer;

/* Loads a tokenizer from path, whose format is told by its content: a GGUF file (only the tokenizer.ggml.* metadata
** is read, so a vocab-only GGUF works), a Hugging Face tokenizer.json (byte-level BPE with Llama 3's pre-tokenizer),
** a SentencePiece tokenizer.model, or a llama2.c tokenizer.bin (its token count is the number of records in it).
** config_path is for tokenizer.json only: its tokenizer_config.json (BOS/EOS rules); NULL looks for one beside path
** (path with "tokenizer.json" replaced by "tokenizer_config.json", else tokenizer_config.json in its directory) and
** uses it if present; "" uses none. Errors name the file. *out owned by the caller: lc_tokenizer_free. */
int lc_tokenizer_load(const char *path, const char *config_path, lc_tokenizer **out);
void lc_tokenizer_free(lc_tokenizer *t);
/* The tokenizer of model m (borrowed: valid while m lives), or NULL if m has none. */
const lc_tokenizer *lc_model_tokenizer(const lc_model *m);

/* lc_tokenize and lc_detok_push on a tokenizer; same contracts. */
int lc_tokenizer_tokenize(const lc_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *ids,
                          size_t cap, size_t *n_out);
int lc_tokenizer_detok_push(const lc_tokenizer *t, lc_detok *d, int32_t id, char *out, size_t cap);
uint32_t lc_tokenizer_n_vocab(const lc_tokenizer *t);
/* Whether text gets BOS by default, as the tokenizer's configuration says: GGUF tokenizer.ggml.add_bos_token, else
** llama.cpp's default for the type (SentencePiece and Llama 3: yes); tokenizer_config.json add_bos_token, else the
** post-processor's template; tokenizer.model and tokenizer.bin (no configuration): yes, as Hugging Face's
** LlamaTokenizer. */
bool lc_tokenizer_add_bos(const lc_tokenizer *t);
int32_t lc_tokenizer_bos(const lc_tokenizer *t); /* -1: none */
int32_t lc_tokenizer_eos(const lc_tokenizer *t); /* -1: none */
bool lc_tokenizer_is_eog(const lc_tokenizer *t, int32_t id);
/* Raw piece of id as the vocabulary stores it (valid while t lives; *len its bytes, may be NULL), or NULL when id is
** out of range. */
const char *lc_tokenizer_piece(const lc_tokenizer *t, int32_t id, size_t *len);
/* The bytes token id stands for on its own, as llama.cpp's token_to_piece: no UTF-8 check (a byte token gives its
** byte), no leading space dropped, control tokens as their text. Writes at most cap bytes (NUL-terminated when room)
** and returns the count, or LC_E_RANGE when it does not fit (4 * (piece length + 1) bytes always suffice). */
int lc_tokenizer_token_bytes(const lc_tokenizer *t, int32_t id, char *out, size_t cap);
/* Whether id is a control or unknown token (<s>, </s>, <unk>, <|eot_id|>, ...): parsed from text only with
** LC_TOK_PARSE_SPECIAL, hidden by the detokenizer unless show_special. */
bool lc_tokenizer_is_control(const lc_tokenizer *t, int32_t id);

/* ---- context, batch, decode --------------------------------------------------------------------------------- */
typedef struct lc_context_params {
    uint32_t n_ctx;     /* KV cache cells (0: the model's trained context, capped at 4096) */
    uint32_t n_batch;   /* max tokens per lc_decode call (0: 512) */
    uint32_t n_seq_max; /* max distinct sequence ids (0: 1) */
    int n_threads;      /* worker threads including the caller (<= 0: all cores) */
    int kv_type;        /* LC_TYPE_F16 (as llama.cpp; lc_context_default_params sets it) or LC_TYPE_F32 (0) */
} lc_context_params;

lc_context_params lc_context_default_params(void);
int lc_context_new(lc_model *m, const lc_context_params *params, lc_context **out);
void lc_context_free(lc_context *c);
uint32_t lc_context_n_ctx(const lc_context *c);
/* Memory the context holds: *kv_bytes the KV cache, *scratch_bytes the activations and buffers of a batch (both may
** be NULL). With the model's tensor bytes, what the process needs resident to run. */
void lc_context_memory(const lc_context *c, uint64_t *kv_bytes, uint64_t *scratch_bytes);

/* A batch of tokens: token i is at position pos[i] in sequence seq_id[i]; logits[i] != 0 asks for its logits.
** Arrays are borrowed for the duration of lc_decode. seq_id and logits may be NULL (all sequence 0; logits for the
** last token only). pos may be NULL (each sequence continues after its last cached position). */
typedef struct lc_batch {
    int32_t n_tokens;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq_id;
    const int8_t *logits;
} lc_batch;

/* Runs the model on the batch, appending its tokens to the KV cache. */
int lc_decode(lc_context *c, const lc_batch *b);
/* Logits (n_vocab floats) of batch row i of the last lc_decode, or NULL if that row did not ask for logits. Valid
** until the next lc_decode on c. */
const float *lc_get_logits(const lc_context *c, int32_t i);
/* Removes cached positions [p0, p1) of sequence seq (seq < 0: every sequence; p1 < 0: to the end). */
void lc_kv_remove(lc_context *c, int32_t seq, int32_t p0, int32_t p1);
/* Number of cached positions of sequence seq (its next position). */
int32_t lc_kv_seq_len(const lc_context *c, int32_t seq);
/* Copies the cached positions [p0, p1) of sequence src into sequence dst (p1 < 0: to the end), into free cells and
** in src's order, so dst then continues exactly as if it had decoded those tokens itself (same logits, bit for bit):
** a shared prompt prefix is computed once. dst must hold none of those positions. Returns the number of positions
** copied, or a negative lc_status (invalid ids or range, or not enough free cells: then nothing is copied). */
int32_t lc_kv_copy(lc_context *c, int32_t src, int32_t dst, int32_t p0, int32_t p1);

/* ---- LoRA adapters ------------------------------------------------------------------------------------------
** GGUF LoRA adapters as llama.cpp loads them (general.type "adapter", adapter.type "lora", adapter.lora.alpha,
** "<weight>.lora_a" [n_in, r] and "<weight>.lora_b" [r, n_out] for attention/FFN projections and output.weight). */
typedef struct lc_lora lc_lora;
/* Loads an adapter for model m (checked against m's weights: names and shapes; errors name the file and tensor).
** *out owned by the caller (lc_lora_free), after every context using it. */
int lc_lora_load(const lc_model *m, const char *path, lc_lora **out);
void lc_lora_free(lc_lora *a);
/* The adapters applied by c's next decodes (replacing earlier ones; n = 0: none), each with its scale (scales
** NULL: 1). Each projection becomes W x + scale * alpha/r * B(A x) (scale alone when alpha is 0); scale 0 gives the
** base model exactly. Cached KV entries are not recomputed: clear the cache when the adapters change. */
int lc_context_set_lora(lc_context *c, lc_lora *const *adapters, const float *scales, size_t n);

/* ---- sampling ----------------------------------------------------------------------------------------------- */
#define LC_SEED_RANDOM UINT64_MAX /* lc_sampler_params.seed: a different seed on every run (llama.cpp's default) */

typedef struct lc_sampler_params {
    float temp;           /* <= 0: greedy */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;/* tokens looked back for the penalty (-1: all seen) */
    uint64_t seed;
} lc_sampler_params;

typedef struct lc_sampler lc_sampler;

lc_sampler_params lc_sampler_default_params(void);
int lc_sampler_new(const lc_sampler_params *p, int32_t n_vocab, lc_sampler **out);
void lc_sampler_free(lc_sampler *s);
/* Picks a token from logits[n_vocab] (not modified). */
int32_t lc_sampler_sample(lc_sampler *s, const float *logits);
/* Records a token as seen (prompt and generated), for the repetition penalty. */
void lc_sampler_accept(lc_sampler *s, int32_t id);
void lc_sampler_reset(lc_sampler *s);

/* ---- synthetic models (random weights, for tests, demos and benchmarks) ------------------------------------- */
typedef struct lc_synth_params {
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train;
    uint32_t head_dim;     /* 0: n_embd / n_head */
    float rope_theta, rms_eps;
    bool tied_output;      /* no output.weight: token_embd serves as the output matrix */
    bool rope_freqs;       /* write a Llama 3.1-style rope_freqs.weight (factor 8, low 1, high 4, orig ctx 8192) */
    int wtype;             /* type of the 2-D weight matrices: F32, F16, BF16, Q8_0; norms stay F32 */
    uint64_t seed;
    float w_std;           /* weight standard deviation (0: 0.02) */
    const char *name;      /* general.name (NULL: "llamac-random") */
} lc_synth_params;

/* Writes a Llama-architecture GGUF with random weights (a normal distribution from the seed, norms 1 + noise) and a
** small byte-level SentencePiece-style vocabulary, so that every other tool can run on it. Deterministic for a given
** params. The file is written to a temporary name and renamed. */
int lc_synth_write(const char *path, const lc_synth_params *p);
lc_synth_params lc_synth_default_params(void);

/* ---- quantizing model files (`llamac quantize`) ------------------------------------------------------------ */
/* File types: the ids GGUF stores in general.file_type (llama.cpp's llama_ftype). Each names a recipe that picks a
** type per tensor (the _S/_M/_L mixes raise some tensors to more bits), as llama-quantize does without an importance
** matrix. */
typedef enum lc_ftype {
    LC_FTYPE_ALL_F32 = 0,
    LC_FTYPE_F16 = 1,
    LC_FTYPE_Q4_0 = 2,
    LC_FTYPE_Q4_1 = 3,
    LC_FTYPE_Q8_0 = 7,
    LC_FTYPE_Q5_0 = 8,
    LC_FTYPE_Q5_1 = 9,
    LC_FTYPE_Q2_K = 10,
    LC_FTYPE_Q3_K_S = 11,
    LC_FTYPE_Q3_K_M = 12,
    LC_FTYPE_Q3_K_L = 13,
    LC_FTYPE_Q4_K_S = 14,
    LC_FTYPE_Q4_K_M = 15,
    LC_FTYPE_Q5_K_S = 16,
    LC_FTYPE_Q5_K_M = 17,
    LC_FTYPE_Q6_K = 18,
    LC_FTYPE_IQ4_NL = 25,
    LC_FTYPE_IQ4_XS = 30,
    LC_FTYPE_BF16 = 32,
} lc_ftype;

/* Name of a file type llamac can write ("Q4_K_M", "F32", ...), or NULL. */
const char *lc_ftype_name(int ftype);
/* File type from its name, case-insensitive, with llama-quantize's aliases Q3_K, Q4_K, Q5_K (= the _M mixes);
** -1 when unknown. */
int lc_ftype_from_name(const char *name);

/* One tensor of a quantization plan. */
typedef struct lc_quantize_tensor {
    const char *name;      /* valid during the callback */
    int type_in, type_out; /* lc_type; equal when the tensor is copied unchanged */
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t bytes_in, bytes_out;
    bool fallback; /* the recipe's type does not divide the row length; type_out is its fallback */
    uint64_t index, count; /* position in the plan (from 0) and number of tensors */
} lc_quantize_tensor;

typedef struct lc_quantize_params {
    int ftype;             /* lc_ftype (lc_quantize_default_params: LC_FTYPE_Q8_0) */
    int n_threads;         /* threads including the caller (<= 0: all cores) */
    bool dry_run;          /* plan only: no tensor data is read, nothing is written (out_path may be NULL) */
    bool allow_requantize; /* accept input tensors that are already quantized (quality loss), as llama-quantize */
    /* Optional, called on the calling thread: the fraction of the tensor bytes converted so far (0..1). */
    void (*progress)(float fraction, void *user);
    void *progress_user;
    /* Optional: each tensor of the plan, in output order, before any data is converted (also in a dry run). */
    void (*on_tensor)(const lc_quantize_tensor *t, void *user);
    void *on_tensor_user;
} lc_quantize_params;

typedef struct lc_quantize_result {
    uint64_t n_tensors, n_elements;
    uint64_t bytes_in, bytes_out; /* tensor data, without metadata and padding */
    uint64_t file_bytes;          /* size of the written file (a dry run: what it would be) */
    uint32_t n_fallback;          /* tensors whose recipe type did not fit their rows */
} lc_quantize_result;

lc_quantize_params lc_quantize_default_params(void);
/* Reads the GGUF in_path and writes out_path with its tensors converted by the recipe of p->ftype: 2-D weights take
** the recipe's types, 1-D tensors and norms are copied unchanged; every metadata key is copied (tokenizer, chat
** template, ...), general.quantization_version and general.file_type are set as llama-quantize sets them. Tensor
** data is byte-identical to llama-quantize's for the same input and type (no importance matrix). out_path is written
** through a temporary file and a rename, so it is never half-written; it must not be in_path (also checked by
** device and inode). Multithreaded by rows. res (may be NULL) gets sizes. Returns LC_E_INVALID (same file, bad
** ftype, already-quantized input without allow_requantize), LC_E_UNSUPPORTED (a tensor type llamac cannot convert,
** split files), LC_E_FORMAT (malformed input or NaN/Inf in a tensor), LC_E_IO, LC_E_NOMEM. */
int lc_quantize_file(const char *in_path, const char *out_path, const lc_quantize_params *p, lc_quantize_result *res);

/* ---- chat templates (src/chat) ------------------------------------------------------------------------------
** A Jinja engine for the subset chat templates use, rendering byte for byte as Python's Jinja2 does with Hugging
** Face's settings (trim_blocks, lstrip_blocks, loop controls, tojson = json.dumps(ensure_ascii=False), a
** raise_exception global). Errors (syntax, an unsupported construct, raise_exception, what Jinja2 refuses at render
** time) return LC_E_FORMAT with the message "<name>:<line>:<col>: <what>". */
typedef struct lc_template lc_template;

/* Parses a template (name is used in messages: a file name, "tokenizer.chat_template"). *out owned by the caller:
** lc_template_free. A parsed template is immutable: renders may run on several threads at once. */
int lc_template_parse(const char *src, size_t len, const char *name, lc_template **out);
void lc_template_free(lc_template *t);
/* Renders t with the variables of vars_json, a JSON object (e.g. {"messages": [...], "tools": null,
** "add_generation_prompt": true, "bos_token": "<s>"}). *out: NUL-terminated, *out_len bytes (out_len may be NULL),
** freed with lc_free. Bad vars_json: LC_E_INVALID naming the byte offset. */
int lc_template_render(const lc_template *t, const char *vars_json, size_t vars_len, char **out, size_t *out_len);
/* The chat template of m: its tokenizer.chat_template (*builtin = false), or, when it has none, llamac's template
** for its family (Llama 3.x for a byte-level BPE vocabulary, Llama 2 for SentencePiece) with *builtin = true (the
** caller should warn). The text stays valid while m lives. LC_E_UNSUPPORTED: no vocabulary to tell the family. */
int lc_model_chat_template(const lc_model *m, const char **src, size_t *len, bool *builtin);
/* Frees memory the library returned (rendered text). NULL is a no-op. */
void lc_free(void *p);

/* ---- tool calls (Llama 3.1) ---------------------------------------------------------------------------------
** Finds tool calls in generated text while it streams: feed the text of each token as it is generated (a control
** token such as <|python_tag|> as its text), show what lc_toolcall_feed returns, and at the end of the answer call
** lc_toolcall_finish for the calls and any text that was held back but turned out not to be one. Recognised (Meta's
** Llama 3.1 prompt format): the whole answer as JSON {"name": ..., "parameters": {...}} ("arguments" accepted, also
** as a JSON string; several objects separated by ';' tolerated), possibly after <|python_tag|>;
** <function=NAME>{...}</function>; <|python_tag|>tool.call(key="value", n=3, flag=True) for built-in tools
** (brave_search, wolfram_alpha, ...); any other text after <|python_tag|> is code for the ipython environment. A
** python tag after some text starts a call there (the text before it is shown). <|eom_id|> or <|eot_id|> written as
** text ends the answer (what follows is dropped). Guarantees: the text shown during and after the answer is always a
** prefix of the answer (never a byte of a recognised call); an answer without a call is shown whole; malformed calls
** are shown as text, with lc_toolcall_note saying why. A parser is used by one thread at a time. */
enum {
    LC_TOOL_CUSTOM = 0,  /* a function the application defined: {"name": ..., "parameters": {...}} */
    LC_TOOL_BUILTIN = 1, /* <|python_tag|>name.call(k="v", ...): brave_search, wolfram_alpha, ... */
    LC_TOOL_CODE = 2,    /* <|python_tag|> then code: name "code_interpreter", arguments {"code": "..."} */
};
enum { LC_TOOL_END_NONE = 0, LC_TOOL_END_EOM = 1, LC_TOOL_END_EOT = 2 }; /* end marker seen in the text */
typedef struct lc_tool_call {
    int kind;              /* LC_TOOL_* */
    const char *name;      /* the function or tool */
    const char *arguments; /* a JSON object, formatted as Python's json.dumps (", " and ": ") */
    const char *code;      /* LC_TOOL_CODE: the code itself (also in arguments); else NULL */
} lc_tool_call;
typedef struct lc_toolcall_parser lc_toolcall_parser;
/* *out owned by the caller: lc_toolcall_parser_free (NULL is a no-op). LC_E_NOMEM. */
int lc_toolcall_parser_new(lc_toolcall_parser **out);
void lc_toolcall_parser_free(lc_toolcall_parser *p);
/* Starts a new answer (forgets the text, the calls and the note). */
void lc_toolcall_reset(lc_toolcall_parser *p);
/* Adds n bytes of generated text; *show (*show_n bytes, valid until the next call on p) is what may be displayed
** now. Text after an end marker is ignored. LC_E_NOMEM. */
int lc_toolcall_feed(lc_toolcall_parser *p, const char *text, size_t n, const char **show, size_t *show_n);
/* Ends the answer: *show is held text that was not a call, *calls the calls found (*n_calls, 0 when none), valid
** until the next reset, finish or free. LC_E_NOMEM. */
int lc_toolcall_finish(lc_toolcall_parser *p, const char **show, size_t *show_n, const lc_tool_call **calls,
                       size_t *n_calls);
/* The end marker the text held (LC_TOOL_END_*): <|eom_id|> means the model waits for a tool's result. */
int lc_toolcall_end_marker(const lc_toolcall_parser *p);
/* Why held text was shown after all ("not a tool call (invalid JSON at byte 12 of the answer)..."), or NULL. Valid
** until the next call on p. */
const char *lc_toolcall_note(const lc_toolcall_parser *p);

/* ---- chat sessions (src/chat/session.c) --------------------------------------------------------------------
** A conversation with a model through its chat template, on one sequence of a context. Each turn (lc_chat_prompt)
** renders the whole message list with the template (messages, tools, add_generation_prompt, bos_token and eos_token
** from the model, date_string = today as "26 Jul 2024", then the caller's variables, which win), tokenizes it with
** control tokens parsed (BOS added only when the tokenizer wants one and the template did not write it), keeps the
** cached tokens it shares with the previous turn and decodes only the rest. The answer is generated token by token
** (lc_chat_step) and added to the history by lc_chat_end in the form the template writes back as the model wrote it
** (text; or tool_calls for Llama 3.1 calls), so the next turn reuses it from the cache. A conversation longer than
** the context is refused with LC_E_RANGE, never cut: the caller drops exchanges (lc_chat_drop_oldest), clears, or
** uses a larger context. Messages are OpenAI-style JSON objects ({"role", "content", "tool_calls"?, ...}).
** A session is used by one thread at a time; between lc_chat_prompt and lc_chat_end nobody else may decode on its
** context (sessions on distinct seq_ids may share a context turn by turn). */
typedef struct lc_chat lc_chat;
typedef struct lc_chat_params {
    const char *template_src;  /* Jinja text (copied); NULL: the model's (lc_model_chat_template) */
    size_t template_len;
    const char *template_name; /* names the template in error messages (NULL: "tokenizer.chat_template") */
    const char *tools_json;    /* JSON list of tool definitions, the template's tools (NULL: none) */
    const char *vars_json;     /* JSON object of more template variables ({"builtin_tools": [...], "date_string":
                               ** ...}); they override the defaults (NULL: none) */
    bool parse_tool_calls;     /* answers go through a tool-call parser: calls are returned, never shown as text */
    bool no_reuse;             /* decode the whole conversation every turn (for checks; slower) */
    int32_t seq_id;            /* the context's sequence the session owns (0) */
    uint32_t n_batch;          /* prompt tokens per lc_decode, at most the context's n_batch (0: 512) */
} lc_chat_params;
typedef struct lc_chat_stats {
    int32_t n_prompt;    /* tokens of the rendered conversation at the last lc_chat_prompt */
    int32_t n_reused;    /* of them, kept from the KV cache */
    int32_t n_decoded;   /* of them, decoded (n_prompt - n_reused; the last is decoded again for its logits) */
    int32_t n_generated; /* tokens of the answer so far */
    int32_t n_ctx;       /* the context's size */
} lc_chat_stats;
enum { LC_CHAT_GOING = 0, LC_CHAT_END = 1, LC_CHAT_FULL = 2 }; /* lc_chat_step's *state */

lc_chat_params lc_chat_default_params(void);
/* A session on model m (borrowed) and context c (borrowed; NULL: a session that only renders). Everything in p is
** copied. The sequence p->seq_id of c is emptied. Errors: the template's (LC_E_FORMAT, "name:line:col: ..."),
** LC_E_INVALID (tools not a JSON list, vars not a JSON object), LC_E_UNSUPPORTED (no template), LC_E_NOMEM. */
int lc_chat_new(const lc_model *m, lc_context *c, const lc_chat_params *p, lc_chat **out);
void lc_chat_free(lc_chat *ch);

/* The history. lc_chat_add: a text message. lc_chat_add_json: any message object (LC_E_INVALID without a string
** "role"). lc_chat_add_tool_result: the result of the last call, as role "tool" (custom calls) or "ipython"
** (built-in, code); content that parses as JSON goes in as that value, other text as a string. lc_chat_add_answer:
** an assistant's raw output (as the model wrote it, <|python_tag|> as text) parsed for calls when the session parses
** them and added as lc_chat_end adds a generated one; *calls (may be NULL) valid until the next answer. */
int lc_chat_add(lc_chat *ch, const char *role, const char *content);
int lc_chat_add_json(lc_chat *ch, const char *message, size_t len);
int lc_chat_add_tool_result(lc_chat *ch, const char *content, size_t len);
int lc_chat_add_answer(lc_chat *ch, const char *text, size_t len, const lc_tool_call **calls, size_t *n_calls);
/* Sets (or with NULL/"" removes) the system message, kept first. */
int lc_chat_set_system(lc_chat *ch, const char *text);
/* Forgets the messages (keep_system: but the system message). The KV cache is reused as far as it still matches. */
void lc_chat_clear(lc_chat *ch, bool keep_system);
/* Removes the oldest exchange: the first user message and everything up to the next user message (the system
** message stays); *n_dropped (may be NULL) gets the number of messages removed. LC_E_RANGE: no user message. */
int lc_chat_drop_oldest(lc_chat *ch, size_t *n_dropped);
size_t lc_chat_n_messages(const lc_chat *ch);
/* Keeps the first n messages. */
void lc_chat_truncate(lc_chat *ch, size_t n);
/* The messages as a JSON list, one message per line; *out freed with lc_free. */
int lc_chat_get_messages(const lc_chat *ch, char **out, size_t *len);
/* Replaces the messages with a JSON list of message objects, kept only if the template renders them (otherwise
** the old messages stay and the template's error is returned). */
int lc_chat_set_messages(lc_chat *ch, const char *json, size_t len);
/* The conversation rendered with the template; *out freed with lc_free. */
int lc_chat_render(const lc_chat *ch, bool add_generation_prompt, char **out, size_t *len);

/* A turn: lc_chat_prompt brings the cache up to the rendered conversation (st may be NULL); then lc_chat_step
** samples one token with s, decodes it and gives the text to show now (*text, *n valid until the next call; with
** parse_tool_calls never a part of a call); *state LC_CHAT_END at an end-of-generation token, LC_CHAT_FULL when the
** context has no room for the next token. Stop whenever (a length limit, Ctrl-C) and call lc_chat_end: it gives
** the rest of the text to show and the tool calls (valid until the next turn), and appends the answer (what was
** generated, also when stopped early) to the history. LC_E_RANGE from lc_chat_prompt: the conversation does not fit
** (the message says how many tokens it needs). */
int lc_chat_prompt(lc_chat *ch, lc_chat_stats *st);
int lc_chat_step(lc_chat *ch, lc_sampler *s, const char **text, size_t *n, int *state);
int lc_chat_end(lc_chat *ch, const char **text, size_t *n, const lc_tool_call **calls, size_t *n_calls);
void lc_chat_get_stats(const lc_chat *ch, lc_chat_stats *st);
/* Tokens of the session's sequence in the KV cache. */
int32_t lc_chat_n_cached(const lc_chat *ch);
/* Why the last answer's held text was shown after all (lc_toolcall_note), or NULL. */
const char *lc_chat_tool_note(const lc_chat *ch);

/* ---- training ---------------------------------------------------------------------------------------------- */
typedef struct lc_train_tokenizer_params {
    const char *const *files; /* UTF-8 text files (any bytes are accepted) */
    size_t n_files;
    uint32_t vocab_size;      /* total tokens: 256 bytes + learned merges + 7 Llama 3 control tokens */
    uint32_t min_frequency;   /* a pair seen fewer times is not merged (0: 2) */
} lc_train_tokenizer_params;
/* Trains a byte-level BPE tokenizer with the Llama 3 pre-tokenizer on the files and writes it to out_path as a GGUF
** vocabulary (tokenizer.ggml.*; loads with lc_tokenizer_load). Deterministic: the same text gives the same file.
** Fewer tokens than vocab_size when the text has no more pairs of min_frequency. LC_E_INVALID (no text, vocabulary
** too small), LC_E_IO naming the file, LC_E_NOMEM. */
int lc_train_tokenizer(const lc_train_tokenizer_params *p, const char *out_path);

/* Pre-training a Llama model from scratch on the CPU (`llamac train`). The model is exactly what lc_model_load
** runs: llama architecture, f32 weights, tied output embedding, RoPE as llama.cpp's "normal" mode. */
typedef struct lc_train_config {
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff; /* n_embd / n_head = head dimension (even) */
    uint32_t n_ctx;                                    /* training context (tokens per sequence) */
    float rope_theta, rms_eps;
} lc_train_config;

/* Named model shapes for lc_train ("tiny", "small", ...): i-th preset (name and one-line description static), or
** NULL past the last. */
const char *lc_train_config_preset(size_t i, lc_train_config *cfg, const char **desc);
/* The preset of that name; LC_E_INVALID listing the names when unknown. */
int lc_train_config_by_name(const char *name, lc_train_config *cfg);

enum {
    LC_TRAIN_START = 0,      /* data tokenized, model ready (stats: sizes; step = first step to run) */
    LC_TRAIN_STEP = 1,       /* an optimizer step finished */
    LC_TRAIN_EVAL = 2,       /* validation loss computed (val_loss) */
    LC_TRAIN_CHECKPOINT = 3, /* checkpoint written (after step `step`) */
    LC_TRAIN_DONE = 4,       /* model written */
};

typedef struct lc_train_stats {
    int event;                        /* LC_TRAIN_* */
    int64_t step, n_steps;            /* steps done so far, total */
    double loss;                      /* mean train loss of the last step (nats/token) */
    double val_loss;                  /* last validation loss (NaN before the first evaluation) */
    double lr, grad_norm;             /* of the last step (grad_norm before clipping) */
    double tokens_per_s, elapsed_s, eta_s; /* training tokens/s since start (or resume), wall time, remaining */
    double gflops;                    /* useful GFLOP/s: forward + backward FLOPs of the training tokens (6 per
                                      ** matrix weight and token, causal attention) over the wall time */
    double time_matmul_s, time_attention_s, time_other_s; /* where the forward/backward time went */
    uint64_t n_params;                /* model parameters */
    uint64_t n_train_tokens, n_val_tokens, n_vocab;
    int64_t resumed_from;             /* step of the checkpoint resumed from, or -1 */
    const char *kernel;               /* matrix kernel in use ("avx512", ...) */
} lc_train_stats;

typedef struct lc_train_params {
    const char *const *corpus; /* UTF-8 text files */
    size_t n_corpus;
    const char *doc_sep;       /* a line equal to this separates documents (NULL: each file is one document) */
    const char *tokenizer;     /* any file lc_tokenizer_load accepts; a GGUF's tokenizer.* keys go into the model */
    const char *out;           /* the model GGUF (written through a temporary file and a rename) */
    const char *checkpoint;    /* NULL: out + ".ckpt" */
    lc_train_config config;
    int64_t n_steps;           /* optimizer steps */
    uint32_t batch;            /* sequences per step (of config.n_ctx tokens) */
    uint32_t micro_batch;      /* sequences per forward/backward (gradient accumulation; 0: about 1024 tokens) */
    float lr, min_lr;          /* peak and final learning rate */
    int64_t warmup;            /* linear warm-up steps */
    float weight_decay, beta1, beta2, adam_eps;
    float clip;                /* global gradient-norm clipping (0: off) */
    double val_frac;           /* fraction of the tokens held out for validation */
    uint32_t val_batches;      /* validation batches per evaluation (of `batch` sequences) */
    int64_t eval_every;        /* steps between evaluations (0: only at the end) */
    int64_t checkpoint_every;  /* steps between checkpoints (0: none) */
    uint64_t seed;
    int n_threads;             /* <= 0: all cores */
    bool resume;               /* continue from the checkpoint (must match model shape, batch and data) */
    /* Called on the calling thread for every event; a nonzero return stops training after the current step: a
    ** checkpoint and the model are written and lc_train returns LC_OK with stats->step < n_steps. */
    int (*on_event)(const lc_train_stats *s, void *user);
    void *user;
} lc_train_params;

lc_train_params lc_train_default_params(void);
/* Tokenizes the corpus (each document gets the tokenizer's BOS when it adds one, and EOS at its end), holds out
** val_frac of it (every k-th chunk of 8 windows, deterministic), and trains: per step `batch` windows of n_ctx+1
** tokens drawn from the training part by a seeded generator, AdamW with warm-up and cosine decay, gradient
** clipping (a step whose gradient is not finite is skipped). Checkpoints (weights, moments, step, generator state;
** always one after the last step) are written by rename; with resume the run continues bit-identically to one
** never interrupted, with any thread count (a missing checkpoint starts from the beginning; a larger n_steps trains
** on). Results are reproducible on one kernel variant (lc_cpu_variant). final (may be NULL) gets the last stats.
** LC_E_INVALID (bad parameters, corpus too small, checkpoint of another run), LC_E_IO, LC_E_FORMAT, LC_E_NOMEM. */
int lc_train(const lc_train_params *p, lc_train_stats *final);

/* LoRA fine-tuning of a loaded model (`llamac finetune`): the base weights stay frozen in their file type (products
** run on rows dequantized on the fly); each adapted projection W becomes W + alpha/r * B A with A [r][n_in] random
** (N(0, 1/n_in)) and B [n_out][r] zero at the start, trained with AdamW (warm-up, cosine decay, clipping). The
** adapter is written in llama.cpp's GGUF LoRA format (lc_lora_load, llama.cpp's --lora). */
enum {
    LC_LORA_TARGET_Q = 1 << 0, LC_LORA_TARGET_K = 1 << 1, LC_LORA_TARGET_V = 1 << 2, LC_LORA_TARGET_O = 1 << 3,
    LC_LORA_TARGET_GATE = 1 << 4, LC_LORA_TARGET_UP = 1 << 5, LC_LORA_TARGET_DOWN = 1 << 6,
    LC_LORA_TARGET_ALL = 0x7f, /* attention q, k, v, output and FFN gate, up, down */
};
typedef struct lc_finetune_params {
    const lc_model *model;     /* the base model (borrowed; not modified) */
    const char *const *data;   /* files: UTF-8 text, or chat JSONL when chat */
    size_t n_data;
    bool chat;                 /* one conversation per line ({"messages": [...]} or a list of messages), rendered
                               ** with the model's chat template; the loss is on the assistant's turns only */
    const char *doc_sep;       /* text: a line equal to this separates documents (NULL: one per file) */
    const char *out;           /* the adapter GGUF (temporary file and rename) */
    uint32_t rank;             /* r */
    float alpha;               /* adapter.lora.alpha (0: r, so alpha/r = 1) */
    unsigned targets;          /* LC_LORA_TARGET_* bits (0: all) */
    uint32_t n_ctx;            /* tokens per sequence (0: min(256, the model's context)); chat: at most the longest
                               ** conversation */
    int64_t n_steps;
    uint32_t batch, micro_batch; /* sequences per step, per forward/backward (0: about 512 tokens) */
    float lr, min_lr;
    int64_t warmup;            /* -1: min(100, n_steps / 10) */
    float weight_decay, beta1, beta2, adam_eps, clip;
    double val_frac;           /* fraction of the text (of the conversations) held out */
    uint32_t val_batches;
    int64_t eval_every;        /* 0: only at the end */
    uint64_t seed;
    int n_threads;             /* <= 0: all cores */
    const char *checkpoint;    /* NULL: out + ".ckpt" */
    int64_t checkpoint_every;  /* steps between checkpoints (0: only after the last step, or when stopped) */
    bool resume;               /* continue from the checkpoint (same base, data, rank, targets, batch, seed) */
    /* Called on the calling thread for each event (LC_TRAIN_*; n_params = adapter parameters, n_train_tokens and
    ** n_val_tokens = tokens with a loss); nonzero stops after the current step, and the adapter is written. */
    int (*on_event)(const lc_train_stats *s, void *user);
    void *user;
} lc_finetune_params;

lc_finetune_params lc_finetune_default_params(void);
/* Fine-tunes and writes p->out. Per step `batch` samples (text: windows of n_ctx+1 tokens at random; chat: whole
** conversations at random, padded), the loss averaged over the tokens that carry one. Checkpoints (the adapter,
** AdamW's moments, the step and the generator; a checkpoint is itself a loadable adapter) are written by rename; a
** resumed run ends with the same bytes as one never interrupted, with any thread count. final (may be NULL) gets the
** last stats. LC_E_INVALID (bad parameters, no usable data: the message names the file and line), LC_E_FORMAT (a
** conversation the chat template refuses, with the file and line), LC_E_UNSUPPORTED
** (a weight type llamac cannot compute with), LC_E_IO, LC_E_NOMEM. */
int lc_finetune(const lc_finetune_params *p, lc_train_stats *final);

/* ---- misc --------------------------------------------------------------------------------------------------- */
int lc_n_cores(void);
double lc_time_s(void); /* monotonic seconds */
/* Name of the kernel variant in use ("amx", "avx512", "avx2", "neon", "ref"). */
const char *lc_cpu_variant(void);

#ifdef __cplusplus
}
#endif
#endif /* LLAMAC_H */
