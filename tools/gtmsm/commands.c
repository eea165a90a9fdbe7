/* The table of subcommands. */
#include <stddef.h>

#include "tools.h"

const tool_command TOOL_COMMANDS[] = {
    {NULL, NULL},
};
