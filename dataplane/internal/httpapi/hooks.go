package httpapi

// Hook points for limits and guardrails (the limit and guardrail packages plug in
// here; until they do, both are no-ops).
//
// Every LLM endpoint (chat completions, embeddings, Responses, Messages) runs:
//
//	authenticate key → read and parse the body (caller's format) → resolve the model
//	(aliases, allow-lists, region) → Admitter.Admit → Guard.Request → Guard.Response
//	(the response filters) → route and call upstream (llm.Client.Serve: deployments,
//	retries, fallbacks; the filters see every delta of content, reasoning and tool
//	call arguments) → Ticket.Settle(usage) → usage event (with the guardrail events of
//	both sides)
//
// Wiring them is one field each in Config:
//
//	httpapi.New(httpapi.Config{..., Admitter: limiter, Guard: guardrails})
//
// Refusals: return a *llm.Refusal from Admit, Request or a filter. Before the answer
// began it is rendered in the caller's format (OpenAI or Anthropic error JSON) with
// Refusal.Status (default 400; use 429 for limits), Refusal.Code as the error code and
// usage error class, and Refusal.Header added (Retry-After, RateLimit-*). A filter's
// refusal during a stream ends the stream with a final error event in the caller's
// format (chat: a data event with an "error" object; Messages: an "error" event;
// Responses: "response.failed").

import (
	"context"
	"net/http"
	"slices"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// Admission is what limits admission sees of a request, after authentication and model
// resolution and before anything is sent upstream. The limits to enforce are
// Key.Limits, Key.Team.Limits and Model.Limits.
type Admission struct {
	Key   *runtime.Key
	Model *runtime.Model
	// Endpoint is "chat.completions", "embeddings", "responses" or "messages".
	Endpoint string
	Stream   bool
	// EstimatedTokens is the request's estimated prompt and completion tokens: the
	// characters of the prompt divided by 4, plus max_tokens (max_completion_tokens,
	// max_output_tokens) or llm.DefaultCompletionEstimate when unset. Embeddings count
	// their input only.
	EstimatedTokens int64
}

// Admitter admits requests under limits (rpm, tpm, concurrency, budgets). A nil
// Admitter admits everything.
type Admitter interface {
	// Admit admits the request, or refuses it with a *llm.Refusal. The returned ticket
	// (nil when there is nothing to settle) is settled exactly once, after the answer
	// ended (successfully or not).
	Admit(ctx context.Context, a Admission) (Ticket, error)
}

// Ticket is an admitted request.
type Ticket interface {
	// Header returns headers to add to the answer (RateLimit-*); nil for none. It is
	// called once, right after Admit.
	Header() http.Header
	// Settle reports what the request really used: the provider's usage, or the
	// gateway's estimate when the stream ended early (llm.Result.UsageEstimated);
	// zero usage when nothing was served.
	Settle(u llm.Usage)
	// Fallback moves the request on to a fallback model of the one asked for, before
	// its first attempt there: it admits the request under m's own limits (a
	// *llm.Refusal when they refuse it, and m is skipped) and stops holding the model
	// tried before (its token estimate comes back and its concurrency slot is freed;
	// its request stays counted). The key's and team's levels are unchanged.
	Fallback(m *runtime.Model) error
}

// GuardInput is what guardrails see of a request. The team's rules are
// Key.Team.Guardrails (each says whether it applies to requests, responses or both).
type GuardInput struct {
	Key     *runtime.Key
	Model   *runtime.Model
	Surface llm.Surface
	// Endpoint is "chat.completions", "embeddings", "responses" or "messages".
	Endpoint string
	// Body is the request body in the caller's format, as received.
	Body []byte
	// Text is the text of the response a ResponseGuard is asked for (Guard.Response).
	Text llm.TextKind
}

// Guard applies guardrails. A nil Guard applies none.
type Guard interface {
	// Request inspects the request: it returns the body to send on (the same slice when
	// unchanged; a rewritten body in the same format otherwise, which is parsed again),
	// the triggers to record on the usage event, and a *llm.Refusal to block it.
	Request(ctx context.Context, in GuardInput) ([]byte, []*gatehousev1.GuardrailEvent, error)
	// Response returns a filter for one text of this request's response (in.Text), or
	// nil for none. It is called after Request, for every surface but embeddings: once
	// for the content, and once for the content of each further choice (n > 1), each
	// block of reasoning, each tool call's arguments and each refusal the answer
	// holds, as they come; only when it returned a content filter is it asked for the
	// others. The usage event gets the events of all of them, merged by rule and
	// direction, each listing the texts it matched in (TextKind.String).
	Response(ctx context.Context, in GuardInput) ResponseGuard
}

// ResponseGuard filters one response's text (see llm.ContentFilter) and reports what
// it found.
type ResponseGuard interface {
	llm.ContentFilter
	// Events returns the triggers to record on the usage event, after the response
	// ended.
	Events() []*gatehousev1.GuardrailEvent
}

// mergeEvents merges events of one rule and direction into one, adding their matches
// and joining where they matched (texts): a usage event records each rule at most once
// per direction.
func mergeEvents(evs []*gatehousev1.GuardrailEvent) []*gatehousev1.GuardrailEvent {
	type key struct{ rule, direction string }
	out := evs[:0:0]
	at := make(map[key]int, len(evs))
	for _, e := range evs {
		k := key{e.RuleId, e.Direction}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, e)
			continue
		}
		m := out[i]
		out[i] = &gatehousev1.GuardrailEvent{RuleId: m.RuleId, Detector: m.Detector, Mode: m.Mode, Direction: m.Direction,
			Matches: int32(min(int64(m.Matches)+int64(e.Matches), 1<<31-1)),
			Texts:   unionTexts(m.Texts, e.Texts)}
	}
	return out
}

// unionTexts returns the texts of a and b, sorted, each once, in a new slice.
func unionTexts(a, b []string) []string {
	u := make([]string, 0, len(a)+len(b))
	u = append(append(u, a...), b...)
	slices.Sort(u)
	return slices.Compact(u)
}
