package demoupstream

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
)

// A small OpenAI Responses API (/v1/responses): the deterministic echo reply as one
// message, streamed as Responses events or not, with usage. Nothing is stored: a
// previous_response_id is only acknowledged in the reply, so the demo shows that it
// arrived. It serves the gateway's native Responses path (requests its chat
// translation cannot carry); it is not on the hot path of any benchmark.

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
	id := fmt.Sprintf("resp_%016x", h.Sum64())
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
	if !req.Stream {
		if err := s.waitGeneration(r, output); err != nil {
			return err
		}
		b, _ := json.Marshal(response("completed", []any{message}, usage))
		return writeBody(w, http.StatusOK, s.hdrJSON, b)
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
