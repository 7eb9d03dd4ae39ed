/* cmd_train_tokenizer.c - `llamac train-tokenizer`: learns a byte-level BPE tokenizer (Llama 3 pre-tokenizer, the
** 256 bytes as base tokens, Llama 3 control tokens) from text files and writes it as a GGUF vocabulary.
*/
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *help =
    "usage: llamac train-tokenizer -f CORPUS [-f CORPUS...] --vocab N -o tok.gguf [--min-frequency K]\n"
    "\n"
    "Trains a byte-level BPE tokenizer: the text is split into words by the Llama 3 pre-tokenizer, the 256 bytes are\n"
    "the first tokens (every input can be encoded), and the most frequent adjacent pair becomes a new token until\n"
    "there are N tokens (ties: the pair whose bytes sort first). The Llama 3 control tokens (<|begin_of_text|>,\n"
    "<|end_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>, <|eom_id|>, <|python_tag|>) come last.\n"
    "The same text always gives the same tokenizer. The output is written through a temporary file and a rename and\n"
    "loads wherever a tokenizer is accepted (llamac tokenize --tokenizer tok.gguf).\n"
    "\n"
    "options:\n"
    "  -f, --file FILE        a text file (repeatable)\n"
    "  --vocab N              vocabulary size, at least 264 (256 bytes + 7 control tokens + 1)\n"
    "  -o, --output FILE      the GGUF to write\n"
    "  --min-frequency K      do not merge pairs seen fewer than K times (default 2)\n"
    "  -h, --help             this help\n";

int cmd_train_tokenizer(int argc, char **argv) {
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!files || !rest) {
        free(files), free(rest);
        return cli_error("out of memory");
    }
    size_t nf = 0;
    int nr = 0;
    for (int i = 0; i < argc; i++) { /* -f repeats: collected here */
        if (i > 0 && (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) files[nf++] = argv[++i];
        else rest[nr++] = argv[i];
    }
    const char *out = NULL;
    int64_t vocab = 0, minf = 2;
    bool help_flag = false;
    const cli_opt opts[] = {
        {NULL, "--vocab", CLI_INT, &vocab, 1, 1 << 24, NULL, NULL},
        {"-o", "--output", CLI_STR, &out, 0, 0, NULL, NULL},
        {NULL, "--min-frequency", CLI_INT, &minf, 1, 1LL << 40, NULL, NULL},
    };
    size_t npos;
    int rc = cli_parse("train-tokenizer", nr, rest, opts, sizeof opts / sizeof *opts, NULL, 0, &npos, &help_flag);
    if (rc == CLI_OK && help_flag) fputs(help, stdout);
    else if (rc == CLI_OK && !nf) rc = cli_usage_error("train-tokenizer", "give the text with -f FILE");
    else if (rc == CLI_OK && !vocab) rc = cli_usage_error("train-tokenizer", "give the vocabulary size with --vocab N");
    else if (rc == CLI_OK && !out) rc = cli_usage_error("train-tokenizer", "give the output file with -o FILE");
    if (rc == CLI_OK && !help_flag) {
        lc_train_tokenizer_params p = {.files = files, .n_files = nf, .vocab_size = (uint32_t)vocab,
                                       .min_frequency = (uint32_t)minf};
        const double t0 = lc_time_s();
        if (lc_train_tokenizer(&p, out)) rc = cli_lib_error();
        else fprintf(stderr, "llamac: wrote %s in %.1f s\n", out, lc_time_s() - t0);
    }
    free(files), free(rest);
    return rc;
}
