package demoupstream

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// A small OpenAI Responses API (/v1/responses): the deterministic echo reply as one
// message, streamed as Responses events or not, with usage. The last answers are kept
// in memory (retrieve, delete, list input items); a previous_response_id is
// acknowledged in the reply, so the demo shows that it arrived, and one the demo does
// not keep is not found, as OpenAI answers. It serves the gateway's native Responses
// path; it is not on the hot path of any benchmark.

// maxStoredResponses bounds the answers kept; the oldest go first.
const maxStoredResponses = 1024

// storedResponses are the answers kept, by id, with their input.
type storedResponses struct {
	mu    sync.Mutex
	byID  map[string]storedResponse
	order []string
	seq   atomic.Uint64
}

type storedResponse struct {
	response []byte // the response object, as answered
	input    []any  // the input, as items
}

func (st *storedResponses) put(id string, response []byte, input []any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = map[string]storedResponse{}
	}
	if _, ok := st.byID[id]; !ok {
		st.order = append(st.order, id)
	}
	st.byID[id] = storedResponse{response: response, input: input}
	for len(st.order) > maxStoredResponses {
		delete(st.byID, st.order[0])
		st.order = st.order[1:]
	}
}

func (st *storedResponses) get(id string) (storedResponse, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
	return r, ok
}

func (st *storedResponses) remove(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.byID[id]; !ok {
		return false
	}
	delete(st.byID, id)
	st.order = slices.DeleteFunc(st.order, func(o string) bool { return o == id })
	return true
}

// next numbers the answers, so that two identical requests get answers of their own.
func (st *storedResponses) next() uint64 { return st.seq.Add(1) }

// inputItems is a Responses input as items: a string becomes one user message.
func inputItems(raw json.RawMessage, id string) []any {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []any{map[string]any{"type": "message", "id": "msg_in_" + id, "role": "user", "status": "completed",
			"content": []any{map[string]any{"type": "input_text", "text": s}}}}
	}
	var items []any
	_ = json.Unmarshal(raw, &items)
	return items
}

// storedResponse serves GET and DELETE /v1/responses/{id} and GET
// /v1/responses/{id}/input_items.
func (s *server) storedResponse(w http.ResponseWriter, r *http.Request, rest string) error {
	id, items := strings.CutSuffix(rest, "/input_items")
	notFound := &apiError{status: http.StatusNotFound, typ: "invalid_request_error", msg: "Response with id '" + id + "' not found."}
	if r.Method == http.MethodDelete {
		if !s.kept.remove(id) {
			return notFound
		}
		b, _ := json.Marshal(map[string]any{"id": id, "object": "response.deleted", "deleted": true})
		return writeBody(w, http.StatusOK, s.hdrJSON, b)
	}
	stored, ok := s.kept.get(id)
	if !ok {
		return notFound
	}
	if !items {
		return writeBody(w, http.StatusOK, s.hdrJSON, stored.response)
	}
	data := stored.input
	if data == nil {
		data = []any{}
	}
	list := map[string]any{"object": "list", "data": data, "has_more": false, "first_id": nil, "last_id": nil}
	b, _ := json.Marshal(list)
	return writeBody(w, http.StatusOK, s.hdrJSON, b)
}

type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Stream             bool            `json:"stream"`
	PreviousResponseID string          `json:"previous_response_id"`
	Tools              []struct {
		Type string `json:"type"`
	} `json:"tools"`
}

// responsesUserText is the text of the last user message of a Responses input: a
// string, or the last item with role user (string content or input_text parts).
func responsesUserText(raw json.RawMessage) (string, int) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, 1
	}
	var items []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &items) != nil {
		return "", 0
	}
	text := ""
	for _, it := range items {
		if it.Role != "user" {
			continue
		}
		var c chatContent
		if json.Unmarshal(it.Content, &c) == nil {
			text = c.text
		}
	}
	return text, len(items)
}

func (s *server) responses(w http.ResponseWriter, r *http.Request) error {
	sc := s.pool.Get().(*scratch)
	defer s.release(sc)
	if err := readBody(w, r, sc); err != nil {
		return err
	}
	var req responsesRequest
	if err := decodeJSON(sc.in.Bytes(), &req); err != nil {
		return err
	}
	if req.Model == "" {
		return badRequest("You must provide a model parameter.", "model", nil)
	}
	if req.PreviousResponseID != "" {
		if _, ok := s.kept.get(req.PreviousResponseID); !ok {
			return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: "previous_response_id", code: "previous_response_not_found",
				msg: "Previous response with id '" + req.PreviousResponseID + "' not found."}
		}
	}
	user, items := responsesUserText(req.Input)
	text := replyText(user)
	if req.PreviousResponseID != "" {
		text += " (continuing an earlier response)"
	}
	var kinds []string
	for _, t := range req.Tools {
		if t.Type != "function" {
			kinds = append(kinds, t.Type)
		}
	}
	if len(kinds) > 0 {
		text += " (tools: " + strings.Join(kinds, ", ") + ")"
	}
	h := fnv.New64a()
	h.Write(sc.in.Bytes())
	id := fmt.Sprintf("resp_%016x%08x", h.Sum64(), s.kept.next())
	msgID := fmt.Sprintf("msg_%016x", h.Sum64())
	input := tokensPerRequest + items*tokensPerMessage + (len(user)+charsPerToken-1)/charsPerToken
	_, output := cutPieces(text, 0)
	usage := map[string]any{"input_tokens": input, "input_tokens_details": map[string]int{"cached_tokens": 0},
		"output_tokens": output, "output_tokens_details": map[string]int{"reasoning_tokens": 0}, "total_tokens": input + output}
	part := map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
	message := map[string]any{"type": "message", "id": msgID, "role": "assistant", "status": "completed", "content": []any{part}}
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{"id": id, "object": "response", "created_at": s.now().Unix(), "status": status, "model": req.Model,
			"output": output, "previous_response_id": nullable(req.PreviousResponseID), "usage": usage}
	}
	final, _ := json.Marshal(response("completed", []any{message}, usage))
	keep := func() { s.kept.put(id, final, inputItems(req.Input, id)) }
	if !req.Stream {
		if err := s.waitGeneration(r, output); err != nil {
			return err
		}
		keep()
		return writeBody(w, http.StatusOK, s.hdrJSON, final)
	}

	w.Header()["Content-Type"] = []string{"text/event-stream"}
	w.Header()["Cache-Control"] = []string{"no-cache"}
	rc := http.NewResponseController(w)
	seq := 0
	send := func(typ string, fields map[string]any) error {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		b, _ := json.Marshal(fields)
		return emit(w, rc, fmt.Appendf(nil, "event: %s\ndata: %s\n\n", typ, b))
	}
	type event struct {
		typ    string
		fields map[string]any
	}
	sendAll := func(evs ...event) error {
		for _, ev := range evs {
			if err := send(ev.typ, ev.fields); err != nil {
				return err
			}
		}
		return nil
	}
	at := func(fields map[string]any) map[string]any {
		fields["item_id"], fields["output_index"], fields["content_index"] = msgID, 0, 0
		return fields
	}
	open := map[string]any{"type": "message", "id": msgID, "role": "assistant", "status": "in_progress", "content": []any{}}
	if err := sendAll(
		event{"response.created", map[string]any{"response": response("in_progress", []any{}, nil)}},
		event{"response.output_item.added", map[string]any{"output_index": 0, "item": open}},
		event{"response.content_part.added", at(map[string]any{"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})},
	); err != nil {
		return err
	}
	var p pacer
	defer p.stop()
	for i, n := 0, 0; i < len(text); n++ {
		wait := s.tokenDelay
		if n == 0 {
			wait = s.firstTokenDelay
		}
		if err := p.wait(r.Context(), wait); err != nil {
			return err
		}
		end := nextPiece(text, i)
		if err := send("response.output_text.delta", at(map[string]any{"delta": text[i:end]})); err != nil {
			return err
		}
		i = end
	}
	keep()
	return sendAll(
		event{"response.output_text.done", at(map[string]any{"text": text})},
		event{"response.content_part.done", at(map[string]any{"part": part})},
		event{"response.output_item.done", map[string]any{"output_index": 0, "item": message}},
		event{"response.completed", map[string]any{"response": response("completed", []any{message}, usage)}},
	)
}

// waitGeneration waits as long as generating n tokens takes (non-streamed answers).
func (s *server) waitGeneration(r *http.Request, n int) error {
	var p pacer
	defer p.stop()
	return p.wait(r.Context(), s.generationTime(n))
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
