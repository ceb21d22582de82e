package demoupstream

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// TestResponses: the demo's Responses API answers the real OpenAI SDK, streamed and
// not, with the echo reply, usage, and what it saw of previous_response_id and tools.
func TestResponses(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, Options{APIKey: "sk-demo"})
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-demo"), option.WithMaxRetries(0))
	ctx := context.Background()
	// An answer the demo keeps, which the requests below continue.
	first, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "demo-chat",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("start")}})
	if err != nil {
		t.Fatal(err)
	}
	params := responses.ResponseNewParams{
		Model:              "demo-chat",
		PreviousResponseID: openai.String(first.ID),
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("patch it")},
		Tools:              []responses.ToolUnionParam{{OfCustom: &responses.CustomToolParam{Name: "apply_patch"}}},
	}
	const want = "Hello from the demo model. You said: patch it (continuing an earlier response) (tools: custom)"

	got, err := c.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got.OutputText() != want || got.Status != "completed" || got.Usage.InputTokens < 1 || got.Usage.OutputTokens != 15 ||
		!strings.HasPrefix(got.ID, "resp_") {
		t.Errorf("response %s: %q, %s, usage %d/%d", got.ID, got.OutputText(), got.Status, got.Usage.InputTokens, got.Usage.OutputTokens)
	}

	s := c.Responses.NewStreaming(context.Background(), params)
	var deltas strings.Builder
	var types []string
	var done responses.Response
	for s.Next() {
		ev := s.Current()
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			deltas.WriteString(ev.Delta)
		case "response.completed":
			done = ev.Response
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas.String() != want || done.OutputText() != want || done.Usage.OutputTokens != 15 || types[0] != "response.created" ||
		types[len(types)-1] != "response.completed" || len(types) != 3+15+4 {
		t.Errorf("deltas %q, events %v, completed %q (%d tokens)", deltas.String(), types, done.OutputText(), done.Usage.OutputTokens)
	}

	// Kept answers: retrieved, their input listed, deleted; an unknown previous
	// response is not found.
	kept, err := c.Responses.Get(ctx, got.ID, responses.ResponseGetParams{})
	if err != nil || kept.ID != got.ID || kept.OutputText() != want || kept.PreviousResponseID != first.ID {
		t.Errorf("retrieved %+v: %v", kept, err)
	}
	items, err := c.Responses.InputItems.List(ctx, first.ID, responses.InputItemListParams{})
	if err != nil || len(items.Data) != 1 || items.Data[0].Role != "user" {
		t.Errorf("input items %+v: %v", items, err)
	}
	if err := c.Responses.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	var apiErr *openai.Error
	if _, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Errorf("deleted response: %v", err)
	}
	if _, err := c.Responses.New(ctx, params); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "previous_response_not_found" {
		t.Errorf("continuing a deleted response: %v", err)
	}

	// A wrong key is refused as on every route.
	bad := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("nope"), option.WithMaxRetries(0))
	_, err = bad.Responses.New(context.Background(), params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Errorf("wrong key: %v", err)
	}
}
