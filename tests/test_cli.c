/* test_cli.c - the `llamac` tool from the outside: exit codes (0 ok, 1 runtime error, 2 usage error), --help on every
** subcommand, synth -> info, the JSON of `logits` (checked by a strict parser here and by python3's json module),
** top-K log-probabilities against the full logits, seeded runs, and greedy generation on stories260K against the
** llama.cpp golden ids in ../shared/data (skipped when absent).
**
** The binary: env LLAMAC_BIN, else <build>/llamac derived from argv[0] (<build>/tests/test_cli), else build/llamac.
** Commands run through fork/exec with stdout and stderr captured in files of a private temporary directory.
*/
#include "harness.h"
#include "llamac.h"

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
static char g_tiny[512];  /* a tiny random model written by `llamac synth` (by test_synth_info) */

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

/* Runs argv (argv[0] is the program path; NULL-terminated) with stdin from /dev/null. */
static void run_argv(proc *p, const char *const *argv) {
    proc_free(p);
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/stdout", g_tmp);
    snprintf(err_path, sizeof err_path, "%s/stderr", g_tmp);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0) _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execvp(argv[0], (char *const *)argv);
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

/* LLAMAC(p, "run", "-m", ...): runs the tool with these arguments. */
#define LLAMAC(p, ...)                                                                                             \
    do {                                                                                                           \
        const char *av_[] = {g_bin, __VA_ARGS__, NULL};                                                            \
        run_argv((p), av_);                                                                                        \
    } while (0)

/* Fails unless the last command exited with code want. */
#define CHECK_EXIT(p, want)                                                                                        \
    CHECKF((p)->status == (want), "exit %d, expected %d; stderr: %.600s", (p)->status, (want), (p)->err)
#define CHECK_HAS(s, sub) CHECKF(strstr((s), (sub)) != NULL, "'%s' not found in: %.600s", (sub), (s))

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_tmp, name); }

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* ---- a strict JSON parser (RFC 8259), enough to check the tool's output independently ---------------------- */
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jval {
    jtype t;
    double num;          /* J_NUM, J_BOOL */
    char *str;           /* J_STR */
    struct jval *items;  /* J_ARR, J_OBJ values */
    char **keys;         /* J_OBJ */
    size_t n;
} jval;

typedef struct jparser {
    const char *s, *end;
    const char *err;
    int depth;
} jparser;

static void jfree(jval *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

static void jws(jparser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static bool jfail(jparser *p, const char *msg) {
    if (!p->err) p->err = msg;
    return false;
}

static bool jstring(jparser *p, char **out) {
    if (p->s >= p->end || *p->s != '"') return jfail(p, "expected a string");
    p->s++;
    size_t cap = 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (p->s >= p->end) break;
        unsigned char c = (unsigned char)*p->s++;
        if (c == '"') {
            b[n] = 0;
            *out = b;
            return true;
        }
        if (c < 0x20) break;
        if (c == '\\') {
            if (p->s >= p->end) break;
            char e = *p->s++;
            const char *map = strchr("\"\\/bfnrt", e);
            if (map) {
                c = (unsigned char)"\"\\/\b\f\n\r\t"[map - "\"\\/bfnrt"];
            } else if (e == 'u') {
                if (p->end - p->s < 4) break;
                for (int i = 0; i < 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p->s[i]) || !p->s[i]) goto bad;
                p->s += 4;
                c = '?'; /* contents of escapes are not needed by these tests */
            } else {
                goto bad;
            }
        }
        if (n + 2 > cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) free(b);
            b = nb;
            if (!b) break;
        }
        b[n++] = (char)c;
    }
bad:
    free(b);
    return jfail(p, "bad string");
}

static bool jnumber(jparser *p, double *out) {
    const char *s = p->s, *st = s;
    if (s < p->end && *s == '-') s++;
    if (s >= p->end) return jfail(p, "bad number");
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (s < p->end && *s >= '0' && *s <= '9') s++;
    else return jfail(p, "bad number");
    if (s < p->end && *s == '.') {
        s++;
        if (s >= p->end || *s < '0' || *s > '9') return jfail(p, "bad fraction");
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < p->end && (*s == '+' || *s == '-')) s++;
        if (s >= p->end || *s < '0' || *s > '9') return jfail(p, "bad exponent");
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    char tmp[64];
    if ((size_t)(s - st) >= sizeof tmp) return jfail(p, "number too long");
    memcpy(tmp, st, (size_t)(s - st));
    tmp[s - st] = 0;
    *out = strtod(tmp, NULL);
    p->s = s;
    return true;
}

static bool jvalue(jparser *p, jval *v);

static bool jpush(jval *v, jval *item, char *key) {
    jval *ni = realloc(v->items, (v->n + 1) * sizeof *ni);
    if (!ni) return false;
    v->items = ni;
    if (v->t == J_OBJ) {
        char **nk = realloc(v->keys, (v->n + 1) * sizeof *nk);
        if (!nk) return false;
        v->keys = nk;
        v->keys[v->n] = key;
    }
    v->items[v->n++] = *item;
    return true;
}

static bool jcontainer(jparser *p, jval *v, bool obj) {
    if (++p->depth > 64) return jfail(p, "nesting too deep");
    v->t = obj ? J_OBJ : J_ARR;
    p->s++;
    jws(p);
    if (p->s < p->end && *p->s == (obj ? '}' : ']')) {
        p->s++;
        p->depth--;
        return true;
    }
    for (;;) {
        char *key = NULL;
        jws(p);
        if (obj) {
            if (!jstring(p, &key)) return false;
            jws(p);
            if (p->s >= p->end || *p->s != ':') {
                free(key);
                return jfail(p, "expected ':'");
            }
            p->s++;
        }
        jval item = {0};
        if (!jvalue(p, &item) || !jpush(v, &item, key)) {
            jfree(&item);
            free(key);
            return jfail(p, "bad item");
        }
        jws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == (obj ? '}' : ']')) {
            p->s++;
            p->depth--;
            return true;
        }
        return jfail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool jvalue(jparser *p, jval *v) {
    jws(p);
    if (p->s >= p->end) return jfail(p, "unexpected end");
    char c = *p->s;
    if (c == '{' || c == '[') return jcontainer(p, v, c == '{');
    if (c == '"') {
        v->t = J_STR;
        return jstring(p, &v->str);
    }
    static const struct { const char *lit; jtype t; double num; } lits[] = {
        {"null", J_NULL, 0}, {"true", J_BOOL, 1}, {"false", J_BOOL, 0}};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(lits[i].lit);
        if ((size_t)(p->end - p->s) >= l && memcmp(p->s, lits[i].lit, l) == 0) {
            v->t = lits[i].t;
            v->num = lits[i].num;
            p->s += l;
            return true;
        }
    }
    v->t = J_NUM;
    return jnumber(p, &v->num);
}

/* Parses the whole text as one JSON value; *err gets the reason on failure. */
static bool jparse(const char *text, size_t len, jval *out, const char **err) {
    jparser p = {text, text + len, NULL, 0};
    memset(out, 0, sizeof *out);
    bool ok = jvalue(&p, out);
    if (ok) {
        jws(&p);
        if (p.s != p.end) ok = jfail(&p, "trailing characters after the value");
    }
    if (!ok) {
        jfree(out);
        *err = p.err ? p.err : "parse error";
    }
    return ok;
}

static const jval *jget(const jval *o, const char *key) {
    if (!o || o->t != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key)) return &o->items[i];
    return NULL;
}

/* ---- helpers ------------------------------------------------------------------------------------------------- */
static bool python_json_ok(const char *path, const char *check, char *why, size_t cap) {
    /* python3's json module as an independent validator; NaN/Infinity literals are rejected too */
    char code[2048];
    snprintf(code, sizeof code,
             "import json,sys\n"
             "def bad(c): raise ValueError('non-standard literal ' + c)\n"
             "d=json.load(open(sys.argv[1]), parse_constant=bad)\n"
             "%s\n",
             check);
    const char *av[] = {"python3", "-c", code, path, NULL};
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    run_argv(&p, av);
    bool ok = p.status == 0;
    if (p.status == 127) snprintf(why, cap, "python3 not available");
    else snprintf(why, cap, "%.500s", p.err);
    proc_free(&p);
    return ok || strcmp(why, "python3 not available") == 0;
}

static bool have_tiny(void) { return g_tiny[0] != 0; }

/* ---- tests --------------------------------------------------------------------------------------------------- */
TEST(test_help_and_version) {
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    LLAMAC(&p, "--help");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "usage: llamac");
    for (const char *c = "run\0info\0logits\0bench\0synth\0"; *c; c += strlen(c) + 1) CHECK_HAS(p.out, c);
    LLAMAC(&p, "--version");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, LC_VERSION);
    const char *cmds[] = {"run", "info", "logits", "bench", "synth"};
    for (size_t i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: llamac %s", cmds[i]);
        LLAMAC(&p, cmds[i], "--help");
        CHECK_EXIT(&p, 0);
        CHECK_HAS(p.out, want);
        LLAMAC(&p, cmds[i], "-h");
        CHECK_EXIT(&p, 0);
        CHECK_HAS(p.out, want);
        LLAMAC(&p, "help", cmds[i]);
        CHECK_EXIT(&p, 0);
        CHECK_HAS(p.out, want);
    }
    proc_free(&p);
}

/* Usage errors exit 2 before touching the model (which need not exist) and name the flag and the value. */
TEST(test_usage_errors) {
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    LLAMAC(&p, "frobnicate");
    CHECK_EXIT(&p, 2);
    CHECK_HAS(p.err, "frobnicate");
    {
        const char *av[] = {g_bin, NULL};
        run_argv(&p, av);
        CHECK_EXIT(&p, 2);
    }
    static const struct { const char *args[8]; const char *want1, *want2; } cases[] = {
        {{"run", "--bogus"}, "--bogus", NULL},
        {{"run", "-m", "x.gguf", "-p", "hi", "-n", "12x"}, "-n", "12x"},
        {{"run", "-m", "x.gguf", "-p", "hi", "--temp", "abc"}, "--temp", "abc"},
        {{"run", "-m", "x.gguf", "-p", "hi", "--top-p", "1.5"}, "--top-p", "1.5"},
        {{"run", "-m", "x.gguf", "-p", "hi", "--top-k", " 4"}, "--top-k", NULL},
        {{"run", "-m", "x.gguf", "-p", "hi", "--seed", "-1"}, "--seed", "-1"},
        {{"run", "-m", "x.gguf", "-p", "hi", "--kv", "f8"}, "--kv", "f8"},
        {{"run", "-m", "x.gguf", "-p", "hi", "-t", "0"}, "-t", "0"},
        {{"run", "-m", "x.gguf", "-p", "hi", "--temp", "nan"}, "--temp", "nan"},
        {{"run", "-m", "x.gguf", "-p", "hi", "-n", "99999999999999999999"}, "-n", "99999999999999999999"},
        {{"run", "-m"}, "-m", "needs a value"},
        {{"run", "-m", "-p", "hi"}, "-m", "needs a value"},
        {{"run", "-p", "hi"}, "-m", NULL},
        {{"run", "-m", "x.gguf"}, "-p", NULL},
        {{"run", "-m", "x.gguf", "-p", "hi", "extra"}, "extra", NULL},
        {{"run", "-m", "x.gguf", "-p", "hi", "--no-bos=1"}, "--no-bos", NULL},
        {{"logits", "-m", "x.gguf"}, "--ids", NULL},
        {{"logits", "-m", "x.gguf", "--ids", "1,a,3"}, "--ids", "1,a,3"},
        {{"logits", "-m", "x.gguf", "--ids", "1,,3"}, "--ids", NULL},
        {{"logits", "-m", "x.gguf", "--ids", "1,-2"}, "--ids", NULL},
        {{"logits", "-m", "x.gguf", "--ids=1", "--top", "0"}, "--top", "0"},
        {{"logits", "-m", "x.gguf", "-p", "a", "--ids", "1"}, "exactly one", NULL},
        {{"bench", "-m", "x.gguf", "-r", "0"}, "-r", "0"},
        {{"bench", "-m", "x.gguf", "-p", "1e3"}, "-p", "1e3"},
        {{"bench"}, "-m", NULL},
        {{"synth"}, "-o", NULL},
        {{"synth", "-o", "x.gguf", "--preset", "huge"}, "--preset", "huge"},
        {{"synth", "-o", "x.gguf", "--type", "q4_0"}, "--type", "q4_0"},
        {{"synth", "-o", "x.gguf", "--embd", "-5"}, "--embd", "-5"},
        {{"info"}, "MODEL", NULL},
        {{"info", "a.gguf", "b.gguf"}, "b.gguf", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *av[10] = {g_bin};
        size_t n = 1;
        for (size_t j = 0; j < 8 && cases[i].args[j]; j++) av[n++] = cases[i].args[j];
        av[n] = NULL;
        run_argv(&p, av);
        CHECKF(p.status == 2, "case %zu (%s %s ...): exit %d, expected 2; stderr: %.300s", i, av[1],
               av[2] ? av[2] : "", p.status, p.err);
        CHECKF(strstr(p.err, cases[i].want1), "case %zu: '%s' not in: %.300s", i, cases[i].want1, p.err);
        if (cases[i].want2) CHECKF(strstr(p.err, cases[i].want2), "case %zu: '%s' not in: %.300s", i, cases[i].want2, p.err);
        CHECKF(strstr(p.err, "--help"), "case %zu: no pointer to --help in: %.300s", i, p.err);
        CHECKF(p.out_len == 0, "case %zu: a usage error wrote to stdout: %.200s", i, p.out);
    }
    proc_free(&p);
}

/* synth writes the file it describes; info reports what the shapes imply (bytes computed here from the shapes). */
TEST(test_synth_info) {
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    char path[512], q8[512];
    tmp_path(path, sizeof path, "tiny.gguf");
    LLAMAC(&p, "synth", "-o", path, "--preset", "tiny", "--seed", "7");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.err, "RANDOM WEIGHTS");
    snprintf(g_tiny, sizeof g_tiny, "%s", path);

    LLAMAC(&p, "info", path);
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "general.architecture");
    CHECK_HAS(p.out, "llama");
    /* tiny: vocab 512, embd 128, 2 layers, 4 heads / 2 kv heads (head_dim 32), ff 384, untied */
    CHECK_HAS(p.out, "tensors (21)"); /* token_embd + 2 x 9 per layer + output_norm + output */
    CHECK_HAS(p.out, "blk.1.ffn_down.weight");
    char line[128];
    snprintf(line, sizeof line, "%d", 128 * 512 * 4); /* token_embd.weight, F32 */
    CHECK_HAS(p.out, line);
    snprintf(line, sizeof line, "%d", 128 * 64 * 4); /* blk.0.attn_k.weight: 128 x (2 * 32) */
    CHECK_HAS(p.out, line);
    CHECK_HAS(p.out, "n_head_kv    2");
    CHECK_HAS(p.out, "n_vocab      512");

    tmp_path(q8, sizeof q8, "tiny-q8.gguf");
    LLAMAC(&p, "synth", "-o", q8, "--type", "q8_0", "--embd", "64", "--heads", "2", "--kv-heads", "1", "--ff", "96",
           "--tied");
    CHECK_EXIT(&p, 0);
    LLAMAC(&p, "info", "-m", q8);
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "Q8_0");
    CHECK_HAS(p.out, "tensors (20)"); /* tied: no output.weight */
    snprintf(line, sizeof line, "%d", 512 * (64 / 32) * 34); /* token_embd.weight, Q8_0: 34 bytes per 32 values */
    CHECK_HAS(p.out, line);
    proc_free(&p);
}

/* Runtime errors exit 1 with "llamac: " and a message naming the file. */
TEST(test_bad_files) {
    if (!have_tiny()) SKIP("no tiny model (test_synth_info failed)");
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    char missing[512], junk[512], trunc1[512], trunc2[512];
    tmp_path(missing, sizeof missing, "does-not-exist.gguf");
    tmp_path(junk, sizeof junk, "not-a-model.gguf");
    tmp_path(trunc1, sizeof trunc1, "trunc-meta.gguf");
    tmp_path(trunc2, sizeof trunc2, "trunc-data.gguf");
    const char *text = "this is a text file, not a GGUF model\n";
    CHECK(write_file(junk, text, strlen(text)));
    size_t n = 0;
    char *whole = slurp(g_tiny, &n);
    CHECK(whole && n > 4096);
    bool ok = write_file(trunc1, whole, 200) && write_file(trunc2, whole, n / 2);
    free(whole);
    CHECK(ok);
    const char *files[] = {missing, junk, trunc1, trunc2};
    for (size_t i = 0; i < 4; i++) {
        LLAMAC(&p, "info", files[i]);
        CHECK_EXIT(&p, 1);
        CHECK_HAS(p.err, "llamac: ");
        CHECK_HAS(p.err, files[i]);
        LLAMAC(&p, "run", "-m", files[i], "-p", "hello", "-n", "4");
        CHECK_EXIT(&p, 1);
        CHECK_HAS(p.err, files[i]);
        LLAMAC(&p, "logits", "-m", files[i], "--ids", "1,2");
        CHECK_EXIT(&p, 1);
        CHECK_HAS(p.err, files[i]);
        LLAMAC(&p, "bench", "-m", files[i], "-p", "4", "-n", "2", "-r", "1");
        CHECK_EXIT(&p, 1);
        CHECK_HAS(p.err, files[i]);
    }
    /* a prompt file that does not exist, and an id outside the vocabulary (a usage error about --ids) */
    LLAMAC(&p, "run", "-m", g_tiny, "-f", missing);
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, missing);
    LLAMAC(&p, "logits", "-m", g_tiny, "--ids", "1,512");
    CHECK_EXIT(&p, 2);
    CHECK_HAS(p.err, "--ids");
    CHECK_HAS(p.err, "512");
    /* a prompt longer than the context */
    LLAMAC(&p, "run", "-m", g_tiny, "--ids", "1,2,3,4,5,6,7,8,9,10", "-c", "8");
    CHECK_EXIT(&p, 1);
    CHECK_HAS(p.err, "-c");
    proc_free(&p);
}

/* Reads the logits rows of a `logits` output into rows[n_rows][n_vocab] (malloc'd); checks the structure. */
static const char *logits_rows(const char *json, size_t len, int want_rows, int n_vocab, const int32_t *ids,
                               int first_pos, double **rows_out) {
    static char why[256];
    jval v;
    const char *err;
    *rows_out = NULL;
    if (!jparse(json, len, &v, &err)) {
        snprintf(why, sizeof why, "invalid JSON: %s", err);
        return why;
    }
    const jval *nv = jget(&v, "n_vocab"), *rows = jget(&v, "rows");
    const char *res = NULL;
    double *out = NULL;
    if (!nv || nv->t != J_NUM || nv->num != n_vocab) res = "n_vocab missing or wrong";
    else if (!rows || rows->t != J_ARR || rows->n != (size_t)want_rows) res = "rows missing or wrong count";
    else if (!(out = malloc((size_t)want_rows * (size_t)n_vocab * sizeof *out))) res = "out of memory";
    for (int r = 0; !res && r < want_rows; r++) {
        const jval *row = &rows->items[r], *pos = jget(row, "pos"), *tok = jget(row, "token"),
                   *lg = jget(row, "logits");
        if (!pos || pos->t != J_NUM || pos->num != first_pos + r) res = "row pos wrong";
        else if (!tok || tok->t != J_NUM || tok->num != ids[first_pos + r]) res = "row token wrong";
        else if (!lg || lg->t != J_ARR || lg->n != (size_t)n_vocab) res = "row logits missing or wrong length";
        for (int j = 0; !res && j < n_vocab; j++) {
            if (lg->items[j].t != J_NUM) res = "a logit is not a number";
            else out[(size_t)r * n_vocab + j] = lg->items[j].num;
        }
    }
    jfree(&v);
    if (res) free(out);
    else *rows_out = out;
    return res;
}

TEST(test_logits_json) {
    if (!have_tiny()) SKIP("no tiny model (test_synth_info failed)");
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    const int32_t ids[] = {1, 5, 9, 300, 7, 511};
    const int n = 6, V = 512;
    LLAMAC(&p, "logits", "-m", g_tiny, "--ids", "1,5,9,300,7,511", "--all", "--kv", "f32", "-t", "2");
    CHECK_EXIT(&p, 0);
    double *all = NULL, *last = NULL;
    const char *why = logits_rows(p.out, p.out_len, n, V, ids, 0, &all);
    CHECKF(!why, "--all: %s; output starts: %.200s", why, p.out);
    char path[512];
    tmp_path(path, sizeof path, "logits-all.json");
    CHECK(write_file(path, p.out, p.out_len));
    char pywhy[600];
    bool py = python_json_ok(path,
                             "assert d['n_vocab']==512 and len(d['rows'])==6\n"
                             "assert [r['pos'] for r in d['rows']]==list(range(6))\n"
                             "assert [r['token'] for r in d['rows']]==[1,5,9,300,7,511]\n"
                             "assert all(len(r['logits'])==512 and all(isinstance(x,(int,float)) for x in r['logits']) "
                             "for r in d['rows'])",
                             pywhy, sizeof pywhy);
    if (!py) free(all);
    CHECKF(py, "python3 json check failed: %s", pywhy);
    /* the last row alone (default), in one batch and in chunks of 2: the same numbers up to float rounding */
    const char *batch_args[2] = {"6", "2"};
    for (int k = 0; k < 2; k++) {
        LLAMAC(&p, "logits", "-m", g_tiny, "--ids", "[1, 5, 9, 300, 7, 511]", "--kv", "f32", "-b", batch_args[k]);
        if (p.status != 0) free(all);
        CHECK_EXIT(&p, 0);
        why = logits_rows(p.out, p.out_len, 1, V, ids, n - 1, &last);
        if (why) free(all);
        CHECKF(!why, "last row (-b %s): %s", batch_args[k], why);
        double d2 = 0, r2 = 0, mx = 0;
        for (int j = 0; j < V; j++) {
            double a = all[(size_t)(n - 1) * V + j], b = last[j];
            d2 += (a - b) * (a - b);
            r2 += a * a;
            if (fabs(a) > mx) mx = fabs(a);
        }
        free(last);
        if (!(mx > 0 && sqrt(d2) <= 1e-5 * sqrt(r2))) free(all);
        CHECKF(mx > 0, "all logits are zero");
        CHECKF(sqrt(d2) <= 1e-5 * sqrt(r2), "last row differs from --all's: rel %g (-b %s)", sqrt(d2 / r2),
               batch_args[k]);
    }
    /* text input: the JSON's tokens are the tokenizer's, BOS first as the vocabulary says */
    LLAMAC(&p, "logits", "-m", g_tiny, "-p", "hello world", "--all", "--top", "1");
    if (p.status != 0) free(all);
    CHECK_EXIT(&p, 0);
    jval v;
    const char *err;
    bool parsed = jparse(p.out, p.out_len, &v, &err);
    if (!parsed) free(all);
    CHECKF(parsed, "invalid JSON from -p: %s", err);
    const jval *rows = jget(&v, "rows");
    bool bos_first = rows && rows->t == J_ARR && rows->n >= 2 && jget(&rows->items[0], "token") &&
                     jget(&rows->items[0], "token")->num == 1;
    jfree(&v);
    free(all);
    CHECKF(bos_first, "-p 'hello world': expected >= 2 rows starting with BOS (1): %.300s", p.out);
    proc_free(&p);
}

/* --top K against the full logits: sorted best first, the right ids, logprob = logit - logsumexp(logits). */
TEST(test_logits_top) {
    if (!have_tiny()) SKIP("no tiny model (test_synth_info failed)");
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    const int32_t ids[] = {1, 42, 260, 3, 99};
    const int n = 5, V = 512, K = 8;
    LLAMAC(&p, "logits", "-m", g_tiny, "--ids", "1,42,260,3,99", "--all", "-t", "1");
    CHECK_EXIT(&p, 0);
    double *full = NULL;
    const char *why = logits_rows(p.out, p.out_len, n, V, ids, 0, &full);
    CHECKF(!why, "%s", why);
    const char *ks[2] = {"8", "512"};
    for (int pass = 0; pass < 2; pass++) {
        int k = pass ? V : K;
        LLAMAC(&p, "logits", "-m", g_tiny, "--ids", "1,42,260,3,99", "--all", "-t", "1", "--top", ks[pass]);
        if (p.status) free(full);
        CHECK_EXIT(&p, 0);
        jval v;
        const char *err;
        bool parsed = jparse(p.out, p.out_len, &v, &err);
        if (!parsed) free(full);
        CHECKF(parsed, "invalid JSON: %s", err);
        const jval *rows = jget(&v, "rows");
        const char *res = !rows || rows->t != J_ARR || rows->n != (size_t)n ? "rows wrong" : NULL;
        char detail[256] = "";
        for (int r = 0; !res && r < n; r++) {
            const double *x = full + (size_t)r * V;
            double mx = -INFINITY, s = 0;
            for (int j = 0; j < V; j++) mx = fmax(mx, x[j]);
            for (int j = 0; j < V; j++) s += exp(x[j] - mx);
            double lse = mx + log(s), sum_p = 0;
            const jval *top = jget(&rows->items[r], "top");
            if (jget(&rows->items[r], "logits")) res = "a --top row also has \"logits\"";
            else if (!top || top->t != J_ARR || top->n != (size_t)k) res = "\"top\" missing or not K pairs";
            double prev = INFINITY;
            for (int j = 0; !res && j < k; j++) {
                const jval *pr = &top->items[j];
                if (pr->t != J_ARR || pr->n != 2 || pr->items[0].t != J_NUM || pr->items[1].t != J_NUM) {
                    res = "a pair is not [id, logprob]";
                    break;
                }
                int id = (int)pr->items[0].num;
                double lp = pr->items[1].num;
                sum_p += exp(lp);
                if (id < 0 || id >= V) res = "id out of range";
                else if (lp > 0) res = "logprob > 0";
                else if (lp > prev) res = "pairs not sorted best first";
                else if (fabs(lp - (x[id] - lse)) > 1e-5) {
                    snprintf(detail, sizeof detail, "row %d id %d: logprob %.9g, logit - logsumexp %.9g", r, id, lp,
                             x[id] - lse);
                    res = detail;
                }
                /* nothing outside the top K may beat the K-th */
                if (!res && j == k - 1)
                    for (int t = 0; t < V; t++) {
                        bool in = false;
                        for (int q = 0; q < k && !in; q++) in = (int)top->items[q].items[0].num == t;
                        if (!in && x[t] - lse > lp + 1e-6) res = "a token outside the top K beats the K-th";
                    }
                prev = lp;
            }
            if (!res && k == V && fabs(sum_p - 1.0) > 1e-5) {
                snprintf(detail, sizeof detail, "row %d: probabilities of all %d sum to %.9g", r, V, sum_p);
                res = detail;
            }
            if (!res && sum_p > 1.0 + 1e-6) res = "top-K probabilities sum above 1";
        }
        jfree(&v);
        if (res) free(full);
        CHECKF(!res, "--top %s: %s", ks[pass], res);
    }
    free(full);
    proc_free(&p);
}

/* Count of space-separated ids on a --print-ids line; ids into out. */
static int parse_ids(const char *s, int32_t *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

TEST(test_run_seeded) {
    if (!have_tiny()) SKIP("no tiny model (test_synth_info failed)");
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    char *first = NULL;
    size_t first_len = 0;
    for (int k = 0; k < 2; k++) {
        LLAMAC(&p, "run", "-m", g_tiny, "-p", "Once upon a time", "-n", "24", "--seed", "1234", "--temp", "1.5",
               "--ignore-eos");
        if (p.status) free(first);
        CHECK_EXIT(&p, 0);
        if (k == 0) {
            first = malloc(p.out_len + 1);
            CHECK(first);
            memcpy(first, p.out, p.out_len + 1);
            first_len = p.out_len;
            CHECK_HAS(p.err, "seed 1234");
            CHECK_HAS(p.err, "tok/s");
            CHECK_HAS(p.err, "load");
        } else {
            bool same = first_len == p.out_len && memcmp(first, p.out, p.out_len) == 0;
            free(first);
            CHECKF(same, "two runs with --seed 1234 differ");
        }
    }
    /* the same with ids: 24 of them */
    int32_t a[64], b[64];
    LLAMAC(&p, "run", "-m", g_tiny, "--ids", "1,100,200", "-n", "24", "--seed", "99", "--print-ids", "--ignore-eos");
    CHECK_EXIT(&p, 0);
    int na = parse_ids(p.out, a, 64);
    CHECK_EQ_INT(na, 24);
    LLAMAC(&p, "run", "-m", g_tiny, "--ids", "1,100,200", "-n", "24", "--seed", "99", "--print-ids", "--ignore-eos",
           "-t", "1");
    CHECK_EXIT(&p, 0);
    int nb = parse_ids(p.out, b, 64);
    CHECK_EQ_INT(nb, 24);
    CHECK(memcmp(a, b, sizeof(int32_t) * 24) == 0);
    /* no seed: a random one, reported */
    LLAMAC(&p, "run", "-m", g_tiny, "-p", "hi", "-n", "2");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.err, "seed ");
    /* a full context stops generation and says so: 8 cells, 3 prompt tokens, 5 decoded + 1 last sampled */
    LLAMAC(&p, "run", "-m", g_tiny, "--ids", "1,2,3", "-c", "8", "-n", "-1", "--print-ids", "--ignore-eos");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.err, "full context");
    CHECK_EQ_INT(parse_ids(p.out, a, 64), 6);
    proc_free(&p);
}

/* Greedy run == argmax of `logits` step by step (two code paths: incremental decode vs one batch). */
TEST(test_run_greedy_matches_logits) {
    if (!have_tiny()) SKIP("no tiny model (test_synth_info failed)");
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    int32_t gen[8];
    LLAMAC(&p, "run", "-m", g_tiny, "--ids", "1,17,33", "-n", "4", "--temp", "0", "--print-ids", "--ignore-eos",
           "--kv", "f32");
    CHECK_EXIT(&p, 0);
    CHECK_EQ_INT(parse_ids(p.out, gen, 8), 4);
    int32_t seq[8] = {1, 17, 33};
    for (int step = 0; step < 4; step++) {
        char list[128];
        size_t l = 0;
        for (int i = 0; i < 3 + step; i++) l += (size_t)snprintf(list + l, sizeof list - l, i ? ",%d" : "%d", (int)seq[i]);
        LLAMAC(&p, "logits", "-m", g_tiny, "--ids", list, "--kv", "f32");
        CHECK_EXIT(&p, 0);
        double *row = NULL;
        const char *why = logits_rows(p.out, p.out_len, 1, 512, seq, 3 + step - 1, &row);
        CHECKF(!why, "%s", why);
        int best = 0;
        for (int j = 1; j < 512; j++)
            if (row[j] > row[best]) best = j;
        double gap = row[best] - row[gen[step]];
        free(row);
        /* a different pick is only acceptable on a near tie (float rounding differs between the two paths) */
        CHECKF(best == gen[step] || gap < 1e-4, "step %d: run picked %d, argmax of logits is %d (gap %g)", step,
               (int)gen[step], best, gap);
        seq[3 + step] = gen[step];
    }
    proc_free(&p);
}

TEST(test_bench) {
    if (!have_tiny()) SKIP("no tiny model (test_synth_info failed)");
    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    LLAMAC(&p, "bench", "-m", g_tiny, "-p", "16", "-n", "4", "-r", "2", "--json", "-t", "2");
    CHECK_EXIT(&p, 0);
    jval v;
    const char *err;
    CHECKF(jparse(p.out, p.out_len, &v, &err), "bench --json: %s: %.300s", err, p.out);
    const char *num_keys[] = {"pp_tps", "pp_sd", "tg_tps", "tg_sd", "threads", "model_bytes", "n_prompt", "n_gen",
                              "reps"};
    const char *res = NULL;
    for (size_t i = 0; i < sizeof num_keys / sizeof *num_keys && !res; i++) {
        const jval *x = jget(&v, num_keys[i]);
        if (!x || x->t != J_NUM) res = num_keys[i];
    }
    const jval *desc = jget(&v, "model_desc"), *cpu = jget(&v, "cpu_variant");
    bool strs = desc && desc->t == J_STR && cpu && cpu->t == J_STR;
    double pp = res ? 0 : jget(&v, "pp_tps")->num, tg = res ? 0 : jget(&v, "tg_tps")->num;
    double np = res ? 0 : jget(&v, "n_prompt")->num, reps = res ? 0 : jget(&v, "reps")->num;
    double thr = res ? 0 : jget(&v, "threads")->num, bytes = res ? 0 : jget(&v, "model_bytes")->num;
    jfree(&v);
    CHECKF(!res, "bench --json: key %s missing or not a number", res);
    CHECK(strs);
    CHECK(pp > 0 && tg > 0);
    CHECK(np == 16 && reps == 2 && thr == 2);
    /* the tiny model's tensors: 512x128 embedding and output, 2 layers of 4x128x128-ish attention and 3x128x384
    ** FFN, f32; the bytes of all tensors must be below the file's size and above the matrices' */
    double matrices = 4.0 * (2 * 512 * 128 + 2 * (2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 384));
    CHECKF(bytes >= matrices && bytes < matrices * 1.1, "model_bytes %g, matrices alone %g", bytes, matrices);
    LLAMAC(&p, "bench", "-m", g_tiny, "-p", "8", "-n", "2", "-r", "1");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "pp8");
    CHECK_HAS(p.out, "tg2");
    /* -B: 3 sequences decoding together (the cache must hold 3 x 5 cells; -n 5 -B 300 is refused by the range) */
    LLAMAC(&p, "bench", "-m", g_tiny, "-p", "0", "-n", "5", "-B", "3", "-r", "1", "--json");
    CHECK_EXIT(&p, 0);
    CHECKF(jparse(p.out, p.out_len, &v, &err), "bench -B --json: %s: %.300s", err, p.out);
    const jval *npar = jget(&v, "n_parallel"), *tgb = jget(&v, "tg_tps"), *gf = jget(&v, "tg_gflops");
    const bool par_ok = npar && npar->t == J_NUM && npar->num == 3 && tgb && tgb->t == J_NUM && tgb->num > 0 && gf &&
                        gf->t == J_NUM && gf->num > 0;
    jfree(&v);
    CHECKF(par_ok, "bench -B 3 --json: n_parallel, tg_tps, tg_gflops: %.300s", p.out);
    LLAMAC(&p, "bench", "-m", g_tiny, "-p", "0", "-n", "2", "-B", "4", "-r", "1");
    CHECK_EXIT(&p, 0);
    CHECK_HAS(p.out, "tg2x4");
    LLAMAC(&p, "bench", "-m", g_tiny, "-n", "2", "-B", "300");
    CHECK_EXIT(&p, 2);
    CHECK_HAS(p.err, "-B");
    LLAMAC(&p, "bench", "-m", g_tiny, "-n", "1048576", "-B", "2");
    CHECK_EXIT(&p, 2);
    CHECK_HAS(p.err, "cache cells");
    proc_free(&p);
}

/* stories260K: greedy ids against llama.cpp's (goldens in ../shared/data), from the .gguf and the llama2.c .bin. */
TEST(test_run_stories_greedy) {
    const char *sd = th_shared_dir();
    if (!sd) SKIP("shared data (../shared/data) absent");
    char gguf[1024], bin[1024], golden[1024];
    snprintf(gguf, sizeof gguf, "%s/stories260K/stories260K.gguf", sd);
    snprintf(bin, sizeof bin, "%s/stories260K/stories260K.bin", sd);
    snprintf(golden, sizeof golden, "%s/stories260K/goldens/greedy_prompt5_once_upon_a_time_kvf32.json", sd);
    size_t glen;
    char *gtext = slurp(golden, &glen);
    if (!gtext) SKIP("%s absent", golden);
    jval g;
    const char *err;
    bool parsed = jparse(gtext, glen, &g, &err);
    free(gtext);
    CHECKF(parsed, "%s: %s", golden, err);
    const jval *pid = jget(&g, "prompt_ids"), *gid = jget(&g, "ids"), *margin = jget(&g, "margin");
    if (!pid || !gid || !margin || gid->n != margin->n || gid->n > 64 || pid->n > 16) {
        jfree(&g);
        FAILF("%s: unexpected layout", golden);
    }
    int32_t prompt[16], want[64];
    double marg[64];
    int n_prompt = (int)pid->n, n_want = (int)gid->n;
    for (int i = 0; i < n_prompt; i++) prompt[i] = (int32_t)pid->items[i].num;
    for (int i = 0; i < n_want; i++) {
        want[i] = (int32_t)gid->items[i].num;
        marg[i] = margin->items[i].num;
    }
    jfree(&g);
    char n_s[16], ids_s[128];
    snprintf(n_s, sizeof n_s, "%d", n_want);
    size_t l = 0;
    for (int i = 0; i < n_prompt; i++) l += (size_t)snprintf(ids_s + l, sizeof ids_s - l, i ? ",%d" : "%d", (int)prompt[i]);

    static proc p; /* static: still reachable (not a leak) when a CHECK returns early */
    /* the tokenizer gives the golden's prompt ids (BOS first, as the vocabulary says) */
    LLAMAC(&p, "logits", "-m", gguf, "-p", "Once upon a time", "--all", "--top", "1", "--kv", "f32");
    CHECK_EXIT(&p, 0);
    jval v;
    CHECKF(jparse(p.out, p.out_len, &v, &err), "logits JSON: %s", err);
    const jval *rows = jget(&v, "rows");
    bool same_prompt = rows && rows->t == J_ARR && rows->n == (size_t)n_prompt;
    for (int i = 0; same_prompt && i < n_prompt; i++) {
        const jval *t = jget(&rows->items[i], "token");
        same_prompt = t && t->t == J_NUM && t->num == prompt[i];
    }
    jfree(&v);
    CHECKF(same_prompt, "'Once upon a time' does not tokenize to the golden's prompt ids %s: %.300s", ids_s, p.out);

    /* generation: text prompt on the .gguf; ids on the .bin (its tokenizer file is not named tokenizer.bin) */
    for (int k = 0; k < 2; k++) {
        if (k == 0)
            LLAMAC(&p, "run", "-m", gguf, "-p", "Once upon a time", "-n", n_s, "--temp", "0", "--kv", "f32", "-t", "2",
                   "--print-ids", "--ignore-eos");
        else
            LLAMAC(&p, "run", "-m", bin, "--ids", ids_s, "-n", n_s, "--temp", "0", "--kv", "f32", "-t", "2",
                   "--print-ids", "--ignore-eos");
        CHECK_EXIT(&p, 0);
        int32_t got[64];
        int n_got = parse_ids(p.out, got, 64);
        CHECKF(n_got == n_want, "%s: %d ids, expected %d: %.300s", k ? bin : gguf, n_got, n_want, p.out);
        /* Several steps have top-1/top-2 margins of a few thousandths of a logit (PROVENANCE.md): a float rounding
        ** difference may flip such a step, after which the continuations legitimately diverge. Exact up to the first
        ** near tie (margin < 0.01), which must come after at least 8 matching ids. */
        int i = 0;
        while (i < n_want && got[i] == want[i]) i++;
        if (i < n_want) {
            CHECKF(marg[i] < 0.01 && i >= 8, "%s: id %d differs at step %d: %d vs golden %d (margin %g)",
                   k ? bin : gguf, i, i, (int)got[i], (int)want[i], marg[i]);
            printf("  note  %s: matched %d of %d greedy ids; diverged at a near tie (margin %g)\n", k ? "bin" : "gguf", i,
                   n_want, marg[i]);
        }
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
    /* <build>/tests/test_cli -> <build>/llamac */
    const char *slash = strrchr(argv0, '/');
    if (slash) {
        snprintf(g_bin, sizeof g_bin, "%.*s/../llamac", (int)(slash - argv0), argv0);
        if (access(g_bin, X_OK) == 0) return;
    }
    const char *b = getenv("LLAMAC_BUILD");
    snprintf(g_bin, sizeof g_bin, "%s/llamac", b && *b ? b : "build");
}

static void cleanup_tmp(void) {
    const char *names[] = {"stdout", "stderr", "tiny.gguf", "tiny-q8.gguf", "not-a-model.gguf", "trunc-meta.gguf",
                           "trunc-data.gguf", "logits-all.json"};
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
    snprintf(g_tmp, sizeof g_tmp, "/tmp/llamac-test-cli-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        printf("cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    if (access(g_bin, X_OK) != 0) {
        printf("  FAIL  %s is not an executable (build it: make %s, or set LLAMAC_BIN)\n", g_bin, g_bin);
        th_failed++;
    } else {
        printf("testing %s\n", g_bin);
        RUN(test_help_and_version);
        RUN(test_usage_errors);
        RUN(test_synth_info);
        RUN(test_bad_files);
        RUN(test_logits_json);
        RUN(test_logits_top);
        RUN(test_run_seeded);
        RUN(test_run_greedy_matches_logits);
        RUN(test_bench);
        RUN(test_run_stories_greedy);
    }
    cleanup_tmp();
    return TEST_SUMMARY();
}
