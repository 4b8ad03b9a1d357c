/* log.h - progress and diagnostics. Rank 0 speaks for the job; --quiet silences info lines and
 * --log-format json turns every line into one JSON object (for batch logs). */
#ifndef IMF_LOG_H
#define IMF_LOG_H
#include "error.h"
#include <stdio.h>

typedef enum { IMF_LOG_TEXT = 0, IMF_LOG_JSON } imf_log_format;
void imf_log_setup(int rank, int quiet, imf_log_format fmt);
int imf_log_is_json(void);
int imf_log_rank(void);
int imf_log_quiet(void);
/* Informational line on rank 0 (stderr), unless quiet. */
void imf_info(const char *fmt, ...) IMF_PRINTF(1, 2);
/* Warning on rank 0 (stderr), even when quiet. */
void imf_warn(const char *fmt, ...) IMF_PRINTF(1, 2);
/* JSON string output: escaped body only, or with the quotes. */
void imf_json_escape(FILE *f, const char *s);
void imf_json_string(FILE *f, const char *s);
/* Wall clock in seconds. */
double imf_wtime(void);
/* A warning to print when OpenBLAS runs kernels older than the CPU supports; NULL when fine. */
const char *imf_blas_core_advice(void);
/* Peak resident set size of this process in bytes (VmHWM). */
int64_t imf_peak_rss(void);
/* IMF_MEM_TRACE=1: each rank prints its resident and peak resident size at `phase` to stderr
 * (where a job's memory goes: docs/SCALING.md "Memory beyond the model"); otherwise nothing. */
void imf_mem_trace(const char *phase);
#endif
