/* `vmm ctl`: the control API's command-line client (docs/api.md). */
#ifndef VMM_CTL_H
#define VMM_CTL_H

#include <stdio.h>

/* Runs `vmm ctl` with argv[0] == "ctl": one request to --api-sock, the reply of state and
 * metrics printed on stdout as pretty JSON (without "v" and "ok"), nothing for the others.
 * Returns the exit status: 0, or 125 after one line on stderr (a bad command line, no
 * connection, an error reply). --help prints the usage on stdout and returns 0. */
int ctl_main(int argc, char **argv);

void ctl_usage(FILE *f);

/* A signal number (1..API_SIGNAL_MAX, decimal digits only) or name (TERM, SIGTERM, sigterm...);
 * -1 if it is neither. `vmm ctl signal` and vmm-oci's kill take signals this way. */
int ctl_parse_signal(const char *s);

#endif
