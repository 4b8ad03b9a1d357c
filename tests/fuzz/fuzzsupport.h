/* fuzzsupport.h - what the libFuzzer harnesses of tests/fuzz share: process setup (MPI as a
 * singleton, quiet HDF5 and logging), a private scratch directory, small file helpers, the
 * archive format that carries several files in one fuzz input (a store directory, a model
 * directory), and the mutators that keep those inputs well formed while damaging the files
 * inside them (bit flips, truncations, overwritten words, libFuzzer's own text mutations). */
#ifndef IMF_FUZZSUPPORT_H
#define IMF_FUZZSUPPORT_H
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's default mutator, callable from a custom one. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* Abort with a message when an invariant of the code under test does not hold: the fuzzer
 * reports it as a crash and keeps the input. */
#define FZ_ASSERT(cond, ...)                                                                  \
  do {                                                                                        \
    if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                             \
  } while (0)
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* Quiet logging (no info or warning lines) and no HDF5 error stacks. For every target. */
void fz_init_quiet(void);
/* MPI_Init once (singleton, no mpirun; Open MPI told not to install signal handlers or spawn
 * a daemon), then fz_init_quiet. MPI is never finalized: the process exits from libFuzzer. */
void fz_init_mpi(int *argc, char ***argv);

/* After an input: no HDF5 file, dataset, group, named datatype or attribute may still be open
 * (an identifier leaked on an error path keeps a file descriptor and memory that LSan cannot
 * see). Aborts with the counts otherwise. */
void fz_h5_check(void);

/* A private directory for this process (under $IMF_FUZZ_TMPDIR, /dev/shm or /tmp), created on
 * first use and removed at exit. */
const char *fz_tmpdir(void);
/* Make path an empty directory (removing what it held, recursively). 0 on success. */
int fz_reset_dir(const char *path);
/* Write a whole file (created or truncated). 0 on success. */
int fz_write_file(const char *path, const void *data, size_t n);
/* Hex sha256 of a buffer. */
void fz_sha256_hex(const void *data, size_t n, char hex[65]);

/* ---- the archive: "IMFZ1\n", then entries: u8 name length (1..64), name, u32 LE length,
 * data. A store or model directory in one input. ---- */
#define FZ_MAX_ENTRIES 32
#define FZ_MAX_NAME 64
typedef struct {
  char name[FZ_MAX_NAME + 1];
  const uint8_t *data;
  size_t size;
} fz_entry;
/* Split buf into entries (pointing into buf). Returns the count, or -1 when buf is not an
 * archive. */
int fz_archive_parse(const uint8_t *buf, size_t n, fz_entry *e, int max);
/* Serialise entries into out (cap bytes). Returns the size, or 0 when it does not fit. */
size_t fz_archive_write(const fz_entry *e, int n, uint8_t *out, size_t cap);
/* A name that is safe to create in the scratch directory: [A-Za-z0-9._+-], not "." or "..",
 * one optional "dir/" prefix naming a subdirectory of the same alphabet. */
int fz_safe_name(const char *name);

/* ---- mutators ---- */
/* Damage a binary file in place: 1-4 of bit flips, random or boundary bytes, overwritten
 * 2/4/8-byte words, zeroed or duplicated ranges, truncation, appended junk, or libFuzzer's
 * generic mutation. Returns the new size (<= max). */
size_t fz_mutate_binary(uint8_t *data, size_t size, size_t max, unsigned seed);
/* Mutate one entry of an archive: text entries (is_text(name) != 0) with libFuzzer's generic
 * mutator (which uses the -dict words), binary ones with fz_mutate_binary; sometimes an entry
 * is dropped, renamed to one of names (NULL-terminated), or added (a copy of an entry, or an
 * empty file) under one of names. Falls back to the generic mutator when data is not an
 * archive. */
size_t fz_mutate_archive(uint8_t *data, size_t size, size_t max, unsigned seed,
                         int (*is_text)(const char *name), const char *const *names);
#endif
