package llm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// commit sets the headers every answer carries, before its first byte.
func commit(w http.ResponseWriter, req *Request, res *Result) {
	if !req.Start.IsZero() {
		res.Overhead = max(time.Since(req.Start)-res.UpstreamWait, 0)
		w.Header()[OverheadHeader] = []string{FormatOverhead(res.Overhead)}
	}
}

// relayBody answers with a complete (not streamed) upstream answer.
func (c *Client) relayBody(w http.ResponseWriter, req *Request, res *Result, wk wire, d *runtime.Deployment, header http.Header, body []byte) error {
	if req.Surface == SurfaceEmbeddings {
		if wk == wireGemini {
			out, u, err := geminiEmbeddings(body, req.Embeddings, d.UpstreamModel)
			if err != nil {
				return err
			}
			res.Usage, res.UsageEstimated = u, true
			return c.write(w, req, res, http.StatusOK, "application/json", out)
		}
		var u *usageJSON
		if decodeTopLevelUsage(body, &u) && u != nil {
			res.Usage = u.usage()
		}
		return c.write(w, req, res, http.StatusOK, contentType(header), body)
	}
	passthrough := req.Filter == nil && !req.CaptureText &&
		((req.Surface == SurfaceChat && wk == wireOpenAI) || (req.Surface == SurfaceMessages && wk == wireAnthropic))
	if passthrough {
		// Only usage is read: locate the top-level member and decode just it.
		if wk == wireOpenAI {
			var u *usageJSON
			if decodeTopLevelUsage(body, &u) && u != nil {
				res.Usage = u.usage()
			}
		} else {
			var u *anthropicUsage
			if decodeTopLevelUsage(body, &u) && u != nil {
				res.Usage = u.usage()
			}
		}
		return c.write(w, req, res, http.StatusOK, contentType(header), body)
	}

	cr, err := decodeAnswer(wk, body, d.UpstreamModel, c.now().Unix())
	if err != nil {
		return err
	}
	if cr.Usage != nil {
		res.Usage = cr.Usage.usage()
	}
	if len(cr.Choices) > 0 && cr.Choices[0].Message.Content != nil {
		text := *cr.Choices[0].Message.Content
		if req.Filter != nil {
			filtered, err := req.Filter.Filter(text)
			if err == nil {
				var rest string
				rest, err = req.Filter.Flush()
				filtered += rest
			}
			if err != nil {
				return fmt.Errorf("response filter: %w", err)
			}
			text = filtered
			cr.Choices[0].Message.Content = &text
		}
		if req.CaptureText {
			res.Text = text
		}
	}
	var out any = cr
	switch req.Surface {
	case SurfaceMessages:
		out = chatToMessages(cr, cr.Model)
	case SurfaceResponses:
		out = chatToResponse(cr, req.Responses.body, cr.Model)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("render answer: %w", err)
	}
	return c.write(w, req, res, http.StatusOK, "application/json", b)
}

// decodeAnswer reads a complete upstream answer as a chat completion.
func decodeAnswer(wk wire, body []byte, upstreamModel string, now int64) (*chatResponse, error) {
	switch wk {
	case wireAnthropic:
		var ar anthropicResponse
		if err := json.Unmarshal(body, &ar); err != nil {
			return nil, fmt.Errorf("%w: anthropic answer: %w", ErrUpstreamBadResponse, err)
		}
		return anthropicToChat(&ar, now), nil
	case wireGemini:
		var gr geminiResponse
		if err := json.Unmarshal(body, &gr); err != nil {
			return nil, fmt.Errorf("%w: gemini answer: %w", ErrUpstreamBadResponse, err)
		}
		return geminiToChat(&gr, upstreamModel, now), nil
	}
	var cr chatResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		return nil, fmt.Errorf("%w: chat answer: %w", ErrUpstreamBadResponse, err)
	}
	return &cr, nil
}

func geminiEmbeddings(body []byte, req *EmbeddingsRequest, model string) ([]byte, Usage, error) {
	var gr geminiEmbedResponse
	if err := json.Unmarshal(body, &gr); err != nil {
		return nil, Usage{}, fmt.Errorf("%w: gemini embeddings: %w", ErrUpstreamBadResponse, err)
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, 0, len(gr.Embeddings))
	for i, e := range gr.Embeddings {
		var v any = e.Values
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(e.Values))
			for j, f := range e.Values {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(f)))
			}
			v = base64.StdEncoding.EncodeToString(buf)
		}
		data = append(data, item{Object: "embedding", Index: i, Embedding: v})
	}
	// Gemini reports no usage for embeddings: the estimate stands in.
	u := Usage{PromptTokens: req.EstimateTokens()}
	out, err := json.Marshal(map[string]any{"object": "list", "data": data, "model": model,
		"usage": map[string]int64{"prompt_tokens": u.PromptTokens, "total_tokens": u.PromptTokens}})
	return out, u, err
}

func contentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/json"
}

func (c *Client) write(w http.ResponseWriter, req *Request, res *Result, status int, ct string, body []byte) error {
	commit(w, req, res)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	res.Status = status
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write: %w: %w", ErrClientGone, err)
	}
	// The answer is complete: send it now rather than after the usage event,
	// metrics and access log the caller still has to do.
	if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("write: %w: %w", ErrClientGone, err)
	}
	return nil
}

// relayError answers with an upstream error: as it came when the provider speaks the
// caller's format, translated otherwise.
func (c *Client) relayError(w http.ResponseWriter, req *Request, res *Result, wk wire, status int, header http.Header, body []byte) {
	if ra := header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	native := (req.Surface == SurfaceMessages && wk == wireAnthropic) || (req.Surface != SurfaceMessages && wk == wireOpenAI)
	if native && json.Valid(body) {
		_ = c.write(w, req, res, status, contentType(header), body)
		return
	}
	var parsed struct {
		Error struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Status  string          `json:"status"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &parsed)
	msg := parsed.Error.Message
	if msg == "" {
		msg = "The model provider answered " + strconv.Itoa(status) + " " + http.StatusText(status) + "."
	}
	code := ""
	_ = json.Unmarshal(parsed.Error.Code, &code)
	if code == "" {
		code = strings.ToLower(parsed.Error.Status)
	}
	commit(w, req, res)
	res.Status = status
	WriteError(w, req.Surface, status, openAIErrorType(status), code, "", msg)
}
