/* mpi_itemsums.c - per-item normal-equation sums (itemsums.h, issue 24): a batch folded in
 * through the sums — the touched users' pairs routed to the item owners, each leaving with its
 * old factor and value and coming back with its new ones, then the touched items solved from
 * their sums — gives the items of a direct fold-in that re-solves them against their full
 * histories (foldin.h), for ALS with biases and implicit ALS, on any rank count. Not bitwise: the
 * row solver accumulates a history's Gram in float, the sums in double (tolerance below). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "error.h"
#include "foldin.h"
#include "itemsums.h"
#include "log.h"
#include "partition.h"
#include "rng.h"
#include "train.h"

static int rank_, size_;

#define NU0 120
#define NI0 60
#define NU1 131 /* the batch brings 11 new users and 6 new items */
#define NI1 66
#define HFRAC 0.1
#define HSEED 5

/* Dense rating tables (NaN: no rating) before and after the batch, the same on every rank. */
typedef struct {
  float before[NU1 * NI1], after[NU1 * NI1];
  unsigned char tu[NU1], ti[NI1];
} tables;

static void make_tables(tables *t, int implicit) {
  imf_rng g;
  imf_rng_init(&g, 31, 3);
  for (int j = 0; j < NU1 * NI1; j++) t->before[j] = t->after[j] = NAN;
  memset(t->tu, 0, sizeof t->tu);
  memset(t->ti, 0, sizeof t->ti);
  double U[NU1][3], V[NI1][3];
  for (int u = 0; u < NU1; u++)
    for (int a = 0; a < 3; a++) U[u][a] = 0.7 * imf_rng_normal(&g);
  for (int i = 0; i < NI1; i++)
    for (int a = 0; a < 3; a++) V[i][a] = 0.7 * imf_rng_normal(&g);
  for (int u = 0; u < NU1; u++)
    for (int i = 0; i < NI1; i++) {
      double s = 0;
      for (int a = 0; a < 3; a++) s += U[u][a] * V[i][a];
      float r = implicit ? (float)(1 + (int)(4 * imf_rng_uniform(&g))) : (float)(3 + s + 0.3 * imf_rng_normal(&g));
      double x = imf_rng_uniform(&g);
      if (u < NU0 && i < NI0 && x < 0.35) t->before[u * NI1 + i] = t->after[u * NI1 + i] = r;
      else if (i >= 40 && i < NI0) { /* items 40..59: untouched by the batch */
      } else if (x < 0.35 + (u >= NU0 || i >= NI0 ? 0.3 : 0.03)) { /* the batch: new rows mostly */
        t->after[u * NI1 + i] = r;
        t->tu[u] = t->ti[i] = 1;
      }
      if (u < NU0 && i < 40 && isfinite(t->before[u * NI1 + i]) && imf_rng_uniform(&g) < 0.02) {
        t->after[u * NI1 + i] = implicit ? 5.0f : r + 1.0f; /* re-rated in the batch */
        t->tu[u] = t->ti[i] = 1;
      }
    }
}

/* Rank r's share (every size-th rating) of a table's ratings. */
static void share(const float *tab, int nu, int ni, imf_ratings *out) {
  memset(out, 0, sizeof *out);
  int q = 0;
  for (int u = 0; u < nu; u++)
    for (int i = 0; i < ni; i++)
      if (isfinite(tab[u * NI1 + i]) && q++ % size_ == rank_)
        assert_int_equal(imf_ratings_push(out, u, i, tab[u * NI1 + i], IMF_NO_TIME), IMF_OK);
}

static imf_partition *partition(const float *tab, int nu, int ni) {
  imf_ratings mine;
  share(tab, nu, ni, &mine);
  imf_partition *p;
  assert_int_equal(imf_partition_build(MPI_COMM_WORLD, &mine, nu, ni, HFRAC, HSEED, &p), IMF_OK);
  imf_ratings_free(&mine);
  return p;
}

static float train_value(const tables *t, int after, int u, int i) {
  if (imf_is_holdout(HSEED, HFRAC, u, i)) return NAN;
  if (after) return t->after[u * NI1 + i];
  return u < NU0 && i < NI0 ? t->before[u * NI1 + i] : NAN;
}

static void check_foldin(const char *const *sets, double tol) {
  tables *t = malloc(sizeof *t);
  assert_non_null(t);
  make_tables(t, strstr(sets[0], "ials") != NULL);
  imf_config *cfg;
  assert_int_equal(imf_config_create(&cfg), IMF_OK);
  for (const char *const *s = sets; *s; s++) assert_int_equal(imf_config_set(cfg, *s), IMF_OK);
  /* the champion, trained on the ratings before the batch */
  imf_partition *p0 = partition(t->before, NU0, NI0);
  imf_trainer *tr;
  assert_int_equal(imf_train_create(MPI_COMM_WORLD, cfg, p0, &tr), IMF_OK);
  assert_int_equal(imf_trainer_run(tr), IMF_OK);
  imf_model *champ;
  assert_int_equal(imf_model_copy(imf_trainer_model(tr), &champ), IMF_OK);
  imf_trainer_destroy(&tr);
  imf_partition_destroy(&p0);

  /* the direct fold-in: touched users, then items, against their full histories */
  imf_partition *p1 = partition(t->after, NU1, NI1);
  imf_model *direct;
  assert_int_equal(imf_foldin_model(MPI_COMM_WORLD, p1, champ, t->tu, t->ti, &direct), IMF_OK);

  /* through the sums: this rank's items of the new partition, summed against the champion */
  const int64_t lo = p1->item_start[rank_], hi = p1->item_start[rank_ + 1];
  imf_itemsums *s;
  assert_int_equal(imf_itemsums_create(champ, lo, hi, &s), IMF_OK);
  for (int u = 0; u < NU0; u++)
    for (int64_t i = lo; i < hi; i++) {
      float v = train_value(t, 0, u, (int)i);
      if (isfinite(v)) imf_itemsums_add(s, champ, u, i, v, 1.0);
    }
  imf_model *m;
  assert_int_equal(imf_model_copy(champ, &m), IMF_OK);
  assert_int_equal(imf_model_grow(m, NU1, NI1), IMF_OK);
  int64_t su = 0, si = 0;
  assert_int_equal(imf_foldin_side(MPI_COMM_WORLD, p1, m, 0, t->tu, &su), IMF_OK);
  assert_memory_equal(m->P, direct->P, (size_t)NU1 * (size_t)m->k * sizeof(float));
  /* the touched users' pairs, dealt out over the ranks (not by owner: apply routes them) */
  imf_pair_change *ch = calloc((size_t)NU1 * NI1, sizeof *ch);
  assert_non_null(ch);
  int64_t nch = 0;
  for (int u = 0; u < NU1; u++) {
    if (!t->tu[u] || u % size_ != (size_ - 1 - rank_)) continue;
    for (int i = 0; i < NI1; i++) {
      float b = train_value(t, 0, u, i), a = train_value(t, 1, u, i);
      if (isfinite(b) || isfinite(a)) ch[nch++] = (imf_pair_change){u, i, b, a};
    }
  }
  assert_int_equal(imf_itemsums_apply(MPI_COMM_WORLD, s, p1->item_start, ch, nch, champ, m), IMF_OK);
  { /* the sums kept by the batch's changes are the sums of the training ratings now, taken afresh
     * against the updated user factors (imf_itemsums_build on the new partition's items) */
    imf_itemsums *fresh;
    assert_int_equal(imf_itemsums_create(m, lo, hi, &fresh), IMF_OK);
    assert_int_equal(imf_itemsums_build(fresh, &p1->by_item, m), IMF_OK);
    double dev = 0, big = 1;
    for (size_t j = 0; j < (size_t)(hi - lo) * s->tri; j++) {
      dev = fmax(dev, fabs(fresh->A[j] - s->A[j]));
      big = fmax(big, fabs(fresh->A[j]));
    }
    for (size_t j = 0; j < (size_t)(hi - lo) * (size_t)s->d; j++) dev = fmax(dev, fabs(fresh->b[j] - s->b[j]));
    for (int64_t j = 0; j < hi - lo; j++) assert_int_equal(fresh->n[j], s->n[j]);
    assert_true(dev <= 1e-9 * big);
    imf_itemsums_destroy(&fresh);
  }
  assert_int_equal(imf_itemsums_solve(MPI_COMM_WORLD, s, t->ti, m, &si), IMF_OK);
  int64_t nti = 0;
  for (int i = 0; i < NI1; i++) nti += t->ti[i];
  assert_int_equal(si, nti);
  assert_true(nti > 30 && nti < NI1 - 10); /* some items are not touched (checked below) */

  /* every item as the direct fold-in has it; the touched ones moved */
  double worst = 0, moved = 0;
  for (int i = 0; i < NI1; i++) {
    for (int a = 0; a < m->k; a++) {
      double x = m->Q[i * m->k + a], y = direct->Q[i * m->k + a];
      worst = fmax(worst, fabs(x - y) / fmax(1.0, fabs(y)));
      if (t->ti[i] && i < NI0) moved = fmax(moved, fabs(y - champ->Q[i * m->k + a]));
      if (!t->ti[i]) assert_true(x == y); /* untouched: the champion's, bitwise */
    }
    if (m->bi) worst = fmax(worst, fabs(m->bi[i] - direct->bi[i]) / fmax(1.0, fabs(direct->bi[i])));
  }
  if (rank_ == 0)
    fprintf(stderr, "[itemsums] %s on %d ranks: %lld items from their sums, largest relative difference from the "
            "direct fold-in %.2e (tolerance %.0e); the largest move of a touched item %.3f\n",
            sets[0], size_, (long long)si, worst, tol, moved);
  assert_true(worst <= tol);
  assert_true(moved > 100 * tol); /* the batch changed the touched items: the comparison means something */

  free(ch);
  free(t);
  imf_itemsums_destroy(&s);
  imf_model_destroy(&m);
  imf_model_destroy(&direct);
  imf_model_destroy(&champ);
  imf_partition_destroy(&p1);
  imf_config_destroy(&cfg);
}

/* ALS with biases: the bias column and lambda_bias regulariser included. */
static void test_als(void **state) {
  (void)state;
  const char *sets[] = {"model.type=als", "model.k=4", "model.iterations=6", "model.lambda=0.1",
                        "model.lambda_bias=2", NULL};
  check_foldin(sets, 1e-5);
}

/* Implicit ALS: confidence weights and the Gram of all user factors. */
static void test_ials(void **state) {
  (void)state;
  const char *sets[] = {"model.type=ials", "model.k=4", "model.iterations=6", "model.lambda=0.5",
                        "model.alpha=2", NULL};
  check_foldin(sets, 1e-5);
}

/* Implicit ALS with alpha = 0: every weight is 0, so A_j takes nothing from a pair while b_j
 * still takes y (the pair's target is 1): the sums may not route b through sqrt(w). */
static void test_ials_alpha0(void **state) {
  (void)state;
  const char *sets[] = {"model.type=ials", "model.k=4", "model.iterations=6", "model.lambda=0.5",
                        "model.alpha=0", NULL};
  check_foldin(sets, 1e-5);
}

/* Sums belong to ALS and implicit ALS; a change outside the rank's items is refused. */
static void test_refusals(void **state) {
  (void)state;
  imf_model *m;
  imf_itemsums *s = NULL;
  assert_int_equal(imf_model_create(IMF_MODEL_BPMF, 3, 4, 4, 0, &m), IMF_OK);
  assert_int_equal(imf_itemsums_create(m, 0, 4, &s), IMF_ERR_USAGE);
  assert_null(s);
  imf_model_destroy(&m);
  assert_int_equal(imf_model_create(IMF_MODEL_ALS, 3, 4, 4, 1, &m), IMF_OK);
  assert_int_equal(imf_itemsums_create(m, 0, 0, &s), IMF_OK); /* no items held here */
  int64_t start[65] = {0};
  imf_pair_change c = {1, 2, NAN, 4.0f};
  assert_int_equal(imf_itemsums_apply(MPI_COMM_WORLD, s, start, &c, rank_ == 0, m, m), IMF_ERR_USAGE);
  imf_itemsums_destroy(&s);
  imf_model_destroy(&m);
}

int main(int argc, char **argv) {
  imf_preinit();
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  imf_log_setup(rank_, getenv("IMF_TEST_VERBOSE") == NULL, IMF_LOG_TEXT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_als),
      cmocka_unit_test(test_ials),
      cmocka_unit_test(test_ials_alpha0),
      cmocka_unit_test(test_refusals),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return rc;
}
