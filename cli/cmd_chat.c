/* cmd_chat.c - (being written) */
#include "cli.h"

int cmd_chat(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_error("this command is not finished yet");
}
