/* cmd_run.c - `llamac run`: the generation loop. Tokenize the prompt (BOS as the vocabulary says), decode it in
** batches of n_batch, then sample one token at a time and decode it, streaming text to stdout through the
** detokenizer (which never splits a UTF-8 character). Stops at an end-of-generation token, after -n tokens, or when
** the context is full, and says which on stderr with the load time and the prompt and generation speeds.
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *run_help =
    "usage: llamac run -m MODEL (-p PROMPT | -f FILE) [options]\n"
    "\n"
    "Generates text from a prompt and streams it to stdout (the prompt is echoed first). Load time, the seed and\n"
    "the prompt and generation speeds go to stderr. Stops at an end-of-generation token, after -n tokens, or when\n"
    "the context is full. Sampling defaults are llama.cpp's.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE         the model (GGUF, or llama2.c .bin with tokenizer.bin beside it)\n"
    "  -p, --prompt TEXT        the prompt\n"
    "  -f, --file FILE          read the prompt from FILE ('-': stdin)\n"
    "  --ids LIST               the prompt as token ids, comma-separated (used exactly as given)\n"
    "  -n, --n-predict N        tokens to generate (default 128; -1: until end of text or full context)\n"
    "  --temp T                 temperature (default 0.8; 0: greedy, always the most likely token)\n"
    "  --top-k K                keep the K most likely tokens (default 40; 0: off)\n"
    "  --top-p P                keep the smallest set with probability >= P (default 0.95; 1: off)\n"
    "  --min-p P                drop tokens below P times the best one's probability (default 0.05; 0: off)\n"
    "  --repeat-penalty R       penalize recently seen tokens (default 1.0: off)\n"
    "  --repeat-last-n N        tokens looked back for the penalty (default 64; -1: all; 0: off)\n"
    "  --seed S                 random seed (default: random, printed on stderr; same seed, same output)\n"
    "  -t, --threads N          threads (default: all cores)\n"
    "  --mmap                   map the model file instead of reading it into memory (huge pages)\n"
    "  -c, --ctx-size N         context size in tokens (default: the model's, at most 4096)\n"
    "  -b, --batch-size N       prompt tokens per decode call (default 512)\n"
    "  --kv f16|f32             KV cache type (default f16, as llama.cpp)\n"
    "  --no-bos                 do not prepend BOS to the prompt\n"
    "  --ignore-eos             keep generating past end-of-generation tokens\n"
    "  --no-echo                do not print the prompt\n"
    "  --print-ids              print the generated token ids (space-separated) instead of text\n"
    CLI_LORA_HELP
    "  -h, --help               this help\n";

/* Writes token id as text (or as its id). Returns CLI_OK or the error exit code. */
static int emit(const lc_model *m, lc_detok *d, int32_t id, bool ids, bool *first_id) {
    if (ids) {
        printf(*first_id ? "%d" : " %d", (int)id);
        *first_id = false;
    } else {
        char buf[4096];
        int n = lc_detok_push(m, d, id, buf, sizeof buf);
        if (n < 0) return cli_lib_error();
        fwrite(buf, 1, (size_t)n, stdout);
    }
    fflush(stdout);
    return CLI_OK;
}

int cmd_run(int argc, char **argv) {
    const char *cmd = "run", *model_path = NULL, *prompt = NULL, *file = NULL, *ids_s = NULL;
    int64_t n_predict = 128, top_k = 40, repeat_last_n = 64, threads = 0, n_ctx = 0, n_batch = 512;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, repeat_penalty = 1.0;
    uint64_t seed = 0;
    bool seed_set = false, no_bos = false, ignore_eos = false, no_echo = false, print_ids = false;
    int kv = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model_path, 0, 0, NULL, NULL},
        {"-p", "--prompt", CLI_STR, &prompt, 0, 0, NULL, NULL},
        {"-f", "--file", CLI_STR, &file, 0, 0, NULL, NULL},
        {NULL, "--ids", CLI_STR, &ids_s, 0, 0, NULL, NULL},
        {"-n", "--n-predict", CLI_INT, &n_predict, -1, INT32_MAX, NULL, NULL},
        {NULL, "--temp", CLI_FLOAT, &temp, 0.0, 1e6, NULL, NULL},
        {NULL, "--top-k", CLI_INT, &top_k, 0, INT32_MAX, NULL, NULL},
        {NULL, "--top-p", CLI_FLOAT, &top_p, 0.0, 1.0, NULL, NULL},
        {NULL, "--min-p", CLI_FLOAT, &min_p, 0.0, 1.0, NULL, NULL},
        {NULL, "--repeat-penalty", CLI_FLOAT, &repeat_penalty, 0.0, 1e6, NULL, NULL},
        {NULL, "--repeat-last-n", CLI_INT, &repeat_last_n, -1, INT32_MAX, NULL, NULL},
        {NULL, "--seed", CLI_U64, &seed, 0, 0, NULL, &seed_set},
        {"-t", "--threads", CLI_INT, &threads, 1, 4096, NULL, NULL},
        CLI_MMAP_OPT,
        {"-c", "--ctx-size", CLI_INT, &n_ctx, 1, 1 << 24, NULL, NULL},
        {"-b", "--batch-size", CLI_INT, &n_batch, 1, 1 << 24, NULL, NULL},
        {NULL, "--kv", CLI_CHOICE, &kv, 0, 0, CLI_KV_CHOICES, NULL},
        {NULL, "--no-bos", CLI_FLAG, &no_bos, 0, 0, NULL, NULL},
        {NULL, "--ignore-eos", CLI_FLAG, &ignore_eos, 0, 0, NULL, NULL},
        {NULL, "--no-echo", CLI_FLAG, &no_echo, 0, 0, NULL, NULL},
        {NULL, "--print-ids", CLI_FLAG, &print_ids, 0, 0, NULL, NULL},
    };
    bool help;
    size_t n_pos;
    cli_lora lora = {0};
    int r = cli_lora_take(cmd, &argc, argv, &lora);
    if (r) return r;
    r = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof *opts, NULL, 0, &n_pos, &help);
    if (r) return r;
    if (help) {
        fputs(run_help, stdout);
        return CLI_OK;
    }
    if (!model_path) return cli_usage_error(cmd, "missing -m MODEL");
    if ((prompt != NULL) + (file != NULL) + (ids_s != NULL) != 1)
        return cli_usage_error(cmd, "give exactly one prompt: -p TEXT, -f FILE or --ids LIST");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (ids_s && (r = cli_parse_int_list(cmd, "--ids", ids_s, 0, INT32_MAX, &ids, &n_ids))) return r;
    if (!seed_set) seed = cli_random_seed();

    lc_model *m = NULL;
    lc_context *c = NULL;
    lc_sampler *smp = NULL;
    char *text = NULL;
    double load_s = 0;
    if ((r = cli_load_model(model_path, &m, &load_s))) goto done;
    const lc_hparams *hp = lc_model_hparams(m);
    char desc[128];
    lc_model_desc(m, desc, sizeof desc);
    fprintf(stderr, "llamac run: loaded %s (%s) in %.2f s\n", model_path, desc, load_s);

    if (ids) {
        for (size_t i = 0; i < n_ids; i++)
            if ((uint32_t)ids[i] >= hp->n_vocab) {
                r = cli_usage_error(cmd, "bad value for --ids: token %d (item %zu) is outside the vocabulary [0, %u) of %s",
                                    (int)ids[i], i + 1, hp->n_vocab, model_path);
                goto done;
            }
    } else {
        size_t len = 0;
        if (file) {
            if ((r = cli_read_file(file, &text, &len))) goto done;
        } else {
            len = strlen(prompt);
        }
        if ((r = cli_tokenize(m, text ? text : prompt, len, !no_bos && cli_model_add_bos(m), &ids, &n_ids))) goto done;
    }
    if (n_ids == 0) {
        r = cli_error("the prompt gives no tokens (empty text and no BOS); give a prompt");
        goto done;
    }

    lc_context_params cp = lc_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx; /* 0: the library's default */
    cp.n_batch = (uint32_t)n_batch;
    cp.n_threads = (int)threads;
    cp.kv_type = cli_kv_type(kv);
    if (lc_context_new(m, &cp, &c) || (r = cli_lora_apply(&lora, m, c))) {
        if (r) goto done;
        r = cli_lib_error();
        goto done;
    }
    const uint32_t ctx = lc_context_n_ctx(c);
    if (n_ids >= ctx) {
        r = cli_error("the prompt has %zu tokens but the context holds %u, with no room to generate; raise -c "
                      "(or shorten the prompt)", n_ids, ctx);
        goto done;
    }
    const int32_t n_prompt = (int32_t)n_ids, nb = (int32_t)(n_batch < ctx ? n_batch : ctx);

    lc_sampler_params sp = lc_sampler_default_params();
    sp.temp = (float)temp;
    sp.top_k = (int32_t)top_k;
    sp.top_p = (float)top_p;
    sp.min_p = (float)min_p;
    sp.repeat_penalty = (float)repeat_penalty;
    sp.repeat_last_n = (int32_t)repeat_last_n;
    sp.seed = seed;
    if (lc_sampler_new(&sp, (int32_t)hp->n_vocab, &smp)) {
        r = cli_lib_error();
        goto done;
    }
    fprintf(stderr, "llamac run: seed %llu, temp %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g (last %d), "
            "context %u, KV %s, %d prompt tokens\n",
            (unsigned long long)seed, temp, (int)top_k, top_p, min_p, repeat_penalty, (int)repeat_last_n, ctx,
            kv ? "f32" : "f16", (int)n_prompt);

    /* the prompt: echoed through the same detokenizer, so the generated text continues it seamlessly */
    lc_detok d;
    lc_detok_init(&d, false);
    bool first_id = true;
    if (!print_ids && !no_echo)
        for (int32_t i = 0; i < n_prompt; i++)
            if ((r = emit(m, &d, ids[i], false, &first_id))) goto done;
    for (int32_t i = 0; i < n_prompt; i++) lc_sampler_accept(smp, ids[i]); /* the penalty sees the prompt too */

    double t0 = lc_time_s();
    int32_t last_row = 0;
    for (int32_t p0 = 0; p0 < n_prompt; p0 += nb) {
        int32_t cnt = n_prompt - p0 < nb ? n_prompt - p0 : nb;
        lc_batch b = {.n_tokens = cnt, .token = ids + p0, .pos = NULL, .seq_id = NULL, .logits = NULL};
        if (lc_decode(c, &b)) {
            r = cli_lib_error();
            goto done;
        }
        last_row = cnt - 1;
    }
    double t_prompt = lc_time_s() - t0;

    /* generation: sample from the last row's logits, stop or emit, decode the new token */
    t0 = lc_time_s();
    int32_t n_gen = 0, n_past = n_prompt;
    const char *why = "the token limit (-n)";
    char why_buf[96];
    while (n_predict != 0) {
        const float *logits = lc_get_logits(c, last_row);
        if (!logits) {
            r = cli_error("no logits after decoding (library error)");
            goto done;
        }
        int32_t id = lc_sampler_sample(smp, logits);
        if (id < 0 || (uint32_t)id >= hp->n_vocab) {
            r = cli_error("the sampler returned token %d, outside the vocabulary: %s", (int)id, lc_last_error());
            goto done;
        }
        lc_sampler_accept(smp, id);
        if (!ignore_eos && lc_token_is_eog(m, id)) {
            snprintf(why_buf, sizeof why_buf, "an end-of-generation token (id %d)", (int)id);
            why = why_buf;
            break;
        }
        if ((r = emit(m, &d, id, print_ids, &first_id))) goto done;
        n_gen++;
        if (n_predict > 0 && n_gen >= n_predict) break;
        if ((uint32_t)n_past >= ctx) {
            why = "a full context (raise -c for longer output)";
            break;
        }
        lc_batch b = {.n_tokens = 1, .token = &id, .pos = NULL, .seq_id = NULL, .logits = NULL};
        if (lc_decode(c, &b)) {
            r = cli_lib_error();
            goto done;
        }
        n_past++;
        last_row = 0;
    }
    double t_gen = lc_time_s() - t0;
    if (!print_ids) {
        char buf[64];
        int n = lc_detok_flush(&d, buf, sizeof buf);
        if (n > 0) fwrite(buf, 1, (size_t)n, stdout);
    }
    putchar('\n');
    fflush(stdout);
    fprintf(stderr, "llamac run: stopped at %s\n", why);
    fprintf(stderr, "llamac run: load %.2f s | prompt %d tokens, %.3f s, %.2f tok/s | generation %d tokens, %.3f s, "
            "%.2f tok/s\n",
            load_s, (int)n_prompt, t_prompt, t_prompt > 0 ? n_prompt / t_prompt : 0.0, (int)n_gen, t_gen,
            t_gen > 0 ? n_gen / t_gen : 0.0);
    r = CLI_OK;
done:
    free(text);
    free(ids);
    lc_sampler_free(smp);
    lc_context_free(c);
    cli_lora_free(&lora);
    lc_model_free(m);
    return r;
}
