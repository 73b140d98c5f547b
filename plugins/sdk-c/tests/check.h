/* A minimal test harness for the kit's native tests: CHECK records a failure
 * with its line and goes on; each test file's main returns check_report(). */
#ifndef WEIR_CHECK_H
#define WEIR_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        check_count++;                                                               \
        if (!(cond)) {                                                               \
            check_failures++;                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Two C strings equal (NULL equals only NULL); prints both on failure. */
#define CHECK_STR(got, want)                                                                               \
    do {                                                                                                   \
        const char *g_ = (got), *w_ = (want);                                                              \
        check_count++;                                                                                     \
        if ((g_ == NULL) != (w_ == NULL) || (g_ && strcmp(g_, w_) != 0)) {                                 \
            check_failures++;                                                                              \
            fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got, g_ ? g_ : "(null)", \
                    w_ ? w_ : "(null)");                                                                   \
        }                                                                                                  \
    } while (0)

static int check_report(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, check_failures, check_count);
        return 1;
    }
    printf("%s: %d checks passed\n", name, check_count);
    return 0;
}

#endif
