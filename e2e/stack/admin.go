package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Admin is a small client of the control plane's admin API.
type Admin struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewAdmin returns a client for the control plane at baseURL.
func NewAdmin(baseURL, token string) *Admin {
	return &Admin{BaseURL: baseURL, Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is a non-2xx answer.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("admin api: %d: %s", e.Status, e.Body) }

// Do sends a request and decodes the JSON answer into out (when not nil).
func (a *Admin) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.BaseURL+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Status: resp.StatusCode, Body: string(raw)}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// Object is a created or listed resource.
type Object struct {
	ID        string  `json:"id"`
	Slug      string  `json:"slug"`
	Name      string  `json:"name"`
	Secret    string  `json:"secret"`
	RevokedAt *string `json:"revoked_at"`
}

type objects struct {
	Data []Object `json:"data"`
}

// Demo is what Seed created or found.
type Demo struct {
	OrgID, OrgSlug, TeamID, TeamSlug, Model string
	KeyID, Key                              string
}

// SeedSSO connects the demo org to the IdP: email domain demo.gatehouse.dev, group
// gatehouse-admins → org admin, platform-developers → member of team platform.
func SeedSSO(ctx context.Context, a *Admin, issuer, clientSecret string) error {
	if err := a.Do(ctx, "PUT", "/orgs/demo/sso", map[string]any{
		"issuer": issuer, "client_id": IdPClientID, "client_secret": clientSecret,
		"allowed_domains": []string{"demo.gatehouse.dev"}, "enabled": true, "default_role": "member",
	}, nil); err != nil {
		return fmt.Errorf("seed sso: %w", err)
	}
	var mappings struct {
		Data []struct{ Group string } `json:"data"`
	}
	if err := a.Do(ctx, "GET", "/orgs/demo/sso/mappings", nil, &mappings); err != nil {
		return fmt.Errorf("seed sso mappings: %w", err)
	}
	have := map[string]bool{}
	for _, m := range mappings.Data {
		have[m.Group] = true
	}
	for _, m := range []map[string]any{
		{"group": "gatehouse-admins", "role": "org_admin"},
		{"group": "platform-developers", "team": "platform", "role": "member"},
	} {
		if have[m["group"].(string)] {
			continue
		}
		if err := a.Do(ctx, "POST", "/orgs/demo/sso/mappings", m, nil); err != nil {
			return fmt.Errorf("seed sso mapping: %w", err)
		}
	}
	return nil
}

// Seed makes sure the demo org, team, provider and model exist (reusing them when
// they do) and mints a key, unless reuseKey (a previous demo key) is still active.
func Seed(ctx context.Context, a *Admin, upstreamURL, upstreamKey, reuseKey string) (Demo, error) {
	d := Demo{OrgSlug: "demo", TeamSlug: "platform", Model: "demo-chat"}
	org, err := ensure(ctx, a, "/orgs", d.OrgSlug, map[string]any{"slug": d.OrgSlug, "name": "Demo Org"})
	if err != nil {
		return d, fmt.Errorf("seed org: %w", err)
	}
	d.OrgID = org.ID
	team, err := ensure(ctx, a, "/orgs/demo/teams", d.TeamSlug, map[string]any{"slug": d.TeamSlug, "name": "Platform"})
	if err != nil {
		return d, fmt.Errorf("seed team: %w", err)
	}
	d.TeamID = team.ID
	if _, err := ensure(ctx, a, "/orgs/demo/providers", "demo-upstream", map[string]any{
		"name": "demo-upstream", "type": "openai-compatible", "base_url": upstreamURL, "api_key": upstreamKey,
		"native_responses": true, // the demo upstream serves /v1/responses itself
	}); err != nil {
		return d, fmt.Errorf("seed provider: %w", err)
	}
	if _, err := ensure(ctx, a, "/orgs/demo/models", d.Model, map[string]any{
		"name": d.Model, "provider": "demo-upstream", "upstream_model": "demo-chat",
		"input_price_per_mtok_micros": 150_000, "output_price_per_mtok_micros": 600_000, "cached_input_price_per_mtok_micros": 75_000,
	}); err != nil {
		return d, fmt.Errorf("seed model: %w", err)
	}
	if reuseKey != "" {
		var keys objects
		if err := a.Do(ctx, "GET", "/orgs/demo/teams/platform/keys", nil, &keys); err != nil {
			return d, fmt.Errorf("seed key: %w", err)
		}
		for _, k := range keys.Data {
			if k.RevokedAt == nil && len(reuseKey) > len("gate_")+len(k.ID) && reuseKey[5:5+len(k.ID)] == k.ID {
				d.KeyID, d.Key = k.ID, reuseKey
				return d, nil
			}
		}
	}
	var key Object
	if err := a.Do(ctx, "POST", "/orgs/demo/teams/platform/keys", map[string]any{"name": "demo key"}, &key); err != nil {
		return d, fmt.Errorf("seed key: %w", err)
	}
	d.KeyID, d.Key = key.ID, key.Secret
	return d, nil
}

// ensure returns the object named name from the list at path, creating it if missing.
func ensure(ctx context.Context, a *Admin, path, name string, create map[string]any) (Object, error) {
	var list objects
	if err := a.Do(ctx, "GET", path, nil, &list); err != nil {
		return Object{}, err
	}
	for _, o := range list.Data {
		if o.Slug == name || o.Name == name {
			return o, nil
		}
	}
	var o Object
	err := a.Do(ctx, "POST", path, create, &o)
	return o, err
}

// KeyWorks reports whether gateway accepts key on GET /v1/models.
func KeyWorks(ctx context.Context, gateway, key string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", gateway+"/v1/models", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET /v1/models: %d", resp.StatusCode)
	}
	return true, nil
}

// Peers reads how many gateways of its region a gateway counts (gatehouse_gateway_peers).
func Peers(ctx context.Context, gateway string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", gateway+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "gatehouse_gateway_peers "); ok {
			var n float64
			_, err := fmt.Sscan(v, &n)
			return int(n), err
		}
	}
	return 0, fmt.Errorf("no gatehouse_gateway_peers metric")
}
