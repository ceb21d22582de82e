package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestRegistryEditsReachTheGateway edits the demo provider and model through the
// admin API while a gateway serves them: a rotated credential is what the gateway
// sends upstream from then on (a wrong one fails every request, the right one fixes
// it), and a new price is what the next request costs.
func TestRegistryEditsReachTheGateway(t *testing.T) {
	st, demo, admin, dbURL := startStack(t, "local")
	ctx := context.Background()
	gw := st.Gateways["local"]
	waitKey(t, gw, demo.Key)
	client := openai.NewClient(option.WithBaseURL(gw+"/v1"), option.WithAPIKey(demo.Key), option.WithMaxRetries(0))
	var last *http.Response
	chat := func(text string) (*openai.ChatCompletion, error) {
		return client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: demo.Model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}, option.WithResponseInto(&last))
	}
	if _, err := chat("before any edit"); err != nil {
		t.Fatal(err)
	}
	providerID := registryID(t, admin, "/orgs/demo/providers", "demo-upstream")
	modelID := registryID(t, admin, "/orgs/demo/models", demo.Model)

	// A wrong credential: the provider refuses it, the caller gets the gateway's
	// upstream_auth_failed (never the provider's body).
	if err := admin.Do(ctx, "PATCH", "/orgs/demo/providers/"+providerID, map[string]any{"api_key": "sk-not-the-right-one"}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := chat("with the wrong key")
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadGateway && apiErr.Code == "upstream_auth_failed" {
			return nil
		}
		return fmt.Errorf("after rotating to a wrong key: %v", err)
	})
	// The right one again.
	if err := admin.Do(ctx, "PATCH", "/orgs/demo/providers/"+providerID, map[string]any{"api_key": st.Secrets().UpstreamAPIKey}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := chat("with the right key again")
		return err
	})

	// New prices: the next request costs what they say.
	if err := admin.Do(ctx, "PATCH", "/orgs/demo/models/"+modelID, map[string]any{
		"input_price_per_mtok_micros": 7_000_000, "output_price_per_mtok_micros": 21_000_000, "cached_input_price_per_mtok_micros": 0,
	}, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, 10*time.Second, func() error {
		resp, err := chat("priced anew")
		if err != nil {
			return err
		}
		reqID := last.Header.Get("X-Request-Id")
		want := resp.Usage.PromptTokens*7 + resp.Usage.CompletionTokens*21 // µ$ a token at these prices
		var cost int64
		for range 50 { // the usage event reaches Postgres within a few hundred ms
			err = conn.QueryRow(ctx, `select cost_micros from usage_events where org_id = $1 and request_id = $2`,
				demo.OrgID, reqID).Scan(&cost)
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("usage row of %s: %w", reqID, err)
		}
		if cost != want {
			return fmt.Errorf("cost %d µ$, want %d at the new prices (%d in, %d out)", cost, want, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
		}
		return nil
	})
}

func registryID(t *testing.T, admin interface {
	Do(ctx context.Context, method, path string, in, out any) error
}, path, name string) string {
	t.Helper()
	var list struct {
		Data []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"data"`
	}
	if err := admin.Do(context.Background(), "GET", path, nil, &list); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Data {
		if e.Name == name {
			return e.ID
		}
	}
	t.Fatalf("no %q in %s", name, path)
	return ""
}
