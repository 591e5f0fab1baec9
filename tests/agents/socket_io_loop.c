/* A plain-socket round-trip loop for crates/cli/benches/socket_payload_overhead.rs: one
 * process, a loopback TCP connection to itself; each line "N" on stdin opens a fresh
 * connection (so a collector started since sees it connected) and runs N round trips of 1 KiB
 * (the client writes, the server reads it all), then prints the nanoseconds they took. How the
 * bytes are moved is argv[1]:
 *   write    write(1 KiB) / read
 *   writev   writev(8 segments of 128 bytes) / readv(8 segments)
 *   sendmsg  sendmsg(8 segments) / recvmsg(8 segments)
 * Build: gcc -O2 -o socket_io_loop tests/agents/socket_io_loop.c
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LEN 1024
#define SEGMENTS 8

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: socket_io_loop write|writev|sendmsg\n");
        return 2;
    }
    const char *mode = argv[1];
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof addr;
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listener, 4) < 0 || getsockname(listener, (struct sockaddr *)&addr, &addr_len) < 0)
        die("listen");
    static char out[LEN], in[LEN];
    memset(out, 'a', LEN); /* not a TLS record: the socket stays a plain one */
    struct iovec out_iov[SEGMENTS], in_iov[SEGMENTS];
    for (int i = 0; i < SEGMENTS; i++) {
        out_iov[i] = (struct iovec){out + i * (LEN / SEGMENTS), LEN / SEGMENTS};
        in_iov[i] = (struct iovec){in + i * (LEN / SEGMENTS), LEN / SEGMENTS};
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        long n = atol(line);
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (client < 0 || connect(client, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect");
        int one = 1;
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* With an address: the collector does not follow a socket accepted without one. */
        struct sockaddr_in peer;
        socklen_t peer_len = sizeof peer;
        int server = accept(listener, (struct sockaddr *)&peer, &peer_len);
        if (server < 0)
            die("accept");
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (long i = 0; i < n; i++) {
            ssize_t sent;
            if (strcmp(mode, "write") == 0) {
                sent = write(client, out, LEN);
            } else if (strcmp(mode, "writev") == 0) {
                sent = writev(client, out_iov, SEGMENTS);
            } else {
                struct msghdr msg = {.msg_iov = out_iov, .msg_iovlen = SEGMENTS};
                sent = sendmsg(client, &msg, 0);
            }
            if (sent != LEN)
                die("send");
            ssize_t got = 0;
            while (got < LEN) {
                ssize_t r;
                if (strcmp(mode, "write") == 0) {
                    r = read(server, in + got, LEN - got);
                } else if (got == 0 && strcmp(mode, "writev") == 0) {
                    r = readv(server, in_iov, SEGMENTS);
                } else if (got == 0) {
                    struct msghdr msg = {.msg_iov = in_iov, .msg_iovlen = SEGMENTS};
                    r = recvmsg(server, &msg, 0);
                } else {
                    r = read(server, in + got, LEN - got);
                }
                if (r <= 0)
                    die("receive");
                got += r;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &end);
        close(client);
        close(server);
        printf("%ld\n", (end.tv_sec - start.tv_sec) * 1000000000L + (end.tv_nsec - start.tv_nsec));
        fflush(stdout);
    }
    return 0;
}
