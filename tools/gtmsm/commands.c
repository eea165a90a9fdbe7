/* The table of subcommands. */
#include <stddef.h>

#include "tools.h"

const tool_command TOOL_COMMANDS[] = {
    {"gen", cmd_gen},
    {"train", cmd_train},
    {"eval", cmd_eval},
    {"predict", cmd_predict},
    {NULL, NULL},
};
