/* early.c - what the CLI answers before MPI_Init: help texts, --version, an unknown command and
 * an unknown flag. Starting MPI costs 0.3 s or more per process (issue 26), which a `--help` or a
 * typo should not pay. Without MPI the rank comes from the launcher's environment, so that under
 * mpirun (or srun) only rank 0 prints, and every rank returns the same exit code. */
#include "cli.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* This process's rank as the launcher set it in the environment; 0 for a plain process. */
static int launcher_rank(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return atoi(v);
  }
  return 0;
}

/* Whether flag (e.g. "--out") appears in text as a whole word. */
static int mentions(const char *text, const char *flag) {
  size_t n = strlen(flag);
  for (const char *p = strstr(text, flag); p; p = strstr(p + 1, flag)) {
    char before = p == text ? ' ' : p[-1], after = p[n];
    if ((isalnum((unsigned char)before) || before == '-') || isalnum((unsigned char)after) || after == '-' ||
        after == '_')
      continue;
    return 1;
  }
  return 0;
}

static int is_common_flag(const char *a) {
  static const char *const flags[] = {"--config", "--set", "--quiet", "-q", "--json", "--log-format", "--help", "-h"};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (!strcmp(a, flags[i])) return 1;
  return 0;
}

/* `incremf CMD ...`: --help anywhere wins (exit 0); else a `--flag` that neither the common
 * options nor CMD's usage text name is a usage error (exit 2). Every flag a command accepts is
 * named in its usage text (tests/e2e_cli.sh checks it). -1: run the command under MPI. */
static int early_command(imf_cli *cli, const imf_command *cmd, int argc, char **argv) {
  int help = 0;
  const char *unknown = NULL, *logfmt = "text";
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) help = 1;
    else if (!strcmp(a, "--config") || !strcmp(a, "--set") || !strcmp(a, "--log-format")) {
      if (i + 1 < argc && !strcmp(a, "--log-format")) logfmt = argv[i + 1];
      i++; /* its value, whatever it looks like */
    } else if (!unknown && a[0] == '-' && a[1] == '-' && isalpha((unsigned char)a[2]) && !is_common_flag(a) &&
               !mentions(cmd->usage, a))
      unknown = a;
  }
  if (help) {
    if (cli->rank == 0) fputs(cmd->usage, stdout);
    return 0;
  }
  if (!unknown) return -1;
  imf_log_setup(cli->rank, 0, strcmp(logfmt, "json") ? IMF_LOG_TEXT : IMF_LOG_JSON);
  return imf_cli_fail(cli, cmd->name,
                      IMF_RAISE(IMF_ERR_USAGE, "unknown option '%s' (see incremf %s --help)", unknown, cmd->name));
}

/* `incremf help [config|CMD]`, `--help`, `-h`, or no argument at all */
static int early_help(imf_cli *cli, int argc, char **argv, const imf_command *cmds, size_t ncmds,
                      void (*usage)(FILE *)) {
  int print = cli->rank == 0;
  if (argc >= 3 && !strcmp(argv[2], "config")) {
    if (print) {
      printf("configuration keys ([section] name = value in INI files, or --set section.name=value):\n");
      imf_config_print_keys(stdout);
    }
    return 0;
  }
  if (argc >= 3) {
    for (size_t i = 0; i < ncmds; i++)
      if (!strcmp(argv[2], cmds[i].name)) {
        if (print) fputs(cmds[i].usage, stdout);
        return 0;
      }
    if (print) {
      fprintf(stderr, "incremf: no help on '%s'\n\n", argv[2]);
      usage(stderr);
    }
    return 2;
  }
  if (print) usage(argc < 2 ? stderr : stdout);
  return argc < 2 ? 2 : 0;
}

static int early_answer(int argc, char **argv, const imf_command *cmds, size_t ncmds,
                        void (*usage)(FILE *)) {
  imf_cli cli = {.rank = launcher_rank(), .size = 1};
  imf_log_setup(cli.rank, 0, IMF_LOG_TEXT);
  if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
    return early_help(&cli, argc, argv, cmds, ncmds, usage);
  if (!strcmp(argv[1], "--version")) {
    if (imf_initialize(MPI_COMM_WORLD) != IMF_OK) return -1; /* no MPI call needs MPI_Init here */
    if (cli.rank == 0) printf("%s\n", imf_build_info());
    return 0;
  }
  for (size_t i = 0; i < ncmds; i++)
    if (!strcmp(argv[1], cmds[i].name)) return early_command(&cli, &cmds[i], argc, argv);
  if (cli.rank == 0) {
    fprintf(stderr, "incremf: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
  }
  return 2;
}

/* A rank other than 0 that refuses (exit 2) holds back before it exits. mpirun takes the job
 * down at the first non-zero exit and kills the other ranks at once (odls_base_sigkill_timeout
 * 0, or SIGTERM, which nothing handles before MPI starts): a silent rank 1 that exited first
 * could kill rank 0 before it printed the error, leaving a bare exit code (seen in a CI run on
 * 2026-12-07: `mpirun -q -n 2 incremf update --nope` said nothing). Rank 0's own exit ends the
 * wait under mpirun; under srun without --kill-on-bad-exit the other ranks exit after it. */
int imf_cli_early(int argc, char **argv, const imf_command *cmds, size_t ncmds, void (*usage)(FILE *)) {
  int rc = early_answer(argc, argv, cmds, ncmds, usage);
  if (rc > 0 && launcher_rank() != 0) {
    struct timespec hold = {.tv_sec = 2, .tv_nsec = 0};
    while (nanosleep(&hold, &hold) != 0 && errno == EINTR) {
    }
  }
  return rc;
}
