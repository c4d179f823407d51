/*
 * test.h: the unit-test harness. TEST(name) registers a test; CHECK* record a
 * failure with file:line and the values compared, then return from the test.
 * tests/unit/main.c runs them all and prints "N passed, N failed" last.
 */
#ifndef OT_TEST_H
#define OT_TEST_H

#include <stdio.h>
#include <string.h>

void ot_test_register(const char *name, void (*fn)(void));
void ot_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A scratch folder for this test run (created by main), e.g. "/tmp/ot-unit-XXXX". */
const char *ot_test_tmpdir(void);

#define TEST(name)                                                                              \
    static void name(void);                                                                     \
    __attribute__((constructor)) static void name##_reg(void) { ot_test_register(#name, name); } \
    static void name(void)

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            ot_test_fail(__FILE__, __LINE__, "%s", #cond);                                      \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                      \
    do {                                                                                        \
        long long a_ = (long long)(a), b_ = (long long)(b);                                     \
        if (a_ != b_) {                                                                         \
            ot_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);         \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#define CHECK_STR(a, b)                                                                         \
    do {                                                                                        \
        const char *a_ = (a), *b_ = (b);                                                        \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                \
            ot_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,              \
                         a_ ? a_ : "(null)", b_ ? b_ : "(null)");                               \
            return;                                                                             \
        }                                                                                       \
    } while (0)

/* Checks that a status is OT_OK, printing the error message otherwise. */
#define CHECK_OK(expr, errp)                                                                    \
    do {                                                                                        \
        ot_status s_ = (expr);                                                                  \
        if (s_ != OT_OK) {                                                                      \
            ot_test_fail(__FILE__, __LINE__, "%s: status %d: %s", #expr, (int)s_, (errp)->msg); \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#endif
