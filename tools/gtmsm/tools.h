/* The gtmsm subcommands: each takes argv starting at its own name. */
#ifndef GTMSM_TOOLS_H
#define GTMSM_TOOLS_H

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
} tool_command;

extern const tool_command TOOL_COMMANDS[]; /* NULL-terminated */

int cmd_gen(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif
