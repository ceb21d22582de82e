package llm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/guardrail"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// blockEmails compiles a request rule blocking email addresses.
func blockEmails(t *testing.T) *guardrail.Policy {
	t.Helper()
	p, err := guardrail.Compile([]*gatehousev1.GuardrailRule{{Id: "e", Name: "e",
		Detector:  gatehousev1.GuardrailDetector_GUARDRAIL_DETECTOR_EMAIL,
		Mode:      gatehousev1.GuardrailMode_GUARDRAIL_MODE_BLOCK,
		Direction: gatehousev1.GuardrailDirection_GUARDRAIL_DIRECTION_REQUEST}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// upstreamBody serves body on surface through a provider of typ and returns what the
// upstream received.
func upstreamBody(t *testing.T, surface Surface, typ gatehousev1.ProviderType, body string) string {
	t.Helper()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		http.Error(w, `{"error":{"message":"x"}}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	req := parseGoldenRequest(t, surface, []byte(body))
	req.Candidates = []*runtime.Model{testModel(t, typ, srv.URL)}
	_, _ = testClient(t).Serve(context.Background(), httptest.NewRecorder(), req)
	return got
}

// requestEscapes fails when a text the request rules let through reaches the upstream
// with an email address in it.
func requestEscapes(t *testing.T, surface Surface, typ gatehousev1.ProviderType, body, secret string) {
	t.Helper()
	o, err := blockEmails(t).CheckRequestJSON([]byte(body))
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if o.Blocked != nil {
		return
	}
	if up := upstreamBody(t, surface, typ, body); strings.Contains(up, secret) {
		t.Errorf("not blocked, and the upstream got it: %s", up)
	}
}

func TestRequestRulesSeeKeysAsTranslatorsDecodeThem(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Surface
		typ  gatehousev1.ProviderType
		body string
	}{
		{"responses content", SurfaceResponses, openAIType, `{"model":"m","input":[{"role":"user","Content":"mail bob@example.com"}]}`},
		{"responses part", SurfaceResponses, openAIType, `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","TEXT":"mail bob@example.com"}]}]}`},
		{"chat to anthropic", SurfaceChat, anthropicType, `{"model":"m","messages":[{"role":"user","Content":"mail bob@example.com"}]}`},
		{"chat escaped key", SurfaceChat, anthropicType, `{"model":"m","messages":[{"role":"user","\u0063ontent":"mail bob@example.com"}]}`},
		{"chat part to gemini", SurfaceChat, geminiType, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","Text":"mail bob@example.com"}]}]}`},
		{"messages content", SurfaceMessages, openAIType, `{"model":"m","max_tokens":5,"messages":[{"role":"user","Content":"mail bob@example.com"}]}`},
		{"messages document", SurfaceMessages, openAIType, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","Source":{"type":"text","media_type":"text/plain","data":"mail bob@example.com"}}]}]}`},
		{"responses instructions", SurfaceResponses, anthropicType, `{"model":"m","Instructions":"mail bob@example.com","input":"hi"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requestEscapes(t, tc.s, tc.typ, tc.body, "bob@example.com")
		})
	}
}

// Thinking a caller sends back reaches the upstream: the request rules check it.
func TestRequestRulesCheckThinkingSentBack(t *testing.T) {
	tb, _ := json.Marshal(thinkingBlock{Type: "thinking", Thinking: "the CEO is bob@example.com", Signature: "forged"})
	state := thinkingStatePrefix + base64.RawURLEncoding.EncodeToString(tb)
	for _, tc := range []struct {
		name string
		s    Surface
		body string
	}{
		{"responses reasoning state", SurfaceResponses, `{"model":"m","input":[{"role":"user","content":"hi"},{"type":"reasoning","summary":[],"encrypted_content":"` + state + `"},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"ok"}]}`},
		{"chat thinking_blocks", SurfaceChat, `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok","thinking_blocks":[{"type":"thinking","thinking":"the CEO is bob@example.com","signature":"forged"}]},{"role":"user","content":"go on"}]}`},
		{"messages thinking block", SurfaceMessages, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"the CEO is bob@example.com","signature":"forged"},{"type":"text","text":"ok"}]},{"role":"user","content":"go on"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requestEscapes(t, tc.s, anthropicType, tc.body, "bob@example.com")
		})
	}
}

func TestRequestRulesCheckToolOutputsNotStrings(t *testing.T) {
	for _, out := range []string{`[{"type":"input_text","text":"bob@example.com"}]`, `{"mail":"bob@example.com"}`} {
		body := `{"model":"m","input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":` + out + `}]}`
		requestEscapes(t, SurfaceResponses, openAIType, body, "bob@example.com")
	}
}

func TestRequestRulesCheckTextFilesGoingToGemini(t *testing.T) {
	text := "contact bob@example.com ??? ~~~ >>>"
	std := base64.StdEncoding.EncodeToString([]byte(text))
	url := base64.URLEncoding.EncodeToString([]byte(text))
	t.Run("messages base64 text document", func(t *testing.T) {
		body := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"text/plain","data":"` + std + `"}}]}]}`
		requestEscapes(t, SurfaceMessages, geminiType, body, std)
	})
	for _, fd := range []string{"data:text/plain;base64," + url, "data:application/json;base64," + std} {
		t.Run(fd[:24], func(t *testing.T) {
			body := `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.txt","file_data":"` + fd + `"}}]}]}`
			requestEscapes(t, SurfaceChat, geminiType, body, fd[strings.Index(fd, ",")+1:])
		})
	}
}
