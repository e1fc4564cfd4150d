/* Thread-safe error text.  Kept in its own file because the XSI
 * strerror_r needs _POSIX_C_SOURCE while the server files need
 * _GNU_SOURCE (accept4, eventfd), which selects the GNU variant. */
#define _POSIX_C_SOURCE 200809L
#include "internal_server.h"

#include <stdio.h>
#include <string.h>

const char *pmci_errtext(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0)
        snprintf(buf, cap, "error %d", e);
    return buf;
}
