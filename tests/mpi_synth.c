/* mpi_synth.c - the synthetic data generator: bytes independent of the rank count and of the
 * chunking, determinism by seed, the shape of every output format (parsed by hand here, not by
 * src/parse.c), the statistical promises (scale, step grid, power law, time order, drift,
 * corrupt kinds, no repeated pairs) and compressed output. Runs under mpiexec -n 1, 2 and 3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "synth.h"
#include "testutil.h"

static int rank_, size_;
static const char *dir_;

static imf_synth_opts base_opts(void) {
  imf_synth_opts o;
  memset(&o, 0, sizeof o);
  o.users = 300;
  o.items = 120;
  o.ratings = 6000;
  o.rank = 4;
  o.noise = 0.5;
  o.seed = 11;
  o.user_skew = 1.0;
  o.item_skew = 1.0;
  o.scale_min = 1;
  o.scale_max = 5;
  o.step = 1;
  o.time_start = 1500000000;
  o.time_span_days = 365;
  o.format = IMF_FMT_CSV;
  o.chunk_lines = 500; /* many chunks and rounds even on small files */
  return o;
}

static const char *path_of(const char *name) {
  static char bufs[8][700];
  static int next = 0;
  char *b = bufs[next++ % 8];
  snprintf(b, 700, "%s/%s", dir_, name);
  return b;
}

/* Write with the world, and again on rank 0 alone (different chunking): same bytes. Returns
 * the world's file contents on rank 0 (NULL elsewhere). */
static char *write_both(imf_synth_opts o, const char *name, size_t *len) {
  const char *a = path_of(name);
  char bname[300];
  snprintf(bname, sizeof bname, "self-%s", name);
  const char *b = path_of(bname);
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, a), IMF_OK);
  if (rank_ == 0) {
    o.chunk_lines = 777;
    assert_int_equal(imf_synth_write(MPI_COMM_SELF, &o, b), IMF_OK);
    size_t na, nb;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(db);
    unlink(b);
    *len = na;
    MPI_Barrier(MPI_COMM_WORLD);
    return da;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return NULL;
}

/* Split text into lines in place (NUL bytes inside lines are kept: lengths are returned). */
typedef struct {
  char **s;
  size_t *n;
  size_t count;
} lines_t;

static lines_t split_lines(char *d, size_t len) {
  lines_t L = {0};
  size_t cap = 1024;
  L.s = malloc(cap * sizeof *L.s);
  L.n = malloc(cap * sizeof *L.n);
  size_t start = 0;
  for (size_t k = 0; k < len; k++)
    if (d[k] == '\n') {
      if (L.count == cap) {
        cap *= 2;
        L.s = realloc(L.s, cap * sizeof *L.s);
        L.n = realloc(L.n, cap * sizeof *L.n);
      }
      L.s[L.count] = d + start;
      L.n[L.count] = k - start;
      d[k] = '\0';
      L.count++;
      start = k + 1;
    }
  assert_int_equal(start, len); /* the file ends with a newline */
  return L;
}

static void free_lines(lines_t *L) {
  free(L->s);
  free(L->n);
}

/* Split a line on a separator ("," "\t" "::" or " "); returns the field count. */
static int fields(char *line, const char *sep, char **f, int maxf) {
  int nf = 0;
  size_t sl = strlen(sep);
  char *p = line;
  for (;;) {
    char *q = strstr(p, sep);
    if (nf < maxf) f[nf] = p;
    nf++;
    if (!q) break;
    *q = '\0';
    p = q + sl;
  }
  return nf;
}

static int is_uint(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

static void test_rank_independence_all_formats(void **state) {
  (void)state;
  static const struct {
    imf_format f;
    const char *name;
    int implicit;
  } cases[] = {{IMF_FMT_CSV, "a.csv", 0}, {IMF_FMT_TSV, "a.tsv", 0},     {IMF_FMT_DAT, "a.dat", 0},
               {IMF_FMT_ML100K, "a.data", 0}, {IMF_FMT_MTX, "a.mtx", 0}, {IMF_FMT_LIBMF, "a.libmf", 0},
               {IMF_FMT_CSV, "i.csv", 1}, {IMF_FMT_MTX, "i.mtx", 1}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    imf_synth_opts o = base_opts();
    o.format = cases[c].f;
    o.implicit = cases[c].implicit;
    o.drift = 0.5;
    o.corrupt_fraction = 0.05;
    o.ratings = 3001; /* a partial last chunk */
    size_t len;
    char *d = write_both(o, cases[c].name, &len);
    free(d);
  }
}

static void test_seed_determinism(void **state) {
  (void)state;
  imf_synth_opts o = base_opts();
  o.corrupt_fraction = 0.02;
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("s1.csv")), IMF_OK);
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("s2.csv")), IMF_OK);
  o.seed = 12;
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("s3.csv")), IMF_OK);
  if (rank_ == 0) {
    size_t n1, n2, n3;
    char *a = tu_read_file(path_of("s1.csv"), &n1), *b = tu_read_file(path_of("s2.csv"), &n2),
         *c = tu_read_file(path_of("s3.csv"), &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    assert_true(n1 != n3 || memcmp(a, c, n1) != 0);
    free(a); free(b); free(c);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* csv: header, counts, ids, scale, step grid, time order, power law. */
static void check_csv_clean(imf_synth_opts o, const char *name) {
  size_t len;
  char *d = write_both(o, name, &len);
  if (rank_ != 0) return;
  lines_t L = split_lines(d, len);
  assert_int_equal(L.count, (size_t)o.ratings + 1);
  assert_string_equal(L.s[0], "user,item,rating,timestamp");
  int64_t *ucount = calloc((size_t)o.users + 1, sizeof(int64_t));
  int64_t *icount = calloc((size_t)o.items + 1, sizeof(int64_t));
  long long prev_t = 0;
  int nonint = 0;
  double sum = 0;
  for (size_t k = 1; k < L.count; k++) {
    char *f[6];
    assert_int_equal(fields(L.s[k], ",", f, 6), 4);
    assert_true(is_uint(f[0]) && is_uint(f[1]) && is_uint(f[3]));
    long long u = atoll(f[0]), i = atoll(f[1]), t = atoll(f[3]);
    assert_true(u >= 1 && u <= o.users);
    assert_true(i >= 1 && i <= o.items);
    ucount[u]++;
    icount[i]++;
    char *end;
    double r = strtod(f[2], &end);
    assert_true(*end == '\0' && isfinite(r));
    assert_true(r >= o.scale_min && r <= o.scale_max);
    if (o.step > 0) {
      double g = (r - o.scale_min) / o.step;
      assert_true(fabs(g - nearbyint(g)) < 1e-6);
      assert_true(strlen(f[2]) <= 4); /* compact: "4", "3.5" */
    } else if (r != nearbyint(r)) {
      nonint++;
    }
    sum += r;
    assert_true(t >= o.time_start && t < o.time_start + o.time_span_days * 86400LL);
    assert_true(t >= prev_t);
    prev_t = t;
  }
  double mean = sum / (double)o.ratings;
  assert_true(mean > 2.5 && mean < 3.5); /* mu at the middle of the scale */
  if (o.step == 0) assert_true(nonint > o.ratings / 2);
  /* power law: the most active 10% of users hold far more than 10% of the ratings */
  for (int side = 0; side < 2; side++) {
    int64_t n = side ? o.items : o.users, *cnt = side ? icount : ucount;
    /* sort counts descending (simple insertion sort: n is small) */
    for (int64_t a = 2; a <= n; a++)
      for (int64_t b = a; b > 1 && cnt[b] > cnt[b - 1]; b--) {
        int64_t t = cnt[b]; cnt[b] = cnt[b - 1]; cnt[b - 1] = t;
      }
    int64_t top = 0;
    for (int64_t a = 1; a <= n / 10; a++) top += cnt[a];
    assert_true((double)top / (double)o.ratings > 0.35);
  }
  free(ucount);
  free(icount);
  free_lines(&L);
  free(d);
}

static void test_csv_shape(void **state) {
  (void)state;
  imf_synth_opts o = base_opts();
  /* a catalogue the heaviest users do not exhaust: drawn without replacement, a user who has
   * rated most of 120 items spreads over the tail and flattens item popularity */
  o.items = 1200;
  check_csv_clean(o, "clean.csv");
  o.step = 0.5;
  o.seed = 5;
  check_csv_clean(o, "half.csv");
  o.step = 0;
  o.drift = 1;
  check_csv_clean(o, "cont.csv");
}

/* Every corrupt kind is present in close to equal numbers; the total is as asked. NUL bytes
 * appear only from line 65536 on (format detection would call the file binary otherwise), so
 * the file is longer than that. */
static void test_corrupt_kinds(void **state) {
  (void)state;
  imf_synth_opts o = base_opts();
  o.ratings = 80000;
  o.users = 3000;
  o.items = 1000;
  o.chunk_lines = 7000;
  o.corrupt_fraction = 0.1;
  size_t len;
  char *d = write_both(o, "corrupt.csv", &len);
  if (rank_ != 0) return;
  lines_t L = split_lines(d, len);
  assert_int_equal(L.count, (size_t)o.ratings + 1);
  enum { MISSING, BADR, NANR, RANGE, EMPTYU, BADT, LONGID, BLANK, NUL, DUP, NK };
  int cnt[NK] = {0};
  for (size_t k = 1; k < L.count; k++) {
    char *s = L.s[k];
    size_t n = L.n[k];
    if (n == 0) { cnt[BLANK]++; continue; }
    if (strlen(s) != n) { cnt[NUL]++; continue; }
    if (L.n[k - 1] == n && memcmp(L.s[k - 1], s, n) == 0 && k > 1) { cnt[DUP]++; continue; }
    char copy[1024];
    memcpy(copy, s, n + 1);
    char *f[6];
    int nf = fields(copy, ",", f, 6);
    if (nf < 4) { cnt[MISSING]++; continue; }
    assert_int_equal(nf, 4);
    if (strlen(f[0]) > 256) { cnt[LONGID]++; continue; }
    if (!*f[0]) { cnt[EMPTYU]++; continue; }
    if (!strcmp(f[2], "nan")) { cnt[NANR]++; continue; }
    char *end;
    double r = strtod(f[2], &end);
    if (*end) { cnt[BADR]++; continue; }
    if (r < o.scale_min || r > o.scale_max) { cnt[RANGE]++; continue; }
    if (!is_uint(f[3])) { cnt[BADT]++; continue; }
  }
  int total = 0, first_nul = -1;
  for (size_t k = 1; k < L.count && first_nul < 0; k++)
    if (strlen(L.s[k]) != L.n[k]) first_nul = (int)k - 1;
  assert_true(first_nul >= 65536);
  /* 8000 corrupt lines over 10 kinds, 800 each, except that the NUL slots before line 65536
   * (about 655) went to the first 8 kinds in turn: NUL ~145, those ~882, DUP 800 */
  for (int k = 0; k < NK; k++) {
    total += cnt[k];
    if (k == NUL) assert_in_range(cnt[k], 100, 200);
    else if (k == DUP) assert_in_range(cnt[k], 795, 805);
    else assert_in_range(cnt[k], 860, 905);
  }
  assert_in_range(total, 7995, 8005);
  free_lines(&L);
  free(d);
}

/* A user's items are drawn without replacement: in a dense set (the heaviest users reach their
 * cap, two thirds of the items) no (user, item) pair repeats, with or without drift, explicit
 * or implicit, and nobody rates more than the cap. */
static void test_no_repeats(void **state) {
  (void)state;
  for (int c = 0; c < 3; c++) {
    imf_synth_opts o = base_opts();
    o.drift = c == 1 ? 1 : 0;
    o.implicit = c == 2;
    o.ratings = 12000; /* a third of the 300 x 120 pairs */
    size_t len;
    char *d = write_both(o, c == 0 ? "nr0.csv" : c == 1 ? "nr1.csv" : "nr2.csv", &len);
    if (rank_ != 0) continue;
    lines_t L = split_lines(d, len);
    unsigned char *seen = calloc((size_t)(o.users + 1) * (size_t)(o.items + 1), 1);
    int64_t *per_user = calloc((size_t)o.users + 1, sizeof(int64_t)), most = 0;
    int repeats = 0;
    for (size_t k = 1; k < L.count; k++) {
      long long u = atoll(L.s[k]), i = atoll(strchr(L.s[k], ',') + 1);
      assert_true(u >= 1 && u <= o.users && i >= 1 && i <= o.items);
      unsigned char *b = &seen[u * (o.items + 1) + i];
      repeats += *b;
      *b = 1;
      if (++per_user[u] > most) most = per_user[u];
    }
    assert_int_equal(repeats, 0);
    assert_int_equal(most, o.items - o.items / 3); /* the heaviest users reach the cap, no more */
    free(per_user);
    free(seen);
    free_lines(&L);
    free(d);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* Each format's structure, parsed by hand. */
static void test_formats(void **state) {
  (void)state;
  static const struct {
    imf_format f;
    const char *name, *sep;
    int implicit, nf, header, has_time;
  } cases[] = {
      {IMF_FMT_TSV, "f.tsv", "\t", 0, 4, 0, 1},   {IMF_FMT_DAT, "f.dat", "::", 0, 4, 0, 1},
      {IMF_FMT_ML100K, "f.data", "\t", 0, 4, 0, 1}, {IMF_FMT_MTX, "f.mtx", " ", 0, 3, 3, 0},
      {IMF_FMT_LIBMF, "f.libmf", " ", 0, 3, 0, 0}, {IMF_FMT_MTX, "p.mtx", " ", 1, 2, 3, 0},
      {IMF_FMT_CSV, "p.csv", ",", 1, 3, 1, 1},    {IMF_FMT_LIBMF, "p.libmf", " ", 1, 2, 0, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    imf_synth_opts o = base_opts();
    o.format = cases[c].f;
    o.implicit = cases[c].implicit;
    o.ratings = 2000;
    assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of(cases[c].name)), IMF_OK);
    if (rank_ != 0) continue;
    size_t len;
    char *d = tu_read_file(path_of(cases[c].name), &len);
    assert_non_null(d);
    lines_t L = split_lines(d, len);
    assert_int_equal(L.count, (size_t)o.ratings + cases[c].header);
    if (o.format == IMF_FMT_MTX) {
      assert_string_equal(L.s[0], o.implicit ? "%%MatrixMarket matrix coordinate pattern general"
                                             : "%%MatrixMarket matrix coordinate real general");
      assert_true(L.s[1][0] == '%');
      char want[64];
      snprintf(want, sizeof want, "%lld %lld %lld", (long long)o.users, (long long)o.items, (long long)o.ratings);
      assert_string_equal(L.s[2], want);
    }
    if (o.format == IMF_FMT_CSV) assert_string_equal(L.s[0], "user,item,timestamp");
    for (size_t k = (size_t)cases[c].header; k < L.count; k++) {
      char *f[6];
      assert_int_equal(fields(L.s[k], cases[c].sep, f, 6), cases[c].nf);
      assert_true(is_uint(f[0]) && is_uint(f[1]));
      assert_true(atoll(f[0]) >= 1 && atoll(f[0]) <= o.users);
      assert_true(atoll(f[1]) >= 1 && atoll(f[1]) <= o.items);
      if (!o.implicit) {
        double r = atof(f[2]);
        assert_true(r >= 1 && r <= 5 && r == nearbyint(r));
      }
      if (cases[c].has_time) assert_true(is_uint(f[cases[c].nf - 1]));
    }
    free_lines(&L);
    free(d);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

/* Drift moves popularity: the most popular item early is not the one late; without drift it
 * is. */
static int64_t top_item(lines_t *L, size_t from, size_t to, int64_t items) {
  int64_t *cnt = calloc((size_t)items + 1, sizeof(int64_t)), best = 0;
  for (size_t k = from; k < to; k++) {
    const char *c = strchr(L->s[k], ',');
    int64_t i = atoll(c + 1);
    cnt[i]++;
    if (cnt[i] > cnt[best]) best = i;
  }
  free(cnt);
  return best;
}

static void test_drift(void **state) {
  (void)state;
  for (int drift = 0; drift <= 1; drift++) {
    imf_synth_opts o = base_opts();
    o.drift = drift;
    o.ratings = 8000;
    o.items = 1200; /* as in test_csv_shape: popularity is not flattened by exhausted users */
    const char *p = path_of(drift ? "drift1.csv" : "drift0.csv");
    assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, p), IMF_OK);
    if (rank_ != 0) continue;
    size_t len;
    char *d = tu_read_file(p, &len);
    lines_t L = split_lines(d, len);
    int64_t early = top_item(&L, 1, 2001, o.items), late = top_item(&L, L.count - 2000, L.count, o.items);
    if (drift) assert_true(early != late);
    else assert_int_equal(early, late);
    free_lines(&L);
    free(d);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static int have_tool(const char *t) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", t);
  return system(cmd) == 0;
}

static void test_compressed(void **state) {
  (void)state;
  imf_synth_opts o = base_opts();
  o.corrupt_fraction = 0.03;
  o.drift = 0.3;
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("z.csv")), IMF_OK);
  static const char *const ext[] = {"gz", "xz", "zst"}, *const tool[] = {"gzip", "xz", "zstd"};
  for (int k = 0; k < 3; k++) {
    char name[64];
    snprintf(name, sizeof name, "z.csv.%s", ext[k]);
    assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of(name)), IMF_OK);
    if (rank_ == 0 && have_tool(tool[k])) {
      char cmd[2048];
      snprintf(cmd, sizeof cmd, "%s -dc '%s' | cmp -s - '%s'", tool[k], path_of(name), path_of("z.csv"));
      assert_int_equal(system(cmd), 0);
    }
  }
  /* the same from rank 0 alone */
  if (rank_ == 0) {
    imf_synth_result res;
    assert_int_equal(imf_synth_write_ex(MPI_COMM_SELF, &o, path_of("self.csv.zst"), &res), IMF_OK);
    assert_true(res.bytes < res.raw_bytes);
    if (have_tool("zstd")) {
      char cmd[2048];
      snprintf(cmd, sizeof cmd, "zstd -dc '%s' | cmp -s - '%s'", path_of("self.csv.zst"), path_of("z.csv"));
      assert_int_equal(system(cmd), 0);
    }
    /* no temporary file is left behind */
    DIR *dh = opendir(dir_);
    struct dirent *e;
    while ((e = readdir(dh)))
      assert_null(strstr(e->d_name, ".tmp"));
    closedir(dh);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_result_and_errors(void **state) {
  (void)state;
  imf_synth_opts o = base_opts();
  o.format = IMF_FMT_MTX;
  imf_synth_result res;
  assert_int_equal(imf_synth_write_ex(MPI_COMM_WORLD, &o, path_of("r.mtx"), &res), IMF_OK);
  assert_int_equal(res.lines, o.ratings + 3);
  assert_int_equal(res.bytes, res.raw_bytes);
  /* zero ratings: just the header */
  o.format = IMF_FMT_CSV;
  o.ratings = 0;
  assert_int_equal(imf_synth_write_ex(MPI_COMM_WORLD, &o, path_of("empty.csv"), &res), IMF_OK);
  assert_int_equal(res.raw_bytes, (int64_t)strlen("user,item,rating,timestamp\n"));
  /* bad options fail on every rank alike, before anything is written */
  o = base_opts();
  o.scale_max = o.scale_min;
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("bad.csv")), IMF_ERR_USAGE);
  o = base_opts();
  o.corrupt_fraction = 1.5;
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("bad.csv")), IMF_ERR_USAGE);
  o = base_opts();
  o.drift = -0.1;
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, path_of("bad.csv")), IMF_ERR_USAGE);
  /* an unwritable place is a runtime error on every rank */
  o = base_opts();
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, "/nonexistent-dir/x.csv"), IMF_ERR_RUNTIME);
  assert_int_equal(imf_synth_write(MPI_COMM_WORLD, &o, "/nonexistent-dir/x.csv.gz"), IMF_ERR_RUNTIME);
  if (rank_ == 0) assert_int_equal(access(path_of("bad.csv"), F_OK), -1);
  assert_int_equal(imf_synth_format_for_path("a/b.dat.xz"), IMF_FMT_DAT);
  assert_int_equal(imf_synth_format_for_path("u.data"), IMF_FMT_ML100K);
  assert_int_equal(imf_synth_format_for_path("x.mtx.zst"), IMF_FMT_MTX);
  assert_int_equal(imf_synth_format_for_path("x"), IMF_FMT_CSV);
  MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  dir_ = tu_tmpdir("synth");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rank_independence_all_formats),
      cmocka_unit_test(test_seed_determinism),
      cmocka_unit_test(test_csv_shape),
      cmocka_unit_test(test_corrupt_kinds),
      cmocka_unit_test(test_no_repeats),
      cmocka_unit_test(test_formats),
      cmocka_unit_test(test_drift),
      cmocka_unit_test(test_compressed),
      cmocka_unit_test(test_result_and_errors),
  };
  int fails = cmocka_run_group_tests(tests, NULL, NULL);
  if (rank_ == 0 && fails == 0) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir_);
  }
  MPI_Finalize();
  return fails ? 1 : 0;
}
