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

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-dev/gatehouse/e2e/devidp"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	defaults := config{
		listen:       "127.0.0.1:8060",
		clientID:     "gatehouse-dev",
		clientSecret: "dev-secret",
		users:        defaultUsers(),
	}
	// The documented default, spelled as JSON, must decode to defaultUsers.
	const defaultUsersJSON = `[
		{"email":"admin@demo.gatehouse.dev","name":"Demo Admin","email_verified":true,"groups":["gatehouse-admins"],"subject":"demo-admin"},
		{"email":"dev@demo.gatehouse.dev","name":"Demo Developer","email_verified":true,"groups":["platform-developers"],"subject":"demo-dev"}
	]`
	one := []devidp.User{{Email: "qa@example.test", Groups: []string{"qa"}}}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		{name: "defaults", want: defaults},
		{name: "default users as JSON", env: map[string]string{"DEV_IDP_USERS": defaultUsersJSON}, want: defaults},
		{
			name: "env",
			env: map[string]string{
				"DEV_IDP_ADDR": ":9000", "DEV_IDP_CLIENT_ID": "cp", "DEV_IDP_CLIENT_SECRET": "env-secret",
				"DEV_IDP_USERS": `[{"email":"qa@example.test","groups":["qa"]}]`,
			},
			want: config{listen: ":9000", clientID: "cp", clientSecret: "env-secret", users: one},
		},
		{
			name: "flags win over env",
			args: []string{
				"--listen", "127.0.0.1:0", "--issuer=http://idp.localhost:8060", "--client-id", "flag-id",
				"--client-secret=flag-secret", "--redirect-uri", "http://127.0.0.1:8080/cb", "--redirect-uri=http://localhost:8080/cb",
				"--users", `[{"email":"qa@example.test","groups":["qa"]}]`, "--auto-approve",
			},
			env: map[string]string{"DEV_IDP_ADDR": ":9000", "DEV_IDP_CLIENT_ID": "cp", "DEV_IDP_USERS": defaultUsersJSON},
			want: config{
				listen: "127.0.0.1:0", issuer: "http://idp.localhost:8060", clientID: "flag-id", clientSecret: "flag-secret",
				redirectURIs: []string{"http://127.0.0.1:8080/cb", "http://localhost:8080/cb"}, users: one, autoApprove: true,
			},
		},
		{name: "empty secret", args: []string{"--client-secret="}, wantErr: true},
		{name: "users not JSON", args: []string{"--users", "admin@demo"}, wantErr: true},
		{name: "users unknown key", args: []string{"--users", `[{"email":"a@b","grups":["x"]}]`}, wantErr: true},
		{name: "users empty", args: []string{"--users", `[]`}, wantErr: true},
		{name: "users trailing data", args: []string{"--users", `[{"email":"a@b"}] [{}]`}, wantErr: true},
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
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReachableAddr(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"0.0.0.0:8060":   "127.0.0.1:8060",
		"[::]:8060":      "127.0.0.1:8060",
		"127.0.0.1:8060": "127.0.0.1:8060",
		"[::1]:8060":     "[::1]:8060",
	}
	for in, want := range tests {
		if got := reachableAddr(in); got != want {
			t.Errorf("reachableAddr(%q) = %q, want %q", in, got, want)
		}
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
	cfg := config{listen: "127.0.0.1:0", clientID: "c", clientSecret: "s", users: defaultUsers()}
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, logger) }()

	var line struct {
		Msg    string `json:"msg"`
		Addr   string `json:"addr"`
		Issuer string `json:"issuer"`
	}
	eventually(t, 10*time.Second, func() error {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "dev idp listening" {
				return nil
			}
		}
		return errors.New("no listening line yet")
	})
	if strings.HasSuffix(line.Addr, ":0") || line.Issuer != "http://"+line.Addr {
		t.Fatalf("logged addr %q issuer %q, want the chosen port and http://<addr>", line.Addr, line.Issuer)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, line.Issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || doc.Issuer != line.Issuer {
		t.Fatalf("discovery: %d issuer %q err %v, want issuer %q", resp.StatusCode, doc.Issuer, err, line.Issuer)
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
