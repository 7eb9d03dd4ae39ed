/* cmd_template.c - `llamac template`: renders a chat template (the model's, or a .jinja file) for a conversation,
** exactly as the model will see it, for debugging templates and for checks. The output is the rendered prompt's
** bytes with nothing added; a template error (raise_exception, unsupported construct) prints the message naming the
** line and column and exits 1.
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *help =
    "usage: llamac template (-m MODEL | --template FILE.jinja) --messages FILE.json [options]\n"
    "\n"
    "Renders the chat template for the conversation in FILE.json (an OpenAI-style list of {\"role\", \"content\",\n"
    "\"tool_calls\"?, ...}) as Python's Jinja2 does with Hugging Face's settings, and prints it with no newline added.\n"
    "The template comes from the model (tokenizer.chat_template; a model without one gets llamac's template for its\n"
    "family, with a warning) or from --template. bos_token and eos_token default to the model's token texts.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE           the model whose template (and BOS/EOS texts) to use\n"
    "  --template FILE            a Jinja template file instead (with -m too: the model's BOS/EOS texts)\n"
    "  --messages FILE            the conversation, a JSON list ('-': stdin)\n"
    "  --tools FILE               tool definitions, a JSON list (default: tools = null)\n"
    "  --add-generation-prompt    end with the header of the assistant's turn\n"
    "  --var KEY=JSON             set any other template variable to a JSON value (repeatable), e.g.\n"
    "                             --var date_string='\"26 Jul 2024\"' --var builtin_tools='[\"brave_search\"]'\n"
    "  -h, --help                 this help\n"
    "\n"
    "exit status: 0 rendered, 1 the template refused (message on stderr) or a file could not be read, 2 usage\n";

/* Appends s as a JSON string to the memory stream f. */
static void json_key(FILE *f, const char *key, size_t n) {
    char *k = malloc(n + 1);
    if (!k) return;
    memcpy(k, key, n);
    k[n] = 0;
    cli_json_str(f, k);
    free(k);
}

/* Checks one --var value on its own, so a mistake is reported with its name. */
static int check_var(const char *key, size_t kn, const char *json) {
    lc_template *t;
    if (lc_template_parse("", 0, "check", &t)) return cli_lib_error();
    char *vars = NULL, *out = NULL;
    size_t vn = 0;
    FILE *f = open_memstream(&vars, &vn);
    if (!f) return cli_error("out of memory");
    fputs("{\"v\": ", f);
    fputs(json, f);
    fputs("}", f);
    fclose(f);
    const int r = lc_template_render(t, vars, vn, &out, NULL);
    lc_free(out);
    free(vars);
    lc_template_free(t);
    if (r) return cli_usage_error("template", "--var %.*s: the value is not valid JSON (%s)", (int)kn, key, json);
    return CLI_OK;
}

int cmd_template(int argc, char **argv) {
    const char *model_path = NULL, *tpl_path = NULL, *msgs_path = NULL, *tools_path = NULL;
    bool agp = false, help_flag = false;
    /* --var may repeat: taken out of argv before the option table sees it */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    const char **vars = calloc((size_t)argc + 1, sizeof *vars);
    if (!rest || !vars) {
        free(rest), free(vars);
        return cli_error("out of memory");
    }
    int nrest = 0, nvars = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && !strcmp(argv[i], "--var")) {
            if (i + 1 >= argc) {
                free(rest), free(vars);
                return cli_usage_error("template", "--var needs KEY=JSON");
            }
            vars[nvars++] = argv[++i];
        } else if (i > 0 && !strncmp(argv[i], "--var=", 6)) {
            vars[nvars++] = argv[i] + 6;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {NULL, "--template", CLI_STR, &tpl_path, 0, 0, NULL, NULL},
        {NULL, "--messages", CLI_STR, &msgs_path, 0, 0, NULL, NULL},
        {NULL, "--tools", CLI_STR, &tools_path, 0, 0, NULL, NULL},
        {NULL, "--add-generation-prompt", CLI_FLAG, &agp, 0, 0, NULL, NULL},
    };
    size_t npos = 0;
    int rc = cli_parse("template", nrest, rest, opts, sizeof opts / sizeof *opts, NULL, 0, &npos, &help_flag);
    if (rc == CLI_OK && help_flag) fputs(help, stdout);
    else if (rc == CLI_OK && !model_path && !tpl_path) rc = cli_usage_error("template", "give -m MODEL or --template FILE");
    else if (rc == CLI_OK && !msgs_path) rc = cli_usage_error("template", "give --messages FILE.json");
    for (int i = 0; rc == CLI_OK && !help_flag && i < nvars; i++) {
        const char *eq = strchr(vars[i], '=');
        if (!eq || eq == vars[i]) rc = cli_usage_error("template", "--var %s: expected KEY=JSON", vars[i]);
        else rc = check_var(vars[i], (size_t)(eq - vars[i]), eq + 1);
    }
    if (rc != CLI_OK || help_flag) {
        free(rest), free(vars);
        return rc;
    }

    lc_model *m = NULL;
    char *tpl_text = NULL, *msgs = NULL, *tools = NULL, *vtext = NULL, *out = NULL;
    size_t tpl_len = 0, msgs_len = 0, tools_len = 0, vlen = 0, out_len = 0;
    lc_template *t = NULL;
    const char *src = NULL, *name = tpl_path;
    size_t src_len = 0;
    if (model_path && (rc = cli_load_model(model_path, &m, NULL))) goto done;
    if (tpl_path) {
        if ((rc = cli_read_file(tpl_path, &tpl_text, &tpl_len))) goto done;
        src = tpl_text, src_len = tpl_len;
    } else {
        bool builtin;
        if (lc_model_chat_template(m, &src, &src_len, &builtin)) {
            rc = cli_lib_error();
            goto done;
        }
        name = "tokenizer.chat_template";
        if (builtin) {
            fprintf(stderr, "llamac: warning: %s has no chat template; using llamac's built-in template for its family\n",
                    model_path);
            name = "built-in template";
        }
    }
    if ((rc = cli_read_file(msgs_path, &msgs, &msgs_len))) goto done;
    if (tools_path && (rc = cli_read_file(tools_path, &tools, &tools_len))) goto done;
    FILE *f = open_memstream(&vtext, &vlen);
    if (!f) {
        rc = cli_error("out of memory");
        goto done;
    }
    fputs("{\"messages\": ", f);
    fwrite(msgs, 1, msgs_len, f);
    fputs(", \"tools\": ", f);
    if (tools) fwrite(tools, 1, tools_len, f);
    else fputs("null", f);
    fprintf(f, ", \"add_generation_prompt\": %s", agp ? "true" : "false");
    if (m) {
        const int32_t bos = lc_token_bos(m), eos = lc_token_eos(m);
        if (bos >= 0 && lc_token_piece(m, bos)) {
            fputs(", \"bos_token\": ", f);
            cli_json_str(f, lc_token_piece(m, bos));
        }
        if (eos >= 0 && lc_token_piece(m, eos)) {
            fputs(", \"eos_token\": ", f);
            cli_json_str(f, lc_token_piece(m, eos));
        }
    }
    for (int i = 0; i < nvars; i++) { /* after the defaults: a --var replaces them (the last key wins) */
        const char *eq = strchr(vars[i], '=');
        fputs(", ", f);
        json_key(f, vars[i], (size_t)(eq - vars[i]));
        fputs(": ", f);
        fputs(eq + 1, f);
    }
    fputs("}", f);
    fclose(f);
    if (lc_template_parse(src, src_len, name, &t) || lc_template_render(t, vtext, vlen, &out, &out_len)) {
        const char *e = lc_last_error();
        if (strstr(e, "template variables"))
            rc = cli_error("%s (check --messages %s%s%s)", e, msgs_path, tools_path ? " and --tools " : "",
                           tools_path ? tools_path : "");
        else
            rc = cli_lib_error();
        goto done;
    }
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) rc = cli_error("cannot write the output");
done:
    lc_free(out);
    lc_template_free(t);
    free(vtext), free(tools), free(msgs), free(tpl_text);
    lc_model_free(m);
    free(rest), free(vars);
    return rc;
}
