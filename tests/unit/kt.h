/* A small unit-test harness in chrony's manner: a test case is a function; KT_CHECK marks
 * the case failed and says where; kt_main runs the cases and prints "N passed, N failed". */
#ifndef KT_H
#define KT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_os.h"

struct kt_case {
  const char *name;
  void (*fn)(void);
};

static int kt_failed_now, kt_checks_now;

#define KT_CHECK(cond)                                                         \
  do {                                                                         \
    kt_checks_now++;                                                           \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      kt_failed_now = 1;                                                       \
    }                                                                          \
  } while (0)

#define KT_STREQ(a, b)                                                         \
  do {                                                                         \
    kt_checks_now++;                                                           \
    const char *kt_a = (a), *kt_b = (b);                                       \
    if (!kt_a || !kt_b || strcmp(kt_a, kt_b) != 0) {                           \
      fprintf(stderr, "  %s:%d: %s == %s\n    got:  %s\n    want: %s\n", __FILE__, \
              __LINE__, #a, #b, kt_a ? kt_a : "(null)", kt_b ? kt_b : "(null)"); \
      kt_failed_now = 1;                                                       \
    }                                                                          \
  } while (0)

/* Paths: on Windows the library joins with '\\', which names the same file as '/'. */
#define KT_PATHEQ(a, b)                                                        \
  do {                                                                         \
    kt_checks_now++;                                                           \
    const char *kt_a = (a), *kt_b = (b);                                       \
    if (!kt_a || !kt_b || !kt_path_eq(kt_a, kt_b)) {                           \
      fprintf(stderr, "  %s:%d: %s == %s\n    got:  %s\n    want: %s\n", __FILE__, \
              __LINE__, #a, #b, kt_a ? kt_a : "(null)", kt_b ? kt_b : "(null)"); \
      kt_failed_now = 1;                                                       \
    }                                                                          \
  } while (0)

/* Substring check: the error messages we promise users must contain these words. */
#define KT_CONTAINS(hay, needle)                                               \
  do {                                                                         \
    kt_checks_now++;                                                           \
    const char *kt_h = (hay), *kt_n = (needle);                                \
    if (!kt_h || !strstr(kt_h, kt_n)) {                                        \
      fprintf(stderr, "  %s:%d: %s does not contain \"%s\"\n    got: %s\n", __FILE__, \
              __LINE__, #hay, kt_n, kt_h ? kt_h : "(null)");                   \
      kt_failed_now = 1;                                                       \
    }                                                                          \
  } while (0)

static int kt_skipped;

/* A check this system cannot make: counted and said with its reason, never a pass (a case
 * that made no check but skipped is not counted passed). */
#define KT_SKIP(why)                                                           \
  do {                                                                         \
    printf("  skipped: %s:%d: %s\n", __FILE__, __LINE__, (why));               \
    kt_skipped++;                                                              \
  } while (0)

static int kt_main(const char *suite, const struct kt_case *cases, size_t n)
{
  int passed = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    int skipped_before = kt_skipped;
    kt_failed_now = 0;
    kt_checks_now = 0;
    cases[i].fn();
    if (kt_failed_now) {
      failed++;
      fprintf(stderr, "FAIL %s: %s\n", suite, cases[i].name);
    } else if (kt_checks_now || kt_skipped == skipped_before) {
      passed++;   /* a case that only skipped is not a pass */
    }
  }
  if (kt_skipped)
    printf("%s: %d passed, %d failed, %d skipped\n", suite, passed, failed, kt_skipped);
  else
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
  return failed ? 1 : 0;
}

/* Write a whole file (test fixtures). */
static inline int kt_write(const char *path, const char *text)
{
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  fputs(text, f);
  return fclose(f);
}

#define KT_CASE(f) {#f, f}
#define KT_RUN(suite, arr) kt_main(suite, arr, sizeof(arr) / sizeof(arr[0]))

#endif
