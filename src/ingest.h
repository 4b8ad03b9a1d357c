/* ingest.h - one input file -> one clean, numbered batch, in parallel over the ranks.
 *
 * Stages: detect the format (rank 0) -> each rank parses its own byte range of a plain file
 * (a compressed file is decompressed by rank 0 and scattered in line-aligned pieces) -> ids are
 * numbered in order of first appearance (the same for any rank count) -> ratings move to the
 * rank owning their user -> duplicates merged, filters applied -> a batch sorted by (user,
 * item). Every input line ends up counted exactly once: header, stored, merged or rejected. */
#ifndef IMF_INGEST_H
#define IMF_INGEST_H
#include "idmap.h"
#include "parse.h"
#include "store.h"

/* users/items: the store's id maps (replicated; new ids are appended to them). dup_policy:
 * "latest", "first" or "mean". rejects_path may be NULL (rejects are then only counted).
 * known (may be NULL): the store the batch is for; a file whose sha256 it already holds is
 * refused (IMF_ERR_INPUT) right after the hash, before it is parsed. */
imf_status imf_ingest_file(MPI_Comm comm, const imf_config *cfg, const char *path,
                           const char *rejects_path, imf_idmap *users, imf_idmap *items,
                           const imf_store *known, imf_batch *out);
/* The [input] and [clean] keys as parse options (format, header, delimiter, columns, limits,
 * scale); usage errors for inconsistent values. Detection fills in the rest per file. */
imf_status imf_parse_opts_from_config(const imf_config *cfg, imf_parse_opts *o);
/* Print the report's summary lines via imf_info (rank 0). */
void imf_ingest_print_report(const imf_ingest_report *r, const char *path);
#endif
