/* cmd_chat.c - `llamac chat`: an interactive conversation with the model through its own chat template.
**
** The conversation itself (rendering every turn, KV-cache reuse of the common prefix, tool-call parsing, refusing
** what does not fit) is the library's lc_chat; this file is the terminal around it: reading messages (libedit with
** history on a terminal, plain lines otherwise), the slash commands, streaming answers, Ctrl-C, and the tool-call
** loop of --tools (the call is shown, the user types the tool's result, the model goes on).
*/
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef LC_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

static const char *help =
    "usage: llamac chat -m MODEL [options]\n"
    "\n"
    "Chats with the model through its chat template (a model without one gets llamac's template for its family, with\n"
    "a warning). Only the new part of the conversation is processed each turn: the rest stays in the KV cache.\n"
    "\n"
    "Input: type a message and Enter. End a line with \\ to continue the message on the next line, or put the\n"
    "message between two lines holding only \"\"\" (a block). A line starting with / is a command (start it with //\n"
    "to send a message that begins with /):\n"
    "  /reset         forget the conversation (the system prompt stays)\n"
    "  /system TEXT   replace the system prompt (no TEXT: remove it); the conversation is kept\n"
    "  /drop [N]      forget the N (1) oldest exchanges; after a message was refused for a full context, it is sent\n"
    "                 again\n"
    "  /save FILE     write the conversation (a JSON list of OpenAI-style messages)\n"
    "  /load FILE     continue a conversation saved with /save (or any such JSON list)\n"
    "  /help          this help;  /exit, /quit or Ctrl-D: quit\n"
    "Ctrl-C stops the current answer (what was generated stays in the conversation); at the prompt, pressed twice,\n"
    "it quits. A message that does not fit the context is refused, never cut: /drop, /reset or a larger -c.\n"
    "\n"
    "Without a terminal (stdin from a file or a pipe), the same input is read: each line (with its \\ continuations,\n"
    "or each \"\"\" block) is one message or command, each answer is written to stdout followed by a newline, and\n"
    "notes go to stderr, so a chat can be scripted. With --tools, the line after an answer that called a tool is that\n"
    "tool's result.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE         the model\n"
    "  --system TEXT            system prompt\n"
    "  --tools FILE             JSON list of tool definitions (OpenAI style, as the template takes them): the model's\n"
    "                           tool calls (Llama 3.1 format) are parsed, shown as calls, and you type each result\n"
    "  --builtin-tools LIST     Llama 3.1 built-in tools to enable, comma-separated (brave_search, wolfram_alpha,\n"
    "                           code_interpreter); implies tool-call parsing\n"
    "  --template FILE          use this Jinja chat template instead of the model's\n"
    "  -n, --n-predict N        at most N tokens per answer (default -1: until the end of the answer)\n"
    "  --temp T                 temperature (default 0.8; 0: greedy)\n"
    "  --top-k K, --top-p P, --min-p P, --repeat-penalty R, --repeat-last-n N, --seed S   sampling, as llamac run\n"
    "  -t, --threads N          threads (default: all cores)\n"
    "  --mmap                   map the model file instead of reading it into memory (huge pages)\n"
    "  -c, --ctx-size N         context size in tokens (default: the model's, at most 4096)\n"
    "  --kv f16|f32             KV cache type (default f16)\n"
    CLI_LORA_HELP
    "  --no-reuse               process the whole conversation again every turn (for checks; slower)\n"
    "  --verbose                after each answer, print on stderr the tokens reused, decoded and generated\n"
    "  -h, --help               this help\n";

static volatile sig_atomic_t g_interrupt;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupt++;
}

typedef struct chat_cli {
    lc_model *m;
    lc_context *c;
    lc_sampler *smp;
    lc_chat *ch;
    bool tty, verbose, tools;
    int64_t n_predict;
    int turn;
    char *pending; /* a message refused for a full context, sent again after /drop */
} chat_cli;

/* ---- input ---- */

/* One input line (without its newline) into *line (malloc'd); false at the end of input or on Ctrl-C. */
static bool read_line(bool tty, const char *prompt, char **line) {
    *line = NULL;
#ifdef LC_HAVE_LIBEDIT
    if (tty) {
        char *l = readline(prompt);
        if (!l) return false;
        if (*l) add_history(l);
        *line = l;
        return true;
    }
#endif
    if (tty) fputs(prompt, stdout), fflush(stdout);
    size_t cap = 0;
    const ssize_t n = getline(line, &cap, stdin);
    if (n < 0) {
        free(*line);
        *line = NULL;
        return false;
    }
    size_t len = (size_t)n;
    if (len && (*line)[len - 1] == '\n') (*line)[--len] = 0;
    if (len && (*line)[len - 1] == '\r') (*line)[--len] = 0;
    return true;
}

static bool append(char **msg, size_t *len, const char *s, size_t n, bool newline) {
    char *m = realloc(*msg, *len + n + 2);
    if (!m) return false;
    *msg = m;
    if (newline) m[(*len)++] = '\n';
    memcpy(m + *len, s, n);
    *len += n;
    m[*len] = 0;
    return true;
}

/* A message: a line, lines joined while they end with a backslash, or the lines between two """ lines. At the
** prompt of a terminal, Ctrl-C once warns and twice quits. False at the end of input. */
static bool read_message(bool tty, const char *prompt, char **msg) {
    *msg = NULL;
    g_interrupt = 0; /* a Ctrl-C that stopped an answer is not the first of two at the prompt */
    size_t len = 0;
    bool block = false, any = false;
    int block_lines = 0;
    for (;;) {
        char *line;
        errno = 0;
        if (!read_line(tty, any ? ". " : prompt, &line)) {
            if (tty && g_interrupt && !any) { /* Ctrl-C at the prompt */
                if (g_interrupt >= 2) return false;
                fputs("\n(Ctrl-C again to quit, or /exit)\n", stdout);
                clearerr(stdin);
                continue;
            }
            if (any && *msg) return true; /* the input ended inside a message: send what there is */
            free(*msg);
            *msg = NULL;
            return false;
        }
        g_interrupt = 0;
        size_t ln = strlen(line);
        if (!any && !strcmp(line, "\"\"\"")) { /* a block starts */
            block = any = true;
            free(line);
            if (!append(msg, &len, "", 0, false)) return false;
            continue;
        }
        if (block) {
            const bool close = !strcmp(line, "\"\"\"");
            const bool ok = close || append(msg, &len, line, ln, block_lines++ > 0);
            free(line);
            if (!ok) return false;
            if (close) return true;
            continue;
        }
        const bool more = ln && line[ln - 1] == '\\';
        if (more) line[--ln] = 0;
        const bool ok = append(msg, &len, line, ln, any);
        free(line);
        if (!ok) return false;
        any = true;
        if (!more) return true;
    }
}

/* ---- output ---- */

static void print_call(const lc_tool_call *c) {
    if (c->kind == LC_TOOL_CODE) printf("[tool call: code for %s]\n%s\n[end of code]\n", c->name, c->code);
    else printf("[tool call: %s %s]\n", c->name, c->arguments);
}

/* One answer to the conversation as it stands. *n_calls: the calls the model made. CLI_OK, or -1 when the
** conversation does not fit (said already), -2 when the template refused it (said), or CLI_ERR. */
static int answer(chat_cli *cc, size_t *n_calls) {
    *n_calls = 0;
    lc_chat_stats st;
    int r = lc_chat_prompt(cc->ch, &st);
    if (r == LC_E_RANGE) {
        fprintf(stderr,
                "llamac: %s.\n"
                "        /drop forgets the oldest exchange and sends your message again; /reset starts over (/save FILE\n"
                "        first to keep the conversation); or restart with a larger context (-c, now %d).\n",
                lc_last_error(), (int)lc_context_n_ctx(cc->c));
        return -1;
    }
    if (r == LC_E_FORMAT) { /* the template refuses the conversation */
        cli_lib_error();
        return -2;
    }
    if (r) return cli_lib_error();
    cc->turn++; /* g_interrupt is not cleared here: a Ctrl-C while the prompt was processed stops the answer */
    const char *why = NULL, *text;
    size_t n, shown = 0;
    int state = LC_CHAT_GOING;
    for (int64_t gen = 0; state == LC_CHAT_GOING; gen++) {
        if (g_interrupt) {
            why = "stopped (Ctrl-C)";
            break;
        }
        if (cc->n_predict >= 0 && gen >= cc->n_predict) {
            why = "answer length limit (-n)";
            break;
        }
        if ((r = lc_chat_step(cc->ch, cc->smp, &text, &n, &state))) break;
        fwrite(text, 1, n, stdout);
        fflush(stdout);
        shown += n;
    }
    if (state == LC_CHAT_FULL)
        why = "the context is full: the answer stops here; /drop forgets the oldest exchange, /reset starts over";
    const lc_tool_call *calls;
    if (r || (r = lc_chat_end(cc->ch, &text, &n, &calls, n_calls))) return cli_lib_error();
    fwrite(text, 1, n, stdout);
    if (n + shown || !*n_calls) printf("\n"); /* an answer ends its line; a call is printed on lines of its own */
    for (size_t i = 0; i < *n_calls; i++) print_call(&calls[i]);
    fflush(stdout);
    if (why) fprintf(stderr, "llamac: [%s]\n", why);
    const char *note = lc_chat_tool_note(cc->ch);
    if (note && cc->verbose) fprintf(stderr, "llamac: [%s]\n", note);
    if (cc->verbose) {
        lc_chat_get_stats(cc->ch, &st);
        fprintf(stderr, "llamac: [turn %d: prompt %d tokens, %d reused, %d decoded; %d generated; %d of %d cached]\n",
                cc->turn, (int)st.n_prompt, (int)st.n_reused, (int)st.n_decoded, (int)st.n_generated,
                (int)lc_chat_n_cached(cc->ch), (int)st.n_ctx);
    }
    return CLI_OK;
}

/* Sends a user message and answers it, with the tool loop: each call's result is read and the model goes on. */
static int send_message(chat_cli *cc, const char *msg) {
    const size_t before = lc_chat_n_messages(cc->ch);
    if (lc_chat_add(cc->ch, "user", msg)) return cli_lib_error();
    free(cc->pending);
    cc->pending = NULL;
    for (;;) {
        size_t n_calls;
        const int r = answer(cc, &n_calls);
        if (r == -1 || r == -2) { /* not part of the conversation (a message that does not fit: until /drop) */
            lc_chat_truncate(cc->ch, before);
            if (r == -1) cc->pending = strdup(msg);
            return CLI_OK;
        }
        if (r) return r;
        if (!n_calls) return CLI_OK;
        for (size_t i = 0; i < n_calls; i++) {
            char *result = NULL;
            if (cc->tty) printf("(type the tool's result: text or JSON; \\ or \"\"\" for several lines)\n");
            if (!read_message(cc->tty, "result> ", &result)) return CLI_OK;
            const int rr = lc_chat_add_tool_result(cc->ch, result, strlen(result));
            free(result);
            if (rr) return cli_lib_error();
        }
    }
}

/* ---- commands ---- */

/* Writes the conversation through a temporary file and a rename. */
static int save(chat_cli *cc, const char *path) {
    char *json = NULL;
    size_t n = 0;
    if (lc_chat_get_messages(cc->ch, &json, &n)) return cli_lib_error();
    char *tmp = malloc(strlen(path) + 32);
    if (!tmp) {
        lc_free(json);
        return cli_error("out of memory");
    }
    sprintf(tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(json, 1, n, f) == n;
    if (f && fclose(f)) ok = false;
    ok = ok && rename(tmp, path) == 0;
    const int err = errno;
    lc_free(json);
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return cli_error("/save %s: cannot write: %s", path, strerror(err));
    }
    free(tmp);
    fprintf(stderr, "llamac: saved %zu messages to %s\n", lc_chat_n_messages(cc->ch), path);
    return CLI_OK;
}

static int load(chat_cli *cc, const char *path) {
    char *text = NULL;
    size_t n = 0;
    if (cli_read_file(path, &text, &n)) return CLI_ERR;
    const int r = lc_chat_set_messages(cc->ch, text, n);
    free(text);
    if (r) return cli_error("/load %s: %s (the conversation is unchanged)", path, lc_last_error());
    fprintf(stderr, "llamac: loaded %zu messages from %s\n", lc_chat_n_messages(cc->ch), path);
    return CLI_OK;
}

/* Runs a /command. Returns 1 to quit, 0 otherwise. */
static int command(chat_cli *cc, const char *msg) {
    const char *arg = strchr(msg, ' ');
    const size_t cl = arg ? (size_t)(arg - msg) : strlen(msg);
    if (arg) while (*arg == ' ') arg++;
    if (arg && !*arg) arg = NULL;
#define IS(name) (cl == strlen(name) && !memcmp(msg, name, cl))
    if (IS("/exit") || IS("/quit")) return 1;
    if (IS("/help")) {
        fputs(help, stdout);
    } else if (IS("/reset")) {
        lc_chat_clear(cc->ch, true);
        free(cc->pending);
        cc->pending = NULL;
        fprintf(stderr, "llamac: conversation cleared\n");
    } else if (IS("/system")) {
        if (lc_chat_set_system(cc->ch, arg)) cli_lib_error();
        else fprintf(stderr, "llamac: system prompt %s\n", arg ? "set" : "removed");
    } else if (IS("/drop")) {
        long k = 1;
        char *end = NULL;
        if (arg && ((k = strtol(arg, &end, 10)) < 1 || *end)) {
            fprintf(stderr, "llamac: /drop N: N must be a positive number\n");
            return 0;
        }
        size_t total = 0, d;
        for (long i = 0; i < k && !lc_chat_drop_oldest(cc->ch, &d); i++) total += d;
        fprintf(stderr, "llamac: forgot %zu messages\n", total);
        if (cc->pending) {
            char *p = cc->pending;
            cc->pending = NULL;
            send_message(cc, p);
            free(p);
        }
    } else if (IS("/save") || IS("/load")) {
        if (!arg) fprintf(stderr, "llamac: %.*s needs a FILE\n", (int)cl, msg);
        else if (IS("/save")) save(cc, arg);
        else load(cc, arg);
    } else {
        fprintf(stderr, "llamac: unknown command %.*s (/help lists them)\n", (int)cl, msg);
    }
#undef IS
    return 0;
}

/* "a,b" -> {"builtin_tools": ["a", "b"]} (malloc'd). */
static char *builtin_vars(const char *list) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    fputs("{\"builtin_tools\": [", f);
    const char *s = list;
    bool first = true;
    while (*s) {
        const size_t k = strcspn(s, ",");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(k < 255 ? k : 255), s);
        if (*name) {
            fputs(first ? "" : ", ", f);
            cli_json_str(f, name);
            first = false;
        }
        s += k + (s[k] == ',');
    }
    fputs("]}", f);
    fclose(f);
    return buf;
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL, *tools_path = NULL, *tpl_path = NULL, *builtin = NULL;
    int64_t n_predict = -1, top_k = 40, repeat_last_n = 64, threads = 0, n_ctx = 0;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, repeat_penalty = 1.0;
    uint64_t seed = 0;
    bool seed_set = false, help_flag = false, no_reuse = false, verbose = false;
    int kv_choice = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {NULL, "--system", CLI_STR, &system, 0, 0, NULL, NULL},
        {NULL, "--tools", CLI_STR, &tools_path, 0, 0, NULL, NULL},
        {NULL, "--builtin-tools", CLI_STR, &builtin, 0, 0, NULL, NULL},
        {NULL, "--template", CLI_STR, &tpl_path, 0, 0, NULL, NULL},
        {"-n", "--n-predict", CLI_INT, &n_predict, -1, 1 << 30, NULL, NULL},
        {NULL, "--temp", CLI_FLOAT, &temp, 0, 100, NULL, NULL},
        {NULL, "--top-k", CLI_INT, &top_k, 0, 1 << 30, NULL, NULL},
        {NULL, "--top-p", CLI_FLOAT, &top_p, 0, 1, NULL, NULL},
        {NULL, "--min-p", CLI_FLOAT, &min_p, 0, 1, NULL, NULL},
        {NULL, "--repeat-penalty", CLI_FLOAT, &repeat_penalty, 0, 100, NULL, NULL},
        {NULL, "--repeat-last-n", CLI_INT, &repeat_last_n, -1, 1 << 30, NULL, NULL},
        {NULL, "--seed", CLI_U64, &seed, 0, 0, NULL, &seed_set},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024, NULL, NULL},
        CLI_MMAP_OPT,
        {"-c", "--ctx-size", CLI_INT, &n_ctx, 0, 1 << 24, NULL, NULL},
        {NULL, "--kv", CLI_CHOICE, &kv_choice, 0, 0, CLI_KV_CHOICES, NULL},
        {NULL, "--no-reuse", CLI_FLAG, &no_reuse, 0, 0, NULL, NULL},
        {NULL, "--verbose", CLI_FLAG, &verbose, 0, 0, NULL, NULL},
    };
    size_t npos = 0;
    cli_lora lora = {0};
    int rc = cli_lora_take("chat", &argc, argv, &lora);
    if (rc) return rc;
    rc = cli_parse("chat", argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &npos, &help_flag);
    if (rc || help_flag) {
        if (help_flag) fputs(help, stdout);
        return rc;
    }
    if (!model_path) return cli_usage_error("chat", "give the model with -m MODEL");

    chat_cli cc = {.n_predict = n_predict, .verbose = verbose, .tty = isatty(STDIN_FILENO) != 0};
    char *tools_text = NULL, *tpl_text = NULL, *vars = NULL, *msg = NULL;
    size_t len;
    if ((rc = cli_load_model(model_path, &cc.m, NULL))) return rc;
    lc_chat_params chp = lc_chat_default_params();
    if (tpl_path) {
        if ((rc = cli_read_file(tpl_path, &tpl_text, &len))) goto done;
        chp.template_src = tpl_text, chp.template_len = len, chp.template_name = tpl_path;
    } else {
        const char *src;
        bool is_builtin = false;
        if (!lc_model_chat_template(cc.m, &src, &len, &is_builtin) && is_builtin)
            fprintf(stderr, "llamac: warning: the model has no chat template; using llamac's template for its family\n");
    }
    if (tools_path) {
        if ((rc = cli_read_file(tools_path, &tools_text, &len))) goto done;
        chp.tools_json = tools_text;
    }
    if (builtin && !(vars = builtin_vars(builtin))) {
        rc = cli_error("out of memory");
        goto done;
    }
    chp.vars_json = vars;
    chp.parse_tool_calls = cc.tools = tools_path || builtin;
    chp.no_reuse = no_reuse;
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv_choice);
    if (lc_context_new(cc.m, &cp, &cc.c) || (rc = cli_lora_apply(&lora, cc.m, cc.c))) {
        if (!rc) rc = cli_lib_error();
        goto done;
    }
    if (lc_chat_new(cc.m, cc.c, &chp, &cc.ch)) {
        rc = tools_path && strstr(lc_last_error(), "tools") ? cli_error("--tools %s: %s", tools_path, lc_last_error())
                                                             : cli_lib_error();
        goto done;
    }
    if (system && *system && lc_chat_set_system(cc.ch, system)) {
        rc = cli_lib_error();
        goto done;
    }
    lc_sampler_params sp = lc_sampler_default_params();
    sp.temp = (float)temp, sp.top_k = (int32_t)top_k, sp.top_p = (float)top_p, sp.min_p = (float)min_p;
    sp.repeat_penalty = (float)repeat_penalty, sp.repeat_last_n = (int32_t)repeat_last_n;
    sp.seed = seed_set ? seed : cli_random_seed();
    if (lc_sampler_new(&sp, (int32_t)lc_model_hparams(cc.m)->n_vocab, &cc.smp)) {
        rc = cli_lib_error();
        goto done;
    }
    if (verbose) fprintf(stderr, "llamac: seed %llu, context %u tokens\n", (unsigned long long)sp.seed, lc_context_n_ctx(cc.c));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: a read at the prompt returns, so Ctrl-C is seen there too */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (cc.tty) fprintf(stderr, "llamac chat: /help for commands, Ctrl-D to quit\n");
    bool eof = true;
    while (read_message(cc.tty, "> ", &msg)) {
        if (msg[0] == '/' && msg[1] != '/') {
            const int q = command(&cc, msg);
            free(msg);
            msg = NULL;
            if (q) {
                eof = false;
                break;
            }
            continue;
        }
        rc = send_message(&cc, msg[0] == '/' ? msg + 1 : msg); /* "//x" sends "/x" */
        free(msg);
        msg = NULL;
        if (rc) {
            eof = false;
            break;
        }
    }
    if (cc.tty && eof) putchar('\n'); /* after Ctrl-D, the shell's prompt on a line of its own */
done:
    free(msg);
    free(cc.pending);
    lc_chat_free(cc.ch);
    lc_sampler_free(cc.smp);
    lc_context_free(cc.c);
    cli_lora_free(&lora);
    lc_model_free(cc.m);
    free(tools_text);
    free(tpl_text);
    free(vars);
    return rc;
}
