/* cmd_train_tokenizer.c - (being written) */
#include "cli.h"

int cmd_train_tokenizer(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_error("this command is not finished yet");
}
