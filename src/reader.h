/* reader.h - bytes in: plain files by byte range (each rank its own), compressed files
 * (gzip, xz, zstd — detected by magic bytes, not by name) as one sequential stream. */
#ifndef IMF_READER_H
#define IMF_READER_H
#include "incremf.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { IMF_COMP_NONE = 0, IMF_COMP_GZIP, IMF_COMP_XZ, IMF_COMP_ZSTD } imf_compression;

typedef struct imf_reader imf_reader;
/* Open and sniff the compression. Errors name the file: cannot open, is a directory, ...
 * `-` is standard input. */
imf_status imf_reader_open(const char *path, imf_reader **out);
imf_compression imf_reader_compression(const imf_reader *r);
/* Size in bytes of the file on disk. */
int64_t imf_reader_file_size(const imf_reader *r);
/* A regular file (byte ranges, a second open by another rank) or not (a FIFO, pipe, /dev/stdin,
 * `-`: read once, in sequence, by one rank). */
int imf_reader_seekable(const imf_reader *r);
/* Read up to cap decompressed bytes for sniffing and keep them: the next imf_reader_read calls
 * hand them out first, so a pipe is never opened or read twice. */
imf_status imf_reader_peek(imf_reader *r, char *buf, size_t cap, size_t *got);
/* sha256 (hex) of the raw bytes read in sequence so far (after the stream was read to its end,
 * the whole input as it came in, compressed or not); for non-seekable input. */
imf_status imf_reader_stream_sha256(imf_reader *r, char hex[65]);
/* sha256 of the first len bytes of the open file (pread, the same descriptor that is parsed, so
 * a file replaced under the name is not the one hashed); fails if fewer bytes are there. */
imf_status imf_reader_sha256_prefix(imf_reader *r, int64_t len, char hex[65]);
/* What identifies the file and its contents: device, inode, size and modification time at open. */
typedef struct {
  int64_t dev, ino, size, mtime_s, mtime_ns;
} imf_file_id;
void imf_reader_file_id(const imf_reader *r, imf_file_id *id);
/* IMF_ERR_INPUT naming the file when it is no longer `want` (size, mtime, inode or device changed,
 * by fstat of the open descriptor and stat of the name): a file written while it was read. Only
 * meaningful for regular files; others pass. */
imf_status imf_reader_check_unchanged(const imf_reader *r, const imf_file_id *want);
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
