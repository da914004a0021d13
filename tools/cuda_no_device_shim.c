/* Build check only: tools/cuda_build_check.py preloads this on machines without an NVIDIA driver.
 *
 * Without a driver, cudaGetDeviceCount fails with cudaErrorInsufficientDriver and leaves its
 * argument untouched, so Jittor's static initialisers (which skip all device setup when the count
 * is 0) go on to create CUDA streams and abort the import.  This library answers what a machine with
 * a driver but no GPU answers, "no device" and a count of 0, so that the import goes on to compile
 * the CUDA externs.  Jittor loads its modules with RTLD_DEEPBIND, which a plain LD_PRELOAD cannot
 * interpose; so this library carries libcudart's soname and symbol version (given at build time),
 * Jittor's references to libcudart resolve to it first, and every other CUDA call reaches the real
 * runtime, which the constructor loads globally from $JTP_REAL_CUDART.  Never used by the package. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void load_real_runtime(void) {
    const char *real = getenv("JTP_REAL_CUDART");
    if (real && !dlopen(real, RTLD_NOW | RTLD_GLOBAL))
        fprintf(stderr, "cuda_no_device_shim: %s\n", dlerror());
}

int cudaGetDeviceCount(int *count) {
    *count = 0;
    return 100; /* cudaErrorNoDevice */
}
