package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

const testKeys = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{
			name: "defaults",
			env:  map[string]string{"GATEHOUSE_CONFIG_KEYS": testKeys},
			check: func(t *testing.T, c config) {
				a := c.app
				if a.Region != "local" || a.Listen != "127.0.0.1:8090" || a.NATSURL != "nats://127.0.0.1:4222" ||
					a.MaxBodyBytes != 4<<20 || a.UpstreamTimeout != 10*time.Minute || a.SpoolDir == "" || a.GatewayID == "" ||
					a.ConfigCacheDir != "" || a.ConfigCacheGrace != 5*time.Second {
					t.Errorf("defaults = %+v", a)
				}
				if strings.ContainsAny(a.GatewayID, ".*> ") {
					t.Errorf("gateway id %q is not a subject token", a.GatewayID)
				}
			},
		},
		{
			name: "env",
			env: map[string]string{
				"GATEHOUSE_CONFIG_KEYS": testKeys, "GATEHOUSE_REGION": "eu-1", "GATEHOUSE_GATEWAY_ADDR": ":9",
				"NATS_URL": "nats://n:1", "GATEHOUSE_GATEWAY_ID": "gw-7", "GATEHOUSE_MAX_BODY_BYTES": "10",
				"GATEHOUSE_SPOOL_DIR": "/s", "GATEHOUSE_CONFIG_CACHE_DIR": "/c", "GATEHOUSE_CONFIG_CACHE_GRACE": "2s",
			},
			check: func(t *testing.T, c config) {
				a := c.app
				if a.Region != "eu-1" || a.Listen != ":9" || a.NATSURL != "nats://n:1" || a.GatewayID != "gw-7" || a.MaxBodyBytes != 10 || a.SpoolDir != "/s" ||
					a.ConfigCacheDir != "/c" || a.ConfigCacheGrace != 2*time.Second {
					t.Errorf("config = %+v", a)
				}
			},
		},
		{
			name: "flags beat env",
			args: []string{"--region", "us-2", "--upstream-timeout", "30s", "--config-keys", testKeys, "--cache-dir", "/f", "--cache-grace", "1m"},
			env:  map[string]string{"GATEHOUSE_REGION": "eu-1", "GATEHOUSE_CONFIG_CACHE_DIR": "/c"},
			check: func(t *testing.T, c config) {
				if c.app.Region != "us-2" || c.app.UpstreamTimeout != 30*time.Second || c.app.ConfigCacheDir != "/f" || c.app.ConfigCacheGrace != time.Minute {
					t.Errorf("config = %+v", c.app)
				}
			},
		},
		{name: "version needs nothing else", args: []string{"--version"}, check: func(t *testing.T, c config) {
			if !c.printVersion || c.app.Version == "" {
				t.Errorf("config = %+v", c)
			}
		}},
		{
			name: "routing, tracing and logging",
			args: []string{"--config-keys", testKeys, "--ttft-timeout", "3s", "--max-retries", "0", "--retry-backoff", "100ms",
				"--breaker-failures", "9", "--breaker-cooldown", "1m", "--otlp-endpoint", "http://collector:4318", "--access-log=false"},
			check: func(t *testing.T, c config) {
				a := c.app
				if a.TTFTTimeout != 3*time.Second || a.MaxRetries != -1 || a.RetryBackoff != 100*time.Millisecond || a.BreakerFailures != 9 ||
					a.BreakerCooldown != time.Minute || a.OTLPEndpoint != "http://collector:4318" || a.AccessLog {
					t.Errorf("config = %+v", a)
				}
			},
		},
		{
			name: "routing defaults and OTEL_EXPORTER_OTLP_ENDPOINT",
			env:  map[string]string{"GATEHOUSE_CONFIG_KEYS": testKeys, "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:4318"},
			check: func(t *testing.T, c config) {
				a := c.app
				if a.TTFTTimeout != 0 || a.MaxRetries != 2 || a.RetryBackoff != 250*time.Millisecond || a.BreakerFailures != 5 ||
					a.BreakerCooldown != 30*time.Second || a.OTLPEndpoint != "https://otel.example:4318" || !a.AccessLog {
					t.Errorf("config = %+v", a)
				}
			},
		},
		{name: "bad retries", args: []string{"--config-keys", testKeys, "--max-retries", "11"}, wantErr: "max-retries"},
		{name: "bad ttft", args: []string{"--config-keys", testKeys, "--ttft-timeout", "-1s"}, wantErr: "ttft-timeout"},
		{name: "bad otlp endpoint", args: []string{"--config-keys", testKeys, "--otlp-endpoint", "collector:4318"}, wantErr: "otlp-endpoint"},
		{name: "entra authority of a sovereign cloud", args: []string{"--config-keys", testKeys, "--azure-authority", "https://login.microsoftonline.us"},
			check: func(t *testing.T, c config) {
				if c.app.EntraAuthority != "https://login.microsoftonline.us" {
					t.Errorf("authority = %q", c.app.EntraAuthority)
				}
			}},
		{name: "entra authority by default", env: map[string]string{"GATEHOUSE_CONFIG_KEYS": testKeys},
			check: func(t *testing.T, c config) {
				if c.app.EntraAuthority != "https://login.microsoftonline.com" {
					t.Errorf("authority = %q", c.app.EntraAuthority)
				}
			}},
		{name: "entra authority over plain http", args: []string{"--config-keys", testKeys, "--azure-authority", "http://login.example"}, wantErr: "azure-authority"},
		{name: "entra authority over http on loopback", args: []string{"--config-keys", testKeys, "--azure-authority", "http://127.0.0.1:9999"},
			check: func(t *testing.T, c config) {
				if c.app.EntraAuthority != "http://127.0.0.1:9999" {
					t.Errorf("authority = %q", c.app.EntraAuthority)
				}
			}},
		{name: "keys required", wantErr: "required"},
		{name: "bad keys", args: []string{"--config-keys", "k1:short"}, wantErr: "config-keys"},
		{name: "bad region", args: []string{"--config-keys", testKeys, "--region", "EU.1"}, wantErr: "region"},
		{name: "bad body limit", args: []string{"--config-keys", testKeys, "--max-body-bytes", "0"}, wantErr: "max-body-bytes"},
		{name: "bad timeout", args: []string{"--config-keys", testKeys, "--upstream-timeout", "soon"}, wantErr: "upstream-timeout"},
		{name: "bad cache grace", args: []string{"--config-keys", testKeys, "--cache-grace", "0s"}, wantErr: "cache-grace"},
		{name: "bad gateway id", args: []string{"--config-keys", testKeys, "--gateway-id", "a.b"}, wantErr: "gateway-id"},
		{name: "stray argument", args: []string{"--config-keys", testKeys, "extra"}, wantErr: "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
