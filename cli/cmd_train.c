/* cmd_train.c - (being written) */
#include "cli.h"

int cmd_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_error("this command is not finished yet");
}
