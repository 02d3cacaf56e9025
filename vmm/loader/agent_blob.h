/* The guest agent's initramfs, built into vmm (vmm/agent_blob.S includes the cpio that
 * guest/meson.build packs), so a container needs no --initrd. */
#ifndef VMM_AGENT_BLOB_H
#define VMM_AGENT_BLOB_H

#ifdef VMM_HAVE_AGENT
extern const unsigned char vmm_agent_initramfs[];
extern const unsigned char vmm_agent_initramfs_end[];
#endif

#endif
