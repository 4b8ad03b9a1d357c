/* h5io.h - the one HDF5 plumbing layer under the rating store (store*.c) and the model
 * checkpoints (checkpoint*.c): property lists for MPI-IO, dataset creation, ranged 1-d
 * transfers of typed data, attributes, dataset lengths and the IMF_FAULT crash-point hook.
 *
 * Why one layer: the store and the checkpoints had each grown their own copies of these
 * (same names, different signatures). What a file holds and what an error says about it stay
 * with the modules; the calls that move bytes and build selections live here. Error strings
 * come from fsio.h's imf_h5_reason/imf_h5_last. Every function is local (no MPI traffic)
 * except where HDF5 itself makes the call collective (a create, an MPI-IO transfer). */
#ifndef IMF_H5IO_H
#define IMF_H5IO_H
#include "incremf.h"
#include <hdf5.h>
#include <mpi.h>

/* File access through MPI-IO on comm with collective metadata reads (every rank sees the same
 * attributes without N reads). create adds collective metadata writes and the 1.8 file format:
 * checksummed metadata (a damaged file is refused by HDF5's checksums instead of being decoded;
 * HDF5 1.10's decoders overrun buffers on some corrupt object headers: tests/fuzz) and
 * attributes past 64 KiB. -1 on failure. */
hid_t imf_h5_fapl_mpio(MPI_Comm comm, int create);
/* Serial file access in the 1.8 file format (checksummed metadata), for one process writing. */
hid_t imf_h5_fapl_v18(void);
/* A transfer list: collective or independent MPI-IO. */
hid_t imf_h5_dxpl(int collective);

/* Create dataset `name` (nd = 1 or 2, dims) of file type ftype under loc, creating missing
 * groups on the way: contiguous, and without the fill pass (every element gets written). -1
 * with the reason captured (imf_h5_last) on failure. */
hid_t imf_h5_dcreate(hid_t loc, const char *name, hid_t ftype, int nd, const hsize_t *dims);
/* Select rows [r0, r0 + cnt) of an n x ncols (nd = 2) or n-element (nd = 1, ncols = 1) file
 * space fs and create the matching memory space *ms; cnt == 0 selects nothing on both (a rank
 * with nothing to move still takes part in a collective transfer). */
herr_t imf_h5_select_rows(hid_t fs, int nd, int64_t r0, int64_t cnt, int64_t ncols, hid_t *ms);
/* Elements [off, off + cnt) of 1-d dataset d to (write) or from buf in mtype; cnt == 0 takes
 * part with an empty selection. The reason of a failure is captured (imf_h5_last). */
herr_t imf_h5_xfer_1d(hid_t d, hid_t mtype, hsize_t off, hsize_t cnt, void *buf, hid_t dxpl, int write);
/* Read elements [off, off + cnt) of 1-d dataset d (path and name for the message). A
 * zero-length dataset is skipped (no storage; the same on every rank), and an error when rows
 * were asked of it. An int64 read of a column stored in 4 signed bytes reads the 4-byte values
 * into the front of buf and widens them in place: HDF5's own conversion would turn a
 * collective transfer into independent ones, through a 1 MiB conversion buffer. */
imf_status imf_h5_read_1d(hid_t d, hid_t mtype, hsize_t off, hsize_t cnt, void *buf, hid_t dxpl, const char *path,
                          const char *name);
/* Create 1-d dataset `name` of `total` elements and write [off, off + cnt) from buf. */
imf_status imf_h5_write_1d(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hsize_t total, hsize_t off,
                           hsize_t cnt, const void *buf, hid_t dxpl, const char *path);

/* Length of 1-d dataset d, or -1 (not one-dimensional, or no space). */
int64_t imf_h5_len(hid_t d);
/* Length of 1-d dataset `name` under loc, or -1 (absent, unreadable, not one-dimensional). */
int64_t imf_h5_len_at(hid_t loc, const char *name);
/* imf_h5_len with the reasons as errors naming path and name. */
imf_status imf_h5_len_check(hid_t d, const char *path, const char *name, hsize_t *n);

/* Write attribute `name` of n values (n == 1: a scalar) of file type ftype from v (mtype). */
imf_status imf_h5_attr_put(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v, hsize_t n,
                           const char *path);
imf_status imf_h5_attr_i64(hid_t loc, const char *name, int64_t v, const char *path);
imf_status imf_h5_attr_f64(hid_t loc, const char *name, double v, const char *path);
/* A fixed-length, NUL-terminated string attribute. */
imf_status imf_h5_attr_str(hid_t loc, const char *name, const char *v, const char *path);
/* Reading a scalar attribute into v (mtype): 1 = read, 0 = absent, -1 = unreadable. */
int imf_h5_attr_get_num(hid_t loc, const char *name, hid_t mtype, void *v);
/* A string attribute (fixed or variable length) malloc'd into *out: 1, 0 absent, -1 unreadable. */
int imf_h5_attr_get_str(hid_t loc, const char *name, char **out);
/* A string attribute into buf[cap] (truncated), "" when absent or unreadable; clears the stack. */
void imf_h5_attr_text(hid_t loc, const char *name, char *buf, size_t cap);

/* Testing hook: 1 when the environment variable IMF_FAULT names crash point `name` (the
 * fault-injection tests make a write fail there, as a crash would leave it). */
int imf_fault(const char *name);
#endif
