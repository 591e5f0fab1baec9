/*
 * A TLS echo loop in one process over OpenSSL 3 linked in statically (Debian's libssl.a and
 * libcrypto.a) and stripped, so nothing of OpenSSL is exported: the collector must locate
 * ssl_write_internal/ssl_read_internal in it, as in Codex CLI. The counterpart of
 * openssl_tls_loop.py (the exported libssl) for crates/cli/benches/tls_probe_overhead.rs:
 * a client and a server thread over loopback TCP. For every line N read from stdin the
 * client writes 64 bytes and reads them back N times (two SSL writes and two SSL reads per
 * round trip), then prints the loop's time in nanoseconds on a line of its own. The server's
 * certificate and key are argv[1] and argv[2]. It prints "ready" once connected.
 *
 * Build: gcc -O2 -s -static -pthread -o openssl_static_loop openssl_static_loop.c -lssl -lcrypto
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIZE 64

static SSL_CTX *server_ctx;
static int listener;

static void die(const char *what)
{
    fprintf(stderr, "openssl_static_loop: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static int read_full(SSL *ssl, char *buf, int len)
{
    int got = 0;
    while (got < len) {
        int n = SSL_read(ssl, buf + got, len - got);
        if (n <= 0)
            return -1;
        got += n;
    }
    return 0;
}

/* Round trips of 64 bytes: no Nagle delay. */
static void no_delay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void *serve(void *unused)
{
    (void)unused;
    int fd = accept(listener, NULL, NULL);
    if (fd < 0)
        die("accept");
    no_delay(fd);
    SSL *ssl = SSL_new(server_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1)
        die("SSL_accept");
    char buf[SIZE];
    while (read_full(ssl, buf, SIZE) == 0) {
        if (SSL_write(ssl, buf, SIZE) != SIZE)
            break;
    }
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        die("usage: openssl_static_loop CERT KEY");
    /* The version text is what tells the locator the write function's signature. */
    fprintf(stderr, "%s\n", OpenSSL_version(OPENSSL_VERSION));
    server_ctx = SSL_CTX_new(TLS_server_method());
    if (!server_ctx || SSL_CTX_use_certificate_chain_file(server_ctx, argv[1]) != 1
        || SSL_CTX_use_PrivateKey_file(server_ctx, argv[2], SSL_FILETYPE_PEM) != 1)
        die("server context");
    listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 1)
        || getsockname(listener, (struct sockaddr *)&addr, &len))
        die("listen");
    pthread_t server;
    pthread_create(&server, NULL, serve, NULL);

    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr))
        die("connect");
    no_delay(fd);
    SSL *ssl = SSL_new(client_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        die("SSL_connect");
    printf("ready\n");
    fflush(stdout);

    char out[SIZE], in[SIZE];
    memset(out, 'x', SIZE);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        long long n = atoll(line);
        long long start = now_ns();
        for (long long i = 0; i < n; i++) {
            if (SSL_write(ssl, out, SIZE) != SIZE || read_full(ssl, in, SIZE) != 0)
                die("round trip");
        }
        printf("%lld\n", now_ns() - start);
        fflush(stdout);
    }
    SSL_shutdown(ssl);
    return 0;
}
