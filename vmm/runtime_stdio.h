/* The host-side plumbing an OCI runtime front end needs around a VM (--detach, --pid-file,
 * --stdio-fds, --console-socket): what conmon and the containerd shim do with these is in
 * shared/engines/README.md.
 *
 * The order a detached `create` follows: decide the container's stdio fds, detach_begin (the
 * fork comes before the VM exists: KVM ties a VM to the process that created it), build the VM
 * in the child, pidfile_write(getpid()), then detach_report(0). The engine (a child subreaper)
 * waits for `create` to exit, reads the pid file and wait4()s that process, so the process that
 * reported must live as long as the workload and exit with its status. */
#ifndef VMM_RUNTIME_STDIO_H
#define VMM_RUNTIME_STDIO_H

#include "vmm/log.h"

#include <sys/types.h>

/* Writes pid in decimal to path atomically (a temp file in the same directory, mode 0644, then
 * rename over path), so a reader never sees a partial file; what was at path before is
 * replaced. No newline, as runc and crun write it: containerd parses the file with Go's
 * strconv.Atoi, which refuses "123\n" (conmon's strtol takes either). 0 or -errno with a line in
 * e naming the path (and the directory when the directory is the problem). */
int pidfile_write(const char *path, pid_t pid, struct verr *e);

/* Writes all len bytes of buf to the blocking fd, again after EINTR and short writes: 0, or a
 * negative errno (-EIO when write returns 0). */
int fd_write_all(int fd, const void *buf, size_t len);

/* Parses "IN,OUT,ERR": three decimal fds >= 0 (digits only, no signs or spaces), each open
 * (fcntl F_GETFD), into fds[3]. The same fd may appear twice (OUT and ERR on one pipe). 0 or
 * -EINVAL with one line naming the value. */
int stdio_fds_parse(const char *s, int fds[3], struct verr *e);

/* The OCI console socket: makes a pty pair (posix_openpt O_RDWR|O_NOCTTY|O_CLOEXEC, grantpt,
 * unlockpt; the slave opened O_RDWR|O_NOCTTY|O_CLOEXEC), puts the slave in raw mode (the
 * container's terminal and its line discipline are the guest's pty: the host's passes bytes
 * through unchanged, no echo, no CR/LF translation), connects to the AF_UNIX SOCK_STREAM socket
 * at sock_path (paths longer than sun_path go through /proc/self/fd) and sends the master there
 * with SCM_RIGHTS in one message whose payload is the slave's name (as runc does), then closes
 * the master and the connection here. *slave_out is the slave fd (close-on-exec; -1 on error).
 * 0 or -errno with one line naming the socket and what to check. */
int console_socket_send_pty(const char *sock_path, int *slave_out, struct verr *e);

/* Makes the terminal fd the controlling terminal of this process (TIOCSCTTY), so window size
 * changes made on the master send SIGWINCH here. Needs a session leader without one (call after
 * setsid(), as detach_begin's child is); -EPERM otherwise. When the master's last holder closes
 * it, the kernel then sends SIGHUP here: handle it (the console is gone). 0 or -errno. */
int stdio_take_ctty(int fd);

/* --detach. detach_begin forks; call it before the VM exists and before any thread starts.
 * In the parent it never returns: it waits for the child's report over a close-on-exec channel
 * (a socketpair: the child's report cannot raise SIGPIPE) and exits the process (_exit, nothing
 * flushed twice): 0 when the child reported "created"; 125 when it reported an error (the child
 * has logged its line already), or when it died or closed the channel before reporting (then
 * the parent logs one line saying so, with the child's wait status).
 * In the child it returns 0 after setsid() (or -errno, already reported to the parent, with a
 * line in e). No fds are touched: the caller decides which fds are the container's stdio BEFORE
 * calling (stdin /dev/null, --stdio-fds, the console slave), and must keep d->report_fd open
 * (beware close_range over fds >= 3) until detach_report. Not detached: report_fd is -1. */
struct detach {
	int report_fd;
};
int detach_begin(struct detach *d, struct verr *e);
/* In the child: reports 0 (created) or an error (any other value, such as a negative errno),
 * then closes the channel and sets report_fd to -1. Safe to call more than once (only the first
 * report counts); a no-op when not detached (report_fd < 0). */
void detach_report(struct detach *d, int status);

#endif
