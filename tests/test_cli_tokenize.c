/* test_cli_tokenize.c - `llamac tokenize` and `llamac detokenize` from the outside, against references nobody here
** wrote: the ids of ../shared/data/tokenizer (Llama 2 from SentencePiece itself, Llama 3.1 from Hugging Face
** tokenizers; see its README) through --json with the tokenizer files given as --tokenizer, and the prompt ids of
** stories260K that llama.cpp and llama2.c agree on (../shared/data/stories260K/PROVENANCE.md). Also exit codes (0 ok,
** 1 runtime error, 2 usage error) and that a bad file gets exit 1 with a message naming it.
**
** The binary: env LLAMAC_BIN, else <build>/llamac derived from argv[0] (<build>/tests/test_cli_tokenize), else
** build/llamac. LLAMAC_QUICK (sanitizer builds) checks fewer corpus lines. A binary that cannot be started (a cross
** build under qemu) skips everything with a message.
*/
#include "harness.h"
#include "llamac.h"
#include "tok_jsonl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation" /* long paths in messages may be cut; that is fine */
#endif

static char g_bin[4096];
static char g_tmp[256]; /* private temporary directory */
static char g_data[4096]; /* ../shared/data/tokenizer, or "" */
static bool g_quick;

/* ---- running the tool ---------------------------------------------------------------------------------------- */
typedef struct proc {
    int status; /* exit code; 128 + signal if killed; 127 if it could not be started */
    char *out, *err;
    size_t out_len;
} proc;

static char *slurp(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (n_out) *n_out = n;
    return buf;
}

static void proc_free(proc *p) {
    free(p->out);
    free(p->err);
    memset(p, 0, sizeof *p);
}

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmp, name); }

/* Runs argv (argv[0] is the program; NULL-terminated) with stdin from in_path (NULL: /dev/null). */
static void run_in(proc *p, const char *in_path, const char *const *argv) {
    proc_free(p);
    char out_path[512], err_path[512];
    tmp_path(out_path, sizeof out_path, "stdout");
    tmp_path(err_path, sizeof err_path, "stderr");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0) _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) p->status = 127;
    else p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    p->out = slurp(out_path, &p->out_len);
    p->err = slurp(err_path, NULL);
    if (!p->out) p->out = calloc(1, 1);
    if (!p->err) p->err = calloc(1, 1);
}

/* LLAMAC(p, "tokenize", ...): runs the tool with these arguments; LLAMAC_IN the same with stdin from a file. */
#define LLAMAC(p, ...)                                                                                             \
    do {                                                                                                           \
        const char *av_[] = {g_bin, __VA_ARGS__, NULL};                                                            \
        run_in((p), NULL, av_);                                                                                    \
    } while (0)
#define LLAMAC_IN(p, in, ...)                                                                                      \
    do {                                                                                                           \
        const char *av_[] = {g_bin, __VA_ARGS__, NULL};                                                            \
        run_in((p), (in), av_);                                                                                    \
    } while (0)

#define CHECK_EXIT(p, want)                                                                                        \
    CHECKF((p)->status == (want), "exit %d, expected %d; stderr: %.600s", (p)->status, (want), (p)->err)
#define CHECK_HAS(s, sub) CHECKF(strstr((s), (sub)) != NULL, "'%s' not found in: %.600s", (sub), (s))

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = n == 0 || fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void data_file(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_data, name); }

/* ---- strict reading of --json output: exactly one line holding one JSON array of integers ------------------ */
static bool parse_id_array(const char *s, size_t len, int32_t **ids, size_t *n, const char **why) {
    *ids = NULL;
    *n = 0;
    *why = NULL;
    if (len == 0 || s[len - 1] != '\n' || memchr(s, '\n', len - 1)) {
        *why = "not exactly one line";
        return false;
    }
    const char *p = s, *end = s + len - 1;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p >= end || *p++ != '[') {
        *why = "no '['";
        return false;
    }
    int32_t *v = malloc((len / 2 + 1) * sizeof *v);
    size_t k = 0;
    bool need_item = false;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p < end && *p == ']' && !need_item) {
            p++;
            break;
        }
        /* JSON integer: -?(0|[1-9][0-9]*); token ids are non-negative */
        if (p >= end || !isdigit((unsigned char)*p) || (*p == '0' && p + 1 < end && isdigit((unsigned char)p[1]))) {
            free(v);
            *why = "bad item";
            return false;
        }
        long long x = 0;
        while (p < end && isdigit((unsigned char)*p) && x < INT32_MAX) x = x * 10 + (*p++ - '0');
        if (x > INT32_MAX) {
            free(v);
            *why = "item out of range";
            return false;
        }
        v[k++] = (int32_t)x;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p < end && *p == ',') {
            p++;
            need_item = true;
            continue;
        }
        need_item = false;
        if (p < end && *p == ']') {
            p++;
            break;
        }
        free(v);
        *why = "expected ',' or ']'";
        return false;
    }
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p != end) {
        free(v);
        *why = "text after the array";
        return false;
    }
    *ids = v;
    *n = k;
    return true;
}

static int first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i == na && i == nb ? -1 : (int)i;
}

/* Runs `tokenize --tokenizer TOK --json -f TEXTFILE [extra...]` and compares with want; returns an error message
** (static) or NULL. */
static const char *tokenize_equals(const char *tok, const char *text_file, const char *const *extra, size_t n_extra,
                                   const int32_t *want, size_t n_want) {
    static char msg[1024];
    const char *av[16] = {g_bin, "tokenize", "--tokenizer", tok, "--json", "-f", text_file};
    size_t n = 7;
    for (size_t i = 0; i < n_extra && n < 15; i++) av[n++] = extra[i];
    av[n] = NULL;
    proc p = {0};
    run_in(&p, NULL, av);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const char *why = NULL;
    if (p.status != 0) snprintf(msg, sizeof msg, "exit %d: %.300s", p.status, p.err);
    else if (!parse_id_array(p.out, p.out_len, &ids, &n_ids, &why))
        snprintf(msg, sizeof msg, "output is not one JSON array of ids (%s): %.200s", why, p.out);
    else {
        int at = first_diff(ids, n_ids, want, n_want);
        if (at < 0) msg[0] = 0;
        else
            snprintf(msg, sizeof msg, "%zu ids vs %zu expected, first difference at %d: %d vs %d", n_ids, n_want, at,
                     (size_t)at < n_ids ? ids[at] : -1, (size_t)at < n_want ? want[at] : -1);
    }
    free(ids);
    proc_free(&p);
    return msg[0] ? msg : NULL;
}

static char *ids_to_list(const int32_t *ids, size_t n) {
    char *s = malloc(12 * n + 2), *o = s;
    *o = 0;
    for (size_t i = 0; i < n; i++) o += sprintf(o, i ? ",%d" : "%d", (int)ids[i]);
    return s;
}

/* ---- the corpus ---------------------------------------------------------------------------------------------- */

typedef struct corpus_stats {
    int lines, checked, bad;
    char first_bad[700];
} corpus_stats;

static void note_bad(corpus_stats *st, int line, const char *mode, const char *text, const char *msg) {
    if (st->bad++ == 0)
        snprintf(st->first_bad, sizeof st->first_bad, "line %d (%s) \"%.40s\": %s", line, mode, text, msg);
}

/* Llama 2: tokenizer.model through --tokenizer. BOS by default (HF LlamaTokenizer's add_bos_token), ids without it
** under --no-bos; detokenize gives the text back (sp.decode). */
TEST(llama2_corpus_json) {
    if (!g_data[0]) SKIP("../shared/data/tokenizer not found (set LLAMAC_SHARED_DATA)");
    char model[4200], jsonl[4200], text_file[512];
    data_file(model, sizeof model, "llama2.tokenizer.model");
    data_file(jsonl, sizeof jsonl, "llama2.jsonl");
    tmp_path(text_file, sizeof text_file, "text");
    FILE *fp = fopen(jsonl, "r");
    CHECKF(fp, "cannot open %s", jsonl);
    static char line[1 << 20];
    corpus_stats st = {0};
    const int every = g_quick ? 10 : 1;
    while (fgets(line, sizeof line, fp)) {
        st.lines++;
        if ((st.lines - 1) % every) continue;
        size_t len = 0, n_ids = 0, n_bos = 0, n_dec = 0;
        char *text = json_str(line, "text", &len), *dec = json_str(line, "decoded", &n_dec);
        int32_t *ids = json_ids(line, "ids", &n_ids), *ids_bos = json_ids(line, "ids_bos", &n_bos);
        if (!text || !ids || !ids_bos || !dec || !write_file(text_file, text, len)) {
            note_bad(&st, st.lines, "read", line, "missing fields or cannot write the text");
        } else {
            st.checked++;
            const char *m = tokenize_equals(model, text_file, NULL, 0, ids_bos, n_bos);
            if (m) note_bad(&st, st.lines, "default (BOS)", text, m);
            const char *nb[] = {"--no-bos"};
            if ((m = tokenize_equals(model, text_file, nb, 1, ids, n_ids))) note_bad(&st, st.lines, "--no-bos", text, m);
            if (st.lines % (4 * every) == 1 && n_bos) { /* detokenize the BOS ids: BOS hidden, the text back */
                char *list = ids_to_list(ids_bos, n_bos);
                proc p = {0};
                LLAMAC(&p, "detokenize", "--tokenizer", model, "--ids", list);
                if (p.status != 0 || p.out_len != n_dec || memcmp(p.out, dec, n_dec))
                    note_bad(&st, st.lines, "detokenize", text, p.status ? p.err : "different text");
                proc_free(&p);
                free(list);
            }
        }
        free(text), free(dec), free(ids), free(ids_bos);
    }
    fclose(fp);
    printf("        llama2: %d of %d lines checked (x2 modes), %d differ\n", st.checked, st.lines, st.bad);
    CHECKF(st.lines == 328, "%d lines in %s, want 328", st.lines, jsonl);
    CHECKF(st.bad == 0, "%d differ; first: %s", st.bad, st.first_bad);
}

/* Llama 3.1: tokenizer.json (its tokenizer_config.json found beside it) through --tokenizer. With --special the
** reference's default (special-token text parsed): ids_bos by default, ids with --no-bos; without --special the
** special-token text stays text (ids_special_as_text). A subset for time, always including the special-text lines. */
TEST(llama31_corpus_json) {
    if (!g_data[0]) SKIP("../shared/data/tokenizer not found (set LLAMAC_SHARED_DATA)");
    char tok[4200], jsonl[4200], text_file[512];
    data_file(tok, sizeof tok, "llama3_1.tokenizer.json");
    data_file(jsonl, sizeof jsonl, "llama3_1.jsonl");
    tmp_path(text_file, sizeof text_file, "text");
    FILE *fp = fopen(jsonl, "r");
    CHECKF(fp, "cannot open %s", jsonl);
    static char line[1 << 20];
    corpus_stats st = {0};
    const int every = g_quick ? 40 : 10;
    int n_special_lines = 0, n_runs = 0;
    while (fgets(line, sizeof line, fp)) {
        st.lines++;
        size_t len = 0, n_ids = 0, n_bos = 0, n_txt = 0, n_dec = 0;
        int32_t *as_text = json_ids(line, "ids_special_as_text", &n_txt);
        bool special_line = as_text != NULL && (!g_quick || n_special_lines < 3);
        if ((st.lines - 1) % every && !special_line) {
            free(as_text);
            continue;
        }
        char *text = json_str(line, "text", &len), *dec = json_str(line, "decoded", &n_dec);
        int32_t *ids = json_ids(line, "ids", &n_ids), *ids_bos = json_ids(line, "ids_bos", &n_bos);
        if (!text || !ids || !ids_bos || !dec || !write_file(text_file, text, len)) {
            note_bad(&st, st.lines, "read", line, "missing fields or cannot write the text");
        } else {
            st.checked++;
            const char *sp[] = {"--special"}, *sp_nb[] = {"--special", "--no-bos"}, *nb[] = {"--no-bos"};
            const char *m = tokenize_equals(tok, text_file, sp, 1, ids_bos, n_bos);
            n_runs++;
            if (m) note_bad(&st, st.lines, "--special (BOS)", text, m);
            if (st.checked % 3 == 1) {
                n_runs++;
                if ((m = tokenize_equals(tok, text_file, sp_nb, 2, ids, n_ids)))
                    note_bad(&st, st.lines, "--special --no-bos", text, m);
            }
            if (special_line || st.checked % 3 == 2) { /* special-token text as plain text */
                n_runs++;
                n_special_lines += special_line;
                if ((m = tokenize_equals(tok, text_file, nb, 1, as_text ? as_text : ids, as_text ? n_txt : n_ids)))
                    note_bad(&st, st.lines, "--no-bos, no --special", text, m);
            }
            if (st.checked % 6 == 1) { /* detokenize --special: the reference's decode (specials shown) */
                char *list = ids_to_list(ids, n_ids);
                proc p = {0};
                n_runs++;
                LLAMAC(&p, "detokenize", "--tokenizer", tok, "--special", "--ids", list);
                if (p.status != 0 || p.out_len != n_dec || memcmp(p.out, dec, n_dec))
                    note_bad(&st, st.lines, "detokenize --special", text, p.status ? p.err : "different text");
                proc_free(&p);
                free(list);
            }
        }
        free(text), free(dec), free(ids), free(ids_bos), free(as_text);
    }
    fclose(fp);
    printf("        llama3.1: %d of %d lines checked (%d runs, %d special-text lines), %d differ\n", st.checked,
           st.lines, n_runs, n_special_lines, st.bad);
    CHECKF(st.lines == 328, "%d lines in %s, want 328", st.lines, jsonl);
    CHECK(n_special_lines >= 3);
    CHECKF(st.bad == 0, "%d differ; first: %s", st.bad, st.first_bad);
}

/* stories260K: "Once upon a time" is 1 403 407 261 378 for llama.cpp and llama2.c (PROVENANCE.md), from the GGUF
** model (-m) and from the llama2.c tokenizer.bin (--tokenizer); --ids and --json print the same ids. */
TEST(stories260k_prompt) {
    const char *d = th_shared_dir();
    if (!d) SKIP("../shared/data not found (set LLAMAC_SHARED_DATA)");
    char gguf[4200], bin[4200];
    snprintf(gguf, sizeof gguf, "%s/stories260K/stories260K.gguf", d);
    snprintf(bin, sizeof bin, "%s/stories260K/tok512.bin", d);
    const int32_t want[] = {1, 403, 407, 261, 378};
    proc p = {0};
    const char *srcs[][2] = {{"-m", gguf}, {"--tokenizer", bin}};
    for (int s = 0; s < 2; s++) {
        LLAMAC(&p, "tokenize", srcs[s][0], srcs[s][1], "-p", "Once upon a time", "--json");
        CHECK_EXIT(&p, 0);
        int32_t *ids = NULL;
        size_t n = 0;
        const char *why;
        CHECKF(parse_id_array(p.out, p.out_len, &ids, &n, &why), "%s: %s", why, p.out);
        int at = first_diff(ids, n, want, 5);
        free(ids);
        CHECKF(at < 0, "%s %s: differs at %d: %s", srcs[s][0], srcs[s][1], at, p.out);
        LLAMAC(&p, "tokenize", srcs[s][0], srcs[s][1], "-p", "Once upon a time", "--ids");
        CHECK_EXIT(&p, 0);
        CHECKF(!strcmp(p.out, "1,403,407,261,378\n"), "--ids: %s", p.out);
        LLAMAC(&p, "tokenize", srcs[s][0], srcs[s][1], "-p", "Once upon a time", "--json", "--no-bos");
        CHECKF(p.status == 0 && !strcmp(p.out, "[403, 407, 261, 378]\n"), "--no-bos: %s", p.out);
    }
    /* the checkpoint itself has no tokenizer.bin beside it: a runtime error that says what to do */
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/stories260K/stories260K.bin", d);
    LLAMAC(&p, "tokenize", "-m", ckpt, "-p", "x");
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, ckpt);
    CHECK_HAS(p.err, "--tokenizer");
    proc_free(&p);
}

/* Input from -p, -f and stdin gives the same ids; --pieces shows each id with its piece and bytes; detokenize reads
** the --ids output from stdin; an id list round-trips. Ids and pieces are Llama 2's (<0xNN> is id NN + 3). */
TEST(inputs_and_formats) {
    if (!g_data[0]) SKIP("../shared/data/tokenizer not found (set LLAMAC_SHARED_DATA)");
    char model[4200], in[512];
    data_file(model, sizeof model, "llama2.tokenizer.model");
    tmp_path(in, sizeof in, "in");
    const char *text = "emoji at end \xF0\x9F\x8E\x89"; /* a line of llama2.jsonl */
    const char *ref = "1,953,29877,2397,472,1095,29871,243,162,145,140\n";
    CHECK(write_file(in, text, strlen(text)));
    proc p = {0};
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", text, "--ids");
    CHECKF(p.status == 0 && !strcmp(p.out, ref), "-p: %s vs %s", p.out, ref);
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-f", in, "--ids");
    CHECKF(p.status == 0 && !strcmp(p.out, ref), "-f: %s vs %s", p.out, ref);
    LLAMAC_IN(&p, in, "tokenize", "--tokenizer", model, "--ids");
    CHECKF(p.status == 0 && !strcmp(p.out, ref), "stdin: %s vs %s", p.out, ref);
    LLAMAC_IN(&p, in, "tokenize", "--tokenizer", model, "-f", "-", "--ids");
    CHECKF(p.status == 0 && !strcmp(p.out, ref), "-f -: %s vs %s", p.out, ref);

    /* "😀" is [29871, 243, 162, 155, 131] in llama2.jsonl: U+2581, then the bytes F0 9F 98 80 */
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", "\xF0\x9F\x98\x80", "--pieces");
    CHECK_EXIT(&p, 0);
    CHECKF(!strcmp(p.out, "1\t\"<s>\"\t\"<s>\"\n"
                          "29871\t\"\xE2\x96\x81\"\t\" \"\n"
                          "243\t\"<0xF0>\"\t\"\\xF0\"\n"
                          "162\t\"<0x9F>\"\t\"\\x9F\"\n"
                          "155\t\"<0x98>\"\t\"\\x98\"\n"
                          "131\t\"<0x80>\"\t\"\\x80\"\n"),
           "--pieces:\n%s", p.out);
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", "Hi");
    CHECKF(p.status == 0 && !strncmp(p.out, "1\t", 2), "--pieces is the default: %s", p.out);

    /* tokenize --ids | detokenize: the text back (BOS hidden, SentencePiece's leading space dropped) */
    char ids_file[512];
    tmp_path(ids_file, sizeof ids_file, "ids");
    CHECK(write_file(ids_file, ref, strlen(ref)));
    LLAMAC_IN(&p, ids_file, "detokenize", "--tokenizer", model);
    CHECK_EXIT(&p, 0);
    CHECKF(p.out_len == strlen(text) && !memcmp(p.out, text, p.out_len), "detokenize: '%s'", p.out);
    LLAMAC(&p, "detokenize", "--tokenizer", model, "--ids", "[1, 15043, 3186]", "--special");
    CHECKF(p.status == 0 && !strcmp(p.out, "<s> Hello world"), "--special: '%s'", p.out);
    LLAMAC(&p, "detokenize", "--tokenizer", model, "-f", ids_file);
    CHECKF(p.status == 0 && p.out_len == strlen(text), "-f: '%s'", p.out);
    /* a byte token cut short at the end comes out as U+FFFD, never as a broken character */
    LLAMAC(&p, "detokenize", "--tokenizer", model, "--ids", "15043,243,162");
    CHECKF(p.status == 0 && !strcmp(p.out, "Hello\xEF\xBF\xBD"), "cut character: '%s'", p.out);

    /* invalid UTF-8: each bad byte its byte token (<0xFF> is 0xFF + 3), more ids than bytes / 2 */
    char ff[100];
    memset(ff, 0xFF, sizeof ff);
    CHECK(write_file(in, ff, sizeof ff));
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-f", in, "--ids");
    char want_ff[600] = "1,29871";
    for (int i = 0; i < 100; i++) strcat(want_ff, ",258");
    strcat(want_ff, "\n");
    CHECKF(p.status == 0 && !strcmp(p.out, want_ff), "100 x 0xFF: %d %.200s", p.status, p.out);

    /* empty text: just BOS, or nothing */
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", "", "--json");
    CHECKF(p.status == 0 && !strcmp(p.out, "[1]\n"), "empty: %s", p.out);
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", "", "--json", "--no-bos");
    CHECKF(p.status == 0 && !strcmp(p.out, "[]\n"), "empty --no-bos: %s", p.out);
    /* Llama 2's control tokens: plain text by default (as SentencePiece), single ids with --special (as HF) */
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", "<s>", "--json", "--no-bos");
    CHECKF(p.status == 0 && !strcmp(p.out, "[529, 29879, 29958]\n"), "<s> as text: %s", p.out);
    LLAMAC(&p, "tokenize", "--tokenizer", model, "-p", "<s>", "--json", "--no-bos", "--special");
    CHECKF(p.status == 0 && !strcmp(p.out, "[1]\n"), "<s> parsed: %s", p.out);
    proc_free(&p);
}

/* --config: an explicit tokenizer_config.json; "" for none. Llama 3's (3.0) config names <|end_of_text|> as EOS but
** BOS is the same, so the ids agree; a broken config is a runtime error naming the config file. */
TEST(config_option) {
    if (!g_data[0]) SKIP("../shared/data/tokenizer not found (set LLAMAC_SHARED_DATA)");
    char tok[4200], cfg[4200], bad[512];
    data_file(tok, sizeof tok, "llama3_1.tokenizer.json");
    data_file(cfg, sizeof cfg, "llama3.tokenizer_config.json");
    tmp_path(bad, sizeof bad, "tokenizer_config.json");
    CHECK(write_file(bad, "{\"add_bos_token\": tru", 21));
    proc p = {0};
    LLAMAC(&p, "tokenize", "--tokenizer", tok, "--config", cfg, "-p", "Hello world", "--json");
    CHECKF(p.status == 0 && !strcmp(p.out, "[128000, 9906, 1917]\n"), "--config: %d %s %s", p.status, p.out, p.err);
    LLAMAC(&p, "tokenize", "--tokenizer", tok, "--config", bad, "-p", "Hello", "--json");
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, bad);
    LLAMAC(&p, "tokenize", "--config", cfg, "-m", tok, "-p", "Hello");
    CHECK_EXIT(&p, 2);
    proc_free(&p);
}

/* Exit codes: usage errors 2 (with a pointer to --help), runtime errors 1, --help 0. */
TEST(usage_errors) {
    char model[4200];
    if (g_data[0]) data_file(model, sizeof model, "llama2.tokenizer.model");
    else snprintf(model, sizeof model, "tokenizer.model");
    proc p = {0};
    LLAMAC(&p, "tokenize", "--help");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "--no-bos");
    CHECK_HAS(p.out, "--special");
    LLAMAC(&p, "detokenize", "--help");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "--ids");
    LLAMAC(&p, "help", "tokenize");
    CHECK_EXIT(&p, 0);
    LLAMAC(&p, "--help");
    CHECK_HAS(p.out, "tokenize");
    CHECK_HAS(p.out, "detokenize");

    const char *cases[][8] = {
        {"tokenize", "-p", "x", NULL},                                   /* no tokenizer */
        {"tokenize", "-m", "a.gguf", "--tokenizer", model, "-p", "x", NULL}, /* both */
        {"tokenize", "--tokenizer", model, "-p", "x", "-f", "y", NULL},  /* two inputs */
        {"tokenize", "--tokenizer", model, "-p", "x", "--ids", "--json", NULL},
        {"tokenize", "--tokenizer", model, "-p", "x", "--bogus", NULL},
        {"tokenize", "--tokenizer", NULL},                               /* missing value */
        {"tokenize", "--tokenizer", model, "extra", NULL},               /* stray argument */
        {"detokenize", "--tokenizer", model, "--ids", "1,x", NULL},
        {"detokenize", "--tokenizer", model, "--ids", "-1", NULL},
        {"detokenize", "--tokenizer", model, "--ids", "1", "-f", "y", NULL},
        {"detokenize", "--ids", "1", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *av[10] = {g_bin};
        for (int i = 0; i < 8 && cases[c][i]; i++) av[i + 1] = cases[c][i];
        run_in(&p, NULL, av);
        CHECKF(p.status == 2, "case %zu (%s %s ...): exit %d; stderr: %s", c, cases[c][0], cases[c][1], p.status, p.err);
        CHECKF(strstr(p.err, "--help"), "case %zu: no pointer to --help: %s", c, p.err);
    }
    if (g_data[0]) { /* ids outside the vocabulary, and ids from stdin that are not numbers */
        LLAMAC(&p, "detokenize", "--tokenizer", model, "--ids", "1,32000");
        CHECK_EXIT(&p, 2);
        CHECK_HAS(p.err, "32000");
        char ids_file[512];
        tmp_path(ids_file, sizeof ids_file, "ids");
        CHECK(write_file(ids_file, "1 2 three", 9));
        LLAMAC_IN(&p, ids_file, "detokenize", "--tokenizer", model);
        CHECK_EXIT(&p, 2);
        CHECK_HAS(p.err, "three");
    }
    proc_free(&p);
}

/* Bad files: exit 1 and a message naming the file, for every kind of tokenizer file and for -f. */
TEST(bad_files) {
    char path[512];
    proc p = {0};
    const char *missing = "/nonexistent/dir/tokenizer.json";
    LLAMAC(&p, "tokenize", "--tokenizer", missing, "-p", "x");
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, missing);
    LLAMAC(&p, "detokenize", "-m", missing, "--ids", "1");
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, missing);

    /* small broken files of each kind, written here */
    static const struct { const char *name; const char *data; size_t n; } bad[] = {
        {"empty.model", "", 0},
        {"garbage.model", "\x0a\xff\xff\xff\xff\x0f", 6},           /* a piece whose length runs past the end */
        {"trunc.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0", 40},
        {"unigram.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", 44},
        {"tokenizer.bin", "\x05\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00xy", 14}, /* length 9 > max 5 */
        {"trunc.gguf", "GGUF\x03\x00\x00\x00\x01", 9},
        {"notok.gguf", "GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 24},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tmp_path(path, sizeof path, bad[i].name);
        CHECK(write_file(path, bad[i].data, bad[i].n));
        LLAMAC(&p, "tokenize", "--tokenizer", path, "-p", "x");
        CHECKF(p.status == 1, "%s: exit %d; stderr: %s", bad[i].name, p.status, p.err);
        CHECKF(strstr(p.err, path) != NULL, "%s: the message does not name the file: %s", bad[i].name, p.err);
        CHECKF(!strstr(p.err, "--help"), "%s: a runtime error is not a usage error: %s", bad[i].name, p.err);
    }
    tmp_path(path, sizeof path, "trunc.gguf"); /* the same through -m */
    LLAMAC(&p, "tokenize", "-m", path, "-p", "x");
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, path);

    if (g_data[0]) { /* truncated copies of the real files */
        const char *real[] = {"llama2.tokenizer.model", "llama3_1.tokenizer.json"};
        for (int k = 0; k < 2; k++) {
            char src[4200];
            data_file(src, sizeof src, real[k]);
            size_t n = 0;
            char *all = slurp(src, &n);
            CHECKF(all && n > 100000, "cannot read %s", src);
            tmp_path(path, sizeof path, k ? "cut.tokenizer.json" : "cut.model");
            bool ok = write_file(path, all, n / 2);
            free(all);
            CHECK(ok);
            LLAMAC(&p, "tokenize", "--tokenizer", path, "-p", "x");
            CHECKF(p.status == 1, "%s cut in half: exit %d; stderr: %s", real[k], p.status, p.err);
            CHECK_HAS(p.err, path);
        }
        char model[4200];
        data_file(model, sizeof model, "llama2.tokenizer.model");
        LLAMAC(&p, "tokenize", "--tokenizer", model, "-f", missing);
        CHECK_EXIT(&p, 1);
        CHECK_HAS(p.err, missing);
    }
    proc_free(&p);
}

/* ---- main ---------------------------------------------------------------------------------------------------- */
static void find_bin(const char *argv0) {
    const char *e = getenv("LLAMAC_BIN");
    if (e && *e) {
        snprintf(g_bin, sizeof g_bin, "%s", e);
        return;
    }
    const char *slash = strrchr(argv0, '/'); /* <build>/tests/test_cli_tokenize -> <build>/llamac */
    if (slash) {
        snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv0), argv0);
        if (access(g_bin, X_OK) == 0) return;
    }
    const char *b = getenv("LLAMAC_BUILD");
    snprintf(g_bin, sizeof g_bin, "%s/llamac", b && *b ? b : "build");
}

static void cleanup_tmp(void) {
    const char *names[] = {"stdout", "stderr", "text", "in", "ids", "tokenizer_config.json", "empty.model",
                           "garbage.model", "trunc.json", "unigram.json", "tokenizer.bin", "trunc.gguf", "notok.gguf",
                           "cut.model", "cut.tokenizer.json"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        tmp_path(path, sizeof path, names[i]);
        unlink(path);
    }
    rmdir(g_tmp);
}

int main(int argc, char **argv) {
    (void)argc;
    find_bin(argv[0]);
    const char *q = getenv("LLAMAC_QUICK");
    g_quick = q && *q && strcmp(q, "0");
    const char *d = th_shared_dir();
    if (d) {
        snprintf(g_data, sizeof g_data, "%s/tokenizer", d);
        struct stat sb;
        if (stat(g_data, &sb) != 0) g_data[0] = 0;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/llamac-test-cli-tok-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        printf("cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    proc p = {0};
    bool runnable = access(g_bin, X_OK) == 0;
    if (runnable) LLAMAC(&p, "--version");
    if (!runnable) {
        printf("  FAIL  %s is not an executable (build it: make %s, or set LLAMAC_BIN)\n", g_bin, g_bin);
        th_failed++;
    } else if (p.status == 127) {
        printf("  skip  all: %s cannot be started here (a cross build under an emulator?)\n", g_bin);
        th_skipped++;
    } else {
        printf("testing %s\n", g_bin);
        RUN(usage_errors);
        RUN(bad_files);
        RUN(inputs_and_formats);
        RUN(config_option);
        RUN(stories260k_prompt);
        RUN(llama2_corpus_json);
        RUN(llama31_corpus_json);
    }
    proc_free(&p);
    cleanup_tmp();
    return TEST_SUMMARY();
}
