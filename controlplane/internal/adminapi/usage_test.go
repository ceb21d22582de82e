package adminapi_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/usageingest"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// TestUsageListsServiceTier: the usage API's newest requests carry the provider's
// service tier as ingested ("" when none was reported), and every member of those
// events is documented in openapi.json's UsageEvent schema.
func TestUsageListsServiceTier(t *testing.T) {
	t.Parallel()
	srv, _, st := newServerStore(t)
	c := client{t, srv.URL}
	status, org := c.do("POST", "/orgs", `{"slug":"acme","name":"Acme"}`)
	if status != 201 {
		t.Fatalf("create org: %d %v", status, org)
	}
	// One request the provider served on its flex tier, one from a provider (or an
	// older gateway) that reported no tier.
	now := time.Now().UnixMilli()
	var events []*gatehousev1.UsageEvent
	for i, tier := range []string{"flex", ""} {
		events = append(events, &gatehousev1.UsageEvent{EventId: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), RequestId: "req-" + cmp.Or(tier, "none"),
			OrgId: org["id"].(string), Endpoint: "chat.completions", StartedAtUnixMs: now - int64(i), Region: "eu", GatewayId: "gw-1",
			StatusCode: 200, ServiceTier: tier})
	}
	ing := usageingest.New(st.Pool(), nil, slog.New(slog.DiscardHandler))
	if n, err := ing.Write(context.Background(), events); err != nil || n != 2 {
		t.Fatalf("ingest: %d, %v", n, err)
	}
	status, body := c.do("GET", "/orgs/acme/usage", "")
	if status != 200 {
		t.Fatalf("usage: %d %v", status, body)
	}
	recent, _ := body["recent"].([]any)
	tiers := map[string]any{}
	for _, r := range recent {
		e := r.(map[string]any)
		tier, ok := e["service_tier"]
		if !ok {
			tier = "(absent)"
		}
		tiers[e["request_id"].(string)] = tier
	}
	if len(tiers) != 2 || tiers["req-flex"] != "flex" || tiers["req-none"] != "" {
		t.Fatalf("service tiers by request = %v, want req-flex: flex, req-none: \"\"", tiers)
	}

	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	props := doc.Components.Schemas["UsageEvent"].Properties
	if props["service_tier"].Description == "" {
		t.Error("openapi.json: UsageEvent.service_tier has no description")
	}
	for _, r := range recent {
		for name := range r.(map[string]any) {
			if _, ok := props[name]; !ok {
				t.Errorf("openapi.json: UsageEvent lacks %q, which the usage API returns", name)
			}
		}
	}
}
