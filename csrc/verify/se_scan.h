/* The top of a JSON document's structure, found without parsing it: the offsets of the
 * structural bytes ({ } [ ] , :) outside strings at a nesting depth of at most max_depth.
 * streamexport.verify cuts an export into parts of whole tensors with it, to verify the parts
 * in parallel (each part is then parsed in full by ijson; the scan only says where to cut).
 *
 * The depth of a byte is the number of arrays and objects open before it; a closing bracket
 * counts at the depth after it, so that an opener and its closer are recorded together. */
#ifndef SE_SCAN_H
#define SE_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t position;   /* the next byte to scan */
    long depth;
    int in_string;
    int escaped;       /* in a string, after a backslash */
    int broken;        /* a closer with nothing open: the scan stops */
} se_scan_state;

/* Scans p[state->position, n), recording at most cap marks (offset and byte); returns how
 * many it recorded. Resumable: call again with the same state while position < n. */
size_t se_scan(const unsigned char *p, size_t n, long max_depth, se_scan_state *state,
               int64_t *offsets, unsigned char *bytes, size_t cap);

#endif /* SE_SCAN_H */
