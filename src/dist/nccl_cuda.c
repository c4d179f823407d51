/*
 * nccl_cuda.c: the CUDA side of NCCL's communicator (dist.h's
 * ot_dist_queue on the CUDA runtime): the reductions' stream, the events
 * that order it after the executor's stream and back, and the device memory
 * of the communicator's buffers. The executor's stream is the one its
 * kernels run on (ot_cuda_ctx.stream), which they hand to the ot_comm_dev_*
 * calls.
 */
#include <stdio.h>

#include <cuda_runtime_api.h>

#include "dist/dist.h"

static ot_status cu_fail(cudaError_t e, const char *what, ot_err *err)
{
    return ot_err_set(err, OT_ERR_BACKEND, "CUDA: %s: %s", what, cudaGetErrorString(e));
}

static int cq_count(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

static ot_status cq_set_device(int device, ot_err *err)
{
    cudaError_t e = cudaSetDevice(device);
    return e == cudaSuccess ? OT_OK : cu_fail(e, "selecting the device", err);
}

static ot_status cq_device_id(int device, char *buf, size_t size, ot_err *err)
{
    char id[64] = "";
    cudaError_t e = cudaDeviceGetPCIBusId(id, (int)sizeof id, device);
    if (e != cudaSuccess)
        return cu_fail(e, "the device's PCI bus id", err);
    snprintf(buf, size, "%s", id);
    return OT_OK;
}

static ot_status cq_stream_new(void **s, ot_err *err)
{
    cudaStream_t st = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return cu_fail(e, "creating the reductions' stream", err);
    *s = st;
    return OT_OK;
}

static void cq_stream_free(void *s)
{
    if (s)
        cudaStreamDestroy((cudaStream_t)s);
}

static ot_status cq_event_new(void **ev, ot_err *err)
{
    cudaEvent_t e0 = NULL;
    cudaError_t e = cudaEventCreateWithFlags(&e0, cudaEventDisableTiming);
    if (e != cudaSuccess)
        return cu_fail(e, "creating an event", err);
    *ev = e0;
    return OT_OK;
}

static void cq_event_free(void *ev)
{
    if (ev)
        cudaEventDestroy((cudaEvent_t)ev);
}

static ot_status cq_record(void *ev, void *s, ot_err *err)
{
    cudaError_t e = cudaEventRecord((cudaEvent_t)ev, (cudaStream_t)s);
    return e == cudaSuccess ? OT_OK : cu_fail(e, "recording an event", err);
}

static ot_status cq_wait(void *s, void *ev, ot_err *err)
{
    cudaError_t e = cudaStreamWaitEvent((cudaStream_t)s, (cudaEvent_t)ev, 0);
    return e == cudaSuccess ? OT_OK : cu_fail(e, "waiting for an event", err);
}

static bool cq_done(void *ev)
{
    return cudaEventQuery((cudaEvent_t)ev) != cudaErrorNotReady;
}

static ot_status cq_alloc(size_t bytes, void **p, ot_err *err)
{
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess)
        return cu_fail(e, "device memory for the all-reduce buffers", err);
    e = cudaMemset(*p, 0, bytes);
    return e == cudaSuccess ? OT_OK : cu_fail(e, "clearing the all-reduce buffers", err);
}

static void cq_free(void *p)
{
    if (p)
        cudaFree(p);
}

static const ot_dist_queue cuda_queue = {
    .name = "cuda",
    .host = false,
    .device_count = cq_count,
    .set_device = cq_set_device,
    .device_id = cq_device_id,
    .stream_new = cq_stream_new,
    .stream_free = cq_stream_free,
    .event_new = cq_event_new,
    .event_free = cq_event_free,
    .record = cq_record,
    .wait = cq_wait,
    .done = cq_done,
    .mem_alloc = cq_alloc,
    .mem_free = cq_free,
};

const ot_dist_queue *ot_dist_cuda_queue(void)
{
    return &cuda_queue;
}
