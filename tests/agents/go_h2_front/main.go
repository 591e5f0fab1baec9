// An HTTP/2 front for the mock LLM: Go's net/http server over TLS (which negotiates h2 through
// ALPN by default) passing every request to the mock LLM (tests/agents/mock_llm_server.py)
// through httputil.ReverseProxy, which flushes event streams as they come. So a client sees a
// real Go HTTP/2 server (HPACK, flow control, one DATA frame per flushed event) in front of
// every dialect the mock answers. Used by tests/http2_capture.rs and
// scripts/regenerate-fixtures-http2.sh.
//
// Build: go build -o OUT_DIR/go_h2_front . (needs Debian's golang-go; standard library only)
//
// Usage: go_h2_front --upstream https://127.0.0.1:PORT --upstream-ca CA.pem
//
//	--cert CERT.pem --key KEY.pem --port-file FILE
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go_h2_front: error: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	upstream := flag.String("upstream", "", "the mock LLM's base URL")
	upstreamCA := flag.String("upstream-ca", "", "CA certificate (PEM) the upstream's certificate chains to")
	cert := flag.String("cert", "", "server certificate (PEM)")
	key := flag.String("key", "", "server key (PEM)")
	portFile := flag.String("port-file", "", "write the listening port here once serving")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		fail("bad --upstream %q", *upstream)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	if *upstreamCA != "" {
		pem, err := os.ReadFile(*upstreamCA)
		if err != nil {
			fail("reading the upstream CA: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fail("no certificate in %s", *upstreamCA)
		}
		proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		fail("loading the certificate: %v", err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	server := &http.Server{
		Handler:   proxy,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}},
	}
	if *portFile != "" {
		port := listener.Addr().(*net.TCPAddr).Port
		tmp := filepath.Join(filepath.Dir(*portFile), fmt.Sprintf(".%d.tmp", os.Getpid()))
		if err := os.WriteFile(tmp, []byte(fmt.Sprint(port)), 0o644); err != nil {
			fail("%v", err)
		}
		if err := os.Rename(tmp, *portFile); err != nil {
			fail("%v", err)
		}
	}
	fail("serve: %v", server.ServeTLS(listener, "", ""))
}
