package guardrail

import (
	"bytes"
	"encoding/json"
	"errors"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// ChatStream applies the response rules to an OpenAI-compatible chat completions
// stream: it runs one StreamFilter per choice over choices[*].delta.content and rewrites
// each chunk's content with what the filter releases. Tool call arguments and refusals
// are not checked. It is not safe for concurrent use.
//
// Use: for each SSE event, pass its data (not "[DONE]") to Chunk and forward what it
// returns as "data: <out>\n\n"; if Chunk reports blocked, stop relaying and send an error
// event with Blocked().Error(). Before forwarding "[DONE]" (or when the upstream ends),
// call Finish and forward the chunk it returns, if any. A choice's held-back text is
// released into the chunk carrying its finish_reason.
type ChatStream struct {
	set      *ruleSet
	filters  []*StreamFilter // by choice index
	finished []bool
	blocked  *BlockedError
	// Members copied into the chunk Finish makes.
	id, model, created json.RawMessage
}

// maxChoices bounds the choice indexes a stream may use (OpenAI allows n ≤ 128).
const maxChoices = 128

// ErrBadChunk means a stream chunk is not a chat completion chunk Chunk can read.
var ErrBadChunk = errors.New("not a chat completion chunk")

// NewChatStream returns a filter for one chat completions stream.
func (p *Policy) NewChatStream() *ChatStream {
	c := &ChatStream{}
	if p != nil {
		c.set = p.response
	}
	return c
}

// Chunk filters the JSON data of one SSE event and returns the data to forward — data
// itself when nothing changed. Once blocked, it returns nil and true. A chunk that is
// not a JSON object, or whose choices cannot be read, yields ErrBadChunk: its text
// cannot be checked, so the caller should end the stream.
func (c *ChatStream) Chunk(data []byte) (out []byte, blocked bool, err error) {
	if c.blocked != nil {
		return nil, true, nil
	}
	if c.set == nil {
		return data, false, nil
	}
	var chunk map[string]json.RawMessage
	if err := json.Unmarshal(data, &chunk); err != nil || chunk == nil {
		return nil, false, ErrBadChunk
	}
	for _, k := range []struct {
		key string
		dst *json.RawMessage
	}{{"id", &c.id}, {"model", &c.model}, {"created", &c.created}} {
		if v, ok := chunk[k.key]; ok {
			*k.dst = v
		}
	}
	raw, ok := chunk["choices"]
	if !ok || isNull(raw) {
		return data, false, nil
	}
	var choices []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &choices); err != nil {
		return nil, false, ErrBadChunk
	}
	changed := false
	for pos, choice := range choices {
		idx := pos
		if v, ok := choice["index"]; ok {
			if err := json.Unmarshal(v, &idx); err != nil {
				return nil, false, ErrBadChunk
			}
		}
		if idx < 0 || idx >= maxChoices {
			return nil, false, ErrBadChunk
		}
		f := c.filter(idx)
		var delta map[string]json.RawMessage
		if v, ok := choice["delta"]; ok && !isNull(v) {
			if err := json.Unmarshal(v, &delta); err != nil {
				return nil, false, ErrBadChunk
			}
		}
		var content string
		hasContent := false
		if v, ok := delta["content"]; ok && !isNull(v) {
			if err := json.Unmarshal(v, &content); err != nil {
				return nil, false, ErrBadChunk
			}
			hasContent = true
		}
		text, blocked := f.Write(content)
		if v, ok := choice["finish_reason"]; ok && !isNull(v) && !c.finished[idx] {
			c.finished[idx] = true
			var tail string
			tail, blocked = f.Flush()
			text += tail
		}
		if blocked {
			c.blocked = f.Blocked()
			return nil, true, nil
		}
		if text == content && (hasContent || text == "") {
			continue
		}
		if delta == nil {
			delta = map[string]json.RawMessage{}
		}
		delta["content"], _ = marshal(text) // a string always encodes
		choice["delta"] = writeObject(delta)
		changed = true
	}
	if !changed {
		return data, false, nil
	}
	chunk["choices"] = writeArray(choices)
	return writeObject(chunk), false, nil
}

// Finish flushes the choices that have not finished and returns a chunk carrying their
// remaining text, or nil when there is none. blocked reports a BLOCK rule matching in
// that text; the caller must then send its error event instead.
func (c *ChatStream) Finish() (data []byte, blocked bool) {
	if c.blocked != nil {
		return nil, true
	}
	var choices []map[string]json.RawMessage
	for idx, f := range c.filters {
		if f == nil || c.finished[idx] {
			continue
		}
		c.finished[idx] = true
		text, blocked := f.Flush()
		if blocked {
			c.blocked = f.Blocked()
			return nil, true
		}
		if text == "" {
			continue
		}
		content, _ := marshal(text)
		index, _ := marshal(idx)
		choices = append(choices, map[string]json.RawMessage{
			"index":         index,
			"delta":         writeObject(map[string]json.RawMessage{"content": content}),
			"finish_reason": json.RawMessage("null"),
		})
	}
	if choices == nil {
		return nil, false
	}
	chunk := map[string]json.RawMessage{
		"object":  json.RawMessage(`"chat.completion.chunk"`),
		"choices": writeArray(choices),
	}
	for k, v := range map[string]json.RawMessage{"id": c.id, "model": c.model, "created": c.created} {
		if v != nil {
			chunk[k] = v
		}
	}
	return writeObject(chunk), false
}

// Blocked returns the error describing the BLOCK rule that cut the stream, or nil.
func (c *ChatStream) Blocked() *BlockedError { return c.blocked }

// Events returns one event per rule that matched in any choice, in policy order.
func (c *ChatStream) Events() []*gatehousev1.GuardrailEvent {
	if c.set == nil {
		return nil
	}
	counts := make([]int, len(c.set.rules))
	for _, f := range c.filters {
		if f != nil {
			for i, n := range f.sc.counts {
				counts[i] += n
			}
		}
	}
	return events(c.set, counts)
}

func (c *ChatStream) filter(idx int) *StreamFilter {
	for len(c.filters) <= idx {
		c.filters = append(c.filters, nil)
		c.finished = append(c.finished, false)
	}
	if c.filters[idx] == nil {
		c.filters[idx] = newStreamFilter(c.set)
	}
	return c.filters[idx]
}

func writeArray(objs []map[string]json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, o := range objs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(writeObject(o))
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }
