/* The command line of `vmm` and `vmm exec`: flags into the machine description
 * (vmm/config/config.h). */
#ifndef VMM_OPTIONS_H
#define VMM_OPTIONS_H

#include "vmm/config/config.h"

#include <stdio.h>

/* Parses argv into c (config_init'ed by the caller), flags and --config files in the order
 * given (a flag after --config overrides the file's value; devices add up), then config_finish.
 * Returns 0 to run, 1 when --help/--version was printed (exit 0), or a negative errno with one
 * line in e saying what is wrong and what to do. */
int options_parse(int argc, char **argv, struct vm_config *c, struct verr *e);

/* Parses `vmm exec` arguments (argv[0] is "exec"): --api-sock PATH, the process options
 * --env/--workdir/--user/--tty, and the command after "--" (required), into c->api_sock and
 * c->process (with its default environment). Same return values as options_parse. */
int options_parse_exec(int argc, char **argv, struct vm_config *c, struct verr *e);

void options_usage(FILE *f);

#endif
