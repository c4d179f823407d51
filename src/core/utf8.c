/*
 * utf8.c: UTF-8 validation, as RFC 3629 defines it: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 *
 * Used where text from files ends up in a protobuf string or a JSON value
 * (class names), both of which must be valid UTF-8.
 */
#include "core/core.h"

size_t ot_utf8_seq(const unsigned char *p, const unsigned char *end)
{
    if (p >= end)
        return 0;
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

bool ot_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = ot_utf8_seq(p, end);
        if (!k)
            return false;
        p += k;
    }
    return true;
}
