/* checkpoint_impl.h - PRIVATE to src/checkpoint*.c (checkpoint.c, checkpoint_header.c,
 * checkpoint_ease.c): what those files share. No other file includes it; checkpoint.h is the
 * interface. checkpoint.c writes and reads the model's arrays; checkpoint_header.c the
 * attributes (the header), the content digest and the checks a reader relies on before it
 * allocates; checkpoint_ease.c the EASE state (block-cyclic matrices, sparse X, the P file).
 * HDF5 plumbing: h5io.h. */
#ifndef IMF_CHECKPOINT_IMPL_H
#define IMF_CHECKPOINT_IMPL_H
#include "checkpoint.h"
#include "layout.h"
#include "h5io.h"

#include <hdf5.h>
#include <stddef.h>

#ifndef IMF_VERSION
#define IMF_VERSION "unknown"
#endif

/* Bytes per rank and call that arrays move in (imf_checkpoint_set_io_chunk). */
int64_t ckpt_io_chunk(void);

/* An open checkpoint file and how to move data in it. */
typedef struct {
  MPI_Comm comm;
  int rank, size;
  hid_t f, dxpl;
  const char *path;
  const imf_layout *layout;  /* a node-shared read (imf_checkpoint_read_shared): the arrays inside */
  const imf_shared_seg *seg; /* seg are shared per node, not per rank; NULL otherwise */
} io_ctx;

/* The history columns: /history/NAME holds field NAME of every imf_sweep_metrics row. */
#define NHIST 6
typedef struct {
  const char *name;
  size_t offset;
  int is_int;
} ckpt_hist_col;
extern const ckpt_hist_col ckpt_hist[NHIST];

/* The header: the attributes, plus the id blob sizes a reader needs before it reads. */
typedef struct {
  imf_ckpt_info info; /* config == NULL while broadcast */
  int64_t ublob, iblob;
} header;

/* ---- checkpoint_header.c ---- */
void ckpt_copy_str(char *dst, size_t cap, const char *src);
const int64_t *ckpt_ids_off(const imf_idlist *l);
/* sha256 (hex) over the header's shaping scalars and everything the model stores. */
imf_status ckpt_model_digest(const imf_ckpt_info *h, const imf_model *m, const imf_idlist *u, const imf_idlist *it,
                             char hex[65]);
/* Collective: the same digest of a block model (model.h) into rank 0's hex, the ranks' blocks
 * (ustart, istart: imf_model_blocks) streamed to rank 0 in rounds of at most ckpt_io_chunk()
 * bytes, so that no rank holds the whole model. */
imf_status ckpt_model_digest_blocks(MPI_Comm comm, const int64_t *ustart, const int64_t *istart,
                                    const imf_ckpt_info *h, const imf_model *m, const imf_idlist *u,
                                    const imf_idlist *it, char hex[65]);
/* (local, serial HDF5) Open path and read its attributes, checking that they describe a model
 * this build can read. */
imf_status ckpt_header_read(const char *path, header *h);
/* Rank 0 reads the header (the config text left out), every rank gets it. */
imf_status ckpt_header_bcast(MPI_Comm comm, int rank, const char *path, header *h);
/* (local) What the writer checks before touching the file (of a block model, the rank's own
 * blocks; that they tile the rows is imf_model_blocks's check, collective). */
imf_status ckpt_check_input(const char *path, const imf_model *m, const imf_ckpt_meta *meta);
void ckpt_fill_header(header *h, const imf_model *m, const imf_ckpt_meta *meta);
/* Write the attributes (identical on every rank: metadata writes are collective). */
imf_status ckpt_write_attrs(hid_t f, const imf_ckpt_info *in, const char *config, const char *p);

/* ---- checkpoint.c ---- */
/* Broadcast a malloc'd string from rank 0 (chunked: MPI counts are int). */
imf_status ckpt_bcast_str(MPI_Comm comm, int rank, char **s);
/* MPI-IO file access as every checkpoint is created and opened with. */
hid_t ckpt_fapl(MPI_Comm comm);
/* Collective read-only open of a checkpoint; every rank gets the same status. */
imf_status ckpt_open_ro(MPI_Comm comm, const char *path, hid_t *out);

/* Collective: create 2-d (n x ncols) or 1-d dataset `name` and write this rank's block of rows
 * from buf (its row 0 is row start[rank]; start: nranks + 1 boundaries tiling [0, n)). */
imf_status ckpt_put_block(const io_ctx *c, const char *name, hid_t ftype, hid_t mtype, size_t esize, int nd,
                          int64_t n, int64_t ncols, const void *buf, const int64_t *start);
/* ---- checkpoint_sums.c ---- */
/* Collective: /itemsums from every rank's range of s (the ranges tiling [0, nitems)). */
imf_status ckpt_put_itemsums(const io_ctx *c, const imf_itemsums *s, int64_t nitems);
/* ---- checkpoint_ease.c ---- */
/* Collective: create dataset `name` (n x n, contiguous) and write every rank's blocks of local. */
imf_status ckpt_put_bc(const io_ctx *c, const char *name, hid_t ftype, const imf_ease *e, double *local);
/* Collective: X as CSR over all users (/ease/x_ptr, /ease/x_idx). */
imf_status ckpt_put_x(const io_ctx *c, const imf_ease_rows *x, int64_t nusers, int64_t nnz);
/* Collective: the P file of version path vpath's EASE state, unless it is there already. */
imf_status ckpt_write_p_file(MPI_Comm comm, const char *vpath, const imf_ckpt_info *in, imf_ease *e);
#endif
