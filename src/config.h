/* config.h - the one options mechanism: a table of known keys, filled from INI files
 * (libinih) and then from --set section.key=value, the command line winning. Unknown keys and
 * ill-typed values are errors. The public accessors are declared in incremf.h. */
#ifndef IMF_CONFIG_H
#define IMF_CONFIG_H
#include "incremf.h"

/* Typed shortcuts used inside the library: the key must exist in the table (programming
 * error otherwise, reported as IMF_ERR_RUNTIME). */
int64_t imf_cfg_int(const imf_config *cfg, const char *key);
double imf_cfg_double(const imf_config *cfg, const char *key); /* NaN for "none" */
int imf_cfg_bool(const imf_config *cfg, const char *key);
const char *imf_cfg_str(const imf_config *cfg, const char *key);
/* 1 when the key was given (an INI file, --set, a loaded snapshot), 0 when it holds its default:
 * for warnings about settings that cannot take effect (the store's standing holdout). */
int imf_config_is_set(const imf_config *cfg, const char *key);
/* Print every known key with its default and help text (for `incremf help config`). */
void imf_config_print_keys(FILE *out);
/* Values that are each well-formed but mean nothing (a negative regularisation, zero sweeps,
 * a fraction outside [0, 1), an empty scale): refused (exit 2) before any file is read or any
 * directory created, by every command (cli/common.c), instead of after the data was read. */
imf_status imf_config_validate(const imf_config *cfg);
/* The keys that say how this job runs, not what the model is (section dist.: the node layout,
 * node-shared factors), copied from src (this invocation's) into dst (a stored snapshot's), so
 * that a resumed run or an update runs as its own command line says, not as the job that wrote
 * the snapshot ran. */
imf_status imf_config_take_run_keys(imf_config *dst, const imf_config *src);
/* Copy: a config snapshot (e.g. the one stored in a checkpoint) loaded from INI text. */
imf_status imf_config_load_string(imf_config *cfg, const char *ini_text, const char *origin);
#endif
