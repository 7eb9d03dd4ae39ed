/* chat.h - internals of src/chat: the values of the Jinja engine (Python semantics: int vs float, insertion-ordered
** dicts, str()/repr()/json.dumps formatting) and their JSON reading and writing, shared by the template engine and
** its tests.
**
** Values live in an arena (jv_arena): everything a render or a JSON parse creates is freed at once with the arena.
** Strings are UTF-8 byte strings (not NUL-terminated); lists and dicts are mutable only while being built.
*/
#ifndef LC_CHAT_H
#define LC_CHAT_H

#include "llamac.h"

#include "../base/base.h"

typedef enum jv_kind {
    JV_UNDEF, /* Jinja2's Undefined: prints as "", iterates as empty, is false; most operations on it fail */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_NS,    /* namespace(): a dict whose attributes can be assigned with {% set ns.x = ... %} */
    JV_FUNC,  /* a global function (raise_exception, namespace, range) */
    JV_MACRO, /* a {% macro %} */
} jv_kind;

typedef struct jlist jlist;
typedef struct jdict jdict;

typedef struct jv {
    jv_kind k;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        jlist *l;
        jdict *d;
        int fn;
        const void *macro;
    } u;
} jv;

struct jlist {
    jv *a;
    size_t n, cap;
};
struct jdict {
    jv *keys; /* JV_STR (JSON and templates only make string keys) */
    jv *vals;
    size_t n, cap;
};

/* Bump allocator in chunks; lc__malloc underneath. A failed allocation sets *failed and returns NULL. */
typedef struct jv_arena {
    struct jv_chunk *head;
    size_t used_total; /* bytes handed out, for limits */
    bool failed;
} jv_arena;

void *jv_alloc(jv_arena *a, size_t n);
void jv_arena_free(jv_arena *a);

jv jv_str(jv_arena *a, const char *p, size_t n); /* copies */
jv jv_new_list(jv_arena *a);
jv jv_new_dict(jv_arena *a, jv_kind kind);                 /* JV_DICT or JV_NS */
bool jv_list_push(jv_arena *a, jlist *l, jv v);             /* false: out of memory */
bool jv_dict_set(jv_arena *a, jdict *d, const char *k, size_t kn, jv v); /* replaces an existing key */
const jv *jv_dict_get(const jdict *d, const char *k, size_t kn);

/* A growable byte buffer (lc__realloc). max (0: none) caps its length: a put past it fails the buffer with
** too_large set, and printing stops early. */
typedef struct jbuf {
    char *p;
    size_t n, cap, max;
    bool failed, too_large;
} jbuf;
void jbuf_put(jbuf *b, const char *s, size_t n);
void jbuf_puts(jbuf *b, const char *s);

/* JSON text -> value (RFC 8259, UTF-8 checked; integers that fit int64 are JV_INT, other numbers JV_FLOAT;
** duplicate keys: the last wins, as Python's json). Returns 0 or LC_E_INVALID with a message naming name and the
** byte offset. */
int jv_parse_json(jv_arena *a, const char *text, size_t len, const char *name, jv *out);

/* Python's str(v) (lists and dicts as repr) appended to b; a container inside itself prints as [...] / {...}, as
** Python's repr does. */
void jv_to_str(jbuf *b, jv v);
/* Python's json.dumps(v, ensure_ascii=False, indent=indent) (indent < 0: None). false if v holds something JSON
** cannot represent (Undefined, a function, a container inside itself); *bad names it. */
bool jv_to_json(jbuf *b, jv v, int indent, const char **bad);

/* llamac's own chat template of a family (llama3 != 0: Llama 3.x, else Llama 2), for models without one. */
const char *lc__builtin_template(int llama3, size_t *len);

#endif /* LC_CHAT_H */
