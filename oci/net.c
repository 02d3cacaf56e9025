/* vmm-oci's network: the VM on the container's network namespace (net.h). */
#include "oci/net.h"
#include "vmm/config/config.h" /* VMM_MAX_ROUTES */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int oci_net_namespace(json_object *spec, const char **path, struct verr *e)
{
	*path = NULL;
	json_object *lnx, *ns;
	if (!json_object_object_get_ex(spec, "linux", &lnx) ||
	    !json_object_object_get_ex(lnx, "namespaces", &ns))
		return 0;
	if (json_object_get_type(ns) != json_type_array)
		return verr_set(e, -EINVAL, "config.json: linux.namespaces: expected an array");
	for (size_t i = 0; i < json_object_array_length(ns); i++) {
		json_object *n = json_object_array_get_idx(ns, i), *t, *p;
		if (!json_object_object_get_ex(n, "type", &t) ||
		    strcmp(json_object_get_string(t), "network") != 0)
			continue;
		if (!json_object_object_get_ex(n, "path", &p) || !json_object_get_string_len(p))
			return 0;
		if (json_object_get_type(p) != json_type_string)
			return verr_set(
			    e, -EINVAL,
			    "config.json: linux.namespaces[%zu].path: expected a string", i);
		*path = json_object_get_string(p);
		return 1;
	}
	return 0;
}

/* The first of the candidates that exists: iproute2 is at /usr/bin/ip and /usr/sbin/tc on
 * Debian 12 (merged /usr), /sbin or /bin elsewhere. */
static const char *tool(const char *name)
{
	static char buf[2][32];
	static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};
	char *out = buf[strcmp(name, "tc") == 0];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(out, sizeof(buf[0]), "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return out;
	}
	return NULL;
}

/* Runs argv (argv[0] a tool name), its stdout into out (cap bytes, NUL-terminated; NULL:
 * discarded) and its stderr's first line into err. 0, or -EIO with e naming the command. */
static int run(const char *const *argv, char *out, size_t cap, struct verr *e)
{
	const char *path = tool(argv[0]);
	if (!path)
		return verr_set(
		    e, -ENOENT,
		    "network: cannot find iproute2's %s (in /usr/sbin, /usr/bin, /sbin, "
		    "/bin): install iproute2",
		    argv[0]);
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return verr_set(e, -errno, "network: pipe: %s", strerror(errno));
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return verr_set(e, -errno, "network: pipe: %s", strerror(errno));
	}
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
		execve(path, (char *const *)argv, envp);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return verr_set(e, -errno, "network: fork: %s", strerror(errno));
	}
	size_t len = 0;
	char sink[4096];
	for (;;) {
		ssize_t n = out && len + 1 < cap ? read(po[0], out + len, cap - 1 - len)
						 : read(po[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && len + 1 < cap)
			len += (size_t)n;
	}
	if (out)
		out[len] = 0;
	char errbuf[512];
	ssize_t en = read(pe[0], errbuf, sizeof(errbuf) - 1);
	errbuf[en > 0 ? en : 0] = 0;
	char *nl = strchr(errbuf, '\n');
	if (nl)
		*nl = 0;
	close(po[0]);
	close(pe[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	char cmd[256];
	size_t at = 0;
	for (size_t i = 0; argv[i] && at + 1 < sizeof(cmd); i++)
		at += (size_t)snprintf(cmd + at, sizeof(cmd) - at, "%s%s", i ? " " : "", argv[i]);
	return verr_set(e, -EIO, "network: '%s' failed: %s", cmd,
			errbuf[0] ? errbuf : "(no message)");
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_get_type(v) == json_type_string
		   ? json_object_get_string(v)
		   : NULL;
}

/* The first address of family ("inet", "inet6") in an interface's addr_info, as ADDR/N into out:
 * for IPv6 a global one (not the link-local address every interface has) that passed duplicate
 * address detection. */
static void first_addr(json_object *addrs, const char *family, char *out, size_t cap)
{
	out[0] = 0;
	for (size_t k = 0; addrs && k < json_object_array_length(addrs); k++) {
		json_object *a = json_object_array_get_idx(addrs, k), *pl, *v;
		const char *f = member_str(a, "family"), *loc = member_str(a, "local"),
			   *scope = member_str(a, "scope");
		if (!f || strcmp(f, family) != 0 || !loc || strlen(loc) >= INET6_ADDRSTRLEN ||
		    !json_object_object_get_ex(a, "prefixlen", &pl))
			continue;
		if (family[4] == '6' && ((scope && strcmp(scope, "global") != 0) ||
					 json_object_object_get_ex(a, "dadfailed", &v)))
			continue;
		snprintf(out, cap, "%s/%d", loc, json_object_get_int(pl));
		return;
	}
}

int oci_net_pick(const char *text, char name[16], char mac[18], int *mtu, char ip[20],
		 char ip6[OCI_IP6_LEN], struct verr *e)
{
	json_object *links = json_tokener_parse(text);
	if (!links || json_object_get_type(links) != json_type_array) {
		json_object_put(links);
		return verr_set(e, -EINVAL, "network: 'ip -j addr show' printed no JSON array");
	}
	int found = 0;
	for (size_t i = 0; i < json_object_array_length(links) && !found; i++) {
		json_object *l = json_object_array_get_idx(links, i), *v;
		if (!json_object_object_get_ex(l, "ifname", &v))
			continue;
		const char *n = json_object_get_string(v);
		if (strcmp(n, "lo") == 0 || strcmp(n, OCI_TAP_NAME) == 0 || strlen(n) > 15)
			continue;
		if (!json_object_object_get_ex(l, "link_type", &v) ||
		    strcmp(json_object_get_string(v), "ether") != 0)
			continue;
		if (!json_object_object_get_ex(l, "address", &v) ||
		    json_object_get_string_len(v) != 17)
			continue;
		snprintf(name, 16, "%s", n);
		snprintf(mac, 18, "%s", json_object_get_string(v));
		*mtu = json_object_object_get_ex(l, "mtu", &v) ? json_object_get_int(v) : 1500;
		json_object *addrs = NULL;
		json_object_object_get_ex(l, "addr_info", &addrs);
		first_addr(addrs, "inet", ip, 20);
		first_addr(addrs, "inet6", ip6, OCI_IP6_LEN);
		found = 1;
	}
	json_object_put(links);
	return found;
}

int oci_net_routes(const char *text, const char *ifname, bool v6, char gw[INET6_ADDRSTRLEN],
		   json_object *routes, struct verr *e)
{
	gw[0] = 0;
	json_object *all = json_tokener_parse(text);
	if (!all || json_object_get_type(all) != json_type_array) {
		json_object_put(all);
		return verr_set(e, -EINVAL, "network: 'ip -j -%c route show' printed no JSON array",
				v6 ? '6' : '4');
	}
	int r = 0;
	for (size_t i = 0; i < json_object_array_length(all) && r == 0; i++) {
		json_object *rt = json_object_array_get_idx(all, i);
		const char *dst = member_str(rt, "dst"), *via = member_str(rt, "gateway"),
			   *dev = member_str(rt, "dev"), *type = member_str(rt, "type"),
			   *proto = member_str(rt, "protocol");
		/* eth0's unicast routes; the kernel's own (the address's subnet) it makes again */
		json_object *hops;
		if (json_object_object_get_ex(rt, "nexthops", &hops)) {
			r = verr_set(
			    e, -ENOTSUP,
			    "network: the route to %s has several next hops, which the VM's "
			    "eth0 cannot take: give it one gateway",
			    dst ? dst : "?");
			break;
		}
		if (!dst || !dev || strcmp(dev, ifname) != 0 || (type && strcmp(type, "unicast")) ||
		    (proto && strcmp(proto, "kernel") == 0))
			continue;
		if (strcmp(dst, "default") == 0) {
			if (via && !gw[0] && strlen(via) < INET6_ADDRSTRLEN)
				snprintf(gw, INET6_ADDRSTRLEN, "%s", via);
			continue;
		}
		if (json_object_array_length(routes) == VMM_MAX_ROUTES) {
			r = verr_set(e, -E2BIG,
				     "network: %s has more than %u routes besides the default one: "
				     "a VM takes at most %u",
				     ifname, VMM_MAX_ROUTES, VMM_MAX_ROUTES);
			break;
		}
		char net[INET6_ADDRSTRLEN + 8];
		snprintf(net, sizeof(net), "%.*s%s", INET6_ADDRSTRLEN + 3, dst,
			 strchr(dst, '/') ? ""
			 : v6		  ? "/128"
					  : "/32");
		json_object *o = json_object_new_object();
		json_object_object_add(o, "dst", json_object_new_string(net));
		if (via)
			json_object_object_add(o, "via", json_object_new_string(via));
		json_object_array_add(routes, o);
	}
	json_object_put(all);
	return r;
}

int oci_net_setup(const char *path, json_object *vm, struct verr *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return verr_set(e, -errno, "network: cannot open the namespace %s: %s", path,
				strerror(errno));
	if (setns(fd, CLONE_NEWNET) < 0) {
		int err = errno;
		close(fd);
		return verr_set(e, -err, "network: cannot join the namespace %s: %s", path,
				strerror(err));
	}
	close(fd);
	char *out = malloc(1 << 16);
	if (!out)
		return verr_set(e, -ENOMEM, "network: out of memory");
	const char *show[] = {"ip", "-j", "addr", "show", NULL};
	int r = run(show, out, 1 << 16, e);
	char ifname[16], mac[18], ip[20], ip6[OCI_IP6_LEN], gw[INET6_ADDRSTRLEN],
	    gw6[INET6_ADDRSTRLEN], mtu_s[12];
	int mtu = 1500;
	if (r == 0)
		r = oci_net_pick(out, ifname, mac, &mtu, ip, ip6, e);
	if (r <= 0) {
		free(out);
		return r; /* loopback only: no device */
	}
	/* the same buffer for the routes of each family the interface has an address of */
	json_object *routes = json_object_new_array();
	gw[0] = gw6[0] = 0;
	r = 0;
	for (int v6 = 0; v6 < 2 && r == 0; v6++) {
		const char *show_routes[] = {"ip", "-j", v6 ? "-6" : "-4", "route", "show", NULL};
		if (!(v6 ? ip6 : ip)[0])
			continue;
		r = run(show_routes, out, 1 << 16, e);
		if (r == 0)
			r = oci_net_routes(out, ifname, v6, v6 ? gw6 : gw, routes, e);
	}
	free(out);
	if (r < 0) {
		json_object_put(routes);
		return r;
	}
	snprintf(mtu_s, sizeof(mtu_s), "%d", mtu);
	/* an earlier create in this namespace (podman restart) may have left them */
	const char *del_tap[] = {"ip", "link", "del", OCI_TAP_NAME, NULL};
	const char *del_q[] = {"tc", "qdisc", "del", "dev", ifname, "ingress", NULL};
	struct verr ignore = {0};
	run(del_tap, NULL, 0, &ignore);
	run(del_q, NULL, 0, &ignore);
	const char *const steps[][20] = {
	    {"ip", "tuntap", "add", "dev", OCI_TAP_NAME, "mode", "tap", NULL},
	    {"ip", "link", "set", "dev", OCI_TAP_NAME, "mtu", mtu_s, "up", NULL},
	    {"tc", "qdisc", "add", "dev", ifname, "ingress", NULL},
	    {"tc", "filter", "add", "dev", ifname, "parent", "ffff:", "protocol", "all", "u32",
	     "match", "u8", "0", "0", "action", "mirred", NULL},
	    {"tc", "qdisc", "add", "dev", OCI_TAP_NAME, "ingress", NULL},
	    {"tc", "filter", "add", "dev", OCI_TAP_NAME, "parent", "ffff:", "protocol", "all",
	     "u32", "match", "u8", "0", "0", "action", "mirred", NULL},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const char *argv[24];
		size_t k = 0;
		for (; steps[i][k]; k++)
			argv[k] = steps[i][k];
		if (strcmp(argv[k - 1], "mirred") == 0) { /* "egress redirect dev OTHER" */
			argv[k++] = "egress";
			argv[k++] = "redirect";
			argv[k++] = "dev";
			argv[k++] = strcmp(argv[4], ifname) == 0 ? OCI_TAP_NAME : ifname;
		}
		argv[k] = NULL;
		if ((r = run(argv, NULL, 0, e)) < 0)
			return r;
	}
	json_object *devs;
	if (!json_object_object_get_ex(vm, "devices", &devs)) {
		devs = json_object_new_array();
		json_object_object_add(vm, "devices", devs);
	}
	json_object *d = json_object_new_object();
	json_object_object_add(d, "type", json_object_new_string("net"));
	json_object_object_add(d, "tap", json_object_new_string(OCI_TAP_NAME));
	json_object_object_add(d, "mac", json_object_new_string(mac));
	json_object_object_add(d, "mtu", json_object_new_int(mtu));
	json_object_array_add(devs, d);
	if (ip[0])
		json_object_object_add(vm, "ip", json_object_new_string(ip));
	if (gw[0])
		json_object_object_add(vm, "gateway", json_object_new_string(gw));
	if (ip6[0])
		json_object_object_add(vm, "ip6", json_object_new_string(ip6));
	if (gw6[0])
		json_object_object_add(vm, "gateway6", json_object_new_string(gw6));
	if (json_object_array_length(routes))
		json_object_object_add(vm, "routes", routes);
	else
		json_object_put(routes);
	return 0;
}
