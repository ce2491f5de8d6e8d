/*
 * convert's copy of one chunk of plainly stored data into a raw file, as one
 * job on libuv's pool: read it, look for all-zero sectors, write it. Done
 * from JavaScript, the read and the write are two hand-offs to the pool with
 * the JS thread in between (taking the read back, scanning, queueing the
 * write); on ext4, where the copy itself is quick, that cost ~15% of the
 * copy phase of a 512 MiB convert. This is the common case only: anything
 * else the job hands back for JavaScript to finish (see the statuses).
 *
 * copyChunk(srcFd, srcOffset, dstFd, dstOffset, buffer, writeLength, scan,
 * callback): reads buffer.length bytes of srcFd from srcOffset into buffer;
 * then, unless `scan` finds an all-zero 512-byte sector in them, writes
 * their first writeLength bytes to dstFd at dstOffset. Calls back on the JS
 * thread with the status:
 *   0  copied;
 *   1  read in full, not written: a sector is all zeros (the caller decides
 *      what becomes a hole);
 *   2  not read in full (an error, or the end of the file): nothing written;
 *   3  read in full, the write failed (part of it may be written).
 * The buffer is held until the callback and must not be touched meanwhile.
 */
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "qimg_native.h"

typedef struct {
  napi_async_work work;
  napi_ref refs[2]; /* buffer, callback */
  int src_fd, dst_fd;
  int64_t src_off, dst_off;
  uint8_t *buf;
  size_t len, write_len;
  int scan;
  int status;
} copy_job;

static int has_zero_sector(const uint8_t *p, size_t len) {
  for (size_t off = 0; off + 512 <= len; off += 512) {
    if (qimg_block_is_zero(p + off, 512)) return 1;
  }
  return 0;
}

static void copy_execute(napi_env env, void *data) {
  (void)env;
  copy_job *job = data;
  size_t done = 0;
  while (done < job->len) {
    ssize_t n = pread(job->src_fd, job->buf + done, job->len - done, job->src_off + (int64_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { job->status = 2; return; }
    done += (size_t)n;
  }
  if (job->scan && has_zero_sector(job->buf, job->len)) { job->status = 1; return; }
  done = 0;
  while (done < job->write_len) {
    ssize_t n = pwrite(job->dst_fd, job->buf + done, job->write_len - done, job->dst_off + (int64_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { job->status = 3; return; }
    done += (size_t)n;
  }
  job->status = 0;
}

static void copy_complete(napi_env env, napi_status status, void *data) {
  copy_job *job = data;
  napi_value arg;
  /* (a job the pool never ran read nothing) */
  napi_create_int32(env, status == napi_ok ? job->status : 2, &arg);
  qimg_finish_job(env, job->work, job->refs, 2, job, 1, &arg);
}

static int64_t int_arg(napi_env env, napi_value v, int *ok) {
  int64_t x = 0;
  if (napi_get_value_int64(env, v, &x) != napi_ok) *ok = 0;
  return x;
}

napi_value qimg_copy_chunk(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const char *usage = "copyChunk(srcFd, srcOffset, dstFd, dstOffset, buffer: Buffer, writeLength, scan, callback)";
  napi_valuetype cb_type = napi_undefined;
  if (argc < 8 || napi_typeof(env, argv[7], &cb_type) != napi_ok || cb_type != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  copy_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  int ok = 1;
  job->src_fd = (int)int_arg(env, argv[0], &ok);
  job->src_off = int_arg(env, argv[1], &ok);
  job->dst_fd = (int)int_arg(env, argv[2], &ok);
  job->dst_off = int_arg(env, argv[3], &ok);
  int64_t write_len = int_arg(env, argv[5], &ok);
  void *buf = NULL;
  if (napi_get_buffer_info(env, argv[4], &buf, &job->len) != napi_ok) ok = 0;
  bool scan = false;
  if (napi_get_value_bool(env, argv[6], &scan) != napi_ok) ok = 0;
  if (!ok || job->src_off < 0 || job->dst_off < 0 || write_len < 0 || (uint64_t)write_len > job->len) {
    free(job);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  job->buf = buf;
  job->write_len = (size_t)write_len;
  job->scan = scan;
  napi_create_reference(env, argv[4], 1, &job->refs[0]);
  napi_create_reference(env, argv[7], 1, &job->refs[1]);
  qimg_queue_job(env, "qimg:copy", copy_execute, copy_complete, job, &job->work);
  return NULL;
}
