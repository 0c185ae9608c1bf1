/* See se_scan.h. */
#include "se_scan.h"

enum { PLAIN, QUOTE, OPENER, CLOSER, SEPARATOR, BACKSLASH };

/* What each byte is to the scan; most bytes of an export (digits, '.', 'e', '-') are PLAIN. */
static const unsigned char CLASS[256] = {
    ['"'] = QUOTE, ['{'] = OPENER, ['['] = OPENER, ['}'] = CLOSER, [']'] = CLOSER,
    [','] = SEPARATOR, [':'] = SEPARATOR, ['\\'] = BACKSLASH,
};

size_t se_scan(const unsigned char *p, size_t n, long max_depth, se_scan_state *state,
               int64_t *offsets, unsigned char *bytes, size_t cap)
{
    size_t i = state->position;
    long depth = state->depth;
    int in_string = state->in_string;
    int escaped = state->escaped;
    size_t count = 0;
    while (i < n && count < cap) {
        if (in_string) {
            if (escaped) {
                escaped = 0;
                i++;
                continue;
            }
            /* to the next quote or backslash */
            while (i < n && (CLASS[p[i]] != QUOTE && CLASS[p[i]] != BACKSLASH))
                i++;
            if (i == n)
                break;
            if (p[i] == '\\')
                escaped = 1;
            else
                in_string = 0;
            i++;
            continue;
        }
        if (depth > max_depth) {
            /* inside a tensor's value: only strings and brackets count, not its numbers
             * and commas */
            while (i < n && (CLASS[p[i]] == PLAIN || CLASS[p[i]] == SEPARATOR))
                i++;
            if (i == n)
                break;
        }
        unsigned char c = p[i];
        switch (CLASS[c]) {
        case QUOTE:
            in_string = 1;
            break;
        case OPENER:
            if (depth <= max_depth) {
                offsets[count] = (int64_t)i;
                bytes[count++] = c;
            }
            depth++;
            break;
        case CLOSER:
            if (depth == 0) {
                state->broken = 1;
                n = i;          /* stop here, for good */
                continue;
            }
            depth--;
            if (depth <= max_depth) {
                offsets[count] = (int64_t)i;
                bytes[count++] = c;
            }
            break;
        case SEPARATOR:
            if (depth <= max_depth) {
                offsets[count] = (int64_t)i;
                bytes[count++] = c;
            }
            break;
        default:
            break;
        }
        i++;
    }
    state->position = i;
    state->depth = depth;
    state->in_string = in_string;
    state->escaped = escaped;
    return count;
}
