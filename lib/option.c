/* option.c -- the integer-option tables every object uses: one row per
 * option saying where its value lives and which range it accepts. */
#include <stddef.h>
#include <string.h>

#include "internal.h"

static const sk_option_def *find(const sk_option_def *defs, size_t n, int option) {
  for (size_t i = 0; i < n; i++)
    if (defs[i].option == option)
      return &defs[i];
  return NULL;
}

int sk__option_set(void *obj, const sk_option_def *defs, size_t n, int option, long long value,
                   const char *locked, const char *call) {
  const sk_option_def *d = find(defs, n, option);
  if (!d) {
    sk__log(SK_LOG_WARN, "%s: option %d: not an option of this object", call, option);
    return sk__fail(SK_EINVAL, 0);
  }
  if (value < d->min || value > d->max) {
    sk__log(SK_LOG_WARN, "%s: %s=%lld: %s %lld (range %lld..%lld)", call, d->name, value,
            value < d->min ? "below the minimum" : "above the maximum",
            value < d->min ? d->min : d->max, d->min, d->max);
    return sk__fail(SK_EINVAL, 0);
  }
  if (locked) {
    sk__log(SK_LOG_WARN, "%s: %s=%lld: %s", call, d->name, value, locked);
    return sk__fail(SK_ESTATE, 0);
  }
  memcpy((char *)obj + d->offset, &value, sizeof value);
  return SK_OK;
}

int sk__option_get(const void *obj, const sk_option_def *defs, size_t n, int option,
                   long long *value, const char *call) {
  const sk_option_def *d = find(defs, n, option);
  if (!d) {
    sk__log(SK_LOG_WARN, "%s: option %d: not an option of this object", call, option);
    return sk__fail(SK_EINVAL, 0);
  }
  memcpy(value, (const char *)obj + d->offset, sizeof *value);
  return SK_OK;
}

int sk__null_argument(const char *call, const char *argument) {
  sk__log(SK_LOG_WARN, "%s: %s is NULL", call, argument);
  return sk__fail(SK_EINVAL, 0);
}
