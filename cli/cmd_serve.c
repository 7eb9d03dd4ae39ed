/* cmd_serve.c - `llamac serve`: options of the OpenAI-compatible HTTP server (server/), which runs until SIGTERM.
**
** Builds without libmicrohttpd and Jansson (the ARM64 cross build) leave the server out; there the command says so.
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#ifdef LC_HAVE_SERVER
#include "../server/server.h"
#endif

static const char *help =
    "usage: llamac serve -m MODEL [options]\n"
    "\n"
    "Serves the model over HTTP with OpenAI's API: POST /v1/chat/completions (streaming with stream: true, tools,\n"
    "logprobs), POST /v1/completions, GET /v1/models, GET /health, GET /metrics (Prometheus), and a chat page at /.\n"
    "Up to --parallel requests are decoded together in one batch (continuous batching: new requests join between\n"
    "steps, long prompts are read in chunks); more wait in a queue, and a full queue answers 503 with Retry-After.\n"
    "A free slot keeps its tokens in the KV cache, so a request repeating an earlier prompt's beginning (a chat's\n"
    "history, a shared system prompt) decodes only the rest. SIGTERM (or Ctrl-C) stops accepting connections, lets\n"
    "the requests under way and queued finish (for at most 60 s, then they are cut), and exits.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE         the model (GGUF)\n"
    "  --host ADDR              address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)\n"
    "  --port N                 port (default 8080; 0: any free port, printed)\n"
    "  -np, --parallel N        requests decoded together (default 4)\n"
    "  -c, --ctx-size N         KV cache cells shared by all requests (default: the model's, at most 4096); one\n"
    "                           request's prompt and answer must fit in it; when the running answers fill it, idle\n"
    "                           slots' cached prompts go first, then the longest answer ends (finish_reason length)\n"
    "  -t, --threads N          threads (default: all cores)\n"
    "  --mmap                   map the model file instead of reading it into memory (huge pages)\n"
    "  -b, --batch-size N       tokens per decode step at most (default 512)\n"
    "  --chunk N                prompt tokens per step while other requests generate (default 64)\n"
    "  --queue N                requests waiting for a slot before 503 (default 64)\n"
    "  --api-key KEY            require 'Authorization: Bearer KEY' on every endpoint but /health\n"
    "  --api-key-file FILE      the same, the key read from FILE (first line)\n"
    "  --max-body BYTES         largest request body (default 4194304)\n"
    "  --max-messages N         most messages in a chat request (default 1024)\n"
    "  --max-tokens N           largest max_tokens a request may ask (default: the context size)\n"
    "  --timeout S              close connections idle for S seconds (default 60)\n"
    "  --max-connections N      simultaneous connections (default 256)\n"
    "  --chat-template-file F   use this Jinja chat template instead of the model's\n"
    "  --alias NAME             the model's name in /v1/models and answers (default: the file name)\n"
    "  --kv f16|f32             KV cache type (default f16)\n"
    CLI_LORA_HELP
    "  -q, --quiet              no line per finished request on stderr\n"
    "  -h, --help               this help\n";

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *host = "127.0.0.1", *key = NULL, *key_file = NULL, *alias = NULL, *tpl_file = NULL;
    int64_t port = 8080, parallel = 4, n_ctx = 0, threads = 0, batch = 512, chunk = 64, queue = 64, max_body = 4 << 20,
            max_messages = 1024, max_tokens = 0, timeout = 60, max_conn = 256;
    int kv = 0;
    bool help_flag = false, quiet = false;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0, NULL, NULL},
        {NULL, "--host", CLI_STR, &host, 0, 0, NULL, NULL},
        {NULL, "--port", CLI_INT, &port, 0, 65535, NULL, NULL},
        {"-np", "--parallel", CLI_INT, &parallel, 1, 256, NULL, NULL},
        {"-c", "--ctx-size", CLI_INT, &n_ctx, 0, 1 << 24, NULL, NULL},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024, NULL, NULL},
        CLI_MMAP_OPT,
        {"-b", "--batch-size", CLI_INT, &batch, 1, 1 << 16, NULL, NULL},
        {NULL, "--chunk", CLI_INT, &chunk, 1, 1 << 16, NULL, NULL},
        {NULL, "--queue", CLI_INT, &queue, 1, 1 << 20, NULL, NULL},
        {NULL, "--api-key", CLI_STR, &key, 0, 0, NULL, NULL},
        {NULL, "--api-key-file", CLI_STR, &key_file, 0, 0, NULL, NULL},
        {NULL, "--max-body", CLI_INT, &max_body, 1024, 1 << 30, NULL, NULL},
        {NULL, "--max-messages", CLI_INT, &max_messages, 1, 1 << 20, NULL, NULL},
        {NULL, "--max-tokens", CLI_INT, &max_tokens, 0, 1 << 24, NULL, NULL},
        {NULL, "--timeout", CLI_INT, &timeout, 1, 86400, NULL, NULL},
        {NULL, "--max-connections", CLI_INT, &max_conn, 1, 65536, NULL, NULL},
        {NULL, "--alias", CLI_STR, &alias, 0, 0, NULL, NULL},
        {NULL, "--chat-template-file", CLI_STR, &tpl_file, 0, 0, NULL, NULL},
        {NULL, "--kv", CLI_CHOICE, &kv, 0, 0, CLI_KV_CHOICES, NULL},
        {"-q", "--quiet", CLI_FLAG, &quiet, 0, 0, NULL, NULL},
    };
    cli_lora lora = {0};
    int rc = cli_lora_take("serve", &argc, argv, &lora);
    if (rc) return rc;
    size_t npos = 0;
    rc = cli_parse("serve", argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &npos, &help_flag);
    if (rc || help_flag) {
        if (help_flag) fputs(help, stdout);
        return rc;
    }
    if (!model) return cli_usage_error("serve", "give the model with -m MODEL");
    if (key && key_file) return cli_usage_error("serve", "give --api-key or --api-key-file, not both");
    if (key && !*key) return cli_usage_error("serve", "--api-key: the key is empty");
#ifndef LC_HAVE_SERVER
    (void)host, (void)port, (void)parallel, (void)n_ctx, (void)threads, (void)batch, (void)chunk, (void)queue;
    (void)max_body, (void)max_messages, (void)max_tokens, (void)timeout, (void)max_conn, (void)kv, (void)alias, (void)tpl_file, (void)quiet;
    (void)lora;
    return cli_error("this build of llamac has no server (it was built without libmicrohttpd and Jansson)");
#else
    char *key_text = NULL, *tpl = NULL;
    size_t tpl_len = 0;
    if (tpl_file && (rc = cli_read_file(tpl_file, &tpl, &tpl_len))) return rc;
    if (key_file) {
        size_t len;
        if ((rc = cli_read_file(key_file, &key_text, &len))) {
            free(tpl);
            return rc;
        }
        key_text[strcspn(key_text, "\r\n")] = 0;
        if (!*key_text) {
            free(key_text);
            free(tpl);
            return cli_usage_error("serve", "--api-key-file %s: the first line is empty", key_file);
        }
        key = key_text;
    }
    srv_options o = {
        .model_path = model, .use_mmap = cli_use_mmap, .host = host, .port = (int)port, .n_parallel = (int)parallel, .n_ctx = (int)n_ctx,
        .n_threads = (int)threads, .n_batch = (int)batch, .n_chunk = (int)chunk, .queue_max = (int)queue,
        .kv_type = cli_kv_type(kv), .api_key = key, .max_body = (size_t)max_body, .max_messages = (size_t)max_messages,
        .max_tokens = (int)max_tokens, .timeout_s = (int)timeout, .max_connections = (int)max_conn, .model_name = alias,
        .template_src = tpl, .template_len = tpl_len, .template_name = tpl_file, .quiet = quiet,
        .lora_files = lora.file, .lora_scales = lora.scale, .n_lora = lora.n,
    };
    rc = srv_run(&o);
    free(key_text);
    free(tpl);
    return rc;
#endif
}
