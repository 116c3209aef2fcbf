/* A library that says where it ran (issue 14 item 1). Its constructor appends one
 * line, "<tag> <network namespace> pid=<pid> comm=<comm>", to <$NETNS_RECORD_DIR>/records
 * (stderr when the variable is unset). sandbox_host_env_test names it in the loader's
 * variables of a workload: a line with the host's network namespace means the
 * tenant's code ran in a host-side process, outside the sandbox.
 *
 * Built several times with a different RECORD_TAG:
 *   - LD_PRELOAD: a plain library;
 *   - LD_AUDIT: the same, with la_version, so the loader accepts it as an audit module;
 *   - LD_LIBRARY_PATH: a stand-in for libcap.so.2 (SONAME libcap.so.2), which bwrap
 *     needs: its one libcap function forwards to the real library;
 *   - GCONV_PATH: a gconv module (gconv, gconv_init) loaded by iconv_open.
 * C, without sanitizers: it is loaded into programs that are not built with them. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef RECORD_TAG
#error "RECORD_TAG must name the variable this build is loaded through"
#endif

__attribute__((constructor)) static void RecordWhereWeRun(void) {
  char netns[128] = "?";
  ssize_t n = readlink("/proc/self/ns/net", netns, sizeof netns - 1);
  if (n > 0) netns[n] = '\0';
  char comm[64] = "?";
  int comm_fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (comm_fd >= 0) {
    ssize_t k = read(comm_fd, comm, sizeof comm - 1);
    close(comm_fd);
    if (k > 0) comm[k] = '\0';
    char* newline = strchr(comm, '\n');
    if (newline) *newline = '\0';
  }
  char line[512];
  int len =
      snprintf(line, sizeof line, "%s %s pid=%d comm=%s\n", RECORD_TAG, netns, (int)getpid(), comm);
  if (len <= 0) return;
  if ((size_t)len >= sizeof line) len = sizeof line - 1;
  const char* dir = getenv("NETNS_RECORD_DIR");
  int fd = 2;
  if (dir != NULL) {
    char path[4096];
    snprintf(path, sizeof path, "%s/records", dir);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) fd = 2;
  }
  /* One write with O_APPEND: lines of concurrent processes never interleave. */
  (void)!write(fd, line, (size_t)len);
  if (fd != 2) close(fd);
}

#ifdef RECORD_AUDIT
/* The loader's audit interface: accept whatever version the loader speaks. */
unsigned int la_version(unsigned int version) {
  return version;
}
#endif

#ifdef RECORD_FAKE_LIBCAP
/* The only libcap function bwrap imports (it is linked with -z now, so every import
 * must resolve). Forwarded to the real libcap, opened by absolute path so that the
 * loader does not hand back this stand-in. */
int cap_from_name(const char* name, int* value) {
  static int (*real)(const char*, int*) = NULL;
  if (real == NULL) {
    static const char* const kPaths[] = {"/lib/x86_64-linux-gnu/libcap.so.2",
                                         "/lib/aarch64-linux-gnu/libcap.so.2", "/lib64/libcap.so.2",
                                         "/usr/lib64/libcap.so.2", "/usr/lib/libcap.so.2"};
    for (size_t i = 0; i < sizeof kPaths / sizeof kPaths[0] && real == NULL; ++i) {
      void* handle = dlopen(kPaths[i], RTLD_NOW | RTLD_LOCAL);
      if (handle != NULL) *(void**)&real = dlsym(handle, "cap_from_name");
    }
    if (real == NULL) return -1;
  }
  return real(name, value);
}
#endif

#ifdef RECORD_GCONV
/* A gconv module that converts nothing: loading it is what is being recorded. */
int gconv_init(void* step) {
  (void)step;
  return 1; /* __GCONV_NOCONV */
}
int gconv(void* step, void* data, const unsigned char** in, const unsigned char* end,
          unsigned char** out, size_t* irreversible, int do_flush, int consume_incomplete) {
  (void)step;
  (void)data;
  (void)in;
  (void)end;
  (void)out;
  (void)irreversible;
  (void)do_flush;
  (void)consume_incomplete;
  return 1; /* __GCONV_NOCONV */
}
#endif
