package app

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the gateway's instrumentation scope.
const tracerName = "github.com/gatehouse-dev/gatehouse/dataplane"

// newTracing returns a tracer exporting spans over OTLP/HTTP to endpoint (the base
// URL of a collector, as in OTEL_EXPORTER_OTLP_ENDPOINT: /v1/traces is appended), and
// the function that flushes and stops it.
func newTracing(endpoint string, cfg Config) (trace.Tracer, func(context.Context) error, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("otlp endpoint %q: want an http(s) URL", endpoint)
	}
	if !strings.HasSuffix(u.Path, "/v1/traces") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	batch := cfg.TraceBatchTimeout
	if batch <= 0 {
		batch = 5 * time.Second
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(batch)),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "gatehouse-gateway"),
			attribute.String("service.version", cfg.Version),
			attribute.String("service.instance.id", cfg.GatewayID),
			attribute.String("gatehouse.region", cfg.Region),
		)),
	)
	return tp.Tracer(tracerName), tp.Shutdown, nil
}
