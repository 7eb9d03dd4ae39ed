/* cmd_template.c - (being written) */
#include "cli.h"

int cmd_template(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_error("this command is not finished yet");
}
