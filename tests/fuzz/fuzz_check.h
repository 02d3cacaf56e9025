/* The fuzz targets' assertion: a property that does not hold aborts, which libFuzzer reports as
 * a crash with the input that broke it (assert() would vanish under NDEBUG). */
#ifndef VMM_FUZZ_CHECK_H
#define VMM_FUZZ_CHECK_H

#include <stdlib.h>

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

#endif
