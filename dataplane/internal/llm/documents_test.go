package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// TestDocumentsATargetCannotCarry: a document the provider cannot read (a file
// uploaded to another provider, a URL chat completions cannot carry, a type Anthropic
// does not take) is refused with a 400 naming the parameter, before anything is sent;
// where the provider can read it, it goes.
func TestDocumentsATargetCannotCarry(t *testing.T) {
	t.Parallel()
	const (
		chatFile = `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Read."},{"type":"file","file":%s}]}]}`
		msgsDoc  = `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"Read."},{"type":"document","source":%s}]}]}`
	)
	for _, tt := range []struct {
		name     string
		surface  Surface
		body     string
		provider gatehousev1.ProviderType
		param    string // "" when the request goes upstream
	}{
		{"chat file_id to anthropic", SurfaceChat, fmt.Sprintf(chatFile, `{"file_id":"file-abc"}`), anthropicType, "messages[0].content[1].file.file_id"},
		{"chat file_id to gemini", SurfaceChat, fmt.Sprintf(chatFile, `{"file_id":"file-abc"}`), geminiType, "messages[0].content[1].file.file_id"},
		{"chat file_id to openai", SurfaceChat, fmt.Sprintf(chatFile, `{"file_id":"file-abc"}`), openAIType, ""},
		{"chat file without data", SurfaceChat, fmt.Sprintf(chatFile, `{"filename":"a.pdf"}`), anthropicType, "messages[0].content[1].file"},
		{"chat docx to anthropic", SurfaceChat, fmt.Sprintf(chatFile, `{"file_data":"data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,UEsDBA==","filename":"a.docx"}`), anthropicType, "messages[0].content[1].file.file_data"},
		{"chat bare base64 of unknown type", SurfaceChat, fmt.Sprintf(chatFile, `{"file_data":"UEsDBA==","filename":"a.bin"}`), geminiType, "messages[0].content[1].file.file_data"},
		{"chat text that is not base64", SurfaceChat, fmt.Sprintf(chatFile, `{"file_data":"data:text/plain;base64,not base64!"}`), anthropicType, "messages[0].content[1].file.file_data"},
		{"messages URL document to openai", SurfaceMessages, fmt.Sprintf(msgsDoc, `{"type":"url","url":"https://example.com/a.pdf"}`), openAIType, "messages.0.content.1.source.url"},
		{"messages URL document to gemini", SurfaceMessages, fmt.Sprintf(msgsDoc, `{"type":"url","url":"https://example.com/a.pdf"}`), geminiType, "messages.0.content.1.source.url"},
		{"messages URL document to anthropic", SurfaceMessages, fmt.Sprintf(msgsDoc, `{"type":"url","url":"https://example.com/a.pdf"}`), anthropicType, ""},
		{"messages Anthropic file to openai", SurfaceMessages, fmt.Sprintf(msgsDoc, `{"type":"file","file_id":"file_011"}`), openAIType, "messages.0.content.1.source.file_id"},
		{"responses file_id to anthropic", SurfaceResponses, `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-abc"}]}]}`, anthropicType, "messages[0].content[0].file.file_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				http.Error(w, `{"error":{"message":"no"}}`, http.StatusBadRequest)
			}))
			t.Cleanup(srv.Close)
			c := testClient(t)
			req := parseGoldenRequest(t, tt.surface, []byte(tt.body))
			req.Candidates = []*runtime.Model{testModel(t, tt.provider, srv.URL)}
			_, err := c.Serve(context.Background(), httptest.NewRecorder(), req)
			var ie *InvalidRequestError
			if tt.param == "" {
				if err != nil || calls.Load() != 1 {
					t.Fatalf("err %v, %d upstream calls; want it sent", err, calls.Load())
				}
				return
			}
			if !errors.As(err, &ie) || ie.Param != tt.param || calls.Load() != 0 {
				t.Fatalf("err %v (%d upstream calls), want a refusal of %s before any call", err, calls.Load(), tt.param)
			}
		})
	}
}

// TestResponsesFileURLNative: chat completions take no file URLs, so a Responses
// request with one is native: only a provider's own Responses API serves it, and
// translated upstreams refuse it, naming the part.
func TestResponsesFileURLNative(t *testing.T) {
	t.Parallel()
	req, err := ParseResponsesRequest([]byte(`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"read"},{"type":"input_file","file_url":"https://example.com/a.pdf"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !req.Native() || req.unsupported.Param != "input[0].content[1].file_url" {
		t.Fatalf("native %v, unsupported %v", req.Native(), req.unsupported)
	}
	if prompt := req.Chat.promptEstimate(); prompt != 1 {
		t.Errorf("the chat form's estimate = %d, want the text part's 1", prompt)
	}
}

// TestResponsesToolOutputWithImage: a function_call_output holding an image is one
// the chat form cannot carry (served natively, or refused naming the part), and its
// text reaches the chat form as text — never the parts as JSON text.
func TestResponsesToolOutputWithImage(t *testing.T) {
	t.Parallel()
	req, err := ParseResponsesRequest([]byte(`{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"shot","arguments":"{}"},` +
		`{"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"the screen:"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.unsupported == nil || req.unsupported.Param != "input[1].output[1]" {
		t.Fatalf("unsupported = %v", req.unsupported)
	}
	body, err := req.Chat.body()
	if err != nil {
		t.Fatal(err)
	}
	var tool *chatMessage
	for i := range body.Messages {
		if body.Messages[i].Role == "tool" {
			tool = &body.Messages[i]
		}
	}
	if tool == nil || contentText(tool.Content) != "the screen:" {
		t.Fatalf("tool message = %+v", tool)
	}
}
