/* cmd_tokenize.c - `llamac tokenize` (text -> ids) and `llamac detokenize` (ids -> text), with the tokenizer of a
** model (-m) or of a tokenizer file alone (--tokenizer: tokenizer.json, tokenizer.model, llama2.c tokenizer.bin, or a
** GGUF). BOS is added as the tokenizer's configuration says unless --no-bos; --special parses control-token text
** (tokenize) or shows control tokens (detokenize). Outputs are exact: --json and --ids print nothing but the ids, and
** detokenize prints the text's bytes as they are (a newline is added only on a terminal).
*/
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *tokenize_help =
    "usage: llamac tokenize (-m MODEL | --tokenizer FILE) [-p TEXT | -f FILE] [options]\n"
    "\n"
    "Tokenizes text read from -p, -f FILE, or stdin when neither is given. BOS is prepended when the tokenizer's\n"
    "configuration says so (GGUF tokenizer.ggml.add_bos_token, tokenizer_config.json, else the default of its type;\n"
    "tokenizer.model and tokenizer.bin carry no configuration and get BOS, as Hugging Face's LlamaTokenizer does).\n"
    "\n"
    "output (one of):\n"
    "  --pieces             one line per token: id, the piece as the vocabulary stores it, the bytes it stands for\n"
    "                       (both quoted; \\xNN for bytes that are not printable UTF-8) (default)\n"
    "  --ids                the ids on one line, comma-separated (input for detokenize --ids and logits --ids)\n"
    "  --json               one JSON array of ids on one line\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     take the tokenizer of a model (GGUF: only its tokenizer metadata is read; llama2.c .bin:\n"
    "                       its tokenizer.bin beside it)\n"
    "  --tokenizer FILE     a tokenizer file: tokenizer.json, tokenizer.model (SentencePiece), llama2.c\n"
    "                       tokenizer.bin, or GGUF; the format is told by the content\n"
    "  --config FILE        tokenizer_config.json of a tokenizer.json (default: X.tokenizer_config.json beside\n"
    "                       X.tokenizer.json, or tokenizer_config.json in its directory, when present)\n"
    "  -p, --prompt TEXT    the text\n"
    "  -f, --file FILE      read the text from FILE ('-': stdin)\n"
    "  --no-bos             never prepend BOS\n"
    "  --special            control-token text in the input (<s>, <|eot_id|>, ...) becomes the token's id;\n"
    "                       without it such text is tokenized as plain text\n"
    "  -h, --help           this help\n"
    "\n"
    "examples:\n"
    "  llamac tokenize --tokenizer tokenizer.json -p \"Hello world\" --json\n"
    "  echo \"Hello\" | llamac tokenize -m model.gguf --ids\n";

static const char *detokenize_help =
    "usage: llamac detokenize (-m MODEL | --tokenizer FILE) [--ids LIST | -f FILE] [options]\n"
    "\n"
    "Prints the text of token ids: the bytes exactly (a newline is added only when stdout is a terminal). The ids come\n"
    "from --ids, or from -f FILE / stdin when --ids is not given; separated by commas or blanks, brackets allowed, so\n"
    "the output of `llamac tokenize --ids` or `--json` can be used as it is. Bytes that do not form valid UTF-8 are\n"
    "shown as U+FFFD. As SentencePiece decodes, the leading space of the first piece is dropped.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     take the tokenizer of a model (GGUF or llama2.c .bin)\n"
    "  --tokenizer FILE     a tokenizer file: tokenizer.json, tokenizer.model, llama2.c tokenizer.bin, or GGUF\n"
    "  --config FILE        tokenizer_config.json of a tokenizer.json (default: the one beside it, when present)\n"
    "  --ids LIST           token ids, e.g. 1,15043,3186\n"
    "  -f, --file FILE      read the ids from FILE ('-': stdin)\n"
    "  --special            show control tokens (<s>, </s>, <|eot_id|>, ...) as their text (default: hidden)\n"
    "  -h, --help           this help\n"
    "\n"
    "example:\n"
    "  llamac tokenize --tokenizer tokenizer.model -p \"Hello\" --ids | llamac detokenize --tokenizer tokenizer.model\n";

/* ---- the tokenizer: from a model or a tokenizer file ---- */

typedef struct tok_source {
    lc_tokenizer *own; /* loaded here (free it) */
    lc_model *model;   /* loaded for a llama2.c checkpoint (free it) */
    const lc_tokenizer *tok;
} tok_source;

static bool is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4] = {0};
    bool yes = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    return yes;
}

/* Prints the library's message, naming path when the message does not. */
static int load_error(const char *path) {
    const char *msg = lc_last_error();
    if (strstr(msg, path)) return cli_error("%s", msg);
    return cli_error("%s: %s", path, msg);
}

static int source_open(const char *cmd, const char *model, const char *tokenizer, const char *config, tok_source *s) {
    memset(s, 0, sizeof *s);
    if (!model == !tokenizer) return cli_usage_error(cmd, "give exactly one of -m MODEL or --tokenizer FILE");
    if (config && !tokenizer) return cli_usage_error(cmd, "--config goes with --tokenizer tokenizer.json");
    /* a GGUF model: its metadata alone (no tensors touched, so a multi-GB model is not read, and a vocab-only GGUF
    ** works); a llama2.c checkpoint: the model loader, which finds its tokenizer.bin */
    if (tokenizer || is_gguf(model)) {
        const char *path = tokenizer ? tokenizer : model;
        if (lc_tokenizer_load(path, config, &s->own)) return load_error(path);
        s->tok = s->own;
        return CLI_OK;
    }
    int r = cli_load_model(model, &s->model, NULL);
    if (r) return r;
    s->tok = lc_model_tokenizer(s->model);
    if (!s->tok)
        return cli_error("%s: the model has no tokenizer (a llama2.c checkpoint needs tokenizer.bin beside it); "
                         "pass --tokenizer FILE instead of -m", model);
    return CLI_OK;
}

static void source_close(tok_source *s) {
    lc_tokenizer_free(s->own);
    lc_model_free(s->model);
    memset(s, 0, sizeof *s);
}

/* ---- output helpers ---- */

/* Length of the valid UTF-8 character at s[0..n) (1-4), or 0 if the bytes there are not one. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!k || k > n) return 0;
    uint32_t cp = c & (0x7F >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* Writes bytes in double quotes: printable UTF-8 as is; \" \\ \n \r \t; anything else as \xNN. */
static void put_quoted(FILE *f, const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = utf8_char(s + i, n - i);
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (k == 0 || c < 0x20 || c == 0x7F) fprintf(f, "\\x%02X", c);
        else fwrite(s + i, 1, k, f);
        i += k ? k : 1;
    }
    fputc('"', f);
}

/* ---- tokenize ---- */

enum { OUT_PIECES = 0, OUT_IDS = 1, OUT_JSON = 2 };

static int print_tokens(const lc_tokenizer *t, const int32_t *ids, size_t n, int mode) {
    if (mode == OUT_IDS || mode == OUT_JSON) {
        const char *sep = mode == OUT_JSON ? ", " : ",";
        if (mode == OUT_JSON) putchar('[');
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? sep : "", (int)ids[i]);
        if (mode == OUT_JSON) putchar(']');
        putchar('\n');
        return CLI_OK;
    }
    char *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        size_t plen = 0;
        const char *piece = lc_tokenizer_piece(t, ids[i], &plen);
        size_t need = 4 * (plen + 1); /* always enough (llamac.h) */
        if (need > cap) {
            char *nb = realloc(buf, need);
            if (!nb) {
                free(buf);
                return cli_error("out of memory");
            }
            buf = nb, cap = need;
        }
        int k = lc_tokenizer_token_bytes(t, ids[i], buf, cap);
        if (k < 0) {
            free(buf);
            return cli_lib_error();
        }
        printf("%d\t", (int)ids[i]);
        put_quoted(stdout, piece ? piece : "", plen);
        fputc('\t', stdout);
        put_quoted(stdout, buf, (size_t)k);
        fputc('\n', stdout);
    }
    free(buf);
    return CLI_OK;
}

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize", *model = NULL, *tokenizer = NULL, *config = NULL, *prompt = NULL, *file = NULL;
    bool no_bos = false, special = false, o_ids = false, o_pieces = false, o_json = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0, NULL, NULL},
        {NULL, "--tokenizer", CLI_STR, &tokenizer, 0, 0, NULL, NULL},
        {NULL, "--config", CLI_STR, &config, 0, 0, NULL, NULL},
        {"-p", "--prompt", CLI_STR, &prompt, 0, 0, NULL, NULL},
        {"-f", "--file", CLI_STR, &file, 0, 0, NULL, NULL},
        {NULL, "--no-bos", CLI_FLAG, &no_bos, 0, 0, NULL, NULL},
        {NULL, "--special", CLI_FLAG, &special, 0, 0, NULL, NULL},
        {NULL, "--ids", CLI_FLAG, &o_ids, 0, 0, NULL, NULL},
        {NULL, "--pieces", CLI_FLAG, &o_pieces, 0, 0, NULL, NULL},
        {NULL, "--json", CLI_FLAG, &o_json, 0, 0, NULL, NULL},
    };
    bool help;
    size_t n_pos;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(tokenize_help, stdout);
        return CLI_OK;
    }
    if (o_ids + o_pieces + o_json > 1) return cli_usage_error(cmd, "give at most one of --ids, --pieces, --json");
    if (prompt && file) return cli_usage_error(cmd, "give either -p TEXT or -f FILE, not both");
    if (!model == !tokenizer) return cli_usage_error(cmd, "give exactly one of -m MODEL or --tokenizer FILE");
    int mode = o_ids ? OUT_IDS : o_json ? OUT_JSON : OUT_PIECES;

    tok_source src;
    char *text = NULL;
    int32_t *ids = NULL;
    if ((r = source_open(cmd, model, tokenizer, config, &src))) goto done;
    size_t len;
    if (prompt) len = strlen(prompt);
    else if ((r = cli_read_file(file ? file : "-", &text, &len))) goto done;
    const char *s = prompt ? prompt : text;

    unsigned flags = special ? LC_TOK_PARSE_SPECIAL : 0;
    if (!no_bos && lc_tokenizer_add_bos(src.tok) && lc_tokenizer_bos(src.tok) >= 0) flags |= LC_TOK_ADD_BOS;
    /* one pass when the guess holds (text averages well over 2 bytes a token), a second one sized exactly if not */
    size_t cap = len / 2 + 16, n = 0;
    if (!(ids = malloc(cap * sizeof *ids))) {
        r = cli_error("out of memory for %zu token ids", cap);
        goto done;
    }
    r = lc_tokenizer_tokenize(src.tok, s, len, flags, ids, cap, &n);
    if (r == LC_E_RANGE) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (!more) {
            r = cli_error("out of memory for %zu token ids", n);
            goto done;
        }
        ids = more, cap = n;
        r = lc_tokenizer_tokenize(src.tok, s, len, flags, ids, cap, &n);
    }
    if (r) {
        r = cli_lib_error();
        goto done;
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if ((r = print_tokens(src.tok, ids, n, mode))) goto done;
    if (fflush(stdout) || ferror(stdout)) r = cli_error("writing the output failed");
done:
    free(ids);
    free(text);
    source_close(&src);
    return r;
}

/* ---- detokenize ---- */

/* Ids separated by commas and/or blanks, with optional brackets ("[1, 2]", "1,2", "1 2\n"). what names the source. */
static int parse_id_text(const char *cmd, const char *what, const char *s, int32_t **out, size_t *n_out) {
    size_t cap = 16, n = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return cli_error("out of memory");
    for (const char *p = s;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ',' || *p == '[' || *p == ']')) p++;
        if (!*p) break;
        char *end = (char *)p;
        errno = 0;
        long long x = isdigit((unsigned char)*p) ? strtoll(p, &end, 10) : -1;
        if (x < 0 || (*end && !isspace((unsigned char)*end) && *end != ',' && *end != ']')) {
            free(v);
            size_t w = 0;
            while (w < 20 && p[w] && !isspace((unsigned char)p[w]) && p[w] != ',') w++;
            return cli_usage_error(cmd, "bad token id in %s: item %zu ('%.*s') is not a non-negative integer", what,
                                   n + 1, (int)w, p);
        }
        if (errno == ERANGE || x > INT32_MAX) {
            free(v);
            return cli_usage_error(cmd, "bad token id in %s: item %zu (%.*s) is out of range", what, n + 1,
                                   (int)(end - p), p);
        }
        if (n == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return cli_error("out of memory");
            }
            v = nv;
        }
        v[n++] = (int32_t)x;
        p = end;
    }
    *out = v;
    *n_out = n;
    return CLI_OK;
}

int cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize", *model = NULL, *tokenizer = NULL, *config = NULL, *ids_s = NULL, *file = NULL;
    bool special = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0, NULL, NULL},
        {NULL, "--tokenizer", CLI_STR, &tokenizer, 0, 0, NULL, NULL},
        {NULL, "--config", CLI_STR, &config, 0, 0, NULL, NULL},
        {NULL, "--ids", CLI_STR, &ids_s, 0, 0, NULL, NULL},
        {"-f", "--file", CLI_STR, &file, 0, 0, NULL, NULL},
        {NULL, "--special", CLI_FLAG, &special, 0, 0, NULL, NULL},
    };
    bool help;
    size_t n_pos;
    int r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(detokenize_help, stdout);
        return CLI_OK;
    }
    if (ids_s && file) return cli_usage_error(cmd, "give either --ids LIST or -f FILE, not both");
    if (!model == !tokenizer) return cli_usage_error(cmd, "give exactly one of -m MODEL or --tokenizer FILE");
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL, *buf = NULL;
    tok_source src = {0};
    if (ids_s) {
        if ((r = cli_parse_int_list(cmd, "--ids", ids_s, 0, INT32_MAX, &ids, &n))) return r;
    } else {
        size_t len;
        if ((r = cli_read_file(file ? file : "-", &text, &len))) return r;
        if (memchr(text, 0, len)) {
            free(text);
            return cli_usage_error(cmd, "%s holds a NUL byte; expected token ids", file ? file : "stdin");
        }
        r = parse_id_text(cmd, file ? file : "stdin", text, &ids, &n);
        free(text);
        if (r) return r;
    }
    if ((r = source_open(cmd, model, tokenizer, config, &src))) goto done;
    const uint32_t n_vocab = lc_tokenizer_n_vocab(src.tok);
    for (size_t i = 0; i < n; i++)
        if ((uint32_t)ids[i] >= n_vocab) {
            r = cli_usage_error(cmd, "token %d (item %zu) is outside the vocabulary [0, %u) of %s", (int)ids[i], i + 1,
                                n_vocab, tokenizer ? tokenizer : model);
            goto done;
        }
    size_t cap = 4096;
    if (!(buf = malloc(cap))) {
        r = cli_error("out of memory");
        goto done;
    }
    lc_detok d;
    lc_detok_init(&d, special);
    bool ends_nl = true;
    for (size_t i = 0; i <= n; i++) {
        size_t plen = 0;
        if (i < n) lc_tokenizer_piece(src.tok, ids[i], &plen);
        if (4 * (plen + 1) > cap) {
            cap = 4 * (plen + 1);
            char *nb = realloc(buf, cap);
            if (!nb) {
                r = cli_error("out of memory");
                goto done;
            }
            buf = nb;
        }
        int k = i < n ? lc_tokenizer_detok_push(src.tok, &d, ids[i], buf, cap) : lc_detok_flush(&d, buf, cap);
        if (k < 0) {
            r = cli_lib_error();
            goto done;
        }
        fwrite(buf, 1, (size_t)k, stdout);
        if (k) ends_nl = buf[k - 1] == '\n';
    }
    if (!ends_nl && isatty(1)) putchar('\n');
    if (fflush(stdout) || ferror(stdout)) r = cli_error("writing the output failed");
done:
    free(buf);
    free(ids);
    source_close(&src);
    return r;
}
