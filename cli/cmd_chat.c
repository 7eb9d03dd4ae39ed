/* cmd_chat.c - `llamac chat`: a conversation with the model through its own chat template.
**
** Every turn renders the whole conversation with the template, tokenizes it (control tokens parsed) and keeps what
** the KV cache already holds: only the tokens after the longest common prefix are decoded, so the history is not
** processed again. Answers stream through the detokenizer and, with --tools, through the tool-call parser (a call is
** never shown as text; it is printed as a call and the user types the tool's result). A conversation that no longer
** fits the context is refused with a message (never cut silently). Ctrl-C stops an answer; twice at the prompt quits.
** On a terminal input uses libedit (history, line editing) when built with it; otherwise lines from stdin.
*/
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef LC_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

static const char *help =
    "usage: llamac chat -m MODEL [options]\n"
    "\n"
    "Chats with the model using its chat template (a model without one gets llamac's template for its family).\n"
    "Type a message and Enter; end a line with \\ to continue the message on the next line. Commands:\n"
    "  /reset         forget the conversation (keeps the system prompt)\n"
    "  /system TEXT   set the system prompt (empty: none) and start over\n"
    "  /save FILE     write the conversation as a JSON list of messages\n"
    "  /load FILE     continue a conversation saved with /save (or any OpenAI-style message list)\n"
    "  /help          this list;  /exit (or Ctrl-D) quits\n"
    "Ctrl-C stops the current answer; pressed twice at the prompt it quits. Without a terminal, each line of stdin\n"
    "(with \\ continuations) is one message and the answers go to stdout, one per message.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE         the model\n"
    "  --system TEXT            system prompt\n"
    "  --tools FILE             tool definitions (JSON list, Llama 3.1 format): calls are parsed and shown, and you\n"
    "                           type each tool's result\n"
    "  --template FILE          use this Jinja chat template instead of the model's\n"
    "  -n, --n-predict N        at most N tokens per answer (default -1: until the end of the answer)\n"
    "  --temp T, --top-k K, --top-p P, --min-p P, --repeat-penalty R, --seed S   sampling (as llamac run)\n"
    "  -t, --threads N          threads (default: all cores)\n"
    "  -c, --ctx-size N         context size in tokens (default: the model's, at most 4096)\n"
    "  --kv f16|f32             KV cache type (default f16)\n"
    "  --no-reuse               process the whole conversation again every turn (for checks; slower)\n"
    "  --verbose                after each answer, print on stderr how many tokens were reused and decoded\n"
    "  -h, --help               this help\n";

static volatile sig_atomic_t g_interrupt, g_generating;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupt++;
}

typedef struct chat {
    lc_model *m;
    lc_context *c;
    lc_sampler *smp;
    lc_template *tpl;
    lc_toolcall_parser *tp;
    const char *tools; /* JSON text or NULL */
    char *system;      /* system prompt or NULL */
    char *msgs;        /* the messages after the system prompt, as JSON items joined by ", " */
    size_t msgs_len;
    int32_t *kv;       /* the tokens in the KV cache (sequence 0) */
    int32_t n_kv, n_ctx, n_batch;
    int64_t n_predict;
    bool reuse, verbose;
    int turn;
    int32_t last_row; /* the batch row of the last decoded token (its logits) */
} chat;

/* Appends text (as a JSON string when quote) to the message list. */
static bool msgs_add(chat *ch, const char *item) {
    const size_t n = strlen(item), need = ch->msgs_len + n + 3;
    char *p = realloc(ch->msgs, need);
    if (!p) return false;
    ch->msgs = p;
    if (ch->msgs_len) memcpy(ch->msgs + ch->msgs_len, ", ", 2), ch->msgs_len += 2;
    memcpy(ch->msgs + ch->msgs_len, item, n + 1);
    ch->msgs_len += n;
    return true;
}

/* {"role": role, "content": text} as JSON. */
static char *message_json(const char *role, const char *text) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    fputs("{\"role\": ", f);
    cli_json_str(f, role);
    fputs(", \"content\": ", f);
    cli_json_str(f, text);
    fputs("}", f);
    fclose(f);
    return buf;
}

/* The whole message list (system prompt first) as a JSON array. */
static char *messages_text(const chat *ch) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    fputs("[", f);
    if (ch->system) {
        char *s = message_json("system", ch->system);
        if (s) fputs(s, f);
        free(s);
        if (ch->msgs_len) fputs(", ", f);
    }
    if (ch->msgs_len) fwrite(ch->msgs, 1, ch->msgs_len, f);
    fputs("]", f);
    fclose(f);
    return buf;
}

/* Renders the conversation with the assistant's header at the end. */
static int render(const chat *ch, char **out, size_t *out_len) {
    char *msgs = messages_text(ch), *vars = NULL;
    size_t vn = 0;
    FILE *f = msgs ? open_memstream(&vars, &vn) : NULL;
    if (!f) {
        free(msgs);
        return cli_error("out of memory");
    }
    fprintf(f, "{\"messages\": %s, \"tools\": %s, \"add_generation_prompt\": true", msgs, ch->tools ? ch->tools : "null");
    const int32_t bos = lc_token_bos(ch->m), eos = lc_token_eos(ch->m);
    if (bos >= 0 && lc_token_piece(ch->m, bos)) fputs(", \"bos_token\": ", f), cli_json_str(f, lc_token_piece(ch->m, bos));
    if (eos >= 0 && lc_token_piece(ch->m, eos)) fputs(", \"eos_token\": ", f), cli_json_str(f, lc_token_piece(ch->m, eos));
    fputs("}", f);
    fclose(f);
    free(msgs);
    const int r = lc_template_render(ch->tpl, vars, vn, out, out_len);
    free(vars);
    return r ? cli_lib_error() : CLI_OK;
}

/* Decodes prompt ids[0..n) into the KV cache, keeping the cached prefix they share. Returns the number of tokens
** decoded, or -1 after printing an error. */
static int32_t feed_prompt(chat *ch, const int32_t *ids, int32_t n) {
    int32_t common = 0;
    if (ch->reuse)
        while (common < ch->n_kv && common < n && ch->kv[common] == ids[common]) common++;
    if (common == n) common = n - 1; /* the last token is decoded again for its logits */
    lc_kv_remove(ch->c, 0, common, -1);
    for (int32_t i = common; i < n; i += ch->n_batch) {
        const int32_t nb = n - i < ch->n_batch ? n - i : ch->n_batch;
        lc_batch b = {.n_tokens = nb, .token = ids + i};
        ch->last_row = nb - 1;
        if (lc_decode(ch->c, &b)) {
            cli_lib_error();
            ch->n_kv = 0;
            lc_kv_remove(ch->c, -1, 0, -1);
            return -1;
        }
    }
    memcpy(ch->kv, ids, sizeof *ids * (size_t)n);
    ch->n_kv = n;
    return n - common;
}

/* One answer of the assistant to the conversation as it stands. *answer gets its text (malloc'd). */
static int answer(chat *ch, char **answer_text, bool *called) {
    *answer_text = NULL;
    *called = false;
    char *prompt = NULL;
    size_t plen = 0;
    int rc = render(ch, &prompt, &plen);
    if (rc) return rc;
    size_t n = 0;
    lc_tokenize(ch->m, prompt, plen, LC_TOK_PARSE_SPECIAL, NULL, 0, &n);
    if ((int64_t)n + 1 > ch->n_ctx) {
        free(prompt);
        fprintf(stderr,
                "llamac: the conversation needs %zu tokens but the context holds %d: /reset starts over (/save FILE "
                "first to keep it), or restart with a larger -c\n",
                n, (int)ch->n_ctx);
        return -1;
    }
    int32_t *ids = malloc(sizeof *ids * (n ? n : 1));
    if (!ids || lc_tokenize(ch->m, prompt, plen, LC_TOK_PARSE_SPECIAL, ids, n, &n) || !n) {
        free(ids);
        free(prompt);
        return ids ? cli_lib_error() : cli_error("out of memory");
    }
    free(prompt);
    const int32_t decoded = feed_prompt(ch, ids, (int32_t)n);
    free(ids);
    if (decoded < 0) return CLI_ERR;
    ch->turn++;
    lc_detok d;
    lc_detok_init(&d, ch->tp != NULL);
    if (ch->tp) lc_toolcall_reset(ch->tp);
    char *text = NULL;
    size_t tlen = 0;
    FILE *tf = open_memstream(&text, &tlen);
    if (!tf) return cli_error("out of memory");
    g_interrupt = 0;
    g_generating = 1;
    const char *why = "end of the answer";
    int64_t gen = 0;
    const float *logits = lc_get_logits(ch->c, ch->last_row);
    for (;;) {
        if (g_interrupt) {
            why = "stopped (Ctrl-C)";
            break;
        }
        if (ch->n_predict >= 0 && gen >= ch->n_predict) {
            why = "answer length limit (-n)";
            break;
        }
        if (ch->n_kv >= ch->n_ctx) {
            why = "the context is full: /reset starts over (/save FILE first to keep the conversation)";
            break;
        }
        const int32_t id = lc_sampler_sample(ch->smp, logits);
        lc_sampler_accept(ch->smp, id);
        if (lc_token_is_eog(ch->m, id)) break;
        char piece[4096];
        const int k = lc_detok_push(ch->m, &d, id, piece, sizeof piece);
        if (k > 0) {
            fwrite(piece, 1, (size_t)k, tf);
            const char *show = piece;
            size_t sn = (size_t)k;
            if (ch->tp) lc_toolcall_feed(ch->tp, piece, (size_t)k, &show, &sn);
            fwrite(show, 1, sn, stdout);
            fflush(stdout);
        }
        gen++;
        lc_batch b = {.n_tokens = 1, .token = &id};
        if (lc_decode(ch->c, &b)) {
            g_generating = 0;
            fclose(tf);
            free(text);
            return cli_lib_error();
        }
        ch->kv[ch->n_kv++] = id;
        logits = lc_get_logits(ch->c, 0);
    }
    g_generating = 0;
    char tail[64];
    const int k = lc_detok_flush(&d, tail, sizeof tail);
    if (k > 0) fwrite(tail, 1, (size_t)k, tf);
    fclose(tf);
    if (ch->tp) {
        const char *show;
        size_t sn, nc;
        const lc_tool_call *calls;
        if (k > 0) lc_toolcall_feed(ch->tp, tail, (size_t)k, &show, &sn), fwrite(show, 1, sn, stdout);
        lc_toolcall_finish(ch->tp, &show, &sn, &calls, &nc);
        fwrite(show, 1, sn, stdout);
        if (nc) {
            printf("[tool call] %s %s\n", calls[0].name, calls[0].arguments);
            char *buf = NULL;
            size_t bn = 0;
            FILE *f = open_memstream(&buf, &bn);
            if (f) {
                fputs("{\"role\": \"assistant\", \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": ", f);
                cli_json_str(f, calls[0].name);
                fprintf(f, ", \"arguments\": %s}}]}", calls[0].arguments);
                fclose(f);
                msgs_add(ch, buf);
            }
            free(buf);
            *called = true;
        }
    } else if (k > 0) {
        fwrite(tail, 1, (size_t)k, stdout);
    }
    printf("\n");
    fflush(stdout);
    if (strcmp(why, "end of the answer")) fprintf(stderr, "llamac: [%s]\n", why);
    if (ch->verbose)
        fprintf(stderr, "llamac: [turn %d: prompt %d tokens, %d reused, %d decoded; %lld generated]\n", ch->turn,
                (int)(ch->n_kv - gen), (int)(ch->n_kv - gen - decoded), (int)decoded, (long long)gen);
    *answer_text = text;
    return CLI_OK;
}

/* Writes path through a temporary file and a rename. */
static int save(const chat *ch, const char *path) {
    char *msgs = messages_text(ch);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = msgs ? fopen(tmp, "w") : NULL;
    if (!f) {
        free(msgs);
        return cli_error("/save %s: %s", path, strerror(errno));
    }
    const bool ok = fputs(msgs, f) >= 0 && fputs("\n", f) >= 0;
    free(msgs);
    if (fclose(f) || !ok || rename(tmp, path)) {
        unlink(tmp);
        return cli_error("/save %s: cannot write: %s", path, strerror(errno));
    }
    fprintf(stderr, "llamac: saved to %s\n", path);
    return CLI_OK;
}

static int load(chat *ch, const char *path) {
    char *text = NULL;
    size_t n = 0;
    if (cli_read_file(path, &text, &n)) return CLI_ERR;
    size_t a = 0, b = n;
    while (a < b && strchr(" \t\r\n", text[a])) a++;
    while (b > a && strchr(" \t\r\n", text[b - 1])) b--;
    if (b - a < 2 || text[a] != '[' || text[b - 1] != ']') {
        free(text);
        return cli_error("/load %s: expected a JSON list of messages", path);
    }
    char *old = ch->msgs, *old_sys = ch->system;
    const size_t old_len = ch->msgs_len;
    ch->msgs = malloc(b - a);
    if (!ch->msgs) {
        ch->msgs = old;
        free(text);
        return cli_error("out of memory");
    }
    memcpy(ch->msgs, text + a + 1, b - a - 2);
    ch->msgs[b - a - 2] = 0;
    ch->msgs_len = b - a - 2;
    while (ch->msgs_len && strchr(" \t\r\n", ch->msgs[ch->msgs_len - 1])) ch->msgs[--ch->msgs_len] = 0;
    ch->system = NULL;
    free(text);
    char *probe = NULL; /* the template must accept it */
    size_t pn;
    if (render(ch, &probe, &pn)) {
        free(ch->msgs);
        ch->msgs = old, ch->msgs_len = old_len, ch->system = old_sys;
        return cli_error("/load %s: the conversation was not loaded", path);
    }
    lc_free(probe);
    free(old);
    free(old_sys);
    fprintf(stderr, "llamac: loaded %s\n", path);
    return CLI_OK;
}

/* One input line (without its newline) into *line; false at the end of input. */
static bool read_line(bool tty, const char *prompt, char **line) {
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
    ssize_t n = getline(line, &cap, stdin);
    if (n < 0) {
        free(*line);
        *line = NULL;
        return false;
    }
    if (n && (*line)[n - 1] == '\n') (*line)[--n] = 0;
    if (n && (*line)[n - 1] == '\r') (*line)[--n] = 0;
    return true;
}

/* A message: lines joined while they end with a backslash. */
static bool read_message(bool tty, char **msg) {
    *msg = NULL;
    size_t len = 0;
    const char *prompt = "> ";
    for (;;) {
        char *line = NULL;
        errno = 0;
        if (!read_line(tty, prompt, &line)) {
            if (tty && g_interrupt && !*msg) { /* Ctrl-C at the prompt */
                if (g_interrupt >= 2) return false;
                fputs("\n(Ctrl-C again to quit, or type /exit)\n", stdout);
                clearerr(stdin);
                continue;
            }
            if (*msg) return true;
            return false;
        }
        g_interrupt = 0;
        size_t ln = strlen(line);
        const bool more = ln && line[ln - 1] == '\\';
        if (more) line[--ln] = 0;
        char *m = realloc(*msg, len + ln + 2);
        if (!m) {
            free(line);
            return false;
        }
        *msg = m;
        if (len) m[len++] = '\n';
        memcpy(m + len, line, ln + 1);
        len += ln;
        free(line);
        if (!more) return true;
        prompt = ". ";
    }
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL, *tools_path = NULL, *tpl_path = NULL;
    int64_t n_predict = -1, top_k = 40, threads = 0, n_ctx = 0;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, repeat_penalty = 1.0;
    uint64_t seed = 0;
    bool seed_set = false, help_flag = false, no_reuse = false, verbose = false;
    int kv_choice = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {NULL, "--system", CLI_STR, &system, 0, 0, NULL, NULL},
        {NULL, "--tools", CLI_STR, &tools_path, 0, 0, NULL, NULL},
        {NULL, "--template", CLI_STR, &tpl_path, 0, 0, NULL, NULL},
        {"-n", "--n-predict", CLI_INT, &n_predict, -1, 1 << 30, NULL, NULL},
        {NULL, "--temp", CLI_FLOAT, &temp, 0, 100, NULL, NULL},
        {NULL, "--top-k", CLI_INT, &top_k, 0, 1 << 30, NULL, NULL},
        {NULL, "--top-p", CLI_FLOAT, &top_p, 0, 1, NULL, NULL},
        {NULL, "--min-p", CLI_FLOAT, &min_p, 0, 1, NULL, NULL},
        {NULL, "--repeat-penalty", CLI_FLOAT, &repeat_penalty, 0, 100, NULL, NULL},
        {NULL, "--seed", CLI_U64, &seed, 0, 0, NULL, &seed_set},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024, NULL, NULL},
        {"-c", "--ctx-size", CLI_INT, &n_ctx, 0, 1 << 24, NULL, NULL},
        {NULL, "--kv", CLI_CHOICE, &kv_choice, 0, 0, CLI_KV_CHOICES, NULL},
        {NULL, "--no-reuse", CLI_FLAG, &no_reuse, 0, 0, NULL, NULL},
        {NULL, "--verbose", CLI_FLAG, &verbose, 0, 0, NULL, NULL},
    };
    size_t npos = 0;
    int rc = cli_parse("chat", argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &npos, &help_flag);
    if (rc || help_flag) {
        if (help_flag) fputs(help, stdout);
        return rc;
    }
    if (!model_path) return cli_usage_error("chat", "give the model with -m MODEL");

    chat ch = {.n_predict = n_predict, .reuse = !no_reuse, .verbose = verbose};
    char *tools_text = NULL, *tpl_text = NULL, *msg = NULL;
    size_t len;
    if ((rc = cli_load_model(model_path, &ch.m, NULL))) return rc;
    const char *src;
    size_t src_len;
    const char *tname = "tokenizer.chat_template";
    if (tpl_path) {
        if ((rc = cli_read_file(tpl_path, &tpl_text, &src_len))) goto done;
        src = tpl_text, tname = tpl_path;
    } else {
        bool builtin;
        if (lc_model_chat_template(ch.m, &src, &src_len, &builtin)) {
            rc = cli_lib_error();
            goto done;
        }
        if (builtin) {
            fprintf(stderr, "llamac: warning: the model has no chat template; using llamac's built-in template for its family\n");
            tname = "built-in template";
        }
    }
    if (lc_template_parse(src, src_len, tname, &ch.tpl)) {
        rc = cli_lib_error();
        goto done;
    }
    if (tools_path) {
        if ((rc = cli_read_file(tools_path, &tools_text, &len))) goto done;
        ch.tools = tools_text;
        if (lc_toolcall_parser_new(&ch.tp)) {
            rc = cli_lib_error();
            goto done;
        }
    }
    if (system && *system) ch.system = strdup(system);
    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv_choice);
    if (lc_context_new(ch.m, &cp, &ch.c)) {
        rc = cli_lib_error();
        goto done;
    }
    ch.n_ctx = (int32_t)lc_context_n_ctx(ch.c);
    ch.n_batch = 512;
    ch.kv = malloc(sizeof *ch.kv * (size_t)ch.n_ctx);
    lc_sampler_params sp = lc_sampler_default_params();
    sp.temp = (float)temp, sp.top_k = (int32_t)top_k, sp.top_p = (float)top_p, sp.min_p = (float)min_p;
    sp.repeat_penalty = (float)repeat_penalty;
    sp.seed = seed_set ? seed : LC_SEED_RANDOM;
    if (!ch.kv || lc_sampler_new(&sp, (int32_t)lc_model_hparams(ch.m)->n_vocab, &ch.smp)) {
        rc = ch.kv ? cli_lib_error() : cli_error("out of memory");
        goto done;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    const bool tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "llamac chat: /help for commands, Ctrl-D to quit\n");
    while (read_message(tty, &msg)) {
        if (!strcmp(msg, "/exit") || !strcmp(msg, "/quit")) break;
        if (!strcmp(msg, "/help")) {
            fputs(help, stdout);
        } else if (!strcmp(msg, "/reset")) {
            free(ch.msgs);
            ch.msgs = NULL, ch.msgs_len = 0;
            fprintf(stderr, "llamac: conversation cleared\n");
        } else if (!strncmp(msg, "/system", 7) && (!msg[7] || msg[7] == ' ')) {
            free(ch.system);
            ch.system = msg[7] && msg[8] ? strdup(msg + 8) : NULL;
            free(ch.msgs);
            ch.msgs = NULL, ch.msgs_len = 0;
            fprintf(stderr, "llamac: system prompt %s; conversation cleared\n", ch.system ? "set" : "removed");
        } else if (!strncmp(msg, "/save ", 6)) {
            save(&ch, msg + 6);
        } else if (!strncmp(msg, "/load ", 6)) {
            load(&ch, msg + 6);
        } else if (msg[0] == '/' && msg[1] != '/' && strchr(msg, ' ') == NULL) {
            fprintf(stderr, "llamac: unknown command %s (/help lists them)\n", msg);
        } else {
            const size_t before = ch.msgs_len;
            char *um = message_json("user", msg[0] == '/' ? msg + 1 : msg); /* "//x" sends "/x" */
            if (!um || !msgs_add(&ch, um)) {
                free(um);
                rc = cli_error("out of memory");
                break;
            }
            free(um);
            for (;;) {
                char *text = NULL;
                bool called = false;
                const int r = answer(&ch, &text, &called);
                if (r) {
                    free(text);
                    if (r != -1 && r != CLI_ERR) break;
                    ch.msgs_len = before; /* the message did not fit or failed: not part of the conversation */
                    if (ch.msgs) ch.msgs[before] = 0;
                    break;
                }
                if (!called) {
                    char *am = message_json("assistant", text);
                    if (am) msgs_add(&ch, am);
                    free(am);
                    free(text);
                    break;
                }
                free(text);
                char *result = NULL; /* the tool's result, typed by the user */
                if (tty) fputs("tool result (JSON or text)\n", stdout);
                if (!read_message(tty, &result)) break;
                char *tm = message_json("ipython", result);
                free(result);
                if (tm) msgs_add(&ch, tm);
                free(tm);
            }
        }
        free(msg);
        msg = NULL;
    }
    free(msg);
done:
    lc_sampler_free(ch.smp);
    lc_context_free(ch.c);
    lc_toolcall_parser_free(ch.tp);
    lc_template_free(ch.tpl);
    lc_model_free(ch.m);
    free(ch.kv);
    free(ch.msgs);
    free(ch.system);
    free(tools_text);
    free(tpl_text);
    return rc;
}
