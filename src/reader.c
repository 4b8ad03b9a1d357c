/* reader.c - bytes in: plain files (sequential or by byte range) and gzip/xz/zstd streams,
 * recognised by their magic bytes so that a misnamed file still reads correctly; plus the
 * sha256 digests that identify input files and stores. */
#include "reader.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define IMF_READER_INBUF (256u * 1024u)
#define IMF_SHA_BLOCK (4u * 1024u * 1024u)

struct imf_reader {
  char *path;
  int fd;
  int64_t size;
  imf_compression comp;
  /* Compressed input, or for plain files the sniffed head not yet handed out (pipes cannot be
   * re-read, so the magic bytes are kept rather than sought back). */
  unsigned char *in;
  size_t in_len, in_pos;
  int in_eof;
  int done;   /* end of the decompressed stream reached */
  int failed; /* a decoder error was reported; further reads repeat it */
  int inited;
  struct stat st0; /* at open: what imf_reader_check_unchanged compares with */
  EVP_MD_CTX *sha; /* raw bytes read in sequence, for input that cannot be hashed beforehand */
  char *pb;        /* bytes handed to imf_reader_peek, handed out again by the next reads */
  size_t pb_len, pb_pos;
  z_stream z;
  lzma_stream lz;
  ZSTD_DStream *zs;
  size_t zs_last; /* last ZSTD_decompressStream hint: 0 = at a frame boundary */
};

static const char *comp_name(imf_compression c) {
  switch (c) {
  case IMF_COMP_GZIP: return "gzip";
  case IMF_COMP_XZ: return "xz";
  case IMF_COMP_ZSTD: return "zstd";
  default: return "plain";
  }
}

/* Open for reading, refusing directories, with errors that name the file. */
static imf_status open_input(const char *path, int *fd_out, struct stat *st) {
  /* `-` is standard input (a copy of the descriptor, so that closing the reader leaves it) */
  int fd = !strcmp(path, "-") ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      IMF_FAIL(IMF_ERR_NOTFOUND, "%s: cannot open: %s", path, strerror(e));
    if (e == EISDIR) IMF_FAIL(IMF_ERR_INPUT, "%s is a directory, not a rating file", path);
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot open: %s", path, strerror(e));
  }
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot stat: %s", path, strerror(e));
  }
  if (S_ISDIR(st->st_mode)) {
    close(fd);
    IMF_FAIL(IMF_ERR_INPUT, "%s is a directory, not a rating file", path);
  }
  *fd_out = fd;
  return IMF_OK;
}

/* read() until cap bytes or end of file. */
static imf_status read_full(imf_reader *r, void *buf, size_t cap, size_t *got) {
  size_t n = 0;
  while (n < cap) {
    ssize_t k = read(r->fd, (char *)buf + n, cap - n);
    if (k < 0) {
      if (errno == EINTR) continue;
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: read failed: %s", r->path, strerror(errno));
    }
    if (k == 0) break;
    n += (size_t)k;
  }
  if (r->sha && n > 0 && EVP_DigestUpdate(r->sha, buf, n) != 1)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: sha256 update failed", r->path);
  *got = n;
  return IMF_OK;
}

/* Refill the compressed-input buffer once it is drained. */
static imf_status refill(imf_reader *r) {
  if (r->in_pos < r->in_len || r->in_eof) return IMF_OK;
  size_t got;
  IMF_CHECK(read_full(r, r->in, IMF_READER_INBUF, &got));
  r->in_len = got;
  r->in_pos = 0;
  if (got < IMF_READER_INBUF) r->in_eof = 1;
  return IMF_OK;
}

static imf_compression sniff(const unsigned char *b, size_t n) {
  if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return IMF_COMP_GZIP;
  if (n >= 6 && memcmp(b, "\xFD\x37\x7A\x58\x5A\x00", 6) == 0) return IMF_COMP_XZ;
  if (n >= 4 && memcmp(b, "\x28\xB5\x2F\xFD", 4) == 0) return IMF_COMP_ZSTD;
  return IMF_COMP_NONE;
}

imf_status imf_reader_open(const char *path, imf_reader **out) {
  imf_status st = IMF_OK;
  *out = NULL;
  imf_reader *r = NULL; /* the reader owns fd once it exists */
  if (!path || !*path) IMF_TRY(IMF_RAISE(IMF_ERR_USAGE, "no input file given"), fail);
  int fd;
  struct stat sb;
  IMF_TRY(open_input(path, &fd, &sb), fail);
  st = imf_alloc(&r, 1, sizeof *r);
  if (st != IMF_OK) {
    close(fd);
    return st;
  }
  r->fd = fd;
  r->st0 = sb;
  r->size = S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : 0;
  r->sha = EVP_MD_CTX_new();
  if (!r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot set up sha256 (OpenSSL)", path);
    goto fail;
  }
  IMF_TRY(imf_alloc(&r->path, strlen(path) + 1, 1), fail);
  memcpy(r->path, path, strlen(path) + 1);
  IMF_TRY(imf_alloc(&r->in, IMF_READER_INBUF, 1), fail);
  /* The head is read sequentially (not by pread) so that pipes and FIFOs work too. */
  IMF_TRY(read_full(r, r->in, 6, &r->in_len), fail);
  if (r->in_len < 6) r->in_eof = 1;
  r->comp = sniff(r->in, r->in_len);
  switch (r->comp) {
  case IMF_COMP_GZIP:
    /* 16 + MAX_WBITS: expect a gzip wrapper and check its CRC and length */
    if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK) {
      st = IMF_RAISE(IMF_ERR_NOMEM, "%s: cannot set up gzip decoder", path);
      goto fail;
    }
    r->inited = 1;
    break;
  case IMF_COMP_XZ: {
    lzma_stream init = LZMA_STREAM_INIT;
    r->lz = init;
    lzma_ret lr = lzma_stream_decoder(&r->lz, UINT64_MAX, LZMA_CONCATENATED);
    if (lr != LZMA_OK) {
      st = IMF_RAISE(IMF_ERR_NOMEM, "%s: cannot set up xz decoder (code %d)",
                     path, (int)lr);
      goto fail;
    }
    r->inited = 1;
    break;
  }
  case IMF_COMP_ZSTD:
    r->zs = ZSTD_createDStream();
    if (!r->zs) {
      st = IMF_RAISE(IMF_ERR_NOMEM, "%s: cannot set up zstd decoder", path);
      goto fail;
    }
    ZSTD_initDStream(r->zs);
    r->zs_last = 0;
    r->inited = 1;
    break;
  default: break;
  }
  *out = r;
  return IMF_OK;
fail:
  imf_reader_close(&r);
  return st;
}

imf_compression imf_reader_compression(const imf_reader *r) { return r->comp; }
int64_t imf_reader_file_size(const imf_reader *r) { return r->size; }

static imf_status corrupt(imf_reader *r, const char *why) {
  r->failed = 1;
  return IMF_RAISE(IMF_ERR_INPUT, "%s: corrupt or truncated %s stream (%s)",
                   r->path, comp_name(r->comp), why);
}

static imf_status read_gzip(imf_reader *r, char *buf, size_t cap, size_t *got) {
  size_t produced = 0;
  while (produced < cap && !r->done) {
    IMF_CHECK(refill(r));
    r->z.next_in = r->in + r->in_pos;
    r->z.avail_in = (uInt)(r->in_len - r->in_pos);
    size_t room = cap - produced;
    r->z.next_out = (unsigned char *)buf + produced;
    r->z.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
    uInt before_out = r->z.avail_out;
    int zr = inflate(&r->z, Z_NO_FLUSH);
    r->in_pos = r->in_len - r->z.avail_in;
    produced += before_out - r->z.avail_out;
    if (zr == Z_STREAM_END) {
      /* a gzip file may hold several members back to back (cat a.gz b.gz) */
      IMF_CHECK(refill(r));
      if (r->in_pos == r->in_len && r->in_eof) {
        r->done = 1;
      } else if (inflateReset(&r->z) != Z_OK) {
        return corrupt(r, "cannot restart after a member");
      }
    } else if (zr == Z_BUF_ERROR || (zr == Z_OK && r->in_pos == r->in_len && r->in_eof &&
                                      before_out == r->z.avail_out)) {
      if (r->in_pos == r->in_len && r->in_eof) return corrupt(r, "unexpected end of file");
    } else if (zr == Z_MEM_ERROR) {
      IMF_FAIL(IMF_ERR_NOMEM, "%s: out of memory while decompressing gzip", r->path);
    } else if (zr != Z_OK) {
      return corrupt(r, r->z.msg ? r->z.msg : "bad data");
    }
  }
  *got = produced;
  return IMF_OK;
}

static imf_status read_xz(imf_reader *r, char *buf, size_t cap, size_t *got) {
  size_t produced = 0;
  while (produced < cap && !r->done) {
    IMF_CHECK(refill(r));
    r->lz.next_in = r->in + r->in_pos;
    r->lz.avail_in = r->in_len - r->in_pos;
    r->lz.next_out = (uint8_t *)buf + produced;
    r->lz.avail_out = cap - produced;
    size_t before_out = r->lz.avail_out, before_in = r->lz.avail_in;
    /* LZMA_CONCATENATED needs LZMA_FINISH to know that no further stream follows */
    lzma_action act = (r->in_eof && r->in_pos == r->in_len) ? LZMA_FINISH : LZMA_RUN;
    lzma_ret lr = lzma_code(&r->lz, act);
    r->in_pos = r->in_len - r->lz.avail_in;
    produced += before_out - r->lz.avail_out;
    switch (lr) {
    case LZMA_OK:
      if (act == LZMA_FINISH && before_out == r->lz.avail_out && before_in == r->lz.avail_in)
        return corrupt(r, "unexpected end of file");
      break;
    case LZMA_STREAM_END: r->done = 1; break;
    case LZMA_BUF_ERROR: return corrupt(r, "unexpected end of file");
    case LZMA_MEM_ERROR:
      IMF_FAIL(IMF_ERR_NOMEM, "%s: out of memory while decompressing xz", r->path);
    case LZMA_MEMLIMIT_ERROR: return corrupt(r, "memory limit reached");
    case LZMA_FORMAT_ERROR: return corrupt(r, "not an xz stream");
    case LZMA_OPTIONS_ERROR: return corrupt(r, "unsupported options");
    case LZMA_DATA_ERROR: return corrupt(r, "compressed data is corrupt");
    default: return corrupt(r, "decoder error");
    }
  }
  *got = produced;
  return IMF_OK;
}

static imf_status read_zstd(imf_reader *r, char *buf, size_t cap, size_t *got) {
  size_t produced = 0;
  while (produced < cap && !r->done) {
    IMF_CHECK(refill(r));
    ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
    ZSTD_outBuffer out = {buf, cap, produced};
    size_t ret = ZSTD_decompressStream(r->zs, &out, &in);
    if (ZSTD_isError(ret)) return corrupt(r, ZSTD_getErrorName(ret));
    int progress = out.pos != produced || in.pos != r->in_pos;
    produced = out.pos;
    r->in_pos = in.pos;
    r->zs_last = ret;
    if (r->in_pos == r->in_len && r->in_eof) {
      /* 0 = a frame just ended and everything is flushed; otherwise the decoder may still be
       * flushing buffered output, which shows as progress */
      if (ret == 0) r->done = 1;
      else if (!progress) return corrupt(r, "unexpected end of file");
    }
  }
  *got = produced;
  return IMF_OK;
}

static imf_status read_inner(imf_reader *r, char *buf, size_t cap, size_t *got) {
  *got = 0;
  if (r->failed)
    IMF_FAIL(IMF_ERR_INPUT, "%s: corrupt or truncated %s stream (read after an error)", r->path,
             comp_name(r->comp));
  if (cap == 0) return IMF_OK;
  if (r->comp == IMF_COMP_NONE) {
    size_t h = 0;
    if (r->in_pos < r->in_len) { /* the sniffed head first */
      h = r->in_len - r->in_pos < cap ? r->in_len - r->in_pos : cap;
      memcpy(buf, r->in + r->in_pos, h);
      r->in_pos += h;
    }
    size_t k = 0;
    if (h < cap && !r->in_eof) {
      IMF_CHECK(read_full(r, buf + h, cap - h, &k));
      if (k < cap - h) r->in_eof = 1;
    }
    *got = h + k;
    return IMF_OK;
  }
  switch (r->comp) {
  case IMF_COMP_GZIP: return read_gzip(r, buf, cap, got);
  case IMF_COMP_XZ: return read_xz(r, buf, cap, got);
  default: return read_zstd(r, buf, cap, got);
  }
}

imf_status imf_reader_read(imf_reader *r, char *buf, size_t cap, size_t *got) {
  *got = 0;
  if (r->pb_pos < r->pb_len && cap > 0) { /* what a peek took first */
    size_t h = r->pb_len - r->pb_pos < cap ? r->pb_len - r->pb_pos : cap;
    memcpy(buf, r->pb + r->pb_pos, h);
    r->pb_pos += h;
    *got = h;
    return IMF_OK;
  }
  return read_inner(r, buf, cap, got);
}

imf_status imf_reader_peek(imf_reader *r, char *buf, size_t cap, size_t *got) {
  *got = 0;
  if (r->pb_len > 0 || r->pb_pos > 0)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: the head of the input was already taken", r->path);
  size_t n = 0;
  while (n < cap) {
    size_t k = 0;
    IMF_CHECK(read_inner(r, buf + n, cap - n, &k));
    if (k == 0) break;
    n += k;
  }
  if (n > 0) {
    IMF_CHECK(imf_alloc_nz(&r->pb, n, 1));
    memcpy(r->pb, buf, n);
    r->pb_len = n;
  }
  *got = n;
  return IMF_OK;
}

/* `-` is read in sequence even when it is a redirected regular file: the other ranks' standard
 * input is not this file. */
int imf_reader_seekable(const imf_reader *r) { return S_ISREG(r->st0.st_mode) && strcmp(r->path, "-") != 0; }

static void to_hex(const unsigned char *md, unsigned n, char *hex);

imf_status imf_reader_stream_sha256(imf_reader *r, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  hex[0] = '\0';
  EVP_MD_CTX *c = EVP_MD_CTX_new(); /* a copy: the running digest may go on */
  if (!c || EVP_MD_CTX_copy_ex(c, r->sha) != 1 || EVP_DigestFinal_ex(c, md, &mdlen) != 1 || mdlen != 32) {
    EVP_MD_CTX_free(c);
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: sha256 final failed", r->path);
  }
  EVP_MD_CTX_free(c);
  to_hex(md, mdlen, hex);
  return IMF_OK;
}

void imf_reader_file_id(const imf_reader *r, imf_file_id *id) {
  memset(id, 0, sizeof *id);
  id->dev = (int64_t)r->st0.st_dev;
  id->ino = (int64_t)r->st0.st_ino;
  id->size = (int64_t)r->st0.st_size;
  id->mtime_s = (int64_t)r->st0.st_mtim.tv_sec;
  id->mtime_ns = (int64_t)r->st0.st_mtim.tv_nsec;
}

static int same_id(const struct stat *sb, const imf_file_id *w, const char **what) {
  *what = (int64_t)sb->st_dev != w->dev || (int64_t)sb->st_ino != w->ino ? "it was replaced (another inode)"
          : (int64_t)sb->st_size != w->size                              ? "its size changed"
          : (int64_t)sb->st_mtim.tv_sec != w->mtime_s || (int64_t)sb->st_mtim.tv_nsec != w->mtime_ns
              ? "its modification time changed"
              : NULL;
  return *what == NULL;
}

imf_status imf_reader_check_unchanged(const imf_reader *r, const imf_file_id *want) {
  if (!S_ISREG(r->st0.st_mode)) return IMF_OK; /* a pipe's mtime moves with every write */
  struct stat now;
  const char *what = NULL;
  if (fstat(r->fd, &now) != 0)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: cannot stat: %s", r->path, strerror(errno));
  if (same_id(&now, want, &what) && strcmp(r->path, "-") != 0) {
    if (stat(r->path, &now) != 0) what = "it was removed or renamed";
    else same_id(&now, want, &what);
  }
  if (what)
    IMF_FAIL(IMF_ERR_INPUT, "%s changed while it was read (%s); refused, nothing was written: "
             "let the file be complete before it is read", r->path, what);
  return IMF_OK;
}

imf_status imf_reader_sha256_prefix(imf_reader *r, int64_t len, char hex[65]) {
  imf_status st = IMF_OK;
  hex[0] = '\0';
  unsigned char *blk = NULL;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(ctx);
    IMF_TRY(IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot set up sha256 (OpenSSL)", r->path), done);
  }
  IMF_TRY(imf_alloc_nz(&blk, IMF_SHA_BLOCK, 1), done);
  for (int64_t off = 0; off < len;) {
    size_t want = len - off < (int64_t)IMF_SHA_BLOCK ? (size_t)(len - off) : IMF_SHA_BLOCK;
    ssize_t k = pread(r->fd, blk, want, (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: read failed: %s", r->path, strerror(errno));
      goto done;
    }
    if (k == 0) {
      st = IMF_RAISE(IMF_ERR_INPUT, "%s changed while it was read (it ends at byte %lld, %lld were there at open); refused, "
                     "nothing was written", r->path, (long long)off, (long long)len);
      goto done;
    }
    if (EVP_DigestUpdate(ctx, blk, (size_t)k) != 1) {
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: sha256 update failed", r->path);
      goto done;
    }
    off += k;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: sha256 final failed", r->path);
    goto done;
  }
  to_hex(md, mdlen, hex);
done:
  EVP_MD_CTX_free(ctx);
  imf_free(&blk);
  return st;
}

imf_status imf_reader_pread(imf_reader *r, char *buf, size_t cap, int64_t offset, size_t *got) {
  *got = 0;
  if (r->comp != IMF_COMP_NONE)
    IMF_FAIL(IMF_ERR_RUNTIME, "%s: byte-range reads need a plain file, this one is %s-compressed",
             r->path, comp_name(r->comp));
  if (offset < 0) IMF_FAIL(IMF_ERR_RUNTIME, "%s: negative read offset %lld", r->path, (long long)offset);
  size_t n = 0;
  while (n < cap) {
    ssize_t k = pread(r->fd, buf + n, cap - n, (off_t)(offset + (int64_t)n));
    if (k < 0) {
      if (errno == EINTR) continue;
      IMF_FAIL(IMF_ERR_RUNTIME, "%s: read of %zu bytes at offset %lld failed: %s", r->path, cap - n,
               (long long)(offset + (int64_t)n), strerror(errno));
    }
    if (k == 0) break;
    n += (size_t)k;
  }
  *got = n;
  return IMF_OK;
}

void imf_reader_close(imf_reader **rp) {
  if (!rp || !*rp) return;
  imf_reader *r = *rp;
  if (r->inited) {
    if (r->comp == IMF_COMP_GZIP) inflateEnd(&r->z);
    else if (r->comp == IMF_COMP_XZ) lzma_end(&r->lz);
  }
  if (r->zs) ZSTD_freeDStream(r->zs);
  if (r->sha) EVP_MD_CTX_free(r->sha);
  imf_free(&r->pb);
  if (r->fd >= 0) close(r->fd);
  imf_free(&r->in);
  imf_free(&r->path);
  imf_free(rp);
}

/* ---- digests ---- */

static void to_hex(const unsigned char *md, unsigned n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[2 * n] = '\0';
}

imf_status imf_sha256_file(const char *path, char hex[65]) {
  imf_status st = IMF_OK;
  hex[0] = '\0';
  int fd = -1;
  struct stat sb;
  unsigned char *blk = NULL;
  EVP_MD_CTX *ctx = NULL;
  IMF_TRY(open_input(path, &fd, &sb), done);
  IMF_TRY(imf_alloc(&blk, IMF_SHA_BLOCK, 1), done);
  ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: cannot set up sha256 (OpenSSL)", path);
    goto done;
  }
  for (;;) {
    ssize_t k = read(fd, blk, IMF_SHA_BLOCK);
    if (k < 0) {
      if (errno == EINTR) continue;
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: read failed: %s", path, strerror(errno));
      goto done;
    }
    if (k == 0) break;
    if (EVP_DigestUpdate(ctx, blk, (size_t)k) != 1) {
      st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: sha256 update failed", path);
      goto done;
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
    st = IMF_RAISE(IMF_ERR_RUNTIME, "%s: sha256 final failed", path);
    goto done;
  }
  to_hex(md, mdlen, hex);
done:
  if (ctx) EVP_MD_CTX_free(ctx);
  imf_free(&blk);
  if (fd >= 0) close(fd);
  return st;
}

void imf_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  /* cannot fail for sha256 short of a broken OpenSSL; then the digest is visibly empty */
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
    hex[0] = '\0';
    return;
  }
  to_hex(md, mdlen, hex);
}
