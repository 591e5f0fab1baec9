/*
 * A TLS client whose TLS stack agentscope cannot recognise: mbedTLS, linked statically and
 * stripped (tests/blind_spots.rs builds it at test time:
 *   gcc -O2 -s mbedtls_client.c -Wl,-Bstatic -lmbedtls -lmbedx509 -lmbedcrypto -Wl,-Bdynamic
 * ), so no SSL_* symbol is exported and no TLS library is loaded. It sends one OpenAI-shaped
 * Chat Completions request to HOST:PORT with HOST as the TLS server name, prints the status
 * line of the answer and exits 0 on HTTP 200.
 *
 * The server's certificate is not verified: the test's server is a local mock whose
 * certificate names localhost, and what is under test is what the collector sees of this
 * process, not mbedTLS's verification.
 *
 * Usage: mbedtls_client HOST PORT
 */
#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

static const char BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"Say hello from a blind spot\"}]}";

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2];
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_net_init(&net);
    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_config_init(&conf);
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    int ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
    if (ret == 0) ret = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_TCP);
    if (ret == 0)
        ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        fprintf(stderr, "setup failed: -0x%x\n", (unsigned)-ret);
        return 1;
    }
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    static const char *alpn[] = {"http/1.1", NULL};
    mbedtls_ssl_conf_alpn_protocols(&conf, alpn);
    if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0 ||
        (ret = mbedtls_ssl_set_hostname(&ssl, host)) != 0) {
        fprintf(stderr, "ssl setup failed: -0x%x\n", (unsigned)-ret);
        return 1;
    }
    mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, NULL);
    while ((ret = mbedtls_ssl_handshake(&ssl)) != 0) {
        if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
            fprintf(stderr, "handshake failed: -0x%x\n", (unsigned)-ret);
            return 1;
        }
    }
    char request[1024];
    int len = snprintf(request, sizeof request,
                       "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
                       "Authorization: Bearer sk-blindspot-test-key-0123456789abcdef\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       host, strlen(BODY), BODY);
    for (int sent = 0; sent < len;) {
        ret = mbedtls_ssl_write(&ssl, (const unsigned char *)request + sent, len - sent);
        if (ret < 0) {
            fprintf(stderr, "write failed: -0x%x\n", (unsigned)-ret);
            return 1;
        }
        sent += ret;
    }
    char response[4096];
    int got = 0;
    while (got < (int)sizeof response - 1) {
        ret = mbedtls_ssl_read(&ssl, (unsigned char *)response + got,
                               sizeof response - 1 - got);
        if (ret <= 0) break;
        got += ret;
    }
    response[got] = 0;
    char *end = strstr(response, "\r\n");
    if (end) *end = 0;
    printf("%s\n", response);
    mbedtls_ssl_close_notify(&ssl);
    mbedtls_net_free(&net);
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return strstr(response, " 200 ") ? 0 : 1;
}
