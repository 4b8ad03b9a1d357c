/* test_policy.c - the strategy rule of `incremf update` (src/update_policy.c), every branch of
 * README's update section: the requested strategy as is; auto's escalations to warm (new data
 * beyond update.auto_share, drift, update.auto_warm_every fold-ins in a row, ratings unseen by the
 * last full sweep beyond update.auto_warm_growth of those it saw) and the notes that
 * record them; BPMF's fold-in turned into warm; a baseline refitted (retrain) whatever was
 * asked; auto's escalation after a verdict (fold-in -> warm -> retrain, never past retrain,
 * never when promoted, never for an explicit strategy); the fold-ins-in-a-row count over the
 * registry. The stages that act on it are exercised end to end by tests/e2e_update.sh and
 * tests/e2e_judge.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "update_policy.h"

static imf_update_policy_in base(imf_update_strategy req) {
  imf_update_policy_in in;
  memset(&in, 0, sizeof in);
  in.requested = req;
  in.share = 0.01;
  in.share_max = 0.25;
  in.warm_every = 0;
  in.type_name = "als";
  return in;
}

static void test_parse(void **state) {
  (void)state;
  const char *names[] = {"fold-in", "warm", "retrain", "auto"};
  for (int j = 0; j < 4; j++) {
    imf_update_strategy s = (imf_update_strategy)-1;
    assert_true(imf_update_strategy_parse(names[j], &s));
    assert_int_equal(s, j);
    assert_string_equal(imf_update_strategy_name(s), names[j]);
  }
  imf_update_strategy s = IMF_UPDATE_WARM;
  const char *bad[] = {"", "foldin", "Fold-in", "auto ", "gram", "train"};
  for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) assert_false(imf_update_strategy_parse(bad[j], &s));
  assert_false(imf_update_strategy_parse(NULL, &s));
  assert_int_equal(s, IMF_UPDATE_WARM); /* untouched on failure */
  /* the escalation order is the enum's order */
  assert_true(IMF_UPDATE_FOLD_IN < IMF_UPDATE_WARM && IMF_UPDATE_WARM < IMF_UPDATE_RETRAIN);
}

/* An explicit strategy is taken as is, whatever auto's triggers say (factor models). */
static void test_explicit(void **state) {
  (void)state;
  for (int r = IMF_UPDATE_FOLD_IN; r <= IMF_UPDATE_RETRAIN; r++) {
    imf_update_policy_in in = base((imf_update_strategy)r);
    in.share = 0.9;
    in.drift = 1;
    in.foldins = 100;
    in.warm_every = 2;
    char note[256] = "";
    assert_int_equal(imf_update_policy_start(&in, note, sizeof note), r);
    assert_string_equal(note, "");
  }
}

static void test_auto_plain(void **state) {
  (void)state;
  imf_update_policy_in in = base(IMF_UPDATE_AUTO);
  char note[256] = "";
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  assert_string_equal(note, "");
  /* a share equal to the limit does not escalate (strictly above) */
  in.share = 0.25;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  assert_string_equal(note, "");
}

static void test_auto_share(void **state) {
  (void)state;
  imf_update_policy_in in = base(IMF_UPDATE_AUTO);
  in.share = 0.534;
  char note[256] = "";
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "auto: new data is 53.4% of all ratings > update.auto_share 25.0%: warm");
  /* drift and the fold-in count add no reason once it is warm */
  in.drift = 1;
  in.foldins = 10;
  in.warm_every = 3;
  note[0] = 0;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "auto: new data is 53.4% of all ratings > update.auto_share 25.0%: warm");
}

static void test_auto_drift(void **state) {
  (void)state;
  imf_update_policy_in in = base(IMF_UPDATE_AUTO);
  in.drift = 1;
  char note[256] = "adopted: x";
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "adopted: x; auto: drift detected: warm"); /* appended after what was there */
}

static void test_auto_warm_every(void **state) {
  (void)state;
  imf_update_policy_in in = base(IMF_UPDATE_AUTO);
  in.warm_every = 3;
  in.foldins = 1; /* this would be the 2nd fold-in in a row: still fold-in */
  char note[256] = "";
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  in.foldins = 2; /* the 3rd: warm */
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "auto: 2 fold-ins in a row (update.auto_warm_every = 3): warm");
  in.warm_every = 0; /* 0: never */
  in.foldins = 1000;
  note[0] = 0;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  in.warm_every = 1; /* every update warm */
  in.foldins = 0;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
}

static void test_auto_warm_growth(void **state) {
  (void)state;
  char note[256] = "";
  imf_update_policy_in in = base(IMF_UPDATE_AUTO);
  in.growth_max = 0.5;
  in.seen = 1000;
  in.unseen = 500; /* exactly half: not beyond it */
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  assert_string_equal(note, "");
  in.unseen = 501;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "auto: 501 ratings since the last full sweep, 50% of the 1000 it saw > "
                            "update.auto_warm_growth 50%: warm");
  note[0] = 0;
  in.growth_max = 0; /* off */
  in.unseen = 1e9;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  in.growth_max = 0.5; /* an explicit strategy is never escalated */
  in.requested = IMF_UPDATE_FOLD_IN;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_FOLD_IN);
  assert_string_equal(note, "");
}

static void test_bpmf(void **state) {
  (void)state;
  char note[256] = "";
  imf_update_policy_in in = base(IMF_UPDATE_FOLD_IN);
  in.bpmf = 1;
  in.type_name = "bpmf";
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "BPMF has no fold-in: the chain continues (warm)");
  note[0] = 0;
  in.requested = IMF_UPDATE_AUTO;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "BPMF has no fold-in: the chain continues (warm)");
  note[0] = 0;
  in.requested = IMF_UPDATE_RETRAIN;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_RETRAIN);
  assert_string_equal(note, "");
  in.requested = IMF_UPDATE_AUTO; /* drift already made it warm: no BPMF note */
  in.drift = 1;
  assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_WARM);
  assert_string_equal(note, "auto: drift detected: warm");
}

static void test_baseline(void **state) {
  (void)state;
  for (int r = IMF_UPDATE_FOLD_IN; r <= IMF_UPDATE_AUTO; r++) {
    char note[256] = "";
    imf_update_policy_in in = base((imf_update_strategy)r);
    in.baseline = 1;
    in.type_name = "bias";
    assert_int_equal(imf_update_policy_start(&in, note, sizeof note), IMF_UPDATE_RETRAIN);
    assert_string_equal(note, r == IMF_UPDATE_RETRAIN ? "" : "bias: every strategy retrains (exact and cheap)");
  }
}

static void test_next(void **state) {
  (void)state;
  imf_update_strategy n = (imf_update_strategy)-1;
  assert_true(imf_update_policy_next(IMF_UPDATE_AUTO, IMF_UPDATE_FOLD_IN, 0, &n));
  assert_int_equal(n, IMF_UPDATE_WARM);
  assert_true(imf_update_policy_next(IMF_UPDATE_AUTO, IMF_UPDATE_WARM, 0, &n));
  assert_int_equal(n, IMF_UPDATE_RETRAIN);
  n = IMF_UPDATE_AUTO;
  assert_false(imf_update_policy_next(IMF_UPDATE_AUTO, IMF_UPDATE_RETRAIN, 0, &n)); /* nothing after retrain */
  assert_false(imf_update_policy_next(IMF_UPDATE_AUTO, IMF_UPDATE_FOLD_IN, 1, &n)); /* promoted: done */
  for (int r = IMF_UPDATE_FOLD_IN; r <= IMF_UPDATE_RETRAIN; r++) /* explicit: the verdict stands */
    assert_false(imf_update_policy_next((imf_update_strategy)r, (imf_update_strategy)r, 0, &n));
  assert_int_equal(n, IMF_UPDATE_AUTO); /* untouched when it stops */
}

static imf_registry_record rec(const char *event, const char *strategy, const char *decision) {
  imf_registry_record r;
  imf_registry_record_init(&r);
  snprintf(r.event, sizeof r.event, "%s", event);
  snprintf(r.strategy, sizeof r.strategy, "%s", strategy);
  snprintf(r.decision, sizeof r.decision, "%s", decision);
  return r;
}

static void test_foldins_in_row(void **state) {
  (void)state;
  imf_registry_record h[8];
  assert_int_equal(imf_update_foldins_in_row(h, 0), 0);
  h[0] = rec("train", "train", "trained");
  h[1] = rec("update", "fold-in", "promoted");
  h[2] = rec("update", "fold-in", "rejected"); /* a rejected update neither counts nor stops the count */
  h[3] = rec("rollback", "", "current");       /* not an update: skipped */
  h[4] = rec("update", "fold-in", "promoted");
  assert_int_equal(imf_update_foldins_in_row(h, 5), 2);
  h[5] = rec("update", "warm", "promoted"); /* a promoted warm update starts the count again */
  assert_int_equal(imf_update_foldins_in_row(h, 6), 0);
  h[6] = rec("update", "fold-in", "promoted");
  h[7] = rec("update", "retrain", "rejected");
  assert_int_equal(imf_update_foldins_in_row(h, 8), 1);
  h[1] = rec("train", "train", "trained"); /* a train stops the count */
  assert_int_equal(imf_update_foldins_in_row(h, 2), 0);
  /* the ratings folded in since the last full sweep: promoted fold-ins only */
  h[0] = rec("train", "train", "trained");
  h[1] = rec("update", "fold-in", "promoted");
  h[1].new_ratings = 100;
  h[2] = rec("update", "fold-in", "rejected");
  h[2].new_ratings = 40; /* not taken in: the next update's new ratings count it again */
  h[3] = rec("update", "fold-in", "promoted");
  h[3].new_ratings = 140;
  assert_int_equal(imf_update_foldin_ratings_in_row(h, 4), 240);
  h[4] = rec("update", "warm", "promoted");
  h[4].new_ratings = 60;
  assert_int_equal(imf_update_foldin_ratings_in_row(h, 5), 0);
}

static void test_note_add(void **state) {
  (void)state;
  char note[16] = "";
  imf_update_note_add(note, sizeof note, "a%d", 1);
  assert_string_equal(note, "a1");
  imf_update_note_add(note, sizeof note, "b");
  assert_string_equal(note, "a1; b");
  imf_update_note_add(note, sizeof note, "%s", "0123456789abcdef");
  assert_int_equal(strlen(note), sizeof note - 1); /* truncated, never past cap */
  imf_update_note_add(note, sizeof note, "more");
  assert_int_equal(strlen(note), sizeof note - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),        cmocka_unit_test(test_explicit),  cmocka_unit_test(test_auto_plain),
      cmocka_unit_test(test_auto_share),   cmocka_unit_test(test_auto_drift), cmocka_unit_test(test_auto_warm_every),
      cmocka_unit_test(test_auto_warm_growth),
      cmocka_unit_test(test_bpmf),         cmocka_unit_test(test_baseline),  cmocka_unit_test(test_next),
      cmocka_unit_test(test_foldins_in_row), cmocka_unit_test(test_note_add),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
