/* mkfake: writes a synthetic kernel file for the command-line tests.
 * Usage: mkfake elf|elf-big|elf-nonote|bzimage PATH MIB (MiB of memory the kernel claims). */
#include "tests/unit/fake_kernel.h"

#include <fcntl.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: mkfake elf|elf-big|elf-nonote|bzimage PATH MIB\n");
		return 2;
	}
	uint64_t mib = strtoull(argv[3], NULL, 10) << 20;
	int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	ssize_t want, got;
	if (strcmp(argv[1], "bzimage") == 0) {
		static uint8_t b[FAKE_BZ_SIZE];
		fake_bzimage_build(b, (uint32_t)mib);
		want = sizeof(b);
		got = write(fd, b, sizeof(b));
	} else {
		struct fake_elf f;
		want = (ssize_t)fake_elf_build(&f, mib, strcmp(argv[1], "elf-nonote") != 0);
		got = write(fd, &f, (size_t)want);
	}
	close(fd);
	return got == want ? 0 : 1;
}
