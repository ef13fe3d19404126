/* test_abi_values.c -- the header's values agree with the pinned table
 * abi_values.def, and the table names every SK_ enumerator and macro. */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sockkit.h>

/* SK_PUBLIC_HEADER, the path of include/sockkit.h, comes from CMake. */

typedef struct pin {
  const char *name;
  long long header; /* the value sockkit.h gives it */
  long long pinned; /* the value abi_values.def pins */
} pin;

static const pin numbers[] = {
#define PIN(name, value) {#name, (long long)(name), value},
#define PIN_STR(name, value)
#include "abi_values.def"
#undef PIN
#undef PIN_STR
};
#define NNUMBERS (sizeof numbers / sizeof numbers[0])

static const struct {
  const char *name, *header, *pinned;
} strings[] = {
#define PIN(name, value)
#define PIN_STR(name, value) {#name, name, value},
#include "abi_values.def"
#undef PIN
#undef PIN_STR
};
#define NSTRINGS (sizeof strings / sizeof strings[0])

static int pinned(const char *name) {
  for (size_t i = 0; i < NNUMBERS; i++)
    if (strcmp(numbers[i].name, name) == 0)
      return 1;
  for (size_t i = 0; i < NSTRINGS; i++)
    if (strcmp(strings[i].name, name) == 0)
      return 1;
  return 0;
}

START_TEST(test_header_values_match_the_table) {
  for (size_t i = 0; i < NNUMBERS; i++)
    ck_assert_msg(numbers[i].header == numbers[i].pinned, "%s is %lld in sockkit.h, pinned %lld",
                  numbers[i].name, numbers[i].header, numbers[i].pinned);
  for (size_t i = 0; i < NSTRINGS; i++)
    ck_assert_msg(strcmp(strings[i].header, strings[i].pinned) == 0,
                  "%s is \"%s\" in sockkit.h, pinned \"%s\"", strings[i].name, strings[i].header,
                  strings[i].pinned);
}
END_TEST

START_TEST(test_table_names_each_value_once) {
  for (size_t i = 0; i < NNUMBERS; i++)
    for (size_t j = i + 1; j < NNUMBERS; j++)
      ck_assert_msg(strcmp(numbers[i].name, numbers[j].name) != 0, "%s is pinned twice",
                    numbers[i].name);
}
END_TEST

/* The header's enumerators are the lines that start with SK_ (after
 * indentation); its macros are the "#define SK_" lines. Everything else
 * that starts with SK_ is a function declaration (SK_API). */
START_TEST(test_table_covers_the_header) {
  FILE *f = fopen(SK_PUBLIC_HEADER, "r");
  ck_assert_msg(f != NULL, "cannot open %s", SK_PUBLIC_HEADER);
  char line[512], missing[2048] = "";
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    const char *p = line + strspn(line, " \t");
    if (strncmp(p, "#define ", 8) == 0)
      p += 8;
    if (strncmp(p, "SK_", 3) != 0)
      continue;
    char name[128];
    size_t n = 0;
    while ((isalnum((unsigned char)p[n]) || p[n] == '_') && n < sizeof name - 1) {
      name[n] = p[n];
      n++;
    }
    name[n] = '\0';
    if (strcmp(name, "SK_API") == 0)
      continue;
    found++;
    if (!pinned(name) && strlen(missing) + n + 2 < sizeof missing) {
      strcat(missing, " ");
      strcat(missing, name);
    }
  }
  fclose(f);
  ck_assert_msg(missing[0] == '\0', "not pinned in tests/abi/abi_values.def:%s", missing);
  /* Each pinned name is in the header (or this file would not compile), so
   * fewer means the parser above missed some. */
  ck_assert_int_ge(found, (int)(NNUMBERS + NSTRINGS));
}
END_TEST

static Suite *abi_values_suite(void) {
  Suite *s = suite_create("abi_values");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_header_values_match_the_table);
  tcase_add_test(tc, test_table_names_each_value_once);
  tcase_add_test(tc, test_table_covers_the_header);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(abi_values_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
