/* reader.h - bytes in: plain files by byte range (each rank its own), compressed files
 * (gzip, xz, zstd — detected by magic bytes, not by name) as one sequential stream. */
#ifndef IMF_READER_H
#define IMF_READER_H
#include "incremf.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { IMF_COMP_NONE = 0, IMF_COMP_GZIP, IMF_COMP_XZ, IMF_COMP_ZSTD } imf_compression;

typedef struct imf_reader imf_reader;
/* Open and sniff the compression. Errors name the file: cannot open, is a directory, ... */
imf_status imf_reader_open(const char *path, imf_reader **out);
imf_compression imf_reader_compression(const imf_reader *r);
/* Size in bytes of the file on disk. */
int64_t imf_reader_file_size(const imf_reader *r);
/* Sequential read of decompressed bytes; *got == 0 means end of stream. A corrupt or truncated
 * compressed stream is IMF_ERR_INPUT naming the file. */
imf_status imf_reader_read(imf_reader *r, char *buf, size_t cap, size_t *got);
/* Plain files only: read up to cap bytes at an absolute offset (pread). */
imf_status imf_reader_pread(imf_reader *r, char *buf, size_t cap, int64_t offset, size_t *got);
void imf_reader_close(imf_reader **r);

/* sha256 of the file's bytes on disk (hex, 64 chars + NUL), OpenSSL's SHA-NI path. */
imf_status imf_sha256_file(const char *path, char hex[65]);
void imf_sha256_hex(const void *data, size_t len, char hex[65]);
#endif
