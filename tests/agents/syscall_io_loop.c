/* A read/write loop for crates/cli/benches/node_io_overhead.rs: what every process on a node
 * pays per `read` and `write` while a collector's syscall hooks are attached, whether or not
 * the collector follows it. Each line "N" on stdin runs N calls and prints the nanoseconds
 * they took (CLOCK_MONOTONIC). What is called is argv[1]:
 *   read    read(2) of 64 bytes from /dev/zero
 *   write   write(2) of 64 bytes to /dev/null
 * Neither file is a socket, a pipe the collector tracks or collector output: the calls are
 * the ones the collector leaves alone, as most calls on a node are.
 * Build: gcc -O2 -o syscall_io_loop tests/agents/syscall_io_loop.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEN 64

static void die(const char *what) {
    perror(what);
    exit(1);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "read") != 0 && strcmp(argv[1], "write") != 0)) {
        fprintf(stderr, "usage: syscall_io_loop read|write\n");
        return 2;
    }
    int reading = strcmp(argv[1], "read") == 0;
    int fd = reading ? open("/dev/zero", O_RDONLY) : open("/dev/null", O_WRONLY);
    if (fd < 0)
        die("open");
    static char buf[LEN];
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        long long n = atoll(line);
        long long start = now_ns();
        for (long long i = 0; i < n; i++) {
            ssize_t done = reading ? read(fd, buf, LEN) : write(fd, buf, LEN);
            if (done != LEN)
                die(reading ? "read" : "write");
        }
        printf("%lld\n", now_ns() - start);
        fflush(stdout);
    }
    return 0;
}
