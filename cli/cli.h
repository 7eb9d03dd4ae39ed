/* cli.h - what the subcommands of the `llamac` tool share: exit codes, a table-driven option parser with strict
** number parsing, and helpers that load a model or report a library error the same way everywhere.
**
** The tool uses only include/llamac.h. Exit codes: 0 ok, 1 runtime error (the library failed: "llamac: " + its
** message), 2 usage error (the message names the flag and the value, then points at --help).
*/
#ifndef LLAMAC_CLI_H
#define LLAMAC_CLI_H

#include "llamac.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

/* Kinds of option values. Numbers are parsed strictly: the whole string, no spaces, in [min, max]. */
typedef enum cli_kind {
    CLI_FLAG,   /* no value; dst is bool, set to true */
    CLI_NOFLAG, /* no value; dst is bool, set to false (e.g. --untied next to --tied) */
    CLI_STR,    /* dst is const char * (borrowed from argv) */
    CLI_INT,    /* dst is int64_t, in [min, max] */
    CLI_U64,    /* dst is uint64_t, any non-negative 64-bit value (decimal or 0x hex) */
    CLI_FLOAT,  /* dst is double, finite, in [min, max] */
    CLI_CHOICE, /* dst is int: index of the value in choices, a '|'-separated list ("f16|f32") */
} cli_kind;

typedef struct cli_opt {
    const char *short_name; /* "-m", or NULL */
    const char *long_name;  /* "--model", or NULL */
    cli_kind kind;
    void *dst;
    double min, max;     /* CLI_INT, CLI_FLOAT */
    const char *choices; /* CLI_CHOICE */
    bool *seen;          /* optional: set when the option was given */
} cli_opt;

/* Parses argv[1..argc) (argv[0] is the subcommand name) against opts. Values come as "-m X", "--model X" or
** "--model=X". Arguments that are not options go to pos (at most max_pos of them; "--" ends the options).
** "-h"/"--help" sets *help and stops. Returns CLI_OK, or CLI_USAGE after printing why on stderr. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, size_t n_opts, const char **pos,
              size_t max_pos, size_t *n_pos, bool *help);

/* Strict parsers, usable on their own. flag names the option in the message; they print and return CLI_USAGE. */
int cli_parse_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out);
int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
int cli_parse_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out);
/* A comma-separated list of integers in [min, max] ("1,2,3"); *out is malloc'd (caller frees). */
int cli_parse_int_list(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int32_t **out,
                       size_t *n_out);

/* Prints "llamac CMD: message" and "Try 'llamac CMD --help'." on stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "llamac: " + lc_last_error() on stderr; returns CLI_ERR. */
int cli_lib_error(void);
/* Prints "llamac: " + a message on stderr; returns CLI_ERR. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads a model, with a progress line on a terminal. On failure prints the library's message (naming the file,
** added when the library's message does not) and returns CLI_ERR. *load_s gets the load time (may be NULL). */
int cli_load_model(const char *path, lc_model **out, double *load_s);
/* --mmap: cli_load_model maps the weights instead of reading them into huge pages (lc_model_params.use_mmap). */
extern bool cli_use_mmap;
#define CLI_MMAP_OPT {NULL, "--mmap", CLI_FLAG, &cli_use_mmap, 0, 0, NULL, NULL}

/* Whether text gets a BOS token by default, as llama.cpp decides: tokenizer.ggml.add_bos_token when present, else
** true for SentencePiece ("llama") vocabularies and the Llama 3 byte-level BPE, else false. */
bool cli_model_add_bos(const lc_model *m);
/* As cli_load_model; metadata_only reads any GGUF without binding weights (for `info`). */
int cli_load_model_ex(const char *path, bool metadata_only, lc_model **out, double *load_s);

/* Tokenizes text (BOS prepended when add_bos) into a malloc'd array (caller frees). Prints and returns CLI_ERR on
** failure. */
int cli_tokenize(const lc_model *m, const char *text, size_t len, bool add_bos, int32_t **ids, size_t *n);

/* Reads a whole file (for -f FILE) into a malloc'd NUL-terminated buffer. Prints and returns CLI_ERR on failure. */
int cli_read_file(const char *path, char **out, size_t *len);

/* The value of --kv as a type: "f16" -> LC_TYPE_F16, "f32" -> LC_TYPE_F32 (index into CLI_KV_CHOICES). */
#define CLI_KV_CHOICES "f16|f32"
int cli_kv_type(int choice);

/* Writes a float the way JSON accepts it: %.9g (round-trips a float), or null when not finite. */
void cli_json_float(FILE *f, double x);
/* Writes s as a JSON string (quotes, escapes; invalid UTF-8 bytes become U+FFFD). */
void cli_json_str(FILE *f, const char *s);

/* A sampling seed when none was given: from /dev/urandom (else time and pid), 32 bits so it is short enough to
** retype with --seed. */
uint64_t cli_random_seed(void);

/* LoRA adapters given as --lora FILE [--lora-scale S] (scale 1 unless given) and --lora-scaled FILE SCALE,
** repeatable: cli_lora_take removes them from argv (before cli_parse), cli_lora_apply loads them for m and sets
** them on c, cli_lora_free after c is freed. */
#define CLI_MAX_LORA 8
typedef struct cli_lora {
    const char *file[CLI_MAX_LORA];
    float scale[CLI_MAX_LORA];
    lc_lora *ad[CLI_MAX_LORA];
    int n;
} cli_lora;
#define CLI_LORA_HELP                                                                                              \
    "  --lora FILE              apply a LoRA adapter (GGUF, llama.cpp's format; repeatable)\n"                     \
    "  --lora-scale S           scale of the --lora FILE just before (default 1; 0: the base model exactly)\n"     \
    "  --lora-scaled FILE S     apply a LoRA adapter with scale S\n"
int cli_lora_take(const char *cmd, int *argc, char **argv, cli_lora *l);
int cli_lora_apply(cli_lora *l, const lc_model *m, lc_context *c);
void cli_lora_free(cli_lora *l);

/* The subcommands: argv[0] is the subcommand's name. Each returns an exit code. */
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);

#endif /* LLAMAC_CLI_H */
