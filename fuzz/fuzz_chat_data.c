/* fuzz_chat_data.c - libFuzzer target for fine-tuning's chat JSONL reader (ft_chat_encode, src/train/finetune_data.c):
** one input is one line, a conversation rendered with the model's template (here llamac's Llama 2 template of a small
** synthetic model, written at start-up) and tokenized, with the assistant-token mask.
**
** Checks (each violation traps): a rejection is LC_E_INVALID, the template's LC_E_FORMAT (or LC_E_NOMEM) with a
** message and no outputs; an accepted line gives ids inside the vocabulary, a 0/1 mask, and never an assistant token
** first; the session is reusable for the next input.
*/
#include "llamac.h"

#include "../src/train/finetune.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static lc_model *g_model;
static lc_chat *g_chat;

static void die(const char *what) {
    fprintf(stderr, "%s\n", what);
    __builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char path[] = "/tmp/fuzz-chat-data-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) die("mkstemp");
    close(fd);
    lc_synth_params p = lc_synth_default_params();
    p.n_embd = 32, p.n_layer = 1, p.n_head = 2, p.n_head_kv = 1, p.n_ff = 32;
    if (lc_synth_write(path, &p) || lc_model_load(path, NULL, &g_model) || lc_chat_new(g_model, NULL, NULL, &g_chat))
        die(lc_last_error());
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t *tok = NULL;
    uint8_t *mask = NULL;
    size_t n = 0;
    const int r = ft_chat_encode(g_model, g_chat, (const char *)data, size, &tok, &mask, &n);
    if (r) {
        if (r != LC_E_INVALID && r != LC_E_FORMAT && r != LC_E_NOMEM) die("unexpected status");
        if (!lc_last_error()[0]) die("rejection without a message");
        if (tok || mask || n) die("outputs set on failure");
        return 0;
    }
    const uint32_t nv = lc_model_hparams(g_model)->n_vocab;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < 0 || (uint32_t)tok[i] >= nv) die("id outside the vocabulary");
        if (mask[i] > 1) die("mask not 0/1");
    }
    if (n && mask[0]) die("the first token is an assistant token");
    lc__free(tok);
    lc__free(mask);
    return 0;
}
