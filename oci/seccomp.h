/* vmm-oci: an OCI seccomp profile (the spec's linux.seccomp) compiled on the host with libseccomp
 * into the classic BPF program vmm sends to the guest agent (process.seccomp_bpf, docs/config.md).
 * The agent is static and has no libseccomp: it installs the program as it is. */
#ifndef VMM_OCI_SECCOMP_H
#define VMM_OCI_SECCOMP_H

#include "vmm/log.h"

#include <json-c/json.h>

/* Compiles profile (an object: defaultAction, defaultErrnoRet, architectures, syscalls[] of
 * {names, action, errnoRet, args[] of {index, value, valueTwo, op}}) for the native architecture
 * plus the ones it lists, and writes the program (raw struct sock_filter[], at most 4096
 * instructions) to path, created 0600 or replaced. Syscall names libseccomp does not know are
 * skipped and a rule whose action is the default is dropped, as runc does; an unknown action,
 * architecture or operator, SCMP_ACT_NOTIFY (no listener in the guest) and a bad type are refused.
 * 0, or a negative errno with one line in e naming the key ("config.json: linux.seccomp....").  */
int oci_seccomp_compile(json_object *profile, const char *path, struct verr *e);

/* The compiled program's name in ROOT/ID: create writes it, exec sends it along with the process.
 */
#define OCI_SECCOMP_FILE "seccomp.bpf"

#endif
