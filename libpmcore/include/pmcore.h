/*
 * pmcore.h - the contract of libpmcore, a milter protocol engine.
 *
 * libpmcore speaks both sides of the Sendmail/Postfix milter protocol
 * (versions 2 to 6).  It is built in layers, bottom up:
 *
 *   wire     bytes <-> packets.  No I/O, no allocation per packet.
 *   session  one MTA connection seen from the filter: feed it bytes, it calls
 *            a handler table and appends reply bytes to an output buffer.
 *            No I/O.  Negotiation, macros, state, action legality and reply
 *            text rules all live here, so every binding behaves the same.
 *   client   the MTA side: encodes commands with Postfix or Sendmail quirks,
 *            decodes replies and collects the modifications a filter asked
 *            for.  Used by tests, tools and benchmarks.
 *
 * Conventions that hold for every function below unless it says otherwise:
 *
 *  - Errors are values.  Functions return a pmc_status; PMC_OK is 0.  Nothing
 *    in the library aborts the process, prints, or exits.
 *  - Strings are byte strings with an explicit length (pmc_str).  They may
 *    contain NUL and 8-bit bytes.  Strings the library hands out are also
 *    followed by a NUL byte (ptr[len] == 0) so C callers may use them as C
 *    strings when they know there is no interior NUL.
 *  - Pointers the library hands to a handler are views into its buffers and
 *    stay valid only until that handler returns.  Copy what you keep.
 *  - Objects are not thread-safe.  One object may be used by one thread at a
 *    time; different objects may be used by different threads at once.  The
 *    library has no global mutable state.
 *  - Every public symbol starts with pmc_ or PMC_.
 *
 * The declarations are kept in one part per layer, each the manual of its
 * layer: pmcore/base.h (status codes, errors, strings, buffers),
 * pmcore/proto.h (wire and session), pmcore/client.h, pmcore/server.h and
 * pmcore/capture.h (reading capture files, part of the client layer).
 * A part includes only the parts below it.  Include this file, not a part.
 */
#ifndef PMCORE_H
#define PMCORE_H

#include "pmcore/base.h"
#include "pmcore/proto.h"
#include "pmcore/client.h"
#include "pmcore/server.h"
#include "pmcore/capture.h"

#endif /* PMCORE_H */
