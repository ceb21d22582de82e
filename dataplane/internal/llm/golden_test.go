package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGoldenTranslations runs every translation through Client.Serve against a fake
// upstream that answers with a recorded provider answer: testdata/<request> is what
// the caller sends, testdata/<upstream answer> what the provider answers.
// testdata/golden/<case>.upstream.json is what the gateway sent the provider and
// testdata/golden/<case>.response.{json,sse} what the caller got. Run with -update to
// rewrite the golden files after a deliberate change, and review the diff.
func TestGoldenTranslations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		surface  Surface
		request  string
		provider gatehousev1.ProviderType
		answer   string
	}{
		{"chat_to_anthropic", SurfaceChat, "chat_tools.request.json", anthropicType, "anthropic_tools.upstream_response.json"},
		{"chat_to_anthropic_stream", SurfaceChat, "chat_tools_stream.request.json", anthropicType, "anthropic_tools.upstream_response.sse"},
		{"chat_thinking_to_anthropic", SurfaceChat, "chat_thinking.request.json", anthropicType, "anthropic_thinking.upstream_response.json"},
		{"chat_thinking_to_anthropic_stream", SurfaceChat, "chat_thinking_stream.request.json", anthropicType, "anthropic_thinking.upstream_response.sse"},
		{"messages_to_openai_reasoning", SurfaceMessages, "messages_tools.request.json", openAIType, "openai_reasoning.upstream_response.json"},
		{"messages_to_openai_reasoning_stream", SurfaceMessages, "messages_tools_stream.request.json", openAIType, "openai_reasoning.upstream_response.sse"},
		{"chat_thinking_to_gemini", SurfaceChat, "chat_thinking_plain.request.json", geminiType, "gemini_thinking.upstream_response.json"},
		{"chat_thinking_to_gemini_stream", SurfaceChat, "chat_thinking_stream.request.json", geminiType, "gemini_thinking.upstream_response.sse"},
		{"responses_thinking_to_anthropic", SurfaceResponses, "responses_thinking.request.json", anthropicType, "anthropic_thinking.upstream_response.json"},
		{"responses_thinking_to_anthropic_stream", SurfaceResponses, "responses_thinking_stream.request.json", anthropicType, "anthropic_thinking.upstream_response.sse"},
		// Turn two: the reasoning items of turn one carry Anthropic's signed blocks back;
		// other upstreams, and other providers' encrypted_content, leave them out.
		{"responses_thinking_turn2_to_anthropic", SurfaceResponses, "responses_thinking_turn2.request.json", anthropicType, "anthropic_thinking.upstream_response.json"},
		{"responses_thinking_turn2_to_openai", SurfaceResponses, "responses_thinking_turn2.request.json", openAIType, "openai_tools.upstream_response.json"},
		{"responses_thinking_turn2_to_gemini", SurfaceResponses, "responses_thinking_turn2.request.json", geminiType, "gemini_tools.upstream_response.json"},
		{"chat_to_gemini", SurfaceChat, "chat_tools.request.json", geminiType, "gemini_tools.upstream_response.json"},
		{"chat_to_gemini_stream", SurfaceChat, "chat_tools_stream.request.json", geminiType, "gemini_tools.upstream_response.sse"},
		{"chat_to_azure", SurfaceChat, "chat_tools.request.json", azureType, "openai_tools.upstream_response.json"},
		{"chat_to_openai_stream", SurfaceChat, "chat_tools_stream.request.json", openAIType, "openai_tools.upstream_response.sse"},
		{"messages_to_openai", SurfaceMessages, "messages_tools.request.json", openAIType, "openai_tools.upstream_response.json"},
		{"messages_to_openai_stream", SurfaceMessages, "messages_tools_stream.request.json", openAIType, "openai_tools.upstream_response.sse"},
		{"messages_to_anthropic", SurfaceMessages, "messages_tools.request.json", anthropicType, "anthropic_tools.upstream_response.json"},
		{"messages_to_anthropic_stream", SurfaceMessages, "messages_tools_stream.request.json", anthropicType, "anthropic_tools.upstream_response.sse"},
		{"messages_to_gemini", SurfaceMessages, "messages_tools.request.json", geminiType, "gemini_tools.upstream_response.json"},
		{"messages_to_gemini_stream", SurfaceMessages, "messages_tools_stream.request.json", geminiType, "gemini_tools.upstream_response.sse"},
		{"responses_to_openai", SurfaceResponses, "responses_tools.request.json", openAIType, "openai_tools.upstream_response.json"},
		{"responses_to_openai_stream", SurfaceResponses, "responses_tools_stream.request.json", openAIType, "openai_tools.upstream_response.sse"},
		{"responses_to_anthropic", SurfaceResponses, "responses_tools.request.json", anthropicType, "anthropic_tools.upstream_response.json"},
		{"responses_to_anthropic_stream", SurfaceResponses, "responses_tools_stream.request.json", anthropicType, "anthropic_tools.upstream_response.sse"},
		{"chat_documents_to_anthropic", SurfaceChat, "chat_documents.request.json", anthropicType, "anthropic_tools.upstream_response.json"},
		{"chat_documents_to_gemini", SurfaceChat, "chat_documents.request.json", geminiType, "gemini_tools.upstream_response.json"},
		{"chat_documents_to_openai", SurfaceChat, "chat_documents.request.json", openAIType, "openai_tools.upstream_response.json"},
		{"messages_documents_to_openai", SurfaceMessages, "messages_documents.request.json", openAIType, "openai_tools.upstream_response.json"},
		{"messages_documents_to_gemini", SurfaceMessages, "messages_documents.request.json", geminiType, "gemini_tools.upstream_response.json"},
		{"messages_documents_to_anthropic", SurfaceMessages, "messages_documents.request.json", anthropicType, "anthropic_tools.upstream_response.json"},
		{"responses_documents_to_anthropic", SurfaceResponses, "responses_documents.request.json", anthropicType, "anthropic_tools.upstream_response.json"},
		{"embeddings_to_gemini", SurfaceEmbeddings, "embeddings.request.json", geminiType, "gemini_embeddings.upstream_response.json"},
		{"embeddings_to_azure", SurfaceEmbeddings, "embeddings.request.json", azureType, "openai_embeddings.upstream_response.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			answer := readTestdata(t, tt.answer)
			var mu sync.Mutex
			var sent *http.Request
			var sentBody []byte
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				sent, sentBody = r, body
				mu.Unlock()
				if strings.HasSuffix(tt.answer, ".sse") {
					w.Header().Set("Content-Type", "text/event-stream")
				} else {
					w.Header().Set("Content-Type", "application/json")
				}
				_, _ = w.Write(answer)
			}))
			t.Cleanup(up.Close)

			c := testClient(t)
			req := parseGoldenRequest(t, tt.surface, readTestdata(t, tt.request))
			req.Candidates = []*runtime.Model{testModel(t, tt.provider, up.URL)}
			rec := httptest.NewRecorder()
			res, err := c.Serve(context.Background(), rec, req)
			if err != nil {
				t.Fatalf("serve: %v", err)
			}
			if res.Status != http.StatusOK || rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
			mu.Lock()
			got := describeUpstream(t, sent, sentBody)
			mu.Unlock()
			checkGolden(t, tt.name+".upstream.json", got)
			ext := ".response.json"
			body := rec.Body.Bytes()
			if strings.HasSuffix(tt.answer, ".sse") {
				ext = ".response.sse"
			} else {
				body = indentJSON(t, body)
			}
			checkGolden(t, tt.name+ext, body)
			if res.Usage.PromptTokens == 0 || (res.Usage.CompletionTokens == 0) != (tt.surface == SurfaceEmbeddings) {
				t.Errorf("usage = %+v", res.Usage)
			}
		})
	}
}

const (
	openAIType    = gatehousev1.ProviderType_PROVIDER_TYPE_OPENAI_COMPATIBLE
	anthropicType = gatehousev1.ProviderType_PROVIDER_TYPE_ANTHROPIC
	azureType     = gatehousev1.ProviderType_PROVIDER_TYPE_AZURE_OPENAI
	geminiType    = gatehousev1.ProviderType_PROVIDER_TYPE_GEMINI
)

func testClient(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.now = func() time.Time { return time.Unix(1700000000, 0) }
	return c
}

// testModel is a model served by one provider of type typ at base.
func testModel(t *testing.T, typ gatehousev1.ProviderType, base string) *runtime.Model {
	t.Helper()
	path := map[gatehousev1.ProviderType]string{openAIType: "/v1", anthropicType: "/v1", azureType: "/openai", geminiType: "/v1beta"}[typ]
	u, err := url.Parse(base + path)
	if err != nil {
		t.Fatal(err)
	}
	p := &runtime.Provider{ID: "p", Type: typ, BaseURL: u, Base: base + path, APIKey: "sk-upstream"}
	if typ == openAIType {
		p.ChatCompletionsURL, p.Authorization = p.Base+"/chat/completions", "Bearer sk-upstream"
	}
	if typ == azureType {
		p.APIVersion = "2024-10-21"
	}
	return &runtime.Model{ID: "m1", Name: "m", UpstreamModel: "upstream-model", Provider: p,
		Deployments: []*runtime.Deployment{{ID: "m1", Provider: p, UpstreamModel: "upstream-model", Weight: 1, StateKey: t.Name()}}}
}

func parseGoldenRequest(t *testing.T, s Surface, body []byte) *Request {
	t.Helper()
	req := &Request{Surface: s, Header: http.Header{}}
	var err error
	switch s {
	case SurfaceChat:
		req.Chat, err = ParseChatRequest(body)
	case SurfaceMessages:
		req.Messages, err = ParseMessagesRequest(body)
		if err == nil {
			req.Chat = req.Messages.Chat
		}
	case SurfaceResponses:
		req.Responses, err = ParseResponsesRequest(body)
		if err == nil {
			req.Chat = req.Responses.Chat
		}
	case SurfaceEmbeddings:
		req.Embeddings, err = ParseEmbeddingsRequest(body)
	}
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return req
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// describeUpstream renders what the gateway sent upstream: the request line, the
// headers that matter and the indented body.
func describeUpstream(t *testing.T, r *http.Request, body []byte) []byte {
	t.Helper()
	if r == nil {
		t.Fatal("upstream not called")
	}
	headers := map[string]string{}
	for _, h := range []string{"Authorization", "Api-Key", "X-Api-Key", "X-Goog-Api-Key", "Anthropic-Version", "Accept", "Content-Type"} {
		if v := r.Header.Get(h); v != "" {
			headers[h] = v
		}
	}
	out, err := json.MarshalIndent(map[string]any{
		"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "headers": headers, "body": json.RawMessage(body),
	}, "", "  ")
	if err != nil {
		t.Fatalf("upstream body is not JSON: %v: %s", err, body)
	}
	return append(out, '\n')
}

func indentJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return append(bytes.TrimSpace(out.Bytes()), '\n')
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -run TestGoldenTranslations -update rewrites it):\n%s", path, diff)
	}
}
