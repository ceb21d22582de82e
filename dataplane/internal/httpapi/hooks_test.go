package httpapi

import (
	"fmt"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// TestMergeEventsJoinsTexts: events of one rule and direction become one, adding
// matches and listing where they matched once each, sorted; other rules and
// directions stay apart.
func TestMergeEventsJoinsTexts(t *testing.T) {
	t.Parallel()
	ev := func(rule, direction string, n int32, texts ...string) *gatehousev1.GuardrailEvent {
		return &gatehousev1.GuardrailEvent{RuleId: rule, Direction: direction, Matches: n, Texts: texts}
	}
	got := mergeEvents([]*gatehousev1.GuardrailEvent{
		ev("g-key", "request", 1, "request"),
		ev("g-key", "response", 1, "refusal"),
		ev("g-email", "response", 1, "content"),
		ev("g-key", "response", 2, "content"),
		ev("g-email", "response", 3, "content"),
		ev("g-key", "response", 1, "arguments"),
		ev("g-key", "response", 1), // a filter that does not say
	})
	var lines []string
	for _, e := range got {
		lines = append(lines, fmt.Sprintf("%s/%s %d %v", e.RuleId, e.Direction, e.Matches, e.Texts))
	}
	want := []string{"g-key/request 1 [request]", "g-key/response 5 [arguments content refusal]", "g-email/response 4 [content]"}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("merged = %q, want %q", lines, want)
	}
}
