package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/e2e/stack"
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
	// A request before the snapshot arrives is priced as before: ask again until one
	// costs the new price (each one's usage row is awaited on its own).
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := chat("priced anew")
		if err != nil {
			t.Fatal(err)
		}
		reqID := last.Header.Get("X-Request-Id")
		want := resp.Usage.PromptTokens*7 + resp.Usage.CompletionTokens*21 // µ$ a token at these prices
		var cost int64
		eventually(t, 10*time.Second, func() error {
			return conn.QueryRow(ctx, `select cost_micros from usage_events where org_id = $1 and request_id = $2`, demo.OrgID, reqID).Scan(&cost)
		})
		if cost == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cost %d µ$, want %d at the new prices (%d in, %d out)", cost, want, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
		}
	}
}

func registryID(t *testing.T, admin *stack.Admin, path, name string) string {
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
