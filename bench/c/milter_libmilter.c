/*
 * The trivial benchmark milter on Sendmail's libmilter (Debian
 * libmilter-dev): every callback, each answering CONTINUE, and
 * "X-PMC-Bench: yes" added at EOM.  The reference for milter_pmcore.c.
 *
 * usage: milter_libmilter SPEC [--noreply]
 *   --noreply  negotiate no-reply for every step but EOM, as milter_pmcore
 * libmilter stops on SIGTERM, SIGHUP and SIGINT by itself.
 */
#include <libmilter/mfapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static sfsistat verdict = SMFIS_CONTINUE;
static int noreply;

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3,
                             unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    const unsigned long nr = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL |
                             SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN |
                             SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_NR_HDR;

    (void)ctx, (void)f2, (void)f3;
    if (!noreply)
        return SMFIS_ALL_OPTS;
    *pf0 = f0 & SMFIF_ADDHDRS;
    *pf1 = f1 & nr;
    *pf2 = 0;
    *pf3 = 0;
    /* Fall back to replies for steps the MTA cannot leave unanswered. */
    if ((f1 & nr) != nr)
        return SMFIS_ALL_OPTS;
    return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    (void)ctx, (void)host, (void)sa;
    return verdict;
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
    (void)ctx, (void)helo;
    return verdict;
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
    (void)ctx, (void)argv;
    return verdict;
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
    (void)ctx, (void)argv;
    return verdict;
}

static sfsistat on_data(SMFICTX *ctx)
{
    (void)ctx;
    return verdict;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
    (void)ctx, (void)name, (void)value;
    return verdict;
}

static sfsistat on_eoh(SMFICTX *ctx)
{
    (void)ctx;
    return verdict;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *p, size_t n)
{
    (void)ctx, (void)p, (void)n;
    return verdict;
}

static sfsistat on_eom(SMFICTX *ctx)
{
    smfi_addheader(ctx, "X-PMC-Bench", "yes");
    return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
    (void)ctx;
    return SMFIS_CONTINUE;
}

static sfsistat on_unknown(SMFICTX *ctx, const char *cmd)
{
    (void)ctx, (void)cmd;
    return verdict;
}

int main(int argc, char **argv)
{
    struct smfiDesc desc;

    if (argc < 2 || argc > 3 ||
        (argc == 3 && strcmp(argv[2], "--noreply") != 0)) {
        fprintf(stderr, "usage: %s SPEC [--noreply]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        noreply = 1;
        verdict = SMFIS_NOREPLY;
    }
    memset(&desc, 0, sizeof desc);
    desc.xxfi_name = "pmc-bench";
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS;
    desc.xxfi_connect = on_connect;
    desc.xxfi_helo = on_helo;
    desc.xxfi_envfrom = on_envfrom;
    desc.xxfi_envrcpt = on_envrcpt;
    desc.xxfi_header = on_header;
    desc.xxfi_eoh = on_eoh;
    desc.xxfi_body = on_body;
    desc.xxfi_eom = on_eom;
    desc.xxfi_abort = on_abort;
    desc.xxfi_close = on_close;
    desc.xxfi_unknown = on_unknown;
    desc.xxfi_data = on_data;
    desc.xxfi_negotiate = on_negotiate;

    if (smfi_setconn(argv[1]) == MI_FAILURE ||
        smfi_setbacklog(SOMAXCONN) == MI_FAILURE ||
        smfi_register(desc) == MI_FAILURE) {
        fprintf(stderr, "milter_libmilter: setup failed for %s\n", argv[1]);
        return 1;
    }
    /* Remove a stale unix socket left by an earlier run. */
    if (smfi_opensocket(1) == MI_FAILURE) {
        fprintf(stderr, "milter_libmilter: cannot open %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
