/*
 * The C suites' checks, printed as TAP (the Test Anything Protocol) so that
 * `prove` runs every test binary as it is, and tests/run_c_suites.sh can add
 * the suites up from the same lines:
 *
 *     ok 1 - description
 *     not ok 2 - description
 *     #   at tests/c/test_x.c line 40
 *     # any diagnostic
 *     # 1 passed, 1 failed
 *     1..2
 *
 * API (each program includes this header in one translation unit only: the
 * counters are static):
 *
 *   CHECK(cond, fmt, ...)   one test line; the description is printf-style.
 *                           A failure adds the file and line as a
 *                           diagnostic.  Evaluates to cond != 0, so
 *                           `if (!CHECK(...)) DIAG(...)` adds details.
 *   tap_ok(ok, fmt, ...)    a test line without the location, for runners
 *                           whose description already says what failed.
 *   DIAG(fmt, ...)          "# " diagnostic lines (one per line of text);
 *                           tap_diag is the same function.
 *   tap_done()              the summary comment and the plan; returns the
 *                           exit status for main (0 only if nothing failed).
 *   tap_fork(), tap_join(pid), tap_child_exit(status)
 *                           checks in a child process (see tap_fork).
 *
 * Checks run on one thread at a time: the counters are plain ints.
 */
#ifndef TAP_H
#define TAP_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAP_UNUSED __attribute__((unused))
#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Test lines are numbered by one process only.  A child started with
 * tap_fork sends its results to the parent through tap_relay_fd; any other
 * process (a worker the server forked, say) that reaches a check has no
 * place in the numbering, see tap_line. */
static int tap_run, tap_failed;
static pid_t tap_pid;
static int tap_relay_fd = -1;

/* Before main, so no test can forget it: stdout is line-buffered, hence
 * empty whenever a line is complete.  A child forked at any point (by the
 * test or by the server under test) then has no buffered parent lines to
 * print a second time when it flushes or exits, and its own lines reach
 * the pipe whole. */
TAP_UNUSED __attribute__((constructor)) static void tap_init(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    tap_pid = getpid();
}

/* A description on one line, with '#' escaped so that prove does not read
 * the rest as a TODO or SKIP directive. */
static void tap_clean(char *out, size_t cap, const char *fmt, va_list ap)
    TAP_PRINTF(3, 0);
static void tap_clean(char *out, size_t cap, const char *fmt, va_list ap)
{
    char raw[1024];
    size_t j = 0;

    vsnprintf(raw, sizeof raw, fmt, ap);
    for (size_t i = 0; raw[i] && j + 3 < cap; i++) {
        if (raw[i] == '#')
            out[j++] = '\\';
        out[j++] = raw[i] == '\n' || raw[i] == '\r' ? ' ' : raw[i];
    }
    out[j] = 0;
}

/* Sends one record ("1desc", "0desc" or "#text") to the parent; a record
 * fits one pipe write, so it arrives whole or not at all. */
static void tap_relay(char kind, const char *text)
{
    char rec[1100];
    int n = snprintf(rec, sizeof rec, "%c%s\n", kind, text);

    if (n > (int)sizeof rec - 1) {
        n = (int)sizeof rec - 1;
        rec[n - 1] = '\n';
    }
    while (write(tap_relay_fd, rec, (size_t)n) < 0 && errno == EINTR)
        ;
}

static void tap_diag_text(const char *text)
{
    const char *p = text;

    /* One record or printf per line: a relayed record is one line, and a
     * printed line leaves the buffer empty (see tap_init). */
    for (;;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);

        if (tap_relay_fd >= 0) {
            char line[1024];

            snprintf(line, sizeof line, "%.*s", len, p);
            tap_relay('#', line);
        } else {
            printf("# %.*s\n", len, p);
        }
        if (!nl || !nl[1])
            break;
        p = nl + 1;
    }
}

TAP_UNUSED TAP_PRINTF(1, 2) static void tap_diag(const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tap_diag_text(text);
}
#define DIAG tap_diag

static int tap_line(int ok, const char *desc)
{
    if (tap_relay_fd >= 0) {
        tap_relay(ok ? '1' : '0', desc);
        return ok;
    }
    if (getpid() != tap_pid) {
        /* A check in a process tap_fork did not start: its number would
         * repeat one of the parent's.  An unnumbered "not ok" fails the
         * suite under prove and run_c_suites.sh alike, pass or fail, so the
         * test gets fixed (run those checks through tap_fork). */
        printf("not ok - %s (in process %ld, outside the TAP stream)\n", desc,
               (long)getpid());
        return ok;
    }
    tap_run++;
    if (!ok)
        tap_failed++;
    printf("%sok %d - %s\n", ok ? "" : "not ", tap_run, desc);
    return ok;
}

TAP_UNUSED TAP_PRINTF(2, 3) static int tap_ok(int ok, const char *fmt, ...)
{
    char desc[1024];
    va_list ap;

    va_start(ap, fmt);
    tap_clean(desc, sizeof desc, fmt, ap);
    va_end(ap);
    return tap_line(ok, desc);
}

TAP_UNUSED TAP_PRINTF(4, 5) static int tap_check(int ok, const char *file,
                                                 int line, const char *fmt,
                                                 ...)
{
    char desc[1024];
    va_list ap;

    va_start(ap, fmt);
    tap_clean(desc, sizeof desc, fmt, ap);
    va_end(ap);
    tap_line(ok, desc);
    if (!ok)
        DIAG("  at %s line %d", file, line);
    return ok;
}

/* The comma operator runs cond to the end before the description's
 * arguments are evaluated, as an if would: they often read what cond did
 * (stat(p, &st) == 0, "mode %o", st.st_mode), and the arguments of one
 * function call are evaluated in no set order. */
TAP_UNUSED static int tap_cond;
#define CHECK(cond, ...)                                                   \
    (tap_cond = (cond) != 0,                                               \
     tap_check(tap_cond, __FILE__, __LINE__, __VA_ARGS__))

/* Checks in a child process: returns what fork() returns.  The child's
 * checks and diagnostics go to the parent through a pipe, and the parent's
 * tap_join prints them, numbered in order, so the stream has one writer.
 * The child ends with tap_child_exit; the parent calls tap_join(pid) next,
 * before anything that waits for the child (the pipe must be drained).
 * Returns -1 (errno set) when the pipe or the fork fails. */
static int tap_join_fd = -1;

TAP_UNUSED static pid_t tap_fork(void)
{
    int p[2];
    pid_t pid;

    if (pipe(p) != 0)
        return -1;
    /* Nothing the child execs may hold the write end open, or tap_join
     * would wait for its end too. */
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        tap_relay_fd = p[1];
        return 0;
    }
    close(p[1]);
    tap_join_fd = p[0];
    return pid;
}

/* _exit: the child must not run the parent's atexit handlers or flush
 * stdio buffers it inherited. */
TAP_UNUSED _Noreturn static void tap_child_exit(int status)
{
    fflush(stdout);
    _exit(status);
}

/* Prints the child's results, waits for it and returns its wait status
 * (-1 if waitpid fails).  A child that dies early has sent the results it
 * had; the caller checks the status. */
TAP_UNUSED static int tap_join(pid_t pid)
{
    char buf[4096], rec[1100];
    size_t len = 0;
    ssize_t n;
    int status;

    for (;;) {
        n = read(tap_join_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (len < sizeof rec - 1)
                    rec[len++] = buf[i];
                continue;
            }
            rec[len] = 0;
            if (rec[0] == '#')
                tap_diag_text(rec + 1);
            else if (len > 0)
                tap_line(rec[0] == '1', rec + 1);
            len = 0;
        }
    }
    close(tap_join_fd);
    tap_join_fd = -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

/* The summary is a comment for people; the plan is the last line, after
 * every check, since the count is known only at the end. */
TAP_UNUSED static int tap_done(void)
{
    printf("# %d passed, %d failed\n", tap_run - tap_failed, tap_failed);
    printf("1..%d\n", tap_run);
    fflush(stdout);
    return tap_failed != 0;
}

#endif
