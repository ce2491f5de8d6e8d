/* What the addon's C files share (qimg_native.c defines it). */
#ifndef QIMG_NATIVE_H
#define QIMG_NATIVE_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* whether p[0..n) is all zeros (n >= 1) */
int qimg_block_is_zero(const uint8_t *p, size_t n);

/*
 * Jobs on libuv's pool (napi async work), whose JavaScript caller hands in a
 * callback: qimg_queue_job queues `job` under `name`; its `complete` ends it
 * with qimg_finish_job, which drops the job's `nrefs` references (the last
 * one is the callback), frees `job` and then calls the callback with argv.
 */
void qimg_queue_job(napi_env env, const char *name, napi_async_execute_callback execute,
                    napi_async_complete_callback complete, void *job, napi_async_work *work);
void qimg_finish_job(napi_env env, napi_async_work work, napi_ref *refs, size_t nrefs, void *job,
                     size_t argc, const napi_value *argv);

/* inflate.c, copy.c */
napi_value qimg_inflate_raw_clusters(napi_env env, napi_callback_info info);
napi_value qimg_copy_chunk(napi_env env, napi_callback_info info);

#endif
