/*
 * Raw-deflate decompression of one qcow2 cluster on libuv's thread pool.
 * Node's async zlib builds a stream object per call, which costs more than
 * inflating 64 KiB; done synchronously the inflate holds the JS thread. This
 * runs zlib's inflate() (the copy inside Node, whose symbols Node exports to
 * addons) as napi async work: about as cheap as a function call to start,
 * and on both cores.
 *
 * inflateRawCluster(input, output, callback): fills `output` with the start of
 * the stream in `input`, then calls callback(status) on the JS thread:
 * 0 when `output` was filled (the stream may go on past it: only the first
 * cluster's worth counts), 1 when the stream ended or broke before that.
 * Both buffers are held until the callback; neither may be touched meanwhile.
 */
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
  napi_async_work work;
  napi_ref input_ref, output_ref, callback_ref;
  unsigned char *in, *out;
  size_t in_len, out_len;
  int status;
} inflate_job;

static void inflate_execute(napi_env env, void *data) {
  (void)env;
  inflate_job *job = data;
  z_stream s;
  memset(&s, 0, sizeof s);
  job->status = 1;
  if (job->in_len > 0xffffffffu || job->out_len > 0xffffffffu) return;
  if (inflateInit2(&s, -15) != Z_OK) return; /* raw deflate, 32 KiB window */
  s.next_in = job->in;
  s.avail_in = (uInt)job->in_len;
  s.next_out = job->out;
  s.avail_out = (uInt)job->out_len;
  int r = inflate(&s, Z_FINISH);
  /* full output is success whether the stream ended there (Z_STREAM_END) or goes on (Z_BUF_ERROR/Z_OK) */
  if (s.avail_out == 0 && (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK)) job->status = 0;
  inflateEnd(&s);
}

static void inflate_complete(napi_env env, napi_status status, void *data) {
  inflate_job *job = data;
  napi_value cb, global, arg;
  napi_get_reference_value(env, job->callback_ref, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, status == napi_ok ? job->status : 1, &arg);
  napi_delete_reference(env, job->input_ref);
  napi_delete_reference(env, job->output_ref);
  napi_delete_reference(env, job->callback_ref);
  napi_delete_async_work(env, job->work);
  free(job);
  napi_call_function(env, global, cb, 1, &arg, NULL);
}

napi_value qimg_inflate_raw_cluster(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "inflateRawCluster(input, output, callback)");
    return NULL;
  }
  inflate_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  void *in, *out;
  if (napi_get_buffer_info(env, argv[0], &in, &job->in_len) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &out, &job->out_len) != napi_ok) {
    free(job);
    napi_throw_type_error(env, NULL, "inflateRawCluster: input and output must be Buffers");
    return NULL;
  }
  job->in = in;
  job->out = out;
  napi_create_reference(env, argv[0], 1, &job->input_ref);
  napi_create_reference(env, argv[1], 1, &job->output_ref);
  napi_create_reference(env, argv[2], 1, &job->callback_ref);
  napi_value name;
  napi_create_string_utf8(env, "qimg:inflate", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, inflate_execute, inflate_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return NULL;
}
