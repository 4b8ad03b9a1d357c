/* update_policy.c - the strategy rule of `incremf update` (update_policy.h), apart from the
 * stages that gather its inputs and act on it (update.c), so the rule is one readable function
 * and unit-tested (tests/test_policy.c). */
#include "update_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const NAME[4] = {"fold-in", "warm", "retrain", "auto"};

int imf_update_strategy_parse(const char *s, imf_update_strategy *out) {
  for (int j = 0; j < 4; j++)
    if (s && !strcmp(s, NAME[j])) {
      *out = (imf_update_strategy)j;
      return 1;
    }
  return 0;
}

const char *imf_update_strategy_name(imf_update_strategy s) {
  return s >= IMF_UPDATE_FOLD_IN && s <= IMF_UPDATE_AUTO ? NAME[s] : "?";
}

void imf_update_note_add(char *note, size_t cap, const char *fmt, ...) {
  size_t l = strlen(note);
  if (l + 3 >= cap) return;
  if (l) {
    strcat(note, "; ");
    l += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note + l, cap - l, fmt, ap);
  va_end(ap);
}

imf_update_strategy imf_update_policy_start(const imf_update_policy_in *in, char *note, size_t cap) {
  imf_update_strategy s = in->requested == IMF_UPDATE_AUTO ? IMF_UPDATE_FOLD_IN : in->requested;
  if (in->requested == IMF_UPDATE_AUTO) {
    if (in->share > in->share_max) {
      s = IMF_UPDATE_WARM;
      imf_update_note_add(note, cap, "auto: new data is %.1f%% of all ratings > update.auto_share %.1f%%: warm",
                          100 * in->share, 100 * in->share_max);
    }
    if (in->drift && s < IMF_UPDATE_WARM) {
      s = IMF_UPDATE_WARM;
      imf_update_note_add(note, cap, "auto: drift detected: warm");
    }
    if (in->warm_every > 0 && in->foldins + 1 >= in->warm_every && s < IMF_UPDATE_WARM) {
      s = IMF_UPDATE_WARM;
      imf_update_note_add(note, cap, "auto: %lld fold-ins in a row (update.auto_warm_every = %lld): warm",
                          (long long)in->foldins, (long long)in->warm_every);
    }
    /* fold-in leaves every row it does not touch as the last full sweep left it; the data that
     * sweep has not seen grows batch by batch, and past a share of what it saw, a full warm
     * sweep is due even when no single batch is large and no drift shows */
    if (in->growth_max > 0 && in->unseen > in->growth_max * in->seen && s < IMF_UPDATE_WARM) {
      s = IMF_UPDATE_WARM;
      imf_update_note_add(note, cap,
                          "auto: %.0f ratings since the last full sweep, %.0f%% of the %.0f it saw > "
                          "update.auto_warm_growth %.0f%%: warm",
                          in->unseen, 100 * in->unseen / (in->seen > 0 ? in->seen : 1), in->seen, 100 * in->growth_max);
    }
  }
  if (s == IMF_UPDATE_FOLD_IN && in->bpmf) {
    s = IMF_UPDATE_WARM;
    imf_update_note_add(note, cap, "BPMF has no fold-in: the chain continues (warm)");
  }
  if (s != IMF_UPDATE_RETRAIN && in->baseline) {
    s = IMF_UPDATE_RETRAIN;
    imf_update_note_add(note, cap, "%s: every strategy retrains (exact and cheap)", in->type_name);
  }
  return s;
}

int imf_update_policy_next(imf_update_strategy requested, imf_update_strategy tried, int promoted,
                           imf_update_strategy *next) {
  if (promoted || requested != IMF_UPDATE_AUTO || tried >= IMF_UPDATE_RETRAIN) return 0;
  *next = (imf_update_strategy)(tried + 1);
  return 1;
}

/* Walks the registry back from its end over the promoted fold-ins since the newest train or
 * other promoted update; counts them and sums their new ratings. */
static int64_t foldins_walk(const imf_registry_record *hist, int64_t nhist, int64_t *ratings) {
  int64_t foldins = 0, sum = 0;
  for (int64_t j = nhist - 1; j >= 0; j--) {
    if (strcmp(hist[j].event, "update") && strcmp(hist[j].event, "train")) continue;
    if (!strcmp(hist[j].event, "update") && !strcmp(hist[j].strategy, "fold-in") &&
        !strcmp(hist[j].decision, "promoted")) {
      foldins++;
      sum += hist[j].new_ratings > 0 ? hist[j].new_ratings : 0;
    } else if (!strcmp(hist[j].decision, "promoted") || !strcmp(hist[j].event, "train"))
      break;
  }
  if (ratings) *ratings = sum;
  return foldins;
}

int64_t imf_update_foldins_in_row(const imf_registry_record *hist, int64_t nhist) {
  return foldins_walk(hist, nhist, NULL);
}

int64_t imf_update_foldin_ratings_in_row(const imf_registry_record *hist, int64_t nhist) {
  int64_t sum = 0;
  foldins_walk(hist, nhist, &sum);
  return sum;
}
