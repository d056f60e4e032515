/* An LD_PRELOAD shim that fails chosen I/O calls on chosen files only: what libfiu cannot do
 * (its POSIX wrappers fail a call on every file descriptor). test_io_faults.py compiles it with
 * `cc -shared -fPIC` and preloads it into `dbcerts serve`.
 *
 * The file named by IOFAULT_CTL holds the faults in force, one a line, read at every call:
 *     <call> <path suffix> <errno>
 * <call> is fsync, fdatasync, pwrite or write; the call fails with <errno> (and does no I/O)
 * when the path of its file descriptor (/proc/self/fd/N) ends with <path suffix>. An empty or
 * missing file means no faults. Each failure is appended to IOFAULT_LOG as
 * "<call> <path>\n", and each successful fsync or fdatasync of a file named in a fault line as
 * "ok <call> <path>\n", so the test can see what failed and what was synced afterwards. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t raw_write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    return real(fd, buf, n);
}

static void note(const char *what, const char *path) {
    const char *log = getenv("IOFAULT_LOG");
    if (!log) return;
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    char line[4352];
    int n = snprintf(line, sizeof line, "%s %s\n", what, path);
    if (n > 0) raw_write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    close(fd);
}

/* 0: no fault for (call, fd); -1: a fault matched, errno set; 1: no fault, but the file is
 * named in a fault line for `call` (its successful syncs are logged). */
static int fault(const char *call, int fd, char *path, size_t cap) {
    const char *ctl = getenv("IOFAULT_CTL");
    if (!ctl) return 0;
    /* Only regular files: sockets, pipes and eventfds (Tokio's wakers, a signal handler's
     * self-pipe, where nothing below is async-signal-safe) pass straight through. */
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, cap - 1);
    if (len <= 0) return 0;
    path[len] = '\0';
    FILE *f = fopen(ctl, "re");
    if (!f) return 0;
    char c[32], suffix[4096];
    int err, named = 0;
    while (fscanf(f, "%31s %4095s %d", c, suffix, &err) == 3) {
        size_t sl = strlen(suffix);
        if (strcmp(c, call) != 0 || sl > (size_t)len || strcmp(path + len - sl, suffix) != 0) continue;
        named = 1;
        if (err > 0) {
            fclose(f);
            note(call, path);
            errno = err;
            return -1;
        }
    }
    fclose(f);
    return named;
}

typedef int (*sync_fn)(int);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

static int synced(const char *call, sync_fn *real, int fd) {
    if (!*real) *real = (sync_fn)dlsym(RTLD_NEXT, call);
    char path[4096];
    int f = fault(call, fd, path, sizeof path);
    if (f < 0) return -1;
    int r = (*real)(fd);
    if (f > 0 && r == 0) {
        char what[32];
        snprintf(what, sizeof what, "ok %s", call);
        note(what, path);
    }
    return r;
}

int fsync(int fd) {
    static sync_fn real;
    return synced("fsync", &real, fd);
}

int fdatasync(int fd) {
    static sync_fn real;
    return synced("fdatasync", &real, fd);
}

static ssize_t positioned(const char *symbol, pwrite_fn *real, int fd, const void *buf, size_t n, off_t off) {
    if (!*real) *real = (pwrite_fn)dlsym(RTLD_NEXT, symbol);
    char path[4096];
    if (fault("pwrite", fd, path, sizeof path) < 0) return -1;
    return (*real)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    static pwrite_fn real;
    return positioned("pwrite64", &real, fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    static pwrite_fn real;
    return positioned("pwrite", &real, fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n) {
    char path[4096];
    if (fault("write", fd, path, sizeof path) < 0) return -1;
    return raw_write(fd, buf, n);
}
