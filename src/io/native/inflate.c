/*
 * Raw-deflate decompression of qcow2 clusters on libuv's thread pool.
 * Node's async zlib builds a stream object per call, which costs more than
 * inflating 64 KiB; done synchronously the inflate holds the JS thread. This
 * runs zlib's inflate() (the copy inside Node, whose symbols Node exports to
 * addons) as napi async work, for a batch of clusters per call: a sequential
 * reader's hand-offs to the pool and back, not the inflating, were most of
 * the cost when each cluster went on its own.
 *
 * inflateRawClusters(input, spans, outputs, statuses, callback): for each i,
 * fills outputs[i] with the start of the stream at input[spans[2i] ..
 * spans[2i] + spans[2i+1]), and sets statuses[i] to 0 when outputs[i] was
 * filled (the stream may go on past it: only the first cluster's worth
 * counts), 1 when the stream ended or broke before that. Then calls
 * callback() on the JS thread. Every buffer is held until the callback;
 * none may be touched meanwhile.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "qimg_native.h"

typedef struct {
  unsigned char *out;
  size_t out_len;
  uint32_t in_off, in_len;
} inflate_item;

typedef struct {
  napi_async_work work;
  napi_ref refs[5]; /* input, spans, outputs, statuses, callback */
  unsigned char *in;
  size_t in_len;
  uint8_t *statuses;
  uint32_t count;
  inflate_item items[];
} inflate_job;

static int inflate_one(const unsigned char *in, size_t in_len, unsigned char *out, size_t out_len) {
  if (in_len > 0xffffffffu || out_len > 0xffffffffu) return 1;
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -15) != Z_OK) return 1; /* raw deflate, 32 KiB window */
  s.next_in = (unsigned char *)in;
  s.avail_in = (uInt)in_len;
  s.next_out = out;
  s.avail_out = (uInt)out_len;
  int r = inflate(&s, Z_FINISH);
  inflateEnd(&s);
  /* full output is success whether the stream ended there (Z_STREAM_END) or goes on (Z_BUF_ERROR/Z_OK) */
  return s.avail_out == 0 && (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK) ? 0 : 1;
}

static void inflate_execute(napi_env env, void *data) {
  (void)env;
  inflate_job *job = data;
  for (uint32_t i = 0; i < job->count; i++) {
    inflate_item *it = &job->items[i];
    job->statuses[i] = inflate_one(job->in + it->in_off, it->in_len, it->out, it->out_len);
  }
}

static void inflate_complete(napi_env env, napi_status status, void *data) {
  inflate_job *job = data;
  if (status != napi_ok) memset(job->statuses, 1, job->count);
  qimg_finish_job(env, job->work, job->refs, 5, job, 0, NULL);
}

static napi_value fail(napi_env env, inflate_job *job, const char *msg) {
  free(job);
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

napi_value qimg_inflate_raw_clusters(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "inflateRawClusters(input: Buffer, spans: Uint32Array, outputs: Buffer[], statuses: Uint8Array, callback)";
  if (argc < 5) return fail(env, NULL, usage);
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[2], &count) != napi_ok || count == 0 || count > 4096) return fail(env, NULL, usage);
  inflate_job *job = calloc(1, sizeof *job + count * sizeof(inflate_item));
  if (!job) return fail(env, NULL, "out of memory");
  job->count = count;
  void *in;
  if (napi_get_buffer_info(env, argv[0], &in, &job->in_len) != napi_ok) return fail(env, job, usage);
  job->in = in;
  napi_typedarray_type type;
  size_t n;
  void *spans, *statuses;
  if (napi_get_typedarray_info(env, argv[1], &type, &n, &spans, NULL, NULL) != napi_ok || type != napi_uint32_array || n < 2 * (size_t)count) return fail(env, job, usage);
  if (napi_get_typedarray_info(env, argv[3], &type, &n, &statuses, NULL, NULL) != napi_ok || type != napi_uint8_array || n < count) return fail(env, job, usage);
  job->statuses = statuses;
  for (uint32_t i = 0; i < count; i++) {
    inflate_item *it = &job->items[i];
    napi_value out;
    void *p;
    if (napi_get_element(env, argv[2], i, &out) != napi_ok || napi_get_buffer_info(env, out, &p, &it->out_len) != napi_ok) return fail(env, job, usage);
    it->out = p;
    it->in_off = ((uint32_t *)spans)[2 * i];
    it->in_len = ((uint32_t *)spans)[2 * i + 1];
    if ((size_t)it->in_off + it->in_len > job->in_len) return fail(env, job, "inflateRawClusters: a span lies outside the input");
  }
  for (int i = 0; i < 5; i++) napi_create_reference(env, argv[i], 1, &job->refs[i]);
  qimg_queue_job(env, "qimg:inflate", inflate_execute, inflate_complete, job, &job->work);
  return NULL;
}
