/*
 * cuda_backend.h: what the rest of onnxtrain sees of the CUDA backend (no
 * CUDA header needed): the backend, whether a device is usable, what was
 * found, and the count of device allocations.
 */
#ifndef OT_EXEC_CUDA_BACKEND_H
#define OT_EXEC_CUDA_BACKEND_H

#include "exec/exec_impl.h"

extern const ot_backend ot_backend_cuda;

/* Whether CUDA device `index` is usable here: both libraries load and are
   recent enough, the driver is there and new enough for the runtime, and the
   device exists. Errors: OT_ERR_UNSUPPORTED, one line saying why. */
ot_status ot_cuda_probe(int index, ot_err *err);

/* The CUDA devices this process sees (CUDA_VISIBLE_DEVICES applied); 0
   without a driver or a device. */
int ot_cuda_device_count(void);

/* "cuDNN 9.19.0, cuBLASLt 13.1.0, driver 13.0, 1 device (NVIDIA H100 ...)":
   what ot_cuda_probe found (for --version), after a successful probe. */
void ot_cuda_describe(char *buf, size_t size);

/* cudaMalloc calls this process has made (tests: nothing per step). */
uint64_t ot_cuda_malloc_count(void);

/* cudaHostAlloc calls (pinned staging of the inputs) this process has made. */
uint64_t ot_cuda_host_alloc_count(void);

#endif
