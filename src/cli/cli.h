/* cli.h - what every subcommand shares: the common flags (--config, --set, --quiet,
 * --log-format, --json, --help), MPI rank/size, and the final report of a status. The
 * subcommand files only parse their own flags and call the library. */
#ifndef IMF_CLI_H
#define IMF_CLI_H
#include "config.h"
#include "error.h"
#include "log.h"

typedef struct {
  MPI_Comm comm;
  int rank, size;
  imf_config *cfg;
  int json;   /* --json: machine-readable result on stdout */
  int quiet;
} imf_cli;

typedef struct {
  const char *name;
  const char *summary;
  const char *usage; /* full help text */
  int (*run)(imf_cli *cli, int argc, char **argv); /* returns an exit code */
} imf_command;

/* Consume the common flags from argv (compacting it in place); fills cli. Returns IMF_OK or a
 * usage error. --help sets *help. */
imf_status imf_cli_common(imf_cli *cli, int *argc, char **argv, int *help);
/* Report a failed status on rank 0 ("incremf CMD: error: ...") and return its exit code. */
int imf_cli_fail(imf_cli *cli, const char *cmd, imf_status st);
/* Require a value after a flag; usage error naming the flag otherwise. */
imf_status imf_cli_value(int argc, char **argv, int *i, const char **out);

/* Answer help, --version, an unknown command or an unknown flag before MPI_Init (early.c): the
 * exit code, or -1 when the command is to run under MPI. Prints on the launcher's rank 0 only. */
int imf_cli_early(int argc, char **argv, const imf_command *cmds, size_t ncmds, void (*usage)(FILE *));

int imf_cmd_prepare(imf_cli *cli, int argc, char **argv);
int imf_cmd_append(imf_cli *cli, int argc, char **argv);
int imf_cmd_inspect(imf_cli *cli, int argc, char **argv);
int imf_cmd_synth(imf_cli *cli, int argc, char **argv);
int imf_cmd_train(imf_cli *cli, int argc, char **argv);
int imf_cmd_update(imf_cli *cli, int argc, char **argv);
int imf_cmd_evaluate(imf_cli *cli, int argc, char **argv);
int imf_cmd_recommend(imf_cli *cli, int argc, char **argv);
int imf_cmd_status(imf_cli *cli, int argc, char **argv);
int imf_cmd_rollback(imf_cli *cli, int argc, char **argv);
int imf_cmd_prune(imf_cli *cli, int argc, char **argv);
int imf_cmd_forget(imf_cli *cli, int argc, char **argv);
int imf_cmd_tune(imf_cli *cli, int argc, char **argv);
extern const char IMF_USAGE_PREPARE[], IMF_USAGE_APPEND[], IMF_USAGE_INSPECT[], IMF_USAGE_SYNTH[],
    IMF_USAGE_TRAIN[], IMF_USAGE_UPDATE[], IMF_USAGE_EVALUATE[], IMF_USAGE_RECOMMEND[], IMF_USAGE_STATUS[],
    IMF_USAGE_ROLLBACK[], IMF_USAGE_PRUNE[], IMF_USAGE_FORGET[], IMF_USAGE_TUNE[];
#endif
