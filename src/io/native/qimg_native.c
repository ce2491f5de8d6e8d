/*
 * The few Linux file-system calls Node does not expose and qemu-img relies on:
 * lseek(SEEK_DATA/SEEK_HOLE) to find holes in raw files, fallocate() to
 * preallocate and punch holes, open-file-description locks (qemu-img's image
 * locking protocol), the NOCOW inode flag, and block-device sizes.
 * Each function is a thin synchronous wrapper; errors come back as -errno.
 * inflate.c and copy.c add asynchronous helpers: cluster decompression off the
 * JS thread, and convert's copy of a plain chunk into a raw file.
 * alignedBuffer hands out page-aligned I/O buffers (see its comment).
 * zeroSectorMap, setBatchScheduling and usableCpus serve convert, plainRunEntries
 * qcow2's block status (see their comments).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include "qimg_native.h"

static int64_t arg_i64(napi_env env, napi_value v) {
  int64_t x = 0;
  napi_get_value_int64(env, v, &x);
  return x;
}

static napi_value ret_i64(napi_env env, int64_t x) {
  napi_value r;
  napi_create_int64(env, x, &r);
  return r;
}

/* lseek(fd, offset, whence) -> new offset or -errno */
static napi_value js_lseek(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  off_t r = lseek((int)arg_i64(env, argv[0]), (off_t)arg_i64(env, argv[1]), (int)arg_i64(env, argv[2]));
  return ret_i64(env, r < 0 ? -errno : (int64_t)r);
}

/* fallocate(fd, mode, offset, len) -> 0 or -errno */
static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int r = fallocate((int)arg_i64(env, argv[0]), (int)arg_i64(env, argv[1]),
                    (off_t)arg_i64(env, argv[2]), (off_t)arg_i64(env, argv[3]));
  return ret_i64(env, r < 0 ? -errno : 0);
}

/*
 * ofdLock(fd, type, start, len, test): type 0 = F_RDLCK, 1 = F_WRLCK, 2 = F_UNLCK.
 * With test=0 sets the lock (non-blocking) and returns 0 or -errno; with test=1
 * asks whether it could be set: returns 0 if free, 1 if another holder conflicts.
 */
static napi_value js_ofd_lock(napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  static const short types[3] = { F_RDLCK, F_WRLCK, F_UNLCK };
  int64_t t = arg_i64(env, argv[1]);
  struct flock fl = { 0 };
  fl.l_type = types[t >= 0 && t <= 2 ? t : 2];
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)arg_i64(env, argv[2]);
  fl.l_len = (off_t)arg_i64(env, argv[3]);
  int fd = (int)arg_i64(env, argv[0]);
  if (arg_i64(env, argv[4])) {
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) return ret_i64(env, -errno);
    return ret_i64(env, fl.l_type == F_UNLCK ? 0 : 1);
  }
  return ret_i64(env, fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0);
}

/* setNoCow(fd): set FS_NOCOW_FL (btrfs); returns 0 or -errno */
static napi_value js_set_nocow(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = (int)arg_i64(env, argv[0]);
  int attr = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &attr) < 0) return ret_i64(env, -errno);
  attr |= FS_NOCOW_FL;
  return ret_i64(env, ioctl(fd, FS_IOC_SETFLAGS, &attr) < 0 ? -errno : 0);
}

/* blockDeviceSize(fd) -> bytes or -errno */
static napi_value js_blkdev_size(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint64_t size = 0;
  if (ioctl((int)arg_i64(env, argv[0]), BLKGETSIZE64, &size) < 0) return ret_i64(env, -errno);
  return ret_i64(env, (int64_t)size);
}

/*
 * alignedBuffer(size) -> a Buffer whose memory starts on a page boundary, or
 * null if memory is short. Node's own large Buffers come from malloc, 16 bytes
 * past a page boundary, and the kernel's copy into or out of such memory
 * (pread/pwrite on tmpfs and the page cache) runs about a quarter slower than
 * into aligned memory; qemu aligns its I/O buffers for the same reason.
 */
static void free_aligned(napi_env env, void *data, void *hint) {
  free(data);
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)(intptr_t)hint, &ignored);
}

static napi_value js_aligned_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t size = arg_i64(env, argv[0]);
  napi_value result;
  void *mem = NULL;
  if (size <= 0 || posix_memalign(&mem, 4096, (size_t)size) != 0) {
    napi_get_null(env, &result);
    return result;
  }
  if (napi_create_external_buffer(env, (size_t)size, mem, free_aligned, (void *)(intptr_t)size, &result) != napi_ok) {
    free(mem);
    napi_get_null(env, &result);
    return result;
  }
  /* tell the GC what these buffers hold, so it collects them as it would Node's own */
  int64_t ignored;
  napi_adjust_external_memory(env, size, &ignored);
  return result;
}

/*
 * preadCached(fd, buffer, offset) -> bytes read, or -errno; -EAGAIN when the
 * data is not all in the page cache yet (nothing useful was read, or only
 * part of it). A read that would wait for the disk is refused rather than
 * done: the caller, on the JS thread, then reads on libuv's pool instead.
 * On tmpfs, which has no RWF_NOWAIT but never waits for a disk, it reads;
 * on other file systems without RWF_NOWAIT it returns -EOPNOTSUPP.
 */
static napi_value js_pread_cached(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = (int)arg_i64(env, argv[0]);
  void *data; size_t len;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) return ret_i64(env, -EINVAL);
  off_t off = (off_t)arg_i64(env, argv[2]);
  struct iovec iov = { data, len };
  ssize_t n = preadv2(fd, &iov, 1, off, RWF_NOWAIT);
  if (n < 0 && errno == EOPNOTSUPP) {
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && fs.f_type == 0x01021994 /* TMPFS_MAGIC */) n = pread(fd, data, len, off);
    else errno = EOPNOTSUPP;
  }
  if (n < 0) return ret_i64(env, -errno);
  return ret_i64(env, n);
}

/*
 * setBatchScheduling(): put the calling thread (and the threads it starts
 * later) under SCHED_BATCH, Linux's policy for throughput work: such a
 * thread does not preempt a running one when it wakes up. 0 or -errno.
 */
static napi_value js_set_batch_scheduling(napi_env env, napi_callback_info info) {
  (void)info;
  struct sched_param p = { 0 };
  if (sched_setscheduler(0, SCHED_BATCH, &p) != 0) return ret_i64(env, -errno);
  return ret_i64(env, 0);
}

/* usableCpus(): how many CPUs this thread may run on (its affinity mask), or -errno */
static napi_value js_usable_cpus(napi_env env, napi_callback_info info) {
  (void)info;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return ret_i64(env, -errno);
  return ret_i64(env, CPU_COUNT(&set));
}

/*
 * exitNow(code): end the process at once (_exit). For when Node has nothing
 * left to do but tear itself down (see src/cli/main.ts exitWithoutTeardown).
 */
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t code = 1;
  if (argc >= 1) napi_get_value_int32(env, argv[0], &code);
  _exit(code & 0xff);
}

int qimg_block_is_zero(const uint8_t *p, size_t n) {
  if (p[0] != 0 || p[n - 1] != 0) return 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != 0) return 0;
  }
  for (; i < n; i++) if (p[i] != 0) return 0;
  return 1;
}

/*
 * zeroSectorMap(buf, map): map[i] = 1 when 512-byte sector i of buf is all
 * zeros, else 0; returns how many are. convert looks at every chunk it
 * copies this way (-S): in C it costs next to nothing next to the copy.
 */
static napi_value js_zero_sector_map(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data; size_t len;
  if (argc < 2 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) return ret_i64(env, -EINVAL);
  napi_typedarray_type type; size_t mapLen; void *mapData;
  if (napi_get_typedarray_info(env, argv[1], &type, &mapLen, &mapData, NULL, NULL) != napi_ok || type != napi_uint8_array) return ret_i64(env, -EINVAL);
  size_t sectors = len / 512;
  if (mapLen < sectors) return ret_i64(env, -EINVAL);
  uint8_t *map = mapData;
  int64_t zeros = 0;
  for (size_t i = 0; i < sectors; i++) {
    map[i] = (uint8_t)qimg_block_is_zero((const uint8_t *)data + i * 512, 512);
    zeros += map[i];
  }
  return ret_i64(env, zeros);
}

/*
 * plainRunEntries(table, at, max, next, clusterSize, zeroFlag): how many of
 * the (up to `max`) 8-byte qcow2 L2 entries from byte `at` of `table` map
 * plain clusters one after another in the host file, the first at `next`:
 * not compressed, not reading as zeros (bit 0, when zeroFlag), and each
 * offset (bits 9..55) the one before it plus clusterSize. -EINVAL if the
 * entries run past the table. The qcow2 driver's block status asks this of
 * every run of data clusters; in JavaScript, before V8 optimizes the loop,
 * a 64 KiB table took ~0.6 ms.
 */
static napi_value js_plain_run_entries(napi_env env, napi_callback_info info) {
  size_t argc = 6; napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data; size_t len;
  if (argc < 6 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) return ret_i64(env, -EINVAL);
  int64_t at = arg_i64(env, argv[1]), max = arg_i64(env, argv[2]);
  uint64_t next = (uint64_t)arg_i64(env, argv[3]), cluster = (uint64_t)arg_i64(env, argv[4]);
  int zero_flag = arg_i64(env, argv[5]) != 0;
  if (at < 0 || max < 0 || (uint64_t)at > len || (uint64_t)max > (len - (uint64_t)at) / 8) return ret_i64(env, -EINVAL);
  const uint8_t *p = (const uint8_t *)data + at;
  int64_t i = 0;
  for (; i < max; i++, next += cluster) {
    uint64_t e;
    memcpy(&e, p + i * 8, 8);
    e = __builtin_bswap64(e);
    if ((e & (1ULL << 62)) || (zero_flag && (e & 1)) || (e & 0x00fffffffffffe00ULL) != next) break;
  }
  return ret_i64(env, i);
}

void qimg_queue_job(napi_env env, const char *name, napi_async_execute_callback execute,
                    napi_async_complete_callback complete, void *job, napi_async_work *work) {
  napi_value resource_name;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, execute, complete, job, work);
  napi_queue_async_work(env, *work);
}

void qimg_finish_job(napi_env env, napi_async_work work, napi_ref *refs, size_t nrefs, void *job,
                     size_t argc, const napi_value *argv) {
  napi_value cb, global;
  napi_get_reference_value(env, refs[nrefs - 1], &cb);
  napi_get_global(env, &global);
  for (size_t i = 0; i < nrefs; i++) napi_delete_reference(env, refs[i]);
  napi_delete_async_work(env, work);
  free(job);
  napi_call_function(env, global, cb, argc, argv, NULL);
}

/* ordinary properties, as a JavaScript module's exports are (tests wrap some to count calls) */
static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "lseek", NULL, js_lseek, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "ofdLock", NULL, js_ofd_lock, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "setNoCow", NULL, js_set_nocow, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "blockDeviceSize", NULL, js_blkdev_size, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "inflateRawClusters", NULL, qimg_inflate_raw_clusters, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "copyChunk", NULL, qimg_copy_chunk, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "alignedBuffer", NULL, js_aligned_buffer, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "preadCached", NULL, js_pread_cached, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "setBatchScheduling", NULL, js_set_batch_scheduling, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "usableCpus", NULL, js_usable_cpus, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "zeroSectorMap", NULL, js_zero_sector_map, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "plainRunEntries", NULL, js_plain_run_entries, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "exitNow", NULL, js_exit_now, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
