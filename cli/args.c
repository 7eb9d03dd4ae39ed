/* args.c - option parsing and error reporting shared by the subcommands of `llamac`.
**
** Numbers are parsed strictly (the whole string, no blanks, finite, within the option's range) so a typo such as
** "-n 12x" is a usage error naming the flag and the value, never a silent 12. Errors go to stderr; a usage error
** ends with a pointer to the subcommand's --help.
*/
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "llamac %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'llamac %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("llamac: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERR;
}

int cli_lib_error(void) { return cli_error("%s", lc_last_error()); }

/* ---- numbers ---- */

/* strtoll/strtod skip leading blanks and accept an empty string as 0; both are typos here. */
static bool blank_or_empty(const char *s) { return !*s || isspace((unsigned char)*s); }

int cli_parse_int(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = blank_or_empty(s) ? 0 : strtoll(s, &end, 10);
    if (blank_or_empty(s) || *end)
        return cli_usage_error(cmd, "bad value '%s' for %s: expected an integer", s, flag);
    if (errno == ERANGE || v < min || v > max)
        return cli_usage_error(cmd, "value '%s' for %s is out of range [%lld, %lld]", s, flag, (long long)min,
                               (long long)max);
    *out = v;
    return CLI_OK;
}

int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    /* strtoull accepts "-1" and wraps it; a seed is never negative */
    bool bad = blank_or_empty(s) || *s == '-' || *s == '+' || (hex && !isxdigit((unsigned char)s[2]));
    unsigned long long v = bad ? 0 : strtoull(s, &end, hex ? 16 : 10);
    if (bad || *end)
        return cli_usage_error(cmd, "bad value '%s' for %s: expected a non-negative integer (decimal or 0x hex)", s,
                               flag);
    if (errno == ERANGE) return cli_usage_error(cmd, "value '%s' for %s does not fit in 64 bits", s, flag);
    *out = v;
    return CLI_OK;
}

int cli_parse_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = blank_or_empty(s) ? 0 : strtod(s, &end);
    if (blank_or_empty(s) || *end) return cli_usage_error(cmd, "bad value '%s' for %s: expected a number", s, flag);
    if (!isfinite(v) || v < min || v > max)
        return cli_usage_error(cmd, "value '%s' for %s is out of range [%g, %g]", s, flag, min, max);
    *out = v;
    return CLI_OK;
}

int cli_parse_int_list(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int32_t **out,
                       size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return cli_error("out of memory parsing %s", flag);
    /* brackets and blanks around items are tolerated so a JSON array can be pasted */
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    bool bracket = *p == '[';
    if (bracket) p++;
    size_t n = 0;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (bracket && *p == ']' && n == 0) break; /* "[]" */
        char *end;
        errno = 0;
        long long x = (*p == '-' || *p == '+' || isdigit((unsigned char)*p)) ? strtoll(p, &end, 10) : 0;
        if (!(*p == '-' || *p == '+' || isdigit((unsigned char)*p)) || end == p) {
            free(v);
            return cli_usage_error(cmd, "bad value '%s' for %s: item %zu is not an integer (expected e.g. 1,2,3)", s,
                                   flag, n + 1);
        }
        if (errno == ERANGE || x < min || x > max) {
            free(v);
            return cli_usage_error(cmd, "bad value '%s' for %s: item %zu (%.*s) is out of range [%lld, %lld]", s, flag,
                                   n + 1, (int)(end - p), p, (long long)min, (long long)max);
        }
        v[n++] = (int32_t)x;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (bracket && *p == ']') p++;
        while (isspace((unsigned char)*p)) p++;
        if (*p) {
            free(v);
            return cli_usage_error(cmd, "bad value '%s' for %s: unexpected '%c' after item %zu", s, flag, *p, n);
        }
        break;
    }
    if (n == 0) {
        free(v);
        return cli_usage_error(cmd, "empty list for %s", flag);
    }
    *out = v;
    *n_out = n;
    return CLI_OK;
}

/* ---- options ---- */

static const cli_opt *find_opt(const cli_opt *opts, size_t n, const char *name, size_t len) {
    for (size_t i = 0; i < n; i++) {
        const char *s = opts[i].short_name, *l = opts[i].long_name;
        if (s && strlen(s) == len && memcmp(s, name, len) == 0) return &opts[i];
        if (l && strlen(l) == len && memcmp(l, name, len) == 0) return &opts[i];
    }
    return NULL;
}

static bool is_option_name(const cli_opt *opts, size_t n, const char *a) {
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return true;
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    return find_opt(opts, n, a, eq ? (size_t)(eq - a) : strlen(a)) != NULL;
}

static int set_value(const char *cmd, const cli_opt *o, const char *flag, const char *val) {
    int r = CLI_OK;
    switch (o->kind) {
    case CLI_FLAG: *(bool *)o->dst = true; break;
    case CLI_NOFLAG: *(bool *)o->dst = false; break;
    case CLI_STR: *(const char **)o->dst = val; break;
    case CLI_INT: r = cli_parse_int(cmd, flag, val, (int64_t)o->min, (int64_t)o->max, (int64_t *)o->dst); break;
    case CLI_U64: r = cli_parse_u64(cmd, flag, val, (uint64_t *)o->dst); break;
    case CLI_FLOAT: r = cli_parse_float(cmd, flag, val, o->min, o->max, (double *)o->dst); break;
    case CLI_CHOICE: {
        int idx = 0;
        size_t vl = strlen(val);
        for (const char *c = o->choices; *c; idx++) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && memcmp(c, val, vl) == 0) {
                *(int *)o->dst = idx;
                return CLI_OK;
            }
            if (!bar) break;
            c = bar + 1;
        }
        return cli_usage_error(cmd, "bad value '%s' for %s: expected one of %s", val, flag, o->choices);
    }
    }
    return r;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, size_t n_opts, const char **pos,
              size_t max_pos, size_t *n_pos, bool *help) {
    *help = false;
    *n_pos = 0;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) { /* "-" alone is a value (stdin), not an option */
            if (*n_pos >= max_pos) {
                if (max_pos == 0) return cli_usage_error(cmd, "unexpected argument '%s'", a);
                return cli_usage_error(cmd, "unexpected extra argument '%s'", a);
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *help = true;
            return CLI_OK;
        }
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = find_opt(opts, n_opts, a, name_len);
        if (!o) return cli_usage_error(cmd, "unknown option '%.*s'", (int)name_len, a);
        char flag[64];
        snprintf(flag, sizeof flag, "%.*s", (int)name_len, a);
        const char *val = NULL;
        if (o->kind == CLI_FLAG || o->kind == CLI_NOFLAG) {
            if (eq) return cli_usage_error(cmd, "option %s takes no value (got '%s')", flag, eq + 1);
        } else if (eq) {
            val = eq + 1;
        } else {
            /* "-m -p x": a known option where a value should be is a missing value, not a file called "-p" */
            if (i + 1 >= argc || is_option_name(opts, n_opts, argv[i + 1]))
                return cli_usage_error(cmd, "option %s needs a value", flag);
            val = argv[++i];
        }
        int r = set_value(cmd, o, flag, val);
        if (r) return r;
        if (o->seen) *o->seen = true;
    }
    return CLI_OK;
}

/* ---- models and files ---- */

static void load_progress(float fraction, void *user) {
    (void)user;
    fprintf(stderr, "\rloading model: %3d%%", (int)(fraction * 100.0f + 0.5f));
    fflush(stderr);
}

bool cli_use_mmap;

int cli_load_model(const char *path, lc_model **out, double *load_s) { return cli_load_model_ex(path, false, out, load_s); }

int cli_load_model_ex(const char *path, bool metadata_only, lc_model **out, double *load_s) {
    lc_model_params mp = lc_model_default_params();
    mp.metadata_only = metadata_only;
    mp.use_mmap = cli_use_mmap;
    bool tty = isatty(2);
    if (tty) mp.progress = load_progress;
    double t0 = lc_time_s();
    int r = lc_model_load(path, &mp, out);
    if (tty) fputs("\r\033[K", stderr); /* clear the progress line */
    if (load_s) *load_s = lc_time_s() - t0;
    if (r) {
        const char *msg = lc_last_error();
        if (strstr(msg, path)) return cli_error("%s", msg);
        return cli_error("%s: %s", path, msg);
    }
    return CLI_OK;
}

bool cli_model_add_bos(const lc_model *m) { return lc_token_add_bos(m); }

int cli_tokenize(const lc_model *m, const char *text, size_t len, bool add_bos, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    unsigned flags = add_bos ? LC_TOK_ADD_BOS : 0;
    size_t need = 0;
    int r = lc_tokenize(m, text, len, flags, NULL, 0, &need);
    if (r && r != LC_E_RANGE) return cli_lib_error();
    int32_t *v = malloc((need ? need : 1) * sizeof *v);
    if (!v) return cli_error("out of memory for %zu tokens", need);
    if (need && lc_tokenize(m, text, len, flags, v, need, n)) {
        free(v);
        return cli_lib_error();
    }
    *ids = v;
    *n = need;
    return CLI_OK;
}

int cli_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    bool is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return cli_error("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            if (!is_stdin) fclose(f);
            return cli_error("%s: out of memory reading the file", path);
        }
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    bool err = ferror(f);
    if (!is_stdin) fclose(f);
    if (err) {
        free(buf);
        return cli_error("%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return CLI_OK;
}

int cli_kv_type(int choice) { return choice == 1 ? LC_TYPE_F32 : LC_TYPE_F16; }

/* ---- JSON output ---- */

void cli_json_float(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.9g", x);
    else fputs("null", f);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid (overlong, surrogate, > U+10FFFF, truncated). */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (n == 0 || c > 0xF4) return 0;
    uint32_t cp = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

void cli_json_str(FILE *f, const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    while (*s) {
        unsigned c = *s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            s++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default: fprintf(f, "\\u%04x", c);
            }
            s++;
        } else {
            int n = utf8_len(s);
            if (n == 0) {
                fputs("\\ufffd", f);
                s++;
            } else {
                fwrite(s, 1, (size_t)n, f);
                s += n;
            }
        }
    }
    fputc('"', f);
}

/* ---- LoRA adapters on the command line ---- */

int cli_lora_take(const char *cmd, int *argc, char **argv, cli_lora *l) {
    int o = 1;
    for (int i = 1; i < *argc; i++) {
        const bool plain = !strcmp(argv[i], "--lora"), scaled = !strcmp(argv[i], "--lora-scaled");
        if (!strcmp(argv[i], "--lora-scale")) { /* the scale of the --lora just before */
            double s = 1.0;
            if (!l->n) return cli_usage_error(cmd, "--lora-scale S comes after the --lora FILE it scales");
            if (i + 1 >= *argc) return cli_usage_error(cmd, "--lora-scale needs a number");
            if (cli_parse_float(cmd, "--lora-scale", argv[++i], -1e6, 1e6, &s)) return CLI_USAGE;
            l->scale[l->n - 1] = (float)s;
            continue;
        }
        if (!plain && !scaled) {
            argv[o++] = argv[i];
            continue;
        }
        if (l->n == CLI_MAX_LORA) return cli_usage_error(cmd, "at most %d adapters", CLI_MAX_LORA);
        if (i + (scaled ? 2 : 1) >= *argc) return cli_usage_error(cmd, "%s needs %s", argv[i], scaled ? "FILE SCALE" : "FILE");
        l->file[l->n] = argv[++i];
        double s = 1.0;
        if (scaled && cli_parse_float(cmd, "--lora-scaled", argv[++i], -1e6, 1e6, &s)) return CLI_USAGE;
        l->scale[l->n++] = (float)s;
    }
    *argc = o;
    argv[o] = NULL;
    return CLI_OK;
}

int cli_lora_apply(cli_lora *l, const lc_model *m, lc_context *c) {
    if (!l->n) return CLI_OK;
    for (int i = 0; i < l->n; i++)
        if (lc_lora_load(m, l->file[i], &l->ad[i])) return cli_lib_error();
    if (lc_context_set_lora(c, l->ad, l->scale, (size_t)l->n)) return cli_lib_error();
    return CLI_OK;
}

void cli_lora_free(cli_lora *l) {
    for (int i = 0; i < l->n; i++) lc_lora_free(l->ad[i]);
}

uint64_t cli_random_seed(void) {
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&s, sizeof s, 1, f) != 1) s = 0;
        fclose(f);
    }
    if (!s) s = (uint64_t)time(NULL) * 6364136223846793005ull ^ (uint64_t)getpid();
    return s & 0xFFFFFFFFull;
}
