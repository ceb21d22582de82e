package adminapi_test

import (
	"context"
	"fmt"
	"testing"
)

// TestGuardrailTriggersSayWhere: the triggers the API lists say where each rule
// matched (texts), and an empty list for triggers recorded without it.
func TestGuardrailTriggersSayWhere(t *testing.T) {
	t.Parallel()
	srv, _, st := newServerStore(t)
	c := client{t, srv.URL}
	status, org := c.do("POST", "/orgs", `{"slug":"acme","name":"Acme"}`)
	if status != 201 {
		t.Fatalf("create org: %d %v", status, org)
	}
	status, team := c.do("POST", "/orgs/acme/teams", `{"slug":"search"}`)
	if status != 201 {
		t.Fatalf("create team: %d %v", status, team)
	}
	// Rows as usage ingest writes them: one that says where, one from an older gateway.
	if _, err := st.Pool().Exec(context.Background(), `insert into guardrail_events
		(event_id, rule_id, started_at, org_id, team_id, request_id, detector, mode, direction, matches, texts) values
		(gen_random_uuid(), 'r1', now(), $1, $2, 'req-new', 'api_key', 'audit', 'response', 2, '{arguments,reasoning}'),
		(gen_random_uuid(), 'r2', now() - interval '1 minute', $1, $2, 'req-old', 'email', 'redact', 'request', 1, default)`,
		org["id"], team["id"]); err != nil {
		t.Fatal(err)
	}
	status, body := c.do("GET", "/orgs/acme/teams/search/guardrail-triggers", "")
	if status != 200 {
		t.Fatalf("triggers: %d %v", status, body)
	}
	where := map[string]string{}
	for _, d := range body["data"].([]any) {
		tr := d.(map[string]any)
		where[tr["request_id"].(string)] = fmt.Sprint(tr["texts"])
	}
	if want := map[string]string{"req-new": "[arguments reasoning]", "req-old": "[]"}; fmt.Sprint(where) != fmt.Sprint(want) {
		t.Errorf("texts by request = %v, want %v", where, want)
	}
}
