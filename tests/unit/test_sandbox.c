/* Sandbox tests: the seccomp programs compiled when vmm was built (vmm/sandbox/sandbox_filters.h)
 * against the same lists compiled by libseccomp now (vmm/sandbox/sandbox_rules.c): the same bytes,
 * and the same verdicts from a classic-BPF evaluator over a table of system calls, each with the
 * verdict it must get. Then the built programs installed for real in child processes (the SIGSYS
 * line, the VMM_SECCOMP_TEST hook), and the time a thread spends installing its filter both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/sandbox_filters.h"
#include "vmm/config/device_table.h"
#include "vmm/sandbox/sandbox_rules.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>

/* ---- a classic BPF evaluator: the instructions the kernel accepts in a seccomp filter ---- */

/* Runs P over D as the kernel would; returns 0 with *ret the verdict, or -1 with WHY set when
 * the program does something the kernel would refuse (unknown opcode, a load outside
 * seccomp_data, a jump or fall off the end, a division by zero). */
static int bpf_run(const struct sock_filter *p, size_t len, const struct seccomp_data *d,
		   uint32_t *ret, const char **why)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	const unsigned char *data = (const unsigned char *)d;
	for (size_t pc = 0; pc < len; pc++) {
		const struct sock_filter *f = &p[pc];
		uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;
		switch (BPF_CLASS(f->code)) {
		case BPF_LD:
		case BPF_LDX: {
			uint32_t v;
			if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
				if (f->k % 4 || f->k > sizeof(*d) - 4) {
					*why = "load outside seccomp_data";
					return -1;
				}
				memcpy(&v, data + f->k, 4);
			} else if (BPF_MODE(f->code) == BPF_IMM) {
				v = f->k;
			} else if (BPF_MODE(f->code) == BPF_LEN) {
				v = sizeof(*d);
			} else if (BPF_MODE(f->code) == BPF_MEM && f->k < BPF_MEMWORDS) {
				v = mem[f->k];
			} else {
				*why = "unknown load";
				return -1;
			}
			if (BPF_CLASS(f->code) == BPF_LD)
				a = v;
			else
				x = v;
			break;
		}
		case BPF_ST:
		case BPF_STX:
			if (f->k >= BPF_MEMWORDS) {
				*why = "store outside the scratch memory";
				return -1;
			}
			mem[f->k] = BPF_CLASS(f->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			switch (BPF_OP(f->code)) {
			case BPF_ADD:
				a += src;
				break;
			case BPF_SUB:
				a -= src;
				break;
			case BPF_MUL:
				a *= src;
				break;
			case BPF_DIV:
				if (!src) {
					*why = "division by zero";
					return -1;
				}
				a /= src;
				break;
			case BPF_OR:
				a |= src;
				break;
			case BPF_AND:
				a &= src;
				break;
			case BPF_XOR:
				a ^= src;
				break;
			case BPF_LSH:
				a = src < 32 ? a << src : 0;
				break;
			case BPF_RSH:
				a = src < 32 ? a >> src : 0;
				break;
			case BPF_NEG:
				a = -a;
				break;
			default:
				*why = "unknown ALU operation";
				return -1;
			}
			break;
		case BPF_JMP: {
			size_t off;
			if (BPF_OP(f->code) == BPF_JA) {
				off = f->k;
			} else {
				bool t;
				switch (BPF_OP(f->code)) {
				case BPF_JEQ:
					t = a == src;
					break;
				case BPF_JGT:
					t = a > src;
					break;
				case BPF_JGE:
					t = a >= src;
					break;
				case BPF_JSET:
					t = (a & src) != 0;
					break;
				default:
					*why = "unknown jump";
					return -1;
				}
				off = t ? f->jt : f->jf;
			}
			if (off >= len - pc - 1) {
				*why = "jump past the end";
				return -1;
			}
			pc += off;
			break;
		}
		case BPF_RET:
			if (BPF_RVAL(f->code) == BPF_K) {
				*ret = f->k;
			} else if (BPF_RVAL(f->code) == BPF_A) {
				*ret = a;
			} else {
				*why = "unknown return";
				return -1;
			}
			return 0;
		case BPF_MISC:
			if (BPF_MISCOP(f->code) == BPF_TAX) {
				x = a;
			} else if (BPF_MISCOP(f->code) == BPF_TXA) {
				a = x;
			} else {
				*why = "unknown misc operation";
				return -1;
			}
			break;
		default:
			*why = "unknown instruction class";
			return -1;
		}
	}
	*why = "ran off the end without a return";
	return -1;
}

/* The evaluator itself, on hand-made programs: a test of the test. */
static void evaluator(void **state)
{
	(void)state;
	struct seccomp_data d = {.nr = 5, .arch = AUDIT_ARCH_X86_64, .args = {7}};
	const struct sock_filter prog[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 5, 0, 3),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
	    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x6),
	    BPF_STMT(BPF_RET | BPF_A, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	uint32_t ret = 0;
	const char *why = NULL;
	assert_int_equal(bpf_run(prog, 6, &d, &ret, &why), 0);
	assert_int_equal(ret, 6);
	d.nr = 4;
	assert_int_equal(bpf_run(prog, 6, &d, &ret, &why), 0);
	assert_int_equal(ret, SECCOMP_RET_TRAP);
	/* refused: falling off the end, a jump past it, a load past seccomp_data */
	assert_int_equal(bpf_run(prog, 4, &d, &ret, &why), -1);
	const struct sock_filter far[] = {BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0),
					  BPF_STMT(BPF_RET | BPF_K, 0)};
	assert_int_equal(bpf_run(far, 2, &d, &ret, &why), -1);
	const struct sock_filter past[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, sizeof(d)),
					   BPF_STMT(BPF_RET | BPF_K, 0)};
	assert_int_equal(bpf_run(past, 2, &d, &ret, &why), -1);
}

/* ---- the built programs against the run-time ones ---- */

static struct sock_filter *runtime_prog[SANDBOX_KINDS];
static size_t runtime_len[SANDBOX_KINDS];

static int compile_runtime(void **state)
{
	(void)state;
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		struct verr e = {0};
		if (sandbox_rules_export((enum sandbox_kind)k, &runtime_prog[k], &runtime_len[k],
					 &e) < 0) {
			fprintf(stderr, "%s\n", e.msg);
			return -1;
		}
	}
	return 0;
}

static int free_runtime(void **state)
{
	(void)state;
	for (int k = 0; k < SANDBOX_KINDS; k++)
		free(runtime_prog[k]);
	return 0;
}

/* (1) The bytes compiled into vmm are what libseccomp exports now for the same lists. */
static void built_equals_runtime(void **state)
{
	(void)state;
	const struct scmp_version *v = seccomp_version();
	char now[32];
	snprintf(now, sizeof(now), "%u.%u.%u", v->major, v->minor, v->micro);
	assert_string_equal(sandbox_filters_libseccomp, now);
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		const struct sandbox_filter *f = &sandbox_filters[k];
		assert_string_equal(f->name, sandbox_rules[k].name);
		assert_int_equal(f->len, runtime_len[k]);
		assert_memory_equal(f->insns, runtime_prog[k], runtime_len[k] * sizeof(*f->insns));
	}
	/* the SIGSYS handler's names are libseccomp's */
	for (int nr = 0; nr < SANDBOX_SYSCALL_NAMES; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (name)
			assert_string_equal(sandbox_syscall_names[nr], name);
		else
			assert_null(sandbox_syscall_names[nr]);
		free(name);
	}
	assert_string_equal(sandbox_syscall_names[SYS_uname], "uname");
}

#define ALLOW SECCOMP_RET_ALLOW
#define TRAP  SECCOMP_RET_TRAP
#define KILL  SECCOMP_RET_KILL_THREAD /* libseccomp's default for a wrong architecture */

/* One input and the verdict each kind (main, vcpu, session, fs) must give it. */
struct probe {
	const char *what;
	int nr;
	uint32_t arch; /* 0: AUDIT_ARCH_X86_64 */
	uint64_t a0, a1;
	uint32_t want[SANDBOX_KINDS];
};

#define HI32 0xdead000000000000ull /* garbage above the ioctl request's 32 bits */

static const struct probe probes[] = {
    {"read", SYS_read, 0, 0, 0, {ALLOW, ALLOW, ALLOW, ALLOW}},
    {"write", SYS_write, 0, 2, 0, {ALLOW, ALLOW, ALLOW, ALLOW}},
    {"futex", SYS_futex, 0, 0, 0, {ALLOW, ALLOW, ALLOW, ALLOW}},
    {"exit_group", SYS_exit_group, 0, 0, 0, {ALLOW, ALLOW, ALLOW, ALLOW}},
    {"tgkill", SYS_tgkill, 0, 0, 0, {ALLOW, ALLOW, ALLOW, ALLOW}},
    {"epoll_wait", SYS_epoll_wait, 0, 0, 0, {ALLOW, TRAP, TRAP, TRAP}},
    {"accept4", SYS_accept4, 0, 0, 0, {ALLOW, TRAP, TRAP, TRAP}},
    {"unlink", SYS_unlink, 0, 0, 0, {ALLOW, TRAP, TRAP, TRAP}},
    {"poll", SYS_poll, 0, 0, 0, {TRAP, TRAP, ALLOW, TRAP}},
    {"ppoll", SYS_ppoll, 0, 0, 0, {TRAP, TRAP, ALLOW, TRAP}},
    {"openat (fs)", SYS_openat, 0, 3, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"renameat2 (fs)", SYS_renameat2, 0, 3, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"getdents64 (fs)", SYS_getdents64, 0, 3, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"pwritev (blk on main and vcpu, WRITE on fs)",
     SYS_pwritev,
     0,
     3,
     0,
     {ALLOW, ALLOW, TRAP, ALLOW}},
    {"fsetxattr (fs)", SYS_fsetxattr, 0, 3, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"connect (main only)", SYS_connect, 0, 3, 0, {ALLOW, TRAP, TRAP, TRAP}},
    {"setfsuid (fs: each request as its uid)", SYS_setfsuid, 0, 0, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"setfsgid (fs: each request as its gid)", SYS_setfsgid, 0, 0, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"setuid (every thread: no set*id but fs ids)", SYS_setuid, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"setresuid", SYS_setresuid, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"setgroups", SYS_setgroups, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"capset (capabilities are set before the filters)",
     SYS_capset,
     0,
     0,
     0,
     {TRAP, TRAP, TRAP, TRAP}},
    {"uname (VMM_SECCOMP_TEST)", SYS_uname, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
#if VMM_SANDBOX_SANITIZER
    {"sigaltstack (sanitizer build)", SYS_sigaltstack, 0, 0, 0, {ALLOW, ALLOW, ALLOW, ALLOW}},
#else
    {"sigaltstack (not a sanitizer build)", SYS_sigaltstack, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
#endif
    {"execve", SYS_execve, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"open", SYS_open, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"openat", SYS_openat, 0, 0, 0, {TRAP, TRAP, TRAP, ALLOW}},
    {"ptrace", SYS_ptrace, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"mount", SYS_mount, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"bpf", SYS_bpf, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"kill", SYS_kill, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"clone", SYS_clone, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"no such call (1000)", 1000, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"socket(AF_UNIX)", SYS_socket, 0, AF_UNIX, SOCK_STREAM, {ALLOW, TRAP, TRAP, TRAP}},
    {"socket(AF_INET)", SYS_socket, 0, AF_INET, SOCK_STREAM, {TRAP, TRAP, TRAP, TRAP}},
    {"socket(AF_UNIX + high bits)",
     SYS_socket,
     0,
     (1ull << 32) | AF_UNIX,
     0,
     {TRAP, TRAP, TRAP, TRAP}},
    {"ioctl KVM_RUN", SYS_ioctl, 0, 3, KVM_RUN, {TRAP, ALLOW, TRAP, TRAP}},
    {"ioctl KVM_RUN, high bits", SYS_ioctl, 0, 3, HI32 | KVM_RUN, {TRAP, ALLOW, TRAP, TRAP}},
    {"ioctl KVM_IRQ_LINE", SYS_ioctl, 0, 3, KVM_IRQ_LINE, {ALLOW, ALLOW, TRAP, TRAP}},
    {"ioctl TCSETS", SYS_ioctl, 0, 0, TCSETS, {ALLOW, TRAP, TRAP, TRAP}},
    {"ioctl TIOCGWINSZ", SYS_ioctl, 0, 0, TIOCGWINSZ, {TRAP, TRAP, ALLOW, TRAP}},
    {"ioctl TUNSETOFFLOAD", SYS_ioctl, 0, 5, TUNSETOFFLOAD, {TRAP, ALLOW, TRAP, TRAP}},
    {"ioctl KVM_GET_REGS", SYS_ioctl, 0, 3, KVM_GET_REGS, {ALLOW, ALLOW, TRAP, TRAP}},
    /* the snapshot's reads of KVM state are the main thread's; it sets none of it */
    {"ioctl KVM_GET_PIT2", SYS_ioctl, 0, 3, KVM_GET_PIT2, {ALLOW, TRAP, TRAP, TRAP}},
    {"ioctl KVM_SET_PIT2", SYS_ioctl, 0, 3, KVM_SET_PIT2, {TRAP, TRAP, TRAP, TRAP}},
    {"ioctl KVM_SET_MSRS", SYS_ioctl, 0, 3, KVM_SET_MSRS, {TRAP, TRAP, TRAP, TRAP}},
    {"recvmsg", SYS_recvmsg, 0, 0, 0, {ALLOW, TRAP, TRAP, TRAP}},
    {"ioctl KVM_CREATE_VM", SYS_ioctl, 0, 3, KVM_CREATE_VM, {TRAP, TRAP, TRAP, TRAP}},
    {"ioctl KVM_SET_USER_MEMORY_REGION",
     SYS_ioctl,
     0,
     3,
     KVM_SET_USER_MEMORY_REGION,
     {TRAP, TRAP, TRAP, TRAP}},
    {"ioctl KVM_SET_REGS", SYS_ioctl, 0, 3, KVM_SET_REGS, {TRAP, TRAP, TRAP, TRAP}},
    {"ioctl TUNSETIFF", SYS_ioctl, 0, 5, TUNSETIFF, {TRAP, TRAP, TRAP, TRAP}},
    {"ioctl 0", SYS_ioctl, 0, 0, 0, {TRAP, TRAP, TRAP, TRAP}},
    {"read, arch i386", SYS_read, AUDIT_ARCH_I386, 0, 0, {KILL, KILL, KILL, KILL}},
    {"read, arch aarch64", SYS_read, AUDIT_ARCH_AARCH64, 0, 0, {KILL, KILL, KILL, KILL}},
    {"read, x32 ABI", 0x40000000 | SYS_read, 0, 0, 0, {KILL, KILL, KILL, KILL}},
};

/* Both programs' verdict for (nr, arch, a0, a1) under KIND, which must agree. */
static uint32_t verdict(int kind, int nr, uint32_t arch, uint64_t a0, uint64_t a1, const char *what)
{
	struct seccomp_data d = {
	    .nr = nr,
	    .arch = arch ? arch : AUDIT_ARCH_X86_64,
	    .instruction_pointer = 0x401000,
	    .args = {a0, a1, 0, 0, 0, 0},
	};
	const struct sandbox_filter *f = &sandbox_filters[kind];
	uint32_t built = 1, runtime = 2;
	const char *why = NULL;
	if (bpf_run(f->insns, f->len, &d, &built, &why) < 0)
		fail_msg("%s: %s: built program: %s", f->name, what, why);
	if (bpf_run(runtime_prog[kind], runtime_len[kind], &d, &runtime, &why) < 0)
		fail_msg("%s: %s: run-time program: %s", f->name, what, why);
	if (built != runtime)
		fail_msg("%s: %s: built program says %#x, run-time one %#x", f->name, what, built,
			 runtime);
	return built;
}

static void expect(int kind, int nr, uint32_t arch, uint64_t a0, uint64_t a1, uint32_t want,
		   const char *what)
{
	uint32_t got = verdict(kind, nr, arch, a0, a1, what);
	if (got != want)
		fail_msg("%s: %s: verdict %#x, expected %#x", sandbox_filters[kind].name, what, got,
			 want);
}

/* (2) The table above, under both programs of every kind. */
static void verdicts_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		for (int k = 0; k < SANDBOX_KINDS; k++)
			expect(k, probes[i].nr, probes[i].arch, probes[i].a0, probes[i].a1,
			       probes[i].want[k], probes[i].what);
}

/* The name lists of KIND: common, sanitizer (empty unless a sanitizer build), its own. */
/* A kind's lists: 0 common, 1 sanitizer, 2 its own, 3.. the device lists (none when the kind
 * runs no device code). */
#define KIND_LISTS (3 + (int)sandbox_device_rules_len)
static const struct sc_rule *kind_list(int kind, int which, size_t *n)
{
	const struct sandbox_rules *r = &sandbox_rules[kind];
	if (which >= 3) {
		const struct sandbox_device_rules *d = &sandbox_device_rules[which - 3];
		*n = r->devices ? d->ncalls : 0;
		return d->calls;
	}
	*n = which == 0	  ? sandbox_common_rules_len
	     : which == 1 ? sandbox_sanitizer_rules_len
			  : r->ncalls;
	return which == 0 ? sandbox_common_rules : which == 1 ? sandbox_sanitizer_rules : r->calls;
}

/* Every device type of the device table names a list here, and every list belongs to one. */
static void device_lists(void **state)
{
	(void)state;
	for (unsigned t = 0; t < VM_DEV_TYPES; t++) {
		size_t found = 0;
		for (size_t i = 0; i < sandbox_device_rules_len; i++)
			found += strcmp(sandbox_device_rules[i].name, device_table[t].sandbox) == 0;
		if (found != 1)
			fail_msg("device %s: its sandbox list '%s' is there %zu times",
				 device_table[t].name, device_table[t].sandbox, found);
	}
	for (size_t i = 0; i < sandbox_device_rules_len; i++) {
		bool used = false;
		for (unsigned t = 0; t < VM_DEV_TYPES; t++)
			used |= strcmp(sandbox_device_rules[i].name, device_table[t].sandbox) == 0;
		if (!used)
			fail_msg("sandbox list '%s' belongs to no device type",
				 sandbox_device_rules[i].name);
	}
	/* the session thread runs no device code: it has none of the device calls */
	assert_false(sandbox_rules[SANDBOX_SESSION].devices);
	/* the virtio-fs worker runs the FUSE server only: its own list, no device lists, no ioctl,
	 * no socket */
	assert_false(sandbox_rules[SANDBOX_FS].devices);
	assert_int_equal(sandbox_rules[SANDBOX_FS].nioctls, 0);
	assert_false(sandbox_rules[SANDBOX_FS].unix_socket);
	assert_true(sandbox_rules[SANDBOX_MAIN].devices && sandbox_rules[SANDBOX_VCPU].devices);
}

/* (2) Every entry of every list is allowed under its kind, whatever the other arguments; every
 * ioctl request of a kind is allowed there, and the same request with one bit of its low 32
 * flipped is refused unless it is on the list too. */
static void verdicts_lists(void **state)
{
	(void)state;
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		const struct sandbox_rules *r = &sandbox_rules[k];
		for (int which = 0; which < KIND_LISTS; which++) {
			size_t n;
			const struct sc_rule *c = kind_list(k, which, &n);
			for (size_t i = 0; i < n; i++) {
				int nr = seccomp_syscall_resolve_name(c[i].name);
				assert_int_not_equal(nr, __NR_SCMP_ERROR);
				expect(k, nr, 0, 0, 0, ALLOW, c[i].name);
				expect(k, nr, 0, ~0ull, ~0ull, ALLOW, c[i].name);
			}
		}
		for (size_t i = 0; i < r->nioctls; i++) {
			uint32_t req = (uint32_t)r->ioctls[i].req;
			expect(k, SYS_ioctl, 0, 3, req, ALLOW, r->ioctls[i].why);
			for (int bit = 0; bit < 32; bit++) {
				uint32_t other = req ^ (1u << bit);
				bool listed = false;
				for (size_t j = 0; j < r->nioctls; j++)
					listed |= (uint32_t)r->ioctls[j].req == other;
				expect(k, SYS_ioctl, 0, 3, other, listed ? ALLOW : TRAP,
				       "ioctl with one bit flipped");
			}
		}
		/* and every other system call number up to 512 traps */
		for (int nr = 0; nr < SANDBOX_SYSCALL_NAMES; nr++) {
			bool listed = nr == SYS_ioctl || (nr == SYS_socket && r->unix_socket);
			for (int which = 0; which < KIND_LISTS && !listed; which++) {
				size_t n;
				const struct sc_rule *c = kind_list(k, which, &n);
				for (size_t i = 0; i < n && !listed; i++)
					listed = seccomp_syscall_resolve_name(c[i].name) == nr;
			}
			if (!listed)
				expect(k, nr, 0, 0, 0, TRAP, "a call on no list");
		}
	}
}

/* ---- the built programs in the kernel: child processes ---- */

/* Forks a child that runs FN(ARG) with stderr on a pipe; returns its exit status (-1: killed)
 * and what it wrote in OUT. */
static int run_child(void (*fn)(int), int arg, char *out, size_t cap)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	size_t at = 0;
	ssize_t n;
	while (at + 1 < cap && (n = read(p[0], out + at, cap - 1 - at)) > 0)
		at += (size_t)n;
	out[at] = 0;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* FORBIDDEN_OPEN in the argument: the forbidden call is an openat, not an uname. */
#define FORBIDDEN_OPEN 0x100

static void child_forbidden_call(int arg)
{
	struct verr e = {0};
	int kind = arg & ~FORBIDDEN_OPEN;
	if (sandbox_drop_privileges(0, &e) < 0 || sandbox_enter((enum sandbox_kind)kind, &e) < 0) {
		ssize_t w = write(STDERR_FILENO, e.msg, strlen(e.msg));
		(void)w;
		_exit(3);
	}
	if (syscall(SYS_getpid) <= 0) /* allowed everywhere */
		_exit(4);
	struct utsname u;
	if (arg & FORBIDDEN_OPEN)
		syscall(SYS_openat, AT_FDCWD, "/no/such/vmm-test-file", O_RDONLY | O_CLOEXEC);
	else
		syscall(SYS_uname, &u);
	_exit(5); /* not reached: the handler ends the process */
}

/* The built program in the kernel: a forbidden call gets the one line and 125, per kind. */
static void installed_forbidden_call(void **state)
{
	(void)state;
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		char out[512], want[256];
		assert_int_equal(run_child(child_forbidden_call, k, out, sizeof(out)),
				 VMM_EXIT_FAILURE);
		snprintf(
		    want, sizeof(want),
		    "vmm: seccomp: thread %s made a forbidden system call uname (%d); this is a "
		    "vmm bug, please report it (--seccomp=off to debug)\n",
		    sandbox_filters[k].name, SYS_uname);
		assert_string_equal(out, want);
	}
}

/* A forbidden open also names the file it opened, on a line of its own. */
static void installed_forbidden_open(void **state)
{
	(void)state;
	char out[512], want[512];
	assert_int_equal(
	    run_child(child_forbidden_call, SANDBOX_MAIN | FORBIDDEN_OPEN, out, sizeof(out)),
	    VMM_EXIT_FAILURE);
	snprintf(
	    want, sizeof(want),
	    "vmm: seccomp: thread main made a forbidden system call openat (%d); this is a vmm "
	    "bug, please report it (--seccomp=off to debug)\n"
	    "vmm: seccomp: the file it opened: /no/such/vmm-test-file\n",
	    SYS_openat);
	assert_string_equal(out, want);
}

static void child_hook(int kind)
{
	struct verr e = {0};
	setenv("VMM_SECCOMP_TEST", "session", 1);
	if (sandbox_drop_privileges(0, &e) < 0 || sandbox_enter((enum sandbox_kind)kind, &e) < 0)
		_exit(3);
	_exit(0); /* the hook names another kind: nothing forbidden happened */
}

/* VMM_SECCOMP_TEST with the built programs: only the named kind makes the forbidden call. */
static void installed_test_hook(void **state)
{
	(void)state;
	char out[512];
	assert_int_equal(run_child(child_hook, SANDBOX_SESSION, out, sizeof(out)),
			 VMM_EXIT_FAILURE);
	assert_non_null(strstr(out, "thread session made a forbidden system call uname"));
	assert_int_equal(run_child(child_hook, SANDBOX_VCPU, out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

/* ---- start-up cost: compiling with libseccomp and loading vs installing the built program ---- */

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

enum { HOW_RUNTIME, HOW_BUILT, HOW_NAMES };

/* In a fresh child (filters cannot be removed): one install, its time in ns on fd. */
static void child_install(int fd, int kind, int how)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		_exit(3);
	long long t0 = now_ns();
	if (how == HOW_RUNTIME) { /* what sandbox_enter did before: init, rules, load, release */
		scmp_filter_ctx ctx;
		if (sandbox_rules_filter((enum sandbox_kind)kind, &ctx, NULL) < 0)
			_exit(4);
		int r = seccomp_load(ctx);
		seccomp_release(ctx);
		if (r < 0)
			_exit(5);
	} else if (how == HOW_BUILT) { /* what sandbox_enter does now */
		const struct sandbox_filter *f = &sandbox_filters[kind];
		struct sock_fprog prog = {.len = f->len, .filter = (struct sock_filter *)f->insns};
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			_exit(5);
	} else { /* the SIGSYS name table sandbox_drop_privileges built before */
		static char *names[SANDBOX_SYSCALL_NAMES];
		for (int nr = 0; nr < SANDBOX_SYSCALL_NAMES; nr++)
			names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (!names[SYS_read])
			_exit(4);
	}
	long long dt = now_ns() - t0;
	/* filtered now: write and exit_group are on every list */
	if (write(fd, &dt, sizeof(dt)) != sizeof(dt))
		_exit(6);
	_exit(0);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

#define ROUNDS 41

/* Times ROUNDS installs of KIND done HOW; fails when one does not install. Median in *med. */
static void time_installs(int kind, int how, long long *med, long long *min)
{
	long long t[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child_install(p[1], kind, how);
		}
		close(p[1]);
		assert_int_equal(read(p[0], &t[i], sizeof(t[i])), sizeof(t[i]));
		close(p[0]);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	qsort(t, ROUNDS, sizeof(t[0]), cmp_ll);
	*med = t[ROUNDS / 2];
	*min = t[0];
}

static void install_times(void **state)
{
	(void)state;
	for (int k = 0; k < SANDBOX_KINDS; k++) {
		long long rt, rt_min, b, b_min;
		time_installs(k, HOW_RUNTIME, &rt, &rt_min);
		time_installs(k, HOW_BUILT, &b, &b_min);
		printf("# install %-7s (%3u insns): libseccomp compile+load median %7.1f us (min "
		       "%7.1f), built program median %6.1f us (min %6.1f), %d rounds\n",
		       sandbox_filters[k].name, sandbox_filters[k].len, rt / 1e3, rt_min / 1e3,
		       b / 1e3, b_min / 1e3, ROUNDS);
	}
	long long n, n_min;
	time_installs(0, HOW_NAMES, &n, &n_min);
	printf("# SIGSYS name table at run time (now built): median %.1f us (min %.1f)\n", n / 1e3,
	       n_min / 1e3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(evaluator),
	    cmocka_unit_test(built_equals_runtime),
	    cmocka_unit_test(verdicts_table),
	    cmocka_unit_test(verdicts_lists),
	    cmocka_unit_test(device_lists),
	    cmocka_unit_test(installed_forbidden_call),
	    cmocka_unit_test(installed_forbidden_open),
	    cmocka_unit_test(installed_test_hook),
	    cmocka_unit_test(install_times),
	};
	return cmocka_run_group_tests(tests, compile_runtime, free_runtime);
}
