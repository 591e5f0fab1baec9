// The agent-overhead benchmark's (crates/cli/benches/agent_overhead.rs) HTTPS endpoint and
// its static-TLS agent, Go standard library only:
//
//	https_post serve CERT KEY        an HTTP/1.1 TLS server on 127.0.0.1 that answers every
//	                                 POST with a chat-completion JSON; prints its port
//	https_post client URL CA SIZE    an agent: for every line N on stdin it sends N keep-alive
//	                                 POSTs of a SIZE-byte chat-completion request over
//	                                 crypto/tls (net/http, HTTP/1.1) and prints the time they
//	                                 took in nanoseconds; "ready" once its connection is up
//
// The bench builds it once and runs the server and the client from two copies of the binary
// (two files), so the collector's Go TLS probes on the client's file never trap in the server.
//
// Build: CGO_ENABLED=0 go build -o OUT .  (tests/agents/https_post, offline)
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// An answer the size of a short chat completion.
const answer = `{"id":"chatcmpl-bench","object":"chat.completion","created":1764892800,` +
	`"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",` +
	`"content":"The report is ready: three files changed, all tests pass, nothing else to do."},` +
	`"finish_reason":"stop"}],"usage":{"prompt_tokens":2048,"completion_tokens":19,"total_tokens":2067}}`

func serve(cert, key string) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		fail(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(answer))
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}},
		// HTTP/1.1 only: the clients keep one connection alive.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	fail(server.ServeTLS(listener, "", ""))
}

// A chat-completion request of about size bytes.
func body(size int) []byte {
	head := `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a careful coding agent."},{"role":"user","content":"`
	tail := `"}]}`
	filler := strings.Repeat("Summarise the build log and list the failing tests. ", size/52+1)
	n := size - len(head) - len(tail)
	if n < 0 {
		n = 0
	}
	return []byte(head + filler[:n] + tail)
}

func client(url, ca string, size int) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	httpClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: 1,
	}}
	payload := body(size)
	post := func() {
		response, err := httpClient.Post(url, "application/json", bytes.NewReader(payload))
		if err != nil {
			fail(err)
		}
		_, _ = io.Copy(io.Discard, response.Body)
		response.Body.Close()
		if response.StatusCode != 200 {
			fail(fmt.Errorf("status %d", response.StatusCode))
		}
	}
	post()
	fmt.Println("ready")
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(lines.Text()))
		if err != nil {
			fail(err)
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			post()
		}
		fmt.Println(time.Since(start).Nanoseconds())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "https_post:", err)
	os.Exit(1)
}

func main() {
	switch {
	case len(os.Args) == 4 && os.Args[1] == "serve":
		serve(os.Args[2], os.Args[3])
	case len(os.Args) == 5 && os.Args[1] == "client":
		size, err := strconv.Atoi(os.Args[4])
		if err != nil {
			fail(err)
		}
		client(os.Args[2], os.Args[3], size)
	default:
		fail(fmt.Errorf("usage: https_post serve CERT KEY | client URL CA SIZE"))
	}
}
