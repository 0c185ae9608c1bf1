/* Memory hints for the large output buffers. */
#ifndef SE_MEMORY_H
#define SE_MEMORY_H

#include <stddef.h>

/* Asks the kernel to back the untouched buffer [p, p + n) with huge pages where it can
 * (Linux with transparent huge pages in "madvise" mode): a 100 MB result otherwise costs
 * 25,000 page faults, more time than formatting it. Only whole 2 MiB-aligned blocks inside
 * the buffer are advised, so no byte outside it is affected; a no-op elsewhere. */
void se_advise_huge_pages(void *p, size_t n);

#endif /* SE_MEMORY_H */
