/* virtio-rng (entropy device, virtio 1.x section 5.4): the guest's /dev/hwrng, fed from the host's
 * getrandom(). One request queue; every device-writable buffer the guest posts is filled.
 * Counters (dev.stats, devices/virtio.h): requests given back, random bytes given, requests
 * given back short because getrandom() failed. */
#ifndef VMM_VIRTIO_RNG_H
#define VMM_VIRTIO_RNG_H

#include "devices/virtio.h"

/* Most bytes given for one request: a guest cannot make one kick cost the host unbounded work. */
#define VIRTIO_RNG_MAX_REQUEST (64 * 1024)

struct virtio_rng {
	struct virtio_dev dev;
	struct virtq_chain chain; /* scratch for the chain being served (too big for a stack) */
};

/* Sets up the device over guest memory `mem`. */
void virtio_rng_init(struct virtio_rng *r, const struct guest_mem *mem);
void virtio_rng_destroy(struct virtio_rng *r);

#endif
