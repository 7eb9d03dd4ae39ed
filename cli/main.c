/* main.c - the `llamac` tool: dispatches to a subcommand (one file each, cmd_*.c), prints the overview (--help) and
** the version. Exit codes for every subcommand: 0 ok, 1 runtime error, 2 usage error.
*/
#include "cli.h"

#include <string.h>

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

int cmd_tokenize(int argc, char **argv);   /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */
int cmd_quantize(int argc, char **argv);   /* cmd_quantize.c */
int cmd_perplexity(int argc, char **argv); /* cmd_perplexity.c */
int cmd_template(int argc, char **argv);   /* cmd_template.c */
int cmd_chat(int argc, char **argv);       /* cmd_chat.c */
int cmd_train_tokenizer(int argc, char **argv); /* cmd_train_tokenizer.c */
int cmd_train(int argc, char **argv);           /* cmd_train.c */
int cmd_serve(int argc, char **argv);           /* cmd_serve.c */
int cmd_finetune(int argc, char **argv);        /* cmd_finetune.c */

static const command commands[] = {
    {"run", cmd_run, "generate text from a prompt, streamed to stdout"},
    {"info", cmd_info, "show a model's metadata, tensors and hyperparameters"},
    {"logits", cmd_logits, "print the logits (or top-K log-probabilities) of a token sequence as JSON"},
    {"bench", cmd_bench, "measure prompt-processing and generation speed (like llama-bench)"},
    {"synth", cmd_synth, "write a Llama GGUF with RANDOM weights (tests, demos, benchmarks)"},
    {"tokenize", cmd_tokenize, "text to token ids (of a model, tokenizer.json, tokenizer.model or tokenizer.bin)"},
    {"detokenize", cmd_detokenize, "token ids to text"},
    {"quantize", cmd_quantize, "convert a GGUF's weights to Q4_K_M, Q8_0, ... (llama-quantize's recipes)"},
    {"perplexity", cmd_perplexity, "perplexity of a text file, in chunks (as llama-perplexity)"},
    {"chat", cmd_chat, "chat with the model through its chat template (Llama 3.1 tool calls with --tools)"},
    {"train-tokenizer", cmd_train_tokenizer, "learn a byte-level BPE tokenizer (Llama 3 style) from text files"},
    {"train", cmd_train, "pre-train a small Llama model from scratch on text files (CPU)"},
    {"finetune", cmd_finetune, "LoRA fine-tuning of a model on text or chat JSONL; writes a llama.cpp adapter"},
    {"serve", cmd_serve, "serve the model over HTTP with OpenAI's API (continuous batching) and a chat page"},
    {"template", cmd_template, "render a chat template (the model's or a .jinja file) for a conversation"},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static void overview(FILE *f) {
    fprintf(f,
            "llamac %s - run Meta's Llama models (GGUF, llama2.c checkpoints) on the CPU\n"
            "\n"
            "usage: llamac COMMAND [options]     (llamac COMMAND --help for its options)\n"
            "\n"
            "commands:\n",
            LC_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "examples:\n"
               "  llamac run -m model.gguf -p \"Once upon a time\" -n 64\n"
               "  llamac info model.gguf\n"
               "  llamac synth -o random-tiny.gguf --preset tiny\n"
               "\n"
               "exit status: 0 ok, 1 runtime error, 2 usage error\n"
               "environment: LLAMAC_LOG=0|1|2 (library messages: quiet, warnings, info), "
               "LLAMAC_CPU=ref|avx2|avx512|neon\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        overview(stderr);
        return CLI_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help")) {
        overview(stdout);
        return CLI_OK;
    }
    if (!strcmp(c, "-V") || !strcmp(c, "--version") || !strcmp(c, "version")) {
        printf("llamac %s (kernels: %s, %d cores)\n", LC_VERSION, lc_cpu_variant(), lc_n_cores());
        return CLI_OK;
    }
    if (!strcmp(c, "help")) { /* "llamac help run" == "llamac run --help" */
        if (argc < 3) {
            overview(stdout);
            return CLI_OK;
        }
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char help_flag[] = "--help";
                char *av[] = {argv[2], help_flag, NULL};
                return commands[i].fn(2, av);
            }
        fprintf(stderr, "llamac: unknown command '%s'\nTry 'llamac --help'.\n", argv[2]);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(c, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    if (c[0] == '-') fprintf(stderr, "llamac: '%s' is not a command; options come after the command\n", c);
    else fprintf(stderr, "llamac: unknown command '%s'\n", c);
    fprintf(stderr, "Try 'llamac --help'.\n");
    return CLI_USAGE;
}
