package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		{name: "defaults", want: config{listen: "127.0.0.1:8070"}},
		{
			name: "env",
			env:  map[string]string{"DEMO_UPSTREAM_ADDR": ":9000", "DEMO_UPSTREAM_API_KEY": "sk-env"},
			want: config{listen: ":9000", apiKey: "sk-env"},
		},
		{
			name: "flags win over env",
			args: []string{"--listen", "127.0.0.1:0", "--api-key=sk-flag", "--token-delay", "20ms", "--first-token-delay=150ms"},
			env:  map[string]string{"DEMO_UPSTREAM_ADDR": ":9000", "DEMO_UPSTREAM_API_KEY": "sk-env"},
			want: config{listen: "127.0.0.1:0", apiKey: "sk-flag", tokenDelay: 20 * time.Millisecond, firstTokenDelay: 150 * time.Millisecond},
		},
		{name: "bad duration", args: []string{"--token-delay", "fast"}, wantErr: true},
		{name: "negative delay", args: []string{"--first-token-delay", "-1s"}, wantErr: true},
		{name: "unknown flag", args: []string{"--port", "1"}, wantErr: true},
		{name: "stray argument", args: []string{"serve"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// syncBuffer is a log sink that the test reads while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, config{listen: "127.0.0.1:0", apiKey: "sk-test"}, logger) }()

	var addr string
	eventually(t, 5*time.Second, func() error {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "demo upstream listening" {
				addr = line.Addr
				return nil
			}
		}
		return errors.New("no listening line yet")
	})
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("logged address %q, want the port actually chosen", addr)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "demo-chat") {
		t.Fatalf("GET /v1/models = %d %s", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
