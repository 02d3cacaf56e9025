/* vmm-oci's network: the container's network namespace (the one the engine made and wired,
 * podman's /run/netns/netns-UUID with eth0 on its bridge) reached by the VM. As Kata Containers
 * does it: a TAP in that namespace, and tc ingress filters that redirect every frame from the
 * namespace's interface to the TAP and back (mirred), so the guest's eth0 takes over the
 * interface's MAC, address and route, and port forwards and the bridge work unchanged. */
#ifndef VMM_OCI_NET_H
#define VMM_OCI_NET_H

#include "vmm/log.h"

#include <json-c/json.h>
#include <netinet/in.h> /* INET6_ADDRSTRLEN */
#include <stdbool.h>

#define OCI_TAP_NAME "vmmtap0"
#define OCI_IP6_LEN  (INET6_ADDRSTRLEN + 4) /* "ADDR/N" of IPv6 */

/* The network namespace path in spec's linux.namespaces: 1 with *path (borrowed from spec) for
 * a namespace to join, 0 when there is none to join (no network entry: the host's network,
 * which a VM cannot share; an entry without a path: a new empty one), -EINVAL with e set for a
 * malformed entry. */
int oci_net_namespace(json_object *spec, const char **path, struct verr *e);

/* Joins the namespace at path with setns (this process stays in it: vmm, started next, opens
 * the TAP there), finds its interface (the first one with a MAC, not lo and not the TAP),
 * makes the TAP OCI_TAP_NAME (replacing one an earlier create left) with the interface's MTU,
 * and the two tc redirects. Adds to vm: a net device on the TAP with the interface's MAC, and
 * "ip" and "ip6" (its first IPv4 and global IPv6 address), "gateway" and "gateway6" (the
 * default routes') and "routes" (its other routes of those families, oci_net_routes). Runs
 * iproute2's ip and tc, found at their Debian paths (never through PATH). 0, or a negative errno
 * with one line in e naming the step. A namespace with no such interface (loopback only) gets no
 * device: 0. */
int oci_net_setup(const char *path, json_object *vm, struct verr *e);

/* Parses `ip -j addr show` output: the interface to take over (as above) into name/mac/mtu, its
 * first IPv4 address as "A.B.C.D/N" into ip and its first global IPv6 address (not the
 * link-local one, not one that failed duplicate address detection) as "ADDR/N" into ip6 (each
 * "" when none). 1 found, 0 none, -EINVAL for text that is not that JSON. (Split out for the
 * unit test.) */
int oci_net_pick(const char *ip_addr_json, char name[16], char mac[18], int *mtu, char ip[20],
		 char ip6[OCI_IP6_LEN], struct verr *e);

/* Parses `ip -j -4 route show` output (with v6, `ip -j -6 route show`): the routes of interface
 * ifname. The default route's gateway goes into gw ("" when none); each other unicast route not
 * made by the kernel itself (an address's own subnet, IPv6's fe80::/64) is appended to the array
 * routes as {"dst": "NET/PREFIX", "via": GATEWAY} ("via" absent for a route on the link, as
 * Calico's 169.254.1.1). 0; -E2BIG past VMM_MAX_ROUTES in routes (both families together),
 * -EINVAL for text that is not that JSON, with one line in e. (Split out for the unit test.) */
int oci_net_routes(const char *ip_route_json, const char *ifname, bool v6,
		   char gw[INET6_ADDRSTRLEN], json_object *routes, struct verr *e);

#endif
