// A TLS echo loop in one Go process, for measuring what the Go crypto/tls probes cost per
// call (crates/cli/benches/tls_probe_overhead.rs): a client and a server goroutine over
// loopback TCP. For every line N read from stdin the client writes --size bytes and reads
// them back N times, then prints the loop's time in nanoseconds on a line of its own. Each
// round trip is two (*tls.Conn).Write and two (*tls.Conn).Read calls. The certificate is
// made in memory at start (ECDSA P-256, self-signed, trusted by the client). It prints
// "ready" once connected.
//
// Build: go build -o OUT/go_tls_loop . (from this directory; stdlib only).
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go_tls_loop: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	size := flag.Int("size", 64, "bytes per write")
	flag.Parse()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail("%v", err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		fail("%v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		fail("%v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	listener, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	})
	if err != nil {
		fail("%v", err)
	}
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			fail("%v", err)
		}
		buf := make([]byte, *size)
		for {
			if _, err := io.ReadFull(conn, buf); err != nil {
				return
			}
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	conn, err := tls.Dial("tcp", listener.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		fail("%v", err)
	}
	if err := conn.Handshake(); err != nil {
		fail("%v", err)
	}
	out := make([]byte, *size)
	in := make([]byte, *size)
	fmt.Println("ready")
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(lines.Text()))
		if err != nil {
			fail("bad count %q", lines.Text())
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := conn.Write(out); err != nil {
				fail("%v", err)
			}
			if _, err := io.ReadFull(conn, in); err != nil {
				fail("%v", err)
			}
		}
		fmt.Println(time.Since(start).Nanoseconds())
	}
	conn.Close()
}
