/* vmm: boot a Linux kernel in a KVM micro-VM. Parses options, builds the VM in order, runs it,
 * and exits with the guest's status. */
#include "vmm/log.h"
#include "vmm/options.h"
#include "vmm/vm.h"

#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	struct timespec t_start;
	clock_gettime(CLOCK_MONOTONIC, &t_start);

	struct vmm_options o;
	int r = options_parse(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : VMM_EXIT_FAILURE;
	vmm_verbose = o.verbose;

	static struct vm vm;
	struct verr e = {0};
	r = vm_create(&vm, &o, &t_start, &e);
	if (r < 0) {
		vmm_log("%s", e.msg);
		vm_destroy(&vm);
		return VMM_EXIT_FAILURE;
	}
	int status = vm_run(&vm);
	vm_destroy(&vm);
	return status;
}
