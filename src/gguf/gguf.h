/* gguf.h - GGUF v2/v3 reader (mmap, strict validation) and writer.
**
** The reader never trusts the file: every count, length, dimension, offset and size is checked against the file
** size with overflow-safe arithmetic and sane caps before use, and every failure names the file, the byte offset
** and what is wrong (LC_E_FORMAT). Strings and tensor data point into the mapping (valid while the gguf_file
** lives); keys and names are NUL-terminated copies. Spec: ggml/docs/gguf.md.
*/
#ifndef LC_GGUF_H
#define LC_GGUF_H

#include "../base/base.h"

typedef enum gguf_vtype {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3, GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5,
    GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7, GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10,
    GGUF_T_INT64 = 11, GGUF_T_FLOAT64 = 12, GGUF_T_COUNT
} gguf_vtype;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
/* Sane caps (beyond them a file is rejected as malformed; every count is also bounded by the bytes left). */
#define GGUF_MAX_NAME 64                 /* tensor names are < 64 bytes, as GGML requires */
#define GGUF_MAX_KEY 65535               /* key length in bytes */
#define GGUF_MAX_COUNT (1ull << 24)      /* n_kv, n_tensors */
#define GGUF_MAX_ARRAY (1ull << 30)      /* elements of one array (GGML's cap) */
#define GGUF_MAX_DEPTH 8                 /* nesting of arrays of arrays */

typedef struct gguf_str {
    const char *ptr; /* into the mapping, NOT NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_value gguf_value;
struct gguf_value {
    gguf_vtype type;
    union {
        uint64_t u;   /* UINT8..UINT64 */
        int64_t i;    /* INT8..INT64 */
        double f;     /* FLOAT32, FLOAT64 */
        bool b;       /* BOOL */
        gguf_str s;   /* STRING */
        struct {
            gguf_vtype type;     /* element type */
            uint64_t n;          /* element count */
            const void *data;    /* fixed-size elements: raw little-endian bytes in the mapping (unaligned!) */
            gguf_str *strs;      /* STRING elements: n entries (owned by the gguf_file) */
            gguf_value *items;   /* ARRAY elements (nested arrays): n entries (owned) */
        } arr;
    } v;
};

typedef struct gguf_kv {
    char *key; /* owned, NUL-terminated */
    gguf_value val;
    uint64_t offset; /* byte offset of the key in the file, for messages (llama2.c: its header field, or 0) */
} gguf_kv;

typedef struct gguf_tensor {
    char *name; /* owned, NUL-terminated */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1 */
    uint32_t type;              /* lc_type (GGML id) */
    uint64_t offset;            /* relative to the data section start */
    uint64_t size;              /* bytes, from the type's block size */
    const void *data;           /* into the mapping (aligned to f->alignment relative to the file start) */
    uint64_t info_offset;       /* byte offset of the tensor's info record in the file, for messages */
} gguf_tensor;

typedef struct gguf_file {
    char *path; /* owned; used in messages */
    const char *format; /* static: "GGUF", "llama2.c v0" or "llama2.c v1" */
    uint32_t version;   /* GGUF version (2 or 3); llama2.c checkpoints: their version (0 or 1) */
    const uint8_t *base; /* whole file (mmap'd or caller's buffer) */
    size_t size;
    bool mapped;         /* base is ours to unmap: the file mapped, or read into anonymous memory (copied) */
    bool copied;         /* read into anonymous memory (transparent huge pages) rather than mapped */
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;   /* of tensor data offsets (GGUF: general.alignment or 32; llama2.c: 4) */
    uint64_t data_offset; /* start of the tensor data section in the file */
} gguf_file;

/* Opens and validates a file (mmap, read-only). *out owned by the caller: gguf_close. Returns 0; LC_E_IO (cannot
** open/map); LC_E_FORMAT ("<path>: offset <N>: <what>", with the key or tensor when known); LC_E_NOMEM. A parsed
** file is immutable and may be read from several threads. */
int gguf_open(const char *path, gguf_file **out);
/* How a file is brought into memory. Mapping (the default) costs nothing up front and lets the kernel evict pages
** under memory pressure. Copying reads the whole file into anonymous memory backed by 2 MiB transparent huge pages:
** the weights then stream without a TLB miss every 4 KiB, and the hardware prefetchers, which stop at page
** boundaries, run 512 times further (decode measured 4-10% faster). A copy is made only when the file fits in the
** memory available with a margin (MemAvailable minus an eighth); otherwise the file is mapped, with a warning. */
typedef struct gguf_load {
    bool copy;
    void (*progress)(float fraction, void *user); /* optional, while copying: 0..1 */
    void *progress_user;
} gguf_load;
/* gguf_open / llama2c_open with a load mode (NULL: map). */
int gguf_open_ex(const char *path, const gguf_load *how, gguf_file **out);
int llama2c_open_ex(const char *path, const gguf_load *how, gguf_file **out);
/* Parses a buffer of size bytes (borrowed; must outlive *out). name is used in messages. */
int gguf_parse(const void *buf, size_t size, const char *name, gguf_file **out);
void gguf_close(gguf_file *f); /* NULL is a no-op */

const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: return 1 if found and converted (sets *out), 0 if the key is absent, or a negative LC_E_FORMAT (message names the file and key) if present with an incompatible type or a
** value out of range for the target. Integer getters accept any integer type whose value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out); /* accepts FLOAT32/FLOAT64 */
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array getter: checks the element type (exact) and returns the array value. */
int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype elem, const gguf_value **out);
/* Reads element i of a fixed-size-element array as double / int64 (i < n is the caller's to check). The int64 form
** saturates u64 values beyond INT64_MAX and truncates floats toward zero (saturating; NaN gives 0). Not an array of
** fixed-size elements: NaN / 0. */
double gguf_arr_f64(const gguf_value *arr, uint64_t i);
int64_t gguf_arr_i64(const gguf_value *arr, uint64_t i);

const char *gguf_vtype_name(int t);
/* Renders a value as text for `llamac info`: numbers (floats in the shortest form that reads back exactly), strings
** quoted with C escapes for control bytes and invalid UTF-8, arrays as "[a, b, ... (N items)]" showing max_items
** items (nested arrays likewise). Always NUL-terminates; a cut is marked "..." on a UTF-8 character boundary. */
void gguf_value_format(const gguf_value *v, char *buf, size_t cap, size_t max_items);

/* ---- writer ---- */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void); /* NULL on out of memory; alignment 32 unless general.alignment is set */
void gguf_writer_free(gguf_writer *w);
/* Setters copy their arguments. Setting a key twice replaces it. Return LC_OK or LC_E_NOMEM / LC_E_INVALID. */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Array of fixed-size elements (elem is not STRING/ARRAY); data holds n elements in host (little-endian) layout. */
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype elem, const void *data, uint64_t n);
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Copies any value (including nested arrays) read from a gguf_file, for quantize/convert. */
int gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v);
/* Adds a tensor; data (size bytes, must equal the size the type and shape imply) is BORROWED until
** gguf_writer_write returns. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                           const void *data, uint64_t size);
/* Writes version 3 to path through a temporary file in the same directory (path.tmp.XXXXXX), fsync and an atomic
** rename; on failure the temporary file is removed and path is untouched. Tensor data offsets are consecutive, each
** tensor padded to the alignment (llama.cpp's layout). LC_E_IO (message with path and errno text), LC_E_INVALID
** (bad general.alignment), LC_E_NOMEM. */
int gguf_writer_write(gguf_writer *w, const char *path);

/* ---- llama2.c checkpoints ---- */
/* Maps a llama2.c checkpoint (legacy v0 or export.py version 1, fp32) and presents it as a gguf_file: keys
** general.architecture "llama", general.file_type 0, llama.{context_length (= seq_len), embedding_length,
** feed_forward_length, block_count, attention.head_count, attention.head_count_kv, rope.dimension_count, vocab_size}
** (u32), llama.attention.layer_norm_rms_epsilon 1e-5 and llama.rope.freq_base 10000 (f32); F32 tensors under their
** GGUF names (ne[0] = the input dimension) pointing into the mapping, output.weight only when the classifier is not
** shared (freq_cis tables are skipped). The tensors are byte-identical to what llama.cpp's
** convert-llama2c-to-ggml writes (no Q/K permutation). The file size must be exactly what the header implies.
** alignment is 4 (data pointers are only float-aligned). Same validation and error style as gguf_open. */
int llama2c_open(const char *path, gguf_file **out);
/* The same on a caller's buffer (borrowed; must outlive *out); name is used in messages. For the fuzzer and tests. */
int llama2c_parse(const void *buf, size_t size, const char *name, gguf_file **out);

/* ---- internal, shared by the readers ---- */
/* Maps path read-only, or copies it as `how` says (*base, *size, *copied); LC_E_IO with a message on failure,
** LC_E_FORMAT for an empty file. gguf__unmap releases either. */
int gguf__map(const char *path, const gguf_load *how, const uint8_t **base, size_t *size, bool *copied);
void gguf__unmap(const uint8_t *base, size_t size);
/* A zeroed gguf_file with path copied (NULL on out of memory). */
gguf_file *gguf__new(const char *name, const void *buf, size_t size);

#endif /* LC_GGUF_H */
