package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/pgtest"
	"github.com/gatehouse-dev/gatehouse/e2e/stack"
	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// startStack runs the system on a fresh database and seeds the demo org.
func startStack(t *testing.T, regions ...string) (*stack.Stack, stack.Demo, *stack.Admin, string) {
	t.Helper()
	return startStackWith(t, nil, regions...)
}

// startStackWith is startStack with options changed by with (when not nil) first.
func startStackWith(t *testing.T, with func(*stack.Options), regions ...string) (*stack.Stack, stack.Demo, *stack.Admin, string) {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewURL(t)
	gws := map[string]string{}
	for _, r := range regions {
		gws[r] = ""
	}
	secrets := stack.NewSecrets()
	opts := stack.Options{BinDir: binDir, StateDir: t.TempDir(), DatabaseURL: dbURL, Secrets: secrets, GatewayAddrs: gws}
	if with != nil {
		with(&opts)
	}
	st, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Stop()
		if t.Failed() {
			for _, name := range append([]string{"controlplane", "demo-upstream"}, gatewayNames(regions)...) {
				if b, err := os.ReadFile(st.LogPath(name)); err == nil {
					t.Logf("---- %s log (tail) ----\n%s", name, tail(string(b), 4000))
				}
			}
		}
	})
	admin := stack.NewAdmin(st.ControlPlane, secrets.AdminToken)
	demo, err := stack.Seed(ctx, admin, st.Upstream, secrets.UpstreamAPIKey, "")
	if err != nil {
		t.Fatal(err)
	}
	return st, demo, admin, dbURL
}

func gatewayNames(regions []string) []string {
	var out []string
	for _, r := range regions {
		out = append(out, "gateway-"+r)
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitKey(t *testing.T, gateway, key string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		_, err := stack.KeyWorks(context.Background(), gateway, key)
		return err
	})
}

func TestThinSliceThroughBothPlanes(t *testing.T) {
	st, demo, admin, dbURL := startStack(t, "local")
	ctx := context.Background()
	gw := st.Gateways["local"]
	waitKey(t, gw, demo.Key)

	client := openai.NewClient(option.WithBaseURL(gw+"/v1"), option.WithAPIKey(demo.Key), option.WithMaxRetries(0))

	// Non-streaming.
	var hdr http.Header
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    demo.Model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("ping from the e2e test")},
	}, option.WithResponseInto(new(*http.Response)), option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(r)
		if res != nil {
			hdr = res.Header
		}
		return res, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Hello from the demo model. You said: ping from the e2e test" {
		t.Fatalf("content = %q", got)
	}
	if resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 {
		t.Fatalf("usage = %+v", resp.Usage)
	}
	if hdr.Get("X-Request-Id") == "" {
		t.Error("no x-request-id header")
	}

	// Streaming, with and without usage.
	for _, withUsage := range []bool{true, false} {
		params := openai.ChatCompletionNewParams{
			Model:    demo.Model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream me five words please")},
		}
		if withUsage {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if got := acc.Choices[0].Message.Content; got != "Hello from the demo model. You said: stream me five words please" {
			t.Fatalf("streamed content = %q", got)
		}
		if chunks < 5 {
			t.Fatalf("only %d chunks: not streamed event by event", chunks)
		}
		if withUsage != (acc.Usage.TotalTokens > 0) {
			t.Fatalf("include_usage=%v but usage = %+v", withUsage, acc.Usage)
		}
	}

	// Models.
	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != demo.Model {
		t.Fatalf("models = %+v", models.Data)
	}

	// Usage rows reach Postgres, once each.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, 10*time.Second, func() error {
		var n, streamed, prompt, completion, cost int64
		err := conn.QueryRow(ctx, `select count(*), count(*) filter (where streamed), coalesce(sum(prompt_tokens),0),
			coalesce(sum(completion_tokens),0), coalesce(sum(cost_micros),0)
			from usage_events where org_id = $1 and endpoint = 'chat.completions' and key_id = $2 and status_code = 200`,
			demo.OrgID, demo.KeyID).Scan(&n, &streamed, &prompt, &completion, &cost)
		if err != nil {
			return err
		}
		if n != 3 || streamed != 2 || prompt == 0 || completion == 0 || cost == 0 {
			return fmt.Errorf("usage rows: n=%d streamed=%d prompt=%d completion=%d cost=%d", n, streamed, prompt, completion, cost)
		}
		return nil
	})
	var firstPrompt int64
	if err := conn.QueryRow(ctx, `select prompt_tokens from usage_events where org_id = $1 and streamed = false and endpoint = 'chat.completions'`,
		demo.OrgID).Scan(&firstPrompt); err != nil {
		t.Fatal(err)
	}
	if firstPrompt != resp.Usage.PromptTokens {
		t.Fatalf("recorded prompt tokens %d, SDK saw %d", firstPrompt, resp.Usage.PromptTokens)
	}

	// Responses: the demo provider is registered as serving the Responses API
	// itself (native_responses, through the admin API, the snapshot and the
	// gateway), so even a plain request goes to its /responses: the answer's id is
	// sealed, and a follow-up continues it there.
	first, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: demo.Model,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello native")}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.ID, "resp_gh1") || first.OutputText() != "Hello from the demo model. You said: hello native" {
		t.Fatalf("responses answer %s: %q", first.ID, first.OutputText())
	}
	next, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: demo.Model, PreviousResponseID: openai.String(first.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("and on")}})
	if err != nil {
		t.Fatal(err)
	}
	if next.PreviousResponseID != first.ID || !strings.Contains(next.OutputText(), "(continuing an earlier response)") {
		t.Fatalf("continued answer %s (previous %s): %q", next.ID, next.PreviousResponseID, next.OutputText())
	}
	// The stored response, by its sealed id, from the provider that keeps it.
	kept, err := client.Responses.Get(ctx, next.ID, responses.ResponseGetParams{})
	if err != nil || kept.ID != next.ID || kept.PreviousResponseID != first.ID || kept.OutputText() != next.OutputText() {
		t.Fatalf("retrieved %+v: %v", kept, err)
	}
	eventually(t, 10*time.Second, func() error {
		var n int64
		if err := conn.QueryRow(ctx, `select count(*) from usage_events where org_id = $1 and endpoint = 'responses' and status_code = 200 and completion_tokens > 0`,
			demo.OrgID).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("responses usage rows: %d", n)
		}
		return nil
	})

	// Revocation reaches the gateway.
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys/"+demo.KeyID+"/revoke", nil, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		_, err := client.Models.List(ctx)
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
			return nil
		}
		return fmt.Errorf("revoked key still accepted: %v", err)
	})
}

func TestBadInputIsAnsweredInOpenAIFormat(t *testing.T) {
	st, demo, _, dbURL := startStack(t, "local")
	gw := st.Gateways["local"]
	waitKey(t, gw, demo.Key)
	big := `{"model":"demo-chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 5<<20) + `"}]}`
	tests := []struct {
		name, key, body string
		status          int
	}{
		{"missing key", "", `{"model":"demo-chat","messages":[]}`, 401},
		{"wrong key", "gate_aaaaaaaaaaaa_wrongwrongwrongwrongwrongwrongwron", `{"model":"demo-chat","messages":[]}`, 401},
		{"garbage key", "not-a-key", `{"model":"demo-chat","messages":[]}`, 401},
		{"unknown model", demo.Key, `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404},
		// Recorded in its usage event: PostgreSQL refuses a NUL in text, which once
		// stopped the control plane from ingesting anyone's usage.
		{"NUL in the model name", demo.Key, `{"model":"nul\u0000model","messages":[{"role":"user","content":"hi"}]}`, 404},
		{"malformed json", demo.Key, `{"model":`, 400},
		{"no model", demo.Key, `{"messages":[]}`, 400},
		{"body too large", demo.Key, big, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", gw+"/v1/chat/completions", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var body struct {
				Error *struct {
					Message string `json:"message"`
					Type    string `json:"type"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &body); err != nil || body.Error == nil || body.Error.Message == "" || body.Error.Type == "" {
				t.Fatalf("not an OpenAI error: %q", raw)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.status, raw)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id")
			}
		})
	}
	// The gateway is still healthy after all that.
	if ok, err := stack.KeyWorks(context.Background(), gw, demo.Key); !ok {
		t.Fatalf("gateway unhealthy after bad input: %v", err)
	}
	// And usage still reaches Postgres: the refused requests' events, the NUL model
	// name's with U+FFFD in its place, and the good request's after them.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, 15*time.Second, func() error {
		var nul, ok int
		if err := conn.QueryRow(ctx, `select count(*) filter (where model = 'nul�model' and status_code = 404),
			count(*) filter (where status_code = 200) from usage_events where org_id = $1`, demo.OrgID).Scan(&nul, &ok); err != nil {
			return err
		}
		if nul != 1 || ok == 0 {
			return fmt.Errorf("usage rows: %d for the NUL model name (want 1), %d answered (want some)", nul, ok)
		}
		return nil
	})
}

// TestGatewaySurvivesControlPlaneOutage kills the control plane (and with it the
// embedded NATS): the gateway keeps serving its last config, and picks up changes
// again once the control plane is back.
func TestGatewaySurvivesControlPlaneOutage(t *testing.T) {
	st, demo, admin, dbURL := startStack(t, "local")
	ctx := context.Background()
	gw := st.Gateways["local"]
	waitKey(t, gw, demo.Key)
	client := openai.NewClient(option.WithBaseURL(gw+"/v1"), option.WithAPIKey(demo.Key), option.WithMaxRetries(0))
	chat := func(msg string) error {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: demo.Model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(msg)},
		})
		return err
	}

	st.Kill("controlplane")
	for i := range 5 {
		if err := chat(fmt.Sprintf("during outage %d", i)); err != nil {
			t.Fatalf("request during control plane outage: %v", err)
		}
	}
	resp, err := http.Get(gw + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz during outage = %d", resp.StatusCode)
	}

	if err := st.StartControlPlane(ctx); err != nil {
		t.Fatal(err)
	}
	// A key minted after the restart works: config flows again.
	var key stack.Object
	if err := admin.Do(ctx, "POST", "/orgs/demo/teams/platform/keys", map[string]any{"name": "after restart"}, &key); err != nil {
		t.Fatal(err)
	}
	waitKey(t, gw, key.Secret)

	// The usage of the outage was spooled or retried, and lands exactly once.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, 30*time.Second, func() error {
		var n int64
		if err := conn.QueryRow(ctx, `select count(*) from usage_events where org_id = $1 and endpoint = 'chat.completions'`, demo.OrgID).Scan(&n); err != nil {
			return err
		}
		if n != 5 {
			return fmt.Errorf("usage rows = %d, want 5", n)
		}
		return nil
	})
}
