// Minimal tool-using "AI agent" in Go: it talks to the mock LLM (OpenAI Chat Completions)
// with net/http over crypto/tls, so agentscope's Go TLS probes see real Go traffic, then
// carries out the model's read_file tool call and sends the result back.
//
// HTTP/1.1 is forced by default (ForceAttemptHTTP2=false and an empty TLSNextProto), so the
// tests can compare the capture with what crossed the *tls.Conn byte for byte. With --http2
// it negotiates HTTP/2 through ALPN, as Go does by default, over one connection shared by
// every conversation (--parallel conversations become interleaved streams); the plaintext is
// not dumped then (net/http takes HTTP/2 only on a bare *tls.Conn). With --stream it asks
// for a streamed answer (Server-Sent Events) and reassembles the tool call from its deltas.
// With --deep-stack it writes and reads in small pieces from nearly exhausted goroutine
// stacks, so some (*tls.Conn).Write calls grow the stack in their prologue (deep_stack.go).
//
// With --dump-dir it writes what it wrote to and read from the *tls.Conn (egress.raw,
// ingress.raw): the ground truth the end-to-end tests compare the capture with. Its stdout is
// one JSON report that depends only on what the model said, so runs with and without the
// collector can be compared.
//
// Build (tests/agents/go_agent/build.sh OUT_DIR builds both variants):
//
//	go build -o OUT_DIR/go_agent .
//	go build -ldflags='-s -w' -o OUT_DIR/go_agent_stripped .
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const model = "gpt-4o-mini"

// recordingConn records the plaintext that crosses the *tls.Conn.
type recordingConn struct {
	*tls.Conn
	mu              sync.Mutex
	egress, ingress *os.File
	// --deep-stack (deep_stack.go).
	deepStack bool
}

func (c *recordingConn) Write(p []byte) (int, error) {
	if c.deepStack {
		return c.writeFromDeepStacks(p)
	}
	n, err := c.Conn.Write(p)
	c.record(c.egress, p[:n])
	return n, err
}

func (c *recordingConn) Read(p []byte) (int, error) {
	if c.deepStack {
		return c.readFromDeepStack(p)
	}
	n, err := c.Conn.Read(p)
	c.record(c.ingress, p[:n])
	return n, err
}

func (c *recordingConn) record(f *os.File, p []byte) {
	if f == nil || len(p) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := f.Write(p); err != nil {
		fail("recording: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go_agent: error: "+format+"\n", args...)
	os.Exit(1)
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type message struct {
	Role       string     `json:"role"`
	Content    *string    `json:"content"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

func text(s string) *string { return &s }

func main() {
	port := flag.Int("port", 0, "mock LLM port")
	host := flag.String("host", "127.0.0.1", "mock LLM address")
	ca := flag.String("ca", "", "CA certificate (PEM) that signed the server's certificate")
	serverName := flag.String("server-name", "localhost", "TLS server name")
	readPath := flag.String("read-path", "/etc/hostname", "file the model is asked to read")
	bigKiB := flag.Int("big-kib", 0, "add a user message of this many KiB")
	dumpDir := flag.String("dump-dir", "", "write egress.raw and ingress.raw here")
	waitFile := flag.String("wait-before-start-file", "", "wait for this file before starting")
	parallel := flag.Int("parallel", 0, "run this many more conversations at the same time")
	useHTTP2 := flag.Bool("http2", false, "negotiate HTTP/2 (ALPN h2), one connection for all conversations")
	stream := flag.Bool("stream", false, "ask for streamed answers (Server-Sent Events)")
	deepStack := flag.Bool("deep-stack", false, "write and read in small pieces from nearly exhausted goroutine stacks")
	flag.Parse()
	apiKey := os.Getenv("AGENTSCOPE_TEST_API_KEY")
	if apiKey == "" {
		apiKey = "sk-agentscope-go-agent-0123456789abcdef"
	}
	if *waitFile != "" {
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := os.Stat(*waitFile); err == nil {
				break
			}
			if time.Now().After(deadline) {
				fail("timed out waiting for %s", *waitFile)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	pem, err := os.ReadFile(*ca)
	if err != nil {
		fail("reading CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("no certificate in %s", *ca)
	}
	s := settings{
		tlsConfig: &tls.Config{RootCAs: roots, ServerName: *serverName, NextProtos: []string{"http/1.1"}},
		url:       fmt.Sprintf("https://%s:%d/v1/chat/completions", *host, *port),
		apiKey:    apiKey,
		readPath:  *readPath,
		bigKiB:    *bigKiB,
		stream:    *stream,
		deepStack: *deepStack,
	}
	if *useHTTP2 {
		h2Config := s.tlsConfig.Clone()
		h2Config.NextProtos = []string{"h2"}
		s.shared = &http.Transport{TLSClientConfig: h2Config, ForceAttemptHTTP2: true}
	}
	// --parallel N: N more conversations at the same time, each on its own connection (own
	// transport), so several goroutines are inside (*tls.Conn).Read at once.
	others := make(chan report, *parallel)
	var wg sync.WaitGroup
	for i := 0; i < *parallel; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dir := ""
			if *dumpDir != "" {
				dir = filepath.Join(*dumpDir, fmt.Sprintf("parallel-%d", i))
			}
			others <- converse(s, dir)
		}(i)
	}
	out := converse(s, *dumpDir)
	wg.Wait()
	close(others)
	for other := range others {
		if other.OK {
			out.ParallelOK++
		}
	}
	if *deepStack {
		out.WriteStackGrowths = writeStackGrowths.Load()
		out.ReadStackGrowths = readStackGrowths.Load()
	}
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
	if !out.OK || out.ParallelOK != *parallel {
		os.Exit(2)
	}
}

type settings struct {
	tlsConfig *tls.Config
	url       string
	apiKey    string
	readPath  string
	bigKiB    int
	stream    bool
	deepStack bool
	// With --http2: the one transport (and connection) every conversation uses.
	shared *http.Transport
}

type report struct {
	OK           bool       `json:"ok"`
	Model        string     `json:"model"`
	ToolCalls    []toolCall `json:"tool_calls"`
	ToolResults  []string   `json:"tool_results"`
	Final        string     `json:"final"`
	RequestBytes []int      `json:"request_bytes"`
	ParallelOK   int        `json:"parallel_ok,omitempty"`
	// With --deep-stack: Writes and Reads during which the goroutine's stack was copied.
	WriteStackGrowths int64 `json:"write_stack_growths,omitempty"`
	ReadStackGrowths  int64 `json:"read_stack_growths,omitempty"`
}

// converse runs one conversation on its own connection: the request with read_file offered,
// the tool call carried out, the result sent back. With dumpDir, the plaintext crossing the
// *tls.Conn goes to dumpDir/egress.raw and dumpDir/ingress.raw.
func converse(s settings, dumpDir string) report {
	var egress, ingress *os.File
	if dumpDir != "" {
		if err := os.MkdirAll(dumpDir, 0o755); err != nil {
			fail("%v", err)
		}
		var err error
		if egress, err = os.Create(filepath.Join(dumpDir, "egress.raw")); err != nil {
			fail("%v", err)
		}
		if ingress, err = os.Create(filepath.Join(dumpDir, "ingress.raw")); err != nil {
			fail("%v", err)
		}
	}
	if s.shared != nil {
		dumpDir = ""
	}
	transport := &http.Transport{
		ForceAttemptHTTP2: false,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, s.tlsConfig)
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return &recordingConn{Conn: conn, egress: egress, ingress: ingress, deepStack: s.deepStack}, nil
		},
	}
	client := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	wantMajor := 1
	if s.shared != nil {
		client.Transport = s.shared
		wantMajor = 2
	}

	tools := []any{map[string]any{
		"type": "function",
		"function": map[string]any{
			"name":        "read_file",
			"description": "Read the first 4 KiB of a file.",
			"parameters": map[string]any{
				"type":       "object",
				"properties": map[string]any{"path": map[string]any{"type": "string"}},
				"required":   []string{"path"},
			},
		},
	}}
	messages := []message{
		{Role: "system", Content: text("You are a Go test agent.")},
		{Role: "user", Content: text("Read the file I care about.")},
	}
	if s.bigKiB > 0 {
		messages = append(messages, message{Role: "user", Content: text(strings.Repeat("0123456789abcdef", s.bigKiB*64))})
	}
	var requestBytes []int
	chat := func() message {
		body, err := json.Marshal(map[string]any{
			"model":    model,
			"messages": messages,
			"tools":    tools,
			"metadata": map[string]string{"read_path": s.readPath},
			"stream":   s.stream,
		})
		if err != nil {
			fail("%v", err)
		}
		requestBytes = append(requestBytes, len(body))
		req, err := http.NewRequest("POST", s.url, bytes.NewReader(body))
		if err != nil {
			fail("%v", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
		resp, err := client.Do(req)
		if err != nil {
			fail("POST: %v", err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			fail("reading response: %v", err)
		}
		if resp.StatusCode != 200 {
			fail("HTTP %d: %.200s", resp.StatusCode, raw)
		}
		if resp.ProtoMajor != wantMajor {
			fail("expected HTTP/%d, got %s", wantMajor, resp.Proto)
		}
		if s.stream {
			return fromEvents(raw)
		}
		var parsed struct {
			Choices []struct {
				Message message `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(raw, &parsed); err != nil || len(parsed.Choices) == 0 {
			fail("bad response: %v %.200s", err, raw)
		}
		return parsed.Choices[0].Message
	}

	out := report{Model: model}
	reply := chat()
	for round := 0; len(reply.ToolCalls) > 0 && round < 4; round++ {
		messages = append(messages, reply)
		for _, call := range reply.ToolCalls {
			out.ToolCalls = append(out.ToolCalls, call)
			result := runTool(call)
			out.ToolResults = append(out.ToolResults, result)
			messages = append(messages, message{Role: "tool", ToolCallID: call.ID, Content: text(result)})
		}
		reply = chat()
	}
	if reply.Content != nil {
		out.Final = *reply.Content
	}
	out.OK = len(out.ToolCalls) > 0 && out.Final != ""
	out.RequestBytes = requestBytes
	transport.CloseIdleConnections()
	return out
}

// fromEvents reassembles a streamed Chat Completions answer: content pieces joined, each tool
// call's name and id from its first delta and its arguments from all of them, by index.
func fromEvents(raw []byte) message {
	out := message{Role: "assistant"}
	var content strings.Builder
	hasContent := false
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if !strings.HasPrefix(line, "data: ") || line == "data: [DONE]" {
			continue
		}
		data := strings.TrimPrefix(line, "data: ")
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content   *string `json:"content"`
					ToolCalls []struct {
						Index    int    `json:"index"`
						ID       string `json:"id"`
						Type     string `json:"type"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			fail("bad event %q: %v", data, err)
		}
		for _, choice := range chunk.Choices {
			if choice.Delta.Content != nil && *choice.Delta.Content != "" {
				content.WriteString(*choice.Delta.Content)
				hasContent = true
			}
			for _, delta := range choice.Delta.ToolCalls {
				for len(out.ToolCalls) <= delta.Index {
					out.ToolCalls = append(out.ToolCalls, toolCall{})
				}
				call := &out.ToolCalls[delta.Index]
				if delta.ID != "" {
					call.ID = delta.ID
					call.Type = delta.Type
					call.Function.Name = delta.Function.Name
				}
				call.Function.Arguments += delta.Function.Arguments
			}
		}
	}
	if hasContent {
		out.Content = text(content.String())
	}
	return out
}

// runTool carries out a tool call; failures become tool results, as in a real agent.
func runTool(call toolCall) string {
	if call.Function.Name != "read_file" {
		return "error: unknown tool " + call.Function.Name
	}
	var args struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil {
		return "error: " + err.Error()
	}
	f, err := os.Open(args.Path)
	if err != nil {
		return "error: " + err.Error()
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(f, buf)
	return string(buf[:n])
}
